//! The history's transactions: one open at a time, committed every `history.commit_interval`. A commit
//! (or a statement) that fails, a full disk most likely, is rolled back whole and undone in
//! memory too: closed bucket rows and `flushed` come back (the open rows are rebuilt from
//! what the raw tier committed), the caches are reloaded, and every sample the transaction
//! held becomes a hole, so the backfill brings it back from the publisher's ring. Nothing
//! blocks the next transaction, and nothing is lost that the ring still holds.

use std::collections::HashMap;

use super::db::Tsdb;
use super::holes::Hole;
use super::open::raw_log_key;
use super::rollup::Tier;
use super::TsdbError;

/// Holes kept in memory until a commit saves them (a disk full for long merges them per host).
const MAX_UNSAVED: usize = 4096;

/// A (seq, time) pair.
type At = (u64, i64);

/// What the open transaction changed.
#[derive(Debug, Default)]
pub struct TxLog {
    /// `flushed` as it was when the transaction began.
    flushed_before: Option<HashMap<Tier, i64>>,
    /// Per host, the lowest and highest (seq, ts) of the samples stored in it.
    samples: HashMap<String, (At, At)>,
    /// Holes not yet committed: written again into every transaction until one commits.
    unsaved: Vec<Hole>,
    /// The newest "now" the store was given (what a rebuild after a rollback measures from).
    pub now_ms: i64,
    /// A host was first stored in it: the writer commits at once, not at `commit_interval`
    /// (a Pi cut before would come back not knowing the host, and say nothing of it).
    new_host: bool,
    /// SQLite's count of rows changed on the connection when the transaction began: the
    /// same at the commit, the transaction changed nothing there but the raw tier's files.
    changes_at_begin: u64,
}

impl TxLog {
    pub fn new_host(&mut self) {
        self.new_host = true;
    }

    pub fn stored_sample(&mut self, host: &str, seq: u64, ts_ms: i64) {
        let e = self
            .samples
            .entry(host.to_owned())
            .or_insert(((seq, ts_ms), (seq, ts_ms)));
        if seq < e.0 .0 {
            e.0 = (seq, ts_ms);
        }
        if seq > e.1 .0 {
            e.1 = (seq, ts_ms);
        }
    }

    /// A sample that could not be stored at all.
    pub fn unsaved_sample(&mut self, host: &str, seq: u64, ts_ms: i64) {
        self.remember_hole(&Hole {
            host: host.to_owned(),
            after_seq: seq.saturating_sub(1),
            before_seq: seq.saturating_add(1),
            after_ts_ms: ts_ms,
            before_ts_ms: ts_ms,
            tries: 0,
        });
    }

    /// Keeps a hole until a commit saves it; overlapping or adjacent holes of one host merge.
    pub fn remember_hole(&mut self, hole: &Hole) {
        if let Some(h) = self.unsaved.iter_mut().find(|h| {
            h.host == hole.host && h.after_seq <= hole.before_seq && hole.after_seq <= h.before_seq
        }) {
            h.after_seq = h.after_seq.min(hole.after_seq);
            h.before_seq = h.before_seq.max(hole.before_seq);
            h.after_ts_ms = h.after_ts_ms.min(hole.after_ts_ms);
            h.before_ts_ms = h.before_ts_ms.max(hole.before_ts_ms);
            return;
        }
        if self.unsaved.len() >= MAX_UNSAVED {
            if let Some(h) = self.unsaved.iter_mut().rev().find(|h| h.host == hole.host) {
                h.before_seq = h.before_seq.max(hole.before_seq);
                h.before_ts_ms = h.before_ts_ms.max(hole.before_ts_ms);
                return;
            }
        }
        self.unsaved.push(hole.clone());
    }
}

impl Tsdb {
    pub(super) fn begin(&mut self) -> rusqlite::Result<()> {
        if !self.in_tx {
            self.conn.execute_batch("BEGIN")?;
            self.in_tx = true;
            self.tx.changes_at_begin = self.conn.total_changes();
            self.tx.flushed_before = Some(self.flushed.clone());
            let now = self.tx.now_ms;
            let unsaved = self.tx.unsaved.clone();
            for hole in &unsaved {
                self.write_hole(hole, now)?;
            }
            if !unsaved.is_empty() {
                self.count_holes()?;
            }
        }
        Ok(())
    }

    /// Commits what was ingested since the last commit (every `history.commit_interval`). When the
    /// commit fails, the transaction is rolled back and undone (see the module's doc).
    /// Every commit from now on synced to the device before it returns (`synchronous =
    /// FULL`; SQLite's WAL mode otherwise syncs only at checkpoints, so a power cut could take
    /// commits the kernel had not yet written back). The daemon's history asks for it: it
    /// commits every `commit_interval`, and a power cut should cost no more than that. The
    /// bytes written are the same; each commit waits for its sync.
    pub fn sync_every_commit(&mut self) -> Result<(), TsdbError> {
        self.conn
            .execute_batch("PRAGMA synchronous = FULL;")
            .map_err(|e| self.err(e))
    }

