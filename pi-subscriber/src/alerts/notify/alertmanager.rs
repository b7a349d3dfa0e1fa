//! `alertmanager`: `POST <url>/api/v2/alerts` with labels `alertname`, `host`, `severity` (and
//! `label` for a per-device alert). A firing alert is given an `endsAt` past the next
//! reminder, so Alertmanager keeps it while the Pi keeps re-sending it (`repeat_interval`) and
//! lets it expire if the Pi goes quiet; a resolved one ends now.

use std::time::Duration;

use serde_json::json;

use super::{check, Ctx};
use crate::alerts::engine::Notice;

fn rfc3339(ms: i64) -> String {
    humantime::format_rfc3339_millis(daemon_kit::clock::from_unix_ms(ms)).to_string()
}

pub fn body(n: &Notice, repeat_interval: Duration) -> serde_json::Value {
    let mut labels = json!({
        "alertname": n.rule,
        "host": n.host,
        "severity": n.severity.as_str(),
    });
    if !n.label.is_empty() {
        labels["label"] = json!(n.label);
    }
    let ends_ms = if n.status == "resolved" {
        n.ts_ms
    } else if n.event {
        n.ts_ms.saturating_add(3_600_000)
    } else {
        let keep = repeat_interval.max(Duration::from_secs(3600)) + Duration::from_secs(300);
        n.ts_ms
            .saturating_add(i64::try_from(keep.as_millis()).unwrap_or(i64::MAX))
    };
    json!([{
        "labels": labels,
        "annotations": {
            "summary": n.message,
            "value": n.value.map(|v| format!("{v}")).unwrap_or_default(),
            "threshold": n.threshold.map(|v| format!("{v}")).unwrap_or_default(),
        },
        "startsAt": rfc3339(n.since_ms),
        "endsAt": rfc3339(ends_ms),
    }])
}

pub async fn send(ctx: &Ctx<'_>, n: &Notice) -> Result<(), String> {
    let base = ctx.notifier.url.as_deref().unwrap_or_default();
    let url = format!("{}/api/v2/alerts", base.trim_end_matches('/'));
    let resp = ctx
        .client
        .post(url)
        .json(&body(n, ctx.repeat_interval))
        .send()
        .await
        .map_err(|e| e.to_string())?;
    check(resp).await
}
