//! Publishing to MQTT: the latest snapshot (retained, QoS 1), `online`/`offline` status
//! (retained) and job events (QoS 1), to the embedded broker or an external one.
//!
//! Two tasks: [`drive`] polls rumqttc's event loop, sleeping with exponential backoff and
//! jitter between failed connects (rumqttc retries at once, thousands of times a second);
//! [`run`] reacts to connects, new snapshots and new events. Publishing uses `try_publish`
//! only, so nothing here ever waits on the network: while the broker is away, sampling, the
//! ring and HTTP carry on, and on reconnect the newest snapshot and the events not yet sent
//! go out. Snapshots taken while disconnected are not replayed over MQTT; a subscriber
//! backfills them from `/history`.

use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use broker::backoff::Backoff;
use broker::{BrokerMode, BrokerSettings, JobEvent, Topics};
use rumqttc::{AsyncClient, ConnectionError, Event, LastWill, MqttOptions, Outgoing, Packet, QoS};
use serde::{Deserialize, Serialize};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use crate::events::EventLog;
use crate::sampler::Latest;

/// Room in rumqttc's request queue. A full queue (broker away, or 100 publishes unacked)
/// makes `try_publish` fail at once, which is counted, never waited on.
const REQUEST_QUEUE: usize = 64;
/// How often the event log is checked for events written by `publisher job`.
const EVENT_POLL: Duration = Duration::from_secs(1);

/// Counters for `/health`.
#[derive(Debug, Default, Clone, Serialize)]
pub struct MqttStats {
    pub mode: &'static str,
    /// `host:port` of the broker published to.
    pub broker: String,
    pub connected: bool,
    pub connects_total: u64,
    pub connect_errors_total: u64,
    pub snapshots_published_total: u64,
    /// Snapshots not handed to the client (queue full or too large); still in the ring.
    pub snapshots_dropped_total: u64,
    pub events_published_total: u64,
    pub last_error: Option<String>,
}

/// Where to connect and how, resolved from the settings and, in embedded mode, the broker
/// that was started.
#[derive(Debug, Clone)]
pub struct ClientSettings {
    pub host_id: String,
    /// Broker host and port.
    pub host: String,
    pub port: u16,
    pub client_id: String,
    pub topics: Topics,
    pub settings: BrokerSettings,
}

impl ClientSettings {
    pub fn new(
        settings: &BrokerSettings,
        host_id: &str,
        embedded: Option<std::net::SocketAddr>,
    ) -> Self {
        let (host, port) = match embedded {
            Some(addr) => (addr.ip().to_string(), addr.port()),
            None => (settings.host.clone(), settings.port),
        };
        let client_id = if settings.client_id.is_empty() {
            format!("publisher-{host_id}")
        } else {
            settings.client_id.clone()
        };
        Self {
            host_id: host_id.to_owned(),
            host,
            port,
            client_id,
            topics: Topics::new(&settings.topic_prefix, host_id),
            settings: settings.clone(),
        }
    }

    /// Largest packet sent or accepted: the broker's limit, plus room for topic and header.
    fn max_packet(&self) -> usize {
        self.settings.max_payload_size + 1024
    }

    fn options(&self) -> Result<MqttOptions, MqttError> {
        let mut options = MqttOptions::new(&self.client_id, &self.host, self.port);
        options
            .set_keep_alive(self.settings.keep_alive)
            .set_clean_session(true)
            .set_max_packet_size(self.max_packet(), self.max_packet())
            // If the publisher dies without a word, an external broker says so for it.
            .set_last_will(LastWill::new(
                &self.topics.status,
                "offline",
                QoS::AtLeastOnce,
                true,
            ));
        if let Some((user, pass)) = self.settings.credentials() {
            options.set_credentials(user, pass);
        }
        if self.settings.mode == BrokerMode::External && self.settings.tls {
            options.set_transport(rumqttc::Transport::tls_with_config(
                rumqttc::TlsConfiguration::Rustls(Arc::new(broker::tls::client_config(
                    self.settings.ca_file.as_deref(),
                    "broker.ca_file",
                )?)),
            ));
        }
        Ok(options)
    }
}

