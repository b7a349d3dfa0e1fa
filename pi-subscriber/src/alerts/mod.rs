//! Alerts on the Pi: rules over the registry's metrics ([`rules`]), the state machine
//! ([`engine`]), its persistence ([`state`]), delivery ([`notify`]) and `GET /alerts`
//! ([`http`]). Ingest hands samples and job ends to a [`Feed`] (never waiting); one task
//! evaluates them, ticks every second for staleness, persists and queues notices.

pub use crate::config::alerts as config;
pub mod engine;
pub mod http;
pub mod notify;
pub mod rules;
pub mod state;

use serde_json::Value;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use broker::{JobEnd, Snapshot};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use crate::store::SharedStore;
use engine::{Engine, Notice};
use notify::Dispatcher;
use rules::RuleSet;

/// Inputs waiting for the engine at most; more are dropped and counted.
pub const FEED_QUEUE: usize = 1024;

/// What ingest tells the engine.
#[derive(Debug)]
pub enum Input {
    Sample {
        latest: Arc<Snapshot>,
        /// Its rates, as the store computed them at ingest.
        rates: Option<Arc<crate::rates::Derived>>,
        /// Its host's staleness bound, as the store judges it.
        max_age: Duration,
    },
    JobEnd(JobEnd),
}

/// The ingest side of the engine's queue: `offer` never waits.
#[derive(Debug, Clone)]
pub struct Feed {
    tx: mpsc::Sender<Input>,
    dropped: Arc<AtomicU64>,
}

impl Feed {
    pub fn offer(&self, input: Input) {
        if self.tx.try_send(input).is_err() {
            self.dropped.fetch_add(1, Ordering::Relaxed);
        }
    }
}

/// What `/alerts` and `/health` read.
#[derive(Debug, Clone, Default)]
pub struct AlertsHandle {
    engine: Arc<Mutex<Option<Engine>>>,
    dispatcher: Arc<Mutex<Dispatcher>>,
    dropped: Arc<AtomicU64>,
}

impl AlertsHandle {
    /// The alerts firing now.
    pub fn firing(&self) -> Vec<engine::Alert> {
        match self.engine.lock().ok().as_deref() {
            Some(Some(e)) => e
                .alerts()
                .filter(|a| a.phase == engine::Phase::Firing)
                .cloned()
                .collect(),
            _ => Vec::new(),
        }
    }

    /// Alert ranges overlapping `[from_ms, to_ms]` for Grafana annotations, as rows
    /// `[start, end, title, text, tags, host]`: resolved alerts from their first firing to
    /// their resolution, alerts firing now up to `now_ms`, one-shot events as instants.
    pub fn ranges(&self, hosts: &[String], from_ms: i64, to_ms: i64, now_ms: i64) -> Vec<Value> {
        let Ok(engine) = self.engine.lock() else {
            return Vec::new();
        };
        let Some(e) = engine.as_ref() else {
            return Vec::new();
        };
        let mut spans: Vec<(i64, i64, String, String, String, String)> = e
            .recent()
            .iter()
            .filter(|n| n.status == "resolved" || n.event)
            .map(|n| {
                let start = if n.event { n.ts_ms } else { n.since_ms };
                let text = if n.event {
                    n.message.clone()
                } else {
                    format!("resolved: {}", n.message)
                };
                (
                    start,
                    n.ts_ms,
                    n.host.clone(),
                    n.rule.clone(),
                    n.severity.as_str().to_owned(),
                    text,
                )
            })
            .collect();
        spans.extend(
            e.alerts()
                .filter(|a| a.phase == engine::Phase::Firing)
                .map(|a| {
                    let start = a.firing_since_ms.unwrap_or(a.pending_since_ms);
                    let text = format!(
                        "firing since {start} (value {:?}, threshold {:?})",
                        a.value, a.threshold
                    );
                    (
                        start,
                        now_ms,
                        a.host.clone(),
                        a.rule.clone(),
                        a.severity.as_str().to_owned(),
                        text,
                    )
                }),
        );
        spans
            .into_iter()
            .filter(|(start, end, host, ..)| {
                *end >= from_ms && *start <= to_ms && hosts.iter().any(|h| h == host)
            })
            .map(|(start, end, host, rule, severity, text)| {
                serde_json::json!([
                    start,
                    end,
                    format!("alert {rule}"),
                    text,
                    format!("alert,{severity},{host}"),
                    host
                ])
            })
            .collect()
    }

    /// `/health`'s `alerts` object.
    pub fn health(&self) -> serde_json::Value {
        let (enabled, pending, firing) = match self.engine.lock().ok().as_deref() {
            Some(Some(e)) => {
                let firing = e
                    .alerts()
                    .filter(|a| a.phase == engine::Phase::Firing)
                    .count();
                (true, e.alerts().count() - firing, firing)
            }
            _ => (false, 0, 0),
        };
        let notifiers = self
            .dispatcher
            .lock()
            .map(|d| d.counters())
            .unwrap_or_default();
        serde_json::json!({
            "enabled": enabled,
            "firing": firing,
            "pending": pending,
            "input_dropped_total": self.dropped.load(Ordering::Relaxed),
            "notifiers": notifiers,
        })
    }
}

/// The hosts the store knows, with their last live receipt (Pi clock).
/// Every host with when it was last heard (Pi clock) and its staleness bound, as the store
/// judges them.
fn hosts(store: &SharedStore) -> Option<Vec<(String, Option<i64>, i64)>> {
    let hosts = store.hosts().ok()?;
    let ms = |d: Duration| i64::try_from(d.as_millis()).unwrap_or(i64::MAX);
    Some(
        hosts
            .into_iter()
            .map(|(h, st)| (h, st.last_received_ms, ms(st.max_age)))
            .collect(),
    )
}

