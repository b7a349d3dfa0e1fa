//! The one judgment of every `[[jobs.expect]]`, refreshed by a task the handle owns (as
//! mini-redis's `Db` owns its purge task): the alert engine, `/jobs/expected` and the
//! dashboard read it.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio_util::sync::CancellationToken;

use broker::JobEvent;

use super::{judge, runs, Expectation, Status};

/// How often the expectations are judged.
pub const JUDGE_EVERY: Duration = Duration::from_secs(2);

#[derive(Debug, Clone, Default)]
pub struct JobWatch {
    expectations: Arc<Vec<Expectation>>,
    statuses: Arc<Mutex<Vec<Status>>>,
    /// When the Pi began watching (a job that never ran is missed only after it).
    since_ms: i64,
}

impl JobWatch {
    pub fn new(expectations: Vec<Expectation>, since_ms: i64) -> JobWatch {
        JobWatch {
            expectations: Arc::new(expectations),
            statuses: Arc::default(),
            since_ms,
        }
    }

    pub fn is_empty(&self) -> bool {
        self.expectations.is_empty()
    }

    /// The newest judgment, one status per expectation in config order.
    pub fn statuses(&self) -> Vec<Status> {
        self.statuses.lock().map(|s| s.clone()).unwrap_or_default()
    }

    /// Judges every expectation over the job events kept (the store's) at `now_ms`.
    pub fn judge(&self, events: &[JobEvent], now_ms: i64) {
        if self.is_empty() {
            return;
        }
        let judged: Vec<Status> = self
            .expectations
            .iter()
            .map(|e| {
                let runs = runs(events, &e.name, e.host.as_deref());
                judge(e, &runs, now_ms, self.since_ms)
            })
            .collect();
        if let Ok(mut s) = self.statuses.lock() {
            *s = judged;
        }
    }

    /// Judges every [`JUDGE_EVERY`] until `shutdown`, over what `events` returns then (the
    /// store's job events; `None`: skipped this time).
    pub fn spawn(
        &self,
        events: impl Fn() -> Option<Vec<JobEvent>> + Send + 'static,
        shutdown: CancellationToken,
    ) -> Option<tokio::task::JoinHandle<()>> {
        if self.is_empty() {
            return None;
        }
        let watch = self.clone();
        Some(tokio::spawn(async move {
            let mut tick = tokio::time::interval(JUDGE_EVERY);
            loop {
                tokio::select! {
                    _ = shutdown.cancelled() => break,
                    _ = tick.tick() => if let Some(events) = events() {
                        watch.judge(&events, crate::clock::unix_ms_now());
                    },
                }
            }
        }))
    }
}
