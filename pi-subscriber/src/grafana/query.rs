//! `POST /grafana/query`: time series and tables of the history, bounded whatever the panel
//! asks: at most [`MAX_TARGETS`] targets, [`MAX_SERIES`] series (targets × hosts),
//! [`MAX_DATA_POINTS`] points per series and [`MAX_TOTAL_POINTS`] in one answer; times between
//! 1970 and 2200. Anything else is a 400 that says which limit. The store reads and the
//! downsampling run off the async workers (`spawn_blocking`).

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
use super::{datapoints, host_names, job_rows, Agg, ALERT_EVENTS, JOB_EVENTS, METRICS};
use crate::http::{AppError, AppState};
use crate::registry;
use crate::tsdb::{Agg as TierAgg, SeriesQuery};
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
    /// Job runs, as rows of JSON values.
    Jobs(Value),
}

/// A target, checked: what the blocking part needs, in the order asked.
enum Plan {
    /// The job-runs table, already built (bounded by the events kept).
    Jobs(Value),
    Metric {
        metric: String,
        hosts: Vec<String>,
        agg: Agg,
        table: bool,
    },
    /// From the tiered store (any registry metric, a label, `min`/`last`, or a range longer
    /// than a day).
    Series {
        metric: &'static registry::Metric,
        hosts: Vec<String>,
        /// `Some("")`: the host-wide total; `None`: every label.
        label: Option<String>,
        agg: TierAgg,
        table: bool,
    },
}

/// A range longer than this reads the tiered store (buckets beyond the raw tier), not the
/// raw rows.
const RAW_ROWS_MS: i64 = 24 * 3_600_000;

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
            Plan::Jobs(_) => 0,
            Plan::Metric { hosts, .. } => hosts.len(),
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
        let (metric, hosts, agg, table) = match plan {
            Plan::Jobs(rows) => {
                out.push(Answer::Jobs(rows));
                continue;
            }
            Plan::Series {
                metric,
                hosts,
                label,
                agg,
                table,
            } => {
                let q = SeriesPlan {
                    metric,
                    label: label.as_deref(),
                    agg,
                    table,
                    from,
                    to,
                    bucket,
                };
                series_answer(state, &q, &hosts, &mut total, &mut out)?;
                continue;
            }
            Plan::Metric {
                metric,
                hosts,
                agg,
                table,
            } => (metric, hosts, agg, table),
        };
        let mut table_rows = Vec::new();
        for host in &hosts {
            let rows = state
                .store
                .history(host, from, to)
                .map_err(crate::http::history_error)?;
            let native = super::datapoints::native_interval_ms(&rows);
            let series = datapoints(&rows, &metric, from, bucket, agg, native);
            drop(rows);
            total = total.saturating_add(series.len());
            if total > MAX_TOTAL_POINTS {
                return Err(too_many_points());
            }
            if table {
                table_rows.extend(series.into_iter().map(|(v, t)| (t, host.clone(), v)));
            } else {
                out.push(Answer::Series {
                    target: format!("{metric} {host}"),
                    datapoints: series,
                });
            }
        }
        if table {
            out.push(Answer::Table {
                kind: "table",
                columns: json!([{"text": "time", "type": "time"}, {"text": "host", "type": "string"}, {"text": metric, "type": "number"}]),
                rows: table_rows,
            });
        }
    }
    Ok(out)
}

pub(super) async fn query(
    State(state): State<AppState>,
    alerts: Option<axum::Extension<crate::alerts::AlertsHandle>>,
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
            let now = crate::ingest::unix_ms_now();
            let rows = alerts
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
        let table = target.kind.as_deref() == Some("table") || target.payload["format"] == "table";
        let legacy = METRICS.iter().any(|(m, _)| *m == metric);
        let label = target.payload["label"].as_str().filter(|l| !l.is_empty());
        let agg_name = target.payload["agg"].as_str().unwrap_or("avg");
        let long = to - from > RAW_ROWS_MS;
        if let Some(m) = registry::metric(metric) {
            if !legacy || label.is_some() || !matches!(agg_name, "avg" | "max") || long {
                let agg = serde_json::from_value(Value::from(agg_name)).map_err(|_| {
                    AppError::BadRequest(format!(
                        "agg {agg_name:?} is not one of avg, min, max, last"
                    ))
                })?;
                plans.push(Plan::Series {
                    metric: m,
                    hosts,
                    label: match label {
                        Some("*") => None,
                        Some(l) => Some(l.chars().take(256).collect()),
                        None => Some(String::new()),
                    },
                    agg,
                    table,
                });
                continue;
            }
        }
        if !legacy {
            return Err(AppError::BadRequest(format!(
                "unknown metric {metric:?}; POST /metrics lists them"
            )));
        }
        let agg = if agg_name == "max" {
            Agg::Max
        } else {
            Agg::Avg
        };
        plans.push(Plan::Metric {
            metric: metric.to_owned(),
            hosts,
            agg,
            table,
        });
    }
    let series: usize = plans
        .iter()
        .map(|p| match p {
            Plan::Metric { hosts, .. } | Plan::Series { hosts, .. } => hosts.len(),
            Plan::Jobs(_) => 0,
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
    metric: &'static registry::Metric,
    label: Option<&'a str>,
    agg: TierAgg,
    table: bool,
    from: i64,
    to: i64,
    bucket: i64,
}

/// A registry metric's series of each host, from the finest tier that covers the range:
/// raw samples for a fine bucket, else buckets of `bucket` ms with the asked summary.
fn series_answer(
    state: &AppState,
    p: &SeriesPlan<'_>,
    hosts: &[String],
    total: &mut usize,
    out: &mut Vec<Answer>,
) -> Result<(), AppError> {
    let now = crate::ingest::unix_ms_now();
    let mut table_rows = Vec::new();
    for host in hosts {
        let q = SeriesQuery {
            host,
            metric: p.metric,
            label: p.label,
            from_ms: p.from,
            to_ms: p.to,
            step_ms: (p.bucket > 15_000).then_some(p.bucket),
            agg: p.agg,
        };
        let (_, series) = state
            .store
            .series(&q, now)
            .map_err(crate::http::history_error)?;
        for s in series {
            *total = total.saturating_add(s.points.len());
            if *total > MAX_TOTAL_POINTS {
                return Err(too_many_points());
            }
            let label = s.labels.values().next().cloned();
            let name = match &label {
                Some(l) => format!("{} {host} {l}", p.metric.name),
                None => format!("{} {host}", p.metric.name),
            };
            if p.table {
                let who = match &label {
                    Some(l) => format!("{host} {l}"),
                    None => host.clone(),
                };
                table_rows.extend(s.points.into_iter().map(|(t, v)| (t, who.clone(), v)));
            } else {
                out.push(Answer::Series {
                    target: name,
                    datapoints: s.points.into_iter().map(|(t, v)| (v, t)).collect(),
                });
            }
        }
    }
    if p.table {
        out.push(Answer::Table {
            kind: "table",
            columns: json!([{"text": "time", "type": "time"}, {"text": "host", "type": "string"}, {"text": p.metric.name, "type": "number"}]),
            rows: table_rows,
        });
    }
    Ok(())
}