    /// Whether every commit is synced before it returns ([`Tsdb::sync_every_commit`]).
    pub fn syncs_every_commit(&self) -> bool {
        self.conn
            .query_row("PRAGMA synchronous", [], |r| r.get::<_, i64>(0))
            .is_ok_and(|v| v >= 2)
    }

    pub fn commit(&mut self) -> Result<(), TsdbError> {
        if !self.in_tx {
            return Ok(());
        }
        match self
            .store_raw_lengths()
            .and_then(|()| self.conn.execute_batch("COMMIT"))
        {
            Ok(()) => {
                self.raw_log.get_mut().committed();
                self.in_tx = false;
                self.tx.flushed_before = None;
                self.tx.samples.clear();
                self.tx.unsaved.clear();
                self.tx.new_host = false;
                self.stats.commits_total += 1;
                Ok(())
            }
            Err(e) => {
                let error = self.err(e);
                self.roll_back();
                Err(error)
            }
        }
    }

    /// Rolls the open transaction back (SQLite may have done it already) and undoes it in
    /// memory; its samples become holes, saved by the next transaction that commits.
    /// Whether the open transaction holds a host never committed before: commit it now.
    /// The raw tier's day files made durable, and their lengths stored in the transaction
    /// about to commit: what the files hold past them at the next open was never committed.
    /// A transaction that changed no row in SQLite (samples alone, most commits) stores no
    /// length: its days end with a seal instead, and SQLite writes nothing at all
    /// (`raw_log/mod.rs`). Rows changed there (a host, a series, a hole, a bucket row) need
    /// the lengths beside them: a cut before the commit must take the records with them.
    fn store_raw_lengths(&mut self) -> rusqlite::Result<()> {
        let sql = self.conn.total_changes() != self.tx.changes_at_begin;
        let log = self.raw_log.get_mut();
        if !sql && log.can_seal() {
            log.seal();
            log.write_whole_pages()?;
            return Ok(());
        }
        log.sync()?;
        let (changed, forgotten) = log.changes();
        for day in forgotten {
            self.conn
                .execute("DELETE FROM meta WHERE key = ?1", [raw_log_key(day)])?;
        }
        for (day, len) in changed {
            self.conn.execute(
                "INSERT OR REPLACE INTO meta (key, value) VALUES (?1, ?2)",
                rusqlite::params![raw_log_key(day), len as i64],
            )?;
        }
        Ok(())
    }

    /// Writes the raw tier's committed tail that sealed commits left buffered (less than a
    /// page a day) and makes it durable: at a clean stop, after the last commit.
    pub fn flush(&mut self) -> Result<(), TsdbError> {
        let flushed = self.raw_log.get_mut().flush_committed();
        flushed.map_err(|e| self.err(e.into()))
    }

    pub fn holds_a_new_host(&self) -> bool {
        self.in_tx && self.tx.new_host
    }

    pub(super) fn roll_back(&mut self) {
        if !self.conn.is_autocommit() {
            if let Err(error) = self.conn.execute_batch("ROLLBACK") {
                tracing::warn!(%error, db = %self.path.display(), "history rollback failed");
            }
        }
        if let Err(error) = self.raw_log.get_mut().rollback() {
            tracing::warn!(%error, "raw log rollback failed");
        }
        self.in_tx = false;
        self.tx.new_host = false;
        self.stats.rollbacks_total += 1;
        if let Some(flushed) = self.tx.flushed_before.take() {
            self.flushed = flushed;
        }
        let samples: Vec<_> = self.tx.samples.drain().collect();
        for (host, ((lo, lo_ts), (hi, hi_ts))) in samples {
            self.tx.remember_hole(&Hole {
                host,
                after_seq: lo.saturating_sub(1),
                before_seq: hi.saturating_add(1),
                after_ts_ms: lo_ts,
                before_ts_ms: hi_ts,
                tries: 0,
            });
        }
        // Series and hosts created in it are gone from the database: reload what is there,
        // and rebuild the open bucket rows from the committed raw tier (the values folded in
        // from the rolled-back samples go with them, so the backfill counts them once).
        self.hosts.clear();
        self.series.clear();
        self.open.clear();
        let now = self.tx.now_ms;
        // A day's table made in the transaction is gone with it.
        if let Err(error) =
            super::parts::Parts::load(&self.conn).map(|p| *self.parts.borrow_mut() = p)
        {
            tracing::warn!(%error, db = %self.path.display(), "cannot list the history's day tables after a rollback");
        }
        if let Err(error) = self
            .load()
            .and_then(|()| self.rebuild(now))
            .and_then(|()| self.rw_reload())
        {
            tracing::warn!(%error, db = %self.path.display(), "cannot reload the history after a rollback");
        }
        tracing::warn!(db = %self.path.display(), unsaved_holes = self.tx.unsaved.len(), "history transaction rolled back: its samples will be backfilled");
    }
}
