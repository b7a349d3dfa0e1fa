//! `/history` (the raw tier as the seed's flat rows) and `/events` (job events).

use axum::extract::rejection::QueryRejection;
use axum::extract::{Query, State};
use axum::Json;
use serde::Deserialize;

use super::state::{history_error, known_host, to_ms, AppState};
use daemon_kit::http_error::AppError;

#[derive(Debug, Deserialize)]
pub(super) struct HistoryQuery {
    host: Option<String>,
    /// Epoch milliseconds or seconds (values below 10^11 are taken as seconds).
    from: Option<i64>,
    to: Option<i64>,
}

/// A `/history` bound in ms, between 1970 and 2200, else a 400 naming it.
fn history_time(name: &str, t: Option<i64>, default: i64) -> Result<i64, AppError> {
    let Some(t) = t else { return Ok(default) };
    let ms = to_ms(t);
    if super::state::time_in_range(ms) {
        Ok(ms)
    } else {
        Err(AppError::BadRequest(format!(
            "{name}={t} is not a time between 1970 and 2200 (Unix seconds or milliseconds)"
        )))
    }
}

pub(super) async fn history(
    State(state): State<AppState>,
    query: Result<Query<HistoryQuery>, QueryRejection>,
) -> Result<Json<crate::seed::history::Rows>, AppError> {
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
        Ok(crate::seed::history::Rows { host, rows })
    })
    .await
    .map_err(|e| AppError::Internal(e.to_string()))?
    .map_err(history_error)?;
    Ok(Json(rows))
}

#[derive(Debug, Deserialize)]
pub(super) struct EventsQuery {
    host: Option<String>,
    limit: Option<usize>,
}

pub(super) async fn events(
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

/// `/jobs/expected`: every `[[jobs.expect]]` as last judged: its last run, the next (or
/// missed) due time, whether it overruns. `[]` without expectations.
pub(super) async fn expected_jobs(State(state): State<AppState>) -> Json<Vec<crate::jobs::Status>> {
    Json(state.jobs.statuses())
}
