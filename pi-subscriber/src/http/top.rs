//! `/series/top`: a host's top processes at a moment or over a range, from the history's
//! process lists (`tsdb/top.rs`). What the dashboard shows when one points at a CPU or memory
//! chart.

use axum::extract::rejection::QueryRejection;
use axum::extract::{Query, State};
use axum::Json;
use serde::{Deserialize, Serialize};

use crate::http::state::{history_error, time_in_range, to_ms, AppState};
use crate::tsdb::{Tier, TopList};
use daemon_kit::http_error::AppError;

/// How far from the moment asked a sample's lists may be (two default intervals).
const NEAR_MS: i64 = 30_000;
/// The longest step or range asked (ten years).
const MAX_SPAN_MS: i64 = 10 * 366 * 86_400_000;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TopParams {
    host: Option<String>,
    /// A moment (epoch ms or s): the nearest sample's lists, or its minute's peaks.
    at: Option<i64>,
    /// Seconds a chart's point covers: a minute or more reads the minute peaks.
    step: Option<i64>,
    /// A range instead of a moment: the lists at its CPU and memory peaks.
    from: Option<i64>,
    to: Option<i64>,
}

#[derive(Debug, Serialize)]
pub struct TopReply {
    pub host: String,
    /// `raw` (one sample's lists) or `minute` (the peaks); `null` with no lists stored.
    pub tier: Option<Tier>,
    pub top_cpu: Option<TopList>,
    pub top_rss: Option<TopList>,
}

/// `GET /series/top?host=H&at=MS[&step=S]` or `?host=H&from=MS&to=MS`.
pub async fn top(
    State(state): State<AppState>,
    params: Result<Query<TopParams>, QueryRejection>,
) -> Result<Json<TopReply>, AppError> {
    let Query(p) = params?;
    let step_ms = match p.step {
        Some(s) if !(0..=MAX_SPAN_MS / 1000).contains(&s) => {
            return Err(AppError::BadRequest(format!(
                "step must be 0 to {} s",
                MAX_SPAN_MS / 1000
            )))
        }
        Some(s) => s * 1000,
        None => 0,
    };
    enum Ask {
        At(i64),
        In(i64, i64),
    }
    let time = |t: i64| {
        let ms = to_ms(t);
        if time_in_range(ms) {
            Ok(ms)
        } else {
            Err(AppError::BadRequest(format!(
                "time {t} is not between 1970 and 2200"
            )))
        }
    };
    let ask = match (p.at, p.from, p.to) {
        (Some(at), None, None) => Ask::At(time(at)?),
        (None, Some(from), Some(to)) => {
            let (from, to) = (time(from)?, time(to)?);
            if from > to || to.saturating_sub(from) > MAX_SPAN_MS {
                return Err(AppError::BadRequest(format!(
                    "from ({from}) must not be after to ({to}), nor ten years before it"
                )));
            }
            Ask::In(from, to)
        }
        _ => {
            return Err(AppError::BadRequest(
                "give either at (and step), or from and to".into(),
            ))
        }
    };
    let host = crate::http::state::known_host(&state, p.host)?;
    let store = state.store.clone();
    let now_ms = crate::clock::unix_ms_now();
    let asked = host.clone();
    let answer = tokio::task::spawn_blocking(move || match ask {
        Ask::At(at) => store.top_at(&asked, at, step_ms, NEAR_MS.max(step_ms), now_ms),
        Ask::In(from, to) => store.top_in(&asked, from, to.saturating_add(1)),
    })
    .await
    .map_err(|e| AppError::Internal(format!("top query task: {e}")))?
    .map_err(history_error)?;
    Ok(Json(match answer {
        Some(a) => TopReply {
            host,
            tier: Some(a.tier),
            top_cpu: a.top_cpu,
            top_rss: a.top_rss,
        },
        None => TopReply {
            host,
            tier: None,
            top_cpu: None,
            top_rss: None,
        },
    }))
}
