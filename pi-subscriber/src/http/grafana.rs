//! The simPod JSON datasource contract (grafana-json-datasource), served under `/grafana` so the
//! datasource URL is `http://pi:9100/grafana`: `GET /`, `POST /metrics`,
//! `POST /metric-payload-options`, `POST /query`, `POST /variable`, `POST /tag-keys`,
//! `POST /tag-values`, and the older `POST /annotations`. Unknown request fields are ignored.

use axum::extract::rejection::JsonRejection;
use axum::extract::State;
use axum::routing::{get, post};
use axum::{Json, Router};
use broker::JobEvent;
use serde::Deserialize;
use serde_json::{json, Value};

use crate::http::state::AppState;
use crate::registry;
use daemon_kit::http_error::AppError;

mod query;
mod request;
mod top;

pub use request::{parse_time, MAX_DATA_POINTS, MAX_SERIES, MAX_TARGETS, MAX_TOTAL_POINTS};

/// The metric a target may name, and the factor from its unit to the name's: every registry
/// metric (1), and the seed's `/history` names that are not one
/// ([`crate::seed::history::alias`]: `disk_read_sectors_rate` is `disk_read_bytes_rate` ÷ 512).
pub fn metric(name: &str) -> Option<(&'static registry::Metric, f64)> {
    registry::metric(name)
        .map(|m| (m, 1.0))
        .or_else(|| crate::seed::history::alias(name))
}

/// Every name a target may ask for, with its label for a metric list: the registry's, then
/// the seed's aliases.
fn metric_names() -> impl Iterator<Item = (&'static str, String)> {
    registry::METRICS
        .iter()
        .map(|m| {
            let label = match m.unit {
                "" => m.title.to_owned(),
                unit => format!("{} ({unit})", m.title),
            };
            (m.name, label)
        })
        .chain(crate::seed::history::aliases())
}

/// The summaries a panel may ask of a bucket (`max` keeps spikes, `min` dips).
fn agg_options() -> Value {
    json!([{"label": "average", "value": "avg"}, {"label": "max (keeps spikes)", "value": "max"},
           {"label": "min", "value": "min"}, {"label": "last", "value": "last"}])
}

/// The pseudo-metric whose rows are job runs, for annotations (time → timeEnd ranges).
pub const JOB_EVENTS: &str = "job_events";
/// The pseudo-metric whose rows are alert ranges (first firing → resolved, or now).
pub const ALERT_EVENTS: &str = "alert_events";

/// `GET /grafana` and `GET /grafana/`: the datasource's "Save & test".
pub async fn save_and_test() -> &'static str {
    "OK: server-analytics simPod JSON datasource"
}

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/", get(save_and_test))
        .route("/metrics", post(metrics))
        .route("/metric-payload-options", post(payload_options))
        .route("/query", post(query::query))
        .route("/variable", post(variable))
        .route("/tag-keys", post(tag_keys))
        .route("/tag-values", post(tag_values))
        .route("/annotations", post(annotations))
}

fn host_names(state: &AppState) -> Result<Vec<String>, AppError> {
    Ok(state.store.host_names()?)
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
    let payloads = |label: Option<&str>| {
        let mut p = vec![
            json!({"label": "Host", "name": "host", "type": "multi-select", "placeholder": "all hosts", "options": hosts}),
            json!({"label": "Downsampling", "name": "agg", "type": "select", "placeholder": "avg", "options": agg_options()}),
        ];
        if let Some(key) = label {
            p.push(json!({"label": key, "name": "label", "type": "input",
                          "placeholder": format!("total; a {key} name, or * for each")}));
        }
        Value::Array(p)
    };
    let mut list: Vec<Value> = metric_names()
        .map(|(value, label)| {
            let key = metric(value).and_then(|(m, _)| m.label).map(|k| k.as_str());
            json!({"label": label, "value": value, "payloads": payloads(key)})
        })
        .collect();
    list.push(json!({"label": "Alerts (annotations, table)", "value": ALERT_EVENTS,
                     "payloads": [{"label": "Host", "name": "host", "type": "multi-select", "options": host_options(&state)?}]}));
    list.push(json!({"label": "Job runs (annotations, table)", "value": JOB_EVENTS,
                     "payloads": [{"label": "Host", "name": "host", "type": "multi-select", "options": host_options(&state)?}]}));
    list.push(json!({"label": "Top processes at the range's peak (table)", "value": top::TOP_PROCESSES,
                     "payloads": [{"label": "Host", "name": "host", "type": "multi-select", "options": host_options(&state)?},
                                  {"label": "By", "name": "by", "type": "select",
                                   "options": [{"label": "CPU", "value": "cpu"}, {"label": "memory", "value": "memory"}]}]}));
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
        "agg" => agg_options(),
        _ => json!([]),
    }))
}

