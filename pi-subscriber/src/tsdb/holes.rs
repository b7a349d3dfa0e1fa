//! Holes: samples missing between two stored ones, as a persistent fact (issue 18 A1). A hole
//! is recorded in the same transaction as the sample that revealed it, retried with backoff
//! while the publisher's ring may still hold its samples, survives a restart, and ends either
//! filled or recorded as lost (a region with its count, shown to the user, never silent).

use rusqlite::{params, OptionalExtension};
use serde::Serialize;

use super::db::Tsdb;
use super::raw_scan::Walk;
use super::TsdbError;

/// Holes kept per host; one more is merged into the newest (a wider hole re-fetches a few
/// samples it has, and loses none).
pub const MAX_HOLES_PER_HOST: usize = 64;
/// Lost regions kept per host; the oldest go first.
pub const MAX_LOST_PER_HOST: usize = 1000;
/// A hole older than this is past any publisher's ring (24 h by default): what is still
/// missing is lost.
pub const GIVE_UP_MS: i64 = 25 * 3_600_000;
/// One lost region's count at most (a count, never a reason to overflow).
const MAX_LOST_COUNT: u64 = 1_000_000_000_000;
/// Retries wait 1 s doubling to this.
pub const MAX_RETRY_MS: i64 = 30_000;

pub(super) const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS holes (
    host INTEGER NOT NULL, after_seq INTEGER NOT NULL, before_seq INTEGER NOT NULL,
    after_ts INTEGER NOT NULL, before_ts INTEGER NOT NULL, opened INTEGER NOT NULL,
    tries INTEGER NOT NULL, next INTEGER NOT NULL, PRIMARY KEY (host, after_seq)) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS lost (
    host INTEGER NOT NULL, from_ts INTEGER NOT NULL, to_ts INTEGER NOT NULL,
    samples INTEGER NOT NULL, PRIMARY KEY (host, from_ts)) WITHOUT ROWID;
";

/// Samples missing between two stored ones: seqs `after_seq + 1 .. before_seq`, dated between
/// `after_ts_ms` and `before_ts_ms` (server clock).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Hole {
    pub host: String,
    pub after_seq: u64,
    pub before_seq: u64,
    pub after_ts_ms: i64,
    pub before_ts_ms: i64,
    /// Attempts so far.
    pub tries: u32,
}

impl Hole {
    pub fn missing(&self) -> u64 {
        self.before_seq
            .saturating_sub(self.after_seq)
            .saturating_sub(1)
    }
}

/// What one attempt to fill a hole found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Attempt {
    /// The publisher could not be asked (down, timeout, a bad answer): try again later.
    Failed,
    /// The publisher answered every page it was asked: what is still missing is not in its
    /// ring (older than it, or refused here). `newest_seq` is the newest it has: seqs past
    /// it never existed (a spoofed seq revealed the hole), so they are not lost either.
    Answered { newest_seq: Option<u64> },
}

/// What became of a hole after an attempt.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fate {
    Filled,
    /// Still open; retried at this time (Pi clock, Unix ms).
    Retry(i64),
    /// Closed; this many samples are recorded as lost.
    Lost(u64),
}

/// A region of a host's history whose samples are lost for good.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Lost {
    pub from_ms: i64,
    pub to_ms: i64,
    pub samples: u64,
}

/// Holes and losses, for `/health`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct HoleStats {
    pub holes_open: u64,
    pub holes_filled_total: u64,
    pub holes_retried_total: u64,
    /// Samples recorded as lost (older than the publisher's ring, or refused when fetched).
    pub samples_lost_total: u64,
}

fn retry_after(tries: u32) -> i64 {
    1000i64
        .saturating_mul(1i64 << tries.min(20))
        .min(MAX_RETRY_MS)
}

impl Tsdb {
    /// Records a hole (in the current transaction: it commits with the sample that revealed
    /// it). A hole already recorded from the same sample is widened, not doubled.
    pub fn add_hole(&mut self, hole: &Hole, now_ms: i64) -> Result<(), TsdbError> {
        self.add_hole_inner(hole, now_ms).map_err(|e| {
            let error = self.err(e);
            self.roll_back();
            error
        })
    }

    fn add_hole_inner(&mut self, hole: &Hole, now_ms: i64) -> rusqlite::Result<()> {
        if hole.missing() == 0 {
            return Ok(());
        }
        self.tx.remember_hole(hole);
        self.begin()?;
        self.write_hole(hole, now_ms)?;
        self.count_holes()
    }

