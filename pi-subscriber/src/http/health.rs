//! `/health` (the one staleness judgment and every counter), `/prometheus`, `/alerts`.

use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::Serialize;
use serde_json::Value;
use tokio::time::Instant;

use super::hosts::{summaries, HostSummary};
use super::state::AppState;
use crate::mqtt::MqttState;
use crate::store::IngestStats;
use daemon_kit::http_error::AppError;

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
    /// Each remote write receiver's counters and backlog (absent when none is configured).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    remote_write: Vec<remote_write::RemoteStats>,
}

pub(super) async fn health(State(state): State<AppState>) -> Result<Response, AppError> {
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
        alerts: state.alerts.as_ref().map(|a| a.health()),
        homeassistant: state.homeassistant.as_ref().map(|h| h.snapshot()),
        remote_write: state.remote_write.stats(),
    };
    let code = if ok {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    Ok((code, Json(body)).into_response())
}

pub(super) async fn prometheus(State(state): State<AppState>) -> Result<Response, AppError> {
    let text = crate::prometheus::scrape(&state.prometheus)
        .map_err(|e| AppError::Internal(e.to_string()))?;
    Ok((
        [(header::CONTENT_TYPE, crate::prometheus::CONTENT_TYPE)],
        text,
    )
        .into_response())
}

/// `GET /alerts`: the engine's view (disabled without it).
pub(super) async fn alerts(State(state): State<AppState>) -> Json<Value> {
    Json(match &state.alerts {
        Some(h) => crate::alerts::http::view(h),
        None => crate::alerts::http::disabled(),
    })
}
