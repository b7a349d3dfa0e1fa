//! Bounds a read checks before it loads anything (issue 18 item 9): the raw rows a range
//! holds are counted in SQL, on the primary key, at most one past the bound, before a single
//! one is decoded. A query over a flood host's range costs a bounded index walk, not its
//! every row in RAM while the history's lock is held.

use super::raw_scan::Walk;

use super::db::{Tsdb, NEIGHBOUR_WINDOW_MS};
use super::query::{QueryError, SeriesQuery};
use super::rollup::Tier;
use crate::registry::Kind;

/// Rows one `/history` answer may hold (the raw tier of a host sampled every 15 s holds
/// 11 520 over its 48 h); a longer range is a 400 asking for a narrower one.
pub const MAX_HISTORY_ROWS: u64 = 100_000;

impl Tsdb {
    /// [`Tsdb::flat_rows`] refusing a range of more than `max` raw rows before it loads them.
    pub fn flat_rows_at_most(
        &self,
        host: &str,
        from_ms: i64,
        to_ms: i64,
        max: u64,
    ) -> Result<Vec<super::FlatRow>, QueryError> {
        let Some(cache) = self.hosts.get(host) else {
            return Ok(Vec::new());
        };
        let loaded = from_ms.saturating_sub(NEIGHBOUR_WINDOW_MS);
        if self.raw_rows_beyond(cache.id, loaded, to_ms, max)? {
            return Err(QueryError::Range(format!(
                "more than {max} rows in that range: narrow it with from= and to="
            )));
        }
        self.flat_rows(host, from_ms, to_ms).map_err(QueryError::Db)
    }

    /// The tier a raw-tier query reads: the raw tier when the range holds at most `max` raw
    /// rows, else the minute tier when the step asked is a minute or more, else a 400.
    pub(super) fn raw_or_minutes(
        &self,
        host: i64,
        q: &SeriesQuery<'_>,
        max: u64,
    ) -> Result<Tier, QueryError> {
        let margin = match q.metric.kind {
            Kind::Counter(_) => NEIGHBOUR_WINDOW_MS,
            Kind::Gauge => 0,
        };
        let loaded = q.from_ms.saturating_sub(margin);
        if !self.raw_rows_beyond(host, loaded, q.to_ms, max)? {
            return Ok(Tier::Raw);
        }
        if q.step_ms.is_some_and(|s| s >= Tier::Minute.bucket_ms()) {
            return Ok(Tier::Minute);
        }
        Err(QueryError::Range(format!(
            "more than {max} raw samples in that range; ask for a step of at least 60 s or a shorter range"
        )))
    }

    /// How many series of `metric` host `host` has (`label`: that one only; `None`: all of
    /// them), from the series known in memory: what a query for them would read.
    pub fn series_count(&self, host: &str, metric: &str, label: Option<&str>) -> usize {
        let Some(m) = crate::registry::METRICS
            .iter()
            .position(|x| x.name == metric)
        else {
            return 0;
        };
        self.hosts.get(host).map_or(0, |h| {
            h.series
                .keys()
                .filter(|(i, l)| *i == m && label.is_none_or(|want| want == l))
                .count()
        })
    }

    /// Whether host `host` has more than `max` raw rows with `from_ms <= ts <= to_ms`:
    /// counted on the primary key, stopping one past `max`.
    pub(super) fn raw_rows_beyond(
        &self,
        host: i64,
        from_ms: i64,
        to_ms: i64,
        max: u64,
    ) -> Result<bool, QueryError> {
        let mut n: u64 = 0;
        let count = self.walk_raw(Walk::host(host, from_ms, to_ms), |r| {
            n += u64::from((from_ms..=to_ms).contains(&r.ts));
            Ok(n <= max)
        });
        count.map_err(|e| QueryError::Db(self.err(e)))?;
        Ok(n > max)
    }
}

/// Raw rows decoded on this thread (tests: what a refused read cost).
#[cfg(test)]
pub(super) mod decoded {
    use std::cell::Cell;

    thread_local!(static ROWS: Cell<u64> = const { Cell::new(0) });

    pub(in crate::tsdb) fn add(n: u64) {
        ROWS.with(|r| r.set(r.get() + n));
    }

