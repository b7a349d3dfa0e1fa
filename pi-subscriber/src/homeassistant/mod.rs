//! Home Assistant MQTT discovery: every host the Pi knows becomes an HA device with sensors,
//! its availability follows the Pi's staleness judgment, and its state is one retained JSON
//! per sample. Decoupled from ingest: once a second this task reads the store's hosts and
//! publishes what changed ([`tracker`]), over its own MQTT connection (HA usually runs its
//! own mosquitto). `SPEC.md`, "Home Assistant (from the Pi)".

pub mod discovery;
mod link;
mod outbox;
pub mod state;
pub mod tracker;

#[cfg(test)]
mod sweep_tests;
#[cfg(test)]
mod tests;

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use daemon_kit::mqtt::{LinkCounters, LinkStats};
use daemon_kit::stats::Stats;
use rumqttc::{AsyncClient, QoS};
use serde::Serialize;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use crate::alerts::AlertsHandle;
use crate::config::{MqttSettings, Settings};
use crate::sanitize;
use crate::store::SharedStore;
use discovery::Context;
use outbox::Outbox;
use tracker::{HostInput, Message, Tracker, TrackerStats};

/// HA's `online` on `<discovery_prefix>/status` re-publishes everything at most this often.
pub const RESEND_EVERY: Duration = Duration::from_secs(5);
/// A message on the status topic longer than this is ignored (and counted).
pub const MAX_STATUS_PAYLOAD: usize = 16;
/// rumqttc's request queue: what the task hands over at once (the rest waits, coalesced,
/// in its outbox).
const REQUEST_QUEUE: usize = 64;
/// `connected` turns false when nothing was acknowledged for 2 × `keep_alive` (at least
/// this) while messages wait.
const STALL_AT_LEAST: Duration = Duration::from_secs(10);

/// Counters for `/health` (`homeassistant`).
#[derive(Debug, Default, Clone, Serialize)]
pub struct HaHealth {
    pub broker: String,
    /// `connected` (here: a session is up and what is sent is acknowledged, nothing waits
    /// unacknowledged for 2 × `keep_alive`), `connects_total`, `connect_errors_total`,
    /// `last_error`.
    #[serde(flatten)]
    pub link: LinkStats,
    /// Messages the broker acknowledged.
    pub published_total: u64,
    /// Messages waiting to be handed to the connection (the newest per topic).
    pub queued: usize,
    /// `online` from HA's status topic.
    pub ha_online_total: u64,
    /// Every config, availability and state published again (HA online, reconnect).
    pub resends_total: u64,
    /// Messages on the status topic that were not `online`/`offline` (or over 16 bytes).
    pub ignored_total: u64,
    /// Retained discovery configs over 16 KiB, not looked at by the leftover sweep.
    pub too_large_total: u64,
    #[serde(flatten)]
    pub tracker: TrackerStats,
}

impl LinkCounters for HaHealth {
    fn link_stats(&mut self) -> &mut LinkStats {
        &mut self.link
    }
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

    /// The handle the connection counts into.
    fn stats(&self) -> Stats<HaHealth> {
        self.health.clone()
    }

