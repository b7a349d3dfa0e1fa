//! The minute tier's table: one row per series and hour, keyed by the hour first and the
//! series second (`id`), so the rows of an hour that closes are appended together at the end
//! of the table. Keyed by series first (as before issue 22), the same rows went to as many
//! places in the B-tree as there are series, and every one rewrote a page and its neighbours.
//! The price is one lookup per hour when a series is read, cheap for the tier's 14 days.

use rusqlite::{params, Connection, OptionalExtension};

use super::db::Tsdb;
use super::rollup::{Tier, HOUR_MS};

/// The row id of `series`'s minute row starting at `start_ms` (an hour's start).
pub(super) fn key(series: u32, start_ms: i64) -> i64 {
    (start_ms.div_euclid(HOUR_MS) << 32) | i64::from(series)
}

/// A database made before: its minute rows move to the new table (in one transaction).
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
        conn.execute(
            "INSERT OR REPLACE INTO minute (id, series, start, data)
             SELECT ((start / ?1) << 32) | series, series, start, data FROM minute_by_series
             WHERE start >= 0 AND start % ?1 = 0 AND series >= 0 AND series < 4294967296",
            params![HOUR_MS],
        )?;
        conn.execute_batch("DROP TABLE minute_by_series; COMMIT;")
    })();
    if moved.is_err() {
        let _ = conn.execute_batch("ROLLBACK");
    }
    moved
}

impl Tsdb {
    /// The start of the newest minute row over all series (`None`: there is none).
    pub(super) fn newest_minute_row(&self) -> rusqlite::Result<Option<i64>> {
        let id: Option<i64> = self
            .conn
            .prepare_cached("SELECT MAX(id) FROM minute")?
            .query_row([], |r| r.get(0))?;
        Ok(id.map(|id| (id >> 32).saturating_mul(Tier::Minute.row_ms())))
    }

    /// The packed minute row of `series` starting at `start_ms`.
    pub(super) fn minute_row(
        &self,
        series: u32,
        start_ms: i64,
    ) -> rusqlite::Result<Option<Vec<u8>>> {
        self.conn
            .prepare_cached("SELECT data FROM minute WHERE id = ?1")?
            .query_row([key(series, start_ms)], |r| r.get(0))
            .optional()
    }
}
