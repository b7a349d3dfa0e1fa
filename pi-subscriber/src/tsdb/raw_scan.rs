//! The one read of the raw tier (issue 22): every reader walks a key range of it, of one host
//! or all, in key order either way, and filters the rows in Rust.
//!
//! The rows come from the tier's day files (`raw_log/`), merged in key order with those a
//! database from before holds in its tables, read through the view `raw_rows` (`parts.rs`). A key range is what both stores answer from their order
//! (a key is the sample's time × 256 plus a slot, `raw_key.rs`): a reader bounds its walk by
//! keys and keeps its other conditions (time, seq, lists present) as filters.

use std::sync::OnceLock;

use rusqlite::params;

use super::db::Tsdb;
use super::raw_key::{first_key, last_key, SLOTS};
use super::raw_log::RawRecord;

/// One raw row: blobs only when the walk asked for them.
#[derive(Debug, Clone, PartialEq)]
pub(super) struct RawRow {
    pub key: i64,
    pub host: i64,
    pub ts: i64,
    pub seq: u64,
    pub boot: u64,
    /// The packed values (`None` unless [`Walk::data`]).
    pub data: Option<Vec<u8>>,
    /// The top lists (`None` unless [`Walk::top`], or when the row has none).
    pub top: Option<Vec<u8>>,
}

impl RawRow {
    /// The packed values, empty when the walk did not ask for them.
    pub fn data(&self) -> &[u8] {
        self.data.as_deref().unwrap_or(&[])
    }
}

/// A walk of the raw tier: keys `from..=to`, of `host` or every host.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(super) struct Walk {
    pub from: i64,
    pub to: i64,
    pub host: Option<i64>,
    /// Newest first.
    pub desc: bool,
    /// Read the packed values.
    pub data: bool,
    /// Read the top lists.
    pub top: bool,
}

impl Walk {
    /// The rows of `host` at times `from_ms..=to_ms`, oldest first, without blobs.
    pub fn host(host: i64, from_ms: i64, to_ms: i64) -> Walk {
        Walk {
            from: first_key(from_ms),
            to: last_key(to_ms),
            host: Some(host),
            desc: false,
            data: false,
            top: false,
        }
    }

    /// Every row of `host`, oldest first, without blobs.
    pub fn whole(host: i64) -> Walk {
        Walk {
            from: i64::MIN,
            to: i64::MAX,
            ..Walk::host(host, 0, 0)
        }
    }

    /// Every host's rows with keys `from..=to`, oldest first, without blobs.
    pub fn keys(from: i64, to: i64) -> Walk {
        Walk {
            from,
            to,
            host: None,
            desc: false,
            data: false,
            top: false,
        }
    }

    pub fn with_data(self) -> Walk {
        Walk { data: true, ..self }
    }

    pub fn with_top(self) -> Walk {
        Walk { top: true, ..self }
    }

    pub fn newest_first(self) -> Walk {
        Walk { desc: true, ..self }
    }

    /// The statement of this walk's shape: one of 16, made once.
    fn sql(&self) -> &'static str {
        let shape = usize::from(self.data)
            | usize::from(self.top) << 1
            | usize::from(self.host.is_some()) << 2
            | usize::from(self.desc) << 3;
        &Walk::statements()[shape]
    }

    /// Every walk's statement, by shape.
    pub fn statements() -> &'static [String] {
        static SQL: OnceLock<Vec<String>> = OnceLock::new();
        SQL.get_or_init(|| {
            (0..16)
                .map(|shape| {
                    format!(
                        "SELECT key, host, ts, seq, boot, {}, {} FROM raw_rows
                         WHERE key BETWEEN ?1 AND ?2{} ORDER BY key{}",
                        if shape & 1 != 0 { "data" } else { "NULL" },
                        if shape & 2 != 0 { "top" } else { "NULL" },
                        if shape & 4 != 0 { " AND host = ?3" } else { "" },
                        if shape & 8 != 0 { " DESC" } else { "" },
                    )
                })
                .collect()
        })
    }
}

