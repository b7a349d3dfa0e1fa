//! `GET /alerts`: the alerts that are not ok (pending, firing, or unknown while their host is
//! stale or their series missing from its newest sample) and the recent notices, newest first.

use serde_json::{json, Value};

use super::engine::Phase;
use super::AlertsHandle;

pub fn view(handle: &AlertsHandle) -> Value {
    let Ok(engine) = handle.engine.lock() else {
        return json!({"enabled": false, "alerts": [], "recent": []});
    };
    let Some(e) = engine.as_ref() else {
        return json!({"enabled": false, "alerts": [], "recent": []});
    };
    let alerts: Vec<Value> = e
        .alerts()
        .map(|a| {
            // Unknown: the host is stale, or its newest sample lacked the series.
            let unknown = e.is_stale(&a.host) || a.unseen_since_ms.is_some();
            let state = if a.rule != "host_down" && unknown {
                "unknown"
            } else if a.phase == Phase::Firing {
                "firing"
            } else {
                "pending"
            };
            json!({
                "host": a.host,
                "rule": a.rule,
                "label": a.label,
                "state": state,
                "severity": a.severity,
                "value": a.value,
                "threshold": a.threshold,
                "since_ms": a.firing_since_ms.unwrap_or(a.pending_since_ms),
                "pending_since_ms": a.pending_since_ms,
                "for_s": a.for_ms as f64 / 1000.0,
            })
        })
        .collect();
    let recent: Vec<&super::engine::Notice> = e.recent().iter().rev().collect();
    json!({"enabled": true, "alerts": alerts, "recent": recent})
}

/// `GET /alerts` without the engine (alerts off).
pub fn disabled() -> Value {
    json!({"enabled": false, "alerts": [], "recent": []})
}
