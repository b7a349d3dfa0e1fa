//! HTTP :9100: `/metrics`, `/hosts`, `/history`, `/health`, `/events`; `/series` is in
//! `series.rs`, Grafana's datasource in `grafana.rs`.

use std::sync::Arc;
use std::time::Duration;

use axum::extract::rejection::QueryRejection;
use axum::extract::{Query, State};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use tokio::time::Instant;
use tower_http::timeout::TimeoutLayer;

use crate::mqtt::{MqttState, SharedMqtt};
use crate::store::{HostState, IngestStats, SharedStore};

#[derive(Clone)]
pub struct AppState {
    pub store: SharedStore,
    /// `/prometheus`: encodes the store on each scrape.
    pub prometheus: Arc<prometheus_client::registry::Registry>,
    pub mqtt: SharedMqtt,
    pub default_host: Arc<str>,
    pub max_age: Duration,
    pub request_timeout: Duration,
    /// `http.admin_token`: lets other machines use the mutating endpoints.
    pub admin_token: Option<Arc<str>>,
}

pub use daemon_kit::http_error::AppError;

/// `/health`'s `homeassistant` counters (`None`: discovery off).
#[derive(Clone, Default)]
pub struct HomeAssistant(pub Option<crate::homeassistant::SharedHa>);

pub fn router(state: AppState) -> Router {
    let timeout = state.request_timeout;
    Router::new()
        .route("/", get(crate::assets::index))
        .route("/assets/{name}", get(crate::assets::asset))
        .route("/favicon.ico", get(crate::assets::favicon))
        .route("/metrics", get(metrics))
        .route("/hosts", get(hosts))
        .route("/hosts/{host}", axum::routing::delete(forget_host))
        .route("/history", get(history))
        .route("/series", get(crate::series::series))
        .route("/series/metrics", get(crate::series::metrics))
        .route("/health", get(health))
        .route("/events", get(events))
        .route("/alerts", get(crate::alerts::http::alerts))
        .route("/prometheus", get(prometheus))
        .nest("/grafana", crate::grafana::router())
        .route("/grafana/", get(crate::grafana::save_and_test))
        .fallback(|| async {
            AppError::NotFound(
                "no such endpoint; try /, /metrics, /hosts, /history, /series, /series/metrics, /health, /events, /alerts, /prometheus or /grafana".into(),
            )
        })
        .layer(TimeoutLayer::with_status_code(
            StatusCode::REQUEST_TIMEOUT,
            timeout,
        ))
        .with_state(state)
}

impl From<crate::store::Poisoned> for AppError {
    fn from(p: crate::store::Poisoned) -> Self {
        AppError::Internal(p.to_string())
    }
}

/// The host a query names, else the default one: `503` before any data, `404` for a host
/// the Pi does not know (its name cut to 64 characters in the message).
pub(crate) fn known_host(state: &AppState, asked: Option<String>) -> Result<String, AppError> {
    let host = match asked {
        Some(h) => h,
        None => state
            .store
            .default_host(&state.default_host)?
            .ok_or_else(|| AppError::NotReady("no data yet from any host".into()))?,
    };
    if !state.store.knows(&host)? {
        let shown: String = host.chars().take(64).collect();
        return Err(AppError::NotFound(format!("unknown host {shown:?}")));
    }
    Ok(host)
}

#[derive(Debug, Deserialize)]
struct HostQuery {
    host: Option<String>,
}

