//! `/series/metrics` (what the registry offers) and `/series` (one metric of one host, from
//! the finest history tier that covers the range). Both read [`crate::registry::METRICS`].

use axum::extract::rejection::QueryRejection;
use axum::extract::{Query, State};
use axum::Json;
use serde::{Deserialize, Serialize};

use crate::http::state::{to_ms, AppState};
use crate::registry::{self, Kind, LabelKey, METRICS};
use crate::tsdb::{Agg, SeriesPoints, SeriesQuery, Tier};
use daemon_kit::http_error::AppError;

/// The longest `step` a query may ask for (ten years, in seconds).
const MAX_STEP_S: u64 = 10 * 366 * 86_400;
/// The range `/series` reads when `from` is not given.
const DEFAULT_RANGE_MS: i64 = 3_600_000;
/// Longest label value a query may name (what ingest accepts is shorter).
const MAX_LABEL: usize = 256;

/// One entry of `/series/metrics`.
#[derive(Debug, Serialize)]
pub struct MetricInfo {
    pub metric: &'static str,
    pub unit: &'static str,
    pub kind: Kind,
    pub title: &'static str,
    pub labels: Vec<&'static str>,
    /// Its line on the dashboard, which builds its charts from this list.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub chart: Option<registry::Chart>,
}

/// The registry, as a client sees it.
pub async fn metrics() -> Json<Vec<MetricInfo>> {
    Json(
        METRICS
            .iter()
            .map(|m| MetricInfo {
                metric: m.name,
                unit: m.unit,
                kind: m.kind,
                title: m.title,
                labels: m.label.map(|l| vec![l.as_str()]).unwrap_or_default(),
                chart: m.chart,
            })
            .collect(),
    )
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SeriesParams {
    host: Option<String>,
    metric: String,
    device: Option<String>,
    interface: Option<String>,
    core: Option<String>,
    sensor: Option<String>,
    mount: Option<String>,
    unit: Option<String>,
    /// Epoch milliseconds or seconds (values below 10^11 are taken as seconds).
    from: Option<i64>,
    to: Option<i64>,
    /// Seconds.
    step: Option<u64>,
    agg: Option<Agg>,
}

/// The answer of `/series`.
#[derive(Debug, Serialize)]
pub struct SeriesAnswer {
    pub tier: Tier,
    pub series: Vec<SeriesPoints>,
    /// The host's regions in the range whose samples are lost for good (older than the
    /// publisher's ring when a backfill asked): the dashboard marks them.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub lost: Vec<crate::tsdb::Lost>,
}

impl SeriesParams {
    /// The one label the query names, checked against the metric's label key.
    fn label(&self, metric: &registry::Metric) -> Result<Option<String>, AppError> {
        let given: Vec<(LabelKey, &String)> = [
            (LabelKey::Device, &self.device),
            (LabelKey::Interface, &self.interface),
            (LabelKey::Core, &self.core),
            (LabelKey::Sensor, &self.sensor),
            (LabelKey::Mount, &self.mount),
            (LabelKey::Unit, &self.unit),
        ]
        .into_iter()
        .filter_map(|(k, v)| Some((k, v.as_ref()?)))
        .collect();
        match given.as_slice() {
            [] => Ok(None),
            [(key, value)] => {
                if metric.label != Some(*key) {
                    return Err(AppError::BadRequest(format!(
                        "metric {:?} has no {:?} label",
                        metric.name,
                        key.as_str()
                    )));
                }
                if value.len() > MAX_LABEL {
                    return Err(AppError::BadRequest(format!(
                        "{} longer than {MAX_LABEL} bytes",
                        key.as_str()
                    )));
                }
                Ok(Some((*value).clone()))
            }
            _ => Err(AppError::BadRequest("at most one label per query".into())),
        }
    }
}

/// `GET /series?host=H&metric=M[&device=D…]&from=MS&to=MS[&step=S][&agg=avg|min|max|last]`.
pub async fn series(
    State(state): State<AppState>,
    params: Result<Query<SeriesParams>, QueryRejection>,
) -> Result<Json<SeriesAnswer>, AppError> {
    let Query(p) = params?;
    let metric = registry::metric(&p.metric).ok_or_else(|| {
        AppError::NotFound(format!(
            "unknown metric {:?}; GET /series/metrics lists them",
            truncate(&p.metric)
        ))
    })?;
    let label = p.label(metric)?;
    let now_ms = crate::clock::unix_ms_now();
    let to = p.to.map_or(now_ms, to_ms);
    let from = p.from.map_or(to.saturating_sub(DEFAULT_RANGE_MS), to_ms);
    if from > to {
        return Err(AppError::BadRequest(format!(
            "from ({from}) is after to ({to})"
        )));
    }
    let step_ms = match p.step {
        Some(0) => return Err(AppError::BadRequest("step must be at least 1 s".into())),
        Some(s) if s > MAX_STEP_S => {
            return Err(AppError::BadRequest(format!(
                "step longer than {MAX_STEP_S} s"
            )))
        }
        Some(s) => Some(s as i64 * 1000),
        None => None,
    };
    let host = crate::http::state::known_host(&state, p.host)?;
    let store = state.store.clone();
    let agg = p.agg.unwrap_or_default();
    let answer = tokio::task::spawn_blocking(move || {
        let q = SeriesQuery {
            host: &host,
            metric,
            label: label.as_deref(),
            from_ms: from,
            to_ms: to,
            step_ms,
            agg,
        };
        let (tier, series) = store.series(&q, now_ms)?;
        Ok((tier, series, store.lost(&host, from, to)?))
    })
    .await
    .map_err(|e| AppError::Internal(e.to_string()))?;
    match answer {
        Ok((tier, series, lost)) => Ok(Json(SeriesAnswer { tier, series, lost })),
        Err(crate::store::HistoryError::Query(crate::tsdb::QueryError::Range(why))) => {
            Err(AppError::BadRequest(why))
        }
        Err(e) => Err(AppError::Internal(e.to_string())),
    }
}

/// A client's string, cut for an error message.
fn truncate(s: &str) -> String {
    s.chars().take(64).collect()
}
