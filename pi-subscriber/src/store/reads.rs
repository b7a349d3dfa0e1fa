//! Reads that bound themselves before they load (item 9 of issue 18), the top-process lists,
//! and, for tests, a way to hold the history's lock as a long query does.

use super::{HistoryError, Poisoned, SharedStore};
use crate::tsdb::TopAnswer;

/// The history's lock held by a thread of its own, as a long query holds it; released when
/// dropped.
#[cfg(test)]
pub(crate) struct HeldHistory {
    release: Option<std::sync::mpsc::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

#[cfg(test)]
impl Drop for HeldHistory {
    fn drop(&mut self) {
        drop(self.release.take());
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

impl SharedStore {
    /// How many series of `metric` `host` has (`label`: that one; `None`: every label): what
    /// a query for them would read, counted before it runs. Blocking (the history's lock):
    /// call it from `spawn_blocking`.
    pub fn series_count(
        &self,
        host: &str,
        metric: &str,
        label: Option<&str>,
    ) -> Result<usize, Poisoned> {
        Ok(self.tsdb()?.series_count(host, metric, label))
    }

    /// `host`'s top-process lists at `at_ms` (see [`crate::tsdb::Tsdb::top_at`]). Blocking.
    pub fn top_at(
        &self,
        host: &str,
        at_ms: i64,
        step_ms: i64,
        within_ms: i64,
        now_ms: i64,
    ) -> Result<Option<TopAnswer>, HistoryError> {
        Ok(self
            .tsdb()?
            .top_at(host, at_ms, step_ms, within_ms, now_ms)?)
    }

    /// `host`'s top-process lists at the CPU and memory peaks of a range. Blocking.
    pub fn top_in(
        &self,
        host: &str,
        from_ms: i64,
        to_ms: i64,
    ) -> Result<Option<TopAnswer>, HistoryError> {
        Ok(self.tsdb()?.top_in(host, from_ms, to_ms)?)
    }

    /// Holds the history's lock until the guard is dropped (a query that takes long).
    #[cfg(test)]
    pub(crate) fn hold_history_for_test(&self) -> HeldHistory {
        let me = self.clone();
        let (release, wait) = std::sync::mpsc::channel::<()>();
        let (locked, is_locked) = std::sync::mpsc::channel::<()>();
        let thread = std::thread::spawn(move || {
            let _guard = me.shared.tsdb.lock();
            let _ = locked.send(());
            let _ = wait.recv();
        });
        let _ = is_locked.recv();
        HeldHistory {
            release: Some(release),
            thread: Some(thread),
        }
    }
}
