//! HTTP :9000: `/latest`, `/history`, `/events`, `/health`.

use std::sync::Arc;
use std::time::Duration;

use axum::extract::rejection::QueryRejection;
use axum::extract::{Query, State};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use broker::JobEvent;
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;
use tokio::time::Instant;
use tower_http::timeout::TimeoutLayer;

use crate::events::EventLog;
use crate::mqtt::MqttStats;
use crate::sampler::{Latest, SamplerStats};
use crate::shared_ring::SharedRing;
use daemon_kit::stats::Stats;

/// Largest `limit` accepted by `/history` (a day at 15 s fits in one request).
pub const MAX_HISTORY_LIMIT: usize = 10_000;
pub const DEFAULT_HISTORY_LIMIT: usize = 1_000;

#[derive(Clone)]
pub struct AppState {
    pub host: Arc<str>,
    pub interval: Duration,
    pub latest: Latest,
    pub ring: SharedRing,
    pub events: EventLog,
    pub stats: Stats<SamplerStats>,
    /// MQTT publishing counters; `None` when MQTT is off.
    pub mqtt: Option<Stats<MqttStats>>,
    /// The embedded broker's retained store and what its guard cleared; `None` unless the
    /// broker is embedded.
    pub broker: Option<Stats<broker::retain::RetainStats>>,
    /// When the daemon started: it is healthy, not stale, while its first samples come in.
    pub started: Instant,
    pub request_timeout: Duration,
    /// The remote write receivers (empty: none configured); they stop with the last clone.
    pub remote_write: Arc<Vec<remote_write::ShipperHandle>>,
}

pub use daemon_kit::http_error::AppError;

pub fn router(state: AppState) -> Router {
    let timeout = state.request_timeout;
    Router::new()
        .route("/latest", get(latest))
        .route("/history", get(history))
        .route("/events", get(events))
        .route("/health", get(health))
        .fallback(|| async {
            AppError::NotFound("no such endpoint; try /latest, /history, /events or /health".into())
        })
        .layer(TimeoutLayer::with_status_code(
            StatusCode::REQUEST_TIMEOUT,
            timeout,
        ))
        .with_state(state)
}

async fn latest(State(state): State<AppState>) -> Result<Response, AppError> {
    let snapshot = state.latest.borrow().clone();
    match snapshot {
        Some(s) => Ok(Json(s.as_ref()).into_response()),
        None => Err(AppError::NotReady(
            "no sample yet: the first one is taken within a second of start".into(),
        )),
    }
}

#[derive(Debug, Deserialize)]
struct HistoryQuery {
    /// Snapshots with `seq` above this one (exclusive): "I have up to N".
    since_seq: Option<u64>,
    limit: Option<usize>,
}

#[derive(Serialize)]
struct HistoryResponse {
    host: Arc<str>,
    /// Oldest and newest seq in the ring: a client whose `since_seq` is below `oldest_seq - 1`
    /// knows the gap is longer than the ring.
    oldest_seq: Option<u64>,
    newest_seq: Option<u64>,
    count: usize,
    /// Oldest first.
    snapshots: Vec<Box<RawValue>>,
}

async fn history(
    State(state): State<AppState>,
    query: Result<Query<HistoryQuery>, QueryRejection>,
) -> Result<Json<HistoryResponse>, AppError> {
    let Query(query) = query?;
    let limit = query.limit.unwrap_or(DEFAULT_HISTORY_LIMIT);
    if limit == 0 || limit > MAX_HISTORY_LIMIT {
        return Err(AppError::BadRequest(format!(
            "limit must be between 1 and {MAX_HISTORY_LIMIT}, got {limit}"
        )));
    }
    let since = query.since_seq.unwrap_or(0);
    let ring = state.ring.clone();
    let crate::shared_ring::Page {
        oldest_seq,
        newest_seq,
        snapshots,
    } = tokio::task::spawn_blocking(move || ring.page(since, limit))
        .await
        .map_err(|e| AppError::Internal(e.to_string()))?
        .map_err(AppError::Internal)?;
    Ok(Json(HistoryResponse {
        host: Arc::clone(&state.host),
        oldest_seq,
        newest_seq,
        count: snapshots.len(),
        snapshots,
    }))
}

#[derive(Debug, Deserialize)]
struct EventsQuery {
    /// `json` (default) or `text` (the seed's line format).
    format: Option<String>,
    /// Only the newest N events.
    limit: Option<usize>,
}