    pub(in crate::tsdb) fn take() -> u64 {
        ROWS.with(|r| r.replace(0))
    }
}

#[cfg(test)]
mod tests {
    use broker::{Cpu, Snapshot};

    use super::*;
    use crate::tsdb::{Agg, Retention};

    const T0: i64 = 1_700_006_400_000;
    const DAY: i64 = 86_400_000;

    fn db_with(samples: u64) -> Tsdb {
        let retention = Retention {
            raw_ms: 2 * DAY,
            minute_ms: 14 * DAY,
            hour_ms: 730 * DAY,
        };
        let mut db = Tsdb::open_in_memory(retention, 500, T0).unwrap();
        for seq in 1..=samples {
            let ts_ms = T0 + seq as i64 * 1000;
            let s = Snapshot {
                host: "tower".into(),
                seq,
                ts_ms,
                cpu: Some(Cpu {
                    usage_percent: Some(seq as f64),
                    ..Cpu::default()
                }),
                ..Snapshot::default()
            };
            db.ingest(&s, true, ts_ms).unwrap();
        }
        db.commit().unwrap();
        decoded::take();
        db
    }

    #[test]
    fn history_over_the_bound_is_refused_before_a_row_is_decoded() {
        let db = db_with(30);
        let all = (T0, T0 + 60_000);
        let refused = db.flat_rows_at_most("tower", all.0, all.1, 29);
        assert_eq!(decoded::take(), 0, "no row decoded for a refused range");
        match refused {
            Err(QueryError::Range(why)) => assert_eq!(
                why,
                "more than 29 rows in that range: narrow it with from= and to="
            ),
            other => panic!("expected a 400, got {other:?}"),
        }
        // At the bound it answers, every row.
        let rows = db.flat_rows_at_most("tower", all.0, all.1, 30).unwrap();
        assert_eq!(rows.len(), 30);
        assert_eq!(rows[29].values["cpu_usage_percent"], 30.0);
        // The bound is on the range asked, not on the host's rows.
        let part = db
            .flat_rows_at_most("tower", T0 + 1000, T0 + 10_000, 10)
            .unwrap();
        assert_eq!(part.len(), 10);
    }

    fn cpu(from_ms: i64, to_ms: i64, step_ms: Option<i64>) -> SeriesQuery<'static> {
        SeriesQuery {
            host: "tower",
            metric: crate::registry::metric("cpu_usage_percent").unwrap(),
            label: Some(""),
            from_ms,
            to_ms,
            step_ms,
            agg: Agg::Avg,
        }
    }

    #[test]
    fn a_raw_read_over_the_bound_is_refused_or_served_from_minutes_before_loading() {
        let db = db_with(150);
        let now = T0 + 150_000;
        let range = (T0, T0 + 150_000);
        // No step: the raw tier's own resolution, which the bound refuses.
        let refused = db.query_bounded(&cpu(range.0, range.1, None), now, 100);
        assert_eq!(decoded::take(), 0, "no row decoded for a refused range");
        match refused {
            Err(QueryError::Range(why)) => assert_eq!(
                why,
                "more than 100 raw samples in that range; ask for a step of at least 60 s or a shorter range"
            ),
            other => panic!("expected a 400, got {other:?}"),
        }
        // A step of a minute or more: the minute tier answers (the open rows in memory).
        let (tier, series) = db
            .query_bounded(&cpu(range.0, range.1, Some(60_000)), now, 100)
            .unwrap();
        assert_eq!(decoded::take(), 0, "served without reading a raw row");
        assert_eq!(tier, Tier::Minute);
        // Samples 1..=59 in the first minute, 60..=119 in the second, 120..=150 in the third.
        assert_eq!(
            series[0].points,
            [
                (T0, Some(30.0)),
                (T0 + 60_000, Some(89.5)),
                (T0 + 120_000, Some(135.0))
            ]
        );
        // Within the bound: the raw rows.
        let (tier, series) = db
            .query_bounded(&cpu(range.0, range.1, None), now, 150)
            .unwrap();
        assert_eq!((tier, series[0].points.len()), (Tier::Raw, 150));
        assert_eq!(decoded::take(), 150);
    }
}
