//! What deleting raw rows does to the tier's day files (`raw_log/`), beside the tables of a
//! database from before: a day wholly past a bound is forgotten whole (its file goes once the
//! transaction commits), the rows on the near side of a bound in the edge day are hidden.

use super::db::Tsdb;
use super::parts::day_of;
use super::raw_key::last_key;
use super::raw_log::Hide;
use super::rollup::DAY_MS;

impl Tsdb {
    /// The files' rows with keys at or before `last_key(cut_ms)`: how many went.
    pub(super) fn drop_raw_through(&self, cut_ms: i64) -> rusqlite::Result<usize> {
        let mut log = self.raw_log.borrow_mut();
        let days: Vec<i64> = log.days().take_while(|d| *d <= day_of(cut_ms)).collect();
        let mut gone = 0;
        for day in days {
            let end = day.saturating_add(1).saturating_mul(DAY_MS);
            gone += if end <= cut_ms.saturating_add(1) {
                log.forget_day(day)
            } else {
                let h = Hide {
                    from: i64::MIN,
                    to: last_key(cut_ms),
                    host: None,
                };
                log.hide(day, &h)?
            };
        }
        Ok(gone)
    }

    /// The files' days that end at or before `horizon_ms`, forgotten whole (the raw tier's
    /// retention goes a day at a time, as its tables did): how many rows.
    pub(super) fn drop_raw_days_before(&self, horizon_ms: i64) -> usize {
        let mut log = self.raw_log.borrow_mut();
        let days: Vec<i64> = log
            .days()
            .take_while(|d| d.saturating_add(1).saturating_mul(DAY_MS) <= horizon_ms)
            .collect();
        days.into_iter().map(|day| log.forget_day(day)).sum()
    }

    /// The files' rows dated after `last_ms` (a clock that was ahead, then stepped back).
    pub(super) fn drop_raw_after(&self, last_ms: i64) -> rusqlite::Result<usize> {
        let mut log = self.raw_log.borrow_mut();
        let days: Vec<i64> = log.days().filter(|d| *d >= day_of(last_ms)).collect();
        let mut gone = 0;
        for day in days {
            gone += if day > day_of(last_ms) {
                log.forget_day(day)
            } else {
                let h = Hide {
                    from: last_key(last_ms).saturating_add(1),
                    to: i64::MAX,
                    host: None,
                };
                log.hide(day, &h)?
            };
        }
        Ok(gone)
    }

    /// Every file row of `host` (forgotten), or those at or before `cut_ms` if named.
    pub(super) fn drop_raw_of(&self, host: i64, cut_ms: Option<i64>) -> rusqlite::Result<usize> {
        let mut log = self.raw_log.borrow_mut();
        let days: Vec<i64> = log.days().collect();
        let h = Hide {
            from: i64::MIN,
            to: cut_ms.map_or(i64::MAX, last_key),
            host: Some(host),
        };
        let mut gone = 0;
        for day in days {
            gone += log.hide(day, &h)?;
        }
        Ok(gone)
    }

    /// The file rows kept as a change from a row about to go, stored again whole (`chain.rs`):
    /// `true` when the files held the row.
    pub(super) fn replace_raw(
        &self,
        key: i64,
        rec: &super::raw_log::RawRecord,
    ) -> rusqlite::Result<bool> {
        let day = day_of(key.div_euclid(super::raw_key::SLOTS));
        let mut log = self.raw_log.borrow_mut();
        if !log.holds(day, key) {
            return Ok(false);
        }
        log.replace(day, rec)?;
        Ok(true)
    }
}