pub(crate) fn job_rows(events: &[JobEvent], hosts: &[String], from: i64, to: i64) -> Vec<Value> {
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

#[derive(Debug, Deserialize)]
struct VariableRequest {
    #[serde(default)]
    payload: Value,
}

/// Label values a `labels` variable lists at most (a snapshot holds at most a few hundred).
pub const MAX_LABEL_VALUES: usize = 1000;

/// The label values (devices, interfaces, cores, sensors, mounts) of `metric` in the newest
/// sample of `host`, or of every host when `host` is empty or `*`; sorted, unique.
fn label_values(state: &AppState, name: &str, host: &str) -> Result<Vec<String>, AppError> {
    let shown: String = name.chars().take(64).collect();
    let (m, _) =
        metric(name).ok_or_else(|| AppError::BadRequest(format!("unknown metric {shown:?}")))?;
    if m.label.is_none() {
        return Err(AppError::BadRequest(format!(
            "metric {shown:?} has no label: it is one value per host"
        )));
    }
    let hosts = match host {
        "" | "*" => state.store.host_names()?,
        h => vec![crate::http::state::known_host(state, Some(h.to_owned()))?],
    };
    let mut values = std::collections::BTreeSet::new();
    for h in hosts {
        if let Some(pair) = state.store.latest(&h)? {
            values.extend(
                m.values(&pair.latest)
                    .into_iter()
                    .map(|(label, _)| label)
                    .filter(|l| !l.is_empty()),
            );
        }
    }
    Ok(values.into_iter().take(MAX_LABEL_VALUES).collect())
}

/// `hosts` (the default), `metrics`, or `labels` (with `metric` and an optional `host`: the
/// label values of a per-device metric, for a `$device` variable), as
/// `[{"__text", "__value"}]`.
async fn variable(
    State(state): State<AppState>,
    req: Result<Json<VariableRequest>, JsonRejection>,
) -> Result<Json<Value>, AppError> {
    let Json(req) = req?;
    let what = req.payload["target"].as_str().unwrap_or("hosts");
    let values: Vec<String> = match what {
        "metrics" => metric_names().map(|(m, _)| m.to_owned()).collect(),
        "labels" => label_values(
            &state,
            req.payload["metric"].as_str().unwrap_or_default(),
            req.payload["host"].as_str().unwrap_or_default(),
        )?,
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
    range: request::Range,
    #[serde(default)]
    annotation: Value,
}

/// The SimpleJSON-style annotation call: job runs as start→end regions, and the regions
/// whose samples are lost for good.
async fn annotations(
    State(state): State<AppState>,
    req: Result<Json<AnnotationsRequest>, JsonRejection>,
) -> Result<Json<Value>, AppError> {
    let Json(req) = req?;
    let (from, to) = req.range.check()?;
    let all = host_names(&state)?;
    let hosts = match req.annotation["query"].as_str().filter(|q| !q.is_empty()) {
        Some(h) => vec![h.to_owned()],
        None => all,
    };
    let events: Vec<JobEvent> = state.store.events(|_| true)?;
    let mut list: Vec<Value> = job_rows(&events, &hosts, from, to)
        .into_iter()
        .map(|r| json!({"annotation": req.annotation, "time": r[0], "timeEnd": r[1], "isRegion": r[0] != r[1],
                        "title": r[2], "text": r[3], "tags": ["job", r[5]]}))
        .collect();
    // Samples lost for good, as regions: never a silent hole in a panel.
    let store = state.store.clone();
    let lost = tokio::task::spawn_blocking(move || {
        hosts
            .into_iter()
            .map(|h| Ok((store.lost(&h, from, to)?, h)))
            .collect::<Result<Vec<_>, crate::store::HistoryError>>()
    })
    .await
    .map_err(|e| AppError::Internal(e.to_string()))?
    .map_err(|e| AppError::Internal(e.to_string()))?;
    for (regions, host) in lost {
        for l in regions {
            list.push(
                json!({"annotation": req.annotation, "time": l.from_ms, "timeEnd": l.to_ms,
                "isRegion": true, "title": format!("{host}: {} samples lost", l.samples),
                "text": "no longer in the publisher's ring when the Pi asked for them",
                "tags": ["lost", host]}),
            );
        }
    }
    Ok(Json(Value::Array(list)))
}
