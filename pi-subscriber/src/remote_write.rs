//! Remote write on the Pi: each `[[remote_write]]` receiver is fed every registry metric of
//! every sample, raw counters as counters and gauges as gauges, under the names and labels
//! `/prometheus` exposes (plus `job="server-analytics"`), from the history itself: the raw
//! tier is the queue ([`crate::tsdb`]'s `rw.rs`), a cursor per remote and host moves only past
//! what the receiver took, so an outage of the receiver, the network or the Pi loses nothing
//! the raw tier still holds (48 h by default). Sending (protobuf, snappy, retries, the
//! shipper task) is the shared `remote-write` crate.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use remote_write::shipper::Settings as ShipperSettings;
use remote_write::{Batch, Client, EndpointError, Queue, RemoteStats, Shipper, ShipperHandle};

use crate::config::remote_write::RemoteWriteSettings;
use crate::registry::{SentSeries, Value, METRICS};
use crate::store::SharedStore;
use crate::tsdb::{RwMark, RwSample};

/// Stored samples read per batch at most (each holds ~60 series of a tower-sized host).
const ROWS_PER_SAMPLE_BUDGET: usize = 40;

/// The running remotes (empty: none configured).
#[derive(Debug, Clone, Default)]
pub struct RemoteWrites(Arc<Vec<ShipperHandle>>);

impl RemoteWrites {
    pub fn stats(&self) -> Vec<RemoteStats> {
        self.0.iter().map(ShipperHandle::stats).collect()
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

/// One registry value as the series it is sent as (see [`crate::registry::Metric::series`]).
pub fn series(host: &str, metric: usize, label: &str, value: Value) -> Option<SentSeries> {
    METRICS.get(metric)?.series(host, label, value)
}

/// The queue of one remote over the store.
struct PiQueue {
    store: SharedStore,
    remote: String,
    hosts: Option<HashSet<String>>,
    metrics: Option<HashSet<usize>>,
    hold_ms: i64,
}

impl PiQueue {
    fn wanted(&self) -> impl Fn(&str) -> bool + '_ {
        move |h: &str| self.hosts.as_ref().is_none_or(|s| s.contains(h))
    }

    fn batch(&self, samples: Vec<RwSample>) -> Batch {
        let mut b = Batch::new();
        for s in samples {
            for (m, label, value) in s.values {
                if self.metrics.as_ref().is_some_and(|w| !w.contains(&m)) {
                    continue;
                }
                if let Some((name, labels, v)) = series(&s.host, m, &label, value) {
                    let labels: Vec<(&str, &str)> =
                        labels.iter().map(|(k, v)| (*k, v.as_str())).collect();
                    b.push(&name, &labels, s.ts_ms, v);
                }
            }
        }
        b
    }
}

impl Queue for PiQueue {
    type Mark = RwMark;

    fn next(&mut self, max: usize) -> Result<Option<(Batch, RwMark)>, String> {
        let rows = (max / ROWS_PER_SAMPLE_BUDGET).max(1);
        let now = crate::clock::unix_ms_now();
        let got = self
            .store
            .rw_next(&self.remote, self.wanted(), rows, self.hold_ms, now)
            .map_err(|e| e.to_string())?;
        Ok(got.map(|(samples, mark)| (self.batch(samples), mark)))
    }

    fn ack(&mut self, mark: RwMark) -> Result<(), String> {
        self.store
            .rw_ack(&self.remote, mark)
            .map_err(|e| e.to_string())
    }

