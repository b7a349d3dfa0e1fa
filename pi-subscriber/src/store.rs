//! Per-host state: the latest snapshots, a bounded history of compact rows, job events, and
//! ingest counters. Every source (MQTT, HTTP polling, backfill) goes through [`Store::ingest`],
//! which deduplicates by (host, seq) and reports gaps for backfill.

use std::collections::{BTreeMap, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use broker::{JobEvent, Snapshot};
use serde::Serialize;
use tokio::time::Instant;

use crate::rates::{self, Point};
use crate::validate::Rejection;

/// The store shared by the ingest paths and the HTTP handlers.
pub type SharedStore = Arc<Mutex<Store>>;

/// Missing counter in a [`Row`].
const NO_COUNTER: u64 = u64::MAX;

/// One sample in the history, compact (88 bytes): gauges as `f32` (NaN when missing),
/// cumulative counters as `u64` (`u64::MAX` when missing). Rates are derived from neighbours
/// when asked for, so inserting a backfilled row never leaves a stale rate behind.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Row {
    pub ts_ms: i64,
    pub seq: u64,
    pub boot: u64,
    pub cpu: f32,
    pub load1: f32,
    pub load5: f32,
    pub load15: f32,
    pub mem_available: f32,
    pub mem_total: f32,
    pub swap_used: f32,
    pub temp: f32,
    pub disk_read: u64,
    pub disk_write: u64,
    pub net_rx: u64,
    pub net_tx: u64,
}

fn gauge(x: Option<f64>) -> f32 {
    x.map_or(f32::NAN, |v| v as f32)
}

impl Row {
    pub fn of(s: &Snapshot) -> Row {
        let cpu = s.cpu.as_ref();
        let mem = s.memory.as_ref();
        Row {
            ts_ms: s.ts_ms,
            seq: s.seq,
            boot: rates::boot_hash(s.boot_id.as_deref()),
            cpu: gauge(cpu.and_then(|c| c.usage_percent)),
            load1: gauge(cpu.and_then(|c| c.load_1m)),
            load5: gauge(cpu.and_then(|c| c.load_5m)),
            load15: gauge(cpu.and_then(|c| c.load_15m)),
            mem_available: gauge(mem.map(|m| m.available_mb as f64)),
            mem_total: gauge(mem.map(|m| m.total_mb as f64)),
            swap_used: gauge(mem.map(|m| m.swap_used_mb as f64)),
            temp: gauge(s.thermal.cpu_temp_c),
            disk_read: s.disk.as_ref().map_or(NO_COUNTER, |d| d.read_sectors),
            disk_write: s.disk.as_ref().map_or(NO_COUNTER, |d| d.write_sectors),
            net_rx: s.network.as_ref().map_or(NO_COUNTER, |n| n.rx_bytes),
            net_tx: s.network.as_ref().map_or(NO_COUNTER, |n| n.tx_bytes),
        }
    }

    pub fn point(&self) -> Point {
        Point {
            seq: self.seq,
            ts_ms: self.ts_ms,
            boot: self.boot,
        }
    }

    /// The persisted form: a JSON array, `null` for missing values.
    pub fn to_array(&self) -> serde_json::Value {
        let g = |x: f32| {
            if x.is_nan() {
                serde_json::Value::Null
            } else {
                serde_json::json!(x)
            }
        };
        let c = |x: u64| {
            if x == NO_COUNTER {
                serde_json::Value::Null
            } else {
                serde_json::json!(x)
            }
        };
        serde_json::json!([
            self.ts_ms,
            self.seq,
            self.boot,
            g(self.cpu),
            g(self.load1),
            g(self.load5),
            g(self.load15),
            g(self.mem_available),
            g(self.mem_total),
            g(self.swap_used),
            g(self.temp),
            c(self.disk_read),
            c(self.disk_write),
            c(self.net_rx),
            c(self.net_tx)
        ])
    }

    /// Parses the persisted form (straight from bytes: loading a day of ten hosts must not
    /// build 57 600 JSON trees).
    pub fn from_json(json: &[u8]) -> Option<Row> {
        type G = Option<f32>;
        type C = Option<u64>;
        #[allow(clippy::type_complexity)]
        let (
            ts_ms,
            seq,
            boot,
            cpu,
            load1,
            load5,
            load15,
            mem_available,
            mem_total,
            swap_used,
            temp,
            dr,
            dw,
            rx,
            tx,
        ): (i64, u64, u64, G, G, G, G, G, G, G, G, C, C, C, C) =
            serde_json::from_slice(json).ok()?;
        let g = |x: G| x.unwrap_or(f32::NAN);
        let c = |x: C| x.unwrap_or(NO_COUNTER);
        Some(Row {
            ts_ms,
            seq,
            boot,
            cpu: g(cpu),
            load1: g(load1),
            load5: g(load5),
            load15: g(load15),
            mem_available: g(mem_available),
            mem_total: g(mem_total),
            swap_used: g(swap_used),
            temp: g(temp),
            disk_read: c(dr),
            disk_write: c(dw),
            net_rx: c(rx),
            net_tx: c(tx),
        })
    }
}

