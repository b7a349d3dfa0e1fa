//! The hosts' live state (newest samples, receipt times, status), job events and ingest
//! counters: what the store keeps in memory. Pure: time is passed in.

use std::collections::{BTreeMap, VecDeque};
use std::sync::Arc;
use std::time::Duration;

use broker::{JobEvent, Snapshot};
use serde::Serialize;
use tokio::time::Instant;

use crate::rates::{self, Point};
use crate::tsdb::{IngestReport, KnownHost};
use crate::validate::Rejection;

/// Where a snapshot came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Source {
    Mqtt,
    Http,
    Backfill,
    /// The Pi's own machine (`[self]`).
    Local,
}

/// When a host was last heard from, on the Pi's clock where known (Unix ms).
fn last_heard_ms(h: &HostState) -> Option<i64> {
    h.last_received_ms.or(h.newest_ts_ms).or(h.status_ms)
}

pub(super) enum Room {
    Free,
    Evicted(String),
    Full,
}

/// Samples missing between two stored ones, to fetch from the publisher's `/history`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Gap {
    pub host: String,
    /// The newest seq stored before the gap (`since_seq` for `/history`).
    pub after_seq: u64,
    /// The seq that revealed the gap.
    pub before_seq: u64,
    /// The times of the two (server clock).
    pub after_ts_ms: i64,
    pub before_ts_ms: i64,
}

#[derive(Debug, Clone, PartialEq)]
pub enum Outcome {
    /// Stored; `gap` when samples are missing before it.
    Stored {
        gap: Option<Gap>,
        /// A stale host that was forgotten to make room for this new one.
        evicted: Option<String>,
    },
    Duplicate,
    /// A new host beyond `max_hosts`.
    TooManyHosts,
    /// A live sample beyond the host's rate bound (`history.max_samples_per_s`).
    RateLimited,
    /// Not stored: the store is poisoned and the daemon is stopping.
    Failed,
}

/// Counters for `/health`.
#[derive(Debug, Default, Clone, Serialize)]
pub struct IngestStats {
    pub stored_mqtt_total: u64,
    pub stored_http_total: u64,
    pub stored_backfill_total: u64,
    /// Samples of the Pi's own machine (`[self]`).
    pub stored_local_total: u64,
    pub duplicates_total: u64,
    pub rejected_total: u64,
    pub rejected: BTreeMap<Rejection, u64>,
    pub too_many_hosts_total: u64,
    /// Hosts forgotten: silent for `history.forget_after`, or `DELETE /hosts/{host}`.
    pub forgotten_total: u64,
    /// Stale hosts that gave way to a new host at `max_hosts` (their live slot only: their
    /// history stays).
    pub evicted_total: u64,
    /// Snapshots whose server clock was far from the Pi's (kept, flagged).
    pub clock_skewed_total: u64,
    pub events_total: u64,
    /// Samples the history database could not store (the error is logged).
    pub history_errors_total: u64,
    /// MQTT snapshots dropped because the ingest queue was full (a long query held the
    /// history); the next live sample's gap backfills them.
    pub queue_full_total: u64,
    /// Live samples beyond their host's rate bound, dropped.
    pub rate_limited_total: u64,
}

