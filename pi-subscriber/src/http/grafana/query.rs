//! `POST /grafana/query`: time series and tables of the history, bounded whatever the panel
//! asks: at most [`MAX_TARGETS`] targets, [`MAX_SERIES`] series (targets × hosts),
//! [`MAX_DATA_POINTS`] points per series and [`MAX_TOTAL_POINTS`] in one answer; times between
//! 1970 and 2200. Anything else is a 400 that says which limit. Every metric target reads
//! the tiered store as `/series` does ([`crate::tsdb::SeriesQuery`]): raw samples (with a
//! `null` in each gap) while a bucket is no wider than the host's sampling interval, buckets
//! of the asked summary beyond. The store reads run off the async workers (`spawn_blocking`).

use axum::extract::rejection::JsonRejection;
use axum::extract::State;
use axum::Json;
use broker::JobEvent;
use serde::Serialize;
use serde_json::{json, Value};

use super::request::{
    integer, target_hosts, QueryRequest, Target, MAX_DATA_POINTS, MAX_INTERVAL_MS, MAX_SERIES,
    MAX_TARGETS, MAX_TOTAL_POINTS,
};
use super::{host_names, job_rows, ALERT_EVENTS, JOB_EVENTS};
use crate::http::state::AppState;
use crate::registry;
use crate::tsdb::{Agg, SeriesQuery};
use daemon_kit::http_error::AppError;

/// One element of the answer.
#[derive(Debug, Serialize)]
#[serde(untagged)]
pub(super) enum Answer {
    Series {
        target: String,
        datapoints: Vec<(Option<f64>, i64)>,
    },
    Table {
        #[serde(rename = "type")]
        kind: &'static str,
        columns: Value,
        rows: Vec<(i64, String, Option<f64>)>,
    },
    /// Job runs, alert ranges or top processes: a table already built as JSON.
    Jobs(Value),
}

/// A target, checked: what the blocking part needs, in the order asked.
enum Plan {
    /// The job-runs table, already built (bounded by the events kept).
    Jobs(Value),
    /// The processes behind each host's CPU (or memory) peak in the range.
    Top { hosts: Vec<String>, memory: bool },
    /// A metric, from the tiered store.
    Series {
        /// The name the target asked for, which names the answer.
        name: String,
        metric: &'static registry::Metric,
        /// From the registry's unit to the asked name's (`disk_read_sectors_rate`: 1/512).
        factor: f64,
        hosts: Vec<String>,
        /// `Some("")`: the host-wide total; `None`: every label.
        label: Option<String>,
        agg: Agg,
        table: bool,
    },
}

/// The sampling interval assumed of a host whose snapshots do not say theirs (`interval_s`).
const ASSUMED_INTERVAL_MS: i64 = 15_000;

fn too_many_points() -> AppError {
    AppError::BadRequest(format!(
        "the answer would hold more than {MAX_TOTAL_POINTS} points; narrow the range, lower maxDataPoints or raise intervalMs"
    ))
}

/// The series the plans read, with `label: "*"` expanded to every label each host has, checked
/// against [`MAX_SERIES`] and [`MAX_TOTAL_POINTS`] before a row is read. Blocking (the
/// history's lock).
fn check_expanded(state: &AppState, plans: &[Plan], per_series: usize) -> Result<(), AppError> {
    let mut series = 0usize;
    for plan in plans {
        series = series.saturating_add(match plan {
            Plan::Jobs(_) | Plan::Top { .. } => 0,
            Plan::Series {
                metric,
                hosts,
                label,
                ..
            } => {
                let mut n = 0usize;
                for host in hosts {
                    // A label named, or the total, is one series (or none): as the first check counted.
                    n = n.saturating_add(match label {
                        Some(_) => 1,
                        None => state.store.series_count(host, metric.name, None)?,
                    });
                }
                n
            }
        });
    }
    if series > MAX_SERIES {
        return Err(AppError::BadRequest(format!(
            "{series} series (targets × hosts × labels) in one query; at most {MAX_SERIES}"
        )));
    }
    if series.saturating_mul(per_series) > MAX_TOTAL_POINTS {
        return Err(AppError::BadRequest(format!(
            "{series} series × {per_series} points is more than {MAX_TOTAL_POINTS} points; narrow the range, lower maxDataPoints or raise intervalMs"
        )));
    }
    Ok(())
}

