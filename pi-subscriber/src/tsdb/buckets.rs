//! Bucket rows: filling the open ones, merging late values into written ones, closing them,
//! pruning by retention, and rebuilding the open ones from the raw tier after a restart.

use std::collections::{HashMap, VecDeque};

use rusqlite::{params, OptionalExtension};

use super::chain::Chain;
use super::db::{Sample, Tsdb, FUTURE_MS, GRACE_MS, NEIGHBOUR_WINDOW_MS};
use super::open_row::OpenRow;
use super::pack;
use super::parts::Kind;
use super::raw_key::{first_key, last_key};
use super::raw_scan::{RawRow, Walk};
use super::rollup::{floor, Bucket, Tier, HOUR_MS};
use super::TsdbError;
use crate::registry::Value;

impl Tsdb {
    /// Adds one value (a gauge, or a rate) at `ts_ms` to its minute and hour buckets.
    pub(super) fn add(
        &mut self,
        series: u32,
        ts_ms: i64,
        value: f64,
        now_ms: i64,
    ) -> rusqlite::Result<()> {
        // A sample dated far ahead of the Pi's clock (a broken or hostile one) gets no bucket:
        // its row would stay open until that date.
        if ts_ms > now_ms.saturating_add(FUTURE_MS) {
            return Ok(());
        }
        for tier in [Tier::Minute, Tier::Hour] {
            if ts_ms < self.retention.horizon(tier, now_ms) {
                continue;
            }
            let start = floor(ts_ms, tier.row_ms());
            let slot = ((ts_ms - start) / tier.bucket_ms()) as usize;
            let flushed = self.flushed.get(&tier).copied().unwrap_or(i64::MIN);
            if start.saturating_add(tier.row_ms()) <= flushed {
                // Its row is written already: merge into it in place.
                let mut row = self.read_row(tier, series, start)?;
                merge_slot(&mut row, slot, value, ts_ms);
                self.write_row(tier, series, start, &row)?;
            } else {
                self.open
                    .entry((tier, series, start))
                    .or_default()
                    .add(tier, start, slot, value, ts_ms);
            }
        }
        Ok(())
    }

    pub(super) fn read_row(
        &self,
        tier: Tier,
        series: u32,
        start: i64,
    ) -> rusqlite::Result<Vec<Option<Bucket>>> {
        if tier != Tier::Hour {
            return Ok(self
                .minute_row(series, start)?
                .unwrap_or_else(|| vec![None; tier.slots()]));
        }
        let blob: Option<Vec<u8>> = self
            .conn
            .prepare_cached("SELECT data FROM hour WHERE series = ?1 AND start = ?2")?
            .query_row(params![series, start], |r| r.get(0))
            .optional()?;
        Ok(match blob {
            Some(b) => pack::unpack_buckets(&b, tier, start),
            None => vec![None; tier.slots()],
        })
    }

    pub(super) fn write_row(
        &self,
        tier: Tier,
        series: u32,
        start: i64,
        row: &[Option<Bucket>],
    ) -> rusqlite::Result<()> {
        if tier != Tier::Hour {
            return self.write_minute_row(series, start, row);
        }
        self.conn
            .prepare_cached(
                "INSERT OR REPLACE INTO hour (series, start, data) VALUES (?1, ?2, ?3)",
            )?
            .execute(params![
                series,
                start,
                pack::encode_buckets(row, start, tier.bucket_ms())
            ])?;
        Ok(())
    }

    /// Writes the bucket rows that closed by `now_ms` (their end plus a grace period), then
    /// prunes what every tier's retention let go. Call every few seconds; commits.
    pub fn maintain(&mut self, now_ms: i64) -> Result<(), TsdbError> {
        self.tx.now_ms = self.tx.now_ms.max(now_ms);
        if let Err(e) = self.maintain_inner(now_ms) {
            let error = self.err(e);
            self.roll_back();
            return Err(error);
        }
        self.commit()
    }

