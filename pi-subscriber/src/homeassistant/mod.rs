//! Home Assistant MQTT discovery: every host the Pi knows becomes an HA device with sensors,
//! its availability follows the Pi's staleness judgment, and its state is one retained JSON
//! per sample. Decoupled from ingest: once a second this task reads the store's hosts and
//! publishes what changed ([`tracker`]), over its own MQTT connection (HA usually runs its
//! own mosquitto). `SPEC.md`, "Home Assistant (from the Pi)".

pub mod discovery;
pub mod sanitize;
pub mod state;
pub mod tracker;

#[cfg(test)]
mod tests;

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use daemon_kit::backoff::Backoff;
use daemon_kit::stats::Stats;
use rumqttc::{AsyncClient, ConnectionError, Event, LastWill, Outgoing, Packet, QoS};
use serde::Serialize;
use tokio::sync::mpsc;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use crate::alerts::AlertsHandle;
use crate::config::{MqttSettings, Settings};
use crate::store::SharedStore;
use discovery::Context;
use tracker::{HostInput, Tracker, TrackerStats};

/// HA's `online` on `<discovery_prefix>/status` re-publishes everything at most this often.
pub const RESEND_EVERY: Duration = Duration::from_secs(5);
/// A message on the status topic longer than this is ignored (and counted).
pub const MAX_STATUS_PAYLOAD: usize = 16;

/// Counters for `/health` (`homeassistant`).
#[derive(Debug, Default, Clone, Serialize)]
pub struct HaHealth {
    pub broker: String,
    pub connected: bool,
    pub connects_total: u64,
    pub connect_errors_total: u64,
    pub published_total: u64,
    /// `online` from HA's status topic.
    pub ha_online_total: u64,
    /// Every config, availability and state published again (HA online, reconnect).
    pub resends_total: u64,
    /// Messages on the status topic that were not `online`/`offline` (or over 16 bytes).
    pub ignored_total: u64,
    #[serde(flatten)]
    pub tracker: TrackerStats,
    pub last_error: Option<String>,
}

/// The task's counters, shared with `/health` (a handle: a poisoned lock only loses counts).
#[derive(Debug, Default, Clone)]
pub struct SharedHa {
    health: Stats<HaHealth>,
}

impl SharedHa {
    fn update(&self, f: impl FnOnce(&mut HaHealth)) {
        self.health.update(f);
    }

    /// The counters as of now.
    pub fn snapshot(&self) -> HaHealth {
        self.health.snapshot()
    }
}

/// What the connection task reports.
#[derive(Debug, PartialEq, Eq)]
enum Incoming {
    Connected,
    HaOnline,
    /// A retained discovery config found on the broker (while sweeping).
    Config {
        topic: String,
        payload: Vec<u8>,
    },
}

/// Starts the task when `[homeassistant] enabled`; its counters for `/health`.
pub fn start(
    settings: &Settings,
    store: SharedStore,
    alerts: AlertsHandle,
    shutdown: CancellationToken,
) -> Option<(SharedHa, tokio::task::JoinHandle<()>)> {
    let ha = &settings.homeassistant;
    if !ha.enabled {
        return None;
    }
    let broker = ha.broker(&settings.mqtt);
    let ctx = Context {
        discovery_prefix: ha.discovery_prefix.clone(),
        topic_prefix: settings.mqtt.topic_prefix.clone(),
        pi_id: sanitize::topic_level(&settings.mqtt.client_id),
        version: env!("CARGO_PKG_VERSION").into(),
        alerts: settings.alerts.enabled,
    };
    let shared = SharedHa::default();
    shared.update(|h| h.broker = format!("{}:{}", broker.host, broker.port));
    let alerts = settings.alerts.enabled.then_some(alerts);
    let task = tokio::spawn(run(
        broker,
        ctx,
        settings.health.max_age,
        store,
        alerts,
        shared.clone(),
        shutdown,
    ));
    Some((shared, task))
}

type Hosts = Vec<(String, crate::store::HostState)>;

