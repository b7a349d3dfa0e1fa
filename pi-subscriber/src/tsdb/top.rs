//! The top-process lists in the history: never a series per pid (that would grow without
//! bound as pids come and go), but the lists themselves, as they came.
//!
//! - Each sample's two lists ride in its raw row (column `top`), with the sample's CPU use
//!   and memory used: no page of another table is written per sample, they go with the raw
//!   tier (48 h), and a rollback or a backfill treats them as the sample.
//! - `top_minute`: per host and minute, the CPU list of the sample with the highest CPU use
//!   and the memory list of the one with the most memory used, a row per host and hour
//!   (`top_hour.rs`; rows of a minute from before still read). Written only when their raw
//!   rows are about to be pruned (`keep_top_peaks`, about once a minute); inside the raw tier
//!   the peaks are read from the raw rows. Kept as long as the minute tier.
//!
//! A row holds at most 2 × 32 processes (what validation lets in), ~20 bytes each whole and
//! ~5 stored against the sample before (`top_chain.rs`).

use std::collections::BTreeMap;

use broker::{ProcessTop, Snapshot};
use rusqlite::{params, Connection, OptionalExtension};
use serde::Serialize;

use super::db::Tsdb;
use super::parts::Kind;
use super::raw_key::first_key;
use super::raw_scan::Walk;
use super::rollup::{floor, Tier, HOUR_MS, MINUTE_MS};
use super::top_chain::{Lists, TopChain};
use super::top_codec::{decode_list, encode_list};
use super::top_hour;
use super::TsdbError;
use crate::validate::names::MAX_TOP_PROCESSES;

/// Keyed by time first: each hour's peaks of every host are appended together at the end of
/// the table, and an hour pruned is cut from its start. Keyed by host first (before issue 22's
/// fourth pass), they went to, and were cut from, as many places in the B-tree as there are
/// hosts, each rewriting a page and its neighbours (ten hosts: 9.1 → 8.3 MB written a host-day).
/// The `meta` key of how far the raw rows' minute peaks were kept (`keep_top_peaks`).
const TOP_KEPT: &str = "top_kept";

pub(super) const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS top_minute (
    host INTEGER NOT NULL, start INTEGER NOT NULL,
    cpu_peak REAL NOT NULL, cpu_ts INTEGER NOT NULL, cpu BLOB NOT NULL,
    mem_peak REAL NOT NULL, mem_ts INTEGER NOT NULL, mem BLOB NOT NULL,
    PRIMARY KEY (start, host)) WITHOUT ROWID;
";

/// A database whose minute peaks are keyed by host first moves them under the key led by time,
/// in one transaction (a power cut leaves the older table whole, moved at the next start).
pub(super) fn upgrade_peaks(conn: &Connection) -> rusqlite::Result<()> {
    let sql: Option<String> = conn
        .query_row(
            "SELECT sql FROM sqlite_schema WHERE type = 'table' AND name = 'top_minute'",
            [],
            |r| r.get(0),
        )
        .optional()?;
    if !sql.is_some_and(|s| s.contains("PRIMARY KEY (host, start)")) {
        return Ok(());
    }
    conn.execute_batch("BEGIN; ALTER TABLE top_minute RENAME TO top_minute_by_host;")?;
    let moved = conn.execute_batch(&format!(
        "{SCHEMA}
         INSERT INTO top_minute (host, start, cpu_peak, cpu_ts, cpu, mem_peak, mem_ts, mem)
            SELECT host, start, cpu_peak, cpu_ts, cpu, mem_peak, mem_ts, mem
            FROM top_minute_by_host ORDER BY start, host;
         DROP TABLE top_minute_by_host; COMMIT;"
    ));
    if moved.is_err() {
        let _ = conn.execute_batch("ROLLBACK");
    }
    moved
}

/// A database made before the lists rode in the raw rows gets the column (empty for its
/// older rows).
pub(super) fn upgrade(conn: &Connection) -> rusqlite::Result<()> {
    let has: bool = conn
        .prepare("SELECT 1 FROM pragma_table_info('raw') WHERE name = 'top'")?
        .exists([])?;
    if !has {
        conn.execute_batch("ALTER TABLE raw ADD COLUMN top BLOB")?;
    }
    Ok(())
}

