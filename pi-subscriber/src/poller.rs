//! HTTP: polling the publishers' `/latest` while MQTT is silent (or off), backfilling gaps
//! from their `/history`, and reconciling job events from their `/events` at start-up and
//! after every MQTT (re)subscription. The poller does not poll while MQTT delivers, so a
//! healthy pipeline costs one `/events` request per reconnect and nothing else.

use std::collections::HashMap;
use std::sync::Arc;

use serde::Deserialize;
use serde_json::value::RawValue;
use tokio::sync::{mpsc, Notify};
use tokio::time::{Instant, MissedTickBehavior};
use tokio_util::sync::CancellationToken;

use crate::config::PollSettings;
use crate::ingest::Ingestor;
use crate::mqtt::SharedMqtt;
use crate::store::{Gap, Outcome, Source};

/// Newest job events asked for (and at most taken) from one publisher's `/events`.
pub const EVENTS_PER_FETCH: usize = 100;

/// A publisher's base URL from its `/latest` URL: `http://h:9000/latest` → `http://h:9000`.
pub fn base_url(endpoint: &str) -> String {
    endpoint
        .trim_end_matches('/')
        .strip_suffix("/latest")
        .unwrap_or(endpoint.trim_end_matches('/'))
        .to_owned()
}

pub struct Poller {
    pub settings: PollSettings,
    pub mqtt_enabled: bool,
    pub ingestor: Ingestor,
    pub mqtt: SharedMqtt,
    pub client: reqwest::Client,
    /// Which publisher serves which host, learned from their answers.
    pub bases: HashMap<String, String>,
    /// The host each `/latest` endpoint answered for, to poll only the hosts MQTT is quiet on.
    pub endpoint_hosts: HashMap<String, String>,
    pub started: Instant,
    /// Snapshots fetched for one gap at most (`history.capacity`: more would not be kept).
    pub max_backfill: u64,
    /// Notified by the MQTT task on every SubAck: fetch `/events` from every endpoint.
    pub reconcile: Arc<Notify>,
    /// A host whose holes no publisher answers is warned about once per [`WARN_EVERY_MS`].
    pub failing: crate::throttle::Throttle,
}

/// How often a host whose backfills keep failing is warned about (the retries go on, at
/// debug level, every 30 s at most per hole).
pub const WARN_EVERY_MS: i64 = 300_000;

#[path = "poller_backfill.rs"]
mod backfill;

impl Poller {
    pub fn new(
        settings: PollSettings,
        mqtt_enabled: bool,
        ingestor: Ingestor,
        mqtt: SharedMqtt,
    ) -> reqwest::Result<Self> {
        let client = reqwest::Client::builder()
            .timeout(settings.timeout)
            .connect_timeout(settings.timeout)
            .build()?;
        Ok(Self {
            settings,
            mqtt_enabled,
            ingestor,
            mqtt,
            client,
            bases: HashMap::new(),
            endpoint_hosts: HashMap::new(),
            started: Instant::now(),
            max_backfill: 5760,
            reconcile: Arc::new(Notify::new()),
            failing: crate::throttle::Throttle::new(WARN_EVERY_MS),
        })
    }

    /// Poll this endpoint now? Yes when MQTT is off; when MQTT has delivered no snapshot of
    /// the endpoint's host for `fallback_after` (counting from start-up when it never has);
    /// and for an endpoint not heard from yet (to learn which host it serves).
    fn should_poll(&self, endpoint: &str) -> bool {
        if !self.mqtt_enabled {
            return true;
        }
        let Some(host) = self.endpoint_hosts.get(endpoint) else {
            return true;
        };
        let last = self
            .ingestor
            .store
            .host(host)
            .ok()
            .flatten()
            .and_then(|h| h.last_mqtt);
        last.unwrap_or(self.started).elapsed() >= self.settings.fallback_after
    }

