//! The `top_processes` table target: per host, the processes behind the range's CPU peak
//! (or memory peak, `by = "memory"`), from the history's per-minute peaks. Bounded: one list
//! (at most 32 rows) per host, never a series per pid.

use serde_json::{json, Value};

use crate::http::state::AppState;
use daemon_kit::http_error::AppError;

/// The pseudo-metric of the table.
pub const TOP_PROCESSES: &str = "top_processes";

/// Which list a target asks for (`payload.by`).
pub(super) fn by_memory(payload: &Value) -> Result<bool, AppError> {
    match payload["by"].as_str().unwrap_or("cpu") {
        "cpu" => Ok(false),
        "memory" => Ok(true),
        other => {
            let shown: String = other.chars().take(64).collect();
            Err(AppError::BadRequest(format!(
                "top_processes: by {shown:?} is not cpu or memory"
            )))
        }
    }
}

/// The table: time of the peak, host, pid, process, user, CPU %, RSS bytes. Blocking.
pub(super) fn table(
    state: &AppState,
    hosts: &[String],
    memory: bool,
    from: i64,
    to: i64,
) -> Result<Value, AppError> {
    let mut rows = Vec::new();
    for host in hosts {
        let Some(answer) = state
            .store
            .top_in(host, from, to.saturating_add(1))
            .map_err(crate::http::state::history_error)?
        else {
            continue;
        };
        let list = if memory {
            answer.top_rss
        } else {
            answer.top_cpu
        };
        for p in list
            .iter()
            .flat_map(|l| l.processes.iter().map(move |p| (l.ts_ms, p)))
        {
            let (ts, p) = p;
            rows.push(json!([
                ts,
                host,
                p.pid,
                p.name,
                p.user,
                p.cpu_percent,
                p.rss_bytes
            ]));
        }
    }
    Ok(json!({
        "type": "table",
        "columns": [
            {"text": "time", "type": "time"}, {"text": "host", "type": "string"},
            {"text": "pid", "type": "number"}, {"text": "process", "type": "string"},
            {"text": "user", "type": "string"}, {"text": "cpu_percent", "type": "number"},
            {"text": "rss_bytes", "type": "number"}
        ],
        "rows": rows,
    }))
}
