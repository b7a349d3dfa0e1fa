//! The MQTT task never waits for the history database (issue 18 item 9). It is the only task
//! polling rumqttc's event loop, so the one that answers the broker's keepalive: a `/series`,
//! `/history` or Grafana query that holds the database while it loads rows must not stall it.
//!
//! Snapshots from MQTT go through a bounded queue ([`QUEUE_SNAPSHOTS`] payloads,
//! [`QUEUE_BYTES`] bytes) to one ingest thread that validates and stores them in arrival
//! order, through the same [`Ingestor`] as every other source (so a gap still reaches the
//! poller's backfill queue). The MQTT task only `try_send`s: a full queue drops the snapshot
//! and counts it (`ingest.queue_full_total` in `/health`); the next live sample then shows the
//! gap and the poller backfills it from the publisher's `/history`. The poller's own samples
//! (HTTP polls, backfill pages) are stored on the blocking pool ([`Ingestor::store_blocking`]),
//! where waiting for a query costs nothing but time, and the poller learns each [`Outcome`].

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc::{self, SyncSender, TrySendError};
use std::sync::Arc;

use crate::ingest::Ingestor;
use crate::store::{Outcome, Source};
use crate::validate::Rejection;

/// Snapshots waiting for the ingest thread at most (a second of 64 hosts sampling every 250 ms
/// and then some; the thread stores one in well under a millisecond when no query holds the
/// database).
pub const QUEUE_SNAPSHOTS: usize = 256;
/// Payload bytes waiting at most (16 payloads of the largest size `mqtt.max_payload_size`
/// allows by default, a few MiB of the unit's `MemoryMax=64M`; a tower's snapshot is ~2 KB).
pub const QUEUE_BYTES: usize = 4 * 1024 * 1024;

struct Item {
    host: String,
    payload: Vec<u8>,
}

/// The sending side, owned by the MQTT task; the ingest thread ends when it is dropped or
/// [`closed`](IngestQueue::close).
pub struct IngestQueue {
    tx: SyncSender<Item>,
    queued_bytes: Arc<AtomicUsize>,
    ingestor: Ingestor,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl IngestQueue {
    /// Starts the ingest thread.
    pub fn start(ingestor: Ingestor) -> std::io::Result<IngestQueue> {
        let (tx, rx) = mpsc::sync_channel::<Item>(QUEUE_SNAPSHOTS);
        let queued_bytes = Arc::new(AtomicUsize::new(0));
        let thread = {
            let ingestor = ingestor.clone();
            let queued_bytes = Arc::clone(&queued_bytes);
            std::thread::Builder::new()
                .name("ingest".into())
                .spawn(move || {
                    while let Ok(item) = rx.recv() {
                        let _ = ingestor.snapshot_payload(
                            &item.payload,
                            Some(&item.host),
                            Source::Mqtt,
                        );
                        queued_bytes.fetch_sub(item.payload.len(), Ordering::Relaxed);
                    }
                })?
        };
        Ok(IngestQueue {
            tx,
            queued_bytes,
            ingestor,
            thread: Some(thread),
        })
    }

    /// Queues a snapshot payload for `host` (the topic's); never waits. `false`: the queue is
    /// full, the snapshot dropped and counted.
    pub fn offer(&self, host: &str, payload: &[u8]) -> bool {
        let len = payload.len();
        let before = self.queued_bytes.fetch_add(len, Ordering::Relaxed);
        let queued = before.saturating_add(len) <= QUEUE_BYTES
            && match self.tx.try_send(Item {
                host: host.to_owned(),
                payload: payload.to_vec(),
            }) {
                Ok(()) => true,
                Err(TrySendError::Full(_) | TrySendError::Disconnected(_)) => false,
            };
        if !queued {
            self.queued_bytes.fetch_sub(len, Ordering::Relaxed);
            self.ingestor.store.count_queue_full();
            tracing::debug!(%host, "ingest queue full: snapshot dropped (the next one's gap backfills it)");
        }
        queued
    }

    /// Stops taking snapshots and waits until the thread has stored what was queued.
    /// Blocking: call it from `spawn_blocking`.
    pub fn close(mut self) {
        let thread = self.thread.take();
        drop(self);
        if let Some(thread) = thread {
            if thread.join().is_err() {
                tracing::error!("the ingest thread panicked");
            }
        }
    }
}

impl Ingestor {
    /// Validates and stores a snapshot payload on the blocking pool: for the poller, which
    /// may wait for a long query but must not hold an async worker while it does.
    pub async fn store_blocking(
        &self,
        payload: Vec<u8>,
        topic_host: Option<String>,
        source: Source,
    ) -> Result<Outcome, Rejection> {
        let me = self.clone();
        tokio::task::spawn_blocking(move || {
            me.snapshot_payload(&payload, topic_host.as_deref(), source)
        })
        .await
        .unwrap_or(Ok(Outcome::Failed))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A query holding the history: the queue takes what its byte bound allows (the payload
    /// being stored counts until it is stored), drops and counts the rest, and the thread
    /// works through what it took once the query is done.
    #[test]
    fn a_full_queue_drops_and_counts_never_waits() {
        let store = crate::store::tests::handle(200);
        let (gaps, _gap_rx) = tokio::sync::mpsc::channel(4);
        let ingestor = Ingestor {
            store: store.clone(),
            gaps,
            max_payload: 128 * 1024,
            alerts: None,
            own_host: None,
        };
        let queue = IngestQueue::start(ingestor).unwrap();
        let query = store.hold_history_for_test();
        // Valid snapshots of 64 KiB each (unknown fields are ignored), one host each.
        let payload = |i: usize| {
            let head = format!(
                r#"{{"v":1,"host":"h{i}","seq":1,"ts":1767225600,"ts_ms":1767225600000,"interval_s":15,"pad":""#
            );
            let mut p = head.into_bytes();
            p.resize(64 * 1024 - 2, b'x');
            p.extend_from_slice(b"\"}");
            p
        };
        let taken = (0..130)
            .filter(|&i| queue.offer(&format!("h{i}"), &payload(i)))
            .count();
        assert_eq!(taken, QUEUE_BYTES / (64 * 1024));
        assert_eq!(taken, 64);
        assert_eq!(store.counters().unwrap().0.queue_full_total, 66);
        drop(query);
        queue.close();
        let (ingest, _) = store.counters().unwrap();
        assert_eq!(ingest.rejected_total, 0);
        assert_eq!(
            ingest.stored_mqtt_total, 64,
            "every queued snapshot was stored, once the query was done"
        );
        assert_eq!(ingest.queue_full_total, 66);
    }
}