/// The seed's `/metrics`: the latest snapshot with rate fields added beside the counters.
async fn metrics(
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

#[derive(Serialize)]
struct HostSummary {
    host: String,
    last_seq: Option<u64>,
    /// When the newest sample arrived, Pi clock, Unix seconds.
    last_seen_ts: Option<i64>,
    stale: bool,
    /// `online` / `offline` from MQTT.
    status: Option<String>,
    /// Samples in the history's raw tier.
    history_rows: u64,
    clock_skew_s: Option<f64>,
    /// How long it may stay silent before it is stale: `health.max_age`, else 3 × its
    /// sampling interval.
    max_age_s: f64,
}

fn summaries(hosts: Vec<(String, HostState)>, now: Instant) -> Vec<HostSummary> {
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

async fn hosts(State(state): State<AppState>) -> Result<Json<Vec<HostSummary>>, AppError> {
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
async fn forget_host(
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

#[derive(Debug, Deserialize)]
struct HistoryQuery {
    host: Option<String>,
    /// Epoch milliseconds or seconds (values below 10^11 are taken as seconds).
    from: Option<i64>,
    to: Option<i64>,
}

/// Epoch seconds or milliseconds → milliseconds.
pub fn to_ms(t: i64) -> i64 {
    if t.unsigned_abs() < 100_000_000_000 {
        t.saturating_mul(1000)
    } else {
        t
    }
}

pub use crate::tsdb::MAX_HISTORY_ROWS;

/// A `/history` bound in ms, between 1970 and 2200, else a 400 naming it.
fn history_time(name: &str, t: Option<i64>, default: i64) -> Result<i64, AppError> {
    let Some(t) = t else { return Ok(default) };
    let ms = to_ms(t);
    if crate::grafana::time_in_range(ms) {
        Ok(ms)
    } else {
        Err(AppError::BadRequest(format!(
            "{name}={t} is not a time between 1970 and 2200 (Unix seconds or milliseconds)"
        )))
    }
}

async fn history(
    State(state): State<AppState>,
    query: Result<Query<HistoryQuery>, QueryRejection>,
) -> Result<Json<crate::history::Rows>, AppError> {
    let Query(q) = query?;
    let from = history_time("from", q.from, i64::MIN)?;
    let to = history_time("to", q.to, i64::MAX)?;
    if from > to {
        return Err(AppError::BadRequest(format!(
            "from ({from}) is after to ({to})"
        )));
    }
    let host = known_host(&state, q.host)?;
    let store = state.store.clone();
    // A range of more than MAX_HISTORY_ROWS is refused before its rows are read.
    let rows = tokio::task::spawn_blocking(move || {
        let rows = store.history(&host, from, to)?;
        Ok(crate::history::Rows { host, rows })
    })
    .await
    .map_err(|e| AppError::Internal(e.to_string()))?
    .map_err(history_error)?;
    Ok(Json(rows))
}

/// A history read's error: a 400 naming the bound for a range the client must narrow, else a
/// 500.
pub(crate) fn history_error(e: crate::store::HistoryError) -> AppError {
    match e {
        crate::store::HistoryError::Query(crate::tsdb::QueryError::Range(why)) => {
            AppError::BadRequest(why)
        }
        e => AppError::Internal(e.to_string()),
    }
}

#[derive(Serialize)]
struct Health {
    /// `ok` when every known host sent something new within `max_age_s`; `stale` otherwise,
    /// and before the first snapshot.
    status: &'static str,
    /// Newest receipt over all hosts (Pi clock, Unix seconds).
    last_seen_ts: Option<i64>,
    max_age_s: f64,
    hosts: Vec<HostSummary>,
    ingest: IngestStats,
    /// The history database's counters as of its last commit (once a second).
    history: crate::tsdb::TsdbStats,
    mqtt: MqttState,
    /// Alert counts and notifier counters (absent when the router runs without the engine).
    #[serde(skip_serializing_if = "Option::is_none")]
    alerts: Option<Value>,
    /// Home Assistant discovery counters (absent when it is off).
    #[serde(skip_serializing_if = "Option::is_none")]
    homeassistant: Option<crate::homeassistant::HaHealth>,
}

async fn health(
    State(state): State<AppState>,
    alerts: Option<axum::Extension<crate::alerts::AlertsHandle>>,
    ha: Option<axum::Extension<HomeAssistant>>,
) -> Result<Response, AppError> {
    let now = Instant::now();
    let hosts = summaries(state.store.hosts()?, now);
    let (ingest, history) = state.store.counters()?;
    // Hosts known only from a (retained) MQTT status never sent data: listed, not judged.
    let judged: Vec<&HostSummary> = hosts
        .iter()
        .filter(|h| h.last_seq.is_some() || h.history_rows > 0)
        .collect();
    let ok = !judged.is_empty() && judged.iter().all(|h| !h.stale);
    let body = Health {
        status: if ok { "ok" } else { "stale" },
        last_seen_ts: hosts.iter().filter_map(|h| h.last_seen_ts).max(),
        max_age_s: state.max_age.as_secs_f64(),
        hosts,
        ingest,
        history,
        mqtt: state.mqtt.snapshot(),
        alerts: alerts.map(|a| a.0.health()),
        homeassistant: ha.and_then(|h| h.0 .0).map(|h| h.snapshot()),
    };
    let code = if ok {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    Ok((code, Json(body)).into_response())
}

#[derive(Debug, Deserialize)]
struct EventsQuery {
    host: Option<String>,
    limit: Option<usize>,
}

async fn events(
    State(state): State<AppState>,
    query: Result<Query<EventsQuery>, QueryRejection>,
) -> Result<Json<Vec<broker::JobEvent>>, AppError> {
    let Query(q) = query?;
    let mut out = state
        .store
        .events(|h| q.host.as_deref().is_none_or(|want| want == h))?;
    if let Some(limit) = q.limit {
        out.drain(..out.len().saturating_sub(limit));
    }
    Ok(Json(out))
}

async fn prometheus(State(state): State<AppState>) -> Result<Response, AppError> {
    let text = crate::prometheus::scrape(&state.prometheus)
        .map_err(|e| AppError::Internal(e.to_string()))?;
    Ok((
        [(header::CONTENT_TYPE, crate::prometheus::CONTENT_TYPE)],
        text,
    )
        .into_response())
}