/// A flat history row for `/history` (Grafana Infinity / JSON API): every key always present,
/// `null` where there is no value, time in epoch milliseconds.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct HistoryRow {
    pub time: i64,
    pub host: String,
    pub seq: u64,
    pub cpu_usage_percent: Option<f64>,
    pub load_1m: Option<f64>,
    pub load_5m: Option<f64>,
    pub load_15m: Option<f64>,
    pub memory_available_mb: Option<f64>,
    pub memory_total_mb: Option<f64>,
    pub memory_used_percent: Option<f64>,
    pub swap_used_mb: Option<f64>,
    pub cpu_temp_c: Option<f64>,
    pub disk_read_sectors_rate: Option<f64>,
    pub disk_write_sectors_rate: Option<f64>,
    pub disk_read_bytes_rate: Option<f64>,
    pub disk_write_bytes_rate: Option<f64>,
    pub network_rx_bytes_rate: Option<f64>,
    pub network_tx_bytes_rate: Option<f64>,
}

/// `f32` back to a tidy `f64` (45.23f32 reads 45.2299995… otherwise).
fn tidy(x: f32, decimals: i32) -> Option<f64> {
    if x.is_nan() {
        return None;
    }
    let scale = 10f64.powi(decimals);
    Some((f64::from(x) * scale).round() / scale)
}

fn round3(x: f64) -> f64 {
    (x * 1000.0).round() / 1000.0
}

impl HistoryRow {
    fn of(host: &str, row: &Row, previous: Option<&Row>) -> HistoryRow {
        let pair = |a: u64, b: u64| (a != NO_COUNTER && b != NO_COUNTER).then_some((a, b));
        let dt = previous.and_then(|p| rates::elapsed_s(&p.point(), &row.point()));
        let (disk, net) = match (previous, dt) {
            (Some(p), Some(dt)) => {
                let disk = match (
                    pair(p.disk_read, row.disk_read),
                    pair(p.disk_write, row.disk_write),
                ) {
                    (Some(r), Some(w)) => rates::disk_rates(r, w, dt),
                    _ => rates::DiskRates::default(),
                };
                let net = match (pair(p.net_rx, row.net_rx), pair(p.net_tx, row.net_tx)) {
                    (Some(r), Some(t)) => rates::net_rates(r, t, dt),
                    _ => rates::NetRates::default(),
                };
                (disk, net)
            }
            _ => Default::default(),
        };
        let used = (!row.mem_total.is_nan() && !row.mem_available.is_nan() && row.mem_total > 0.0)
            .then(|| {
                round3(
                    100.0 * f64::from(row.mem_total - row.mem_available) / f64::from(row.mem_total),
                )
            });
        HistoryRow {
            time: row.ts_ms,
            host: host.to_owned(),
            seq: row.seq,
            cpu_usage_percent: tidy(row.cpu, 2),
            load_1m: tidy(row.load1, 2),
            load_5m: tidy(row.load5, 2),
            load_15m: tidy(row.load15, 2),
            memory_available_mb: tidy(row.mem_available, 0),
            memory_total_mb: tidy(row.mem_total, 0),
            memory_used_percent: used,
            swap_used_mb: tidy(row.swap_used, 0),
            cpu_temp_c: tidy(row.temp, 3),
            disk_read_sectors_rate: disk.read_sectors_rate.map(round3),
            disk_write_sectors_rate: disk.write_sectors_rate.map(round3),
            disk_read_bytes_rate: disk.read_bytes_rate.map(round3),
            disk_write_bytes_rate: disk.write_bytes_rate.map(round3),
            network_rx_bytes_rate: net.rx_bytes_rate.map(round3),
            network_tx_bytes_rate: net.tx_bytes_rate.map(round3),
        }
    }
}

/// Where a snapshot came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Source {
    Mqtt,
    Http,
    Backfill,
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
    },
    Duplicate,
    /// A new host beyond `max_hosts`.
    TooManyHosts,
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
}

#[derive(Debug)]
pub struct Store {
    pub capacity: usize,
    pub max_hosts: usize,
    pub max_events: usize,
    pub max_clock_skew: Duration,
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
    /// is no room for another host.
    pub fn restore(&mut self, host: &str, mut rows: Vec<Row>) -> bool {
        if !self.hosts.contains_key(host) && self.hosts.len() >= self.max_hosts {
            return false;
        }
        rows.sort_by_key(|r| (r.ts_ms, r.seq));
        rows.dedup_by_key(|r| (r.ts_ms, r.seq));
        let skip = rows.len().saturating_sub(self.capacity);
        let mut deque = VecDeque::with_capacity(self.capacity);
        deque.extend(rows.into_iter().skip(skip));
        self.hosts.entry(host.to_owned()).or_default().rows = deque;
        true
    }