/// A sample's lists as its raw row keeps them (`top_chain.rs`), with its CPU use and memory
/// used (-1 when the sample does not say).
pub(super) fn lists_of(s: &Snapshot) -> Option<Lists> {
    let p = s.processes.as_ref()?;
    let (cpu_peak, mem_peak) = peaks(s);
    let keep = |l: &[ProcessTop]| l[..l.len().min(MAX_TOP_PROCESSES)].to_vec();
    Some(Lists {
        cpu_peak,
        mem_peak,
        cpu: keep(&p.top_cpu),
        mem: keep(&p.top_rss),
    })
}

/// The peaks of one minute being gathered: (peak, time, list bytes) for CPU and memory.
pub(super) type Peak = Option<(f64, i64, Vec<u8>)>;

/// Keeps `(value, ts, list())` when it is higher than what `slot` holds (ties keep the first).
fn higher(slot: &mut Peak, value: f64, ts: i64, list: impl FnOnce() -> Vec<u8>) {
    if slot.as_ref().is_none_or(|(v, _, _)| value > *v) {
        *slot = Some((value, ts, list()));
    }
}

/// One list as stored, with the time of the sample it came from.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct TopList {
    pub ts_ms: i64,
    pub processes: Vec<ProcessTop>,
}

/// The lists behind a moment or a range of one host.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct TopAnswer {
    /// `raw`: the sample nearest the moment; `minute`: the peaks of the minutes in the range.
    pub tier: Tier,
    pub top_cpu: Option<TopList>,
    pub top_rss: Option<TopList>,
}

/// What a sample's lists are ranked by within its minute: the host's CPU use (%) and memory
/// used (MB); -1 when the sample does not say, so any sample that does wins the minute.
fn peaks(s: &Snapshot) -> (f64, f64) {
    let cpu = s.cpu.as_ref().and_then(|c| c.usage_percent);
    let mem = s
        .memory
        .as_ref()
        .map(|m| m.total_mb.saturating_sub(m.available_mb) as f64);
    (
        cpu.filter(|v| v.is_finite()).unwrap_or(-1.0),
        mem.unwrap_or(-1.0),
    )
}

/// The start of the minute holding `t` (saturating at the ends of time).
fn minute_of(t: i64) -> i64 {
    t.saturating_sub(t.rem_euclid(MINUTE_MS))
}

/// A minute's peak as gathered, decoded for an hour's row.
pub(super) fn as_peak(p: Peak) -> Option<top_hour::Peak> {
    let (value, ts, bytes) = p?;
    let list = decode_list(&bytes)?;
    Some(top_hour::Peak { value, ts, list })
}