    /// Writes a hole in the open transaction (creating its host if a rolled-back one took it).
    pub(super) fn write_hole(&mut self, hole: &Hole, now_ms: i64) -> rusqlite::Result<()> {
        let id = self.host_id(&hole.host)?;
        let known: bool = self
            .conn
            .query_row(
                "SELECT 1 FROM holes WHERE host = ?1 AND after_seq = ?2",
                params![id, hole.after_seq as i64],
                |_| Ok(()),
            )
            .optional()?
            .is_some();
        let count: i64 =
            self.conn
                .query_row("SELECT COUNT(*) FROM holes WHERE host = ?1", [id], |r| {
                    r.get(0)
                })?;
        if !known && count as usize >= MAX_HOLES_PER_HOST {
            // Merge into the newest hole: it now reaches this one's end.
            self.conn.execute(
                "UPDATE holes SET before_seq = MAX(before_seq, ?2), before_ts = MAX(before_ts, ?3), next = ?4
                 WHERE host = ?1 AND after_seq = (SELECT MAX(after_seq) FROM holes WHERE host = ?1)",
                params![id, hole.before_seq as i64, hole.before_ts_ms, now_ms],
            )?;
        } else {
            self.conn.execute(
                "INSERT INTO holes (host, after_seq, before_seq, after_ts, before_ts, opened, tries, next)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, 0, ?6)
                 ON CONFLICT (host, after_seq) DO UPDATE SET
                    before_seq = MAX(before_seq, excluded.before_seq),
                    before_ts = MAX(before_ts, excluded.before_ts), next = excluded.next",
                params![
                    id,
                    hole.after_seq as i64,
                    hole.before_seq as i64,
                    hole.after_ts_ms,
                    hole.before_ts_ms,
                    now_ms
                ],
            )?;
        }
        Ok(())
    }

    pub(super) fn count_holes(&mut self) -> rusqlite::Result<()> {
        self.stats.holes.holes_open =
            self.conn
                .query_row("SELECT COUNT(*) FROM holes", [], |r| r.get::<_, i64>(0))?
                as u64;
        Ok(())
    }

    /// The holes due for an attempt at `now_ms`, oldest retry first, at most `limit`.
    pub fn due_holes(&self, now_ms: i64, limit: usize) -> Result<Vec<Hole>, TsdbError> {
        let run = || -> rusqlite::Result<Vec<Hole>> {
            let mut stmt = self.conn.prepare_cached(
                "SELECT h.name, o.after_seq, o.before_seq, o.after_ts, o.before_ts, o.tries
                 FROM holes o JOIN hosts h ON h.id = o.host WHERE o.next <= ?1 ORDER BY o.next LIMIT ?2",
            )?;
            let rows = stmt.query_map(params![now_ms, limit as i64], |r| {
                Ok(Hole {
                    host: r.get(0)?,
                    after_seq: r.get::<_, i64>(1)? as u64,
                    before_seq: r.get::<_, i64>(2)? as u64,
                    after_ts_ms: r.get(3)?,
                    before_ts_ms: r.get(4)?,
                    tries: r.get::<_, i64>(5)?.clamp(0, u32::MAX as i64) as u32,
                })
            })?;
            rows.collect()
        };
        run().map_err(|e| self.err(e))
    }

    /// The seqs of `hole` the raw tier holds.
    fn present(&self, host: i64, hole: &Hole) -> rusqlite::Result<Vec<u64>> {
        let (lo, hi) = (hole.after_seq, hole.before_seq);
        let mut seqs = std::collections::BTreeSet::new();
        let walk = Walk::host(host, hole.after_ts_ms, hole.before_ts_ms);
        self.walk_raw(walk, |r| {
            if r.seq > lo && r.seq < hi && (hole.after_ts_ms..=hole.before_ts_ms).contains(&r.ts) {
                seqs.insert(r.seq);
            }
            Ok(true)
        })?;
        Ok(seqs.into_iter().collect())
    }

    /// Settles a hole after an attempt (commits with the samples it fetched): filled, retried
    /// later (narrowed to what is still missing), or closed with its missing samples recorded
    /// as lost.
    pub fn settle_hole(
        &mut self,
        hole: &Hole,
        attempt: &Attempt,
        now_ms: i64,
    ) -> Result<Fate, TsdbError> {
        self.settle_inner(hole, attempt, now_ms).map_err(|e| {
            let error = self.err(e);
            self.roll_back();
            error
        })
    }

