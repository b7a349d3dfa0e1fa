//! Remote write's walks of the raw tier. The tier has no index by host (its rows are keyed by
//! time, `raw_key.rs`), so a host's rows after its cursor are found by walking every host's
//! rows in time from there. Two things keep that short:
//!
//! - a walk stops once it has its batch (rows in key order are in time order; the
//!   `ORDER BY ts, seq` it replaces sorted every row to the end of the table at every batch:
//!   a one-hour catch-up of ten hosts took 17.8 s instead of 4.0);
//! - a walk that found nothing for a host remembers how far it went (`Walked`), so a host
//!   silent for a day is not looked for again through that day's rows of the others every
//!   second. A row of that host stored below the mark (a backfill) takes the mark away; a
//!   rollback (cursors back where the database has them) takes them all.

use std::collections::HashMap;

use super::raw_scan::Walk;

use super::db::Tsdb;
use super::raw_key::{first_key, last_key};
use super::rw::START;
use super::TsdbError;

/// Per remote and host id: the key up to which the host has no row after its cursor.
pub(super) type Walked = HashMap<String, HashMap<i64, i64>>;

impl Tsdb {
    /// Where a walk for `host`'s rows after `from` starts.
    fn rw_start(&self, remote: &str, host: i64, from: (i64, i64)) -> i64 {
        let walked = self
            .rw_walked
            .get(remote)
            .and_then(|m| m.get(&host))
            .map_or(i64::MIN, |k| k.saturating_add(1));
        first_key(from.0).max(walked)
    }

    /// A row of `host` dated `ts_ms` was stored: a walk's mark above it no longer holds.
    pub(super) fn rw_stored_at(&mut self, host: i64, ts_ms: i64) {
        let key = first_key(ts_ms);
        for marks in self.rw_walked.values_mut() {
            if marks.get(&host).is_some_and(|k| key <= *k) {
                marks.remove(&host);
            }
        }
    }

    /// `host`'s rows after `from` (time, seq) up to `until`: `room` of them and the rest of
    /// the last one's millisecond, in (time, seq) order. A millisecond's rows (stored in any
    /// seq order) are taken whole and sorted, so the cursor passes none of them.
    pub(super) fn rw_rows(
        &mut self,
        remote: &str,
        host: i64,
        from: (i64, i64),
        until: i64,
        room: usize,
    ) -> rusqlite::Result<Vec<(i64, i64, Vec<u8>)>> {
        let mut out: Vec<(i64, i64, Vec<u8>)> = Vec::new();
        let mut walked = None;
        let start = self.rw_start(remote, host, from);
        self.walk_raw(Walk::keys(start, last_key(until)).with_data(), |r| {
            let at: (i64, i64) = (r.ts, r.seq as i64);
            if r.host != host || at <= from {
                walked = Some(r.key);
                return Ok(true);
            }
            if out.len() >= room && out.last().is_some_and(|(t, _, _)| *t != at.0) {
                return Ok(false);
            }
            out.push((at.0, at.1, r.data.unwrap_or_default()));
            Ok(true)
        })?;
        if let (true, Some(key)) = (out.is_empty(), walked) {
            self.rw_walked
                .entry(remote.to_owned())
                .or_default()
                .insert(host, key);
        }
        out.sort_by_key(|(ts, seq, _)| (*ts, *seq));
        Ok(out)
    }

    /// Samples not yet sent to `remote` (wanted hosts), and how far the oldest is behind its
    /// host's newest (seconds).
    pub fn rw_backlog(
        &mut self,
        remote: &str,
        wanted: impl Fn(&str) -> bool,
    ) -> Result<(u64, f64), TsdbError> {
        self.rw_backlog_inner(remote, &wanted)
            .map_err(|e| self.err(e))
    }

    fn rw_backlog_inner(
        &mut self,
        remote: &str,
        wanted: &dyn Fn(&str) -> bool,
    ) -> rusqlite::Result<(u64, f64)> {
        let Some(cursors) = self.rw.get(remote) else {
            return Ok((0, 0.0));
        };
        let mut samples: u64 = self.conn.query_row(
            "SELECT COUNT(*) FROM rw_late WHERE remote = ?1",
            [remote],
            |r| r.get::<_, i64>(0),
        )? as u64;
        // Per wanted host: its cursor and where its rows after it may start.
        let from: HashMap<i64, ((i64, i64), i64)> = self
            .hosts
            .iter()
            .filter(|(name, _)| wanted(name))
            .map(|(_, h)| {
                let at = cursors.get(&h.id).copied().unwrap_or(START);
                (h.id, (at, self.rw_start(remote, h.id, at)))
            })
            .collect();
        let Some(oldest) = from.values().map(|f| f.1).min() else {
            return Ok((samples, 0.0));
        };
        // One walk in time from there, every host's rows at once: per host, the rows after
        // its cursor, the oldest of them and the newest.
        let mut unsent: HashMap<i64, (u64, i64, i64)> = HashMap::new();
        let mut last = None;
        self.walk_raw(Walk::keys(oldest, i64::MAX), |r| {
            last = Some(r.key);
            let at: (i64, i64) = (r.ts, r.seq as i64);
            if from
                .get(&r.host)
                .is_none_or(|(cursor, start)| r.key < *start || at <= *cursor)
            {
                return Ok(true);
            }
            let e = unsent.entry(r.host).or_insert((0, at.0, at.0));
            *e = (e.0 + 1, e.1.min(at.0), e.2.max(at.0));
            Ok(true)
        })?;
        let mut behind_ms = 0i64;
        for (&host, &(cursor, _)) in &from {
            let Some(&(n, first, newest)) = unsent.get(&host) else {
                // The walk went to the end of the tier and found nothing after its cursor.
                if let Some(key) = last {
                    self.rw_walked
                        .entry(remote.to_owned())
                        .or_default()
                        .insert(host, key);
                }
                continue;
            };
            samples += n;
            // The oldest unsent sample is this far behind what the host has now.
            let last_sent = if cursor.0 == START.0 { first } else { cursor.0 };
            behind_ms = behind_ms.max(newest.saturating_sub(last_sent));
        }
        Ok((samples, behind_ms as f64 / 1000.0))
    }
}