async fn persist(path: &std::path::Path, engine: &Mutex<Option<Engine>>) {
    let saved = match engine.lock() {
        Ok(mut e) => match e.as_mut() {
            Some(e) if e.is_dirty() => {
                e.take_dirty();
                e.saved()
            }
            _ => return,
        },
        Err(_) => return,
    };
    let file = path.to_path_buf();
    let done = tokio::task::spawn_blocking(move || state::save(&file, &saved)).await;
    if let Ok(Err(error)) = done {
        tracing::warn!(%error, file = %path.display(), "cannot save the alert state");
    }
}

/// Starts the engine (when `alerts.enabled`): returns the feed for ingest, the handle for
/// HTTP, and the task (it ends with `shutdown`, after saving the state).
pub fn start(
    settings: &crate::config::Settings,
    store: SharedStore,
    jobs: crate::jobs::watch::JobWatch,
    remotes: crate::remote_write::RemoteWrites,
    shutdown: CancellationToken,
) -> (
    Option<Feed>,
    AlertsHandle,
    Option<tokio::task::JoinHandle<()>>,
) {
    let handle = AlertsHandle::default();
    let a = &settings.alerts;
    if !a.enabled {
        return (None, handle, None);
    }
    let ms = |d: Duration| i64::try_from(d.as_millis()).unwrap_or(i64::MAX);
    let path = if settings.history.persist {
        Some(state::path(&settings.data_dir))
    } else {
        None
    };
    let saved = path.as_deref().map(state::load).unwrap_or_default();
    let now_ms = crate::clock::unix_ms_now();
    let engine = Engine::new(
        RuleSet::from_settings(a),
        ms(settings
            .health
            .max_age
            .unwrap_or(crate::store::DEFAULT_MAX_AGE)),
        ms(a.repeat_interval),
        saved,
        now_ms,
    )
    // `heard` is checkpointed with the history's commits: the same power-cut window.
    .with_checkpoint(ms(settings.history.commit_interval));
    if let Ok(mut slot) = handle.engine.lock() {
        *slot = Some(engine);
    }
    let mqtt = settings.mqtt.enabled.then(|| settings.mqtt.clone());
    let dispatcher = Dispatcher::start(a, mqtt, &shutdown);
    if let Ok(mut d) = handle.dispatcher.lock() {
        *d = dispatcher.clone();
    }
    let (tx, mut rx) = mpsc::channel(FEED_QUEUE);
    let feed = Feed {
        tx,
        dropped: Arc::clone(&handle.dropped),
    };
    let shared = Arc::clone(&handle.engine);
    // The Pi's own host: where its own alerts (a receiver behind) are filed.
    let pi_host = crate::self_watch::host_id(&settings.self_watch);
    let task = tokio::spawn(async move {
        let mut tick = tokio::time::interval(Duration::from_secs(1));
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            let input = tokio::select! {
                _ = shutdown.cancelled() => break,
                i = rx.recv() => i,
                _ = tick.tick() => None,
            };
            let now_ms = crate::clock::unix_ms_now();
            let known = if input.is_none() { hosts(&store) } else { None };
            let notices: Vec<Notice> = match shared.lock() {
                Ok(mut e) => match (e.as_mut(), input) {
                    (
                        Some(e),
                        Some(Input::Sample {
                            latest,
                            rates,
                            max_age,
                        }),
                    ) => {
                        e.set_max_age(&latest.host, ms(max_age));
                        e.sample(&latest, rates.as_deref(), now_ms)
                    }
                    (Some(e), Some(Input::JobEnd(end))) => e.job_end(&end, now_ms),
                    (Some(e), None) => {
                        let mut out = known
                            .map(|k| {
                                let heard: Vec<(String, Option<i64>)> = k
                                    .into_iter()
                                    .map(|(h, last, max_age)| {
                                        e.set_max_age(&h, max_age);
                                        (h, last)
                                    })
                                    .collect();
                                e.tick(&heard, now_ms)
                            })
                            .unwrap_or_default();
                        // Expected jobs, once judged (or none configured: what an earlier
                        // run left resolves).
                        let judged = jobs.statuses();
                        if jobs.is_empty() || !judged.is_empty() {
                            out.extend(e.expected(&judged, now_ms));
                        }
                        let behind: Vec<(String, f64)> = remotes
                            .stats()
                            .into_iter()
                            .map(|s| (s.name, s.backlog_seconds))
                            .collect();
                        out.extend(e.remote_write(&pi_host, &behind, now_ms));
                        out
                    }
                    (None, _) => Vec::new(),
                },
                Err(_) => break,
            };
            // Saved before it is sent: a crash may lose a notice, never repeat one.
            if let Some(path) = &path {
                persist(path, &shared).await;
            }
            for n in &notices {
                tracing::info!(host = %n.host, rule = %n.rule, status = %n.status, severity = n.severity.as_str(), "{}", n.message);
                dispatcher.send(n);
            }
        }
        if let Some(path) = &path {
            if let Ok(mut e) = shared.lock() {
                if let Some(e) = e.as_mut() {
                    e.take_dirty();
                    let saved = e.saved();
                    if let Err(error) = state::save(path, &saved) {
                        tracing::warn!(%error, "cannot save the alert state");
                    }
                }
            }
        }
    });
    (Some(feed), handle, Some(task))
}

#[cfg(test)]
mod tests;