    fn settle_inner(
        &mut self,
        hole: &Hole,
        attempt: &Attempt,
        now_ms: i64,
    ) -> rusqlite::Result<Fate> {
        let Some(id) = self.hosts.get(&hole.host).map(|h| h.id) else {
            return Ok(Fate::Filled); // forgotten meanwhile
        };
        self.begin()?;
        let key = params![id, hole.after_seq as i64];
        let opened: Option<i64> = self
            .conn
            .query_row(
                "SELECT opened FROM holes WHERE host = ?1 AND after_seq = ?2",
                key,
                |r| r.get(0),
            )
            .optional()?;
        let Some(opened) = opened else {
            return Ok(Fate::Filled); // settled meanwhile
        };
        let present = self.present(id, hole)?;
        let missing = match attempt {
            // Only what the publisher ever had can be missing.
            Attempt::Answered {
                newest_seq: Some(newest),
            } => {
                let end = hole.before_seq.min(newest.saturating_add(1));
                let within = present.iter().filter(|s| **s < end).count() as u64;
                end.saturating_sub(hole.after_seq)
                    .saturating_sub(1)
                    .saturating_sub(within)
            }
            _ => hole.missing().saturating_sub(present.len() as u64),
        };
        // Older than the raw tier: what was fetched went into the buckets and cannot be
        // counted here; one answered attempt settles it.
        let below_raw = hole.before_ts_ms < self.retention.horizon(super::Tier::Raw, now_ms);
        let fate = match attempt {
            _ if missing == 0 => Fate::Filled,
            Attempt::Answered { .. } if below_raw => Fate::Filled,
            Attempt::Answered { .. } => Fate::Lost(missing),
            Attempt::Failed if now_ms.saturating_sub(opened) > GIVE_UP_MS => Fate::Lost(missing),
            Attempt::Failed => {
                Fate::Retry(now_ms.saturating_add(retry_after(hole.tries.saturating_add(1))))
            }
        };
        match fate {
            Fate::Retry(next) => {
                // Narrow it to start at the first seq still missing.
                let mut after = (hole.after_seq, hole.after_ts_ms);
                let run: Vec<u64> = present
                    .iter()
                    .copied()
                    .take_while({
                        let mut want = hole.after_seq + 1;
                        move |s| {
                            let ok = *s == want;
                            want += 1;
                            ok
                        }
                    })
                    .collect();
                if let Some(last) = run.last() {
                    let span = hole.after_ts_ms..=hole.before_ts_ms;
                    let walk = Walk::host(id, hole.after_ts_ms, hole.before_ts_ms);
                    let found = self.first_raw(walk, |r| r.seq == *last && span.contains(&r.ts))?;
                    let ts = found.ok_or(rusqlite::Error::QueryReturnedNoRows)?.ts;
                    after = (*last, ts);
                }
                self.conn
                    .execute("DELETE FROM holes WHERE host = ?1 AND after_seq = ?2", key)?;
                self.conn.execute(
                    "INSERT OR REPLACE INTO holes (host, after_seq, before_seq, after_ts, before_ts, opened, tries, next)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
                    params![
                        id,
                        after.0 as i64,
                        hole.before_seq as i64,
                        after.1,
                        hole.before_ts_ms,
                        opened,
                        i64::from(hole.tries.saturating_add(1)),
                        next
                    ],
                )?;
                self.stats.holes.holes_retried_total += 1;
            }
            Fate::Filled => {
                self.conn
                    .execute("DELETE FROM holes WHERE host = ?1 AND after_seq = ?2", key)?;
                self.stats.holes.holes_filled_total += 1;
            }
            Fate::Lost(n) => {
                self.conn
                    .execute("DELETE FROM holes WHERE host = ?1 AND after_seq = ?2", key)?;
                self.record_lost(id, hole, n)?;
                self.stats.holes.samples_lost_total =
                    self.stats.holes.samples_lost_total.saturating_add(n);
            }
        }
        self.count_holes()?;
        Ok(fate)
    }

    /// The hole's region (between the samples around it) with the count of samples lost.
    fn record_lost(&mut self, host: i64, hole: &Hole, samples: u64) -> rusqlite::Result<()> {
        self.conn.execute(
            "INSERT INTO lost (host, from_ts, to_ts, samples) VALUES (?1, ?2, ?3, ?4)
             ON CONFLICT (host, from_ts) DO UPDATE SET to_ts = MAX(to_ts, excluded.to_ts),
                samples = MIN(samples + excluded.samples, 1000000000000)",
            params![
                host,
                hole.after_ts_ms,
                hole.before_ts_ms,
                samples.min(MAX_LOST_COUNT) as i64
            ],
        )?;
        self.conn.execute(
            "DELETE FROM lost WHERE host = ?1 AND from_ts NOT IN
               (SELECT from_ts FROM lost WHERE host = ?1 ORDER BY from_ts DESC LIMIT ?2)",
            params![host, MAX_LOST_PER_HOST as i64],
        )?;
        Ok(())
    }

    /// The lost regions of `host` overlapping `from_ms..=to_ms`, oldest first.
    pub fn lost(&self, host: &str, from_ms: i64, to_ms: i64) -> Result<Vec<Lost>, TsdbError> {
        let Some(id) = self.hosts.get(host).map(|h| h.id) else {
            return Ok(Vec::new());
        };
        let run = || -> rusqlite::Result<Vec<Lost>> {
            let mut stmt = self.conn.prepare_cached(
                "SELECT from_ts, to_ts, samples FROM lost WHERE host = ?1 AND to_ts >= ?2
                 AND from_ts <= ?3 ORDER BY from_ts",
            )?;
            let rows = stmt.query_map(params![id, from_ms, to_ms], |r| {
                Ok(Lost {
                    from_ms: r.get(0)?,
                    to_ms: r.get(1)?,
                    samples: r.get::<_, i64>(2)?.max(0) as u64,
                })
            })?;
            rows.collect()
        };
        run().map_err(|e| self.err(e))
    }

    /// Loads the counts at open.
    pub(super) fn load_holes(&mut self) -> rusqlite::Result<()> {
        self.count_holes()?;
        self.stats.holes.samples_lost_total =
            self.conn
                .query_row("SELECT COALESCE(SUM(samples), 0) FROM lost", [], |r| {
                    r.get::<_, i64>(0)
                })? as u64;
        Ok(())
    }
}

#[cfg(test)]
#[path = "holes_tests.rs"]
mod tests;
