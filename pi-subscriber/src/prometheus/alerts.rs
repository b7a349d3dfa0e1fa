//! `/prometheus`: `server_analytics_alert_firing{host,rule,severity[,label]} 1` for every alert
//! firing now, as Alertmanager-minded users expect beside the host metrics.

use prometheus_client::collector::Collector;
use prometheus_client::encoding::DescriptorEncoder;
use prometheus_client::metrics::gauge::ConstGauge;
use prometheus_client::metrics::MetricType;

use super::family;
use crate::alerts::AlertsHandle;

#[derive(Debug)]
pub(crate) struct AlertCollector {
    pub(crate) alerts: AlertsHandle,
    /// A forgotten host leaves `/prometheus` at once, before the engine's next tick drops
    /// its alerts.
    pub(crate) store: crate::store::SharedStore,
}

impl Collector for AlertCollector {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let Ok(known) = self.store.host_names() else {
            return Ok(());
        };
        let samples = self
            .alerts
            .firing()
            .into_iter()
            .filter(|a| known.contains(&a.host))
            .map(|a| {
                let mut labels = vec![
                    ("host", a.host),
                    ("rule", a.rule),
                    ("severity", a.severity.as_str().to_owned()),
                ];
                if !a.label.is_empty() {
                    labels.push(("label", a.label));
                }
                (labels, ConstGauge::new(1.0))
            })
            .collect();
        family(
            &mut encoder,
            "alert_firing",
            "1 for every alert firing now (the Pi's rules)",
            None,
            MetricType::Gauge,
            samples,
        )
    }
}
