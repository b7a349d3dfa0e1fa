//! The minute tier's table: each series' hour of one-minute buckets is stored as two rows of
//! half an hour, keyed by the half-hour first and the series second (`id`).
//!
//! - Keyed so, the rows of an hour that closes are appended together at the end of the
//!   table. Keyed by series first (as before issue 22), the same rows went to as many places
//!   in the B-tree as there are series, and each rewrote a page and its neighbours.
//! - Half an hour, because pages hold whole rows: a packed hour (~500 bytes) left half of
//!   each 1 KiB page empty, and a quarter of a 2 KiB one; halves fill them.
//!
//! The price is two lookups per hour when a series is read, cheap for the tier's 14 days.

use rusqlite::{params, Connection, OptionalExtension};

use super::db::Tsdb;
use super::pack;
use super::parts::Kind;
use super::rollup::{Bucket, Tier, HOUR_MS};

const HALF_MS: i64 = HOUR_MS / 2;
const HALF_SLOTS: usize = 30;

/// The row id of `series`'s half-hour row starting at `start_ms`.
pub(super) fn key(series: u32, start_ms: i64) -> i64 {
    (start_ms.div_euclid(HALF_MS) << 32) | i64::from(series)
}

/// A database made before: its minute rows move to the new table (in one transaction), each
/// hour split in two.
pub(super) fn upgrade(conn: &Connection) -> rusqlite::Result<()> {
    let old: bool = conn
        .prepare("SELECT 1 FROM pragma_table_info('minute') WHERE name = 'series'")?
        .exists([])?;
    let new: bool = conn
        .prepare("SELECT 1 FROM pragma_table_info('minute') WHERE name = 'id'")?
        .exists([])?;
    if !old || new {
        return Ok(());
    }
    conn.execute_batch("BEGIN; ALTER TABLE minute RENAME TO minute_by_series;")?;
    let moved = (|| -> rusqlite::Result<()> {
        conn.execute_batch(
            "CREATE TABLE minute (
                id INTEGER PRIMARY KEY, series INTEGER NOT NULL, start INTEGER NOT NULL,
                data BLOB NOT NULL);",
        )?;
        let rows: Vec<(i64, i64, Vec<u8>)> = {
            let mut stmt = conn.prepare(
                "SELECT series, start, data FROM minute_by_series
                 WHERE series >= 0 AND series < 4294967296",
            )?;
            let rows = stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))?;
            rows.collect::<rusqlite::Result<_>>()?
        };
        for (series, start, data) in rows {
            let row = pack::unpack_buckets(&data, Tier::Minute, start);
            write(conn, "minute", series as u32, start, &row)?;
        }
        conn.execute_batch("DROP TABLE minute_by_series; COMMIT;")
    })();
    if moved.is_err() {
        let _ = conn.execute_batch("ROLLBACK");
    }
    moved
}

/// Writes the two halves of an hour row into `table` (a half with no bucket is not written).
fn write(
    conn: &Connection,
    table: &str,
    series: u32,
    start: i64,
    row: &[Option<Bucket>],
) -> rusqlite::Result<()> {
    for (half, buckets) in row.chunks(HALF_SLOTS).enumerate().take(2) {
        if buckets.iter().all(Option::is_none) {
            continue;
        }
        let half_start = start.saturating_add(half as i64 * HALF_MS);
        conn.prepare_cached(&format!(
            "INSERT OR REPLACE INTO {table} (id, series, start, data) VALUES (?1, ?2, ?3, ?4)"
        ))?
        .execute(params![
            key(series, half_start),
            series,
            start,
            pack::encode_buckets(buckets, half_start, Tier::Minute.bucket_ms())
        ])?;
    }
    Ok(())
}

impl Tsdb {
    /// The minute row of `series` for the hour starting at `start_ms` (`None`: neither half
    /// is stored).
    pub(super) fn minute_row(
        &self,
        series: u32,
        start_ms: i64,
    ) -> rusqlite::Result<Option<Vec<Option<Bucket>>>> {
        let mut row: Option<Vec<Option<Bucket>>> = None;
        for half in 0..2 {
            let half_start = start_ms.saturating_add(half * HALF_MS);
            // The day's table, else the table of before (`parts.rs`).
            let mut data: Option<Vec<u8>> = None;
            let day = self.parts.borrow().existing(Kind::Minute, half_start);
            for table in day.as_deref().into_iter().chain(["minute"]) {
                data = self
                    .conn
                    .prepare_cached(&format!("SELECT data FROM {table} WHERE id = ?1"))?
                    .query_row([key(series, half_start)], |r| r.get(0))
                    .optional()?;
                if data.is_some() {
                    break;
                }
            }
            if let Some(data) = data {
                let buckets =
                    pack::decode_buckets(&data, HALF_SLOTS, half_start, Tier::Minute.bucket_ms())
                        .unwrap_or_else(|| vec![None; HALF_SLOTS]);
                let all = row.get_or_insert_with(|| vec![None; Tier::Minute.slots()]);
                let at = half as usize * HALF_SLOTS;
                all[at..at + HALF_SLOTS].copy_from_slice(&buckets);
            }
        }
        Ok(row)
    }

    /// Writes the hour row into the table of its day (`parts.rs`): both halves start that day.
    pub(super) fn write_minute_row(
        &self,
        series: u32,
        start_ms: i64,
        row: &[Option<Bucket>],
    ) -> rusqlite::Result<()> {
        let table = self
            .parts
            .borrow_mut()
            .table_for(&self.conn, Kind::Minute, start_ms)?;
        write(&self.conn, &table, series, start_ms, row)
    }

    /// The start of the hour of the newest minute row over all series (`None`: none).
    pub(super) fn newest_minute_row(&self) -> rusqlite::Result<Option<i64>> {
        let id = self.newest_of_tier(|table| {
            self.conn
                .prepare_cached(&format!("SELECT MAX(id) FROM {table}"))?
                .query_row([], |r| r.get(0))
        })?;
        Ok(id.map(|id| (id >> 32).saturating_mul(HALF_MS).div_euclid(HOUR_MS) * HOUR_MS))
    }

    /// The start of `host`'s newest minute row (`None`: it has none).
    pub(super) fn newest_minute_of(&self, host: i64) -> rusqlite::Result<Option<i64>> {
        self.newest_of_tier(|table| {
            self.conn
                .prepare_cached(&format!(
                    "SELECT start FROM {table} WHERE series IN (SELECT id FROM series WHERE host = ?1)
                     ORDER BY id DESC LIMIT 1"
                ))?
                .query_row([host], |r| r.get(0))
                .optional()
        })
    }

    /// The highest of `newest` over the tier's tables: the table of before, and the newest
    /// day's table where it finds something (`parts.rs`).
    fn newest_of_tier(
        &self,
        newest: impl Fn(&str) -> rusqlite::Result<Option<i64>>,
    ) -> rusqlite::Result<Option<i64>> {
        let old = newest("minute")?;
        let days = self.parts.borrow().tables(Kind::Minute);
        for table in days.iter().skip(1).rev() {
            if let Some(found) = newest(table)? {
                return Ok(old.max(Some(found)));
            }
        }
        Ok(old)
    }
}