/// A day file's record as the walk hands it: its time from its key, blobs as asked.
fn row_of(r: RawRecord, walk: &Walk) -> RawRow {
    RawRow {
        key: r.key,
        host: r.host,
        ts: r.key.div_euclid(SLOTS),
        seq: r.seq,
        boot: r.boot,
        data: walk.data.then_some(r.data),
        top: if walk.top { r.top } else { None },
    }
}

impl Tsdb {
    /// Hands `each` the rows of `walk` in key order until it returns `false`.
    pub(super) fn walk_raw(
        &self,
        walk: Walk,
        mut each: impl FnMut(RawRow) -> rusqlite::Result<bool>,
    ) -> rusqlite::Result<()> {
        let mut stmt = self.conn.prepare_cached(walk.sql())?;
        let mut rows = match walk.host {
            Some(h) => stmt.query(params![walk.from, walk.to, h])?,
            None => stmt.query(params![walk.from, walk.to])?,
        };
        // The day files' rows, merged with the tables' in key order (a key is in one or the
        // other: a new row's slot is chosen by a walk over both, `raw_key.rs`).
        let log = self.raw_log.borrow();
        let mut files = log
            .walk(walk.from, walk.to, walk.host, walk.desc)
            .map(|r| row_of(r, &walk))
            .peekable();
        let before = |a: &RawRow, b: &RawRow| {
            if walk.desc {
                a.key > b.key
            } else {
                a.key < b.key
            }
        };
        while let Some(r) = rows.next()? {
            let row = RawRow {
                key: r.get(0)?,
                host: r.get(1)?,
                ts: r.get(2)?,
                seq: r.get::<_, i64>(3)? as u64,
                boot: r.get::<_, i64>(4)? as u64,
                data: r.get(5)?,
                top: r.get(6)?,
            };
            while let Some(f) = files.next_if(|f| before(f, &row)) {
                if !each(f)? {
                    return Ok(());
                }
            }
            if !each(row)? {
                return Ok(());
            }
        }
        for f in files {
            if !each(f)? {
                break;
            }
        }
        Ok(())
    }

    /// The rows of `walk`, all of them.
    pub(super) fn raw_rows(&self, walk: Walk) -> rusqlite::Result<Vec<RawRow>> {
        self.raw_rows_upto(walk, usize::MAX)
    }

    /// The first `max` rows of `walk` (a caller that must change the store between rows
    /// walks it a batch at a time, from the key after the last).
    pub(super) fn raw_rows_upto(&self, walk: Walk, max: usize) -> rusqlite::Result<Vec<RawRow>> {
        let mut out = Vec::new();
        self.walk_raw(walk, |r| {
            out.push(r);
            Ok(out.len() < max)
        })?;
        Ok(out)
    }

