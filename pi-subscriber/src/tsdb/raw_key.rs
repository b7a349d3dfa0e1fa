//! The raw tier's row ids (issue 22): a sample's time in ms times 256, plus its slot among
//! the rows of that same millisecond (other hosts', or another seq of the same host).
//!
//! The table is then in time order by its own B-tree, with no index beside it. The unique
//! index on (ts, host, seq) it had before cost every commit its right-hand leaf and interior
//! page again (`bench tsdb`, one host: 1.8 of 7 MB written a day went to the index). What
//! the index did, the key does: a time range is a row-id range (every read of the tier names
//! one), and a duplicate (same host, time and seq) is found among the few rows of its
//! millisecond before it is stored.
//!
//! The key is the table's `INTEGER PRIMARY KEY` column `key` (the row id by another name),
//! which a `VACUUM` keeps; a bare row id it would renumber.
//!
//! Rows of one millisecond are read in the order they were stored (the index ordered them by
//! host and seq); the remote-write batches, whose cursor is (time, seq), still sort them.

use rusqlite::{Connection, OptionalExtension};

use super::db::Tsdb;
use super::parts::day_of;
use super::raw_log::RawRecord;
use super::raw_scan::Walk;

/// Rows one millisecond can hold.
pub(super) const SLOTS: i64 = 256;

/// Rows one host may hold in one millisecond (a real publisher has one; a seq restarted at the
/// same millisecond, two). So no host can take another's slots: 64 hosts (`max_hosts`'
/// default) fill at most all 256.
pub(super) const HOST_SLOTS: usize = 4;

/// The first row id of `ts_ms` (saturating: a bound beyond any row stays beyond them).
pub(super) fn first_key(ts_ms: i64) -> i64 {
    ts_ms.saturating_mul(SLOTS)
}

/// The last row id of `ts_ms`.
pub(super) fn last_key(ts_ms: i64) -> i64 {
    first_key(ts_ms).saturating_add(SLOTS - 1)
}

/// What storing a raw row did.
#[derive(Debug, PartialEq, Eq)]
pub(super) enum Stored {
    Yes,
    /// The host's row of this time and seq is there already.
    Duplicate,
    /// The millisecond holds [`SLOTS`] rows already, or [`HOST_SLOTS`] of this host, or the
    /// time has no row id.
    NoSlot,
}

impl Tsdb {
    /// Stores a raw row under the next free slot of its millisecond.
    pub(super) fn insert_raw(
        &self,
        host: i64,
        ts_ms: i64,
        seq: u64,
        boot: u64,
        data: &[u8],
        top: Option<&[u8]>,
    ) -> rusqlite::Result<Stored> {
        let Some(first) = ts_ms
            .checked_mul(SLOTS)
            .filter(|k| k.checked_add(SLOTS).is_some())
        else {
            return Ok(Stored::NoSlot);
        };
        let mut next = first;
        let mut this_host = 0;
        let mut duplicate = false;
        self.walk_raw(Walk::keys(first, first + SLOTS - 1), |r| {
            if r.host == host && r.seq == seq {
                duplicate = true;
                return Ok(false);
            }
            this_host += usize::from(r.host == host);
            next = next.max(r.key + 1);
            Ok(true)
        })?;
        if duplicate {
            return Ok(Stored::Duplicate);
        }
        if next >= first + SLOTS || this_host >= HOST_SLOTS {
            return Ok(Stored::NoSlot);
        }
        // Into its day's file (`raw_log/`); the tables of a database from before take no
        // more rows.
        let rec = RawRecord {
            key: next,
            host,
            seq,
            boot,
            data: data.to_vec(),
            top: top.map(<[u8]>::to_vec),
        };
        self.raw_log.borrow_mut().append(day_of(ts_ms), &rec)?;
        Ok(Stored::Yes)
    }

