//! The database's size bound (`history.max_disk`, issue 18 item 10): when the pages in use
//! exceed it, the oldest raw rows go first (over all hosts, oldest by time, with their
//! process lists), then the oldest minute rows (process peaks first), then the oldest hour
//! rows, until they fit. SQLite reuses freed pages, so the
//! file stops growing there (it does not shrink: that would take a `VACUUM`, a full copy).

use serde::Serialize;

use super::db::Tsdb;
use super::parts::{Kind, Parts};
use super::raw_key::last_key;
use super::raw_scan::Walk;
use super::TsdbError;

/// The size figures for `/health` (`history.disk`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct DiskStats {
    /// Bytes in the database's pages in use (free pages, which SQLite reuses, not counted).
    pub db_bytes: u64,
    /// `history.max_disk`.
    pub max_disk_bytes: u64,
    /// Raw rows deleted, oldest first, to stay under `max_disk`.
    pub pruned_raw_rows_total: u64,
    /// Minute and hour rows deleted, oldest first, once no raw row was left to delete.
    pub pruned_bucket_rows_total: u64,
}

impl Tsdb {
    /// Bytes in the pages in use.
    pub fn used_bytes(&self) -> Result<u64, TsdbError> {
        self.used().map_err(|e| self.err(e))
    }

    fn used(&self) -> rusqlite::Result<u64> {
        let pragma = |name: &str| -> rusqlite::Result<u64> {
            self.conn
                .query_row(&format!("PRAGMA {name}"), [], |r| r.get::<_, i64>(0))
                .map(|v| v.max(0) as u64)
        };
        let pages = pragma("page_count")?.saturating_sub(pragma("freelist_count")?);
        let files = self.raw_log.borrow().bytes();
        Ok(pages
            .saturating_mul(pragma("page_size")?)
            .saturating_add(files))
    }

    /// Deletes the oldest rows until the pages in use fit in `max_bytes` (raw rows first),
    /// and records the figures; commits. The writer calls it at every commit.
    pub fn bound_disk(&mut self, max_bytes: u64) -> Result<(), TsdbError> {
        if let Err(e) = self.bound_inner(max_bytes) {
            let error = self.err(e);
            self.roll_back();
            return Err(error);
        }
        self.commit()
    }

    fn bound_inner(&mut self, max_bytes: u64) -> rusqlite::Result<()> {
        let mut used = self.used()?;
        self.stats.disk.max_disk_bytes = max_bytes;
        if used > max_bytes {
            self.begin()?;
            for table in [&RAW, &TOP_MINUTE, &MINUTE, &HOUR] {
                while used > max_bytes {
                    let gone = self.prune_oldest(table, used - max_bytes)?;
                    if gone == 0 {
                        break; // nothing left in this table
                    }
                    if table.name == "raw" {
                        self.stats.disk.pruned_raw_rows_total += gone;
                    } else {
                        self.stats.disk.pruned_bucket_rows_total += gone;
                    }
                    used = self.used()?;
                }
            }
            tracing::warn!(
                db_bytes = used,
                max_disk = max_bytes,
                raw_rows = self.stats.disk.pruned_raw_rows_total,
                bucket_rows = self.stats.disk.pruned_bucket_rows_total,
                "history.max_disk reached: the oldest rows were deleted (totals since start)"
            );
        }
        self.stats.disk.db_bytes = used;
        Ok(())
    }