    /// The first row of `walk` that `keep` accepts.
    pub(super) fn first_raw(
        &self,
        walk: Walk,
        mut keep: impl FnMut(&RawRow) -> bool,
    ) -> rusqlite::Result<Option<RawRow>> {
        let mut found = None;
        self.walk_raw(walk, |r| {
            if keep(&r) {
                found = Some(r);
                return Ok(false);
            }
            Ok(true)
        })?;
        Ok(found)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tsdb::raw_key::Stored;
    use crate::tsdb::tests::{retention, T0};

    /// Two hosts' rows, one of them sharing a millisecond, one with lists.
    fn db() -> Tsdb {
        let db = Tsdb::open_in_memory(retention(), 500, T0).unwrap();
        for (host, ts, seq, top) in [
            (1, T0, 1, None),
            (2, T0, 7, Some(&b"lists"[..])),
            (1, T0 + 15_000, 2, None),
            (2, T0 + 15_000, 8, None),
            (1, T0 + 30_000, 3, None),
        ] {
            let data = [seq as u8; 3];
            let stored = db.insert_raw(host, ts, seq, 5, &data, top).unwrap();
            assert_eq!(stored, Stored::Yes);
        }
        db
    }

    fn seqs(rows: &[RawRow]) -> Vec<u64> {
        rows.iter().map(|r| r.seq).collect()
    }

    #[test]
    fn a_walk_gives_its_range_in_key_order_either_way_with_the_blobs_asked_for() {
        let db = db();
        let all = db.raw_rows(Walk::keys(i64::MIN, i64::MAX)).unwrap();
        assert_eq!(seqs(&all), vec![1, 7, 2, 8, 3]);
        assert_eq!(all[1].key, first_key(T0) + 1, "the millisecond's next slot");
        assert!(all.iter().all(|r| r.data.is_none() && r.top.is_none()));
        let one = db
            .raw_rows(Walk::host(2, T0, T0 + 15_000).with_top())
            .unwrap();
        assert_eq!(seqs(&one), vec![7, 8]);
        assert_eq!(
            (one[0].top.as_deref(), one[1].top.as_deref()),
            (Some(&b"lists"[..]), None)
        );
        assert!(one[0].data.is_none());
        let back = db
            .raw_rows(Walk::whole(1).with_data().newest_first())
            .unwrap();
        assert_eq!(seqs(&back), vec![3, 2, 1]);
        assert_eq!(back[0].data(), &[3, 3, 3]);
        assert_eq!(
            (back[0].ts, back[0].boot, back[0].host),
            (T0 + 30_000, 5, 1)
        );
        // A walk stopped early, and one taken a batch at a time from the key after the last.
        let first = db.first_raw(Walk::whole(2), |r| r.seq > 7).unwrap();
        assert_eq!(first.map(|r| r.ts), Some(T0 + 15_000));
        let mut walk = Walk::keys(i64::MIN, i64::MAX);
        let mut batches = Vec::new();
        loop {
            let batch = db.raw_rows_upto(walk, 2).unwrap();
            let Some(last) = batch.last() else { break };
            walk.from = last.key + 1;
            batches.push(seqs(&batch));
        }
        assert_eq!(batches, vec![vec![1, 7], vec![2, 8], vec![3]]);
    }

    /// The rows of a database from before, in its tables, are walked with the day files' in
    /// key order, either way, and a new row's slot and duplicate check see them.
    #[test]
    fn the_tables_rows_of_before_merge_with_the_day_files_in_key_order() {
        let db = db();
        // Host 1's seq 10 between its rows; host 2's seq 11 in T0's millisecond, after the
        // files' two; host 1's seq 12 after everything.
        for (key, host, seq) in [
            (first_key(T0 + 5_000), 1, 10),
            (first_key(T0) + 2, 2, 11),
            (first_key(T0 + 60_000), 1, 12),
        ] {
            db.conn
                .execute(
                    "INSERT INTO raw (key, host, ts, seq, boot, data, top) VALUES (?1, ?2, ?3, ?4, 5, ?5, NULL)",
                    params![key, host, key.div_euclid(SLOTS), seq, vec![seq as u8; 2]],
                )
                .unwrap();
        }
        let all = db.raw_rows(Walk::keys(i64::MIN, i64::MAX)).unwrap();
        assert_eq!(seqs(&all), vec![1, 7, 11, 10, 2, 8, 3, 12]);
        assert_eq!((all[3].ts, all[3].boot), (T0 + 5_000, 5));
        let back = db
            .raw_rows(Walk::whole(1).with_data().newest_first())
            .unwrap();
        assert_eq!(seqs(&back), vec![12, 3, 2, 10, 1]);
        assert_eq!(back[0].data(), &[12, 12]);
        let upto = db.raw_rows_upto(Walk::keys(i64::MIN, i64::MAX), 3).unwrap();
        assert_eq!(seqs(&upto), vec![1, 7, 11]);
        let first = db.first_raw(Walk::whole(1), |r| r.seq >= 10).unwrap();
        assert_eq!(first.map(|r| r.seq), Some(10));
        // T0's millisecond holds three rows now (two in the tables, one in a file).
        assert_eq!(
            db.insert_raw(2, T0 + 5_000, 10, 5, b"x", None).unwrap(),
            Stored::Yes
        );
        assert_eq!(
            db.insert_raw(1, T0 + 5_000, 10, 5, b"x", None).unwrap(),
            Stored::Duplicate
        );
        assert_eq!(db.insert_raw(3, T0, 1, 5, b"x", None).unwrap(), Stored::Yes);
        let keys: Vec<i64> = db
            .raw_rows(Walk::keys(first_key(T0), last_key(T0)))
            .unwrap()
            .iter()
            .map(|r| r.key)
            .collect();
        assert_eq!(keys, (0..4).map(|i| first_key(T0) + i).collect::<Vec<_>>());
    }
}