    fn maintain_inner(&mut self, now_ms: i64) -> rusqlite::Result<()> {
        self.begin()?;
        for tier in [Tier::Minute, Tier::Hour] {
            let closed = floor(now_ms.saturating_sub(GRACE_MS), tier.row_ms());
            let done: Vec<(Tier, u32, i64)> = self
                .open
                .keys()
                .filter(|(t, _, start)| *t == tier && start.saturating_add(tier.row_ms()) <= closed)
                .copied()
                .collect();
            for key in done {
                if let Some(row) = self.open.remove(&key) {
                    let mut stored = self.read_row(tier, key.1, key.2)?;
                    merge_open(&mut stored, &row, tier, key.2);
                    self.write_row(tier, key.1, key.2, &stored)?;
                }
            }
            if self.flushed.get(&tier).is_none_or(|f| *f < closed) {
                self.flushed.insert(tier, closed);
                self.conn.execute(
                    "INSERT OR REPLACE INTO meta (key, value) VALUES (?1, ?2)",
                    params![flushed_key(tier), closed],
                )?;
            }
        }
        // The raw tier's horizon moves an hour at a time: each hour's minute peaks of the
        // process lists are written once, together, not a row every few seconds.
        let raw = floor(self.retention.horizon(Tier::Raw, now_ms), HOUR_MS);
        // The minute peaks of the lists past the horizon are kept first.
        self.keep_top_peaks(raw)?;
        // Raw rows go a day at a time, each day's table dropped whole once all of it is past
        // the horizon (the tier keeps 48 to 72 h; `parts.rs`). The rows of a database from
        // before go an hour at a time, through their key (led by time).
        self.conn
            .execute("DELETE FROM raw WHERE rowid < ?1", [first_key(raw)])?;
        self.parts
            .borrow_mut()
            .drop_before(&self.conn, Kind::Raw, raw)?;
        self.drop_raw_days_before(raw);
        // Rows dated past what the Pi accepts (its clock was ahead, then stepped back).
        let future = now_ms.saturating_add(FUTURE_MS);
        self.parts
            .borrow_mut()
            .drop_after(&self.conn, Kind::Raw, future)?;
        for table in self
            .parts
            .borrow()
            .tables_in(Kind::Raw, future, future.saturating_add(1))
        {
            self.conn.execute(
                &format!("DELETE FROM {table} WHERE key > ?1"),
                [last_key(future)],
            )?;
        }
        self.drop_raw_after(future)?;
        // The minute tier and its peaks go a day at a time, each day's table dropped whole
        // (`parts.rs`): WAL mode writes every page a `DELETE` touches, freed ones included. The
        // rows of a database from before go an hour at a time, in the same commit as the raw
        // tier's hour, as they did.
        let minute = floor(self.retention.horizon(Tier::Minute, now_ms), HOUR_MS);
        self.conn.execute(
            "DELETE FROM minute WHERE id < ?1",
            [super::minute::key(0, minute - HOUR_MS)],
        )?;
        self.parts
            .borrow_mut()
            .drop_before(&self.conn, Kind::Minute, minute - HOUR_MS)?;
        let keep = self.retention.horizon(Tier::Hour, now_ms) - Tier::Hour.row_ms();
        self.conn.execute(
            "DELETE FROM hour WHERE series IN (SELECT id FROM series) AND start < ?1",
            [keep],
        )?;
        self.prune_top(minute)?;
        Ok(())
    }

    /// Re-fills the open rows from the raw tier (they were in memory when the process ended);
    /// runs at open, before the first prune.
    /// Streams the rows: memory stays bounded by a small window of recent samples per host
    /// whatever the number of hosts or how late in the day the restart comes.
    pub(super) fn rebuild(&mut self, now_ms: i64) -> rusqlite::Result<()> {
        // From the oldest row still open, whatever the raw tier's horizon: after a Pi outage
        // of over a day its samples are still on disk (nothing prunes before this runs) and
        // the row is closed with all of them.
        let from = self.flushed.values().copied().min().unwrap_or(i64::MIN);
        // One walk in time (the raw tier's index is led by time), every host's rows
        // interleaved: each host keeps its own window of recent samples.
        let mut walk = Walk::keys(
            first_key(from.saturating_sub(NEIGHBOUR_WINDOW_MS)),
            last_key(now_ms.saturating_add(FUTURE_MS)),
        )
        .with_data();
        // The keys of the samples just before, per host: a seq neighbour is almost always the
        // host's previous row; a clock stepped back interleaves a few. Their values are in
        // `chain` (the rows just unpacked), read again only if it let them go.
        let mut windows: HashMap<i64, VecDeque<Sample>> = HashMap::new();
        let mut adds: Vec<(u32, i64, f64)> = Vec::new();
        let mut chain = Chain::default();
        loop {
            // A batch at a time: the rows' walk borrows the store, which each row changes.
            let batch = self.raw_rows_upto(walk, REBUILD_BATCH)?;
            let Some(last) = batch.last() else { break };
            walk.from = last.key.saturating_add(1);
            for r in batch {
                self.rebuild_row(r, from, now_ms, &mut windows, &mut adds, &mut chain)?;
            }
            if walk.from == i64::MAX {
                break;
            }
        }
        Ok(())
    }