#[derive(Debug, thiserror::Error)]
pub enum MqttError {
    #[error(transparent)]
    Tls(#[from] broker::tls::TlsError),
}

/// What the event-loop task tells the publishing task.
#[derive(Debug)]
enum Link {
    Up,
    Down(String),
    /// Our own `offline` came back through the broker: it has been routed to subscribers.
    OfflineEcho,
}

/// Polls the event loop until the client disconnects or `stop` is cancelled.
async fn drive(
    mut eventloop: rumqttc::EventLoop,
    link: mpsc::UnboundedSender<Link>,
    stop: CancellationToken,
) {
    let mut backoff = Backoff::new(Duration::from_millis(500), Duration::from_secs(30));
    loop {
        let polled = tokio::select! {
            _ = stop.cancelled() => return,
            polled = eventloop.poll() => polled,
        };
        match polled {
            Ok(Event::Incoming(Packet::ConnAck(ack))) => {
                if ack.code == rumqttc::ConnectReturnCode::Success {
                    backoff.reset();
                    let _ = link.send(Link::Up);
                }
            }
            Ok(Event::Incoming(Packet::Publish(p))) if p.payload.as_ref() == b"offline" => {
                let _ = link.send(Link::OfflineEcho);
            }
            Ok(Event::Outgoing(Outgoing::Disconnect)) => return,
            Ok(_) => {}
            Err(ConnectionError::RequestsDone) => return,
            Err(error) => {
                // rumqttd refuses a bad password by closing the socket, which reads as
                // "connection aborted": say what it may mean.
                let reason = match &error {
                    ConnectionError::MqttState(rumqttc::StateError::ConnectionAborted) => {
                        "connection closed by the broker (wrong credentials, or a packet over its size limit?)".to_owned()
                    }
                    other => other.to_string(),
                };
                let _ = link.send(Link::Down(reason));
                let wait = backoff.next_jittered();
                tokio::select! {
                    _ = stop.cancelled() => return,
                    _ = tokio::time::sleep(wait) => {}
                }
            }
        }
    }
}

/// The last event handed to the client, persisted so a restart does not send them all again.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct EventCursor {
    ts_ms: i64,
    run_id: String,
    kind: String,
}

impl EventCursor {
    fn of(event: &JobEvent) -> Self {
        Self {
            ts_ms: event.ts_ms(),
            run_id: event.run_id().to_owned(),
            kind: match event {
                JobEvent::JobStart(_) => "job_start",
                JobEvent::JobEnd(_) => "job_end",
            }
            .to_owned(),
        }
    }
}

/// Events after `cursor` in the log: after its position when it is still there, else
/// (compacted away) those newer than it.
fn events_after(events: &[JobEvent], cursor: Option<&EventCursor>) -> usize {
    let Some(cursor) = cursor else { return 0 };
    match events.iter().rposition(|e| &EventCursor::of(e) == cursor) {
        Some(i) => i + 1,
        None => events
            .iter()
            .position(|e| e.ts_ms() > cursor.ts_ms)
            .unwrap_or(events.len()),
    }
}

struct Publisher {
    client: AsyncClient,
    /// Host id of this publisher, as in its topics.
    host: String,
    topics: Topics,
    max_payload: usize,
    stats: Arc<Mutex<MqttStats>>,
    events: EventLog,
    cursor_path: PathBuf,
    cursor: Option<EventCursor>,
    /// Size of the event log when last read: cheap check for new events.
    events_len: Option<u64>,
}

impl Publisher {
    fn stat(&self, f: impl FnOnce(&mut MqttStats)) {
        if let Ok(mut s) = self.stats.lock() {
            f(&mut s);
        }
    }

    fn publish_snapshot(&self, latest: &Latest) {
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
        match self
            .client
            .try_publish(&self.topics.snapshot, QoS::AtLeastOnce, true, payload)
        {
            Ok(()) => self.stat(|s| s.snapshots_published_total += 1),
            Err(error) => {
                tracing::debug!(%error, seq = snapshot.seq, "snapshot not queued for MQTT");
                self.stat(|s| s.snapshots_dropped_total += 1);
            }
        }
    }

