//! The simPod JSON datasource contract (grafana-json-datasource), served under `/grafana` so the
//! datasource URL is `http://pi:9100/grafana`: `GET /`, `POST /metrics`,
//! `POST /metric-payload-options`, `POST /query`, `POST /variable`, `POST /tag-keys`,
//! `POST /tag-values`, and the older `POST /annotations`. Unknown request fields are ignored.

use std::time::SystemTime;

use axum::extract::rejection::JsonRejection;
use axum::extract::State;
use axum::routing::{get, post};
use axum::{Json, Router};
use broker::JobEvent;
use serde::Deserialize;
use serde_json::{json, Value};

use crate::http::{AppError, AppState};
use crate::store::HistoryRow;

/// Every metric a panel can ask for: the `/history` row fields, with their label and unit.
pub const METRICS: [(&str, &str); 14] = [
    ("cpu_usage_percent", "CPU usage (%)"),
    ("load_1m", "Load 1m"),
    ("load_5m", "Load 5m"),
    ("load_15m", "Load 15m"),
    ("memory_used_percent", "Memory used (%)"),
    ("memory_available_mb", "Memory available (MB)"),
    ("swap_used_mb", "Swap used (MB)"),
    ("cpu_temp_c", "CPU temperature (°C)"),
    ("disk_read_bytes_rate", "Disk read (bytes/s)"),
    ("disk_write_bytes_rate", "Disk write (bytes/s)"),
    ("disk_read_sectors_rate", "Disk read (sectors/s)"),
    ("disk_write_sectors_rate", "Disk write (sectors/s)"),
    ("network_rx_bytes_rate", "Network receive (bytes/s)"),
    ("network_tx_bytes_rate", "Network transmit (bytes/s)"),
];

/// The pseudo-metric whose rows are job runs, for annotations (time → timeEnd ranges).
pub const JOB_EVENTS: &str = "job_events";

pub fn metric_value(row: &HistoryRow, metric: &str) -> Option<f64> {
    match metric {
        "cpu_usage_percent" => row.cpu_usage_percent,
        "load_1m" => row.load_1m,
        "load_5m" => row.load_5m,
        "load_15m" => row.load_15m,
        "memory_used_percent" => row.memory_used_percent,
        "memory_available_mb" => row.memory_available_mb,
        "swap_used_mb" => row.swap_used_mb,
        "cpu_temp_c" => row.cpu_temp_c,
        "disk_read_bytes_rate" => row.disk_read_bytes_rate,
        "disk_write_bytes_rate" => row.disk_write_bytes_rate,
        "disk_read_sectors_rate" => row.disk_read_sectors_rate,
        "disk_write_sectors_rate" => row.disk_write_sectors_rate,
        "network_rx_bytes_rate" => row.network_rx_bytes_rate,
        "network_tx_bytes_rate" => row.network_tx_bytes_rate,
        _ => None,
    }
}

/// `GET /grafana` and `GET /grafana/`: the datasource's "Save & test".
pub async fn save_and_test() -> &'static str {
    "OK: server-analytics simPod JSON datasource"
}

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/", get(save_and_test))
        .route("/metrics", post(metrics))
        .route("/metric-payload-options", post(payload_options))
        .route("/query", post(query))
        .route("/variable", post(variable))
        .route("/tag-keys", post(tag_keys))
        .route("/tag-values", post(tag_values))
        .route("/annotations", post(annotations))
}

fn host_names(state: &AppState) -> Result<Vec<String>, AppError> {
    let store = state
        .store
        .lock()
        .map_err(|_| AppError::Internal("store lock poisoned".into()))?;
    Ok(store.hosts.keys().cloned().collect())
}

fn host_options(state: &AppState) -> Result<Vec<Value>, AppError> {
    Ok(host_names(state)?
        .into_iter()
        .map(|h| json!({"label": h, "value": h}))
        .collect())
}

async fn metrics(
    State(state): State<AppState>,
    _body: Result<Json<Value>, JsonRejection>,
) -> Result<Json<Value>, AppError> {
    let hosts = host_options(&state)?;
    let payloads = json!([
        {"label": "Host", "name": "host", "type": "multi-select", "placeholder": "all hosts", "options": hosts},
        {"label": "Downsampling", "name": "agg", "type": "select", "placeholder": "avg",
         "options": [{"label": "average", "value": "avg"}, {"label": "max (keeps spikes)", "value": "max"}]}
    ]);
    let mut list: Vec<Value> = METRICS
        .iter()
        .map(|(value, label)| json!({"label": label, "value": value, "payloads": payloads}))
        .collect();
    list.push(json!({"label": "Job runs (annotations, table)", "value": JOB_EVENTS,
                     "payloads": [{"label": "Host", "name": "host", "type": "multi-select", "options": host_options(&state)?}]}));
    Ok(Json(Value::Array(list)))
}

