//! The Pi's store, as a cloneable handle (mini-redis `Db`): the hosts' live state in memory
//! ([`Store`], behind one lock held for a few lines) and their history in the tiered SQLite
//! store ([`Tsdb`], behind its own lock; the slow parts run off the async workers). Every
//! source (MQTT, HTTP polling, backfill) goes through [`SharedStore::ingest`].

mod admission;
mod events;
pub mod migrate;
mod open;
#[cfg(test)]
mod prop_tests;
mod reads;
mod rw;
mod staleness;
mod state;
mod tasks;
#[cfg(test)]
pub(crate) mod tests;

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, MutexGuard};

use broker::{JobEvent, Snapshot};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use crate::tsdb::{
    Attempt, Fate, Hole, IngestReport, Lost, QueryError, SeriesPoints, SeriesQuery, Tier, Tsdb,
    TsdbError, TsdbStats,
};
use crate::validate::Rejection;
pub use admission::{Pace, DEFAULT_MAX_SAMPLES_PER_S};
pub use open::OpenError;
pub use state::{
    max_age_for, Gap, HostState, IngestStats, Outcome, Source, Store, DEFAULT_MAX_AGE,
};
pub use tasks::Maintenance;

/// The store shared by the ingest paths and the HTTP handlers. A panic while one of its locks
/// was held (a bug) poisons it; from then on every call fails and [`SharedStore::failed`] is
/// cancelled, so `run` stops the daemon with an error and systemd restarts it from the
/// history on disk, instead of limping on with samples dropped.
#[derive(Debug, Clone)]
pub struct SharedStore {
    shared: Arc<Shared>,
}

#[derive(Debug)]
struct Shared {
    state: Mutex<Store>,
    tsdb: Mutex<Tsdb>,
    failed: CancellationToken,
}

/// The store's lock was poisoned by a panic; the daemon is stopping.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("the store was poisoned by a panic; the daemon is stopping")]
pub struct Poisoned;

/// A host's newest sample, the one before it, and the newest's rates (the one rate rule).
#[derive(Debug, Clone)]
pub struct Latest {
    pub latest: Arc<Snapshot>,
    pub previous: Option<Arc<Snapshot>>,
    pub rates: Option<Arc<crate::rates::Derived>>,
    /// The host's staleness bound (the one judgment's).
    pub max_age: std::time::Duration,
}