    fn publish_status(&self, status: &'static str) -> bool {
        self.client
            .try_publish(&self.topics.status, QoS::AtLeastOnce, true, status)
            .is_ok()
    }

    /// Publishes the events not sent yet, stopping at the first that cannot be queued.
    async fn publish_events(&mut self, force: bool) {
        let len = std::fs::metadata(self.events.path()).map(|m| m.len()).ok();
        if !force && len == self.events_len {
            return;
        }
        let log = self.events.clone();
        let read = match tokio::task::spawn_blocking(move || log.read()).await {
            Ok(Ok(read)) => read,
            Ok(Err(error)) => {
                tracing::warn!(%error, "cannot read the event log");
                return;
            }
            Err(_) => return,
        };
        let start = events_after(&read.events, self.cursor.as_ref());
        let mut sent = 0u64;
        let mut complete = true;
        for event in &read.events[start..] {
            // A job run with another config may have recorded another host id; the topic
            // says whose events these are, and the payload must agree with it.
            let mut event = event.clone();
            match &mut event {
                JobEvent::JobStart(e) => e.host.clone_from(&self.host),
                JobEvent::JobEnd(e) => e.host.clone_from(&self.host),
            }
            let Ok(mut payload) = serde_json::to_vec(&event) else {
                continue;
            };
            // A long output tail must not make the event bigger than the broker takes.
            while payload.len() > self.max_payload {
                let JobEvent::JobEnd(end) = &mut event else {
                    break;
                };
                if end.output_tail.is_empty() {
                    break;
                }
                let keep = end.output_tail.len() / 2;
                let cut = end.output_tail.len() - keep;
                let cut = (cut..end.output_tail.len())
                    .find(|&i| end.output_tail.is_char_boundary(i))
                    .unwrap_or(end.output_tail.len());
                end.output_tail.drain(..cut);
                payload = serde_json::to_vec(&event).unwrap_or_default();
            }
            if self
                .client
                .try_publish(&self.topics.events, QoS::AtLeastOnce, false, payload)
                .is_err()
            {
                complete = false;
                break;
            }
            self.cursor = Some(EventCursor::of(&event));
            sent += 1;
        }
        if complete {
            self.events_len = len;
        }
        if sent > 0 {
            self.stat(|s| s.events_published_total += sent);
            self.save_cursor().await;
        }
    }

    async fn save_cursor(&self) {
        let Some(cursor) = &self.cursor else { return };
        let Ok(json) = serde_json::to_vec(cursor) else {
            return;
        };
        let path = self.cursor_path.clone();
        let written = tokio::task::spawn_blocking(move || {
            let tmp = path.with_extension("tmp");
            std::fs::write(&tmp, json)?;
            std::fs::rename(&tmp, &path)
        })
        .await;
        if let Ok(Err(error)) = written {
            tracing::warn!(%error, "cannot save the MQTT event cursor; events may be sent again");
        }
    }
}

