//! The HTTP app's state, shared by every handler, and what several of them check.

use std::sync::Arc;
use std::time::Duration;

use crate::mqtt::SharedMqtt;
use crate::store::SharedStore;

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
    /// The alert engine (`None`: alerts off).
    pub alerts: Option<crate::alerts::AlertsHandle>,
    /// Home Assistant discovery's counters (`None`: discovery off).
    pub homeassistant: Option<crate::homeassistant::SharedHa>,
    /// The judgment of `[[jobs.expect]]` (empty: none configured).
    pub jobs: crate::jobs::watch::JobWatch,
    /// The remote write receivers (empty: none configured).
    pub remote_write: crate::remote_write::RemoteWrites,
}

pub use daemon_kit::http_error::AppError;

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

/// Epoch seconds or milliseconds → milliseconds.
pub fn to_ms(t: i64) -> i64 {
    if t.unsigned_abs() < 100_000_000_000 {
        t.saturating_mul(1000)
    } else {
        t
    }
}

/// Epoch ms between 1970-01-01 and 2200-01-01: the times a query may name.
pub fn time_in_range(ms: i64) -> bool {
    (0..=crate::validate::MAX_TS_MS).contains(&ms)
}

/// A history read's error: a 400 naming the bound for a range the client must narrow, else a
/// 500.
pub fn history_error(e: crate::store::HistoryError) -> AppError {
    match e {
        crate::store::HistoryError::Query(crate::tsdb::QueryError::Range(why)) => {
            AppError::BadRequest(why)
        }
        e => AppError::Internal(e.to_string()),
    }
}
