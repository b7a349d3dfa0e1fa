//! Remote write's queue calls on the history (`tsdb/rw.rs`), under its lock. Blocking.

use super::{HistoryError, SharedStore};
use crate::tsdb::{RwMark, RwSample};

impl SharedStore {
    pub fn rw_register(&self, remote: &str) -> Result<(), HistoryError> {
        Ok(self.tsdb()?.rw_register(remote)?)
    }

    pub fn rw_next(
        &self,
        remote: &str,
        wanted: impl Fn(&str) -> bool,
        max: usize,
        hold_ms: i64,
        now_ms: i64,
    ) -> Result<Option<(Vec<RwSample>, RwMark)>, HistoryError> {
        Ok(self.tsdb()?.rw_next(remote, wanted, max, hold_ms, now_ms)?)
    }

    pub fn rw_ack(&self, remote: &str, mark: RwMark) -> Result<(), HistoryError> {
        Ok(self.tsdb()?.rw_ack(remote, mark)?)
    }

    pub fn rw_backlog(
        &self,
        remote: &str,
        wanted: impl Fn(&str) -> bool,
    ) -> Result<(u64, f64), HistoryError> {
        Ok(self.tsdb()?.rw_backlog(remote, wanted)?)
    }
}