impl Tsdb {
    /// As the raw tier's horizon passes them, the raw rows' minutes' peaks go to the minute
    /// peaks' tables (merged with what a minute already holds: a peak only rises). The rows
    /// stay until their day's table goes (`parts.rs`): how far the peaks were kept is in
    /// `meta`, so no row is read (nor its minute written) twice.
    pub(super) fn keep_top_peaks(&self, horizon: i64) -> rusqlite::Result<()> {
        let kept: i64 = self
            .conn
            .query_row("SELECT value FROM meta WHERE key = ?1", [TOP_KEPT], |r| {
                r.get(0)
            })
            .optional()?
            .unwrap_or(i64::MIN);
        if kept >= horizon {
            return Ok(());
        }
        let mut minutes: BTreeMap<(i64, i64), (Peak, Peak)> = Default::default();
        // Host by host, each a walk of the raw tier's hour (or hours) just past the horizon
        // (its row ids are led by time): a host's chain stays in the cache.
        let hosts: Vec<i64> = self.hosts.values().map(|h| h.id).collect();
        for host in hosts {
            // Keys from the first of `kept` up to the last before `horizon`.
            let walk = Walk {
                from: first_key(kept),
                to: first_key(horizon).saturating_sub(1),
                ..Walk::whole(host)
            };
            let mut chain = TopChain::default();
            self.walk_raw(walk.with_top(), |r| {
                let Some(b) = r.top.as_deref().filter(|_| r.ts < horizon) else {
                    return Ok(true);
                };
                if let Some(l) = self.unpack_top(host, r.ts, r.seq, b, &mut chain)? {
                    let m = minutes.entry((host, minute_of(r.ts))).or_default();
                    higher(&mut m.0, l.cpu_peak, r.ts, || encode_list(&l.cpu));
                    higher(&mut m.1, l.mem_peak, r.ts, || encode_list(&l.mem));
                }
                Ok(true)
            })?;
        }
        // One row per host and hour (`top_hour.rs`), merged with what it holds already.
        let mut hours: BTreeMap<(i64, i64), top_hour::Hour> = BTreeMap::new();
        for ((host, start), (cpu, mem)) in minutes {
            let (Some(cpu), Some(mem)) = (as_peak(cpu), as_peak(mem)) else {
                continue;
            };
            let hour = hours.entry((host, floor(start, HOUR_MS))).or_default();
            top_hour::merge(hour, start, cpu, mem);
        }
        for ((host, start), new) in hours {
            let table = self
                .parts
                .borrow_mut()
                .table_for(&self.conn, Kind::Top, start)?;
            let mut hour = self.peaks_row(&table, host, start)?;
            for (minute, (cpu, mem)) in new {
                top_hour::merge(&mut hour, minute, cpu, mem);
            }
            let high = |pick: fn(&(top_hour::Peak, top_hour::Peak)) -> f64| {
                hour.values().map(pick).fold(-1.0, f64::max)
            };
            let (cpu_high, mem_high) = (high(|p| p.0.value), high(|p| p.1.value));
            self.conn
                .prepare_cached(&format!(
                    "INSERT OR REPLACE INTO {table}
                       (host, start, cpu_peak, cpu_ts, cpu, mem_peak, mem_ts, mem)
                     VALUES (?1, ?2, ?3, ?2, ?4, ?5, ?2, x'')"
                ))?
                .execute(params![
                    host,
                    start,
                    cpu_high,
                    top_hour::encode(start, &hour),
                    mem_high
                ])?;
        }
        self.conn.execute(
            "INSERT OR REPLACE INTO meta (key, value) VALUES (?1, ?2)",
            params![TOP_KEPT, horizon],
        )?;
        Ok(())
    }

    /// Deletes the minute peaks the minute tier let go (in `maintain`'s transaction).
    /// Each day's table goes whole once the day is past (`parts.rs`); the peaks of a database
    /// from before, in `top_minute`, an hour at a time.
    pub(super) fn prune_top(&self, minute_horizon: i64) -> rusqlite::Result<()> {
        self.conn
            .execute("DELETE FROM top_minute WHERE start < ?1", [minute_horizon])?;
        self.parts
            .borrow_mut()
            .drop_before(&self.conn, Kind::Top, minute_horizon)
    }

    /// The lists of `host` at `at_ms`: the stored sample nearest to it within `within_ms`,
    /// when the raw tier still covers that moment and `step_ms` is under a minute; otherwise
    /// the minute peaks of the `step_ms` (one minute at least) from the minute of `at_ms`.
    pub fn top_at(
        &self,
        host: &str,
        at_ms: i64,
        step_ms: i64,
        within_ms: i64,
        now_ms: i64,
    ) -> Result<Option<TopAnswer>, TsdbError> {
        self.top_at_inner(host, at_ms, step_ms, within_ms, now_ms)
            .map_err(|e| self.err(e))
    }

    fn top_at_inner(
        &self,
        host: &str,
        at_ms: i64,
        step_ms: i64,
        within_ms: i64,
        now_ms: i64,
    ) -> rusqlite::Result<Option<TopAnswer>> {
        let Some(id) = self.hosts.get(host).map(|h| h.id) else {
            return Ok(None);
        };
        if step_ms < MINUTE_MS && at_ms >= self.retention.horizon(Tier::Raw, now_ms) {
            let (lo, hi) = (
                at_ms.saturating_sub(within_ms),
                at_ms.saturating_add(within_ms),
            );
            // The nearest in time, the earlier of two as near.
            let mut row: Option<(i64, u64, Vec<u8>)> = None;
            self.walk_raw(Walk::host(id, lo, hi).with_top(), |r| {
                let near = |ts: i64| ts.abs_diff(at_ms);
                if let Some(top) = r.top.filter(|_| (lo..=hi).contains(&r.ts)) {
                    if row.as_ref().is_none_or(|(ts, _, _)| near(r.ts) < near(*ts)) {
                        row = Some((r.ts, r.seq, top));
                    }
                }
                Ok(true)
            })?;
            if let Some((ts_ms, seq, b)) = row {
                let lists = self.unpack_top(id, ts_ms, seq, &b, &mut TopChain::default())?;
                let (cpu, mem) = lists.map_or((None, None), |l| (Some(l.cpu), Some(l.mem)));
                let list =
                    |p: Option<Vec<ProcessTop>>| p.map(|processes| TopList { ts_ms, processes });
                return Ok(Some(TopAnswer {
                    tier: Tier::Raw,
                    top_cpu: list(cpu),
                    top_rss: list(mem),
                }));
            }
        }
        let from = minute_of(at_ms);
        self.top_peaks(id, from, from.saturating_add(step_ms.max(MINUTE_MS)))
    }

