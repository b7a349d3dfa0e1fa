//! `/metrics` (the seed's newest snapshot with its rates), `/hosts`, `DELETE /hosts/{host}`.

use axum::extract::rejection::QueryRejection;
use axum::extract::{Query, State};
use axum::http::header;
use axum::Json;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use tokio::time::Instant;

use super::state::AppState;
use crate::store::HostState;
use daemon_kit::http_error::AppError;

#[derive(Debug, Deserialize)]
pub(super) struct HostQuery {
    host: Option<String>,
}

/// The seed's `/metrics`: the latest snapshot with rate fields added beside the counters,
/// and every registry counter's value under `rates`.
pub(super) async fn metrics(
    State(state): State<AppState>,
    query: Result<Query<HostQuery>, QueryRejection>,
) -> Result<Json<Value>, AppError> {
    let Query(query) = query?;
    let now = Instant::now();
    let host = match query.host {
        Some(h) => h,
        None => state
            .store
            .default_host(&state.default_host)?
            .ok_or_else(|| AppError::NotReady("no data yet from any host".into()))?,
    };
    let Some(hs) = state.store.host(&host)? else {
        return Err(AppError::NotFound(format!("unknown host {host:?}")));
    };
    let Some(latest) = &hs.latest else {
        return Err(AppError::NotReady(format!(
            "no snapshot from {host:?} since start-up"
        )));
    };
    let mut body =
        serde_json::to_value(latest.as_ref()).map_err(|e| AppError::Internal(e.to_string()))?;
    crate::seed::add_rates(&mut body, hs.rates.as_deref());
    if let Some(obj) = body.as_object_mut() {
        obj.insert("rates".into(), rates(latest, hs.rates.as_deref()));
        obj.insert("stale".into(), json!(hs.is_stale(now)));
        obj.insert("max_age_s".into(), json!(hs.max_age.as_secs_f64()));
        obj.insert(
            "received_ts".into(),
            json!(hs.last_received_ms.map(|ms| ms / 1000)),
        );
        obj.insert("clock_skew_s".into(), json!(hs.clock_skew_s));
        obj.insert("status".into(), json!(hs.status));
    }
    Ok(Json(body))
}

/// Every registry counter's value at ingest, by its registry name: `{"value": total,
/// "<label key>": {"<label>": value}}`, `null` where the rule gave none.
fn rates(latest: &broker::Snapshot, rates: Option<&crate::rates::Derived>) -> Value {
    let mut out = serde_json::Map::new();
    for (m, metric) in crate::registry::METRICS.iter().enumerate() {
        if !metric.kind.is_counter() {
            continue;
        }
        let rate = |label: &str| json!(rates.and_then(|r| r.by_index(m, label)));
        let mut entry = serde_json::Map::new();
        entry.insert("value".into(), rate(""));
        if let Some(key) = metric.label {
            let labels: serde_json::Map<String, Value> = metric
                .values(latest)
                .into_iter()
                .filter(|(label, _)| !label.is_empty())
                .map(|(label, _)| {
                    let v = rate(&label);
                    (label, v)
                })
                .collect();
            entry.insert(key.as_str().into(), Value::Object(labels));
        }
        out.insert(metric.name.into(), Value::Object(entry));
    }
    Value::Object(out)
}

#[derive(Serialize)]
pub(super) struct HostSummary {
    pub(super) host: String,
    pub(super) last_seq: Option<u64>,
    /// When the newest sample arrived, Pi clock, Unix seconds.
    pub(super) last_seen_ts: Option<i64>,
    pub(super) stale: bool,
    /// `online` / `offline` from MQTT.
    pub(super) status: Option<String>,
    /// Samples in the history's raw tier.
    pub(super) history_rows: u64,
    pub(super) clock_skew_s: Option<f64>,
    /// How long it may stay silent before it is stale: `health.max_age`, else 3 × its
    /// sampling interval.
    pub(super) max_age_s: f64,
}

pub(super) fn summaries(hosts: Vec<(String, HostState)>, now: Instant) -> Vec<HostSummary> {
    hosts
        .into_iter()
        .map(|(name, hs)| HostSummary {
            stale: hs.is_stale(now),
            max_age_s: hs.max_age.as_secs_f64(),
            last_seq: hs.latest.as_ref().map(|s| s.seq),
            last_seen_ts: hs.last_received_ms.map(|ms| ms / 1000),
            status: hs.status,
            history_rows: hs.samples,
            clock_skew_s: hs.clock_skew_s,
            host: name,
        })
        .collect()
}

pub(super) async fn hosts(
    State(state): State<AppState>,
) -> Result<Json<Vec<HostSummary>>, AppError> {
    let hosts = state.store.hosts()?;
    Ok(Json(summaries(hosts, Instant::now())))
}

/// Mutating endpoints answer loopback clients, or anyone with `Authorization: Bearer
/// <http.admin_token>`.
fn check_admin(state: &AppState, request: &axum::extract::Request) -> Result<(), AppError> {
    let bearer = request
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "));
    if let (Some(token), Some(given)) = (&state.admin_token, bearer) {
        if constant_time_eq(token.as_bytes(), given.trim().as_bytes()) {
            return Ok(());
        }
        return Err(AppError::Unauthorized("wrong admin token".into()));
    }
    use axum::extract::connect_info::{ConnectInfo, MockConnectInfo};
    let extensions = request.extensions();
    let peer = extensions
        .get::<ConnectInfo<std::net::SocketAddr>>()
        .map(|c| c.0.ip())
        .or_else(|| {
            extensions
                .get::<MockConnectInfo<std::net::SocketAddr>>()
                .map(|c| c.0.ip())
        });
    if peer.is_some_and(|ip| ip.is_loopback()) {
        return Ok(());
    }
    match state.admin_token {
        Some(_) => Err(AppError::Unauthorized(
            "this endpoint needs Authorization: Bearer <http.admin_token>".into(),
        )),
        None => Err(AppError::Forbidden(
            "this endpoint answers loopback clients only; set http.admin_token to use it from another machine".into(),
        )),
    }
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// `DELETE /hosts/{host}`: forgets a host now (state, history file, job events).
pub(super) async fn forget_host(
    State(state): State<AppState>,
    axum::extract::Path(host): axum::extract::Path<String>,
    request: axum::extract::Request,
) -> Result<Json<Value>, AppError> {
    check_admin(&state, &request)?;
    broker::validate_host_id(&host)
        .map_err(|e| AppError::BadRequest(format!("host {host:?}: {e}")))?;
    let store = state.store.clone();
    let name = host.clone();
    let forgot = tokio::task::spawn_blocking(move || store.forget(&name))
        .await
        .map_err(|e| AppError::Internal(e.to_string()))?
        .map_err(|e| AppError::Internal(e.to_string()))?;
    if !forgot {
        return Err(AppError::NotFound(format!("unknown host {host:?}")));
    }
    tracing::info!(%host, "host forgotten on request");
    Ok(Json(json!({ "forgotten": host })))
}
