//! Per-host state: the latest snapshots, a bounded history of compact rows, job events, and
//! ingest counters. Every source (MQTT, HTTP polling, backfill) goes through [`Store::ingest`],
//! which deduplicates by (host, seq) and reports gaps for backfill.

use std::collections::{BTreeMap, VecDeque};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use broker::{JobEvent, Snapshot};
use serde::Serialize;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use crate::rates;
pub use crate::row::{HistoryRow, Row};
use crate::validate::Rejection;

/// The store shared by the ingest paths and the HTTP handlers: a cloneable handle. A panic
/// while it was locked (a bug) poisons it; from then on every [`SharedStore::lock`] fails and
/// [`SharedStore::failed`] is cancelled, so `run` stops the daemon with an error and systemd
/// restarts it from the history on disk, instead of limping on with samples dropped.
#[derive(Debug, Clone)]
pub struct SharedStore {
    inner: Arc<Mutex<Store>>,
    failed: CancellationToken,
}

/// The store's lock was poisoned by a panic; the daemon is stopping.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("the store was poisoned by a panic; the daemon is stopping")]
pub struct Poisoned;

impl SharedStore {
    pub fn new(store: Store) -> Self {
        Self {
            inner: Arc::new(Mutex::new(store)),
            failed: CancellationToken::new(),
        }
    }

    /// Locks the store; keep the guard for a few lines only.
    pub fn lock(&self) -> Result<MutexGuard<'_, Store>, Poisoned> {
        self.inner.lock().map_err(|_| {
            if !self.failed.is_cancelled() {
                tracing::error!("the store lock was poisoned by a panic (a bug, logged above): stopping so that the service manager restarts the daemon");
                self.failed.cancel();
            }
            Poisoned
        })
    }

    /// Cancelled once the store is poisoned.
    pub fn failed(&self) -> CancellationToken {
        self.failed.clone()
    }
}

/// Where a snapshot came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Source {
    Mqtt,
    Http,
    Backfill,
}

/// When a host was last heard from, on the Pi's clock where known (Unix ms).
fn last_heard_ms(h: &HostState) -> Option<i64> {
    h.last_received_ms
        .or_else(|| h.rows.back().map(|r| r.ts_ms))
        .or(h.status_ms)
}

enum Room {
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
}

#[derive(Debug, Clone, PartialEq)]
pub enum Outcome {
    /// Stored; `gap` when samples are missing before it.
    Stored {
        row: Row,
        gap: Option<Gap>,
        /// A stale host that was forgotten to make room for this new one.
        evicted: Option<String>,
    },
    Duplicate,
    /// A new host beyond `max_hosts`.
    TooManyHosts,
    /// Not stored: the store is poisoned and the daemon is stopping.
    Failed,
}

/// Counters for `/health`.
#[derive(Debug, Default, Clone, Serialize)]
pub struct IngestStats {
    pub stored_mqtt_total: u64,
    pub stored_http_total: u64,
    pub stored_backfill_total: u64,
    pub duplicates_total: u64,
    pub rejected_total: u64,
    pub rejected: BTreeMap<Rejection, u64>,
    pub too_many_hosts_total: u64,
    /// Hosts forgotten: silent for `history.forget_after`, or `DELETE /hosts/{host}`.
    pub forgotten_total: u64,
    /// Stale hosts that gave way to a new host at `max_hosts`.
    pub evicted_total: u64,
    /// Snapshots whose server clock was far from the Pi's (kept, flagged).
    pub clock_skewed_total: u64,
    pub events_total: u64,
    /// History rows that could not be queued for the disk (kept in memory).
    pub persist_dropped_total: u64,
}

#[derive(Debug, Default)]
pub struct HostState {
    pub latest: Option<Arc<Snapshot>>,
    /// The sample before `latest`, for per-device rates.
    pub previous: Option<Arc<Snapshot>>,
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
    /// Ascending by time.
    pub rows: VecDeque<Row>,
    /// When an MQTT status last arrived for a host that never sent data (Pi clock, Unix ms).
    pub status_ms: Option<i64>,
    /// After a restart, until the first live sample: the restored row gaps are measured from
    /// (the highest seq whose time the Pi's clock had reached at start-up).
    pub restored_newest: Option<Row>,
}

