//! The Pi's HTTP API on :9100: `router(AppState)` and one file per resource (`hosts.rs`:
//! `/metrics`, `/hosts`; `history.rs`: `/history`, `/events`; `health.rs`: `/health`,
//! `/prometheus`, `/alerts`), with `/series` and Grafana's datasource beside them.

pub mod grafana;
mod health;
mod history;
mod hosts;
pub mod series;
pub mod state;
mod top;

use axum::http::StatusCode;
use axum::routing::get;
use axum::Router;
use tower_http::timeout::TimeoutLayer;

pub use crate::tsdb::MAX_HISTORY_ROWS;
pub use daemon_kit::http_error::AppError;
pub use state::{to_ms, AppState};

pub fn router(state: AppState) -> Router {
    let timeout = state.request_timeout;
    Router::new()
        .route("/", get(crate::assets::index))
        .route("/assets/{name}", get(crate::assets::asset))
        .route("/favicon.ico", get(crate::assets::favicon))
        .route("/metrics", get(hosts::metrics))
        .route("/hosts", get(hosts::hosts))
        .route("/hosts/{host}", axum::routing::delete(hosts::forget_host))
        .route("/history", get(history::history))
        .route("/series", get(series::series))
        .route("/series/metrics", get(series::metrics))
        .route("/series/top", get(top::top))
        .route("/health", get(health::health))
        .route("/events", get(history::events))
        .route("/jobs/expected", get(history::expected_jobs))
        .route("/alerts", get(health::alerts))
        .route("/prometheus", get(health::prometheus))
        .nest("/grafana", grafana::router())
        .route("/grafana/", get(grafana::save_and_test))
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