    /// One row of [`Tsdb::rebuild`]'s walk.
    fn rebuild_row(
        &mut self,
        r: RawRow,
        from: i64,
        now_ms: i64,
        windows: &mut HashMap<i64, VecDeque<Sample>>,
        adds: &mut Vec<(u32, i64, f64)>,
        chain: &mut Chain,
    ) -> rusqlite::Result<()> {
        let h = r.host;
        let s = Sample {
            ts_ms: r.ts,
            seq: r.seq,
            boot: r.boot,
            values: self.unpack(h, r.ts, r.seq, r.data(), chain)?,
        };
        adds.clear();
        let recent = windows.entry(h).or_default();
        if s.ts_ms >= from {
            for (id, v) in &s.values {
                if let Value::Gauge(g) = v {
                    adds.push((*id, s.ts_ms, *g));
                }
            }
            if let Some(key) = recent.iter().rev().find(|p| s.follows(p)) {
                let prev = Sample {
                    values: self.row_values(h, key.ts_ms, key.seq, chain)?,
                    ..*key
                };
                for (id, r) in self.rates(&prev, &s) {
                    adds.push((id, s.ts_ms, r));
                }
            }
        }
        for &(id, ts, v) in adds.iter() {
            for tier in [Tier::Minute, Tier::Hour] {
                let start = floor(ts, tier.row_ms());
                let flushed = self.flushed.get(&tier).copied().unwrap_or(i64::MIN);
                if start.saturating_add(tier.row_ms()) > flushed
                    && ts >= self.retention.horizon(tier, now_ms)
                {
                    let slot = ((ts - start) / tier.bucket_ms()) as usize;
                    self.open
                        .entry((tier, id, start))
                        .or_default()
                        .add(tier, start, slot, v, ts);
                }
            }
        }
        if recent.len() == REBUILD_WINDOW {
            recent.pop_front();
        }
        recent.push_back(Sample {
            values: Vec::new(),
            ..s
        });
        Ok(())
    }
}

/// Recent samples kept while rebuilding, to find a seq neighbour among interleaved rows.
const REBUILD_WINDOW: usize = 64;
/// Raw rows read at a time while rebuilding.
const REBUILD_BATCH: usize = 512;

pub(super) fn merge_slot(row: &mut [Option<Bucket>], slot: usize, value: f64, ts_ms: i64) {
    if let Some(cell) = row.get_mut(slot) {
        match cell {
            Some(b) => b.add(value, ts_ms),
            None => *cell = Some(Bucket::of(value, ts_ms)),
        }
    }
}

/// Merges the buckets of open row `open` (of `tier`, starting at `start_ms`) into the dense
/// row `row` of the same place.
pub(super) fn merge_open(row: &mut [Option<Bucket>], open: &OpenRow, tier: Tier, start_ms: i64) {
    for (slot, b) in open.buckets(tier, start_ms) {
        if let Some(cell) = row.get_mut(slot) {
            match cell {
                Some(s) => s.merge(&b),
                None => *cell = Some(b),
            }
        }
    }
}

pub(super) fn flushed_key(tier: Tier) -> &'static str {
    match tier {
        Tier::Hour => "flushed_hour",
        _ => "flushed_minute",
    }
}