    /// The time and seq of `host`'s newest raw row (its highest seq of that millisecond).
    pub(super) fn newest_raw(&self, host: i64) -> rusqlite::Result<Option<(i64, i64)>> {
        let Some(newest) = self.first_raw(Walk::whole(host).newest_first(), |_| true)? else {
            return Ok(None);
        };
        let ts = newest.ts;
        let mut top: Option<(i64, i64)> = None;
        self.walk_raw(Walk::host(host, ts, ts), |r| {
            if top.is_none_or(|(_, s)| r.seq as i64 > s) {
                top = Some((r.ts, r.seq as i64));
            }
            Ok(true)
        })?;
        Ok(top)
    }
}

/// A raw table of an older layout (`WITHOUT ROWID` keyed by host, a rowid table with an
/// index on (host, ts, seq) or (ts, host, seq), or one without the `key` column) moves to this one in one transaction at open:
/// each row under its key, in (ts, host, seq) order within a millisecond, the index dropped.
/// A row whose time has no key, or beyond a millisecond's [`SLOTS`], is left out.
pub(super) fn upgrade(conn: &Connection) -> rusqlite::Result<()> {
    let sql: Option<String> = conn
        .query_row(
            "SELECT sql FROM sqlite_schema WHERE type = 'table' AND name = 'raw'",
            [],
            |r| r.get(0),
        )
        .optional()?;
    let Some(sql) = sql else {
        return Ok(());
    };
    let indexed: bool = conn
        .prepare("SELECT 1 FROM sqlite_schema WHERE type = 'index' AND tbl_name = 'raw'")?
        .exists([])?;
    let keyed: bool = conn
        .prepare("SELECT 1 FROM pragma_table_info('raw') WHERE name = 'key' AND pk = 1")?
        .exists([])?;
    if keyed && !indexed && !sql.contains("WITHOUT ROWID") {
        return Ok(());
    }
    let has_top: bool = conn
        .prepare("SELECT 1 FROM pragma_table_info('raw') WHERE name = 'top'")?
        .exists([])?;
    conn.execute_batch("BEGIN; ALTER TABLE raw RENAME TO raw_before;")?;
    let bound = i64::MAX / SLOTS - 1;
    let moved = conn.execute_batch(&format!(
        "CREATE TABLE raw (
            key INTEGER PRIMARY KEY, host INTEGER NOT NULL, ts INTEGER NOT NULL,
            seq INTEGER NOT NULL, boot INTEGER NOT NULL, data BLOB NOT NULL, top BLOB);
         INSERT INTO raw (key, host, ts, seq, boot, data, top)
            SELECT ts * {SLOTS} + n - 1, host, ts, seq, boot, data, top FROM (
                SELECT host, ts, seq, boot, data, {top} AS top,
                    ROW_NUMBER() OVER (PARTITION BY ts ORDER BY host, seq) AS n
                FROM raw_before WHERE ts BETWEEN -{bound} AND {bound})
            WHERE n <= {SLOTS} ORDER BY ts, host, seq;
         DROP TABLE raw_before;
         COMMIT;",
        top = if has_top { "top" } else { "NULL" }
    ));
    if moved.is_err() {
        let _ = conn.execute_batch("ROLLBACK");
    }
    moved
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tsdb::tests::{retention, T0};

    fn keys(db: &Tsdb) -> Vec<(i64, i64, i64)> {
        let all = db.all_raw_for_test().into_iter();
        all.map(|r| (r.key, r.host, r.seq as i64)).collect()
    }

    #[test]
    fn rows_of_one_millisecond_take_the_next_slots_and_a_duplicate_is_found_among_them() {
        let db = Tsdb::open_in_memory(retention(), 500, T0).unwrap();
        let k = T0 * SLOTS;
        assert_eq!(db.insert_raw(2, T0, 7, 0, b"a", None).unwrap(), Stored::Yes);
        assert_eq!(db.insert_raw(1, T0, 9, 0, b"b", None).unwrap(), Stored::Yes);
        assert_eq!(db.insert_raw(2, T0, 8, 0, b"c", None).unwrap(), Stored::Yes);
        assert_eq!(
            db.insert_raw(2, T0 + 1, 9, 0, b"d", None).unwrap(),
            Stored::Yes
        );
        assert_eq!(
            db.insert_raw(2, T0, 7, 0, b"again", None).unwrap(),
            Stored::Duplicate
        );
        assert_eq!(
            db.insert_raw(1, T0, 9, 0, b"again", None).unwrap(),
            Stored::Duplicate
        );
        assert_eq!(
            keys(&db),
            [(k, 2, 7), (k + 1, 1, 9), (k + 2, 2, 8), (k + SLOTS, 2, 9)]
        );
        // The newest of a host is its last millisecond's highest seq.
        assert_eq!(db.newest_raw(2).unwrap(), Some((T0 + 1, 9)));
        assert_eq!(db.newest_raw(1).unwrap(), Some((T0, 9)));
        assert_eq!(db.newest_raw(3).unwrap(), None);
    }

    #[test]
    fn a_full_millisecond_and_a_time_without_a_key_store_nothing() {
        let db = Tsdb::open_in_memory(retention(), 500, T0).unwrap();
        // One host takes at most HOST_SLOTS of a millisecond: a flood of seqs at one time
        // leaves the other hosts' slots alone.
        for seq in 0..HOST_SLOTS as u64 {
            assert_eq!(
                db.insert_raw(1, T0, seq, 0, b"x", None).unwrap(),
                Stored::Yes
            );
        }
        assert_eq!(
            db.insert_raw(1, T0, 99, 0, b"x", None).unwrap(),
            Stored::NoSlot
        );
        assert_eq!(
            db.insert_raw(2, T0, 99, 0, b"x", None).unwrap(),
            Stored::Yes
        );
        // Many hosts fill the millisecond.
        for host in 3..=(SLOTS - HOST_SLOTS as i64 + 1) {
            assert_eq!(
                db.insert_raw(host, T0, 1, 0, b"x", None).unwrap(),
                Stored::Yes
            );
        }
        assert_eq!(
            db.insert_raw(999, T0, 1, 0, b"x", None).unwrap(),
            Stored::NoSlot
        );
        assert_eq!(
            db.insert_raw(999, T0 + 1, 1, 0, b"x", None).unwrap(),
            Stored::Yes
        );
        for ts in [i64::MAX, i64::MIN, i64::MAX / SLOTS] {
            assert_eq!(
                db.insert_raw(1, ts, 1, 0, b"x", None).unwrap(),
                Stored::NoSlot
            );
        }
        assert_eq!(first_key(i64::MIN), i64::MIN);
        assert_eq!(last_key(i64::MAX), i64::MAX);
        // Negative times (a clock at 1969) keep their order.
        assert!(last_key(-2) < first_key(-1) && last_key(-1) < first_key(0));
    }
}

