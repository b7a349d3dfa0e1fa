//! A registry value as the Prometheus series it is exposed and sent as: the family's full name
//! (`server_analytics_` + family + unit + `_total` for a counter, as a scrape of the Pi's
//! `/prometheus` writes it), its labels (`host`, `job`, and the device label of a per-device
//! family), and the value in the family's base unit.

use super::{Kind, Metric, PromUnit, Value};

/// The prefix of every family.
pub const PREFIX: &str = "server_analytics";
/// The `job` label of every series remote write sends.
pub const JOB: &str = "server-analytics";

/// A series as sent: its name, its labels, its value in the family's base unit.
pub type SentSeries = (String, Vec<(&'static str, String)>, f64);

impl PromUnit {
    /// The unit's suffix in a family's name.
    pub fn suffix(self) -> &'static str {
        match self {
            PromUnit::Bytes => "bytes",
            PromUnit::Seconds => "seconds",
            PromUnit::Celsius => "celsius",
            PromUnit::Ratio => "ratio",
        }
    }
}

impl Metric {
    /// Its full series name; `None` without a Prometheus family.
    pub fn series_name(&self) -> Option<String> {
        let p = self.prom?;
        let mut name = format!("{PREFIX}_{}", p.name);
        if let Some(u) = p.unit {
            name.push('_');
            name.push_str(u.suffix());
        }
        if matches!(self.kind, Kind::Counter(_)) {
            name.push_str("_total");
        }
        Some(name)
    }

    /// One of its values of `host` as the series it is sent as; `None` without a family, or
    /// for a total the family leaves to PromQL's `sum`.
    pub fn series(&self, host: &str, label: &str, value: Value) -> Option<SentSeries> {
        let p = self.prom?;
        let mut labels = vec![("host", host.to_owned()), ("job", JOB.to_owned())];
        match (p.per_device, label.is_empty()) {
            (None, true) => {}
            (Some(name), false) => labels.push((name, label.to_owned())),
            _ => return None,
        }
        let v = match value {
            Value::Gauge(g) => p.scale.apply(g),
            Value::Counter(c) => p.scale.apply(c as f64),
        };
        Some((self.series_name()?, labels, v))
    }
}
