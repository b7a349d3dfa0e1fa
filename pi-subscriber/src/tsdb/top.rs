//! The top-process lists in the history: never a series per pid (that would grow without
//! bound as pids come and go), but the lists themselves, as they came, beside the samples.
//!
//! - `top`: one row per host and sample with its two lists, kept as long as the raw tier.
//! - `top_minute`: one row per host and minute with the lists of the minute's peak: the
//!   CPU list of the sample with the highest CPU use, the memory list of the sample with the
//!   most memory used; kept as long as the minute tier.
//!
//! Both are written in the sample's own transaction, so a rollback takes them with the sample
//! and the backfill brings them back with it. A row holds at most 2 × 32 processes (what
//! validation lets through), so a host's rows cost a bounded amount whatever it runs.

use broker::{ProcessTop, Snapshot};
use rusqlite::{params, OptionalExtension};
use serde::Serialize;

use super::db::Tsdb;
use super::rollup::{Tier, MINUTE_MS};
use super::top_codec::{decode_list, encode_list};
use super::TsdbError;

pub(super) const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS top (
    host INTEGER NOT NULL, ts INTEGER NOT NULL, seq INTEGER NOT NULL, count INTEGER NOT NULL,
    cpu BLOB NOT NULL, mem BLOB NOT NULL, PRIMARY KEY (host, ts, seq)) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS top_minute (
    host INTEGER NOT NULL, start INTEGER NOT NULL,
    cpu_peak REAL NOT NULL, cpu_ts INTEGER NOT NULL, cpu BLOB NOT NULL,
    mem_peak REAL NOT NULL, mem_ts INTEGER NOT NULL, mem BLOB NOT NULL,
    PRIMARY KEY (host, start)) WITHOUT ROWID;
";

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

impl Tsdb {
    /// Stores a sample's lists (call in its transaction, once its raw row went in).
    pub(super) fn store_top(&mut self, host_id: i64, s: &Snapshot) -> rusqlite::Result<()> {
        let Some(p) = &s.processes else {
            return Ok(());
        };
        let (cpu, mem) = (encode_list(&p.top_cpu), encode_list(&p.top_rss));
        self.conn
            .prepare_cached(
                "INSERT OR IGNORE INTO top (host, ts, seq, count, cpu, mem) VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
            )?
            .execute(params![host_id, s.ts_ms, s.seq as i64, p.count, cpu, mem])?;
        let (cpu_peak, mem_peak) = peaks(s);
        // A later sample replaces a list only with a higher peak (ties keep the first).
        self.conn
            .prepare_cached(
                "INSERT INTO top_minute (host, start, cpu_peak, cpu_ts, cpu, mem_peak, mem_ts, mem)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?4, ?7)
                 ON CONFLICT (host, start) DO UPDATE SET
                   cpu = CASE WHEN excluded.cpu_peak > cpu_peak THEN excluded.cpu ELSE cpu END,
                   cpu_ts = CASE WHEN excluded.cpu_peak > cpu_peak THEN excluded.cpu_ts ELSE cpu_ts END,
                   cpu_peak = MAX(cpu_peak, excluded.cpu_peak),
                   mem = CASE WHEN excluded.mem_peak > mem_peak THEN excluded.mem ELSE mem END,
                   mem_ts = CASE WHEN excluded.mem_peak > mem_peak THEN excluded.mem_ts ELSE mem_ts END,
                   mem_peak = MAX(mem_peak, excluded.mem_peak)",
            )?
            .execute(params![
                host_id,
                minute_of(s.ts_ms),
                cpu_peak,
                s.ts_ms,
                cpu,
                mem_peak,
                mem
            ])?;
        Ok(())
    }

    /// Deletes the lists the raw and minute tiers let go (in `maintain`'s transaction).
    pub(super) fn prune_top(&self, raw_horizon: i64, minute_horizon: i64) -> rusqlite::Result<()> {
        self.conn
            .execute("DELETE FROM top WHERE ts < ?1", [raw_horizon])?;
        self.conn
            .execute("DELETE FROM top_minute WHERE start < ?1", [minute_horizon])?;
        Ok(())
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
            let row = self
                .conn
                .prepare_cached(
                    "SELECT ts, cpu, mem FROM top WHERE host = ?1 AND ts BETWEEN ?2 AND ?3
                     ORDER BY ABS(ts - ?4), ts LIMIT 1",
                )?
                .query_row(
                    params![
                        id,
                        at_ms.saturating_sub(within_ms),
                        at_ms.saturating_add(within_ms),
                        at_ms
                    ],
                    |r| {
                        Ok((
                            r.get::<_, i64>(0)?,
                            r.get::<_, Vec<u8>>(1)?,
                            r.get::<_, Vec<u8>>(2)?,
                        ))
                    },
                )
                .optional()?;
            if let Some((ts_ms, cpu, mem)) = row {
                let list = |b: &[u8]| decode_list(b).map(|processes| TopList { ts_ms, processes });
                return Ok(Some(TopAnswer {
                    tier: Tier::Raw,
                    top_cpu: list(&cpu),
                    top_rss: list(&mem),
                }));
            }
        }
        let from = minute_of(at_ms);
        self.top_peaks(id, from, from.saturating_add(step_ms.max(MINUTE_MS)))
    }

    /// The lists of `host`'s highest CPU and memory peaks over `[from_ms, to_ms)`, from the
    /// minute rows starting in it (Grafana's table, a hover over a coarse chart).
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
        let peak = |which: &str| -> rusqlite::Result<Option<TopList>> {
            let sql = format!(
                "SELECT {which}_ts, {which} FROM top_minute WHERE host = ?1 AND start >= ?2 AND start < ?3
                 ORDER BY {which}_peak DESC, start LIMIT 1"
            );
            let row = self
                .conn
                .prepare_cached(&sql)?
                .query_row(params![id, from_ms, to_ms], |r| {
                    Ok((r.get::<_, i64>(0)?, r.get::<_, Vec<u8>>(1)?))
                })
                .optional()?;
            Ok(row.and_then(|(ts_ms, b)| {
                decode_list(&b).map(|processes| TopList { ts_ms, processes })
            }))
        };
        let (top_cpu, top_rss) = (peak("cpu")?, peak("mem")?);
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
