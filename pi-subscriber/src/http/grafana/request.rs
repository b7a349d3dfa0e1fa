//! What a `POST /grafana/query` may ask, checked before anything is read: the bounds, the
//! time range, the request's shape, and the hosts a target names.

use std::time::SystemTime;

use serde::Deserialize;
use serde_json::{Number, Value};

use crate::http::state::time_in_range;
#[cfg(test)]
use crate::validate::MAX_TS_MS;
use daemon_kit::http_error::AppError;

/// Targets one query may hold (hidden ones not counted).
pub const MAX_TARGETS: usize = 16;
/// Series (targets × hosts) one query may ask for.
pub const MAX_SERIES: usize = 128;
/// `maxDataPoints` at most (Grafana sends the panel's width in pixels).
pub const MAX_DATA_POINTS: u64 = 10_000;
/// Points one answer may hold, over all its series.
pub const MAX_TOTAL_POINTS: usize = 200_000;
/// `intervalMs` at most: 366 days.
pub const MAX_INTERVAL_MS: u64 = 366 * 86_400_000;

#[derive(Debug, Deserialize)]
pub(crate) struct Range {
    from: String,
    to: String,
}

impl Range {
    /// `(from, to)` in epoch ms, both between 1970 and 2200, `from <= to`.
    pub(crate) fn check(&self) -> Result<(i64, i64), AppError> {
        let time = |name: &str, text: &str| {
            parse_time(text)
                .filter(|t| time_in_range(*t))
                .ok_or_else(|| {
                    AppError::BadRequest(format!(
                        "range.{name} {text:?} is not a time between 1970 and 2200"
                    ))
                })
        };
        let (from, to) = (time("from", &self.from)?, time("to", &self.to)?);
        if from > to {
            return Err(AppError::BadRequest("range.from is after range.to".into()));
        }
        Ok((from, to))
    }
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(super) struct QueryRequest {
    pub(super) range: Range,
    /// Numbers as sent, so that one no integer type holds is a 400 naming it.
    pub(super) interval_ms: Option<Number>,
    pub(super) max_data_points: Option<Number>,
    #[serde(default)]
    pub(super) targets: Vec<Target>,
    #[serde(default)]
    pub(super) adhoc_filters: Vec<AdhocFilter>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(super) struct Target {
    pub(super) target: Option<String>,
    #[serde(default)]
    pub(super) hide: bool,
    #[serde(rename = "type")]
    pub(super) kind: Option<String>,
    #[serde(default)]
    pub(super) payload: Value,
}

#[derive(Debug, Deserialize)]
pub(super) struct AdhocFilter {
    key: String,
    #[serde(default)]
    operator: String,
    value: String,
}

/// Grafana's ISO time (`2016-10-31T06:33:44.866Z`) or epoch ms, to epoch ms.
pub fn parse_time(text: &str) -> Option<i64> {
    if let Ok(ms) = text.parse::<i64>() {
        return Some(ms);
    }
    let t = humantime::parse_rfc3339_weak(text).ok()?;
    let ms = t.duration_since(SystemTime::UNIX_EPOCH).ok()?.as_millis();
    i64::try_from(ms).ok()
}

/// An integer field within `lo..=hi`, else a 400 naming it and its bounds.
pub(super) fn integer(
    name: &str,
    n: Option<&Number>,
    default: u64,
    lo: u64,
    hi: u64,
    unit: &str,
) -> Result<u64, AppError> {
    let Some(n) = n else { return Ok(default) };
    n.as_u64().filter(|v| (lo..=hi).contains(v)).ok_or_else(|| {
        AppError::BadRequest(format!(
            "{name} {n} is not an integer between {lo} and {hi}{unit}"
        ))
    })
}

/// Hosts a target asks for: its `host` payload (a name or a list), narrowed by ad-hoc
/// `host` filters; all hosts when neither says.
pub(super) fn target_hosts(
    payload: &Value,
    filters: &[AdhocFilter],
    all: &[String],
) -> Vec<String> {
    let mut hosts: Vec<String> = match &payload["host"] {
        Value::String(h) if !h.is_empty() => vec![h.clone()],
        Value::Array(list) if !list.is_empty() => list
            .iter()
            .filter_map(|v| v.as_str().map(str::to_owned))
            .collect(),
        _ => all.to_vec(),
    };
    for f in filters.iter().filter(|f| f.key == "host") {
        match f.operator.as_str() {
            "!=" => hosts.retain(|h| *h != f.value),
            _ => hosts.retain(|h| *h == f.value),
        }
    }
    hosts
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_iso_or_ms_and_their_range() {
        assert_eq!(parse_time("2016-10-31T06:33:44.866Z"), Some(1477895624866));
        assert_eq!(parse_time("1477895624866"), Some(1477895624866));
        assert_eq!(parse_time("yesterday"), None);
        assert_eq!(parse_time("2026-13-45T00:00:00Z"), None);
        assert!(time_in_range(0) && time_in_range(MAX_TS_MS));
        assert!(!time_in_range(-1) && !time_in_range(MAX_TS_MS + 1));
    }

    #[test]
    fn integers_outside_their_bounds_are_named() {
        let n = |s: &str| serde_json::from_str::<Number>(s).unwrap();
        assert_eq!(integer("x", None, 7, 1, 10, "").unwrap(), 7);
        assert_eq!(integer("x", Some(&n("10")), 7, 1, 10, "").unwrap(), 10);
        for bad in ["0", "11", "-1", "1.5", "18446744073709551615"] {
            let e = integer("x", Some(&n(bad)), 7, 1, 10, "").unwrap_err();
            assert_eq!(
                e.to_string(),
                format!("x {bad} is not an integer between 1 and 10")
            );
        }
    }
}