    /// Stores one validated snapshot. `now`/`now_ms` are the Pi's clocks at receipt.
    ///
    /// Which sample is the newest is decided by `seq` within a series (same boot), not by the
    /// server's clock: one snapshot from a clock years ahead must not make every later one
    /// look old. A new boot id, or a `seq` that went back while time went forward (the
    /// publisher lost its ring), starts a new series. Backfilled samples are never the newest.
    /// History rows stay in time order either way.
    pub fn ingest(
        &mut self,
        snapshot: Snapshot,
        source: Source,
        now: Instant,
        now_ms: i64,
    ) -> Outcome {
        if !self.hosts.contains_key(&snapshot.host) && !self.make_room() {
            self.stats.too_many_hosts_total += 1;
            return Outcome::TooManyHosts;
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
        if state
            .rows
            .get(pos)
            .is_some_and(|r| r.ts_ms == row.ts_ms && r.seq == row.seq)
        {
            self.stats.duplicates_total += 1;
            return Outcome::Duplicate;
        }
        // The sample to compare with: the newest one received, else the newest restored row.
        let reference = state
            .latest
            .as_deref()
            .map(rates::point_of)
            .or_else(|| state.rows.back().map(Row::point));
        let (newer, same_series) = match (source, reference) {
            (Source::Backfill, _) => (false, false),
            (_, None) => (true, false),
            (_, Some(r)) => {
                let same = r.boot == 0 || row.boot == 0 || r.boot == row.boot;
                if same && row.seq == r.seq {
                    self.stats.duplicates_total += 1;
                    return Outcome::Duplicate;
                }
                let newer = !same || row.seq > r.seq || row.ts_ms > r.ts_ms;
                (newer, same && row.seq > r.seq)
            }
        };
        let mut gap = None;
        if newer {
            if let Some(r) = reference.filter(|r| same_series && row.seq > r.seq.saturating_add(1))
            {
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
        Outcome::Stored { row, gap }
    }

    /// Room for one more host: true when under `max_hosts`, or after dropping a host known
    /// only from a (retained) status message, which holds no data.
    fn make_room(&mut self) -> bool {
        if self.hosts.len() < self.max_hosts {
            return true;
        }
        let empty = self
            .hosts
            .iter()
            .find(|(_, h)| h.latest.is_none() && h.rows.is_empty())
            .map(|(name, _)| name.clone());
        match empty {
            Some(name) => {
                self.hosts.remove(&name);
                true
            }
            None => false,
        }
    }

    pub fn set_status(&mut self, host: &str, status: &str) {
        if let Some(state) = self.hosts.get_mut(host) {
            state.status = Some(status.to_owned());
        } else if self.hosts.len() < self.max_hosts {
            self.hosts.entry(host.to_owned()).or_default().status = Some(status.to_owned());
        }
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

    /// History rows of `host` with `from_ms <= time <= to_ms`, ascending.
    pub fn history(&self, host: &str, from_ms: i64, to_ms: i64) -> Vec<HistoryRow> {
        let Some(state) = self.hosts.get(host) else {
            return Vec::new();
        };
        let start = state.rows.partition_point(|r| r.ts_ms < from_ms);
        let mut out = Vec::new();
        let mut previous = start.checked_sub(1).and_then(|i| state.rows.get(i));
        for row in state.rows.range(start..) {
            if row.ts_ms > to_ms {
                break;
            }
            out.push(HistoryRow::of(host, row, previous));
            previous = Some(row);
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
        let mut rebooted = snap("t", 12, 115, 3);
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
        store.set_status("ghost", "offline");
        ingest(&mut store, snap("a", 1, 100, 0), Source::Mqtt);
        assert!(matches!(
            ingest(&mut store, snap("b", 1, 100, 0), Source::Mqtt),
            Outcome::Stored { .. }
        ));
        assert!(!store.hosts.contains_key("ghost"));
        assert!(!store.restore("c", vec![]), "restore respects max_hosts");
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

    #[test]
    fn rows_round_trip_through_their_array_form() {
        let row = Row::of(&snap("t", 3, 100, 77));
        let back = Row::from_json(row.to_array().to_string().as_bytes()).unwrap();
        assert_eq!(back.seq, 3);
        assert_eq!(back.disk_read, 77);
        assert!(back.temp.is_nan());
        assert_eq!(back.net_rx, NO_COUNTER);
        assert_eq!(back.cpu, row.cpu);
        assert_eq!(Row::from_json(b"[1,2]"), None);
        assert_eq!(std::mem::size_of::<Row>(), 88);
    }
}
