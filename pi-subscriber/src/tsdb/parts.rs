//! The raw tier, the minute tier and its process peaks cut into one table a day (issue 22):
//! `raw_d<day>`, `minute_d<day>` and `top_minute_d<day>`, `<day>` the UTC day of the rows'
//! time (or start) since 1970.
//!
//! A day that leaves the tier's retention goes with `DROP TABLE`, which frees its pages
//! without writing them. A `DELETE` of the same rows in WAL mode writes every page it empties
//! (freed ones included) to the WAL, and again at the checkpoint: ~1.4 of the 8.4 MB ten hosts
//! wrote a host-day went to pruning these two tables an hour at a time (`bench tsdb`,
//! docs/benchmarks.md). The price: a day's rows stay until the whole day is past the horizon
//! (the tier keeps 14 to 15 days where it kept 14 days and 1 to 2 hours).
//!
//! The tables `raw`, `minute` and `top_minute` stay: a database from before holds its rows
//! there, read beside the days' tables and pruned by `DELETE` as before until they are gone
//! (an empty table's prune writes nothing). New rows never go there.
//!
//! The raw tier is read through the view `raw_rows` (`raw` and every day's table, `UNION
//! ALL`), made again in the transaction that makes or drops a day's table. A read of it that
//! is ordered selects `key` (SQLite then merges the tables' rows in key order rather than
//! sorting them); every read names a key range, which each table answers from its B-tree.

use std::collections::BTreeSet;

use rusqlite::{Connection, OptionalExtension};

use super::rollup::DAY_MS;

/// One tier's days.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Kind {
    Raw,
    Minute,
    Top,
}

/// The raw tier's view over its tables.
pub(super) const RAW_VIEW: &str = "raw_rows";

/// The raw tier's columns, in the view's order.
const RAW_COLUMNS: &str = "key, host, ts, seq, boot, data, top";

impl Kind {
    fn base(self) -> &'static str {
        match self {
            Kind::Raw => "raw",
            Kind::Minute => "minute",
            Kind::Top => "top_minute",
        }
    }

    fn create(self, name: &str) -> String {
        match self {
            // The raw table's layout (`raw_key.rs`): its row id is the sample's key.
            Kind::Raw => format!(
                "CREATE TABLE IF NOT EXISTS {name} (
                    key INTEGER PRIMARY KEY, host INTEGER NOT NULL, ts INTEGER NOT NULL,
                    seq INTEGER NOT NULL, boot INTEGER NOT NULL, data BLOB NOT NULL, top BLOB)"
            ),
            Kind::Minute => format!(
                "CREATE TABLE IF NOT EXISTS {name} (
                    id INTEGER PRIMARY KEY, series INTEGER NOT NULL, start INTEGER NOT NULL,
                    data BLOB NOT NULL)"
            ),
            Kind::Top => format!(
                "CREATE TABLE IF NOT EXISTS {name} (
                    host INTEGER NOT NULL, start INTEGER NOT NULL,
                    cpu_peak REAL NOT NULL, cpu_ts INTEGER NOT NULL, cpu BLOB NOT NULL,
                    mem_peak REAL NOT NULL, mem_ts INTEGER NOT NULL, mem BLOB NOT NULL,
                    PRIMARY KEY (start, host)) WITHOUT ROWID"
            ),
        }
    }
}

/// The UTC day of `ms`.
pub(super) fn day_of(ms: i64) -> i64 {
    ms.div_euclid(DAY_MS)
}

/// The days that have a table, per kind (what `sqlite_schema` says, kept in memory).
#[derive(Debug, Default)]
pub(super) struct Parts {
    raw: BTreeSet<i64>,
    minute: BTreeSet<i64>,
    top: BTreeSet<i64>,
}

impl Parts {
    /// Reads the days' tables from the schema (at open, and after a rollback, which may have
    /// undone a table's creation).
    pub(super) fn load(conn: &Connection) -> rusqlite::Result<Parts> {
        let mut parts = Parts::default();
        let mut stmt = conn.prepare(
            "SELECT name FROM sqlite_schema WHERE type = 'table'
             AND (name GLOB 'raw_d*' OR name GLOB 'minute_d*' OR name GLOB 'top_minute_d*')",
        )?;
        let names = stmt.query_map([], |r| r.get::<_, String>(0))?;
        for name in names {
            let name = name?;
            for kind in [Kind::Top, Kind::Minute, Kind::Raw] {
                let day = name
                    .strip_prefix(kind.base())
                    .and_then(|s| s.strip_prefix("_d"))
                    .and_then(|d| d.parse::<i64>().ok());
                if let Some(day) = day {
                    parts.days_mut(kind).insert(day);
                    break;
                }
            }
        }
        Ok(parts)
    }

    fn days(&self, kind: Kind) -> &BTreeSet<i64> {
        match kind {
            Kind::Raw => &self.raw,
            Kind::Minute => &self.minute,
            Kind::Top => &self.top,
        }
    }

    fn days_mut(&mut self, kind: Kind) -> &mut BTreeSet<i64> {
        match kind {
            Kind::Raw => &mut self.raw,
            Kind::Minute => &mut self.minute,
            Kind::Top => &mut self.top,
        }
    }

    /// The (quoted) table of `kind` for `day`, whether or not it exists.
    pub(super) fn name(kind: Kind, day: i64) -> String {
        format!("\"{}_d{day}\"", kind.base())
    }

    /// The table of `kind` for the day of `ms`, created if it is not there yet.
    pub(super) fn table_for(
        &mut self,
        conn: &Connection,
        kind: Kind,
        ms: i64,
    ) -> rusqlite::Result<String> {
        let day = day_of(ms);
        let name = Parts::name(kind, day);
        if !self.days(kind).contains(&day) {
            conn.execute_batch(&kind.create(&name))?;
            self.days_mut(kind).insert(day);
            if kind == Kind::Raw {
                self.make_view(conn)?;
            }
        }
        Ok(name)
    }

