//! Publishing to MQTT: the latest snapshot (retained, QoS 1), `online`/`offline` status
//! (retained) and job events (QoS 1, at least once), to the embedded broker or an external one.
//!
//! One task polls rumqttc's event loop (`daemon_kit::mqtt::Link`, with exponential backoff
//! and jitter between failed connects, and the link's counters) and reacts to connects, acks,
//! new snapshots and new events. Publishing uses `try_publish` only, so nothing here ever
//! waits on the network: while the broker is away, sampling, the ring and HTTP carry on, and on reconnect the newest snapshot and every
//! event after the acknowledged cursor go out ([`crate::delivery`]). Snapshots taken while
//! disconnected are not replayed over MQTT; a subscriber backfills them from `/history`.

use std::path::PathBuf;
use std::time::Duration;

use broker::{BrokerMode, Topics};
use rumqttc::{AsyncClient, ConnectionError, Event, Outgoing, Packet, QoS};
use serde::Serialize;
use tokio_util::sync::CancellationToken;

use crate::delivery::{
    self, events_after, load_cursor, save_cursor, EventCursor, InFlight, Tag, Tracker,
    MAX_IN_FLIGHT,
};
use crate::events::EventLog;

mod client;
mod log_watch;

use crate::sampler::Latest;
pub use client::{ClientSettings, MqttError};
use daemon_kit::mqtt::{Link, LinkCounters, LinkStats};
use daemon_kit::stats::Stats;

/// Room in rumqttc's request queue. A full queue (broker away, or 100 publishes unacked)
/// makes `try_publish` fail at once, which is counted, never waited on.
const REQUEST_QUEUE: usize = 64;
/// At a clean stop with the embedded broker, how long its links get to write `offline` to
/// the subscribers once it is routed.
const EMBEDDED_FLUSH: Duration = Duration::from_millis(200);
/// How often the event log is checked for events written by `publisher job` while there may
/// be something to do (after a change to the log, a connect, an event's ack; always without
/// inotify), until a look finds nothing new and the cursor is saved.
const EVENT_POLL: Duration = Duration::from_secs(1);

/// Counters for `/health`.
#[derive(Debug, Default, Clone, Serialize)]
pub struct MqttStats {
    pub mode: &'static str,
    /// `host:port` of the broker published to.
    pub broker: String,
    /// `connected`, `connects_total`, `connect_errors_total`, `last_error`.
    #[serde(flatten)]
    pub link: LinkStats,
    pub snapshots_published_total: u64,
    /// Snapshots not handed to the client (queue full or too large); still in the ring.
    pub snapshots_dropped_total: u64,
    /// Job events handed to the client (again after each reconnect until acknowledged).
    pub events_published_total: u64,
    /// Job events the broker acknowledged (PUBACK); the cursor moves over these only.
    pub events_acked_total: u64,
    /// Job events sent on this connection and not acknowledged yet.
    pub events_in_flight: u64,
}

impl LinkCounters for MqttStats {
    fn link_stats(&mut self) -> &mut LinkStats {
        &mut self.link
    }
}

struct Publisher {
    client: AsyncClient,
    /// Host id of this publisher, as in its topics.
    host: String,
    topics: Topics,
    max_payload: usize,
    stats: Stats<MqttStats>,
    events: EventLog,
    cursor_path: PathBuf,
    /// The last event acknowledged by the broker, all before it acknowledged too.
    cursor: Option<EventCursor>,
    /// The cursor changed since it was last written to disk.
    cursor_dirty: bool,
    tracker: Tracker,
    in_flight: InFlight,
    /// Size of the event log when last read: cheap check for new events.
    events_len: Option<u64>,
}

impl Publisher {
    fn stat(&self, f: impl FnOnce(&mut MqttStats)) {
        self.stats.update(f);
    }

    /// Queues a QoS 1 publish, remembering what it carries.
    fn publish(&mut self, topic: &str, retain: bool, payload: Vec<u8>, tag: Tag) -> bool {
        let queued = self
            .client
            .try_publish(topic, QoS::AtLeastOnce, retain, payload)
            .is_ok();
        if queued {
            self.tracker.queued(tag);
        }
        queued
    }

    fn publish_snapshot(&mut self, latest: &Latest) {
        let Some(snapshot) = latest.borrow().clone() else {
            return;
        };
        let payload = match serde_json::to_vec(snapshot.as_ref()) {
            Ok(p) => p,
            Err(error) => {
                tracing::error!(%error, "cannot serialize snapshot");
                return;
            }
        };
        if payload.len() > self.max_payload {
            tracing::error!(
                size = payload.len(),
                limit = self.max_payload,
                "snapshot larger than broker.max_payload_size; not published"
            );
            self.stat(|s| s.snapshots_dropped_total += 1);
            return;
        }
        let topic = self.topics.snapshot.clone();
        if self.publish(&topic, true, payload, Tag::Other) {
            self.stat(|s| s.snapshots_published_total += 1);
        } else {
            tracing::debug!(seq = snapshot.seq, "snapshot not queued for MQTT");
            self.stat(|s| s.snapshots_dropped_total += 1);
        }
    }

