//! Drains a persistent [`Queue`] to one receiver: the next batch after what was acknowledged,
//! sent until the receiver took it (retried with backoff) or refused it for good (dropped and
//! counted, the receiver's message logged once per status), then acknowledged, so the queue's
//! cursor only moves past what the receiver has. The handle owns the task: dropping it stops
//! the task.

use std::collections::BTreeSet;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use daemon_kit::stats::Stats;
use serde::Serialize;
use tokio_util::sync::{CancellationToken, DropGuard};

use crate::backoff::Backoff;
use crate::batch::Batch;
use crate::client::{Client, Outcome};

/// How often the backlog is counted while batches flow. Counting reads every unsent sample's
/// key: before every batch, a long catch-up read its whole backlog once per batch.
const BACKLOG_EVERY: Duration = Duration::from_secs(5);

/// A persistent queue of samples in the order they may be sent (each series in time order).
/// Its calls block (a database, a file): the shipper makes them from `spawn_blocking`.
pub trait Queue: Send + 'static {
    /// What acknowledges a batch (the cursor to move to).
    type Mark: Send + 'static;

    /// The next batch after what was acknowledged, `max` samples at most; `None` when there
    /// is nothing to send now.
    fn next(&mut self, max: usize) -> Result<Option<(Batch, Self::Mark)>, String>;

    /// The batch is done with (taken or refused for good): never send it again.
    fn ack(&mut self, mark: Self::Mark) -> Result<(), String>;

    /// Samples not yet sent, and how far behind the newest sample the oldest of them is
    /// (seconds).
    fn backlog(&mut self) -> Result<(u64, f64), String>;
}

/// A remote's figures (`/health`, `/prometheus`, the `remote_write_behind` alert).
#[derive(Debug, Clone, Default, Serialize, PartialEq)]
pub struct RemoteStats {
    pub name: String,
    /// The URL without credentials.
    pub url: String,
    pub samples_sent_total: u64,
    pub batches_sent_total: u64,
    pub batches_retried_total: u64,
    pub batches_dropped_total: u64,
    pub samples_dropped_total: u64,
    pub backlog_samples: u64,
    pub backlog_seconds: f64,
    pub last_error: Option<String>,
}

/// How a shipper sends.
#[derive(Debug, Clone)]
pub struct Settings {
    /// Samples per request at most.
    pub max_samples: usize,
    pub min_backoff: Duration,
    pub max_backoff: Duration,
    /// How long to wait when the queue is empty.
    pub idle: Duration,
}

impl Default for Settings {
    fn default() -> Self {
        Self {
            max_samples: 2000,
            min_backoff: Duration::from_millis(500),
            max_backoff: Duration::from_secs(30),
            idle: Duration::from_secs(1),
        }
    }
}

pub struct Shipper;

/// A running shipper: its figures; dropping it stops the task.
#[derive(Debug, Clone)]
pub struct ShipperHandle {
    stats: Stats<RemoteStats>,
    _stop: Arc<DropGuard>,
}

impl ShipperHandle {
    pub fn stats(&self) -> RemoteStats {
        self.stats.snapshot()
    }
}

/// The URL without user info (what `/health` and logs show).
pub fn redacted(url: &str) -> String {
    match reqwest::Url::parse(url) {
        Ok(mut u) => {
            let _ = u.set_username("");
            let _ = u.set_password(None);
            u.to_string()
        }
        Err(_) => "(invalid url)".to_owned(),
    }
}

impl Shipper {
    /// Starts the task draining `queue` to `client` (on the current tokio runtime).
    pub fn spawn<Q: Queue>(client: Client, queue: Q, settings: Settings) -> ShipperHandle {
        let stop = CancellationToken::new();
        let stats = Stats::new(RemoteStats {
            name: client.endpoint().name.clone(),
            url: redacted(&client.endpoint().url),
            ..RemoteStats::default()
        });
        let task = Task {
            client,
            queue: Blocking::new(queue),
            settings,
            stats: stats.clone(),
            stop: stop.clone(),
            logged: BTreeSet::new(),
        };
        tokio::spawn(task.run());
        ShipperHandle {
            stats,
            _stop: Arc::new(stop.drop_guard()),
        }
    }
}

struct Task<Q: Queue> {
    client: Client,
    queue: Blocking<Q>,
    settings: Settings,
    stats: Stats<RemoteStats>,
    stop: CancellationToken,
    /// Statuses whose refusal was logged (each once).
    logged: BTreeSet<u16>,
}

/// The task's queue, whose calls block: each runs on tokio's blocking pool, one at a time.
struct Blocking<Q> {
    queue: Arc<Mutex<Q>>,
}