    fn backlog(&mut self) -> Result<(u64, f64), String> {
        self.store
            .rw_backlog(&self.remote, self.wanted())
            .map_err(|e| e.to_string())
    }
}

/// Starts a shipper per remote (registering each with the history first: blocking, call it
/// from `spawn_blocking` or before the runtime is busy).
pub fn start(
    remotes: &[RemoteWriteSettings],
    store: &SharedStore,
) -> Result<RemoteWrites, StartError> {
    let mut handles = Vec::new();
    for r in remotes {
        let endpoint = r.endpoint();
        let client = Client::new(&endpoint)?;
        store
            .rw_register(&endpoint.name)
            .map_err(|e| StartError::History(endpoint.name.clone(), e.to_string()))?;
        let queue = PiQueue {
            store: store.clone(),
            remote: endpoint.name.clone(),
            hosts: (!r.hosts.is_empty()).then(|| r.hosts.iter().cloned().collect()),
            metrics: (!r.metrics.is_empty()).then(|| {
                r.metrics
                    .iter()
                    .filter_map(|m| crate::registry::index_of(m))
                    .collect()
            }),
            hold_ms: i64::try_from(r.hold.as_millis()).unwrap_or(i64::MAX),
        };
        let settings = ShipperSettings {
            max_samples: r.max_samples_per_send,
            min_backoff: r.min_backoff,
            max_backoff: r.max_backoff,
            idle: Duration::from_secs(1),
        };
        tracing::info!(remote = %endpoint.name, url = %remote_write::shipper::redacted(&endpoint.url), "remote write: sending every sample");
        handles.push(Shipper::spawn(client, queue, settings));
    }
    Ok(RemoteWrites(Arc::new(handles)))
}

#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error(transparent)]
    Endpoint(#[from] EndpointError),
    #[error("remote_write {0}: cannot register with the history: {1}")]
    History(String, String),
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use std::collections::BTreeSet;
    use std::path::Path;

    use broker::Snapshot;
    use collectors::{network, Collectors, Roots};

    use super::*;
    use crate::store::Source;

    /// The tower fixture sampled twice (t0, then t1 for the counters' second value).
    fn tower(seq: u64) -> Snapshot {
        let base = Path::new(env!("CARGO_MANIFEST_DIR")).join("../publisher/tests/fixtures/tower");
        let mut c = Collectors::new(Roots::under(&base), network::default_filter());
        let reading = c.sample();
        reading.into_snapshot(Snapshot {
            v: 1,
            host: "tower".into(),
            seq,
            ts_ms: 1_796_000_000_000 + 15_000 * seq as i64,
            boot_id: Some("b".into()),
            ..Snapshot::default()
        })
    }

    /// (name, label names) of each series of a scrape, for the registry's families.
    fn scraped(text: &str) -> BTreeSet<(String, Vec<String>)> {
        text.lines()
            .filter(|l| !l.starts_with('#') && !l.is_empty())
            .filter_map(|l| {
                let (name, rest) = l.split_once('{')?;
                let labels: Vec<String> = rest
                    .split("\",")
                    .filter_map(|kv| Some(kv.split_once('=')?.0.trim().to_owned()))
                    .collect();
                Some((name.to_owned(), labels))
            })
            .collect()
    }

    #[test]
    fn every_series_sent_is_named_and_labelled_as_the_scrape_shows_it() {
        let store = SharedStore::in_memory(4).unwrap();
        let s = tower(1);
        store.ingest(
            s.clone(),
            Source::Mqtt,
            tokio::time::Instant::now(),
            s.ts_ms,
        );
        let scrape = crate::prometheus::scrape(&crate::prometheus::registry(store, None)).unwrap();
        let exposed = scraped(&scrape);
        let mut sent = BTreeSet::new();
        for (m, metric) in METRICS.iter().enumerate() {
            for (label, value) in metric.values(&s) {
                if let Some((name, labels, _)) = series("tower", m, &label, value) {
                    let mut names: Vec<String> = labels
                        .iter()
                        .map(|(k, _)| (*k).to_owned())
                        .filter(|k| k != "job")
                        .collect();
                    names.sort();
                    sent.insert((name, names));
                }
            }
        }
        assert!(sent.len() >= 12, "{} families", sent.len());
        for (name, labels) in &sent {
            let found = exposed.iter().any(|(n, l)| {
                let mut l = l.clone();
                l.sort();
                n == name && &l == labels
            });
            assert!(found, "{name} {labels:?} is not on /prometheus:\n{scrape}");
        }
        // A counter is sent raw, in the family's base unit (sectors as bytes).
        let disk = METRICS
            .iter()
            .position(|m| m.name == "disk_read_bytes_rate")
            .unwrap();
        let (_, value) = METRICS[disk]
            .values(&s)
            .into_iter()
            .find(|(l, _)| l == "sda")
            .unwrap();
        let (name, _, v) = series("tower", disk, "sda", value).unwrap();
        assert_eq!(name, "server_analytics_disk_read_bytes_total");
        let sectors = s.disk.as_ref().unwrap().devices["sda"].read_sectors;
        assert_eq!(v, (sectors * 512) as f64);
    }
}
