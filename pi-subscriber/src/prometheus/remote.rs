//! `/prometheus`: each remote write receiver's counters, labelled `remote`.

use prometheus_client::collector::Collector;
use prometheus_client::encoding::DescriptorEncoder;
use prometheus_client::metrics::counter::ConstCounter;
use prometheus_client::metrics::gauge::ConstGauge;
use prometheus_client::metrics::MetricType;
use prometheus_client::registry::Unit;

use super::family;
use crate::remote_write::RemoteWrites;

/// A counter family: its name, help, and where the figure is.
type Counter = (
    &'static str,
    &'static str,
    fn(&remote_write::RemoteStats) -> u64,
);

#[derive(Debug)]
pub(crate) struct RemoteCollector {
    pub(crate) remotes: RemoteWrites,
}

impl Collector for RemoteCollector {
    fn encode(&self, mut e: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let stats = self.remotes.stats();
        let label = |name: &str| vec![("remote", name.to_owned())];
        let counters: [Counter; 4] = [
            (
                "remote_write_samples_sent",
                "Samples the receiver took",
                |s| s.samples_sent_total,
            ),
            (
                "remote_write_batches_retried",
                "Requests retried (5xx, 429, no answer)",
                |s| s.batches_retried_total,
            ),
            (
                "remote_write_batches_dropped",
                "Requests refused for good (4xx), dropped",
                |s| s.batches_dropped_total,
            ),
            (
                "remote_write_samples_dropped",
                "Samples in the requests refused for good",
                |s| s.samples_dropped_total,
            ),
        ];
        for (name, help, get) in counters {
            let samples = stats
                .iter()
                .map(|s| (label(&s.name), ConstCounter::new(get(s))))
                .collect();
            family(&mut e, name, help, None, MetricType::Counter, samples)?;
        }
        let backlog = stats
            .iter()
            .map(|s| (label(&s.name), ConstGauge::new(s.backlog_samples as f64)))
            .collect();
        family(
            &mut e,
            "remote_write_backlog_samples",
            "Samples stored, not yet sent",
            None,
            MetricType::Gauge,
            backlog,
        )?;
        let behind = stats
            .iter()
            .map(|s| (label(&s.name), ConstGauge::new(s.backlog_seconds)))
            .collect();
        family(
            &mut e,
            "remote_write_backlog",
            "How far the oldest sample not yet sent is behind its host's newest",
            Some(&Unit::Seconds),
            MetricType::Gauge,
            behind,
        )
    }
}
