//! One host's state JSON for Home Assistant: the registry's values and the rates module's
//! (as `/metrics` serves them), rounded; a missing value is left out, never 0. Pure.

use std::collections::BTreeMap;

use broker::JobEnd;
use serde_json::{json, Map, Value};

use super::discovery::{Source, FILESYSTEM, MAX_FILESYSTEMS, SENSORS};
use crate::registry;
use crate::store::HostState;

/// `v` with `decimals` decimals; `None` for a value that is not finite.
fn rounded(v: f64, decimals: i32) -> Option<Value> {
    let f = 10f64.powi(decimals);
    let r = (v * f).round() / f;
    if !r.is_finite() {
        return None;
    }
    if decimals == 0 && r.abs() < 9.0e15 {
        return Some(Value::from(r as i64));
    }
    serde_json::Number::from_f64(r).map(Value::Number)
}

/// The registry gauge `name`'s host-wide value in the newest sample.
fn total_gauge(s: &broker::Snapshot, name: &str) -> Option<f64> {
    registry::metric(name)?
        .values(s)
        .into_iter()
        .find_map(|(label, v)| match v {
            registry::Value::Gauge(g) if label.is_empty() => Some(g),
            _ => None,
        })
}

/// The binary sensors whose value `latest` has.
pub fn binary_shown(latest: &broker::Snapshot) -> impl Iterator<Item = &'static str> + '_ {
    SENSORS
        .iter()
        .filter(|s| s.binary && total_gauge(latest, s.key).is_some())
        .map(|s| s.key)
}

/// `secs` since the epoch as RFC 3339 (UTC), what a `timestamp` sensor takes.
fn rfc3339(secs: i64) -> Option<String> {
    let t = std::time::UNIX_EPOCH
        .checked_add(std::time::Duration::from_secs(u64::try_from(secs).ok()?))?;
    Some(humantime::format_rfc3339_seconds(t).to_string())
}

/// One host's state JSON: a key per value known, none for a missing one (never 0).
/// `mounts`: mount point → key, as announced; `alerts_firing`: `None` without alerts.
pub fn state(
    host: &HostState,
    mounts: &BTreeMap<String, String>,
    last_job: Option<&JobEnd>,
    alerts_firing: Option<usize>,
) -> Map<String, Value> {
    let mut out = Map::new();
    let mut put = |key: String, v: Option<f64>, round: i32| {
        if let Some(v) = v.and_then(|v| rounded(v, round)) {
            out.insert(key, v);
        }
    };
    if let Some(latest) = host.latest.as_deref() {
        // The rates the store computed once at ingest (the one rate rule).
        let rates = host.rates.as_deref();
        for s in SENSORS.iter() {
            let v = match s.source {
                Source::Gauge => total_gauge(latest, s.key),
                Source::Rate => rates.and_then(|r| r.total(s.key)),
                _ => continue,
            };
            put(s.key.to_owned(), v, s.round);
        }
        let used = registry::metric(FILESYSTEM.key).map(|m| m.values(latest));
        for (mount, v) in used.into_iter().flatten() {
            if let (Some(key), registry::Value::Gauge(g)) = (mounts.get(&mount), v) {
                put(
                    format!("{}_{key}", FILESYSTEM.key),
                    Some(g),
                    FILESYSTEM.round,
                );
            }
        }
        // A listing problem sensor's attribute: the labels that make it so (failed units).
        for s in SENSORS.iter().filter(|s| s.labels_attribute) {
            let values = registry::metric(s.key)
                .map(|m| m.values(latest))
                .unwrap_or_default();
            if values.is_empty() {
                continue;
            }
            let on: Vec<Value> = values
                .into_iter()
                .filter(|(l, v)| {
                    !l.is_empty() && matches!(v, registry::Value::Gauge(g) if *g > 0.0)
                })
                .map(|(l, _)| Value::from(l))
                .collect();
            out.insert(format!("{}_labels", s.key), Value::Array(on));
        }
        // Rounded to the minute: the boot time of one boot reads the same in every sample.
        let boot = latest
            .uptime_s
            .filter(|u| u.is_finite() && *u >= 0.0)
            .map(|u| ((latest.ts_ms as f64 / 1000.0 - u) / 60.0).round() as i64 * 60)
            .and_then(rfc3339);
        if let Some(boot) = boot {
            out.insert("booted_at".into(), boot.into());
        }
    }
    if let Some(job) = last_job {
        let result = if crate::alerts::rules::job_failed(job) {
            "failed"
        } else {
            "success"
        };
        out.insert("last_job".into(), result.into());
        out.insert(
            "last_job_detail".into(),
            json!({
                "name": job.name,
                "exit_code": job.exit_code,
                "duration_s": rounded(job.duration_s, 1),
                "ended_at": rfc3339(job.end_ts_ms.div_euclid(1000)),
            }),
        );
    }
    if let Some(n) = alerts_firing {
        out.insert("alerts_firing".into(), n.into());
    }
    out
}

/// The filesystems of the newest sample to announce: mount point → key, the first
/// [`MAX_FILESYSTEMS`] in mount order; and how many were left out.
pub fn mounts(host: &HostState) -> (BTreeMap<String, String>, usize) {
    let all: Vec<String> = host
        .latest
        .as_deref()
        .and_then(|s| s.filesystems.as_ref())
        .map(|f| f.keys().cloned().collect())
        .unwrap_or_default();
    let over = all.len().saturating_sub(MAX_FILESYSTEMS);
    let kept = all
        .into_iter()
        .take(MAX_FILESYSTEMS)
        .map(|m| {
            let key = super::sanitize::mount_key(&m);
            (m, key)
        })
        .collect();
    (kept, over)
}