    /// The counters as of now.
    pub fn snapshot(&self) -> HaHealth {
        self.health.snapshot()
    }
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
        settings
            .health
            .max_age
            .unwrap_or(crate::store::DEFAULT_MAX_AGE),
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

#[allow(clippy::too_many_arguments)]
async fn run(
    broker: MqttSettings,
    ctx: Context,
    max_age: Duration,
    store: SharedStore,
    alerts: Option<AlertsHandle>,
    shared: SharedHa,
    shutdown: CancellationToken,
) {
    let options = broker
        .client_options()
        .last_will(ctx.pi_availability(), "offline", true)
        .build();
    let options = match options {
        Ok(o) => o,
        Err(error) => {
            tracing::error!(%error, "Home Assistant discovery disabled: cannot set up TLS");
            shared.update(|h| h.link.last_error = Some(error.to_string()));
            return;
        }
    };
    let (client, eventloop) = AsyncClient::new(options, REQUEST_QUEUE);
    let stop = CancellationToken::new();
    let status_topic = format!("{}/status", ctx.discovery_prefix);
    let configs_filter = format!("{}/+/+/+/config", ctx.discovery_prefix);
    // Until the sweep, the connection also reads every retained discovery config (to find
    // what an earlier run of this Pi left behind).
    let sweeping = Arc::new(AtomicBool::new(true));
    let inbox = Arc::new(link::Inbox::default());
    let poller = tokio::spawn(link::run(
        eventloop,
        link::Link {
            ctx: ctx.clone(),
            status_topic: status_topic.clone(),
            sweeping: Arc::clone(&sweeping),
            inbox: Arc::clone(&inbox),
            shared: shared.clone(),
            stop: stop.clone(),
        },
    ));
    tracing::info!(broker = %format!("{}:{}", broker.host, broker.port), client_id = %broker.client_id, "Home Assistant discovery on");
    let mut tracker = Tracker::new(ctx);
    let mut outbox = Outbox::default();
    // Subscriptions to (re)make, before any publish: (filter, subscribe or unsubscribe).
    let mut control: Vec<(String, bool)> = Vec::new();
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut flow = link::Flow::new((2 * broker.keep_alive).max(STALL_AT_LEAST), Instant::now());
    let (mut session, mut pending) = (false, false);
    let mut last_resend: Option<Instant> = None;
    let mut first_connect: Option<Instant> = None;
    let sweep_after = (2 * max_age).max(Duration::from_secs(5));
    loop {
        let due = tokio::select! {
            _ = shutdown.cancelled() => break,
            () = inbox.woken() => false,
            _ = tick.tick() => true,
        };
        let news = inbox.take();
        if news.closed {
            break;
        }
        for (host, topic) in news.found {
            tracker.found(host, topic);
        }
        tracker.stats.found_over_cap_total += news.found_over_cap;
        if news.connects > 0 {
            first_connect.get_or_insert_with(Instant::now);
            // A clean session: nothing of the last one is left on the broker's side.
            control = vec![(status_topic.clone(), true)];
            if sweeping.load(Ordering::Relaxed) {
                control.push((configs_filter.clone(), true));
            }
            let pi = tracker.context().pi_availability();
            outbox.push_front(Message::retained(pi, "online".into()));
            pending = true;
            last_resend = None;
        }
        pending |= news.ha_online;
        session = news.session;
        if session && due {
            if pending && last_resend.is_none_or(|t| t.elapsed() >= RESEND_EVERY) {
                tracker.resend_all();
                pending = false;
                last_resend = Some(Instant::now());
                shared.update(|h| h.resends_total += 1);
            }
            let Some(messages) = tick_tracker(&mut tracker, &store, alerts.as_ref()) else {
                break;
            };
            for m in messages {
                outbox.push(m);
            }
            if sweeping.load(Ordering::Relaxed)
                && first_connect.is_some_and(|t| t.elapsed() >= sweep_after)
            {
                sweeping.store(false, Ordering::Relaxed);
                control.push((configs_filter.clone(), false));
                for m in tracker.sweep() {
                    outbox.push(m);
                }
            }
        }
        if session {
            hand_over(&client, &mut control, &mut outbox);
        }
        let waiting = !outbox.is_empty() || news.inflight > 0;
        let stalled = flow.stalled(Instant::now(), news.acked, session && waiting);
        let (stats, queued) = (tracker.stats, outbox.len());
        shared.update(|h| {
            h.tracker = stats;
            h.queued = queued;
            h.link.connected = session && !stalled;
            if session && stalled {
                h.link.last_error = Some(format!(
                    "nothing acknowledged by the broker for {:?} with {queued} messages queued",
                    flow.stall_after()
                ));
            }
        });
    }
    // Gone on purpose: the last will is only for a crash or a lost link. The connection
    // task still polls (it waits on nothing of ours), so this wait is bounded by it.
    if session {
        let pi = tracker.context().pi_availability();
        let offline = client.publish(pi, QoS::AtLeastOnce, true, "offline");
        let _ = tokio::time::timeout(Duration::from_secs(2), offline).await;
    }
    let _ = tokio::time::timeout(Duration::from_secs(2), client.disconnect()).await;
    let _ = tokio::time::timeout(Duration::from_secs(3), poller).await;
    stop.cancel();
    shared.update(|h| h.link.connected = false);
    tracing::info!("Home Assistant discovery stopped");
}

/// The tracker's messages for this second; `None` when the store is gone.
fn tick_tracker(
    tracker: &mut Tracker,
    store: &SharedStore,
    alerts: Option<&AlertsHandle>,
) -> Option<Vec<Message>> {
    let (hosts, jobs) = inputs(store)?;
    let firing = alerts.map(|a| {
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
            stale: state.is_stale(now),
            last_job: jobs.get(name),
            alerts_firing: firing.as_ref().map(|f| f.get(name).copied().unwrap_or(0)),
        })
        .collect();
    Some(tracker.tick(&inputs))
}

/// Hands rumqttc what fits in its request queue now, subscriptions first; never waits (the
/// rest goes at the next wake-up: a request sent, an acknowledgement, the next second).
fn hand_over(client: &AsyncClient, control: &mut Vec<(String, bool)>, outbox: &mut Outbox) {
    while let Some((filter, subscribe)) = control.first() {
        let queued = if *subscribe {
            client.try_subscribe(filter.as_str(), QoS::AtLeastOnce)
        } else {
            client.try_unsubscribe(filter.as_str())
        };
        if queued.is_err() {
            return;
        }
        control.remove(0);
    }
    while let Some(m) = outbox.pop() {
        // Never a wildcard (rumqttc would refuse it as if its queue were full, forever).
        if m.topic.is_empty() || m.topic.contains(['+', '#']) {
            continue;
        }
        let payload = m.payload.clone().into_bytes();
        if client
            .try_publish(m.topic.as_str(), QoS::AtLeastOnce, m.retain, payload)
            .is_err()
        {
            outbox.unpop(m);
            return;
        }
    }
}