impl<Q: Queue> Blocking<Q> {
    fn new(queue: Q) -> Self {
        Self {
            queue: Arc::new(Mutex::new(queue)),
        }
    }

    async fn next(&self, max: usize) -> Result<Option<(Batch, Q::Mark)>, String> {
        self.call(move |q| q.next(max)).await
    }

    async fn ack(&self, mark: Q::Mark) -> Result<(), String> {
        self.call(move |q| q.ack(mark)).await
    }

    async fn backlog(&self) -> Result<(u64, f64), String> {
        self.call(|q| q.backlog()).await
    }

    async fn call<T: Send + 'static>(
        &self,
        f: impl FnOnce(&mut Q) -> Result<T, String> + Send + 'static,
    ) -> Result<T, String> {
        let q = self.queue.clone();
        tokio::task::spawn_blocking(move || {
            let mut q = q.lock().map_err(|_| "queue lock poisoned".to_owned())?;
            f(&mut q)
        })
        .await
        .map_err(|e| format!("queue task: {e}"))?
    }
}

impl<Q: Queue> Task<Q> {
    async fn count_backlog(&self) {
        if let Ok((samples, seconds)) = self.queue.backlog().await {
            self.note(|s| {
                s.backlog_samples = samples;
                s.backlog_seconds = seconds;
            });
        }
    }

    fn note(&self, f: impl FnOnce(&mut RemoteStats)) {
        self.stats.update(f);
    }

    /// Waits `d`, or returns false when the shipper is stopped meanwhile.
    async fn pause(&self, d: Duration) -> bool {
        tokio::select! {
            _ = self.stop.cancelled() => false,
            _ = tokio::time::sleep(d) => true,
        }
    }

    async fn run(mut self) {
        let name = self.client.endpoint().name.clone();
        let max = self.settings.max_samples.max(1);
        let mut backoff = Backoff::new(self.settings.min_backoff, self.settings.max_backoff);
        // When the backlog was last counted.
        let mut counted: Option<tokio::time::Instant> = None;
        loop {
            if counted.is_none_or(|t| t.elapsed() >= BACKLOG_EVERY) {
                self.count_backlog().await;
                counted = Some(tokio::time::Instant::now());
            }
            let next = self.queue.next(max).await;
            let (batch, mark) = match next {
                Ok(Some(b)) => b,
                Ok(None) => {
                    // Nothing to send now (drained, or held at a hole): counted at rest, a
                    // short read, so the figure is what waits, not what a batch in flight
                    // left behind.
                    self.count_backlog().await;
                    counted = Some(tokio::time::Instant::now());
                    if !self.pause(self.settings.idle).await {
                        return;
                    }
                    continue;
                }
                Err(e) => {
                    tracing::warn!(remote = %name, error = %e, "remote write: cannot read the queue");
                    self.note(|s| s.last_error = Some(format!("queue: {e}")));
                    if !self.pause(self.settings.max_backoff).await {
                        return;
                    }
                    continue;
                }
            };
            let body = batch.body();
            let samples = batch.samples() as u64;
            loop {
                let outcome = tokio::select! {
                    _ = self.stop.cancelled() => return,
                    o = self.client.send(body.clone()) => o,
                };
                match outcome {
                    Outcome::Sent => {
                        backoff.reset();
                        self.note(|s| {
                            s.samples_sent_total += samples;
                            s.batches_sent_total += 1;
                        });
                        break;
                    }
                    Outcome::Retry { after, why } => {
                        self.note(|s| {
                            s.batches_retried_total += 1;
                            s.last_error = Some(why.clone());
                        });
                        tracing::debug!(remote = %name, %why, "remote write: retrying a batch");
                        if !self.pause(backoff.wait(after)).await {
                            return;
                        }
                    }
                    Outcome::Rejected { status, message } => {
                        if self.logged.insert(status) {
                            tracing::warn!(remote = %name, status, receiver = %message, samples,
                                "remote write: the receiver refused a batch; dropped (logged once per status)");
                        }
                        self.note(|s| {
                            s.batches_dropped_total += 1;
                            s.samples_dropped_total += samples;
                            s.last_error = Some(format!("HTTP {status}: {message}"));
                        });
                        break;
                    }
                }
            }
            if let Err(e) = self.queue.ack(mark).await {
                tracing::warn!(remote = %name, error = %e, "remote write: cannot move the queue's cursor");
                self.note(|s| s.last_error = Some(format!("queue: {e}")));
            }
        }
    }
}

#[cfg(test)]
#[path = "shipper_tests.rs"]
mod tests;
