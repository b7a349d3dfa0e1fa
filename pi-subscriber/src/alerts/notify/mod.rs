//! Delivery, off the ingest path: one bounded queue and one task per notifier; a full queue
//! drops (counted), a failed attempt is retried with exponential backoff and jitter, and a
//! notifier that hangs only ever delays its own queue.

mod alertmanager;
mod command;
mod mqtt;
mod ntfy;
mod webhook;

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use daemon_kit::backoff::Backoff;
use serde::Serialize;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use super::config::{AlertSettings, Notifier, NotifierKind};
use super::engine::Notice;

/// First retry delay; doubles per attempt up to [`MAX_BACKOFF`], each wait drawn from
/// 50–100 % of its step (`daemon_kit::backoff`).
pub const FIRST_BACKOFF: Duration = Duration::from_millis(500);
pub const MAX_BACKOFF: Duration = Duration::from_secs(60);
/// Response bodies read at most (only for error messages).
pub const MAX_ERROR_BODY: usize = 512;

/// One notifier's counters, for `/health`.
#[derive(Debug, Default)]
pub struct Counters {
    pub sent: AtomicU64,
    pub retries: AtomicU64,
    /// Given up after `max_attempts`.
    pub failed: AtomicU64,
    /// Queue full.
    pub dropped: AtomicU64,
}

#[derive(Debug, Serialize)]
pub struct CountersView {
    pub kind: &'static str,
    pub sent_total: u64,
    pub retries_total: u64,
    pub failed_total: u64,
    pub dropped_total: u64,
}

#[derive(Debug, Clone)]
struct Queue {
    config: Arc<Notifier>,
    /// The Pi's `[mqtt]` settings, for the `mqtt` notifier (`None` when MQTT is off).
    mqtt: Option<Arc<crate::config::MqttSettings>>,
    tx: mpsc::Sender<Notice>,
    counters: Arc<Counters>,
}

/// Hands notices to the notifiers' queues; never waits.
#[derive(Debug, Clone, Default)]
pub struct Dispatcher {
    queues: Vec<Queue>,
}

/// What a delivery needs besides the notice.
pub struct Ctx<'a> {
    pub client: &'a reqwest::Client,
    pub notifier: &'a Notifier,
    pub mqtt: Option<&'a crate::config::MqttSettings>,
    pub repeat_interval: Duration,
}

async fn deliver(ctx: &Ctx<'_>, n: &Notice) -> Result<(), String> {
    match ctx.notifier.kind {
        NotifierKind::Webhook => webhook::send(ctx, n).await,
        NotifierKind::Ntfy => ntfy::send(ctx, n).await,
        NotifierKind::Alertmanager => alertmanager::send(ctx, n).await,
        NotifierKind::Command => command::send(ctx, n).await,
        NotifierKind::Mqtt => mqtt::send(ctx, n).await,
    }
}

/// A 2xx, or the status and the start of the body.
pub(super) async fn check(mut resp: reqwest::Response) -> Result<(), String> {
    let status = resp.status();
    if status.is_success() {
        return Ok(());
    }
    // Read no more than MAX_ERROR_BODY of a hostile or huge body.
    let mut body = Vec::new();
    while body.len() < MAX_ERROR_BODY {
        match resp.chunk().await {
            Ok(Some(chunk)) => body.extend_from_slice(&chunk),
            _ => break,
        }
    }
    body.truncate(MAX_ERROR_BODY);
    Err(format!("HTTP {status}: {}", String::from_utf8_lossy(&body)))
}

async fn worker(
    queue: Queue,
    mut rx: mpsc::Receiver<Notice>,
    max_attempts: u32,
    repeat_interval: Duration,
    shutdown: CancellationToken,
) {
    let client = match reqwest::Client::builder()
        .timeout(queue.config.timeout)
        .build()
    {
        Ok(c) => c,
        Err(error) => {
            tracing::warn!(%error, kind = queue.config.kind.as_str(), "cannot build the notifier's HTTP client");
            return;
        }
    };
    let ctx = Ctx {
        client: &client,
        notifier: &queue.config,
        mqtt: queue.mqtt.as_deref(),
        repeat_interval,
    };
    let c = &queue.counters;
    loop {
        let n = tokio::select! {
            _ = shutdown.cancelled() => return,
            n = rx.recv() => match n { Some(n) => n, None => return },
        };
        let mut backoff = Backoff::new(FIRST_BACKOFF, MAX_BACKOFF);
        for attempt in 1..=max_attempts {
            let sent = tokio::select! {
                _ = shutdown.cancelled() => return,
                r = deliver(&ctx, &n) => r,
            };
            match sent {
                Ok(()) => {
                    c.sent.fetch_add(1, Ordering::Relaxed);
                    break;
                }
                Err(error) if attempt == max_attempts => {
                    c.failed.fetch_add(1, Ordering::Relaxed);
                    tracing::warn!(kind = ctx.notifier.kind.as_str(), host = %n.host, rule = %n.rule, %error, attempts = attempt, "notification given up");
                }
                Err(error) => {
                    c.retries.fetch_add(1, Ordering::Relaxed);
                    tracing::info!(kind = ctx.notifier.kind.as_str(), host = %n.host, rule = %n.rule, %error, "notification failed; retrying");
                    tokio::select! {
                        _ = shutdown.cancelled() => return,
                        _ = tokio::time::sleep(backoff.next_jittered()) => {}
                    }
                }
            }
        }
    }
}

impl Dispatcher {
    /// Starts one task per notifier; they end with `shutdown`.
    pub fn start(
        settings: &AlertSettings,
        mqtt: Option<crate::config::MqttSettings>,
        shutdown: &CancellationToken,
    ) -> Dispatcher {
        let mqtt = mqtt.map(Arc::new);
        let mut queues = Vec::new();
        for config in &settings.notify {
            let (tx, rx) = mpsc::channel(settings.queue);
            let queue = Queue {
                config: Arc::new(config.clone()),
                mqtt: mqtt.clone(),
                tx,
                counters: Arc::new(Counters::default()),
            };
            tokio::spawn(worker(
                queue.clone(),
                rx,
                settings.max_attempts,
                settings.repeat_interval,
                shutdown.clone(),
            ));
            queues.push(queue);
        }
        Dispatcher { queues }
    }

    /// Queues `n` for every notifier whose `min_severity` it reaches.
    pub fn send(&self, n: &Notice) {
        for q in &self.queues {
            if n.severity < q.config.min_severity {
                continue;
            }
            if q.tx.try_send(n.clone()).is_err() {
                q.counters.dropped.fetch_add(1, Ordering::Relaxed);
                tracing::warn!(kind = q.config.kind.as_str(), host = %n.host, rule = %n.rule, "notifier queue full: notification dropped");
            }
        }
    }

    pub fn counters(&self) -> Vec<CountersView> {
        self.queues
            .iter()
            .map(|q| {
                let c = &q.counters;
                CountersView {
                    kind: q.config.kind.as_str(),
                    sent_total: c.sent.load(Ordering::Relaxed),
                    retries_total: c.retries.load(Ordering::Relaxed),
                    failed_total: c.failed.load(Ordering::Relaxed),
                    dropped_total: c.dropped.load(Ordering::Relaxed),
                }
            })
            .collect()
    }
}