    /// Deletes about `excess` bytes of the table's oldest rows, by time over all its groups
    /// (hosts, series); returns how many went (0: the table is empty).
    fn prune_oldest(&self, t: &Table, excess: u64) -> rusqlite::Result<u64> {
        if t.name == RAW.name {
            return self.prune_oldest_raw(excess);
        }
        // Of a tier cut by day (`parts.rs`), its oldest table that holds a row.
        let name = match t.kind {
            None => t.name.to_owned(),
            Some(kind) => match self.oldest_held(kind)? {
                Some(name) => name,
                None => return Ok(0),
            },
        };
        let groups: Vec<i64> = {
            let mut stmt = self.conn.prepare(t.groups)?;
            let rows = stmt.query_map([], |r| r.get(0))?;
            rows.collect::<rusqlite::Result<_>>()?
        };
        if groups.is_empty() {
            return Ok(0);
        }
        // The oldest rows of each group, (time, bytes), read in key order from the primary key.
        let per_group = (PER_PASS / groups.len()).max(8);
        let mut oldest: Vec<(i64, u64)> = Vec::new();
        // A group with more rows than were read may hold unread rows past its last one read:
        // the cut stays at or before that, so every row it deletes was counted.
        let mut cut_limit = i64::MAX;
        let mut stmt = self.conn.prepare(&format!(
            "SELECT {key}, {bytes} FROM {table} WHERE {group} = ?1 ORDER BY {key} LIMIT ?2",
            key = t.key,
            bytes = t.bytes,
            table = name,
            group = t.group
        ))?;
        for g in &groups {
            let rows = stmt.query_map([*g, per_group as i64], |r| {
                Ok((r.get::<_, i64>(0)?, r.get::<_, i64>(1)?.max(0) as u64))
            })?;
            let before = oldest.len();
            for row in rows {
                oldest.push(row?);
            }
            if oldest.len() - before == per_group {
                // Before its last key, which further rows may share (one minute's peaks of
                // several hosts), unless that is its only key.
                if let (Some((first, _)), Some((last, _))) = (oldest.get(before), oldest.last()) {
                    cut_limit = cut_limit.min((*last - 1).max(*first));
                }
            }
        }
        oldest.sort_unstable();
        let Some(cut) = cut_at(&oldest, cut_limit, excess) else {
            return Ok(0);
        };
        let mut gone = 0;
        let mut delete = self.conn.prepare(&format!(
            "DELETE FROM {table} WHERE {group} = ?1 AND {key} <= ?2",
            key = t.key,
            table = name,
            group = t.group
        ))?;
        for g in &groups {
            gone += delete.execute([*g, cut])? as u64;
        }
        Ok(gone)
    }
}

impl Tsdb {
    /// The oldest table of `kind` that holds a row (the table of before first, then the days'),
    /// dropping each empty day's table on the way; `None`: every one is empty.
    fn oldest_held(&self, kind: Kind) -> rusqlite::Result<Option<String>> {
        let tables = self.parts.borrow().tables(kind);
        for (i, table) in tables.into_iter().enumerate() {
            let held = self
                .conn
                .prepare(&format!("SELECT 1 FROM {table} LIMIT 1"))?
                .exists([])?;
            if held {
                return Ok(Some(table));
            }
            if i > 0 {
                // The oldest day's table, empty.
                self.parts.borrow_mut().drop_oldest(&self.conn, kind)?;
            }
        }
        Ok(None)
    }

    /// The raw tier's share of [`Tsdb::prune_oldest`]: its oldest rows over all hosts are its
    /// first row ids, whole milliseconds at a time.
    fn prune_oldest_raw(&self, excess: u64) -> rusqlite::Result<u64> {
        let walk = Walk::keys(i64::MIN, i64::MAX).with_data().with_top();
        let oldest: Vec<(i64, u64)> = self
            .raw_rows_upto(walk, PER_PASS)?
            .iter()
            .map(|r| {
                (
                    r.ts,
                    (r.data().len() + r.top.as_ref().map_or(0, Vec::len)) as u64,
                )
            })
            .collect();
        let Some(&(first, _)) = oldest.first() else {
            return Ok(0);
        };
        // A full pass may have left rows of its last millisecond unread: the cut stays before
        // it, so every row it deletes was counted (but for the first millisecond, whole).
        let cut_limit = match oldest.last() {
            Some(&(last, _)) if oldest.len() == PER_PASS => (last - 1).max(first),
            _ => i64::MAX,
        };
        let cut = cut_at(&oldest, cut_limit, excess).unwrap_or(first);
        let hosts: Vec<i64> = self.hosts.values().map(|h| h.id).collect();
        for host in hosts {
            // Rows kept as a change from a row about to go are stored whole first.
            self.rekey_after(host, cut)?;
        }
        // The days' tables wholly at or before the cut go whole (`parts.rs`): their rows are
        // counted, not deleted (a `DELETE` would write every page it empties, then the drop
        // free them). The rest, the edge day and the table of before, by key.
        let mut gone = 0;
        let (tables, whole) = {
            let parts = self.parts.borrow();
            let horizon = cut.saturating_add(1);
            let whole: Vec<String> = parts
                .days_before(Kind::Raw, horizon)
                .into_iter()
                .map(|day| Parts::name(Kind::Raw, day))
                .collect();
            (parts.tables_in(Kind::Raw, i64::MIN, horizon), whole)
        };
        for table in tables {
            gone += if whole.contains(&table) {
                self.conn
                    .query_row(&format!("SELECT COUNT(*) FROM {table}"), [], |r| {
                        r.get::<_, i64>(0)
                    })?
                    .max(0) as usize
            } else {
                self.conn.execute(
                    &format!("DELETE FROM {table} WHERE key <= ?1"),
                    [last_key(cut)],
                )?
            };
        }
        self.parts
            .borrow_mut()
            .drop_before(&self.conn, Kind::Raw, cut.saturating_add(1))?;
        gone += self.drop_raw_through(cut)?;
        Ok(gone as u64)
    }
}

