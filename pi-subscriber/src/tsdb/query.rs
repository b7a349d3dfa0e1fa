//! Reading series back: the finest tier that covers the range, counters as rates between
//! seq neighbours, buckets coarsened to the asked step, empty buckets as `null`, and a `null`
//! where raw samples are missing ([`super::raw::gap_at`]).

use std::collections::BTreeMap;

use rusqlite::params;
use serde::Serialize;

use super::db::{Sample, Tsdb, NEIGHBOUR_WINDOW_MS};
use super::raw::gap_at;
use super::rollup::{coarsen, floor, Agg, Bucket, Tier};
use super::TsdbError;
use crate::registry::{Kind, Metric, Rate, Value, METRICS};

/// Points of one series before aggregation: time and a one-value (raw) or stored bucket.
type Points = Vec<(i64, Option<Bucket>)>;

/// Points one query may return per series at most; a longer answer is refused.
pub const MAX_POINTS: i64 = 50_000;
/// Raw rows one query reads at most (counted before any is loaded): as many as the points
/// it may return.
pub const MAX_RAW_ROWS: u64 = MAX_POINTS as u64;

/// What to read.
#[derive(Debug, Clone)]
pub struct SeriesQuery<'a> {
    pub host: &'a str,
    pub metric: &'static Metric,
    /// One label value (`""`: the host-wide total); `None`: every series of the metric.
    pub label: Option<&'a str>,
    pub from_ms: i64,
    pub to_ms: i64,
    /// Aggregate further to buckets this wide (ms); `None`: the tier's own resolution.
    pub step_ms: Option<i64>,
    pub agg: Agg,
}

/// One series' answer.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SeriesPoints {
    pub host: String,
    pub metric: &'static str,
    pub labels: BTreeMap<&'static str, String>,
    pub points: Vec<(i64, Option<f64>)>,
}

impl Tsdb {
    /// The series of `q`, from the finest tier that covers `q.from_ms` at `now_ms`.
    pub fn query(
        &self,
        q: &SeriesQuery<'_>,
        now_ms: i64,
    ) -> Result<(Tier, Vec<SeriesPoints>), QueryError> {
        self.query_bounded(q, now_ms, MAX_RAW_ROWS)
    }

    /// [`Tsdb::query`] reading at most `max_raw_rows` raw rows.
    pub(super) fn query_bounded(
        &self,
        q: &SeriesQuery<'_>,
        now_ms: i64,
        max_raw_rows: u64,
    ) -> Result<(Tier, Vec<SeriesPoints>), QueryError> {
        if q.from_ms > q.to_ms {
            return Err(QueryError::Range("from is after to".into()));
        }
        if q.step_ms.is_some_and(|s| s <= 0) {
            return Err(QueryError::Range("step must be positive".into()));
        }
        // Nothing is kept before 1970 or beyond a day ahead of the Pi's clock (such samples
        // are not rolled up): the range is cut to that, so no arithmetic below can overflow.
        let q = &SeriesQuery {
            from_ms: q.from_ms.max(0),
            to_ms: q.to_ms.min(now_ms.saturating_add(FUTURE_MS)),
            ..q.clone()
        };
        if q.from_ms > q.to_ms {
            return Ok((Tier::Raw, Vec::new()));
        }
        let tier = self.retention.tier_for(q.from_ms, now_ms);
        let width = q.step_ms.unwrap_or(tier.bucket_ms()).max(tier.bucket_ms());
        if width > 0 && (q.to_ms - q.from_ms) / width > MAX_POINTS {
            return Err(too_many_points());
        }
        let m = METRICS
            .iter()
            .position(|m| m.name == q.metric.name)
            .ok_or_else(|| QueryError::Range("unknown metric".into()))?;
        let Some(host) = self.hosts.get(q.host) else {
            return Ok((tier, Vec::new()));
        };
        let tier = match tier {
            Tier::Raw => self.raw_or_minutes(host.id, q, max_raw_rows)?,
            coarser => coarser,
        };
        let mut ids: Vec<(&String, u32)> = host
            .series
            .iter()
            .filter(|((metric, label), _)| *metric == m && q.label.is_none_or(|l| l == label))
            .map(|((_, label), id)| (label, *id))
            .collect();
        ids.sort();
        let points = match tier {
            Tier::Raw => {
                let points = self
                    .raw_points(host.id, q, &ids)
                    .map_err(|e| QueryError::Db(self.err(e)))?;
                // A host that sent far more than one sample per interval.
                if q.step_ms.is_none() && points.iter().any(|p| p.len() as i64 > MAX_POINTS) {
                    return Err(too_many_points());
                }
                points
            }
            _ => ids
                .iter()
                .map(|(_, id)| self.bucket_points(tier, *id, q))
                .collect::<rusqlite::Result<Vec<_>>>()
                .map_err(|e| QueryError::Db(self.err(e)))?,
        };
        let out = ids
            .iter()
            .zip(points)
            .map(|((label, _), pts)| {
                let points = match (tier, q.step_ms) {
                    (Tier::Raw, None) => pts
                        .into_iter()
                        .map(|(ts, b)| (ts, b.map(|b| b.get(q.agg))))
                        .collect(),
                    _ => fill(&pts, q.from_ms, q.to_ms, width, q.agg),
                };
                let mut labels = BTreeMap::new();
                if let (Some(key), false) = (q.metric.label, label.is_empty()) {
                    labels.insert(key.as_str(), (*label).clone());
                }
                SeriesPoints {
                    host: q.host.to_owned(),
                    metric: q.metric.name,
                    labels,
                    points,
                }
            })
            .collect();
        Ok((tier, out))
    }

