//! The one path every payload takes: validate, store (history and live state), and ask for a
//! backfill when a gap shows. Shared by the MQTT consumer and the HTTP poller.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use broker::Snapshot;
use tokio::sync::mpsc;
use tokio::time::Instant;

use crate::store::{Gap, Outcome, SharedStore, Source};
use crate::validate::{self, Rejection};

#[derive(Debug, Clone)]
pub struct Ingestor {
    pub store: SharedStore,
    /// Wakes the backfill task when a gap shows; never waited on. The hole itself is recorded
    /// in the history with the sample that revealed it, so a full queue, a failed backfill
    /// or a restart loses nothing: the poller retries due holes from there.
    pub gaps: mpsc::Sender<Gap>,
    pub max_payload: usize,
    /// The alert engine's input (`None`: alerts off); never waited on.
    pub alerts: Option<crate::alerts::Feed>,
    /// The host the Pi stores its own machine under (`[self]` on), which no other source may
    /// write: a publisher naming it is refused ([`Rejection::OwnHost`]), said once at `warn`.
    pub own_host: Option<OwnHost>,
}

/// The `[self]` host, and whether a publisher naming it was said already.
#[derive(Debug, Clone)]
pub struct OwnHost {
    pub host: Arc<str>,
    said: Arc<AtomicBool>,
}

impl OwnHost {
    pub fn new(host: &str) -> Self {
        Self {
            host: host.into(),
            said: Arc::default(),
        }
    }
}

pub use daemon_kit::clock::unix_ms_now;

impl Ingestor {
    /// Validates and stores a snapshot payload.
    pub fn snapshot_payload(
        &self,
        payload: &[u8],
        topic_host: Option<&str>,
        source: Source,
    ) -> Result<Outcome, Rejection> {
        match validate::snapshot(payload, topic_host, self.max_payload) {
            Ok(s) if source != Source::Local && self.names_own_host(&s.host) => {
                self.store.reject(Rejection::OwnHost);
                Err(Rejection::OwnHost)
            }
            Ok(s) => Ok(self.snapshot(s, source)),
            Err(why) => {
                self.store.reject(why);
                tracing::debug!(reason = %why, ?topic_host, "snapshot rejected");
                Err(why)
            }
        }
    }

    /// Whether `host` is the `[self]` host (said once: the fix is the user's).
    fn names_own_host(&self, host: &str) -> bool {
        let Some(own) = self.own_host.as_ref().filter(|o| *o.host == *host) else {
            return false;
        };
        if !own.said.swap(true, Ordering::Relaxed) {
            tracing::warn!(
                %host,
                "a publisher names itself as this Pi's own host ([self]): its snapshots are refused \
                 (counted as rejected reason=own_host); give that publisher another `host`, or set \
                 `self.host`, or turn `[self]` off"
            );
        }
        true
    }

    /// Stores an already validated snapshot.
    pub fn snapshot(&self, snapshot: Snapshot, source: Source) -> Outcome {
        let host = snapshot.host.clone();
        let outcome = self
            .store
            .ingest(snapshot, source, Instant::now(), unix_ms_now());
        if let Outcome::Stored { gap: Some(gap), .. } = &outcome {
            tracing::info!(host = %gap.host, after = gap.after_seq, before = gap.before_seq, "gap in seq; backfilling");
            let _ = self.gaps.try_send(gap.clone());
        }
        if let (Outcome::Stored { .. }, Some(feed), false) =
            (&outcome, &self.alerts, source == Source::Backfill)
        {
            self.feed_sample(feed, host.as_str());
        }
        outcome
    }

    /// Validates and stores a job event payload.
    pub fn event_payload(
        &self,
        payload: &[u8],
        topic_host: Option<&str>,
    ) -> Result<bool, Rejection> {
        let parsed = validate::event(payload, topic_host, self.max_payload)
            .and_then(|e| validate::event_time(&e, unix_ms_now()).map(|()| e));
        match parsed {
            Ok(event) => {
                let end = match &event {
                    broker::JobEvent::JobEnd(end) => Some(end.clone()),
                    broker::JobEvent::JobStart(_) => None,
                };
                let Ok(added) = self.store.add_event(event) else {
                    return Ok(false);
                };
                if let (true, Some(end), Some(feed)) = (added, end, &self.alerts) {
                    feed.offer(crate::alerts::Input::JobEnd(end));
                }
                Ok(added)
            }
            Err(why) => {
                self.store.reject(why);
                Err(why)
            }
        }
    }
}