#[derive(Debug, Default, Clone)]
pub struct HostState {
    pub latest: Option<Arc<Snapshot>>,
    /// The sample before `latest` (as received; not necessarily its seq predecessor).
    pub previous: Option<Arc<Snapshot>>,
    /// `latest`'s counter rates, computed once at ingest against its seq predecessor by the
    /// one rate rule: `/metrics`, Home Assistant and the alert rules read these.
    pub rates: Option<Arc<crate::rates::Derived>>,
    /// When the newest sample arrived, on the Pi's monotonic clock: staleness is judged on
    /// this, not on the server's `ts`.
    pub last_received: Option<Instant>,
    /// The same, as Unix ms on the Pi's clock (for display).
    pub last_received_ms: Option<i64>,
    /// `online` / `offline` from the MQTT status topic.
    pub status: Option<String>,
    /// When MQTT last delivered a new sample of this host: the poller polls the hosts MQTT
    /// has gone quiet on.
    pub last_mqtt: Option<Instant>,
    /// Server clock minus Pi clock at the newest sample, when beyond the allowed skew.
    pub clock_skew_s: Option<f64>,
    /// How long it may stay silent before it is stale ([`max_age_for`]), and its sampling
    /// interval as its newest snapshot declares it (its native step; zero: not known).
    pub max_age: Duration,
    pub interval: Duration,
    /// Samples in the history's raw tier, and the newest one's time (server clock).
    pub samples: u64,
    pub newest_ts_ms: Option<i64>,
    /// When an MQTT status last arrived for a host that never sent data (Pi clock, Unix ms).
    pub status_ms: Option<i64>,
    /// After a restart, until the first live sample: the restored row gaps are measured from
    /// (the highest seq whose time the Pi's clock had reached at start-up).
    pub restored_newest: Option<Point>,
    /// The Pi's own machine (`[self]`): never the default host while another has data.
    pub local: bool,
    /// Where the host stands against its rate bound ([`super::admission`]).
    pub pace: super::admission::Pace,
}

#[derive(Debug)]
pub struct Store {
    pub(super) max_hosts: usize,
    pub(super) max_events: usize,
    /// Bytes the job events may hold in all ([`crate::validate::names::event_bytes`]); the
    /// oldest go first beyond it or beyond `max_events`.
    pub(super) max_event_bytes: usize,
    pub(super) event_bytes: usize,
    pub(super) max_clock_skew: Duration,
    /// `health.max_age`: when set, every host's staleness bound; else each host's is derived
    /// from its sampling interval ([`max_age_for`]).
    pub(super) max_age: Option<Duration>,
    pub(super) hosts: BTreeMap<String, HostState>,
    /// Oldest first by time, across hosts.
    pub(super) events: VecDeque<JobEvent>,
    /// When each of `events` arrived (a counter), at the same index: eviction goes by arrival.
    pub(super) arrivals: VecDeque<u64>,
    pub(super) arrived: u64,
    pub(super) stats: IngestStats,
    /// The history database's counters as of its last commit (copied here so that `/health`
    /// never waits for a long query).
    pub(super) history: crate::tsdb::TsdbStats,
    /// Live samples per second a host may store at most (`history.max_samples_per_s`;
    /// `None`, as [`Store::new`] makes it for tests and benchmarks: no rate bound).
    pub(super) max_samples_per_s: Option<u32>,
}

pub use super::staleness::{max_age_for, DEFAULT_MAX_AGE};

impl Store {
    /// Sets the staleness override (`[health] max_age`; `None`: derived per host) and the
    /// allowed clock skew.
    pub fn with_health(mut self, max_age: Option<Duration>, max_clock_skew: Duration) -> Self {
        self.max_age = max_age;
        self.max_clock_skew = max_clock_skew;
        self
    }

    pub fn new(max_hosts: usize) -> Self {
        Self {
            max_hosts,
            max_events: 1000,
            max_event_bytes: 2 * 1024 * 1024,
            event_bytes: 0,
            max_clock_skew: Duration::from_secs(120),
            max_age: None,
            hosts: BTreeMap::new(),
            events: VecDeque::new(),
            arrivals: VecDeque::new(),
            arrived: 0,
            stats: IngestStats::default(),
            history: crate::tsdb::TsdbStats::default(),
            max_samples_per_s: None,
        }
    }

    pub(super) fn reject(&mut self, why: Rejection) {
        self.stats.rejected_total += 1;
        *self.stats.rejected.entry(why).or_insert(0) += 1;
    }