/// Reads the history and builds the series: blocking, run it off the async workers.
fn answer(
    state: &AppState,
    plans: Vec<Plan>,
    from: i64,
    to: i64,
    bucket: i64,
    per_series: usize,
) -> Result<Vec<Answer>, AppError> {
    check_expanded(state, &plans, per_series)?;
    let mut out = Vec::new();
    let mut total = 0usize;
    for plan in plans {
        match plan {
            Plan::Jobs(rows) => out.push(Answer::Jobs(rows)),
            Plan::Top { hosts, memory } => out.push(Answer::Jobs(super::top::table(
                state, &hosts, memory, from, to,
            )?)),
            Plan::Series {
                name,
                metric,
                factor,
                hosts,
                label,
                agg,
                table,
            } => {
                let q = SeriesPlan {
                    name: &name,
                    metric,
                    factor,
                    label: label.as_deref(),
                    agg,
                    table,
                    from,
                    to,
                    bucket,
                };
                series_answer(state, &q, &hosts, &mut total, &mut out)?;
            }
        }
    }
    Ok(out)
}

pub(super) async fn query(
    State(state): State<AppState>,
    req: Result<Json<QueryRequest>, JsonRejection>,
) -> Result<Json<Vec<Answer>>, AppError> {
    let Json(req) = req?;
    let (from, to) = req.range.check()?;
    let points = integer(
        "maxDataPoints",
        req.max_data_points.as_ref(),
        1000,
        1,
        MAX_DATA_POINTS,
        "",
    )?;
    let interval = integer(
        "intervalMs",
        req.interval_ms.as_ref(),
        0,
        0,
        MAX_INTERVAL_MS,
        " (366 days)",
    )?;
    let targets: Vec<&Target> = req.targets.iter().filter(|t| !t.hide).collect();
    if targets.len() > MAX_TARGETS {
        return Err(AppError::BadRequest(format!(
            "{} targets in one query; at most {MAX_TARGETS}",
            targets.len()
        )));
    }
    // Both below 2^43 and `points` at least 1: no overflow.
    let bucket = ((to - from) / points as i64).max(interval as i64).max(1);
    let all = host_names(&state)?;
    let mut plans = Vec::new();
    for target in targets {
        let Some(metric) = target.target.as_deref().filter(|m| !m.is_empty()) else {
            continue;
        };
        let hosts = target_hosts(&target.payload, &req.adhoc_filters, &all);
        if metric == ALERT_EVENTS {
            let now = crate::clock::unix_ms_now();
            let rows = state
                .alerts
                .as_ref()
                .map(|a| a.ranges(&hosts, from, to, now))
                .unwrap_or_default();
            plans.push(Plan::Jobs(region_table(rows)));
            continue;
        }
        if metric == JOB_EVENTS {
            let events: Vec<JobEvent> =
                state.store.events(|host| hosts.iter().any(|h| h == host))?;
            plans.push(Plan::Jobs(region_table(job_rows(
                &events, &hosts, from, to,
            ))));
            continue;
        }
        if metric == super::top::TOP_PROCESSES {
            let memory = super::top::by_memory(&target.payload)?;
            plans.push(Plan::Top { hosts, memory });
            continue;
        }
        let table = target.kind.as_deref() == Some("table") || target.payload["format"] == "table";
        let Some((m, factor)) = super::metric(metric) else {
            let shown: String = metric.chars().take(64).collect();
            return Err(AppError::BadRequest(format!(
                "unknown metric {shown:?}; POST /metrics lists them"
            )));
        };
        let label = target.payload["label"].as_str().filter(|l| !l.is_empty());
        let agg_name = target.payload["agg"].as_str().unwrap_or("avg");
        let agg = serde_json::from_value(Value::from(agg_name)).map_err(|_| {
            let shown: String = agg_name.chars().take(64).collect();
            AppError::BadRequest(format!("agg {shown:?} is not one of avg, min, max, last"))
        })?;
        plans.push(Plan::Series {
            name: metric.to_owned(),
            metric: m,
            factor,
            hosts,
            label: match label {
                Some("*") => None,
                Some(l) => Some(l.chars().take(256).collect()),
                None => Some(String::new()),
            },
            agg,
            table,
        });
    }
    let series: usize = plans
        .iter()
        .map(|p| match p {
            Plan::Series { hosts, .. } => hosts.len(),
            Plan::Jobs(_) | Plan::Top { .. } => 0,
        })
        .sum();
    if series > MAX_SERIES {
        return Err(AppError::BadRequest(format!(
            "{series} series (targets × hosts) in one query; at most {MAX_SERIES}"
        )));
    }
    let per_series = ((to - from) / bucket).saturating_add(1).min(points as i64) as usize;
    if series.saturating_mul(per_series) > MAX_TOTAL_POINTS {
        return Err(AppError::BadRequest(format!(
            "{series} series × {per_series} points is more than {MAX_TOTAL_POINTS} points; narrow the range, lower maxDataPoints or raise intervalMs"
        )));
    }
    let blocking = state.clone();
    let built =
        tokio::task::spawn_blocking(move || answer(&blocking, plans, from, to, bucket, per_series))
            .await
            .map_err(|e| AppError::Internal(format!("grafana query task: {e}")))??;
    Ok(Json(built))
}