/// Where to cut `oldest` (keys and bytes, ascending) to free `excess` bytes, at or before
/// `limit` (but never before the first key); `None` when there is nothing.
fn cut_at(oldest: &[(i64, u64)], limit: i64, excess: u64) -> Option<i64> {
    let mut cut = oldest.first()?.0;
    let mut bytes = 0u64;
    for &(key, len) in oldest.iter().take_while(|(k, _)| *k <= limit) {
        cut = key;
        bytes = bytes.saturating_add(len + ROW_OVERHEAD);
        if bytes >= excess {
            break;
        }
    }
    Some(cut)
}

/// A table pruned for size: its rows by group (host or series) and time.
struct Table {
    name: &'static str,
    /// A tier cut into a table a day (`parts.rs`): `name` is its table of before.
    kind: Option<Kind>,
    group: &'static str,
    key: &'static str,
    /// The groups to look at.
    groups: &'static str,
    /// A row's packed bytes.
    bytes: &'static str,
}

// The minute peaks are keyed by time first (`top.rs`): oldest first over all hosts, one group.
const TOP_MINUTE: Table = Table {
    name: "top_minute",
    kind: Some(Kind::Top),
    group: "0",
    key: "start",
    groups: "SELECT 0",
    bytes: "LENGTH(cpu) + LENGTH(mem) + 32",
};

// The raw tier goes by its row ids ([`Tsdb::prune_oldest_raw`]); `group` and `key` describe it.
const RAW: Table = Table {
    name: "raw",
    kind: None,
    group: "host",
    key: "ts",
    groups: "SELECT id FROM hosts",
    bytes: "LENGTH(data) + IFNULL(LENGTH(top), 0)",
};
// Minute rows are keyed by hour first (`minute.rs`): oldest first over all series is their
// key's order, one group.
const MINUTE: Table = Table {
    name: "minute",
    kind: Some(Kind::Minute),
    group: "0",
    key: "id",
    groups: "SELECT 0",
    bytes: "LENGTH(data)",
};
const HOUR: Table = Table {
    name: "hour",
    kind: None,
    group: "series",
    key: "start",
    groups: "SELECT id FROM series",
    bytes: "LENGTH(data)",
};

/// Rows looked at per pass (over all groups), so one pass holds the lock briefly.
const PER_PASS: usize = 4096;
/// What a row costs beyond its packed data (key columns, cell header), roughly.
const ROW_OVERHEAD: u64 = 32;

#[cfg(test)]
mod tests {
    use broker::{Cpu, Disk, DiskDevice, Snapshot};

    use super::*;
    use crate::tsdb::Retention;

    const T0: i64 = 1_700_006_400_000;
    const HOUR: i64 = 3_600_000;

    fn snap(host: &str, seq: u64, ts_ms: i64) -> Snapshot {
        Snapshot {
            host: host.into(),
            seq,
            ts_ms,
            boot_id: Some("b".into()),
            cpu: Some(Cpu {
                usage_percent: Some((seq % 100) as f64),
                ..Cpu::default()
            }),
            disk: Some(Disk {
                read_sectors: seq * 10,
                write_sectors: seq * 20,
                devices: (0..4)
                    .map(|d| {
                        (
                            format!("sd{d}"),
                            DiskDevice {
                                read_sectors: seq * d,
                                write_sectors: seq,
                                ..Default::default()
                            },
                        )
                    })
                    .collect(),
            }),
            ..Snapshot::default()
        }
    }

    fn retention() -> Retention {
        Retention {
            raw_ms: 48 * HOUR,
            minute_ms: 14 * 24 * HOUR,
            hour_ms: 730 * 24 * HOUR,
        }
    }