/// One event in the seed's text format, in the server's local time:
/// `2026-01-13 21:04 job=simA start`, `2026-01-13 21:05 job=simA end rc=0`.
pub fn event_line<Tz: chrono::TimeZone>(event: &JobEvent, tz: &Tz) -> String
where
    Tz::Offset: std::fmt::Display,
{
    let when = chrono::DateTime::from_timestamp_millis(event.ts_ms())
        .map(|t| t.with_timezone(tz).format("%Y-%m-%d %H:%M").to_string())
        .unwrap_or_else(|| "????-??-?? ??:??".into());
    let what = match event {
        JobEvent::JobStart(_) => "start".to_owned(),
        JobEvent::JobEnd(end) => match (end.exit_code, end.signal) {
            (Some(rc), _) => format!("end rc={rc}"),
            (None, Some(signal)) => format!("end signal={signal}"),
            (None, None) => "end rc=?".to_owned(),
        },
    };
    format!("{when} job={} {what}", event.name())
}

async fn events(
    State(state): State<AppState>,
    query: Result<Query<EventsQuery>, QueryRejection>,
) -> Result<Response, AppError> {
    let Query(query) = query?;
    let text = match query.format.as_deref() {
        None | Some("json") => false,
        Some("text") => true,
        Some(other) => {
            return Err(AppError::BadRequest(format!(
                "format must be json or text, got {other:?}"
            )))
        }
    };
    let log = state.events.clone();
    let read = tokio::task::spawn_blocking(move || log.read())
        .await
        .map_err(|e| AppError::Internal(e.to_string()))?
        .map_err(|e| AppError::Internal(e.to_string()))?;
    let mut events = read.events;
    if let Some(limit) = query.limit {
        events.drain(..events.len().saturating_sub(limit));
    }
    if text {
        let mut body = String::new();
        for event in &events {
            body.push_str(&event_line(event, &chrono::Local));
            body.push('\n');
        }
        Ok(([(header::CONTENT_TYPE, "text/plain; charset=utf-8")], body).into_response())
    } else {
        Ok(Json(events).into_response())
    }
}

#[derive(Serialize)]
struct Health {
    /// `ok`, or `stale` when no sample was taken and stored for three intervals (a full disk
    /// too: `last_ring_error` then says which file and why).
    status: &'static str,
    host: Arc<str>,
    last_seq: Option<u64>,
    last_sample_ts: Option<i64>,
    /// Seconds since the last sample, on the publisher's monotonic clock.
    last_sample_age_s: Option<f64>,
    interval_s: f64,
    uptime_s: f64,
    ring_len: Option<usize>,
    ring_capacity: Option<usize>,
    #[serde(flatten)]
    stats: SamplerStats,
    mqtt: Option<MqttStats>,
    /// Embedded broker only.
    broker: Option<broker::retain::RetainStats>,
    /// Each remote write receiver's counters and backlog (absent when none is configured).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    remote_write: Vec<remote_write::RemoteStats>,
}

async fn health(State(state): State<AppState>) -> Response {
    let now = Instant::now();
    let stats = state.stats.snapshot();
    let age = stats.last_sample_at.map(|t| now.duration_since(t));
    let max_age = state.interval.saturating_mul(3);
    let fresh = match age {
        Some(age) => age <= max_age,
        None => now.duration_since(state.started) <= max_age,
    };
    let latest = state.latest.borrow().clone();
    let (ring_len, ring_capacity) = state.ring.fill().unzip();
    let body = Health {
        status: if fresh { "ok" } else { "stale" },
        host: Arc::clone(&state.host),
        last_seq: latest.as_ref().map(|s| s.seq),
        last_sample_ts: latest.as_ref().map(|s| s.ts),
        last_sample_age_s: age.map(|a| a.as_secs_f64()),
        interval_s: state.interval.as_secs_f64(),
        uptime_s: now.duration_since(state.started).as_secs_f64(),
        ring_len,
        ring_capacity,
        stats,
        mqtt: state.mqtt.as_ref().map(Stats::snapshot),
        broker: state.broker.as_ref().map(Stats::snapshot),
        remote_write: state.remote_write.iter().map(|h| h.stats()).collect(),
    };
    let status = if fresh {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (status, Json(body)).into_response()
}