/// Job runs or alert ranges as the table Grafana turns into annotation regions.
fn region_table(rows: Vec<Value>) -> Value {
    json!({
        "type": "table",
        "columns": [
            {"text": "time", "type": "time"}, {"text": "timeEnd", "type": "time"},
            {"text": "title", "type": "string"}, {"text": "text", "type": "string"},
            {"text": "tags", "type": "string"}, {"text": "host", "type": "string"}
        ],
        "rows": rows,
    })
}

/// One tiered-store target, checked.
struct SeriesPlan<'a> {
    name: &'a str,
    metric: &'static registry::Metric,
    factor: f64,
    label: Option<&'a str>,
    agg: Agg,
    table: bool,
    from: i64,
    to: i64,
    bucket: i64,
}

/// The sampling interval of `host`, as its newest snapshot says (`interval_s`), between 1 s
/// and 1 h (as the ingest rate bound takes it).
fn interval_ms(state: &AppState, host: &str) -> Result<i64, AppError> {
    let said = state.store.latest(host)?.map(|l| l.latest.interval_s);
    Ok(said
        .filter(|s| s.is_finite() && *s > 0.0)
        .map_or(ASSUMED_INTERVAL_MS, |s| {
            (s * 1000.0).clamp(1000.0, 3_600_000.0) as i64
        }))
}

/// A metric's series of each host, from the finest tier that covers the range: raw samples
/// while `bucket` is no wider than the host's sampling interval, else buckets of `bucket` ms
/// with the asked summary.
fn series_answer(
    state: &AppState,
    p: &SeriesPlan<'_>,
    hosts: &[String],
    total: &mut usize,
    out: &mut Vec<Answer>,
) -> Result<(), AppError> {
    let now = crate::clock::unix_ms_now();
    let mut table_rows = Vec::new();
    for host in hosts {
        let q = SeriesQuery {
            host,
            metric: p.metric,
            label: p.label,
            from_ms: p.from,
            to_ms: p.to,
            step_ms: (p.bucket > interval_ms(state, host)?).then_some(p.bucket),
            agg: p.agg,
        };
        let (_, series) = state
            .store
            .series(&q, now)
            .map_err(crate::http::state::history_error)?;
        for s in series {
            *total = total.saturating_add(s.points.len());
            if *total > MAX_TOTAL_POINTS {
                return Err(too_many_points());
            }
            let label = s.labels.values().next().cloned();
            let name = match &label {
                Some(l) => format!("{} {host} {l}", p.name),
                None => format!("{} {host}", p.name),
            };
            let points = s
                .points
                .into_iter()
                .map(|(t, v)| (t, v.map(|v| v * p.factor)));
            if p.table {
                let who = match &label {
                    Some(l) => format!("{host} {l}"),
                    None => host.clone(),
                };
                table_rows.extend(points.map(|(t, v)| (t, who.clone(), v)));
            } else {
                out.push(Answer::Series {
                    target: name,
                    datapoints: points.map(|(t, v)| (v, t)).collect(),
                });
            }
        }
    }
    if p.table {
        out.push(Answer::Table {
            kind: "table",
            columns: json!([{"text": "time", "type": "time"}, {"text": "host", "type": "string"}, {"text": p.name, "type": "number"}]),
            rows: table_rows,
        });
    }
    Ok(())
}
