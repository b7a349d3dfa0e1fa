//! Opening the database: the schema, SQLite's settings (WAL, small pages and cache), and
//! loading the hosts and series it knows before the open bucket rows are rebuilt.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};

use rusqlite::{Connection, OptionalExtension};

use super::buckets::flushed_key;
use super::db::{HostCache, Tsdb, TsdbStats};
use super::raw_log::{RawLog, Recovery};
use super::rollup::{Retention, Tier};
use super::TsdbError;
use crate::registry::METRICS;

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS hosts (id INTEGER PRIMARY KEY, name TEXT NOT NULL UNIQUE);
CREATE TABLE IF NOT EXISTS series (
    id INTEGER PRIMARY KEY, host INTEGER NOT NULL, metric TEXT NOT NULL, label TEXT NOT NULL,
    UNIQUE (host, metric, label));
CREATE TABLE IF NOT EXISTS raw (
    key INTEGER PRIMARY KEY, host INTEGER NOT NULL, ts INTEGER NOT NULL, seq INTEGER NOT NULL, boot INTEGER NOT NULL,
    data BLOB NOT NULL, top BLOB);
CREATE TABLE IF NOT EXISTS minute (
    id INTEGER PRIMARY KEY, series INTEGER NOT NULL, start INTEGER NOT NULL, data BLOB NOT NULL);
CREATE TABLE IF NOT EXISTS hour (
    series INTEGER NOT NULL, start INTEGER NOT NULL, data BLOB NOT NULL,
    PRIMARY KEY (series, start)) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value INTEGER NOT NULL);
";

/// The `meta` key of a raw day file's committed length.
pub(super) fn raw_log_key(day: i64) -> String {
    format!("raw_log:{day}")
}

/// The raw tier's day files beside the database at `path` (`<path>.raw/`; in memory for an
/// in-memory database), at the lengths its last commit stored. What a crash cut is logged;
/// what the card lost is returned (`raw_damage.rs`).
fn open_raw_log(conn: &Connection, path: &Path) -> rusqlite::Result<(RawLog, Recovery)> {
    if path == Path::new(":memory:") {
        return Ok((RawLog::in_memory(), Recovery::default()));
    }
    let mut committed = BTreeMap::new();
    let mut stmt = conn.prepare("SELECT key, value FROM meta WHERE key GLOB 'raw_log:*'")?;
    let rows = stmt.query_map([], |r| Ok((r.get::<_, String>(0)?, r.get::<_, i64>(1)?)))?;
    for row in rows {
        let (key, len) = row?;
        if let Some(day) = key.strip_prefix("raw_log:").and_then(|d| d.parse().ok()) {
            committed.insert(day, len.max(0) as u64);
        }
    }
    let mut dir = path.as_os_str().to_owned();
    dir.push(".raw");
    let dir = PathBuf::from(dir);
    let (log, found) = RawLog::open(&dir, &committed)?;
    if found.uncommitted_bytes > 0 {
        tracing::info!(dir = %dir.display(), bytes = found.uncommitted_bytes, "raw log: cut what no commit stored");
    }
    if found.lost_bytes > 0 {
        tracing::warn!(dir = %dir.display(), bytes = found.lost_bytes, days = ?found.damaged_days, "raw log: committed samples lost (damaged or missing file): their gaps become holes");
    }
    Ok((log, found))
}