    /// A host the history knows from before a restart; `false` when there is no room.
    pub(super) fn restore(&mut self, known: &KnownHost) -> bool {
        if !self.hosts.contains_key(&known.name) && self.hosts.len() >= self.max_hosts {
            return false;
        }
        let state = self.hosts.entry(known.name.clone()).or_default();
        state.max_age = max_age_for(0.0, self.max_age);
        state.samples = known.samples;
        state.newest_ts_ms = known.newest_ts_ms;
        state.restored_newest =
            known
                .reference
                .map(|(seq, ts_ms, boot)| Point { seq, ts_ms, boot });
        true
    }

    /// Makes room for `host` if it is new: `Ok(Some(name))` when a stale host was forgotten
    /// for it, `Err` when `max_hosts` are known and none is stale.
    pub(super) fn admit(&mut self, host: &str, now_ms: i64) -> Result<Option<String>, ()> {
        if self.hosts.contains_key(host) {
            return Ok(None);
        }
        match self.make_room(now_ms) {
            Room::Free => Ok(None),
            Room::Evicted(name) => Ok(Some(name)),
            Room::Full => {
                self.stats.too_many_hosts_total += 1;
                Err(())
            }
        }
    }

    /// Records a snapshot the history has just stored (or that is not for the history: a
    /// duplicate is refused before). `now`/`now_ms` are the Pi's clocks at receipt.
    ///
    /// The newest sample is the one received last (MQTT or HTTP), whatever its `seq` or its
    /// server time say: one hostile or broken snapshot (a `seq` near 2^64, a time in 2200)
    /// holds the place only until the next real one arrives, and never across a restart.
    /// Backfilled samples are never the newest. A live sample whose `seq` is more than one
    /// past the previous newest reveals a gap, within one boot or across a reboot (the
    /// publisher's ring, and so `seq`, survives reboots).
    pub(super) fn record(
        &mut self,
        snapshot: Snapshot,
        source: Source,
        now: Instant,
        now_ms: i64,
        evicted: Option<String>,
        rates: &IngestReport,
    ) -> Outcome {
        let max_skew = self.max_clock_skew.as_secs_f64();
        let host = snapshot.host.clone();
        let configured = self.max_age;
        let state = self.hosts.entry(host.clone()).or_default();
        if state.max_age.is_zero() {
            state.max_age = max_age_for(0.0, configured);
        }
        let point = rates::point_of(&snapshot);
        if state
            .latest
            .as_deref()
            .is_some_and(|l| rates::point_of(l) == point)
        {
            self.stats.duplicates_total += 1;
            return Outcome::Duplicate;
        }
        state.samples += 1;
        state.newest_ts_ms = Some(
            state
                .newest_ts_ms
                .map_or(point.ts_ms, |t| t.max(point.ts_ms)),
        );
        let mut gap = None;
        if source != Source::Backfill {
            let reference = state
                .latest
                .as_deref()
                .map(rates::point_of)
                .or(state.restored_newest);
            if let Some(r) = reference.filter(|r| point.seq > r.seq.saturating_add(1)) {
                gap = Some(Gap {
                    host: host.clone(),
                    after_seq: r.seq,
                    before_seq: point.seq,
                    after_ts_ms: r.ts_ms,
                    before_ts_ms: point.ts_ms,
                });
            }
            let skew = snapshot.ts_ms.saturating_sub(now_ms) as f64 / 1000.0;
            let skewed = skew.abs() > max_skew;
            state.last_received = Some(now);
            state.last_received_ms = Some(now_ms);
            state.clock_skew_s = skewed.then_some(skew);
            if source == Source::Mqtt {
                state.last_mqtt = Some(now);
            }
            state.local |= source == Source::Local;
            state.restored_newest = None;
            state.max_age = max_age_for(snapshot.interval_s, configured);
            state.interval = Duration::try_from_secs_f64(snapshot.interval_s.clamp(0.0, 3600.0))
                .unwrap_or_default();
            state.previous = state.latest.take();
            state.latest = Some(Arc::new(snapshot));
            state.rates = rates.derived.clone().map(Arc::new);
            if skewed {
                self.stats.clock_skewed_total += 1;
            }
        }
        // A backfilled sample that precedes the newest makes the newest's rates computable.
        if let (Some((seq, next)), Some(latest)) = (&rates.next, &state.latest) {
            if latest.seq == *seq {
                state.rates = Some(Arc::new(next.clone()));
            }
        }
        match source {
            Source::Mqtt => self.stats.stored_mqtt_total += 1,
            Source::Http => self.stats.stored_http_total += 1,
            Source::Backfill => self.stats.stored_backfill_total += 1,
            Source::Local => self.stats.stored_local_total += 1,
        }
        Outcome::Stored { gap, evicted }
    }

