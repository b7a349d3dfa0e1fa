//! The history as remote write's queue: per remote and host, a cursor (the newest sample the
//! receiver acknowledged, in time order) persisted in `rw_cursor`; a sample stored behind a
//! cursor (a backfill that came late) is queued in `rw_late` in its own transaction, so it is
//! sent too, after the fact. A host's stream is held back at an open hole for up to
//! `hold_ms` after the hole opened, so that a backfill that fills it quickly is sent in order
//! (a receiver without an out-of-order window takes it all).
//!
//! A remote registered for the first time starts at each known host's newest sample (the
//! receiver is not sent 48 h of history it never asked for); a host first seen later starts
//! at its first sample. Samples the raw tier let go before they were sent are not sent.

use std::collections::HashMap;

use rusqlite::{params, OptionalExtension};

use super::chain::Chain;
use super::db::Tsdb;
use super::TsdbError;
use crate::registry::Value;

pub(super) const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS rw_cursor (
    remote TEXT NOT NULL, host INTEGER NOT NULL, ts INTEGER NOT NULL, seq INTEGER NOT NULL,
    PRIMARY KEY (remote, host)) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS rw_late (
    remote TEXT NOT NULL, host INTEGER NOT NULL, ts INTEGER NOT NULL, seq INTEGER NOT NULL,
    PRIMARY KEY (remote, host, ts, seq)) WITHOUT ROWID;
";

/// The position before every sample.
pub(super) const START: (i64, i64) = (i64::MIN, i64::MIN);

/// One stored sample to send: its host, time and values by (registry index, label).
#[derive(Debug, Clone, PartialEq)]
pub struct RwSample {
    pub host: String,
    pub ts_ms: i64,
    pub values: Vec<(usize, String, Value)>,
}

/// What acknowledges a batch.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct RwMark {
    /// New cursors: host id → (ts, seq).
    cursors: Vec<(i64, (i64, i64))>,
    /// Late rows sent: (host id, ts, seq).
    late: Vec<(i64, i64, i64)>,
}

/// The cursors of the registered remotes: remote → host id → (ts, seq).
pub(super) type Cursors = HashMap<String, HashMap<i64, (i64, i64)>>;

impl Tsdb {
    /// Registers a remote (at start-up): loads its cursors; on its first registration each
    /// known host's cursor is set at its newest sample. Commits.
    pub fn rw_register(&mut self, remote: &str) -> Result<(), TsdbError> {
        let run = |db: &mut Tsdb| -> rusqlite::Result<()> {
            let mut cursors = HashMap::new();
            {
                let mut stmt = db
                    .conn
                    .prepare("SELECT host, ts, seq FROM rw_cursor WHERE remote = ?1")?;
                let rows = stmt.query_map([remote], |r| Ok((r.get(0)?, (r.get(1)?, r.get(2)?))))?;
                for row in rows {
                    let (host, at): (i64, (i64, i64)) = row?;
                    cursors.insert(host, at);
                }
            }
            // First registration: no record of the remote (not "no cursors": a remote
            // registered before any host existed has none, and must keep every sample).
            let key = format!("rw:{remote}");
            let first = db
                .conn
                .query_row("SELECT 1 FROM meta WHERE key = ?1", [&key], |_| Ok(()))
                .optional()?
                .is_none();
            db.begin()?;
            db.conn.execute(
                "INSERT OR IGNORE INTO meta (key, value) VALUES (?1, 1)",
                [&key],
            )?;
            let ids: Vec<i64> = db.hosts.values().map(|h| h.id).collect();
            for id in ids {
                if cursors.contains_key(&id) {
                    continue;
                }
                let newest: Option<(i64, i64)> = if first { db.newest_raw(id)? } else { None };
                let at = newest.unwrap_or(START);
                db.conn.execute(
                    "INSERT OR REPLACE INTO rw_cursor (remote, host, ts, seq) VALUES (?1, ?2, ?3, ?4)",
                    params![remote, id, at.0, at.1],
                )?;
                cursors.insert(id, at);
            }
            db.rw.insert(remote.to_owned(), cursors);
            db.rw_walked.remove(remote);
            Ok(())
        };
        if let Err(e) = run(self) {
            let error = self.err(e);
            self.roll_back();
            return Err(error);
        }
        self.commit()
    }

    /// Reloads every registered remote's cursors from the database (after a rollback undid
    /// acknowledgements the memory had already taken).
    pub(super) fn rw_reload(&mut self) -> rusqlite::Result<()> {
        self.rw_walked.clear();
        let remotes: Vec<String> = self.rw.keys().cloned().collect();
        for remote in remotes {
            let mut cursors = HashMap::new();
            let mut stmt = self
                .conn
                .prepare("SELECT host, ts, seq FROM rw_cursor WHERE remote = ?1")?;
            let rows = stmt.query_map([&remote], |r| Ok((r.get(0)?, (r.get(1)?, r.get(2)?))))?;
            for row in rows {
                let (host, at): (i64, (i64, i64)) = row?;
                cursors.insert(host, at);
            }
            drop(stmt);
            self.rw.insert(remote, cursors);
        }
        Ok(())
    }

    /// At ingest (in the sample's transaction): queues a sample stored behind a remote's
    /// cursor for that remote.
    pub(super) fn rw_stored(&mut self, host: i64, ts_ms: i64, seq: u64) -> rusqlite::Result<()> {
        let at = (ts_ms, seq as i64);
        self.rw_stored_at(host, ts_ms);
        for (remote, cursors) in &self.rw {
            if cursors.get(&host).is_some_and(|c| at <= *c) {
                self.conn
                    .prepare_cached(
                        "INSERT OR IGNORE INTO rw_late (remote, host, ts, seq) VALUES (?1, ?2, ?3, ?4)",
                    )?
                    .execute(params![remote, host, at.0, at.1])?;
            }
        }
        Ok(())
    }

