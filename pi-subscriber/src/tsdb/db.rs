//! The database: ingest (series ids, values, rates between seq neighbours) and forgetting;
//! opening it is in `open.rs`, closing bucket rows and pruning in `buckets.rs`.

use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;

use broker::Snapshot;
use rusqlite::{params, Connection};
use serde::Serialize;

use super::parts::Kind;
use super::raw_key::Stored;

use super::derive::partial_key;
use super::open_row::OpenRow;
use super::rollup::{Retention, Tier, MINUTE_MS};
use super::TsdbError;
use crate::rates::{boot_hash, Derived};
use crate::registry::{Value, METRICS};

/// A row closes this long after its end, so samples that arrive a little late (a reconnect,
/// a short backfill) still land in memory.
pub(super) const GRACE_MS: i64 = 5 * MINUTE_MS;

/// How far ahead of the Pi's clock a sample may be dated and still be stored: the one bound
/// on time applied wherever a time enters (ingest, rebuild, pruning, restore).
pub(super) const FUTURE_MS: i64 = 86_400_000;

/// How far around a sample the raw tier is searched for its seq neighbour.
pub(super) const NEIGHBOUR_WINDOW_MS: i64 = 3_600_000;

/// One sample of a host as the store keeps it.
#[derive(Debug, Clone, PartialEq)]
pub struct Sample {
    pub ts_ms: i64,
    pub seq: u64,
    pub boot: u64,
    pub values: Vec<(u32, Value)>,
}

impl Sample {
    /// Whether `self` directly follows `earlier` in one series: the next seq, the same boot
    /// (or an unknown one), later in time.
    pub fn follows(&self, earlier: &Sample) -> bool {
        earlier.seq.checked_add(1) == Some(self.seq)
            && (self.boot == earlier.boot || self.boot == 0 || earlier.boot == 0)
            && self.ts_ms > earlier.ts_ms
    }
}

/// What one ingest did.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct IngestReport {
    pub duplicate: bool,
    /// Label sets beyond `max_series_per_host`, dropped.
    pub series_dropped: usize,
    /// The sample's rates against its seq predecessor (`None`: none is stored).
    pub derived: Option<Derived>,
    /// For a sample that fills a gap: its successor's seq and rates, now computable.
    pub next: Option<(u64, Derived)>,
}

/// Counters for `/health`.
#[derive(Debug, Clone, Copy, Default, Serialize)]
pub struct TsdbStats {
    pub samples_total: u64,
    pub series_total: u64,
    pub series_dropped_total: u64,
    pub commits_total: u64,
    /// Samples dated more than a day ahead of the Pi's clock: not stored (a broken or hostile
    /// clock would keep their rows open, and their host fresh, for days).
    pub future_dropped_total: u64,
    /// Raw rows not stored: their millisecond held `raw_key::SLOTS` rows already.
    pub raw_no_slot_total: u64,
    /// Transactions rolled back (a full disk, most likely); their samples became holes.
    pub rollbacks_total: u64,
    /// Committed bytes of the raw tier's day files that were missing or failed their CRC at
    /// start-up (a card that lost synced writes): their samples became holes
    /// (`raw_damage.rs`).
    pub raw_lost_bytes: u64,
    /// Holes and losses (`holes.rs`).
    #[serde(flatten)]
    pub holes: super::holes::HoleStats,
    /// Size against `history.max_disk` (`size.rs`).
    pub disk: super::size::DiskStats,
}

#[derive(Debug)]
pub(super) struct HostCache {
    pub id: i64,
    /// (metric index in the registry, label) → series id.
    pub series: HashMap<(usize, String), u32>,
    /// The newest live sample, for the next one's rates.
    pub last: Option<Sample>,
    /// The delta rows since the last whole one up to `last` (`chain.rs`), or
    /// [`NO_BASE`](super::chain::NO_BASE) when `last` is not a stored row.
    pub chain: u32,
    /// The lists of `last` when its row holds them, by its (ts, seq): the base of the next
    /// row's lists (`top_chain.rs`).
    pub last_top: Option<((i64, u64), super::top_chain::Lists)>,
    /// Metrics (bits by registry index) one of whose devices was dropped by the series
    /// budget: their total's rate comes from the total counter, not the sum of the devices.
    /// Persisted in `meta` (`partial:<host id>`).
    pub partial: u64,
}