/// Every host as of now, with its newest finished job.
fn inputs(store: &SharedStore) -> Option<(Hosts, BTreeMap<String, broker::JobEnd>)> {
    Some((store.hosts().ok()?, store.newest_job_ends().ok()?))
}

async fn run(
    broker: MqttSettings,
    ctx: Context,
    max_age: Duration,
    store: SharedStore,
    alerts: Option<AlertsHandle>,
    shared: SharedHa,
    shutdown: CancellationToken,
) {
    let mut options = match crate::mqtt::options(&broker) {
        Ok(o) => o,
        Err(error) => {
            tracing::error!(%error, "Home Assistant discovery disabled: cannot set up TLS");
            shared.update(|h| h.last_error = Some(error.to_string()));
            return;
        }
    };
    // It only reads HA's short status messages; its own largest message is a state JSON.
    options.set_max_packet_size(64 * 1024, 256 * 1024);
    options.set_last_will(LastWill::new(
        ctx.pi_availability(),
        "offline",
        QoS::AtLeastOnce,
        true,
    ));
    let (client, eventloop) = AsyncClient::new(options, 64);
    let (tx, mut rx) = mpsc::channel(16);
    let stop = CancellationToken::new();
    let status_topic = format!("{}/status", ctx.discovery_prefix);
    let configs_filter = format!("{}/+/+/+/config", ctx.discovery_prefix);
    // Until the sweep, the connection also reads every retained discovery config (to find
    // what an earlier run of this Pi left behind).
    let sweeping = Arc::new(AtomicBool::new(true));
    let poller = tokio::spawn(connection(
        eventloop,
        client.clone(),
        [status_topic, configs_filter.clone()],
        Arc::clone(&sweeping),
        tx,
        shared.clone(),
        stop.clone(),
    ));
    tracing::info!(broker = %format!("{}:{}", broker.host, broker.port), client_id = %broker.client_id, "Home Assistant discovery on");
    let mut tracker = Tracker::new(ctx);
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let (mut connected, mut pending) = (false, false);
    let mut last_resend: Option<Instant> = None;
    let mut first_connect: Option<Instant> = None;
    let sweep_after = (2 * max_age).max(Duration::from_secs(5));
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => break,
            got = rx.recv() => match got {
                Some(Incoming::Connected) => {
                    connected = true;
                    first_connect.get_or_insert_with(Instant::now);
                    let pi = tracker.context().pi_availability();
                    let _ = client.publish(pi, QoS::AtLeastOnce, true, "online").await;
                    pending = true;
                    last_resend = None;
                }
                Some(Incoming::HaOnline) => pending = true,
                Some(Incoming::Config { topic, payload }) => {
                    tracker.found_config(&topic, &payload);
                    continue;
                }
                None => break,
            },
            _ = tick.tick() => {}
        }
        if !connected {
            continue;
        }
        if pending && last_resend.is_none_or(|t| t.elapsed() >= RESEND_EVERY) {
            tracker.resend_all();
            pending = false;
            last_resend = Some(Instant::now());
            shared.update(|h| h.resends_total += 1);
        }
        let Some((hosts, jobs)) = inputs(&store) else {
            break;
        };
        let firing = alerts.as_ref().map(|a| {
            let mut n: BTreeMap<String, usize> = BTreeMap::new();
            for alert in a.firing() {
                *n.entry(alert.host).or_default() += 1;
            }
            n
        });
        let now = Instant::now();
        let inputs: Vec<HostInput<'_>> = hosts
            .iter()
            .map(|(name, state)| HostInput {
                name,
                state,
                stale: state.is_stale(now, max_age),
                last_job: jobs.get(name),
                alerts_firing: firing.as_ref().map(|f| f.get(name).copied().unwrap_or(0)),
            })
            .collect();
        let mut messages = tracker.tick(&inputs);
        if sweeping.load(Ordering::Relaxed)
            && first_connect.is_some_and(|t| t.elapsed() >= sweep_after)
        {
            sweeping.store(false, Ordering::Relaxed);
            let _ = client.try_unsubscribe(&configs_filter);
            messages.extend(tracker.sweep());
        }
        let stats = tracker.stats;
        shared.update(|h| h.tracker = stats);
        for m in messages {
            let sent = tokio::select! {
                _ = shutdown.cancelled() => break,
                sent = client.publish(m.topic, QoS::AtLeastOnce, m.retain, m.payload) => sent,
            };
            if sent.is_ok() {
                shared.update(|h| h.published_total += 1);
            }
        }
    }
    // Gone on purpose: the last will is only for a crash or a lost link.
    if connected {
        let pi = tracker.context().pi_availability();
        let _ = client.publish(pi, QoS::AtLeastOnce, true, "offline").await;
    }
    let _ = client.disconnect().await;
    let _ = tokio::time::timeout(Duration::from_secs(3), poller).await;
    stop.cancel();
    tracing::info!("Home Assistant discovery stopped");
}