    fn publish_status(&mut self, status: &'static str) -> bool {
        let topic = self.topics.status.clone();
        self.publish(&topic, true, status.into(), Tag::Other)
    }

    /// A new connection: every event after the acknowledged cursor goes out again.
    fn connected(&mut self) {
        self.tracker.reset();
        self.in_flight.clear();
    }

    /// The connection failed: whatever was not acknowledged is lost with it.
    fn disconnected(&mut self) {
        self.tracker.reset();
        self.in_flight.clear();
        self.stat(|s| s.events_in_flight = 0);
    }

    /// Publishes the events after the last one queued on this connection (after the acked
    /// cursor on a new one), at most [`MAX_IN_FLIGHT`] unacknowledged at a time. Returns
    /// whether the log was found as last read (nothing new to publish).
    async fn publish_events(&mut self, force: bool) -> bool {
        let len = std::fs::metadata(self.events.path()).map(|m| m.len()).ok();
        if !force && len == self.events_len {
            return true;
        }
        let log = self.events.clone();
        let read = match tokio::task::spawn_blocking(move || log.read()).await {
            Ok(Ok(read)) => read,
            Ok(Err(error)) => {
                tracing::warn!(%error, "cannot read the event log");
                return false;
            }
            Err(_) => return false,
        };
        let after = self.in_flight.last().or(self.cursor.as_ref());
        let start = events_after(&read.events, after);
        let mut sent = 0u64;
        let mut complete = true;
        let topic = self.topics.events.clone();
        for event in &read.events[start..] {
            if self.in_flight.len() >= MAX_IN_FLIGHT {
                complete = false;
                break;
            }
            let Some(payload) = delivery::payload(event, &self.host, self.max_payload) else {
                continue;
            };
            let cursor = EventCursor::of(event);
            if !self.publish(&topic, false, payload, Tag::Event(cursor.clone())) {
                complete = false;
                break;
            }
            self.in_flight.push(cursor);
            sent += 1;
        }
        if complete {
            self.events_len = len;
        }
        let in_flight = self.in_flight.len() as u64;
        self.stat(|s| {
            s.events_published_total += sent;
            s.events_in_flight = in_flight;
        });
        false
    }

    /// A PUBACK: the cursor moves over the events acknowledged in order. Returns whether it
    /// was an event's.
    fn acked(&mut self, pkid: u16) -> bool {
        let Some(event) = self.tracker.acked(pkid) else {
            return false;
        };
        if let Some(cursor) = self.in_flight.ack(&event) {
            self.cursor = Some(cursor);
            self.cursor_dirty = true;
        }
        let in_flight = self.in_flight.len() as u64;
        self.stat(|s| {
            s.events_acked_total += 1;
            s.events_in_flight = in_flight;
        });
        if self.in_flight.is_empty() {
            // Room again: let the next tick read the log.
            self.events_len = None;
        }
        true
    }

    async fn save_cursor(&mut self) {
        let Some(cursor) = self.cursor.clone().filter(|_| self.cursor_dirty) else {
            return;
        };
        let path = self.cursor_path.clone();
        let written = tokio::task::spawn_blocking(move || save_cursor(&path, &cursor)).await;
        match written {
            Ok(Ok(())) => self.cursor_dirty = false,
            Ok(Err(error)) => {
                tracing::warn!(path = %self.cursor_path.display(), %error, "cannot save the MQTT event cursor; events may be sent again")
            }
            Err(_) => {}
        }
    }
}

/// Completes when `watch` says the event log may have changed; never without a watch.
async fn log_changed(watch: &mut Option<log_watch::LogWatch>) -> std::io::Result<()> {
    match watch {
        Some(watch) => watch.changed().await,
        None => std::future::pending().await,
    }
}