    /// Two hosts whose samples interleave in time: tower from T0, nas from T0 + 2 h.
    fn filled(dir: &std::path::Path) -> (Tsdb, i64) {
        let now = T0 + 13 * HOUR;
        let mut db = Tsdb::open(&dir.join("history.sqlite"), retention(), 500, now).unwrap();
        for seq in 1..=3000u64 {
            let ts = T0 + seq as i64 * 15_000;
            db.ingest(&snap("tower", seq, ts), true, now).unwrap();
            if seq <= 1500 {
                let ts = T0 + 2 * HOUR + seq as i64 * 15_000;
                db.ingest(&snap("nas", seq, ts), true, now).unwrap();
            }
        }
        db.commit().unwrap();
        (db, now)
    }

    /// Rows of `table` (of the minute tier: over its days' tables, `parts.rs`).
    fn count(db: &Tsdb, table: &str) -> u64 {
        if table == "minute" {
            return db.rows_of(Kind::Minute, "") as u64;
        }
        if table == "raw" {
            return db.all_raw_for_test().len() as u64;
        }
        db.conn
            .query_row(&format!("SELECT COUNT(*) FROM {table}"), [], |r| {
                r.get::<_, i64>(0)
            })
            .unwrap() as u64
    }

    fn raw_times(db: &Tsdb) -> Vec<i64> {
        let mut times: Vec<i64> = db.all_raw_for_test().iter().map(|r| r.ts).collect();
        times.sort_unstable();
        times
    }

    #[test]
    fn over_max_disk_the_oldest_raw_rows_go_first() {
        let dir = tempfile::tempdir().unwrap();
        let (mut db, _) = filled(dir.path());
        let before = raw_times(&db);
        assert_eq!(before.len(), 4500);
        let used = db.used_bytes().unwrap();
        // Within the bound: nothing goes, the figures are recorded.
        db.bound_disk(used).unwrap();
        assert_eq!(raw_times(&db).len(), 4500);
        assert_eq!(
            db.stats.disk,
            DiskStats {
                db_bytes: used,
                max_disk_bytes: used,
                pruned_raw_rows_total: 0,
                pruned_bucket_rows_total: 0
            }
        );
        let max = used * 6 / 10;
        db.bound_disk(max).unwrap();
        let after = raw_times(&db);
        let pruned = before.len() - after.len();
        assert!(pruned > 0 && !after.is_empty(), "{pruned} pruned");
        assert_eq!(db.stats.disk.pruned_raw_rows_total, pruned as u64);
        assert_eq!(db.stats.disk.pruned_bucket_rows_total, 0);
        assert!(db.used_bytes().unwrap() <= max);
        assert_eq!(db.stats.disk.db_bytes, db.used_bytes().unwrap());
        assert_eq!(db.stats.disk.max_disk_bytes, max);
        // Oldest first over both hosts: what is left is the newest `after.len()` rows.
        assert_eq!(after, before[pruned..]);
        // Committed: a reopened database holds the same.
        drop(db);
        let reopened = Tsdb::open(
            &dir.path().join("history.sqlite"),
            retention(),
            500,
            T0 + 13 * HOUR,
        )
        .unwrap();
        assert_eq!(raw_times(&reopened).len(), after.len());
    }

    #[test]
    fn when_no_raw_row_is_left_bucket_rows_go_oldest_first_and_it_stops() {
        let dir = tempfile::tempdir().unwrap();
        let (mut db, now) = filled(dir.path());
        // Close the bucket rows: minute rows are written once their hour is over.
        db.maintain(now + 24 * HOUR).unwrap();
        let (raw, minute, hour) = (count(&db, "raw"), count(&db, "minute"), count(&db, "hour"));
        assert_eq!(raw, 4500);
        assert!(
            minute > 0 && hour > 0,
            "{minute} minute rows, {hour} hour rows"
        );
        // A bound nothing fits in: everything goes, and it ends.
        db.bound_disk(1).unwrap();
        assert_eq!(
            (count(&db, "raw"), count(&db, "minute"), count(&db, "hour")),
            (0, 0, 0)
        );
        assert_eq!(db.stats.disk.pruned_raw_rows_total, raw);
        assert_eq!(db.stats.disk.pruned_bucket_rows_total, minute + hour);
    }
}