    /// Raw points of each series in `ids` (a rate for a counter, `None` where it has no seq
    /// neighbour), as one-value buckets, with a `None` point in each gap between two.
    fn raw_points(
        &self,
        host: i64,
        q: &SeriesQuery<'_>,
        ids: &[(&String, u32)],
    ) -> rusqlite::Result<Vec<Points>> {
        let metric = METRICS
            .iter()
            .position(|m| m.name == q.metric.name)
            .unwrap_or(usize::MAX);
        let margin = if q.metric.kind.is_counter() {
            NEIGHBOUR_WINDOW_MS
        } else {
            0
        };
        // Every series of the metric (a total's rate is summed over its devices), and of the
        // metric whose events a per-event rate divides by.
        let per = match q.metric.kind {
            Kind::Counter(Rate::PerEvent(per)) => crate::registry::index_of(per),
            _ => None,
        };
        let window = self.raw_window(host, q.from_ms, q.to_ms, margin, |id| {
            self.series
                .get(&id)
                .is_some_and(|s| s.1 == metric || Some(s.1) == per)
        })?;
        let interval = window.interval_ms();
        let mut out = vec![Vec::new(); ids.len()];
        let mut last: Vec<Option<&Sample>> = vec![None; ids.len()];
        for (s, previous) in window.each() {
            let rates = match q.metric.kind {
                Kind::Counter(_) => previous.map(|p| self.rates(p, s)).unwrap_or_default(),
                Kind::Gauge => Vec::new(),
            };
            for (k, (_, id)) in ids.iter().enumerate() {
                let value = match q.metric.kind {
                    Kind::Gauge => {
                        s.values
                            .iter()
                            .find(|(v, _)| v == id)
                            .and_then(|(_, v)| match v {
                                Value::Gauge(g) => Some(*g),
                                Value::Counter(_) => None,
                            })
                    }
                    Kind::Counter(_) => rates.iter().find(|(r, _)| r == id).map(|(_, r)| *r),
                };
                let present = s.values.iter().any(|(v, _)| v == id);
                if present {
                    if let Some(gap) = last[k].and_then(|l| gap_at(l, s, interval)) {
                        out[k].push((gap, None));
                    }
                    out[k].push((s.ts_ms, value.map(|v| Bucket::of(v, s.ts_ms))));
                    last[k] = Some(s);
                }
            }
        }
        Ok(out)
    }

    /// The non-empty buckets of one series in the range, from the database and the open rows.
    fn bucket_points(&self, tier: Tier, id: u32, q: &SeriesQuery<'_>) -> rusqlite::Result<Points> {
        let first = floor(q.from_ms, tier.row_ms());
        let mut rows: BTreeMap<i64, Vec<Option<Bucket>>> = BTreeMap::new();
        if tier == Tier::Hour {
            let mut stmt = self.conn.prepare_cached(
                "SELECT start, data FROM hour WHERE series = ?1 AND start BETWEEN ?2 AND ?3",
            )?;
            let mut found = stmt.query(params![id, first, q.to_ms])?;
            while let Some(r) = found.next()? {
                let start: i64 = r.get(0)?;
                let data: Vec<u8> = r.get(1)?;
                rows.insert(start, super::pack::unpack_buckets(&data, tier, start));
            }
        } else {
            // Minute rows are keyed by hour first (`minute.rs`): one lookup an hour, up to
            // the newest row there is.
            let last = self.newest_minute_row()?.unwrap_or(i64::MIN).min(q.to_ms);
            for start in (first..=last).step_by(tier.row_ms() as usize) {
                if let Some(row) = self.minute_row(id, start)? {
                    rows.insert(start, row);
                }
            }
        }
        for ((_, _, start), open) in self.open.range((tier, id, first)..=(tier, id, q.to_ms)) {
            let row = rows
                .entry(*start)
                .or_insert_with(|| vec![None; tier.slots()]);
            super::buckets::merge_open(row, open, tier, *start);
        }
        let mut out = Vec::new();
        for (start, row) in rows {
            for (slot, b) in row.into_iter().enumerate() {
                let ts = start + slot as i64 * tier.bucket_ms();
                if let (Some(b), true) = (b, (q.from_ms..=q.to_ms).contains(&ts)) {
                    out.push((ts, Some(b)));
                }
            }
        }
        Ok(out)
    }
}

/// Every `width`-aligned time from `from` to `to`, with the aggregate of what fell there or
/// `null`: gaps show as gaps.
fn fill(
    points: &[(i64, Option<Bucket>)],
    from: i64,
    to: i64,
    width: i64,
    agg: Agg,
) -> Vec<(i64, Option<f64>)> {
    let known: Vec<(i64, Bucket)> = points
        .iter()
        .filter_map(|(t, b)| Some((*t, (*b)?)))
        .collect();
    let merged: BTreeMap<i64, Bucket> = coarsen(&known, width).into_iter().collect();
    let mut out = Vec::new();
    let mut t = floor(from, width);
    while t <= to {
        out.push((t, merged.get(&t).map(|b| b.get(agg))));
        t += width;
    }
    out
}

/// How far ahead of the Pi's clock a query may reach.
const FUTURE_MS: i64 = 86_400_000;

fn too_many_points() -> QueryError {
    QueryError::Range(format!(
        "more than {MAX_POINTS} points per series; ask for a larger step or a shorter range"
    ))
}

/// Why a query was refused.
#[derive(Debug, thiserror::Error)]
pub enum QueryError {
    /// The client's fault (400).
    #[error("{0}")]
    Range(String),
    /// Ours (500).
    #[error(transparent)]
    Db(TsdbError),
}
