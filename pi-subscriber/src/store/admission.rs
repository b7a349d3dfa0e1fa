//! What the store keeps out (issue 18 items 9 and 10): snapshots the MQTT task could not
//! queue for the ingest thread ([`crate::ingest_queue`]), live samples beyond their host's
//! rate bound, and history beyond `history.max_disk` (`crate::tsdb`'s `size.rs`).
//!
//! The rate bound: one login could otherwise store distinct `seq`/`ts` values for a host at
//! broker speed (the raw tier's key is `(host, ts, seq)`) and fill the SD card in hours. A
//! host may store [`BURST`] live samples at once, then [`PER_INTERVAL`] per `interval_s` it
//! declares, and never more than `history.max_samples_per_s` per second (a host may declare
//! any interval); the rest are dropped and counted (`ingest.rate_limited_total`). Measured
//! on the Pi's monotonic clock at receipt, so backfill pages (1000 older samples at once,
//! fetched by the Pi itself from the publisher's `/history` for a gap) are never limited, and
//! the newest sample delivered again (MQTT and HTTP both) costs nothing.

use std::time::Duration;

use broker::Snapshot;
use tokio::time::Instant;

use super::{Poisoned, SharedStore, Source, Store};

/// Live samples a host may store per `interval_s` it declares, once its burst is spent.
pub const PER_INTERVAL: u32 = 2;
/// Live samples a host may store at once (a reconnect, a poll and MQTT together).
pub const BURST: u32 = 10;
/// `history.max_samples_per_s` by default: twice a 200 ms publisher's rate.
pub use crate::config::DEFAULT_MAX_SAMPLES_PER_S;

/// A host's standing against its rate bound (GCRA: the time its next sample is due, on the
/// Pi's monotonic clock; integer arithmetic, so counts are exact).
#[derive(Debug, Clone, Default)]
pub struct Pace {
    due: Option<Instant>,
    /// Refusing since the last sample it let through (logged once per episode).
    limiting: bool,
}

impl Store {
    /// Bounds the live samples of each host (`history.max_samples_per_s`); without this
    /// call (tests, benchmarks) there is no rate bound.
    pub fn with_max_samples_per_s(mut self, max: u32) -> Self {
        self.max_samples_per_s = Some(max.max(1));
        self
    }
}

impl SharedStore {
    /// Counts a snapshot the MQTT task dropped because the ingest queue was full.
    pub fn count_queue_full(&self) {
        if let Ok(mut state) = self.lock() {
            state.stats.queue_full_total += 1;
        }
    }

    /// Deletes the history's oldest rows (raw first) while it uses more than `max_bytes`
    /// (`history.max_disk`); the figures go to `/health` with the next commit. Blocking.
    pub fn bound_disk(&self, max_bytes: u64) -> Result<(), super::HistoryError> {
        Ok(self.tsdb()?.bound_disk(max_bytes)?)
    }

    /// Whether a sample may go on to the history under its host's rate bound; `false` has
    /// been counted. A backfilled sample is always let through.
    pub(super) fn admit_rate(
        &self,
        snapshot: &Snapshot,
        source: Source,
        now: Instant,
    ) -> Result<bool, Poisoned> {
        if source == Source::Backfill {
            return Ok(true);
        }
        let mut state = self.lock()?;
        let Some(max_per_s) = state.max_samples_per_s else {
            return Ok(true);
        };
        // `admit` has made room for a new host: its pace starts here.
        let host = state.hosts.entry(snapshot.host.clone()).or_default();
        let point = crate::rates::point_of(snapshot);
        if host
            .latest
            .as_deref()
            .is_some_and(|l| crate::rates::point_of(l) == point)
        {
            return Ok(true); // the newest again: a duplicate, stored nowhere
        }
        if host.pace.admit(now, snapshot.interval_s, max_per_s) {
            return Ok(true);
        }
        if !std::mem::replace(&mut host.pace.limiting, true) {
            tracing::warn!(host = %snapshot.host, interval_s = snapshot.interval_s, max_per_s, "host sends faster than its rate bound: live samples dropped until it slows down (ingest.rate_limited_total)");
        }
        state.stats.rate_limited_total += 1;
        Ok(false)
    }
}

