//! The MQTT consumer: subscribes to `<prefix>/+/{snapshot,status,events}` at QoS 1 on every
//! ConnAck (clean session: the only way rumqttd replays retained snapshots), reconnects
//! forever with backoff and jitter (`daemon_kit::mqtt::Link`), and feeds every payload through the [`Ingestor`].
//!
//! A clean session also means that job events published while this Pi was away are not
//! kept for it: on every SubAck it asks the poller to reconcile, i.e. to fetch the
//! publishers' newest `/events` over HTTP (the store drops duplicates by run id and kind).

use std::sync::Arc;

use broker::Topics;
use daemon_kit::mqtt::{Link, LinkCounters, LinkStats};
use daemon_kit::stats::Stats;
use rumqttc::{AsyncClient, ConnectionError, Event, Packet, QoS};
use serde::Serialize;
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

use crate::config::MqttSettings;
use crate::ingest::Ingestor;
use crate::ingest_queue::IngestQueue;

/// Counters for `/health`.
#[derive(Debug, Default, Clone, Serialize)]
pub struct MqttState {
    pub enabled: bool,
    pub broker: String,
    /// `connected`, `connects_total`, `connect_errors_total`, `last_error`.
    #[serde(flatten)]
    pub link: LinkStats,
    pub messages_total: u64,
    /// `/events` reconciliations done after a (re)subscription.
    pub reconciles_total: u64,
}

impl LinkCounters for MqttState {
    fn link_stats(&mut self) -> &mut LinkStats {
        &mut self.link
    }
}

/// The consumer's counters, shared with `/health` and the poller (a handle: callers use its
/// verbs; a poisoned lock only loses counts).
#[derive(Debug, Default, Clone)]
pub struct SharedMqtt {
    state: Stats<MqttState>,
}

impl SharedMqtt {
    fn update(&self, f: impl FnOnce(&mut MqttState)) {
        self.state.update(f);
    }

    /// The consumer started, for `broker` (`host:port`).
    pub fn started(&self, broker: String) {
        self.update(|s| {
            s.enabled = true;
            s.broker = broker;
        });
    }

    /// The consumer cannot start at all.
    pub fn failed(&self, reason: String) {
        self.update(|s| s.link.last_error = Some(reason));
    }

    pub fn message(&self) {
        self.update(|s| s.messages_total += 1);
    }

    /// Job events were reconciled from `/events` after a subscription.
    pub fn reconciled(&self) {
        self.update(|s| s.reconciles_total += 1);
    }

    /// The counters as of now.
    pub fn snapshot(&self) -> MqttState {
        self.state.snapshot()
    }
}

pub async fn run(
    settings: MqttSettings,
    ingestor: Ingestor,
    state: SharedMqtt,
    reconcile: Arc<Notify>,
    shutdown: CancellationToken,
) {
    let options = match settings.client_options().build() {
        Ok(o) => o,
        Err(error) => {
            tracing::error!(%error, "MQTT disabled: cannot set up TLS");
            state.failed(error.to_string());
            return;
        }
    };
    // Snapshots are stored by a thread of their own: this task never waits for the history.
    let queue = match IngestQueue::start(ingestor.clone()) {
        Ok(q) => q,
        Err(error) => {
            tracing::error!(%error, "MQTT disabled: cannot start the ingest thread");
            state.failed(error.to_string());
            return;
        }
    };
    let (client, eventloop) = AsyncClient::new(options, 16);
    let mut link = Link::new(eventloop, state.state.clone(), "MQTT broker")
        .meanwhile("HTTP polling covers the gap");
    let filters = Topics::all_hosts(&settings.topic_prefix);
    let prefix = settings.topic_prefix.clone();
    state.started(format!("{}:{}", settings.host, settings.port));
    tracing::info!(broker = %format!("{}:{}", settings.host, settings.port), client_id = %settings.client_id, "MQTT subscribing");
    loop {
        let polled = tokio::select! {
            _ = shutdown.cancelled() => break,
            polled = link.next() => polled,
        };
        match polled {
            Ok(Event::Incoming(Packet::ConnAck(_))) => {
                // rumqttc does not resubscribe by itself; with a clean session nothing is kept.
                let subscribed = client.try_subscribe_many(
                    filters
                        .iter()
                        .map(|f| rumqttc::SubscribeFilter::new(f.clone(), QoS::AtLeastOnce)),
                );
                if let Err(error) = subscribed {
                    tracing::warn!(%error, "cannot queue the subscription");
                }
            }
            Ok(Event::Incoming(Packet::SubAck(_))) => {
                // Subscribed: from now on events arrive here; those published before, while
                // this Pi was not subscribed, are fetched over HTTP.
                reconcile.notify_one();
            }
            Ok(Event::Incoming(Packet::Publish(publish))) => {
                state.message();
                handle(&ingestor, &queue, &prefix, &publish.topic, &publish.payload);
            }
            Ok(_) => {}
            Err(ConnectionError::RequestsDone) => break,
            // Counted and logged by the link, which waits out its backoff on the next call.
            Err(_) => {}
        }
    }
    let _ = client.try_disconnect();
    // What was queued is stored before the history writer's last commit.
    let _ = tokio::task::spawn_blocking(move || queue.close()).await;
    tracing::info!("MQTT consumer stopped");
}