#[derive(Debug)]
pub struct Tsdb {
    pub(super) conn: Connection,
    pub(super) path: PathBuf,
    pub(super) retention: Retention,
    pub(super) max_series: usize,
    pub(super) hosts: HashMap<String, HostCache>,
    /// series id → (host, metric index, label).
    pub(super) series: HashMap<u32, (String, usize, String)>,
    /// Open bucket rows: (tier, series, row start) → the buckets that hold values.
    pub(super) open: BTreeMap<(Tier, u32, i64), OpenRow>,
    /// Every row of the tier ending at or before this is written.
    pub(super) flushed: HashMap<Tier, i64>,
    pub(super) in_tx: bool,
    /// What the open transaction changed, to undo or redo if it fails (`tx.rs`).
    pub(super) tx: super::tx::TxLog,
    pub stats: TsdbStats,
    /// Series over all hosts at most (each costs up to ~4 KB of open bucket rows in memory).
    pub(super) max_series_total: usize,
    /// Remote write's cursors, by remote and host id (`rw.rs`).
    pub(super) rw: super::rw::Cursors,
    /// How far remote write's walks found nothing of a host (`rw_walk.rs`).
    pub(super) rw_walked: super::rw_walk::Walked,
    /// The minute tier's and its peaks' tables of each day (`parts.rs`).
    pub(super) parts: std::cell::RefCell<super::parts::Parts>,
    /// The raw tier's day files (`raw_log/`): where new raw rows go, read beside the tables
    /// of a database from before by every walk (`raw_scan.rs`). Made durable before each
    /// commit, which stores their lengths in `meta` (`tx.rs`).
    pub(super) raw_log: std::cell::RefCell<super::raw_log::RawLog>,
}

impl Tsdb {
    pub(super) fn err(&self, source: rusqlite::Error) -> TsdbError {
        TsdbError {
            path: self.path.clone(),
            source,
        }
    }

    pub(super) fn host_id(&mut self, host: &str) -> rusqlite::Result<i64> {
        if let Some(h) = self.hosts.get(host) {
            return Ok(h.id);
        }
        if self
            .conn
            .execute("INSERT OR IGNORE INTO hosts (name) VALUES (?1)", [host])?
            > 0
        {
            self.tx.new_host();
        }
        let id: i64 = self
            .conn
            .query_row("SELECT id FROM hosts WHERE name = ?1", [host], |r| r.get(0))?;
        self.hosts.insert(
            host.to_owned(),
            HostCache {
                id,
                series: HashMap::new(),
                last: None,
                chain: super::chain::NO_BASE,
                last_top: None,
                partial: 0,
            },
        );
        Ok(id)
    }

    /// The snapshot's values by series id, creating series up to `max_series_per_host`.
    pub(super) fn values_of(
        &mut self,
        host: &str,
        host_id: i64,
        s: &Snapshot,
    ) -> rusqlite::Result<(Vec<(u32, Value)>, usize)> {
        let mut values = Vec::new();
        let mut dropped = 0;
        for (m, metric) in METRICS.iter().enumerate() {
            for (label, value) in metric.values(s) {
                let known = self
                    .hosts
                    .get(host)
                    .and_then(|h| h.series.get(&(m, label.clone())).copied());
                let id = match known {
                    Some(id) => id,
                    None => {
                        let count = self.hosts.get(host).map_or(0, |h| h.series.len());
                        if count >= self.max_series || self.series.len() >= self.max_series_total {
                            dropped += 1;
                            self.mark_partial(host, host_id, m, &label)?;
                            continue;
                        }
                        self.conn.execute(
                            "INSERT OR IGNORE INTO series (host, metric, label) VALUES (?1, ?2, ?3)",
                            params![host_id, metric.name, label],
                        )?;
                        let id: u32 = self.conn.query_row(
                            "SELECT id FROM series WHERE host = ?1 AND metric = ?2 AND label = ?3",
                            params![host_id, metric.name, label],
                            |r| r.get(0),
                        )?;
                        if let Some(h) = self.hosts.get_mut(host) {
                            h.series.insert((m, label.clone()), id);
                        }
                        self.series.insert(id, (host.to_owned(), m, label));
                        self.stats.series_total += 1;
                        id
                    }
                };
                values.push((id, value));
            }
        }
        Ok((values, dropped))
    }

    /// Stores one validated snapshot. `live`: it came over MQTT or HTTP as the newest (not a
    /// backfill), so the next live sample will most likely follow it.
    pub fn ingest(
        &mut self,
        s: &Snapshot,
        live: bool,
        now_ms: i64,
    ) -> Result<IngestReport, TsdbError> {
        self.tx.now_ms = self.tx.now_ms.max(now_ms);
        match self.ingest_inner(s, live, now_ms) {
            Ok(report) => Ok(report),
            Err(e) => {
                // A full disk, most likely: the sample (and the rest of the transaction,
                // which SQLite may have rolled back already) becomes a hole to backfill.
                let error = self.err(e);
                self.tx.unsaved_sample(&s.host, s.seq, s.ts_ms);
                self.roll_back();
                Err(error)
            }
        }
    }