impl Pace {
    /// Whether one more live sample is let through at `now` (and counted against the
    /// bound): [`BURST`] at once, then one per `interval_s / PER_INTERVAL`, but never more
    /// than `max_per_s` per second.
    fn admit(&mut self, now: Instant, interval_s: f64, max_per_s: u32) -> bool {
        let floor = Duration::from_nanos(1_000_000_000 / u64::from(max_per_s.max(1)));
        let declared = Duration::try_from_secs_f64(interval_s / f64::from(PER_INTERVAL))
            .unwrap_or(floor)
            .min(Duration::from_secs(3600));
        let each = declared.max(floor);
        let tolerance = each * (BURST - 1);
        let due = self.due.unwrap_or(now);
        if due > now + tolerance {
            return false;
        }
        self.due = Some(due.max(now) + each);
        self.limiting = false;
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::Outcome;

    const T0: i64 = 1_767_225_600_000;

    fn snap(host: &str, seq: u64, interval_s: f64) -> Snapshot {
        Snapshot {
            v: 1,
            host: host.into(),
            seq,
            ts_ms: T0 + seq as i64 * 1000,
            ts: (T0 + seq as i64 * 1000) / 1000,
            interval_s,
            ..Snapshot::default()
        }
    }

    /// Sends `seqs` of `host` at `now`; how many were stored.
    fn send(
        store: &SharedStore,
        host: &str,
        seqs: std::ops::RangeInclusive<u64>,
        interval_s: f64,
        source: Source,
        now: Instant,
    ) -> usize {
        seqs.filter(|&seq| {
            let s = snap(host, seq, interval_s);
            let at = s.ts_ms;
            matches!(store.ingest(s, source, now, at), Outcome::Stored { .. })
        })
        .count()
    }

    fn limited(store: &SharedStore) -> u64 {
        store.counters().unwrap().0.rate_limited_total
    }

    #[tokio::test]
    async fn a_host_stores_a_burst_then_two_samples_per_declared_interval() {
        let store = SharedStore::new(
            Store::new(10).with_max_samples_per_s(DEFAULT_MAX_SAMPLES_PER_S),
            crate::tsdb::Tsdb::open_in_memory(
                crate::tsdb::Retention {
                    raw_ms: 2 * 86_400_000,
                    minute_ms: 14 * 86_400_000,
                    hour_ms: 730 * 86_400_000,
                },
                500,
                0,
            )
            .unwrap(),
        );
        let t = Instant::now();
        // A flood at broker speed: distinct seqs, one instant.
        assert_eq!(send(&store, "t", 1..=100, 15.0, Source::Mqtt, t), 10);
        assert_eq!(limited(&store), 90);
        assert_eq!(
            store.ingest(snap("t", 101, 15.0), Source::Mqtt, t, T0),
            Outcome::RateLimited
        );
        // The newest delivered again (HTTP after MQTT) is a duplicate, never limited.
        assert_eq!(
            store.ingest(snap("t", 10, 15.0), Source::Http, t, T0),
            Outcome::Duplicate
        );
        assert_eq!(limited(&store), 91);
        // One declared interval later: two more.
        let t = t + Duration::from_secs(15);
        assert_eq!(send(&store, "t", 200..=210, 15.0, Source::Mqtt, t), 2);
        assert_eq!(limited(&store), 100);
        // A backfill of real history (a page of 1000 older samples at once) goes through.
        assert_eq!(
            send(&store, "t", 1001..=2000, 15.0, Source::Backfill, t),
            1000
        );
        assert_eq!(limited(&store), 100);
        // Another host has its own bound.
        assert_eq!(send(&store, "u", 1..=12, 15.0, Source::Http, t), 10);
        assert_eq!(limited(&store), 102);
        // A host declaring a tiny interval gets history.max_samples_per_s, no more.
        let t = t + Duration::from_secs(60);
        assert_eq!(send(&store, "v", 1..=10, 0.001, Source::Mqtt, t), 10);
        let t = t + Duration::from_secs(1);
        assert_eq!(send(&store, "v", 11..=100, 0.001, Source::Mqtt, t), 10);
        assert_eq!(limited(&store), 102 + 80);
        // A 200 ms publisher (the tests' pace) is never limited.
        let mut at = t;
        let mut stored = 0;
        for seq in 1..=50 {
            at += Duration::from_millis(200);
            stored += send(&store, "w", seq..=seq, 0.2, Source::Mqtt, at);
        }
        assert_eq!(stored, 50);
        assert_eq!(limited(&store), 182);
    }
}
