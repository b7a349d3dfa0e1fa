//! `/prometheus`: OpenMetrics for a real Prometheus, with `prometheus-client`.
//!
//! node_exporter-style names under `server_analytics_`, base units (bytes, seconds, ratios),
//! a `host` label on everything; disk and network are the raw cumulative counters (`_total`)
//! so that `rate()` works and survives a scrape missed; the rest are gauges. `up` tells
//! whether a host is fresh. Encoded on each scrape from the store (a [`Collector`]), so
//! nothing is kept twice.
//!
//! prometheus-client writes label values verbatim, so every one goes through
//! [`escape_label_value`]: a device named `sd"a` or `x\ny` stays one label value and cannot end
//! the line or forge a series.

mod alerts;
mod escape;
mod fs;
mod remote;

use std::sync::Arc;

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric};
use prometheus_client::metrics::counter::ConstCounter;
use prometheus_client::metrics::gauge::ConstGauge;
use prometheus_client::metrics::MetricType;
use prometheus_client::registry::{Registry, Unit};
use tokio::time::Instant;

use crate::registry::{Kind, PromUnit, Scale, Value, METRICS};
use crate::store::SharedStore;
pub use escape::escape_label_value;
use escape::Escaped;

/// The OpenMetrics content type Prometheus negotiates for.
pub const CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

#[derive(Debug)]
struct StoreCollector {
    store: SharedStore,
}

/// One metric family: its descriptor, then one sample per label set.
pub(crate) fn family<M: EncodeMetric>(
    encoder: &mut DescriptorEncoder,
    name: &str,
    help: &str,
    unit: Option<&Unit>,
    kind: MetricType,
    samples: Vec<(Vec<(&str, String)>, M)>,
) -> Result<(), std::fmt::Error> {
    if samples.is_empty() {
        return Ok(());
    }
    let mut metric = encoder.encode_descriptor(name, help, unit, kind)?;
    for (labels, value) in samples {
        let labels: Vec<(&str, Escaped)> = labels
            .iter()
            .map(|(k, v)| (*k, Escaped(v.as_str())))
            .collect();
        value.encode(metric.encode_family(&labels)?)?;
    }
    Ok(())
}

type Gauges<'a> = Vec<(Vec<(&'a str, String)>, ConstGauge<f64>)>;
type Counters<'a> = Vec<(Vec<(&'a str, String)>, ConstCounter<u64>)>;
/// Counters converted into a base unit (milliseconds into seconds).
type Scaled<'a> = Vec<(Vec<(&'a str, String)>, ConstCounter<f64>)>;

/// The OpenMetrics unit of a registry family.
fn unit(u: PromUnit) -> Unit {
    match u {
        PromUnit::Bytes => Unit::Bytes,
        PromUnit::Seconds => Unit::Seconds,
        PromUnit::Celsius => Unit::Celsius,
        PromUnit::Ratio => Unit::Other("ratio".into()),
    }
}

impl StoreCollector {
    /// Every registry metric with a Prometheus family, over every host's newest snapshot: one
    /// loop, no family written by hand.
    fn registry_families(
        &self,
        e: &mut DescriptorEncoder,
        hosts: &[(String, crate::store::HostState)],
    ) -> Result<(), std::fmt::Error> {
        for metric in METRICS {
            let Some(p) = metric.prom else { continue };
            let mut gauges: Gauges = Vec::new();
            let mut counters: Counters = Vec::new();
            let mut scaled: Scaled = Vec::new();
            for (host, hs) in hosts {
                let Some(s) = &hs.latest else { continue };
                for (label, value) in metric.values(s) {
                    let labels = match (p.per_device, label.is_empty()) {
                        (None, true) => vec![("host", host.clone())],
                        (Some(name), false) => vec![("host", host.clone()), (name, label)],
                        _ => continue,
                    };
                    match value {
                        Value::Gauge(g) => gauges.push((labels, ConstGauge::new(p.scale.apply(g)))),
                        // Exact integers where the counter is already in base units.
                        Value::Counter(c) if p.scale == Scale::Same => {
                            counters.push((labels, ConstCounter::new(c)))
                        }
                        Value::Counter(c) => {
                            scaled.push((labels, ConstCounter::new(p.scale.apply(c as f64))))
                        }
                    }
                }
            }
            let u = p.unit.map(unit);
            match metric.kind {
                Kind::Gauge => family(e, p.name, p.help, u.as_ref(), MetricType::Gauge, gauges)?,
                Kind::Counter(_) if p.scale == Scale::Same => {
                    family(e, p.name, p.help, u.as_ref(), MetricType::Counter, counters)?
                }
                Kind::Counter(_) => {
                    family(e, p.name, p.help, u.as_ref(), MetricType::Counter, scaled)?
                }
            }
        }
        Ok(())
    }
}