    /// The table of `kind` holding the day of `ms`, if there is one.
    pub(super) fn existing(&self, kind: Kind, ms: i64) -> Option<String> {
        let day = day_of(ms);
        self.days(kind)
            .contains(&day)
            .then(|| Parts::name(kind, day))
    }

    /// Every table of `kind` whose day overlaps `[from_ms, to_ms)`, oldest first, after the
    /// table of before (`minute` or `top_minute`).
    pub(super) fn tables_in(&self, kind: Kind, from_ms: i64, to_ms: i64) -> Vec<String> {
        let (from, to) = (day_of(from_ms), day_of(to_ms.saturating_sub(1)));
        let mut out = vec![kind.base().to_owned()];
        if from <= to {
            out.extend(
                self.days(kind)
                    .range(from..=to)
                    .map(|d| Parts::name(kind, *d)),
            );
        }
        out
    }

    /// Every table of `kind`: the table of before, then the days', oldest first.
    pub(super) fn tables(&self, kind: Kind) -> Vec<String> {
        self.tables_in(kind, i64::MIN, i64::MAX)
    }

    /// The days of `kind` that end at or before `horizon_ms` (their rows all older), oldest
    /// first: what [`Parts::drop_before`] drops.
    pub(super) fn days_before(&self, kind: Kind, horizon_ms: i64) -> Vec<i64> {
        self.days(kind)
            .iter()
            .copied()
            .take_while(|d| d.saturating_add(1).saturating_mul(DAY_MS) <= horizon_ms)
            .collect()
    }

    /// Drops every day of `kind` that ends at or before `horizon_ms` (its rows all older).
    pub(super) fn drop_before(
        &mut self,
        conn: &Connection,
        kind: Kind,
        horizon_ms: i64,
    ) -> rusqlite::Result<()> {
        let gone = self.days_before(kind, horizon_ms);
        self.drop_days(conn, kind, &gone)
    }

    /// Drops every day of `kind` that starts after `last_ms` (a clock that was ahead).
    pub(super) fn drop_after(
        &mut self,
        conn: &Connection,
        kind: Kind,
        last_ms: i64,
    ) -> rusqlite::Result<()> {
        let gone: Vec<i64> = self
            .days(kind)
            .range(day_of(last_ms).saturating_add(1)..)
            .copied()
            .collect();
        self.drop_days(conn, kind, &gone)
    }

    /// Drops the tables of `days` of `kind`, and makes the view over the raw tier again.
    fn drop_days(&mut self, conn: &Connection, kind: Kind, days: &[i64]) -> rusqlite::Result<()> {
        if days.is_empty() {
            return Ok(());
        }
        if kind == Kind::Raw {
            // The view names the tables: it goes first.
            conn.execute_batch(&format!("DROP VIEW IF EXISTS {RAW_VIEW}"))?;
        }
        for day in days {
            conn.execute_batch(&format!("DROP TABLE IF EXISTS {}", Parts::name(kind, *day)))?;
            self.days_mut(kind).remove(day);
        }
        if kind == Kind::Raw {
            self.make_view(conn)?;
        }
        Ok(())
    }

    /// The view over the raw tier's tables, as it should be.
    fn view_sql(&self) -> String {
        let arms: Vec<String> = self
            .tables(Kind::Raw)
            .iter()
            .map(|t| format!("SELECT {RAW_COLUMNS} FROM {t}"))
            .collect();
        format!("CREATE VIEW {RAW_VIEW} AS {}", arms.join(" UNION ALL "))
    }

    /// Makes the view over the raw tier's tables again.
    fn make_view(&self, conn: &Connection) -> rusqlite::Result<()> {
        conn.execute_batch(&format!(
            "DROP VIEW IF EXISTS {RAW_VIEW}; {};",
            self.view_sql()
        ))
    }

    /// At open: the view over the raw tier, made if it is missing or not the one its tables
    /// call for (a database from before, or a crash between the two cannot leave that, but
    /// a hand-edited one can).
    pub(super) fn check_view(&self, conn: &Connection) -> rusqlite::Result<()> {
        let sql: Option<String> = conn
            .query_row(
                "SELECT sql FROM sqlite_schema WHERE type = 'view' AND name = ?1",
                [RAW_VIEW],
                |r| r.get(0),
            )
            .optional()?;
        if sql.as_deref() != Some(self.view_sql().as_str()) {
            self.make_view(conn)?;
        }
        Ok(())
    }

    /// Drops the oldest day of `kind` (the disk bound, once it is empty); `false`: none.
    pub(super) fn drop_oldest(&mut self, conn: &Connection, kind: Kind) -> rusqlite::Result<bool> {
        let Some(&day) = self.days(kind).first() else {
            return Ok(false);
        };
        self.drop_days(conn, kind, &[day])?;
        Ok(true)
    }
}

#[cfg(test)]
impl super::db::Tsdb {
    /// Rows of `kind` over its tables.
    pub(super) fn rows_of(&self, kind: Kind, filter: &str) -> i64 {
        let tables = self.parts.borrow().tables(kind);
        tables
            .iter()
            .map(|t| {
                self.conn
                    .query_row(&format!("SELECT COUNT(*) FROM {t} {filter}"), [], |r| {
                        r.get::<_, i64>(0)
                    })
                    .unwrap()
            })
            .sum()
    }

    /// The days that have a table of `kind`.
    pub(super) fn days_of(&self, kind: Kind) -> Vec<i64> {
        self.parts.borrow().days(kind).iter().copied().collect()
    }
}