impl Ingestor {
    /// Hands the host's newest sample (and the one before, for rates) to the alert engine.
    fn feed_sample(&self, feed: &crate::alerts::Feed, host: &str) {
        if let Ok(Some(pair)) = self.store.latest(host) {
            feed.offer(crate::alerts::Input::Sample {
                latest: pair.latest,
                rates: pair.rates,
                max_age: pair.max_age,
            });
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An ingestor on `store` with alerts off, and its gap channel's receiver (keep it).
    pub(super) fn ingestor(
        store: &SharedStore,
        max_payload: usize,
        own_host: Option<OwnHost>,
    ) -> (Ingestor, mpsc::Receiver<Gap>) {
        let (gaps, rx) = mpsc::channel(8);
        let ingestor = Ingestor {
            store: store.clone(),
            gaps,
            max_payload,
            alerts: None,
            own_host,
        };
        (ingestor, rx)
    }

    /// Issue 9 A6: a panic while the store was locked must not turn every later snapshot
    /// into a silent "duplicate" with the process still up.
    #[tokio::test]
    async fn a_poisoned_store_stops_the_daemon_instead_of_dropping_samples() {
        let store = crate::store::tests::handle(10);
        let (ingestor, _rx) = ingestor(&store, 4096, None);
        store.poison_for_test();
        let snapshot = Snapshot {
            host: "t".into(),
            seq: 1,
            ts_ms: 1_000,
            ..Snapshot::default()
        };
        assert_eq!(ingestor.snapshot(snapshot, Source::Mqtt), Outcome::Failed);
        assert!(
            store.failed().is_cancelled(),
            "run() is told to stop with an error"
        );
    }

    /// The `[self]` host is written by `[self]` alone: live, polled and backfilled snapshots
    /// naming it are refused and counted; another host's pass.
    #[tokio::test]
    async fn only_the_pi_itself_writes_its_own_host() {
        let store = crate::store::tests::handle(10);
        let (ingestor, _rx) = ingestor(&store, 65536, Some(OwnHost::new("pi")));
        let payload = |host: &str, seq: u64| {
            serde_json::to_vec(&Snapshot {
                host: host.into(),
                seq,
                ts_ms: unix_ms_now(),
                ..Snapshot::default()
            })
            .unwrap()
        };
        let stored = |r: Result<Outcome, Rejection>| matches!(r, Ok(Outcome::Stored { .. }));
        assert!(stored(ingestor.snapshot_payload(
            &payload("pi", 1),
            Some("pi"),
            Source::Local
        )));
        for (seq, source) in [(7, Source::Mqtt), (8, Source::Http), (9, Source::Backfill)] {
            assert_eq!(
                ingestor.snapshot_payload(&payload("pi", seq), Some("pi"), source),
                Err(Rejection::OwnHost)
            );
        }
        assert!(stored(ingestor.snapshot_payload(
            &payload("tower", 1),
            Some("tower"),
            Source::Mqtt
        )));
        let (stats, _) = store.counters().unwrap();
        assert_eq!(stats.rejected[&Rejection::OwnHost], 3);
        assert_eq!((stats.stored_local_total, stats.stored_mqtt_total), (1, 1));
        assert_eq!(store.latest("pi").unwrap().unwrap().latest.seq, 1);
    }
}

#[cfg(test)]
mod event_time_tests {
    use super::*;

    /// Issue 18 A11: events dated far from the Pi's clock are rejected (1000 dated 2200 used
    /// to push every real event out).
    #[tokio::test]
    async fn job_events_outside_a_window_around_the_clock_are_rejected() {
        let store = crate::store::tests::handle(10);
        let (ingestor, _rx) = super::tests::ingestor(&store, 65536, None);
        let now = unix_ms_now();
        let end = |run: &str, ts: i64| {
            format!(
                r#"{{"type":"job_end","v":1,"run_id":"{run}","name":"b","host":"tower","start_ts_ms":{ts},"end_ts_ms":{ts},"duration_s":0}}"#
            )
        };
        for i in 0..1000 {
            let spoof = end(&format!("s{i}"), 7_200_000_000_000);
            assert_eq!(
                ingestor.event_payload(spoof.as_bytes(), None),
                Err(Rejection::BadTime)
            );
        }
        let ancient = end("old", now - 500 * 86_400_000);
        assert_eq!(
            ingestor.event_payload(ancient.as_bytes(), None),
            Err(Rejection::BadTime)
        );
        assert_eq!(
            ingestor.event_payload(end("real", now).as_bytes(), None),
            Ok(true)
        );
        assert_eq!(store.events(|_| true).unwrap().len(), 1);
        let (stats, _) = store.counters().unwrap();
        assert_eq!(stats.rejected[&Rejection::BadTime], 1001);
    }
}