impl Collector for StoreCollector {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let (Ok(hosts), Ok((stats, _))) = (self.store.hosts(), self.store.counters()) else {
            return Ok(());
        };
        let now = Instant::now();
        let mut up: Gauges = Vec::new();
        let mut last_seen: Gauges = Vec::new();
        for (host, hs) in &hosts {
            let h = || vec![("host", host.clone())];
            // The one staleness judgment.
            let fresh = !hs.is_stale(now);
            up.push((h(), ConstGauge::new(if fresh { 1.0 } else { 0.0 })));
            if let Some(ms) = hs.last_received_ms {
                last_seen.push((h(), ConstGauge::new(ms as f64 / 1000.0)));
            }
        }
        let e = &mut encoder;
        family(
            e,
            "up",
            "1 when the host sent a snapshot within its max_age (Pi clock), else 0",
            None,
            MetricType::Gauge,
            up,
        )?;
        family(
            e,
            "last_seen_timestamp",
            "When the newest snapshot arrived, Pi clock",
            Some(&Unit::Seconds),
            MetricType::Gauge,
            last_seen,
        )?;
        self.registry_families(e, &hosts)?;
        let total = |v: u64| vec![(Vec::new(), ConstCounter::new(v))];
        family(
            e,
            "ingest_stored",
            "Snapshots stored, all sources",
            None,
            MetricType::Counter,
            total(
                stats.stored_mqtt_total
                    + stats.stored_http_total
                    + stats.stored_backfill_total
                    + stats.stored_local_total,
            ),
        )?;
        family(
            e,
            "ingest_duplicates",
            "Snapshots received twice",
            None,
            MetricType::Counter,
            total(stats.duplicates_total),
        )?;
        let rejected: Counters = stats
            .rejected
            .iter()
            .map(|(reason, n)| {
                let reason = serde_json::to_value(reason)
                    .ok()
                    .and_then(|v| v.as_str().map(str::to_owned))
                    .unwrap_or_default();
                (vec![("reason", reason)], ConstCounter::new(*n))
            })
            .collect();
        family(
            e,
            "ingest_rejected",
            "Payloads rejected, by reason",
            None,
            MetricType::Counter,
            rejected,
        )?;
        Ok(())
    }
}

use crate::registry::PREFIX;

/// The registry behind `/prometheus`.
pub fn registry(store: SharedStore, alerts: Option<crate::alerts::AlertsHandle>) -> Arc<Registry> {
    registry_with(store, alerts, crate::remote_write::RemoteWrites::default())
}

/// The registry behind `/prometheus`, with the remote write receivers' counters.
pub fn registry_with(
    store: SharedStore,
    alerts: Option<crate::alerts::AlertsHandle>,
    remotes: crate::remote_write::RemoteWrites,
) -> Arc<Registry> {
    let mut registry = Registry::with_prefix(PREFIX);
    if !remotes.is_empty() {
        registry.register_collector(Box::new(remote::RemoteCollector { remotes }));
    }
    if let Some(alerts) = alerts {
        registry.register_collector(Box::new(alerts::AlertCollector {
            alerts,
            store: store.clone(),
        }));
    }
    let filesystems = fs::FilesystemCollector {
        store: store.clone(),
    };
    registry.register_collector(Box::new(StoreCollector { store }));
    registry.register_collector(Box::new(filesystems));
    Arc::new(registry)
}

/// The OpenMetrics text of a scrape.
pub fn scrape(registry: &Registry) -> Result<String, std::fmt::Error> {
    let mut out = String::new();
    prometheus_client::encoding::text::encode(&mut out, registry)?;
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::{SharedStore, Source};
    use broker::{Disk, DiskDevice, Network, NetworkInterface, Snapshot};

    #[test]
    fn a_scrape_with_hostile_names_keeps_one_series_per_line() {
        let store = SharedStore::in_memory(4).unwrap();
        let dev = |n: &str| {
            (
                n.to_owned(),
                DiskDevice {
                    read_sectors: 1,
                    write_sectors: 2,
                    ..Default::default()
                },
            )
        };
        let s = Snapshot {
            host: "h".into(),
            seq: 1,
            ts_ms: 1_000,
            disk: Some(Disk {
                devices: [dev("sd\"a"), dev("c\\d")].into(),
                ..Disk::default()
            }),
            network: Some(Network {
                interfaces: [(
                    "x\"} 1\nserver_analytics_up{host=\"forged".to_owned(),
                    NetworkInterface {
                        rx_bytes: 7,
                        tx_bytes: 8,
                    },
                )]
                .into(),
                ..Network::default()
            }),
            ..Snapshot::default()
        };
        store.ingest(s, Source::Mqtt, Instant::now(), 1_000);
        let text = scrape(&registry(store, None)).unwrap();
        let lines: Vec<&str> = text
            .lines()
            .filter(|l| {
                l.starts_with("server_analytics_disk_read")
                    || l.starts_with("server_analytics_network_receive")
            })
            .filter(|l| !l.starts_with('#'))
            .collect();
        assert_eq!(
            lines,
            [
                r#"server_analytics_disk_read_bytes_total{host="h",device="c\\d"} 512"#,
                r#"server_analytics_disk_read_bytes_total{host="h",device="sd\"a"} 512"#,
                r#"server_analytics_network_receive_bytes_total{host="h",device="x\"} 1\nserver_analytics_up{host=\"forged"} 7"#,
            ]
        );
        let up = text
            .lines()
            .filter(|l| l.starts_with("server_analytics_up{"));
        assert_eq!(up.count(), 1, "{text}");
    }
}