/// Polls the connection: subscribes to HA's status on every ConnAck (clean session),
/// reconnects with backoff, and reports connections and HA's `online`.
async fn connection(
    mut eventloop: rumqttc::EventLoop,
    client: AsyncClient,
    [status_topic, configs_filter]: [String; 2],
    sweeping: Arc<AtomicBool>,
    tx: mpsc::Sender<Incoming>,
    shared: SharedHa,
    stop: CancellationToken,
) {
    let mut backoff = Backoff::new(Duration::from_millis(500), Duration::from_secs(30));
    let mut outage_logged = false;
    loop {
        let polled = tokio::select! {
            _ = stop.cancelled() => return,
            polled = eventloop.poll() => polled,
        };
        match polled {
            Ok(Event::Incoming(Packet::ConnAck(_))) => {
                backoff.reset();
                outage_logged = false;
                if let Err(error) = client.try_subscribe(&status_topic, QoS::AtLeastOnce) {
                    tracing::warn!(%error, topic = %status_topic, "cannot queue the subscription");
                }
                if sweeping.load(Ordering::Relaxed) {
                    if let Err(error) = client.try_subscribe(&configs_filter, QoS::AtLeastOnce) {
                        tracing::warn!(%error, topic = %configs_filter, "cannot queue the subscription");
                    }
                }
                tracing::info!("Home Assistant broker connected");
                shared.update(|h| {
                    h.connected = true;
                    h.connects_total += 1;
                    h.last_error = None;
                });
                if tx.send(Incoming::Connected).await.is_err() {
                    return;
                }
            }
            Ok(Event::Incoming(Packet::Publish(p))) if p.topic != status_topic => {
                if sweeping.load(Ordering::Relaxed) && p.topic.ends_with("/config") {
                    let found = Incoming::Config {
                        topic: p.topic,
                        payload: p.payload.to_vec(),
                    };
                    if tx.send(found).await.is_err() {
                        return;
                    }
                }
            }
            Ok(Event::Incoming(Packet::Publish(p))) => {
                let online = p.topic == status_topic && p.payload.as_ref() == b"online";
                let offline = p.topic == status_topic && p.payload.as_ref() == b"offline";
                if online {
                    shared.update(|h| h.ha_online_total += 1);
                    // Coalesced by the receiver (one resend per 5 s at most).
                    if tx.send(Incoming::HaOnline).await.is_err() {
                        return;
                    }
                } else if !offline || p.payload.len() > MAX_STATUS_PAYLOAD {
                    shared.update(|h| h.ignored_total += 1);
                }
            }
            Ok(Event::Outgoing(Outgoing::Disconnect)) => return,
            Ok(_) => {}
            Err(ConnectionError::RequestsDone) => return,
            Err(error) => {
                if !outage_logged {
                    tracing::warn!(%error, "Home Assistant broker unreachable; retrying with backoff");
                    outage_logged = true;
                }
                shared.update(|h| {
                    h.connected = false;
                    h.connect_errors_total += 1;
                    h.last_error = Some(error.to_string());
                });
                tokio::select! {
                    _ = stop.cancelled() => return,
                    _ = tokio::time::sleep(backoff.next_jittered()) => {}
                }
            }
        }
    }
}
