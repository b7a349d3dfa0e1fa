//! What the store's tests need of it beyond its API: rows written as an older version did.

use broker::Snapshot;
use rusqlite::params;

use super::db::{Sample, Tsdb};
use crate::registry::Value;

impl Tsdb {
    /// The minutes the minute peaks' tables hold, of the rows `filter` selects (an hour's
    /// row, `top_hour.rs`, counts its minutes; a minute's row of before, one).
    pub(super) fn peak_minutes_for_test(&self, filter: &str) -> i64 {
        let mut n = 0;
        for table in self.parts.borrow().tables(super::parts::Kind::Top) {
            let sql = format!("SELECT start, cpu FROM {table} {filter}");
            let mut stmt = self.conn.prepare(&sql).unwrap();
            let rows = stmt
                .query_map([], |r| Ok((r.get::<_, i64>(0)?, r.get::<_, Vec<u8>>(1)?)))
                .unwrap();
            for row in rows {
                let (start, cpu) = row.unwrap();
                n += match super::top_hour::is_hour_row(&cpu) {
                    true => super::top_hour::decode(start, &cpu).unwrap().len() as i64,
                    false => 1,
                };
            }
        }
        n
    }

    /// The series values of a snapshot, creating its series (tests that write raw rows as an
    /// older version did).
    pub(super) fn ingest_values_for_test(&mut self, s: &Snapshot) -> Vec<(u32, Value)> {
        self.begin().unwrap();
        let id = self.host_id(&s.host).unwrap();
        self.values_of(&s.host, id, s).unwrap().0
    }

    /// Writes one raw row as it is.
    pub(super) fn insert_raw_for_test(&mut self, s: &Sample) {
        self.begin().unwrap();
        let id = self.hosts.values().next().unwrap().id;
        let data = super::codec::encode_sample(&s.values);
        let stored = self.insert_raw(id, s.ts_ms, s.seq, s.boot, &data, None);
        assert_eq!(stored.unwrap(), super::raw_key::Stored::Yes);
    }

    /// What the disk bound does to `host`'s raw rows at or before `cut`: the rows after them
    /// whose base goes are stored whole, then they are deleted; how many went.
    pub(super) fn cut_raw_for_test(&self, host: i64, cut: i64) -> usize {
        self.rekey_after(host, cut).unwrap();
        let tables = self.parts.borrow().tables(super::parts::Kind::Raw);
        tables
            .iter()
            .map(|t| {
                self.conn
                    .execute(
                        &format!("DELETE FROM {t} WHERE key <= ?3 AND host = ?1 AND ts <= ?2"),
                        params![host, cut, super::raw_key::last_key(cut)],
                    )
                    .unwrap()
            })
            .sum::<usize>()
            + self.drop_raw_of(host, Some(cut)).unwrap()
    }

    /// The page numbers of the frames in the WAL of the database at `path` (2 KiB pages),
    /// then the WAL emptied (checkpointed): what was written since the last call.
    pub(super) fn wal_pages_for_test(&self, path: &std::path::Path) -> Vec<u32> {
        let wal = std::fs::read(path.with_extension("sqlite-wal")).unwrap_or_default();
        let out = wal
            .get(32..)
            .unwrap_or_default()
            .chunks_exact(24 + 2048)
            .map(|f| u32::from_be_bytes([f[0], f[1], f[2], f[3]]))
            .collect();
        self.conn
            .execute_batch("PRAGMA wal_checkpoint(TRUNCATE)")
            .unwrap();
        out
    }

    /// Every raw row, oldest first, with its blobs.
    pub(super) fn all_raw_for_test(&self) -> Vec<super::raw_scan::RawRow> {
        let all = super::raw_scan::Walk::keys(i64::MIN, i64::MAX);
        self.raw_rows(all.with_data().with_top()).unwrap()
    }

    /// The days the raw tier's files hold.
    pub(super) fn raw_days_for_test(&self) -> Vec<i64> {
        self.raw_log.borrow().days().collect()
    }

    /// Deletes the raw rows `which` picks as it is, without a rekey (a damaged database).
    pub(super) fn delete_raw_for_test(&self, which: impl Fn(&super::raw_scan::RawRow) -> bool) {
        for r in self.all_raw_for_test().iter().filter(|r| which(r)) {
            let h = super::raw_log::Hide {
                from: r.key,
                to: r.key,
                host: Some(r.host),
            };
            let day = super::parts::day_of(r.ts);
            self.raw_log.borrow_mut().hide(day, &h).unwrap();
        }
    }
}