/// One incoming message, by the kind its topic names. Never waits for the history: a
/// snapshot is queued for the ingest thread; status and job events touch only the live state.
pub fn handle(ingestor: &Ingestor, queue: &IngestQueue, prefix: &str, topic: &str, payload: &[u8]) {
    let Some((host, kind)) = Topics::parse(prefix, topic) else {
        return;
    };
    // An empty message clears a retained one (the embedded broker's retained-store guard
    // sends these after an oversize publish): not a sample, not garbage.
    if payload.is_empty() {
        tracing::debug!(%topic, "empty message (a retained message cleared)");
        return;
    }
    if payload.len() > ingestor.max_payload {
        tracing::debug!(%topic, bytes = payload.len(), "message over mqtt.max_payload_size ignored");
        ingestor.store.reject(crate::validate::Rejection::TooLarge);
        return;
    }
    match kind {
        "snapshot" => {
            // Counted in the store, per host (the poller's cue to stay quiet).
            queue.offer(host, payload);
        }
        "status" => {
            if let Ok(text @ ("online" | "offline")) = std::str::from_utf8(payload) {
                let _ = ingestor
                    .store
                    .set_status(host, text, daemon_kit::clock::unix_ms_now());
            }
        }
        "events" => {
            let _ = ingestor.event_payload(payload, Some(host));
        }
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use tokio::sync::mpsc;

    const SNAPSHOT: &str =
        r#"{"v":1,"host":"t","seq":1,"ts":1767225600,"ts_ms":1767225600000,"interval_s":15}"#;

    /// Issue 18 item 9: the MQTT task (the only one polling rumqttc's event loop, so the one
    /// that sends the keepalive pings) hands a snapshot on and returns while a long history
    /// query holds the database; the snapshot is stored once the query is done.
    #[test]
    fn a_long_history_query_never_stalls_the_mqtt_task() {
        let store = crate::store::tests::handle(10);
        let (gaps, _gap_rx) = mpsc::channel(4);
        let ingestor = Ingestor {
            store: store.clone(),
            gaps,
            max_payload: 64 * 1024,
            alerts: None,
            own_host: None,
        };
        let query = store.hold_history_for_test();
        let (done, handled) = std::sync::mpsc::channel();
        let queue = IngestQueue::start(ingestor.clone()).unwrap();
        let task = std::thread::spawn(move || {
            handle(
                &ingestor,
                &queue,
                "sa",
                "sa/t/snapshot",
                SNAPSHOT.as_bytes(),
            );
            let _ = done.send(());
            queue
        });
        // A deadline, not a measurement: the call either returns at once or waits for the
        // lock (forever, here, until the query is released).
        let returned = handled.recv_timeout(Duration::from_secs(10)).is_ok();
        drop(query);
        let queue = task.join().unwrap();
        assert!(
            returned,
            "the MQTT task waited for the history lock held by a query"
        );
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        while store.host("t").unwrap().is_none_or(|h| h.samples == 0) {
            assert!(
                std::time::Instant::now() < deadline,
                "the snapshot was never stored"
            );
            std::thread::sleep(Duration::from_millis(5));
        }
        assert_eq!(store.counters().unwrap().0.stored_mqtt_total, 1);
        queue.close();
    }
}