#[derive(Debug, Deserialize)]
struct PayloadOptionsRequest {
    #[serde(default)]
    name: String,
}

async fn payload_options(
    State(state): State<AppState>,
    req: Result<Json<PayloadOptionsRequest>, JsonRejection>,
) -> Result<Json<Value>, AppError> {
    let Json(req) = req?;
    Ok(Json(match req.name.as_str() {
        "host" => Value::Array(host_options(&state)?),
        "agg" => json!([{"label": "average", "value": "avg"}, {"label": "max", "value": "max"}]),
        _ => json!([]),
    }))
}

#[derive(Debug, Deserialize)]
struct Range {
    from: String,
    to: String,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct QueryRequest {
    range: Range,
    interval_ms: Option<u64>,
    max_data_points: Option<u64>,
    #[serde(default)]
    targets: Vec<Target>,
    #[serde(default)]
    adhoc_filters: Vec<AdhocFilter>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Target {
    target: Option<String>,
    #[serde(default)]
    hide: bool,
    #[serde(rename = "type")]
    kind: Option<String>,
    #[serde(default)]
    payload: Value,
}

#[derive(Debug, Deserialize)]
struct AdhocFilter {
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

/// Hosts a target asks for: its `host` payload (a name or a list), narrowed by ad-hoc
/// `host` filters; all hosts when neither says.
fn target_hosts(payload: &Value, filters: &[AdhocFilter], all: &[String]) -> Vec<String> {
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

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Agg {
    Avg,
    Max,
}

/// `[value, epoch_ms]` points of `metric`, ascending. When the rows are denser than
/// `bucket_ms`, they are averaged (or maxed) into buckets stamped at their start; an empty
/// bucket or a missing value between points is an explicit `null`, so Grafana draws a gap
/// rather than a line across an outage.
pub fn datapoints(
    rows: &[HistoryRow],
    metric: &str,
    from_ms: i64,
    bucket_ms: i64,
    agg: Agg,
    native_ms: i64,
) -> Vec<(Option<f64>, i64)> {
    if bucket_ms <= native_ms {
        let mut out = Vec::with_capacity(rows.len());
        let mut previous: Option<i64> = None;
        for row in rows {
            if let Some(p) = previous {
                if row.time - p > 2 * native_ms {
                    out.push((None, p + native_ms));
                }
            }
            out.push((metric_value(row, metric), row.time));
            previous = Some(row.time);
        }
        return out;
    }
    let bucket_of = |t: i64| from_ms + (t - from_ms).div_euclid(bucket_ms) * bucket_ms;
    let mut out: Vec<(Option<f64>, i64)> = Vec::new();
    let mut i = 0;
    while i < rows.len() {
        let start = bucket_of(rows[i].time);
        if let Some(&(_, last)) = out.last() {
            let mut t = last + bucket_ms;
            while t < start {
                out.push((None, t));
                t += bucket_ms;
            }
        }
        let (mut sum, mut count, mut max) = (0.0, 0u32, f64::NEG_INFINITY);
        while i < rows.len() && bucket_of(rows[i].time) == start {
            if let Some(v) = metric_value(&rows[i], metric) {
                sum += v;
                count += 1;
                max = max.max(v);
            }
            i += 1;
        }
        let value = (count > 0).then(|| match agg {
            Agg::Avg => ((sum / f64::from(count)) * 1000.0).round() / 1000.0,
            Agg::Max => max,
        });
        out.push((value, start));
    }
    out
}

/// Native interval of a host's rows, from the median spacing (15 s normally).
fn native_interval_ms(rows: &[HistoryRow]) -> i64 {
    let mut gaps: Vec<i64> = rows
        .windows(2)
        .map(|w| w[1].time - w[0].time)
        .filter(|g| *g > 0)
        .collect();
    if gaps.is_empty() {
        return 15_000;
    }
    gaps.sort_unstable();
    gaps[gaps.len() / 2]
}

fn job_rows(events: &[JobEvent], hosts: &[String], from: i64, to: i64) -> Vec<Value> {
    let mut rows = Vec::new();
    for e in events {
        if !hosts.iter().any(|h| h == e.host()) {
            continue;
        }
        let (start, end, text) = match e {
            JobEvent::JobEnd(end) => {
                let result = match (end.exit_code, end.signal) {
                    (Some(rc), _) => format!("rc={rc}"),
                    (None, Some(sig)) => format!("signal {sig}"),
                    _ => end.error.clone().unwrap_or_else(|| "unknown".into()),
                };
                (
                    end.start_ts_ms,
                    end.end_ts_ms,
                    format!("{result}, {:.1} s", end.duration_s),
                )
            }
            JobEvent::JobStart(start) => {
                // A start whose end is in the list is shown by the end.
                let ended = events
                    .iter()
                    .any(|o| matches!(o, JobEvent::JobEnd(x) if x.run_id == start.run_id));
                if ended {
                    continue;
                }
                (start.start_ts_ms, start.start_ts_ms, "running".to_owned())
            }
        };
        if end < from || start > to {
            continue;
        }
        rows.push(json!([
            start,
            end,
            format!("job {}", e.name()),
            text,
            format!("job,{}", e.host()),
            e.host()
        ]));
    }
    rows
}

async fn query(
    State(state): State<AppState>,
    req: Result<Json<QueryRequest>, JsonRejection>,
) -> Result<Json<Value>, AppError> {
    let Json(req) = req?;
    let from = parse_time(&req.range.from).ok_or_else(|| {
        AppError::BadRequest(format!("range.from {:?} is not a time", req.range.from))
    })?;
    let to = parse_time(&req.range.to).ok_or_else(|| {
        AppError::BadRequest(format!("range.to {:?} is not a time", req.range.to))
    })?;
    if from > to {
        return Err(AppError::BadRequest("range.from is after range.to".into()));
    }
    let points = req.max_data_points.unwrap_or(1000).max(1) as i64;
    let bucket = ((to - from) / points)
        .max(req.interval_ms.unwrap_or(0) as i64)
        .max(1);
    let all = host_names(&state)?;
    let events: Vec<JobEvent> = state
        .store
        .lock()
        .map_err(|_| AppError::Internal("store lock poisoned".into()))?
        .events
        .iter()
        .cloned()
        .collect();
    let mut out = Vec::new();
    for target in req.targets.iter().filter(|t| !t.hide) {
        let Some(metric) = target.target.as_deref().filter(|m| !m.is_empty()) else {
            continue;
        };
        let hosts = target_hosts(&target.payload, &req.adhoc_filters, &all);
        if metric == JOB_EVENTS {
            out.push(json!({
                "type": "table",
                "columns": [
                    {"text": "time", "type": "time"}, {"text": "timeEnd", "type": "time"},
                    {"text": "title", "type": "string"}, {"text": "text", "type": "string"},
                    {"text": "tags", "type": "string"}, {"text": "host", "type": "string"}
                ],
                "rows": job_rows(&events, &hosts, from, to),
            }));
            continue;
        }
        if !METRICS.iter().any(|(m, _)| *m == metric) {
            return Err(AppError::BadRequest(format!(
                "unknown metric {metric:?}; POST /metrics lists them"
            )));
        }
        let agg = if target.payload["agg"] == "max" {
            Agg::Max
        } else {
            Agg::Avg
        };
        let table = target.kind.as_deref() == Some("table") || target.payload["format"] == "table";
        let mut table_rows = Vec::new();
        for host in &hosts {
            let rows = state
                .store
                .history(host, from, to)
                .map_err(|e| AppError::Internal(e.to_string()))?;
            let native = native_interval_ms(&rows);
            let series = datapoints(&rows, metric, from, bucket, agg, native);
            if table {
                table_rows.extend(series.iter().map(|(v, t)| json!([t, host, v])));
            } else {
                let datapoints: Vec<Value> = series.iter().map(|(v, t)| json!([v, t])).collect();
                out.push(json!({"target": format!("{metric} {host}"), "datapoints": datapoints}));
            }
        }
        if table {
            out.push(json!({
                "type": "table",
                "columns": [{"text": "time", "type": "time"}, {"text": "host", "type": "string"}, {"text": metric, "type": "number"}],
                "rows": table_rows,
            }));
        }
    }
    Ok(Json(Value::Array(out)))
}

#[derive(Debug, Deserialize)]
struct VariableRequest {
    #[serde(default)]
    payload: Value,
}

/// `hosts` (the default) or `metrics`, as `[{"__text", "__value"}]`.
async fn variable(
    State(state): State<AppState>,
    req: Result<Json<VariableRequest>, JsonRejection>,
) -> Result<Json<Value>, AppError> {
    let Json(req) = req?;
    let what = req.payload["target"].as_str().unwrap_or("hosts");
    let values: Vec<String> = match what {
        "metrics" => METRICS.iter().map(|(m, _)| (*m).to_owned()).collect(),
        _ => host_names(&state)?,
    };
    Ok(Json(Value::Array(
        values
            .into_iter()
            .map(|v| json!({"__text": v, "__value": v}))
            .collect(),
    )))
}

async fn tag_keys(_body: Result<Json<Value>, JsonRejection>) -> Json<Value> {
    Json(json!([{"type": "string", "text": "host"}]))
}

#[derive(Debug, Deserialize)]
struct TagValuesRequest {
    #[serde(default)]
    key: String,
}

async fn tag_values(
    State(state): State<AppState>,
    req: Result<Json<TagValuesRequest>, JsonRejection>,
) -> Result<Json<Value>, AppError> {
    let Json(req) = req?;
    if req.key != "host" {
        return Ok(Json(json!([])));
    }
    Ok(Json(Value::Array(
        host_names(&state)?
            .into_iter()
            .map(|h| json!({"text": h}))
            .collect(),
    )))
}

#[derive(Debug, Deserialize)]
struct AnnotationsRequest {
    range: Range,
    #[serde(default)]
    annotation: Value,
}

/// The SimpleJSON-style annotation call: job runs as start→end regions.
async fn annotations(
    State(state): State<AppState>,
    req: Result<Json<AnnotationsRequest>, JsonRejection>,
) -> Result<Json<Value>, AppError> {
    let Json(req) = req?;
    let from = parse_time(&req.range.from)
        .ok_or_else(|| AppError::BadRequest("range.from is not a time".into()))?;
    let to = parse_time(&req.range.to)
        .ok_or_else(|| AppError::BadRequest("range.to is not a time".into()))?;
    let all = host_names(&state)?;
    let hosts = match req.annotation["query"].as_str().filter(|q| !q.is_empty()) {
        Some(h) => vec![h.to_owned()],
        None => all,
    };
    let store = state
        .store
        .lock()
        .map_err(|_| AppError::Internal("store lock poisoned".into()))?;
    let events: Vec<JobEvent> = store.events.iter().cloned().collect();
    let list: Vec<Value> = job_rows(&events, &hosts, from, to)
        .into_iter()
        .map(|r| json!({"annotation": req.annotation, "time": r[0], "timeEnd": r[1], "isRegion": r[0] != r[1],
                        "title": r[2], "text": r[3], "tags": ["job", r[5]]}))
        .collect();
    Ok(Json(Value::Array(list)))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(time: i64, cpu: Option<f64>) -> HistoryRow {
        HistoryRow {
            time,
            host: "t".into(),
            seq: 0,
            cpu_usage_percent: cpu,
            load_1m: None,
            load_5m: None,
            load_15m: None,
            memory_available_mb: None,
            memory_total_mb: None,
            memory_used_percent: None,
            swap_used_mb: None,
            cpu_temp_c: None,
            disk_read_sectors_rate: None,
            disk_write_sectors_rate: None,
            disk_read_bytes_rate: None,
            disk_write_bytes_rate: None,
            network_rx_bytes_rate: None,
            network_tx_bytes_rate: None,
        }
    }

    #[test]
    fn times_iso_or_ms() {
        assert_eq!(parse_time("2016-10-31T06:33:44.866Z"), Some(1477895624866));
        assert_eq!(parse_time("1477895624866"), Some(1477895624866));
        assert_eq!(parse_time("yesterday"), None);
    }

    #[test]
    fn raw_points_with_nulls_for_gaps() {
        let rows = [
            row(0, Some(1.0)),
            row(15_000, None),
            row(30_000, Some(3.0)),
            row(90_000, Some(4.0)),
        ];
        let p = datapoints(&rows, "cpu_usage_percent", 0, 15_000, Agg::Avg, 15_000);
        assert_eq!(
            p,
            vec![
                (Some(1.0), 0),
                (None, 15_000),
                (Some(3.0), 30_000),
                (None, 45_000),
                (Some(4.0), 90_000)
            ]
        );
    }

    #[test]
    fn downsampling_averages_or_keeps_the_max_and_fills_empty_buckets() {
        let rows: Vec<_> = (0..8)
            .map(|i| row(i * 15_000, Some(i as f64)))
            .chain([row(180_000, Some(100.0))])
            .collect();
        let avg = datapoints(&rows, "cpu_usage_percent", 0, 60_000, Agg::Avg, 15_000);
        assert_eq!(
            avg,
            vec![
                (Some(1.5), 0),
                (Some(5.5), 60_000),
                (None, 120_000),
                (Some(100.0), 180_000)
            ]
        );
        let max = datapoints(&rows, "cpu_usage_percent", 0, 60_000, Agg::Max, 15_000);
        assert_eq!(max[0], (Some(3.0), 0));
        assert_eq!(max[1], (Some(7.0), 60_000));
    }
}