#[derive(Debug)]
pub struct Store {
    pub capacity: usize,
    pub max_hosts: usize,
    pub max_events: usize,
    pub max_clock_skew: Duration,
    /// A host silent this long is stale; when `max_hosts` is reached, the longest-silent
    /// stale host gives way to a new one (so ghosts from spoofed messages cannot lock out a
    /// real server).
    pub stale_after: Duration,
    pub hosts: BTreeMap<String, HostState>,
    /// Oldest first, across hosts.
    pub events: VecDeque<JobEvent>,
    pub stats: IngestStats,
}

impl Store {
    pub fn new(capacity: usize, max_hosts: usize) -> Self {
        Self {
            capacity: capacity.max(2),
            max_hosts,
            max_events: 1000,
            max_clock_skew: Duration::from_secs(120),
            stale_after: Duration::from_secs(45),
            hosts: BTreeMap::new(),
            events: VecDeque::new(),
            stats: IngestStats::default(),
        }
    }

    pub fn reject(&mut self, why: Rejection) {
        self.stats.rejected_total += 1;
        *self.stats.rejected.entry(why).or_insert(0) += 1;
    }

    /// Loads persisted rows of one host (any order, duplicates allowed); `false` when there
    /// is no room for another host. `now_ms` is the Pi's clock: a restored row dated beyond it
    /// (plus the allowed skew) is kept in the history but never taken as the host's newest.
    pub fn restore(&mut self, host: &str, mut rows: Vec<Row>, now_ms: i64) -> bool {
        if !self.hosts.contains_key(host) && self.hosts.len() >= self.max_hosts {
            return false;
        }
        rows.sort_by_key(|r| (r.ts_ms, r.seq));
        rows.dedup_by_key(|r| (r.ts_ms, r.seq));
        let skip = rows.len().saturating_sub(self.capacity);
        let mut deque = VecDeque::with_capacity(self.capacity);
        deque.extend(rows.into_iter().skip(skip));
        let horizon = now_ms.saturating_add(self.max_clock_skew.as_millis() as i64);
        let state = self.hosts.entry(host.to_owned()).or_default();
        state.restored_newest = deque
            .iter()
            .filter(|r| r.ts_ms <= horizon)
            .max_by_key(|r| r.seq)
            .copied();
        state.rows = deque;
        true
    }

