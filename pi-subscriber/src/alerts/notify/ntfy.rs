//! `ntfy`: the message as the body of a POST to the topic URL, with Title, Priority and Tags
//! headers (https://docs.ntfy.sh/publish/).

use super::{check, Ctx};
use crate::alerts::config::Severity;
use crate::alerts::engine::Notice;

pub async fn send(ctx: &Ctx<'_>, n: &Notice) -> Result<(), String> {
    let url = ctx.notifier.url.as_deref().unwrap_or_default();
    let resolved = n.status == "resolved";
    let (priority, tags) = match (resolved, n.severity) {
        (true, _) => ("default", "white_check_mark"),
        (false, Severity::Critical) => ("urgent", "rotating_light"),
        (false, Severity::Warning) => ("high", "warning"),
        (false, Severity::Info) => ("default", "information_source"),
    };
    let title = format!(
        "{} {} {}",
        n.host,
        n.rule,
        if resolved { "resolved" } else { "firing" }
    );
    // Header values must be visible ASCII: host and rule names are.
    let resp = ctx
        .client
        .post(url)
        .header("Title", title)
        .header("Priority", priority)
        .header("Tags", tags)
        .body(n.message.clone())
        .send()
        .await
        .map_err(|e| e.to_string())?;
    check(resp).await
}