/// Publishes until `shutdown`, then says `offline` and disconnects (waiting at most 2 s).
pub async fn run(
    client_settings: ClientSettings,
    mut latest: Latest,
    events: EventLog,
    data_dir: PathBuf,
    stats: Arc<Mutex<MqttStats>>,
    shutdown: CancellationToken,
) -> Result<(), MqttError> {
    let options = client_settings.options()?;
    let (client, eventloop) = AsyncClient::new(options, REQUEST_QUEUE);
    let (link_tx, mut link_rx) = mpsc::unbounded_channel();
    let stop_driver = CancellationToken::new();
    let driver = tokio::spawn(drive(eventloop, link_tx, stop_driver.clone()));
    if let Ok(mut s) = stats.lock() {
        s.mode = match client_settings.settings.mode {
            BrokerMode::Embedded => "embedded",
            BrokerMode::External => "external",
            BrokerMode::Off => "off",
        };
        s.broker = format!("{}:{}", client_settings.host, client_settings.port);
    }
    let cursor_path = data_dir.join("mqtt-events.cursor");
    let cursor = std::fs::read(&cursor_path)
        .ok()
        .and_then(|b| serde_json::from_slice(&b).ok());
    let mut publisher = Publisher {
        client,
        host: client_settings.host_id.clone(),
        topics: client_settings.topics.clone(),
        max_payload: client_settings.settings.max_payload_size,
        stats: Arc::clone(&stats),
        events,
        cursor_path,
        cursor,
        events_len: None,
    };
    tracing::info!(broker = %format!("{}:{}", client_settings.host, client_settings.port), topic = %publisher.topics.snapshot, "MQTT publishing");
    let mut connected = false;
    let mut outage_logged = false;
    let mut event_tick = tokio::time::interval(EVENT_POLL);
    event_tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => break,
            Some(link) = link_rx.recv() => match link {
                Link::Up => {
                    connected = true;
                    outage_logged = false;
                    tracing::info!("MQTT connected");
                    publisher.stat(|s| { s.connected = true; s.connects_total += 1; s.last_error = None; });
                    publisher.publish_status("online");
                    // Subscribed to our own status so that at shutdown we can tell when
                    // `offline` has gone through the broker to everyone else.
                    let _ = publisher.client.try_subscribe(&publisher.topics.status, QoS::AtLeastOnce);
                    publisher.publish_snapshot(&latest);
                    publisher.publish_events(true).await;
                }
                Link::OfflineEcho => {}
                Link::Down(reason) => {
                    if connected || !outage_logged {
                        tracing::warn!(%reason, "MQTT broker unreachable; retrying with backoff (sampling and HTTP carry on)");
                        outage_logged = true;
                    } else {
                        tracing::debug!(%reason, "MQTT connect failed");
                    }
                    connected = false;
                    publisher.stat(|s| { s.connected = false; s.connect_errors_total += 1; s.last_error = Some(reason); });
                }
            },
            changed = latest.changed() => {
                if changed.is_err() { break; }
                if connected { publisher.publish_snapshot(&latest); }
            }
            _ = event_tick.tick() => {
                if connected { publisher.publish_events(false).await; }
            }
        }
    }
    if connected && publisher.publish_status("offline") {
        // The embedded broker dies with this process: wait (at most 2 s) until `offline` has
        // been routed, which our own subscription shows, before disconnecting and exiting.
        let echoed = tokio::time::timeout(Duration::from_secs(2), async {
            while let Some(link) = link_rx.recv().await {
                if matches!(link, Link::OfflineEcho) {
                    return true;
                }
            }
            false
        })
        .await;
        if !matches!(echoed, Ok(true)) {
            tracing::warn!("`offline` was not confirmed by the broker within 2 s");
        }
        let _ = publisher.client.try_disconnect();
        if tokio::time::timeout(Duration::from_secs(2), driver)
            .await
            .is_err()
        {
            tracing::warn!("MQTT disconnect did not finish in 2 s");
        }
    }
    stop_driver.cancel();
    tracing::info!("MQTT publishing stopped");
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use broker::{JobEnd, JobStart};

    fn start(run: &str, ts: i64) -> JobEvent {
        JobEvent::JobStart(JobStart {
            run_id: run.into(),
            start_ts_ms: ts,
            ..JobStart::default()
        })
    }

    #[test]
    fn event_cursor_finds_what_is_new() {
        let end = JobEvent::JobEnd(JobEnd {
            run_id: "a".into(),
            end_ts_ms: 20,
            ..JobEnd::default()
        });
        let events = vec![start("a", 10), end.clone(), start("b", 30)];
        assert_eq!(events_after(&events, None), 0, "nothing sent yet: all");
        assert_eq!(events_after(&events, Some(&EventCursor::of(&events[0]))), 1);
        assert_eq!(events_after(&events, Some(&EventCursor::of(&end))), 2);
        assert_eq!(events_after(&events, Some(&EventCursor::of(&events[2]))), 3);
        // The cursor's event was compacted away: everything newer than it.
        let gone = EventCursor {
            ts_ms: 15,
            run_id: "z".into(),
            kind: "job_end".into(),
        };
        assert_eq!(events_after(&events, Some(&gone)), 1);
    }
}