impl Tsdb {
    /// Opens (creating) the database at `path` and rebuilds the open bucket rows from the raw
    /// tier. `now_ms` is the Pi's clock.
    pub fn open(
        path: &Path,
        retention: Retention,
        max_series: usize,
        now_ms: i64,
    ) -> Result<Tsdb, TsdbError> {
        let err = |source| TsdbError {
            path: path.to_owned(),
            source,
        };
        let conn = Connection::open(path).map_err(err)?;
        conn.execute_batch(
            // 2 KiB pages (for a new database; one made before keeps its 1 KiB): a raw row
            // with its top-process lists (~370 bytes) stays in its page, where 1 KiB pages
            // spilled every such row over ~230 bytes to an overflow page of its own
            // (`bench tsdb`: 12.4 MB written a host-day instead of 17.4). A page cache of
            // 1 MiB, not SQLite's 2: the rebuild at start-up fills it, and every KiB of it is
            // the Pi's RSS; the bytes written are the same (issue 22, docs/benchmarks.md).
            "PRAGMA page_size = 2048; PRAGMA journal_mode = WAL; PRAGMA synchronous = NORMAL; PRAGMA cache_size = -1000;
             PRAGMA wal_autocheckpoint = 1000; PRAGMA foreign_keys = OFF;",
        )
        .map_err(err)?;
        super::minute::upgrade(&conn).map_err(err)?;
        super::raw_key::upgrade(&conn).map_err(err)?;
        super::top::upgrade_peaks(&conn).map_err(err)?;
        conn.execute_batch(SCHEMA).map_err(err)?;
        conn.execute_batch(super::holes::SCHEMA).map_err(err)?;
        conn.execute_batch(super::top::SCHEMA).map_err(err)?;
        super::top::upgrade(&conn).map_err(err)?;
        conn.execute_batch(super::rw::SCHEMA).map_err(err)?;
        let (raw_log, damage) = open_raw_log(&conn, path).map_err(err)?;
        let parts = super::parts::Parts::load(&conn).map_err(err)?;
        parts.check_view(&conn).map_err(err)?;
        let mut db = Tsdb {
            conn,
            path: path.to_owned(),
            retention,
            max_series: max_series.max(1),
            hosts: HashMap::new(),
            series: HashMap::new(),
            open: BTreeMap::new(),
            flushed: HashMap::new(),
            in_tx: false,
            tx: Default::default(),
            stats: TsdbStats::default(),
            max_series_total: usize::MAX,
            rw: Default::default(),
            rw_walked: Default::default(),
            parts: std::cell::RefCell::new(parts),
            raw_log: std::cell::RefCell::new(raw_log),
        };
        db.load().map_err(err)?;
        db.load_holes().map_err(err)?;
        db.holes_for_damage(&damage).map_err(err)?;
        db.rebuild(now_ms).map_err(err)?;
        Ok(db)
    }

    /// Bounds the series over all hosts (`history.max_series`): a new series beyond it is
    /// dropped and counted like one beyond `max_series_per_host`.
    pub fn set_series_budget(&mut self, max_series_total: usize) {
        self.max_series_total = max_series_total.max(1);
    }

    /// A database that lives in memory only (`history.persist = false`, tests).
    pub fn open_in_memory(
        retention: Retention,
        max_series: usize,
        now_ms: i64,
    ) -> Result<Tsdb, TsdbError> {
        Tsdb::open(Path::new(":memory:"), retention, max_series, now_ms)
    }

    pub(super) fn load(&mut self) -> rusqlite::Result<()> {
        let mut hosts: HashMap<i64, String> = HashMap::new();
        let mut stmt = self.conn.prepare("SELECT id, name FROM hosts")?;
        for row in stmt.query_map([], |r| Ok((r.get::<_, i64>(0)?, r.get::<_, String>(1)?)))? {
            let (id, name) = row?;
            hosts.insert(id, name.clone());
            self.hosts.insert(
                name,
                HostCache {
                    id,
                    series: HashMap::new(),
                    last: None,
                    chain: super::chain::NO_BASE,
                    last_top: None,
                    partial: 0,
                },
            );
        }
        drop(stmt);
        let mut stmt = self
            .conn
            .prepare("SELECT id, host, metric, label FROM series")?;
        let rows = stmt.query_map([], |r| {
            Ok((
                r.get::<_, u32>(0)?,
                r.get::<_, i64>(1)?,
                r.get::<_, String>(2)?,
                r.get::<_, String>(3)?,
            ))
        })?;
        for row in rows {
            let (id, host, metric, label) = row?;
            // A metric this version no longer knows keeps its rows but is not served.
            let (Some(host), Some(m)) = (
                hosts.get(&host),
                METRICS.iter().position(|m| m.name == metric),
            ) else {
                continue;
            };
            if let Some(cache) = self.hosts.get_mut(host) {
                cache.series.insert((m, label.clone()), id);
            }
            self.series.insert(id, (host.clone(), m, label));
        }
        drop(stmt);
        for cache in self.hosts.values_mut() {
            let mask: Option<i64> = self
                .conn
                .query_row(
                    "SELECT value FROM meta WHERE key = ?1",
                    [super::derive::partial_key(cache.id)],
                    |r| r.get(0),
                )
                .optional()?;
            cache.partial = mask.unwrap_or(0) as u64;
        }
        for tier in [Tier::Minute, Tier::Hour] {
            let v: Option<i64> = self
                .conn
                .query_row(
                    "SELECT value FROM meta WHERE key = ?1",
                    [flushed_key(tier)],
                    |r| r.get(0),
                )
                .optional()?;
            self.flushed.insert(tier, v.unwrap_or(i64::MIN));
        }
        self.stats.series_total = self.series.len() as u64;
        Ok(())
    }
}