    /// The next samples for `remote` (`max` at most, each host's in time order): late ones
    /// first, then each wanted host's after its cursor, up to an open hole younger than
    /// `hold_ms`.
    pub fn rw_next(
        &mut self,
        remote: &str,
        wanted: impl Fn(&str) -> bool,
        max: usize,
        hold_ms: i64,
        now_ms: i64,
    ) -> Result<Option<(Vec<RwSample>, RwMark)>, TsdbError> {
        self.rw_next_inner(remote, &wanted, max.max(1), hold_ms, now_ms)
            .map_err(|e| self.err(e))
    }

    fn rw_next_inner(
        &mut self,
        remote: &str,
        wanted: &dyn Fn(&str) -> bool,
        max: usize,
        hold_ms: i64,
        now_ms: i64,
    ) -> rusqlite::Result<Option<(Vec<RwSample>, RwMark)>> {
        let Some(cursors) = self.rw.get(remote).cloned() else {
            return Ok(None);
        };
        let names: HashMap<i64, String> = self
            .hosts
            .iter()
            .filter(|(name, _)| wanted(name))
            .map(|(name, h)| (h.id, name.clone()))
            .collect();
        let mut out = Vec::new();
        let mut mark = RwMark::default();
        // Late samples first (they are older than what was sent).
        let late: Vec<(i64, i64, i64)> = {
            let mut stmt = self.conn.prepare_cached(
                "SELECT host, ts, seq FROM rw_late WHERE remote = ?1 ORDER BY host, ts, seq LIMIT ?2",
            )?;
            let rows = stmt.query_map(params![remote, max as i64], |r| {
                Ok((r.get(0)?, r.get(1)?, r.get(2)?))
            })?;
            rows.collect::<rusqlite::Result<_>>()?
        };
        let mut chain = Chain::default();
        for (host, ts, seq) in late {
            mark.late.push((host, ts, seq));
            let Some(name) = names.get(&host) else {
                continue;
            };
            if let Some(data) = self.raw_data(host, ts, seq as u64)? {
                let values = self.unpack(host, ts, seq as u64, &data, &mut chain)?;
                out.push(self.rw_sample(name, ts, values));
            }
        }
        if !mark.late.is_empty() {
            return Ok(Some((out, mark)));
        }
        // Then each host after its cursor, a share of the batch each, so that a long backlog
        // goes out beside the other hosts' live samples.
        let mut hosts: Vec<(i64, String)> = names.into_iter().collect();
        hosts.sort();
        let share = (max / hosts.len().max(1)).max(1);
        for (host, name) in hosts {
            let from = cursors.get(&host).copied().unwrap_or(START);
            let until = self.rw_horizon(host, from.0, hold_ms, now_ms)?;
            let room = share.min(max.saturating_sub(out.len()));
            if room == 0 {
                break;
            }
            let rows = self.rw_rows(remote, host, from, until, room)?;
            let Some(&(ts, seq, _)) = rows.last() else {
                continue;
            };
            mark.cursors.push((host, (ts, seq)));
            for (ts, seq, data) in rows {
                let values = self.unpack(host, ts, seq as u64, &data, &mut chain)?;
                out.push(self.rw_sample(&name, ts, values));
            }
        }
        Ok((!mark.cursors.is_empty()).then_some((out, mark)))
    }

    /// The newest time a host's samples may be sent up to: just before the oldest hole that
    /// opened within `hold_ms` and lies after `from_ts` (a backfill may still fill it).
    fn rw_horizon(
        &self,
        host: i64,
        from_ts: i64,
        hold_ms: i64,
        now_ms: i64,
    ) -> rusqlite::Result<i64> {
        let hole: Option<i64> = self
            .conn
            .prepare_cached(
                "SELECT MIN(after_ts) FROM holes WHERE host = ?1 AND opened > ?2 AND before_ts > ?3",
            )?
            .query_row(params![host, now_ms.saturating_sub(hold_ms), from_ts], |r| r.get(0))?;
        Ok(hole.unwrap_or(i64::MAX))
    }

    fn rw_sample(&self, host: &str, ts_ms: i64, values: Vec<(u32, Value)>) -> RwSample {
        let values = values
            .into_iter()
            .filter_map(|(id, v)| {
                let (_, m, label) = self.series.get(&id)?;
                Some((*m, label.clone(), v))
            })
            .collect();
        RwSample {
            host: host.to_owned(),
            ts_ms,
            values,
        }
    }

    /// The batch is done with: cursors move, late rows go (in the open transaction; the
    /// history writer commits it with the next `history.commit_interval`).
    pub fn rw_ack(&mut self, remote: &str, mark: RwMark) -> Result<(), TsdbError> {
        let run = |db: &mut Tsdb| -> rusqlite::Result<()> {
            db.begin()?;
            for (host, ts, seq) in &mark.late {
                db.conn
                    .prepare_cached(
                        "DELETE FROM rw_late WHERE remote = ?1 AND host = ?2 AND ts = ?3 AND seq = ?4",
                    )?
                    .execute(params![remote, host, ts, seq])?;
            }
            for (host, at) in &mark.cursors {
                db.conn
                    .prepare_cached(
                        "INSERT OR REPLACE INTO rw_cursor (remote, host, ts, seq) VALUES (?1, ?2, ?3, ?4)",
                    )?
                    .execute(params![remote, host, at.0, at.1])?;
                if let Some(c) = db.rw.get_mut(remote) {
                    c.insert(*host, *at);
                }
            }
            Ok(())
        };
        run(self).map_err(|e| {
            let error = self.err(e);
            self.roll_back();
            error
        })
    }
}