    /// Stores one validated snapshot. `now`/`now_ms` are the Pi's clocks at receipt.
    ///
    /// The newest sample is the one received last (MQTT or HTTP), whatever its `seq` or its
    /// server time say: one hostile or broken snapshot (a `seq` near 2^64, a time in 2200)
    /// holds the place only until the next real one arrives, and never across a restart.
    /// Backfilled samples are never the newest. A live sample whose `seq` is more than one
    /// past the previous newest reveals a gap, within one boot or across a reboot (the
    /// publisher's ring, and so `seq`, survives reboots). History rows stay in time order;
    /// rates pair seq neighbours (see [`Store::history`]).
    pub fn ingest(
        &mut self,
        snapshot: Snapshot,
        source: Source,
        now: Instant,
        now_ms: i64,
    ) -> Outcome {
        let mut evicted = None;
        if !self.hosts.contains_key(&snapshot.host) {
            match self.make_room(now_ms) {
                Room::Free => {}
                Room::Evicted(name) => evicted = Some(name),
                Room::Full => {
                    self.stats.too_many_hosts_total += 1;
                    return Outcome::TooManyHosts;
                }
            }
        }
        let capacity = self.capacity;
        let max_skew = self.max_clock_skew.as_secs_f64();
        let host = snapshot.host.clone();
        // Exactly `capacity` rows: a doubling VecDeque would hold up to 40 % more.
        let state = self.hosts.entry(host.clone()).or_insert_with(|| HostState {
            rows: VecDeque::with_capacity(capacity),
            ..HostState::default()
        });
        let row = Row::of(&snapshot);
        let pos = state
            .rows
            .partition_point(|r| (r.ts_ms, r.seq) < (row.ts_ms, row.seq));
        let same_sample = |r: &Row| r.ts_ms == row.ts_ms && r.seq == row.seq && r.boot == row.boot;
        if state.rows.get(pos).is_some_and(same_sample)
            || state
                .latest
                .as_deref()
                .is_some_and(|l| same_sample(&Row::of(l)))
        {
            self.stats.duplicates_total += 1;
            return Outcome::Duplicate;
        }
        let mut gap = None;
        if source != Source::Backfill {
            let reference = state
                .latest
                .as_deref()
                .map(rates::point_of)
                .or_else(|| state.restored_newest.as_ref().map(Row::point));
            if let Some(r) = reference.filter(|r| row.seq > r.seq.saturating_add(1)) {
                gap = Some(Gap {
                    host: host.clone(),
                    after_seq: r.seq,
                    before_seq: row.seq,
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
            state.restored_newest = None;
            state.previous = state.latest.take();
            state.latest = Some(Arc::new(snapshot));
            if skewed {
                self.stats.clock_skewed_total += 1;
            }
        }
        state.rows.insert(pos, row);
        while state.rows.len() > capacity {
            state.rows.pop_front();
        }
        match source {
            Source::Mqtt => self.stats.stored_mqtt_total += 1,
            Source::Http => self.stats.stored_http_total += 1,
            Source::Backfill => self.stats.stored_backfill_total += 1,
        }
        Outcome::Stored { row, gap, evicted }
    }

    /// Room for one more host: free under `max_hosts`; else a host known only from a
    /// (retained) status, or the longest-silent stale host, is forgotten to make room.
    fn make_room(&mut self, now_ms: i64) -> Room {
        if self.hosts.len() < self.max_hosts {
            return Room::Free;
        }
        let stale_before = now_ms.saturating_sub(self.stale_after.as_millis() as i64);
        let victim = self
            .hosts
            .iter()
            .filter(|(_, h)| h.latest.is_none() && h.rows.is_empty())
            .map(|(name, _)| name.clone())
            .next()
            .or_else(|| {
                self.hosts
                    .iter()
                    .filter_map(|(name, h)| Some((last_heard_ms(h)?, name)))
                    .filter(|(heard, _)| *heard < stale_before)
                    .min()
                    .map(|(_, name)| name.clone())
            });
        match victim {
            Some(name) => {
                self.forget(&name);
                self.stats.forgotten_total -= 1;
                self.stats.evicted_total += 1;
                Room::Evicted(name)
            }
            None => Room::Full,
        }
    }

    pub fn set_status(&mut self, host: &str, status: &str, now_ms: i64) {
        if !self.hosts.contains_key(host) && self.hosts.len() >= self.max_hosts {
            return;
        }
        let state = self.hosts.entry(host.to_owned()).or_default();
        state.status = Some(status.to_owned());
        if state.latest.is_none() && state.rows.is_empty() {
            state.status_ms = Some(now_ms);
        }
    }

    /// Forgets a host: its state, history and job events. `false` when it was not known.
    pub fn forget(&mut self, host: &str) -> bool {
        if self.hosts.remove(host).is_none() {
            return false;
        }
        self.events.retain(|e| e.host() != host);
        self.stats.forgotten_total += 1;
        true
    }

    /// Hosts not heard from since `now_ms - forget_after` (Pi clock; for a host restored from
    /// disk and not heard from since, the time of its newest row).
    pub fn silent_hosts(&self, now_ms: i64, forget_after: Duration) -> Vec<String> {
        let before = now_ms.saturating_sub(forget_after.as_millis() as i64);
        self.hosts
            .iter()
            .filter(|(_, h)| last_heard_ms(h).is_none_or(|t| t < before))
            .map(|(name, _)| name.clone())
            .collect()
    }

    /// Adds a job event unless it is already there (MQTT and HTTP may both deliver it).
    pub fn add_event(&mut self, event: JobEvent) -> bool {
        let same = |e: &JobEvent| {
            e.run_id() == event.run_id()
                && std::mem::discriminant(e) == std::mem::discriminant(&event)
        };
        if self.events.iter().rev().any(same) {
            return false;
        }
        let at = self.events.partition_point(|e| e.ts_ms() <= event.ts_ms());
        self.events.insert(at, event);
        while self.events.len() > self.max_events {
            self.events.pop_front();
        }
        self.stats.events_total += 1;
        true
    }

    /// The host `/metrics` shows without `?host=`: the configured one, else the one heard from
    /// most recently.
    pub fn default_host(&self, configured: &str) -> Option<String> {
        if !configured.is_empty() {
            return Some(configured.to_owned());
        }
        self.hosts
            .iter()
            .filter(|(_, s)| s.latest.is_some())
            .max_by_key(|(_, s)| s.last_received)
            .map(|(h, _)| h.clone())
    }

    /// History rows of `host` with `from_ms <= time <= to_ms`, ascending by time. Each row's
    /// rates come from the row one `seq` before it in the same boot, wherever that row is in
    /// time: a server clock stepped back interleaves one boot's rows, and time neighbours would
    /// pair samples minutes apart in `seq`.
    pub fn history(&self, host: &str, from_ms: i64, to_ms: i64) -> Vec<HistoryRow> {
        let Some(state) = self.hosts.get(host) else {
            return Vec::new();
        };
        let rows = &state.rows;
        let start = rows.partition_point(|r| r.ts_ms < from_ms);
        let end = rows.partition_point(|r| r.ts_ms <= to_ms).max(start);
        // Built only when some row's time neighbour is not its seq neighbour.
        let mut by_seq: Option<Vec<(u64, usize)>> = None;
        let mut out = Vec::with_capacity(end - start);
        for i in start..end {
            let row = &rows[i];
            let is_pred = |p: &Row| {
                row.seq.checked_sub(1) == Some(p.seq)
                    && (p.boot == row.boot || p.boot == 0 || row.boot == 0)
            };
            let previous = match i.checked_sub(1).map(|j| &rows[j]) {
                Some(p) if is_pred(p) => Some(p),
                _ => row.seq.checked_sub(1).and_then(|want| {
                    let index = by_seq.get_or_insert_with(|| {
                        let mut v: Vec<(u64, usize)> =
                            rows.iter().enumerate().map(|(j, r)| (r.seq, j)).collect();
                        v.sort_unstable();
                        v
                    });
                    let at = index.partition_point(|&(seq, _)| seq < want);
                    index[at..]
                        .iter()
                        .take_while(|&&(seq, _)| seq == want)
                        .map(|&(_, j)| &rows[j])
                        .find(|p| is_pred(p))
                }),
            };
            out.push(HistoryRow::of(host, row, previous));
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use broker::{Cpu, Disk};

    fn snap(host: &str, seq: u64, ts_s: i64, read: u64) -> Snapshot {
        Snapshot {
            v: 1,
            host: host.into(),
            seq,
            ts: ts_s,
            ts_ms: ts_s * 1000,
            boot_id: Some("b1".into()),
            cpu: Some(Cpu {
                usage_percent: Some(45.23),
                ..Cpu::default()
            }),
            disk: Some(Disk {
                read_sectors: read,
                write_sectors: read,
                ..Disk::default()
            }),
            ..Snapshot::default()
        }
    }

    fn ingest(store: &mut Store, s: Snapshot, source: Source) -> Outcome {
        let now_ms = s.ts_ms;
        store.ingest(s, source, Instant::now(), now_ms)
    }

    #[tokio::test]
    async fn dedupes_finds_gaps_and_backfills_in_order() {
        let mut store = Store::new(100, 10);
        assert!(matches!(
            ingest(&mut store, snap("t", 1, 100, 0), Source::Mqtt),
            Outcome::Stored { gap: None, .. }
        ));
        assert_eq!(
            ingest(&mut store, snap("t", 1, 100, 0), Source::Http),
            Outcome::Duplicate
        );
        let Outcome::Stored { gap, .. } = ingest(&mut store, snap("t", 4, 145, 450), Source::Mqtt)
        else {
            panic!()
        };
        assert_eq!(
            gap,
            Some(Gap {
                host: "t".into(),
                after_seq: 1,
                before_seq: 4
            })
        );
        for (seq, ts) in [(3, 130), (2, 115)] {
            assert!(matches!(
                ingest(
                    &mut store,
                    snap("t", seq, ts, (ts - 100) as u64 * 10),
                    Source::Backfill
                ),
                Outcome::Stored { gap: None, .. }
            ));
        }
        let rows = store.history("t", 0, i64::MAX);
        assert_eq!(rows.iter().map(|r| r.seq).collect::<Vec<_>>(), [1, 2, 3, 4]);
        assert_eq!(
            rows[0].disk_read_sectors_rate, None,
            "first row has no predecessor"
        );
        assert_eq!(rows[1].disk_read_sectors_rate, Some(10.0));
        assert_eq!(
            rows[3].disk_read_sectors_rate,
            Some(10.0),
            "recomputed around backfill"
        );
        assert_eq!(rows[3].cpu_usage_percent, Some(45.23));
        assert_eq!(store.stats.stored_backfill_total, 2);
        assert_eq!(store.stats.duplicates_total, 1);
        assert_eq!(
            store.hosts["t"].latest.as_ref().unwrap().seq,
            4,
            "backfill never replaces latest"
        );
    }

    #[tokio::test]
    async fn history_is_bounded_and_filtered_by_time() {
        let mut store = Store::new(10, 10);
        for seq in 1..=25 {
            ingest(
                &mut store,
                snap("t", seq, 100 + 15 * seq as i64, 0),
                Source::Mqtt,
            );
        }
        assert_eq!(store.hosts["t"].rows.len(), 10);
        let rows = store.history("t", 115_000 + 15_000 * 17, 115_000 + 15_000 * 19);
        assert_eq!(rows.iter().map(|r| r.seq).collect::<Vec<_>>(), [18, 19, 20]);
        assert!(store.history("nobody", 0, i64::MAX).is_empty());
    }

    #[tokio::test]
    async fn reboot_and_reset_series_are_not_gaps() {
        let mut store = Store::new(100, 10);
        ingest(&mut store, snap("t", 10, 100, 5000), Source::Mqtt);
        // seq goes on across the reboot (the ring is on disk): contiguous, no gap.
        let mut rebooted = snap("t", 11, 115, 3);
        rebooted.boot_id = Some("b2".into());
        assert!(matches!(
            ingest(&mut store, rebooted, Source::Mqtt),
            Outcome::Stored { gap: None, .. }
        ));
        // The publisher lost its ring: seq starts again at 1, later in time.
        assert!(matches!(
            ingest(&mut store, snap("t", 1, 130, 9), Source::Mqtt),
            Outcome::Stored { gap: None, .. }
        ));
        let rows = store.history("t", 0, i64::MAX);
        assert_eq!(
            rows[1].disk_read_sectors_rate, None,
            "no rate across a reboot"
        );
        assert_eq!(
            rows[2].disk_read_sectors_rate, None,
            "no rate when seq went back"
        );
        assert!(rows
            .iter()
            .all(|r| r.disk_read_sectors_rate.is_none_or(|x| x >= 0.0)));
    }

    #[tokio::test]
    async fn hosts_are_bounded_and_events_deduplicated() {
        let mut store = Store::new(10, 2);
        ingest(&mut store, snap("a", 1, 100, 0), Source::Mqtt);
        ingest(&mut store, snap("b", 1, 100, 0), Source::Mqtt);
        assert_eq!(
            ingest(&mut store, snap("c", 1, 100, 0), Source::Mqtt),
            Outcome::TooManyHosts
        );
        let e = JobEvent::JobStart(broker::JobStart {
            run_id: "r".into(),
            ..Default::default()
        });
        assert!(store.add_event(e.clone()));
        assert!(!store.add_event(e));
        assert_eq!(store.events.len(), 1);
    }

    #[tokio::test]
    async fn one_snapshot_from_the_future_does_not_freeze_the_host() {
        let mut store = Store::new(100, 10);
        ingest(&mut store, snap("t", 1, 100, 0), Source::Mqtt);
        // A clock years ahead for one sample...
        ingest(&mut store, snap("t", 2, 4_000_000_000, 10), Source::Mqtt);
        // ...and the next ones are still the newest, by seq.
        let Outcome::Stored { gap, .. } = ingest(&mut store, snap("t", 3, 130, 20), Source::Mqtt)
        else {
            panic!()
        };
        assert_eq!(gap, None);
        assert_eq!(store.hosts["t"].latest.as_ref().unwrap().seq, 3);
        assert_eq!(
            ingest(&mut store, snap("t", 3, 130, 20), Source::Http),
            Outcome::Duplicate
        );
        let rows = store.history("t", 0, i64::MAX);
        assert_eq!(
            rows.iter().map(|r| r.seq).collect::<Vec<_>>(),
            [1, 3, 2],
            "time order"
        );
        // Absurd seqs do not overflow.
        let big = snap("t", u64::MAX, 145, 30);
        assert!(matches!(
            ingest(&mut store, big, Source::Mqtt),
            Outcome::Stored { .. }
        ));
    }

    #[tokio::test]
    async fn status_only_hosts_give_way_to_real_ones() {
        let mut store = Store::new(10, 2);
        store.set_status("ghost", "offline", 100_000);
        ingest(&mut store, snap("a", 1, 100, 0), Source::Mqtt);
        assert!(matches!(
            ingest(&mut store, snap("b", 1, 100, 0), Source::Mqtt),
            Outcome::Stored { .. }
        ));
        assert!(!store.hosts.contains_key("ghost"));
        assert!(!store.restore("c", vec![], 0), "restore respects max_hosts");
    }

    #[tokio::test]
    async fn a_far_off_server_clock_is_kept_but_flagged() {
        let mut store = Store::new(10, 10);
        let s = snap("t", 1, 1_700_000_000, 0);
        // The Pi's clock says 10 minutes later than the server's.
        let outcome = store.ingest(s, Source::Mqtt, Instant::now(), 1_700_000_600_000);
        assert!(matches!(outcome, Outcome::Stored { .. }));
        assert_eq!(store.stats.clock_skewed_total, 1);
        assert_eq!(store.hosts["t"].clock_skew_s, Some(-600.0));
        store.ingest(
            snap("t", 2, 1_700_000_615, 0),
            Source::Mqtt,
            Instant::now(),
            1_700_000_615_500,
        );
        assert_eq!(store.hosts["t"].clock_skew_s, None, "back in step");
    }

    fn with_devices(mut s: Snapshot, disks: &[(&str, u64)]) -> Snapshot {
        let devices: BTreeMap<String, broker::DiskDevice> = disks
            .iter()
            .map(|(n, v)| {
                let d = broker::DiskDevice {
                    read_sectors: *v,
                    write_sectors: *v,
                };
                ((*n).to_owned(), d)
            })
            .collect();
        let total = disks.iter().map(|(_, v)| v).sum();
        s.disk = Some(Disk {
            read_sectors: total,
            write_sectors: total,
            devices,
        });
        s
    }

    /// Issue 9 A1: `mosquitto_pub … '{"host":"tower","seq":18446744073709551614,"ts":7258118399}'`.
    #[tokio::test]
    async fn a_spoofed_newest_gives_way_to_the_next_real_sample() {
        let mut store = Store::new(100, 10);
        let now = 1_700_000_000;
        ingest(&mut store, snap("tower", 10, now, 0), Source::Mqtt);
        let mut fake = snap("tower", 18_446_744_073_709_551_614, 7_258_118_399, 0);
        fake.boot_id = None;
        store.ingest(fake, Source::Mqtt, Instant::now(), now * 1000 + 5_000);
        let real = snap("tower", 11, now + 15, 150);
        store.ingest(real, Source::Mqtt, Instant::now(), (now + 15) * 1000);
        assert_eq!(store.hosts["tower"].latest.as_ref().unwrap().seq, 11);

        // The same after a restart that brought the fake back from disk.
        let rows: Vec<Row> = store.hosts["tower"].rows.iter().copied().collect();
        let mut restarted = Store::new(100, 10);
        assert!(restarted.restore("tower", rows, (now + 30) * 1000));
        let Outcome::Stored { gap, .. } = restarted.ingest(
            snap("tower", 13, now + 45, 450),
            Source::Mqtt,
            Instant::now(),
            (now + 45) * 1000,
        ) else {
            panic!("not stored")
        };
        assert_eq!(restarted.hosts["tower"].latest.as_ref().unwrap().seq, 13);
        assert_eq!(
            gap.map(|g| (g.after_seq, g.before_seq)),
            Some((11, 13)),
            "the gap is measured from the last real sample, not from the fake"
        );
    }

    /// Issue 9 B7: seq continues across a publisher reboot; the gap before the first sample of
    /// the new boot is filled.
    #[tokio::test]
    async fn a_gap_across_a_reboot_is_backfilled() {
        let mut store = Store::new(100, 10);
        ingest(&mut store, snap("t", 10, 100, 5000), Source::Mqtt);
        let mut rebooted = snap("t", 500, 7600, 3);
        rebooted.boot_id = Some("b2".into());
        let Outcome::Stored { gap, .. } = ingest(&mut store, rebooted, Source::Mqtt) else {
            panic!("not stored")
        };
        assert_eq!(gap.map(|g| (g.after_seq, g.before_seq)), Some((10, 500)));
    }

    /// Issue 9 B9: a server clock stepped back an hour interleaves one boot's rows by time;
    /// rates pair seq neighbours, never rows that are merely adjacent in time.
    #[tokio::test]
    async fn history_rates_pair_seq_neighbours_not_time_neighbours() {
        let mut store = Store::new(100, 10);
        // seq 1..=4 every 15 s, reading 15 sectors/s; then the clock steps back 52 s, so seq
        // 5..=8 interleave with 1..=4 by time: 1, 5, 2, 6, 3, 7, 4, 8.
        for seq in 1..=8u64 {
            let step_back = if seq >= 5 { 52 } else { 0 };
            let ts = 1000 + 15 * seq as i64 - step_back;
            ingest(&mut store, snap("t", seq, ts, 225 * seq), Source::Mqtt);
        }
        let rows = store.history("t", 0, i64::MAX);
        let by_seq = |n: u64| rows.iter().find(|r| r.seq == n).unwrap();
        for seq in [2, 3, 4, 6, 7, 8] {
            assert_eq!(by_seq(seq).disk_read_sectors_rate, Some(15.0), "seq {seq}");
        }
        assert_eq!(
            by_seq(5).disk_read_sectors_rate,
            None,
            "time went back between seq 4 and 5"
        );
        assert_eq!(by_seq(1).disk_read_sectors_rate, None);
    }

    /// Issue 9 B10: a disk that appears between two samples adds its whole counter to the
    /// total; the total rate must not spike.
    #[tokio::test]
    async fn a_device_that_appears_makes_no_total_spike() {
        let mut store = Store::new(100, 10);
        let a = with_devices(snap("t", 1, 100, 0), &[("sda", 1000)]);
        let b = with_devices(snap("t", 2, 115, 0), &[("sda", 1150), ("sdb", 9_000_000)]);
        let c = with_devices(snap("t", 3, 130, 0), &[("sda", 1300), ("sdb", 9_000_150)]);
        for s in [a, b, c] {
            ingest(&mut store, s, Source::Mqtt);
        }
        let rows = store.history("t", 0, i64::MAX);
        assert_eq!(rows[1].disk_read_sectors_rate, None, "device set changed");
        assert_eq!(rows[2].disk_read_sectors_rate, Some(20.0));
        let hs = &store.hosts["t"];
        // /metrics: the previous and latest snapshots are both at hand; same set, exact.
        let r = rates::rates(hs.previous.as_ref().unwrap(), hs.latest.as_ref().unwrap()).unwrap();
        assert_eq!(r.disk.read_sectors_rate, Some(20.0));
    }

    /// Issue 9 A5: silent hosts are forgotten; ghosts cannot lock out a real host.
    #[tokio::test]
    async fn silent_hosts_are_forgotten_and_stale_ghosts_give_way() {
        let mut store = Store::new(10, 2);
        let t0 = 1_700_000_000;
        ingest(&mut store, snap("ghost1", 1, t0, 0), Source::Mqtt);
        ingest(&mut store, snap("ghost2", 1, t0 + 10, 0), Source::Mqtt);
        let e = JobEvent::JobStart(broker::JobStart {
            run_id: "r".into(),
            host: "ghost1".into(),
            ..Default::default()
        });
        store.add_event(e);
        // Both ghosts are fresh: the real host is refused for now...
        let real = |seq| snap("real", seq, t0 + 20, 0);
        assert_eq!(
            ingest(&mut store, real(1), Source::Mqtt),
            Outcome::TooManyHosts
        );
        // ...and once they are stale (45 s), the longest silent gives way.
        let Outcome::Stored { evicted, .. } =
            store.ingest(real(2), Source::Mqtt, Instant::now(), (t0 + 50) * 1000)
        else {
            panic!("not stored")
        };
        assert_eq!(evicted.as_deref(), Some("ghost1"));
        assert!(store.events.is_empty(), "its job events went with it");
        assert_eq!(store.stats.evicted_total, 1);
        let week = Duration::from_secs(7 * 86_400);
        assert!(store.silent_hosts((t0 + 60) * 1000, week).is_empty());
        let later = (t0 + 10 + 7 * 86_400 + 1) * 1000;
        assert_eq!(store.silent_hosts(later, week), ["ghost2"]);
        assert!(store.forget("ghost2"));
        assert!(!store.forget("ghost2"));
        assert_eq!(store.stats.forgotten_total, 1);
        assert_eq!(store.hosts.keys().collect::<Vec<_>>(), ["real"]);
    }
}