    fn ingest_inner(
        &mut self,
        s: &Snapshot,
        live: bool,
        now_ms: i64,
    ) -> rusqlite::Result<IngestReport> {
        if s.ts_ms > now_ms.saturating_add(FUTURE_MS) {
            self.stats.future_dropped_total += 1;
            return Ok(IngestReport::default());
        }
        self.begin()?;
        let host_id = self.host_id(&s.host)?;
        let (values, dropped) = self.values_of(&s.host, host_id, s)?;
        self.stats.series_dropped_total += dropped as u64;
        let sample = Sample {
            ts_ms: s.ts_ms,
            seq: s.seq,
            boot: boot_hash(s.boot_id.as_deref()),
            values,
        };
        let mut report = IngestReport {
            series_dropped: dropped,
            ..IngestReport::default()
        };
        if sample.ts_ms >= self.retention.horizon(Tier::Raw, now_ms) {
            // The top-process lists ride in the sample's own row (`top.rs`): no page of
            // another table is written per sample.
            let (data, chain) = self.pack_sample(&s.host, &sample, live);
            let lists = super::top::lists_of(s);
            let top = self.pack_top(&s.host, &sample, lists.as_ref(), chain);
            let stored = self.insert_raw(
                host_id,
                sample.ts_ms,
                sample.seq,
                sample.boot,
                &data,
                top.as_deref(),
            )?;
            if stored != Stored::Yes {
                if stored == Stored::NoSlot {
                    self.stats.raw_no_slot_total += 1;
                }
                report.duplicate = true;
                return Ok(report);
            }
            self.tx.stored_sample(&s.host, sample.seq, sample.ts_ms);
            self.rw_stored(host_id, sample.ts_ms, sample.seq)?;
            if live {
                if let Some(h) = self.hosts.get_mut(&s.host) {
                    h.chain = chain;
                    h.last_top = lists.map(|l| ((sample.ts_ms, sample.seq), l));
                }
            }
        } else if live {
            if let Some(h) = self.hosts.get_mut(&s.host) {
                h.chain = super::chain::NO_BASE;
            }
        }
        self.stats.samples_total += 1;
        for (id, v) in &sample.values {
            if let Value::Gauge(g) = v {
                self.add(*id, sample.ts_ms, *g, now_ms)?;
            }
        }
        // The counters' rates: against the previous sample, and, for a sample that fills a
        // gap, the next one's against it.
        let cached = self.hosts.get(&s.host).and_then(|h| h.last.clone());
        let previous = match cached.filter(|l| sample.follows(l)) {
            Some(l) => Some(l),
            None => self.neighbour(host_id, &sample, -1)?,
        };
        if let Some(p) = &previous {
            let rates = self.rates(p, &sample);
            for (id, r) in &rates {
                self.add(*id, sample.ts_ms, *r, now_ms)?;
            }
            report.derived = Some(self.derived(&rates));
        }
        let newest = self
            .hosts
            .get(&s.host)
            .and_then(|h| h.last.as_ref())
            .is_none_or(|l| sample.follows(l));
        if !(live && newest) {
            if let Some(next) = self.neighbour(host_id, &sample, 1)? {
                let rates = self.rates(&sample, &next);
                for (id, r) in &rates {
                    self.add(*id, next.ts_ms, *r, now_ms)?;
                }
                report.next = Some((next.seq, self.derived(&rates)));
            }
        }
        if live {
            if let Some(h) = self.hosts.get_mut(&s.host) {
                h.last = Some(sample);
            }
        }
        Ok(report)
    }

    /// Forgets a host: its series, samples and buckets.
    pub fn forget(&mut self, host: &str) -> Result<bool, TsdbError> {
        let Some(cache) = self.hosts.remove(host) else {
            return Ok(false);
        };
        let ids: Vec<u32> = cache.series.values().copied().collect();
        for cursors in self.rw.values_mut() {
            cursors.remove(&cache.id);
        }
        for marks in self.rw_walked.values_mut() {
            marks.remove(&cache.id);
        }
        self.open.retain(|(_, id, _), _| !ids.contains(id));
        for id in &ids {
            self.series.remove(id);
        }
        self.stats.series_total = self.series.len() as u64;
        let run = |db: &mut Tsdb| -> rusqlite::Result<()> {
            db.begin()?;
            let (minute, top, raw) = {
                let parts = db.parts.borrow();
                (
                    parts.tables(Kind::Minute),
                    parts.tables(Kind::Top),
                    parts.tables(Kind::Raw),
                )
            };
            for table in minute.iter().map(String::as_str).chain(["hour"]) {
                db.conn.execute(
                    &format!("DELETE FROM {table} WHERE series IN (SELECT id FROM series WHERE host = ?1)"),
                    [cache.id],
                )?;
            }
            let others = ["holes", "lost", "rw_cursor", "rw_late"];
            for table in top.iter().chain(&raw).map(String::as_str).chain(others) {
                db.conn
                    .execute(&format!("DELETE FROM {table} WHERE host = ?1"), [cache.id])?;
            }
            db.drop_raw_of(cache.id, None)?;
            db.conn
                .execute("DELETE FROM series WHERE host = ?1", [cache.id])?;
            db.conn
                .execute("DELETE FROM hosts WHERE id = ?1", [cache.id])?;
            db.conn
                .execute("DELETE FROM meta WHERE key = ?1", [partial_key(cache.id)])?;
            Ok(())
        };
        if let Err(e) = run(self) {
            let error = self.err(e);
            self.roll_back();
            return Err(error);
        }
        self.commit()?;
        Ok(true)
    }
}