/// Publishes until `shutdown`, then says `offline` and disconnects (waiting at most 2 s).
pub async fn run(
    client_settings: ClientSettings,
    mut latest: Latest,
    events: EventLog,
    data_dir: PathBuf,
    stats: Stats<MqttStats>,
    shutdown: CancellationToken,
) -> Result<(), MqttError> {
    let options = client_settings.options()?;
    let (client, eventloop) = AsyncClient::new(options, REQUEST_QUEUE);
    let mut link = Link::new(eventloop, stats.clone(), "MQTT broker")
        .meanwhile("sampling and HTTP carry on")
        // Unacknowledged publishes of an earlier connection are the publisher's to send
        // again (events from the acked cursor), never rumqttc's: its re-sends would carry ids
        // the tracker no longer knows.
        .drop_unsent_on_reconnect();
    stats.update(|s| {
        s.mode = match client_settings.settings.mode {
            BrokerMode::Embedded => "embedded",
            BrokerMode::External => "external",
            BrokerMode::Off => "off",
        };
        s.broker = format!("{}:{}", client_settings.host, client_settings.port);
    });
    let cursor_path = data_dir.join("mqtt-events.cursor");
    let cursor = load_cursor(&cursor_path);
    let mut log_watch = log_watch::LogWatch::new(&events.path())
        .map_err(|error| tracing::warn!(%error, "cannot watch the event log with inotify; looking at it every second"))
        .ok();
    let mut publisher = Publisher {
        client,
        host: client_settings.host_id.clone(),
        topics: client_settings.topics.clone(),
        max_payload: client_settings.settings.max_payload_size,
        stats: stats.clone(),
        events,
        cursor_path,
        cursor,
        cursor_dirty: false,
        tracker: Tracker::default(),
        in_flight: InFlight::default(),
        events_len: None,
    };
    tracing::info!(broker = %format!("{}:{}", client_settings.host, client_settings.port), topic = %publisher.topics.snapshot, "MQTT publishing");
    let embedded = client_settings.settings.mode == BrokerMode::Embedded;
    let mut connected = false;
    let mut event_tick = tokio::time::interval(EVENT_POLL);
    event_tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    // Whether the next tick may find something to do.
    let mut armed = true;
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => break,
            polled = link.next() => match polled {
                Ok(Event::Incoming(Packet::ConnAck(ack))) => {
                    if ack.code != rumqttc::ConnectReturnCode::Success {
                        continue;
                    }
                    armed = true;
                    connected = true;
                    publisher.connected();
                    publisher.publish_status("online");
                    // Subscribed to our own status so that at shutdown we can tell when
                    // `offline` has gone through the broker to everyone else.
                    let _ = publisher.client.try_subscribe(&publisher.topics.status, QoS::AtLeastOnce);
                    publisher.publish_snapshot(&latest);
                    publisher.publish_events(true).await;
                }
                Ok(Event::Outgoing(Outgoing::Publish(pkid))) => publisher.tracker.sent(pkid),
                Ok(Event::Outgoing(Outgoing::AwaitAck(pkid))) => publisher.tracker.collided(pkid),
                Ok(Event::Incoming(Packet::PubAck(ack))) => {
                    // An event's ack may make room, and moves the cursor.
                    armed |= publisher.acked(ack.pkid);
                    // A batch fully acknowledged is saved at once (else on the next tick).
                    if publisher.in_flight.is_empty() {
                        publisher.save_cursor().await;
                    }
                }
                Ok(_) => {}
                Err(ConnectionError::RequestsDone) => break,
                // Counted and logged by the link.
                Err(_) => {
                    connected = false;
                    armed = true;
                    publisher.disconnected();
                }
            },
            changed = latest.changed() => {
                if changed.is_err() { break; }
                if connected { publisher.publish_snapshot(&latest); }
            }
            changed = log_changed(&mut log_watch) => {
                armed = true;
                if let Err(error) = changed {
                    tracing::warn!(%error, "the event log is not watched any more; looking at it every second");
                    log_watch = None;
                }
            }
            _ = event_tick.tick(), if armed || log_watch.is_none() => {
                let settled = !connected || publisher.publish_events(false).await;
                publisher.save_cursor().await;
                armed = !settled || publisher.cursor_dirty;
            }
        }
    }
    if connected && publisher.publish_status("offline") {
        // The embedded broker dies with this process: wait (at most 2 s) until `offline` has
        // been routed, which our own subscription shows, before disconnecting and exiting.
        // Acks still count meanwhile.
        let echoed = tokio::time::timeout(Duration::from_secs(2), async {
            loop {
                match link.next().await {
                    Ok(Event::Incoming(Packet::Publish(p))) if p.payload.as_ref() == b"offline" => {
                        return true
                    }
                    Ok(Event::Outgoing(Outgoing::Publish(pkid))) => publisher.tracker.sent(pkid),
                    Ok(Event::Outgoing(Outgoing::AwaitAck(pkid))) => {
                        publisher.tracker.collided(pkid)
                    }
                    Ok(Event::Incoming(Packet::PubAck(ack))) => {
                        publisher.acked(ack.pkid);
                    }
                    Ok(_) => {}
                    Err(_) => return false,
                }
            }
        })
        .await;
        match echoed {
            // Routed to us means routed to every subscriber, not yet written to their
            // sockets by the embedded broker's other links: let them run before the process
            // (and the broker with it) ends.
            Ok(true) if embedded => tokio::time::sleep(EMBEDDED_FLUSH).await,
            Ok(true) => {}
            _ => tracing::warn!("`offline` was not confirmed by the broker within 2 s"),
        }
        let _ = publisher.client.try_disconnect();
        let disconnected = tokio::time::timeout(Duration::from_secs(2), async {
            while !matches!(
                link.next().await,
                Ok(Event::Outgoing(Outgoing::Disconnect)) | Err(_)
            ) {}
        })
        .await;
        if disconnected.is_err() {
            tracing::warn!("MQTT disconnect did not finish in 2 s");
        }
    }
    publisher.save_cursor().await;
    tracing::info!("MQTT publishing stopped");
    Ok(())
}