/// Why a history read failed.
#[derive(Debug, thiserror::Error)]
pub enum HistoryError {
    #[error(transparent)]
    Poisoned(#[from] Poisoned),
    #[error(transparent)]
    Query(#[from] QueryError),
    #[error(transparent)]
    Db(#[from] TsdbError),
}

impl SharedStore {
    pub fn new(store: Store, tsdb: Tsdb) -> Self {
        Self {
            shared: Arc::new(Shared {
                state: Mutex::new(store),
                tsdb: Mutex::new(tsdb),
                failed: CancellationToken::new(),
            }),
        }
    }

    /// A store whose history lives in memory only, with the default retention (tests,
    /// benchmarks, `history.persist = false`).
    pub fn in_memory(max_hosts: usize) -> Result<Self, TsdbError> {
        let day = 86_400_000;
        let retention = crate::tsdb::Retention {
            raw_ms: 2 * day,
            minute_ms: 14 * day,
            hour_ms: 730 * day,
        };
        Ok(Self::new(
            Store::new(max_hosts),
            Tsdb::open_in_memory(retention, 500, 0)?,
        ))
    }

    fn poisoned(&self) -> Poisoned {
        if !self.shared.failed.is_cancelled() {
            tracing::error!("the store lock was poisoned by a panic (a bug, logged above): stopping so that the service manager restarts the daemon");
            self.shared.failed.cancel();
        }
        Poisoned
    }

    /// Locks the live state; keep the guard for a few lines only.
    fn lock(&self) -> Result<MutexGuard<'_, Store>, Poisoned> {
        self.shared.state.lock().map_err(|_| self.poisoned())
    }

    fn tsdb(&self) -> Result<MutexGuard<'_, Tsdb>, Poisoned> {
        self.shared.tsdb.lock().map_err(|_| self.poisoned())
    }

    /// Every host's live state, by name, as of the call (a copy: holding it holds no lock).
    pub fn hosts(&self) -> Result<Vec<(String, HostState)>, Poisoned> {
        let state = self.lock()?;
        Ok(state
            .hosts
            .iter()
            .map(|(name, h)| (name.clone(), h.clone()))
            .collect())
    }

    /// One host's live state, as of the call.
    pub fn host(&self, name: &str) -> Result<Option<HostState>, Poisoned> {
        Ok(self.lock()?.hosts.get(name).cloned())
    }

    /// The names of the hosts the Pi knows.
    pub fn host_names(&self) -> Result<Vec<String>, Poisoned> {
        Ok(self.lock()?.hosts.keys().cloned().collect())
    }

    /// Whether the Pi knows `host`.
    pub fn knows(&self, host: &str) -> Result<bool, Poisoned> {
        Ok(self.lock()?.hosts.contains_key(host))
    }

    /// The host shown without `?host=`: `configured` when set, else the one heard from most
    /// recently.
    pub fn default_host(&self, configured: &str) -> Result<Option<String>, Poisoned> {
        Ok(self.lock()?.default_host(configured))
    }

    /// The newest sample of `host` and the one before it (for rates).
    pub fn latest(&self, host: &str) -> Result<Option<Latest>, Poisoned> {
        let state = self.lock()?;
        Ok(state.hosts.get(host).and_then(|h| {
            Some(Latest {
                latest: h.latest.clone()?,
                previous: h.previous.clone(),
                rates: h.rates.clone(),
                max_age: h.max_age,
            })
        }))
    }

    /// The job events kept, oldest first, of the hosts `keep` accepts.
    pub fn events(&self, keep: impl Fn(&str) -> bool) -> Result<Vec<JobEvent>, Poisoned> {
        let state = self.lock()?;
        Ok(state
            .events
            .iter()
            .filter(|e| keep(e.host()))
            .cloned()
            .collect())
    }

    /// Each host's newest finished job among the events kept (Home Assistant's "Last job").
    pub fn newest_job_ends(&self) -> Result<BTreeMap<String, broker::JobEnd>, Poisoned> {
        let state = self.lock()?;
        let mut out = BTreeMap::new();
        for e in state.events.iter().rev() {
            if let JobEvent::JobEnd(end) = e {
                if !out.contains_key(&end.host) {
                    out.insert(end.host.clone(), end.clone());
                }
            }
        }
        Ok(out)
    }

    /// Adds a job event unless it is already kept (MQTT and HTTP may both deliver it).
    pub fn add_event(&self, event: JobEvent) -> Result<bool, Poisoned> {
        Ok(self.lock()?.add_event(event))
    }

    /// Counts a payload refused at validation.
    pub fn reject(&self, why: Rejection) {
        if let Ok(mut state) = self.lock() {
            state.reject(why);
        }
    }

    /// Records a host's MQTT `online`/`offline` status.
    pub fn set_status(&self, host: &str, status: &str, now_ms: i64) -> Result<(), Poisoned> {
        self.lock()?.set_status(host, status, now_ms);
        Ok(())
    }

    /// Hosts not heard from since `now_ms - forget_after`: live ones, and those the history
    /// alone still holds (evicted at `max_hosts`, or beyond it at start-up) whose newest row
    /// is older than that.
    pub fn silent_hosts(
        &self,
        now_ms: i64,
        forget_after: std::time::Duration,
    ) -> Result<Vec<String>, HistoryError> {
        let (mut silent, live) = {
            let state = self.lock()?;
            let live: std::collections::BTreeSet<String> = state.hosts.keys().cloned().collect();
            (state.silent_hosts(now_ms, forget_after), live)
        };
        let before = now_ms.saturating_sub(forget_after.as_millis() as i64);
        let dormant = self.tsdb()?.dormant_hosts(&|h| live.contains(h), before)?;
        silent.extend(dormant);
        Ok(silent)
    }

    /// The ingest counters, and the history's as of its last commit (for `/health` and
    /// `/prometheus`: never waits for a long query).
    pub fn counters(&self) -> Result<(IngestStats, TsdbStats), Poisoned> {
        let state = self.lock()?;
        Ok((state.stats.clone(), state.history))
    }

    /// Poisons the live state's lock, as a panic in a critical section would.
    #[cfg(test)]
    pub(crate) fn poison_for_test(&self) {
        let me = self.clone();
        let _ = std::thread::spawn(move || {
            let _guard = me.shared.state.lock();
            panic!("a bug while holding the store");
        })
        .join();
    }

    /// Cancelled once the store is poisoned.
    pub fn failed(&self) -> CancellationToken {
        self.shared.failed.clone()
    }

    /// Stores one validated snapshot: history first (which also tells a duplicate), then the
    /// live state. `now`/`now_ms` are the Pi's clocks at receipt.
    pub fn ingest(&self, snapshot: Snapshot, source: Source, now: Instant, now_ms: i64) -> Outcome {
        let Ok(evicted) = self.admit(&snapshot.host, now_ms) else {
            return Outcome::Failed;
        };
        let evicted = match evicted {
            Ok(evicted) => evicted,
            Err(()) => return Outcome::TooManyHosts,
        };
        match self.admit_rate(&snapshot, source, now) {
            Ok(true) => {}
            Ok(false) => return Outcome::RateLimited,
            Err(_) => return Outcome::Failed,
        }
        if let Some(gone) = &evicted {
            tracing::warn!(host = %gone, new = %snapshot.host, "history.max_hosts reached: the longest-silent stale host gave its live slot (its history is kept)");
        }
        let stored = match self.tsdb() {
            Ok(mut db) => db.ingest(&snapshot, source != Source::Backfill, now_ms),
            Err(_) => return Outcome::Failed,
        };
        let Ok(mut state) = self.lock() else {
            return Outcome::Failed;
        };
        let outcome = match stored {
            Ok(report) if report.duplicate => {
                state.stats.duplicates_total += 1;
                Outcome::Duplicate
            }
            Ok(report) => state.record(snapshot, source, now, now_ms, evicted, &report),
            Err(error) => {
                tracing::warn!(host = %snapshot.host, %error, "cannot store a sample in the history");
                state.stats.history_errors_total += 1;
                state.record(
                    snapshot,
                    source,
                    now,
                    now_ms,
                    evicted,
                    &IngestReport::default(),
                )
            }
        };
        drop(state);
        if let Outcome::Stored { gap: Some(gap), .. } = &outcome {
            // The hole commits with the sample that revealed it: a restart, a failed backfill
            // or a full queue cannot lose it.
            let hole = Hole {
                host: gap.host.clone(),
                after_seq: gap.after_seq,
                before_seq: gap.before_seq,
                after_ts_ms: gap.after_ts_ms,
                before_ts_ms: gap.before_ts_ms,
                tries: 0,
            };
            match self.tsdb() {
                Ok(mut db) => {
                    if let Err(error) = db.add_hole(&hole, now_ms) {
                        tracing::warn!(host = %gap.host, %error, "cannot record a hole in the history");
                    }
                }
                Err(_) => return Outcome::Failed,
            }
        }
        outcome
    }

    /// The holes due for a backfill attempt at `now_ms` (at most `limit`).
    pub fn due_holes(&self, now_ms: i64, limit: usize) -> Result<Vec<Hole>, HistoryError> {
        Ok(self.tsdb()?.due_holes(now_ms, limit)?)
    }

    /// Settles a hole after a backfill attempt: filled, retried later, or recorded as lost.
    pub fn settle_hole(
        &self,
        hole: &Hole,
        attempt: &Attempt,
        now_ms: i64,
    ) -> Result<Fate, HistoryError> {
        Ok(self.tsdb()?.settle_hole(hole, attempt, now_ms)?)
    }

    /// The regions of `host`'s history lost for good, overlapping the range.
    pub fn lost(&self, host: &str, from_ms: i64, to_ms: i64) -> Result<Vec<Lost>, HistoryError> {
        Ok(self.tsdb()?.lost(host, from_ms, to_ms)?)
    }

    fn admit(&self, host: &str, now_ms: i64) -> Result<Result<Option<String>, ()>, Poisoned> {
        Ok(self.lock()?.admit(host, now_ms))
    }

    fn forget_history(&self, host: &str) -> Result<bool, HistoryError> {
        Ok(self.tsdb()?.forget(host)?)
    }

    /// Forgets a host now: its live state, job events and history. `false` when unknown.
    pub fn forget(&self, host: &str) -> Result<bool, HistoryError> {
        let known = self.lock()?.forget(host);
        let had_history = self.forget_history(host)?;
        if known || had_history {
            self.lock()?.stats.forgotten_total += 1;
        }
        Ok(known || had_history)
    }

    /// The flat `/history` rows of `host` (raw tier), ascending; a range of more than
    /// [`crate::tsdb::MAX_HISTORY_ROWS`] is refused before it is read. Blocking: call it from
    /// `spawn_blocking`.
    pub fn history(
        &self,
        host: &str,
        from_ms: i64,
        to_ms: i64,
    ) -> Result<Vec<crate::tsdb::FlatRow>, HistoryError> {
        Ok(self
            .tsdb()?
            .flat_rows_at_most(host, from_ms, to_ms, crate::tsdb::MAX_HISTORY_ROWS)?)
    }

    /// Series from the finest tier that covers the range. Blocking: call it from
    /// `spawn_blocking`.
    pub fn series(
        &self,
        q: &SeriesQuery<'_>,
        now_ms: i64,
    ) -> Result<(Tier, Vec<SeriesPoints>), HistoryError> {
        Ok(self.tsdb()?.query(q, now_ms)?)
    }

    /// Commits what was stored since the last call (the history writer calls it every
    /// `history.commit_interval`: a power cut loses at most that).
    pub fn commit(&self) -> Result<(), HistoryError> {
        let (done, stats) = {
            let mut db = self.tsdb()?;
            (db.commit(), db.stats)
        };
        // Copied whatever the outcome: a failing disk shows in `/health` (rollbacks).
        self.lock()?.history = stats;
        Ok(done?)
    }

    /// Writes what the last commits left buffered of the raw tier (a clean stop, after the
    /// last commit; see `Tsdb::flush`).
    pub fn flush_history(&self) -> Result<(), HistoryError> {
        Ok(self.tsdb()?.flush()?)
    }

    /// Whether the history holds a host it never committed (the writer then commits at once).
    pub fn history_holds_a_new_host(&self) -> Result<bool, HistoryError> {
        Ok(self.tsdb()?.holds_a_new_host())
    }

    /// Copies the history's counters to `/health` (the writer does it every second, between
    /// commits).
    pub fn refresh_stats(&self) -> Result<(), HistoryError> {
        let stats = self.tsdb()?.stats;
        self.lock()?.history = stats;
        Ok(())
    }

    /// Closes finished bucket rows and prunes by retention (every minute or so).
    pub fn maintain(&self, now_ms: i64) -> Result<(), HistoryError> {
        Ok(self.tsdb()?.maintain(now_ms)?)
    }

    /// The history's counters, for `/health`.
    pub fn history_stats(&self) -> Result<TsdbStats, Poisoned> {
        Ok(self.tsdb()?.stats)
    }

    /// Registers the hosts the history knows from before a restart (`horizon_ms`: the Pi's
    /// clock plus the allowed skew).
    pub fn restore_hosts(&self, horizon_ms: i64) -> Result<usize, HistoryError> {
        let known = self.tsdb()?.known_hosts(horizon_ms)?;
        let mut state = self.lock()?;
        let mut restored = 0;
        for host in &known {
            if state.restore(host) {
                tracing::info!(host = %host.name, rows = host.samples, "history restored");
                restored += 1;
            } else {
                tracing::warn!(host = %host.name, "history kept but host not tracked: more hosts than history.max_hosts");
            }
        }
        Ok(restored)
    }
}