    /// The lists of `host`'s highest CPU and memory peaks over `[from_ms, to_ms)` (from its
    /// first minute): the raw rows still held and the minute peaks of those already gone
    /// (Grafana's table, a hover over a coarse chart).
    pub fn top_in(
        &self,
        host: &str,
        from_ms: i64,
        to_ms: i64,
    ) -> Result<Option<TopAnswer>, TsdbError> {
        match self.hosts.get(host).map(|h| h.id) {
            Some(id) => self
                .top_peaks(id, minute_of(from_ms), to_ms)
                .map_err(|e| self.err(e)),
            None => Ok(None),
        }
    }

    fn top_peaks(&self, id: i64, from_ms: i64, to_ms: i64) -> rusqlite::Result<Option<TopAnswer>> {
        let (mut cpu, mut mem): (Peak, Peak) = (None, None);
        // Minutes the raw tier let go (the table of before, then each day's, oldest first):
        // an hour's row from its hour's start, a minute's row of before as it is…
        let hour0 = floor(from_ms, HOUR_MS);
        let tables = self.parts.borrow().tables_in(Kind::Top, hour0, to_ms);
        let inside = |t: i64| t >= from_ms && t < to_ms;
        for table in tables {
            let mut stmt = self.conn.prepare_cached(&format!(
                "SELECT cpu_peak, cpu_ts, cpu, mem_peak, mem_ts, mem, start FROM {table}
                 WHERE host = ?1 AND start >= ?2 AND start < ?3 ORDER BY start"
            ))?;
            let mut rows = stmt.query(params![id, hour0, to_ms])?;
            while let Some(r) = rows.next()? {
                let (c, m, start): (Vec<u8>, Vec<u8>, i64) = (r.get(2)?, r.get(5)?, r.get(6)?);
                if top_hour::is_hour_row(&c) {
                    let minutes = top_hour::decode(start, &c).unwrap_or_default();
                    for (_, (pc, pm)) in minutes.into_iter().filter(|(t, _)| inside(*t)) {
                        higher(&mut cpu, pc.value, pc.ts, || encode_list(&pc.list));
                        higher(&mut mem, pm.value, pm.ts, || encode_list(&pm.list));
                    }
                } else if inside(start) {
                    higher(&mut cpu, r.get(0)?, r.get(1)?, || c);
                    higher(&mut mem, r.get(3)?, r.get(4)?, || m);
                }
            }
        }
        // …and the samples it still holds, read in time order (ties keep the first).
        let mut chain = TopChain::default();
        let walk = Walk::host(id, from_ms, to_ms).with_top();
        self.walk_raw(walk, |r| {
            let Some(b) = r.top.as_deref().filter(|_| r.ts >= from_ms && r.ts < to_ms) else {
                return Ok(true);
            };
            if let Some(l) = self.unpack_top(id, r.ts, r.seq, b, &mut chain)? {
                higher(&mut cpu, l.cpu_peak, r.ts, || encode_list(&l.cpu));
                higher(&mut mem, l.mem_peak, r.ts, || encode_list(&l.mem));
            }
            Ok(true)
        })?;
        let list = |p: Peak| {
            p.and_then(|(_, ts_ms, b)| {
                decode_list(&b).map(|processes| TopList { ts_ms, processes })
            })
        };
        let (top_cpu, top_rss) = (list(cpu), list(mem));
        if top_cpu.is_none() && top_rss.is_none() {
            return Ok(None);
        }
        Ok(Some(TopAnswer {
            tier: Tier::Minute,
            top_cpu,
            top_rss,
        }))
    }
}