    /// Room for one more host: free under `max_hosts`; else a host known only from a
    /// (retained) status, or the longest-silent stale host, is forgotten to make room.
    fn make_room(&mut self, now_ms: i64) -> Room {
        if self.hosts.len() < self.max_hosts {
            return Room::Free;
        }

        let victim = self
            .hosts
            .iter()
            .filter(|(_, h)| h.latest.is_none() && h.samples == 0)
            .map(|(name, _)| name.clone())
            .next()
            .or_else(|| {
                self.hosts
                    .iter()
                    .filter_map(|(name, h)| Some((last_heard_ms(h)?, name, h.max_age)))
                    .filter(|(heard, _, max_age)| {
                        *heard < now_ms.saturating_sub(max_age.as_millis() as i64)
                    })
                    .map(|(heard, name, _)| (heard, name))
                    .min()
                    .map(|(_, name)| name.clone())
            });
        match victim {
            Some(name) => {
                // The live slot only: its history and job events stay until `forget_after`
                // or `DELETE /hosts` (a NAS asleep overnight plus a few spoofed names must
                // not wipe two years of it).
                self.hosts.remove(&name);
                self.stats.evicted_total += 1;
                Room::Evicted(name)
            }
            None => Room::Full,
        }
    }

    pub(super) fn set_status(&mut self, host: &str, status: &str, now_ms: i64) {
        if !self.hosts.contains_key(host) && self.hosts.len() >= self.max_hosts {
            return;
        }
        let configured = self.max_age;
        let state = self.hosts.entry(host.to_owned()).or_default();
        if state.max_age.is_zero() {
            state.max_age = max_age_for(0.0, configured);
        }
        state.status = Some(status.to_owned());
        if state.latest.is_none() && state.samples == 0 {
            state.status_ms = Some(now_ms);
        }
    }

    /// Forgets a host: its state, history and job events. `false` when it was not known.
    /// `false` when it was not known live (its events, if any, go all the same: it may have
    /// been evicted from the live state earlier).
    pub(super) fn forget(&mut self, host: &str) -> bool {
        let live = self.hosts.remove(host).is_some();
        while let Some(i) = self.events.iter().position(|e| e.host() == host) {
            self.remove_event(i);
        }
        live
    }

    /// Hosts not heard from since `now_ms - forget_after` (Pi clock; for a host restored from
    /// disk and not heard from since, the time of its newest row).
    pub(super) fn silent_hosts(&self, now_ms: i64, forget_after: Duration) -> Vec<String> {
        let before = now_ms.saturating_sub(forget_after.as_millis() as i64);
        self.hosts
            .iter()
            .filter(|(_, h)| last_heard_ms(h).is_none_or(|t| t < before))
            .map(|(name, _)| name.clone())
            .collect()
    }

    /// The host `/metrics` shows without `?host=`: the configured one, else the one heard from
    /// most recently.
    pub(super) fn default_host(&self, configured: &str) -> Option<String> {
        if !configured.is_empty() {
            return Some(configured.to_owned());
        }
        self.hosts
            .iter()
            .filter(|(_, s)| s.latest.is_some())
            .max_by_key(|(_, s)| (!s.local, s.last_received))
            .map(|(h, _)| h.clone())
    }
}
