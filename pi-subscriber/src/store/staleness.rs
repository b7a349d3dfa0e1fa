//! The one staleness judgment: how long each host may stay silent, and whether it has.

use std::time::Duration;

use tokio::time::Instant;

use super::state::HostState;

/// A host's staleness bound when `health.max_age` is not set and its sampling interval is not
/// known yet (3 × the publisher's default 15 s).
pub const DEFAULT_MAX_AGE: Duration = Duration::from_secs(45);

/// A host's staleness bound: `health.max_age` when set, else 3 × the interval its snapshots
/// declare (`interval_s`, taken between 1 s and 1 h), else [`DEFAULT_MAX_AGE`]. A publisher
/// sampling every 5 s is stale after 15 s, one sampling every minute after 3 minutes.
pub fn max_age_for(interval_s: f64, configured: Option<Duration>) -> Duration {
    configured.unwrap_or_else(|| {
        if interval_s.is_finite() && interval_s > 0.0 {
            Duration::from_secs_f64(3.0 * interval_s.clamp(1.0, 3600.0))
        } else {
            DEFAULT_MAX_AGE
        }
    })
}

impl HostState {
    /// The one staleness judgment, on the Pi's monotonic clock: nothing new arrived within
    /// the host's `max_age`, or never since start-up. `/health`, `/metrics`, `/hosts`,
    /// Prometheus's `up` and Home Assistant's availability all read it.
    pub fn is_stale(&self, now: Instant) -> bool {
        self.last_received
            .is_none_or(|t| now.duration_since(t) > self.max_age)
    }
}
