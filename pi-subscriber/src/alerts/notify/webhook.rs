//! `webhook`: the notice as JSON in a POST. `text` and `content` carry the message, so a
//! Slack, Mattermost or Discord incoming webhook shows it as it is.

use serde_json::json;

use super::{check, Ctx};
use crate::alerts::engine::Notice;

pub fn body(n: &Notice) -> serde_json::Value {
    let mut v = serde_json::to_value(n).unwrap_or_default();
    if let Some(o) = v.as_object_mut() {
        let text = if n.status == "resolved" {
            format!("✅ {}", n.message)
        } else {
            format!("🚨 [{}] {}", n.severity.as_str(), n.message)
        };
        o.insert("text".into(), json!(text));
        o.insert("content".into(), json!(text));
    }
    v
}

pub async fn send(ctx: &Ctx<'_>, n: &Notice) -> Result<(), String> {
    let url = ctx.notifier.url.as_deref().unwrap_or_default();
    let resp = ctx
        .client
        .post(url)
        .json(&body(n))
        .send()
        .await
        .map_err(|e| e.to_string())?;
    check(resp).await
}
