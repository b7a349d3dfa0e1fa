//! The one MQTT client link every daemon uses: [`ClientOptions`] says where to connect and
//! how (address, client id, login, TLS, packet limits, last will), [`Link`] drives rumqttc's
//! event loop (cancel-safe, with backoff and jitter between failed connects) and keeps the
//! [`LinkStats`] that `/health` shows.

mod link;
mod options;

pub use link::{reason, Link, Pacing, STABLE_AFTER};
pub use options::{ClientOptions, OptionsError};

use serde::Serialize;

/// The counters of one MQTT connection, for `/health` (flattened into a daemon's own
/// counters, so the field names stay `connected`, `connects_total`, ...).
#[derive(Debug, Default, Clone, PartialEq, Eq, Serialize)]
pub struct LinkStats {
    /// A session is up (since the last ConnAck, until the next error).
    pub connected: bool,
    /// ConnAcks received.
    pub connects_total: u64,
    /// Failed connects and dropped connections.
    pub connect_errors_total: u64,
    /// Why the last connect failed or the connection dropped; cleared on connect.
    pub last_error: Option<String>,
}

/// Counters that carry a [`LinkStats`]: what a [`Link`] updates in a daemon's
/// [`crate::stats::Stats`] handle (one lock, one snapshot for `/health`).
pub trait LinkCounters {
    fn link_stats(&mut self) -> &mut LinkStats;
}

impl LinkCounters for LinkStats {
    fn link_stats(&mut self) -> &mut LinkStats {
        self
    }
}