#[cfg(test)]
mod vacuum_tests {
    use super::*;
    use crate::tsdb::tests::{retention, T0};

    /// `VACUUM` (a user's `sqlite3 history.sqlite VACUUM`) renumbers the row ids of a table
    /// without an `INTEGER PRIMARY KEY`: the keys of a database from before, whose raw rows
    /// stay in its table, must survive it.
    #[test]
    fn a_vacuum_keeps_every_row_under_its_key() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("h.sqlite");
        let db = Tsdb::open(&path, retention(), 500, T0).unwrap();
        for (key, host, ts, seq) in [
            (T0 * SLOTS, 1, T0, 1),
            (T0 * SLOTS + 1, 2, T0, 1),
            ((T0 + 15_000) * SLOTS, 1, T0 + 15_000, 2),
        ] {
            db.conn
                .execute(
                    "INSERT INTO raw (key, host, ts, seq, boot, data) VALUES (?1, ?2, ?3, ?4, 0, x'00')",
                    rusqlite::params![key, host, ts, seq],
                )
                .unwrap();
        }
        db.conn
            .execute_batch("DELETE FROM raw WHERE host = 2; VACUUM;")
            .unwrap();
        let keys: Vec<(i64, i64)> = db
            .conn
            .prepare("SELECT rowid, ts FROM raw ORDER BY rowid")
            .unwrap()
            .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
            .unwrap()
            .map(|r| r.unwrap())
            .collect();
        assert_eq!(
            keys,
            [(T0 * SLOTS, T0), ((T0 + 15_000) * SLOTS, T0 + 15_000)]
        );
        assert_eq!(db.newest_raw(1).unwrap(), Some((T0 + 15_000, 2)));
    }
}
