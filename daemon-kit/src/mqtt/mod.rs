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

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, Default, Clone, Serialize)]
    struct Health {
        broker: String,
        #[serde(flatten)]
        link: LinkStats,
        messages_total: u64,
    }

    impl LinkCounters for Health {
        fn link_stats(&mut self) -> &mut LinkStats {
            &mut self.link
        }
    }

    /// `/health` keeps its field names: the link's counters sit beside the daemon's own.
    #[test]
    fn link_counters_flatten_into_a_daemons_counters() {
        let stats = crate::stats::Stats::new(Health::default());
        stats.update(|h| {
            h.link_stats().connects_total = 2;
            h.link_stats().last_error = Some("refused".into());
            h.messages_total = 5;
        });
        assert_eq!(
            serde_json::to_value(stats.snapshot()).unwrap(),
            serde_json::json!({
                "broker": "",
                "connected": false,
                "connects_total": 2,
                "connect_errors_total": 0,
                "last_error": "refused",
                "messages_total": 5
            })
        );
    }
}