    pub async fn run(mut self, mut gaps: mpsc::Receiver<Gap>, shutdown: CancellationToken) {
        // Job events recorded while this Pi was down: MQTT does not replay them.
        for endpoint in self.settings.endpoints.clone() {
            let _ = self.poll_events(&base_url(&endpoint)).await;
        }
        let mut ticker = tokio::time::interval(self.settings.interval);
        ticker.set_missed_tick_behavior(MissedTickBehavior::Delay);
        let mut polling: HashMap<String, bool> = HashMap::new();
        // Holes are retried on their own schedule (recorded in the history, with backoff);
        // this only looks for due ones, and only while any is open.
        let mut holes = tokio::time::interval(std::time::Duration::from_secs(1));
        holes.set_missed_tick_behavior(MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = shutdown.cancelled() => break,
                _ = holes.tick() => {
                    let open = self.ingestor.store.counters().map(|(_, h)| h.holes.holes_open);
                    if open.is_ok_and(|n| n > 0) {
                        self.fill_holes().await;
                    }
                }
                _ = ticker.tick() => {
                    for endpoint in self.settings.endpoints.clone() {
                        let poll = self.should_poll(&endpoint);
                        if polling.insert(endpoint.clone(), poll) != Some(poll) && self.endpoint_hosts.contains_key(&endpoint) {
                            tracing::info!(%endpoint, polling = poll, "HTTP fallback polling {}", if poll { "started: MQTT is silent or off for this host" } else { "stopped: MQTT delivers" });
                        }
                        if poll {
                            self.poll_one(&endpoint).await;
                        }
                    }
                }
                Some(_) = gaps.recv() => self.fill_holes().await,
                _ = self.reconcile.notified() => self.reconcile_events().await,
            }
        }
    }

    /// GETs `url`, reading at most `limit` bytes of body (whatever Content-Length says).
    async fn get(&self, url: &str, limit: usize) -> Result<Vec<u8>, String> {
        let mut response = self
            .client
            .get(url)
            .send()
            .await
            .map_err(|e| e.to_string())?;
        if !response.status().is_success() {
            return Err(format!("{url}: HTTP {}", response.status()));
        }
        let mut body = Vec::new();
        while let Some(chunk) = response.chunk().await.map_err(|e| e.to_string())? {
            if body.len() + chunk.len() > limit {
                return Err(format!("{url}: response larger than {limit} bytes"));
            }
            body.extend_from_slice(&chunk);
        }
        Ok(body)
    }

    /// A `/history` page or `/events` list: many snapshots, bounded all the same (a page of
    /// 1000 tower-sized snapshots is ~4 MB; the Pi's unit allows 64 MB in all).
    fn page_limit(&self) -> usize {
        self.ingestor
            .max_payload
            .saturating_mul(8)
            .max(16 * 1024 * 1024)
    }

    async fn poll_one(&mut self, endpoint: &str) {
        // One byte over the payload limit lets validation count it as too large.
        match self.get(endpoint, self.ingestor.max_payload + 1).await {
            Ok(body) => match self
                .ingestor
                .store_blocking(body.clone(), None, Source::Http)
                .await
            {
                Ok(outcome) => {
                    if let Some(host) = host_of(&body) {
                        self.bases.insert(host.clone(), base_url(endpoint));
                        self.endpoint_hosts.insert(endpoint.to_owned(), host);
                    }
                    if matches!(outcome, Outcome::Stored { .. }) {
                        tracing::debug!(%endpoint, "polled a new snapshot");
                    }
                }
                Err(why) => tracing::warn!(%endpoint, reason = %why, "polled payload rejected"),
            },
            Err(error) => tracing::debug!(%endpoint, %error, "poll failed"),
        }
        let _ = self.poll_events(&base_url(endpoint)).await;
    }

    /// After an MQTT (re)subscription: the events published while this Pi was not
    /// subscribed, from every endpoint.
    async fn reconcile_events(&self) {
        let mut added = 0;
        for endpoint in &self.settings.endpoints {
            added += self.poll_events(&base_url(endpoint)).await;
        }
        self.mqtt.reconciled();
        tracing::info!(
            added,
            "job events reconciled from /events after an MQTT subscription"
        );
    }

    /// Job events, so they are not missed while MQTT is down: the newest
    /// [`EVENTS_PER_FETCH`] (a publisher that sends more has the rest ignored), each
    /// validated; returns how many were new.
    async fn poll_events(&self, base: &str) -> usize {
        let url = format!("{base}/events?limit={EVENTS_PER_FETCH}");
        let body = match self.get(&url, self.page_limit()).await {
            Ok(body) => body,
            Err(error) => {
                tracing::debug!(%url, %error, "events fetch failed");
                return 0;
            }
        };
        let Ok(events) = serde_json::from_slice::<Vec<Box<RawValue>>>(&body) else {
            tracing::warn!(%url, "events answer is not a JSON list");
            return 0;
        };
        let newest = &events[events.len().saturating_sub(EVENTS_PER_FETCH)..];
        newest
            .iter()
            .filter(|e| {
                matches!(
                    self.ingestor.event_payload(e.get().as_bytes(), None),
                    Ok(true)
                )
            })
            .count()
    }
}

fn host_of(body: &[u8]) -> Option<String> {
    #[derive(Deserialize)]
    struct H {
        host: String,
    }
    serde_json::from_slice::<H>(body).ok().map(|h| h.host)
}

fn seq_of(json: &str) -> Option<u64> {
    #[derive(Deserialize)]
    struct S {
        seq: u64,
    }
    serde_json::from_str::<S>(json).ok().map(|s| s.seq)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base_urls() {
        assert_eq!(
            base_url("http://10.8.0.1:9000/latest"),
            "http://10.8.0.1:9000"
        );
        assert_eq!(base_url("http://h:9000/latest/"), "http://h:9000");
        assert_eq!(base_url("http://h:9000"), "http://h:9000");
        assert_eq!(
            base_url("http://h:9000/proxy/tower/latest"),
            "http://h:9000/proxy/tower"
        );
    }

    #[test]
    fn seq_and_host_are_read_without_the_whole_snapshot() {
        assert_eq!(seq_of(r#"{"seq":7,"cpu":{}}"#), Some(7));
        assert_eq!(host_of(br#"{"host":"tower"}"#).as_deref(), Some("tower"));
        assert_eq!(seq_of("nope"), None);
    }
}
