//! The metric registry: every number the Pi keeps is declared here once, with its unit, its
//! kind, the label that tells its series apart and how to read it from a snapshot. The store,
//! `/series`, `/history`, Grafana, `/prometheus`, the dashboard, alert rules and Home
//! Assistant all read this table; adding a metric is one entry here plus its collector on the
//! publisher.

use broker::Snapshot;
use serde::Serialize;

/// How a metric's values behave.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// A value at an instant (a percentage, a temperature).
    Gauge,
    /// A cumulative counter; what is stored and served is its increase between seq-adjacent
    /// samples of one boot, as the [`Rate`] says.
    Counter(Rate),
}

impl Kind {
    pub fn is_counter(self) -> bool {
        matches!(self, Kind::Counter(_))
    }
}

impl Serialize for Kind {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(match self {
            Kind::Gauge => "gauge",
            Kind::Counter(_) => "counter",
        })
    }
}

/// What a counter's increase between two samples is served as (the one rate rule,
/// [`crate::rates::counter_rates`], applies it).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Rate {
    /// Per second. The host-wide total is the sum over the devices present in both samples.
    PerSecond,
    /// A counter of milliseconds a device was busy, as a % of the interval (Δms / Δs / 10,
    /// at most 100: `iostat`'s `%util`). The host-wide total is the busiest device's.
    BusyPercent,
    /// The increase per event that the named metric (a counter of the same label) counts:
    /// `iostat`'s `await`, milliseconds per I/O completed, 0 when none completed. The
    /// host-wide total is the sum of the increases over the sum of the events.
    PerEvent(&'static str),
}

/// A per-second counter (bytes/s, packets/s).
const COUNTER: Kind = Kind::Counter(Rate::PerSecond);

/// The label that tells a metric's series apart (none for a host-wide total).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum LabelKey {
    Device,
    Interface,
    Core,
    Sensor,
    Mount,
    /// A systemd unit: membership (a unit absent from a sample that lists units is not in
    /// the set).
    Unit,
}

impl LabelKey {
    pub const ALL: [LabelKey; 6] = [
        LabelKey::Device,
        LabelKey::Interface,
        LabelKey::Core,
        LabelKey::Sensor,
        LabelKey::Mount,
        LabelKey::Unit,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            LabelKey::Device => "device",
            LabelKey::Interface => "interface",
            LabelKey::Core => "core",
            LabelKey::Sensor => "sensor",
            LabelKey::Mount => "mount",
            LabelKey::Unit => "unit",
        }
    }

    /// A label whose absence from a sample that has the metric means 0 (a set's members),
    /// not "no longer reported" (a disk unplugged).
    pub fn absent_is_zero(self) -> bool {
        self == LabelKey::Unit
    }

    pub fn parse(key: &str) -> Option<LabelKey> {
        LabelKey::ALL.into_iter().find(|k| k.as_str() == key)
    }
}

/// One value read from a snapshot.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Value {
    Gauge(f64),
    Counter(u64),
}

/// Where [`Metric::extract`] puts what it reads: the label value (`""` for the total) and
/// the value.
pub type Sink<'a> = &'a mut dyn FnMut(&str, Value);

/// One metric.
#[derive(Debug, Clone, Copy)]
pub struct Metric {
    /// The name in every API (the seed's `/history` field name where there is one).
    pub name: &'static str,
    /// The unit of what is served (a counter's rate: `bytes/s`).
    pub unit: &'static str,
    pub kind: Kind,
    /// `Some` for a per-device (interface, core, …) metric; `None` for a host-wide one.
    pub label: Option<LabelKey>,
    /// What a person reads in a chart title or a Home Assistant entity name.
    pub title: &'static str,
    /// Its family on `/prometheus` (`None`: not exported there).
    pub prom: Option<Prom>,
    /// Its Home Assistant sensor (`None`: no entity): host-wide, or one per mount for a
    /// per-mount metric.
    pub ha: Option<Ha>,
    /// The built-in threshold rule on it (its levels are `[alerts.builtin.<name>]`).
    pub alert: Option<&'static str>,
    /// Its line on the dashboard (`None`: not charted).
    pub chart: Option<Chart>,
    pub extract: fn(&Snapshot, Sink<'_>),
}

/// A metric's line on the dashboard: the chart it is drawn in (metrics sharing an `id` are
/// lines of one chart, in registry order), the chart's title, the line's legend, the unit
/// shown with its factor from the metric's unit, the decimals, the y range, whether a rolled
/// up window draws its min–max band, and where: the host-wide value on the main grid, each
/// label's in the "per device" section, or both. `/series/metrics` serves it; the dashboard
/// builds its charts from that alone.
#[derive(Debug, Clone, Copy, Serialize)]
pub struct Chart {
    pub id: &'static str,
    pub title: &'static str,
    pub line: &'static str,
    pub unit: &'static str,
    pub scale: f64,
    pub decimals: u8,
    pub range: ChartRange,
    pub band: bool,
    pub place: ChartPlace,
    /// The process list shown when one points at the chart (`top_cpu`, `top_rss`: the
    /// fields of `/series/top`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub top: Option<&'static str>,
    /// Its host-wide line is a sparkline of the dashboard's overview (one row per host).
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub spark: bool,
}

/// A chart's y range.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum ChartRange {
    /// From 0 to a little above the data.
    Zero,
    /// 0 to 100.
    Percent,
    /// Around the data, always including the 70 and 85 °C marks.
    Temperature,
}

/// Where a metric is charted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum ChartPlace {
    Main,
    Devices,
    Both,
}

#[allow(clippy::too_many_arguments)]
const fn chart(
    id: &'static str,
    title: &'static str,
    line: &'static str,
    unit: &'static str,
    scale: f64,
    decimals: u8,
    range: ChartRange,
    band: bool,
    place: ChartPlace,
) -> Option<Chart> {
    Some(Chart {
        id,
        title,
        line,
        unit,
        scale,
        decimals,
        range,
        band,
        place,
        top: None,
        spark: false,
    })
}

/// A chart hint whose host-wide line is an overview sparkline (see [`Chart::spark`]).
const fn sparked(chart: Option<Chart>) -> Option<Chart> {
    match chart {
        Some(mut c) => {
            c.spark = true;
            Some(c)
        }
        None => None,
    }
}

/// A chart hint that shows a process list on hover (see [`Chart::top`]).
const fn with_top(chart: Option<Chart>, list: &'static str) -> Option<Chart> {
    match chart {
        Some(mut c) => {
            c.top = Some(list);
            Some(c)
        }
        None => None,
    }
}

/// A metric's family on `/prometheus`, node_exporter-style: the name under
/// `server_analytics_` (the encoder adds the unit suffix and a counter's `_total`), its help,
/// unit, the factor into that base unit, and which of its series are exported.
#[derive(Debug, Clone, Copy)]
pub struct Prom {
    pub name: &'static str,
    pub help: &'static str,
    pub unit: Option<PromUnit>,
    pub scale: Scale,
    /// `None`: the host-wide value only; `Some(name)`: each device's, under this label name
    /// (a counter's total is left to PromQL's `sum`).
    pub per_device: Option<&'static str>,
}

/// A metric's Home Assistant sensor: its hints (a `measurement`; a counter's sensor shows its
/// host-wide rate) and the decimals its state keeps.
#[derive(Debug, Clone, Copy)]
pub struct Ha {
    /// A `binary_sensor` (on while the host-wide value is above 0) rather than a `sensor`.
    pub binary: bool,
    /// The metric's labels with a value above 0 are the entity's attribute (`failed units`).
    pub labels_attribute: bool,
    pub device_class: Option<&'static str>,
    pub unit: Option<&'static str>,
    pub display_precision: Option<u8>,
    pub round: i32,
    pub icon: Option<&'static str>,
}

const fn ha(
    device_class: Option<&'static str>,
    unit: Option<&'static str>,
    display_precision: u8,
    round: i32,
    icon: Option<&'static str>,
) -> Option<Ha> {
    Some(Ha {
        binary: false,
        labels_attribute: false,
        device_class,
        unit,
        display_precision: Some(display_precision),
        round,
        icon,
    })
}

/// A `problem` binary sensor in Home Assistant: on while the 0/1 gauge is 1.
const fn ha_problem(icon: &'static str) -> Option<Ha> {
    Some(Ha {
        binary: true,
        labels_attribute: false,
        device_class: Some("problem"),
        unit: None,
        display_precision: None,
        round: 0,
        icon: Some(icon),
    })
}

/// A `problem` binary sensor listing the labels that make it so (its failed units).
const fn ha_problem_listing(icon: &'static str) -> Option<Ha> {
    Some(Ha {
        binary: true,
        labels_attribute: true,
        device_class: Some("problem"),
        unit: None,
        display_precision: None,
        round: 0,
        icon: Some(icon),
    })
}

/// A family's unit (OpenMetrics' `# UNIT` and name suffix).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PromUnit {
    Bytes,
    Seconds,
    Celsius,
    Ratio,
}

/// From the registry's unit into the family's base unit.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Scale {
    Same,
    Times(f64),
    Per(f64),
}

impl Scale {
    pub fn apply(self, v: f64) -> f64 {
        match self {
            Scale::Same => v,
            Scale::Times(k) => v * k,
            Scale::Per(k) => v / k,
        }
    }
}

const MIB: f64 = 1024.0 * 1024.0;

const fn prom(
    name: &'static str,
    help: &'static str,
    unit: Option<PromUnit>,
    scale: Scale,
    per_device: Option<&'static str>,
) -> Option<Prom> {
    Some(Prom {
        name,
        help,
        unit,
        scale,
        per_device,
    })
}

impl Metric {
    /// The metric's values in one snapshot, as (label value, value); `""` is the total.
    pub fn values(&self, s: &Snapshot) -> Vec<(String, Value)> {
        let mut out = Vec::new();
        (self.extract)(s, &mut |label, v| out.push((label.to_owned(), v)));
        out
    }
}

/// The metric called `name`.
pub fn metric(name: &str) -> Option<&'static Metric> {
    METRICS.iter().find(|m| m.name == name)
}

/// The registry index of the metric called `name`.
pub fn index_of(name: &str) -> Option<usize> {
    METRICS.iter().position(|m| m.name == name)
}

mod devices;
mod extract;
mod host;
mod markdown;
mod power;
pub mod promql;
mod remote;
mod system;
pub use extract::used_percent;
pub use markdown::markdown;
pub use remote::{SentSeries, JOB, PREFIX};

/// Every metric the Pi keeps, host-wide ones first. Append only: a host's record of metrics
/// whose total must come from their own counter is persisted by index in this table.
pub static METRICS: &[Metric] = &ALL;

const ALL: [Metric; LEN] = {
    let parts: [&[Metric]; 4] = [
        &host::HOST,
        &devices::DEVICE,
        &power::POWER,
        &system::SYSTEM,
    ];
    let mut all = [host::HOST[0]; LEN];
    let (mut i, mut p) = (0, 0);
    while p < parts.len() {
        let mut k = 0;
        while k < parts[p].len() {
            all[i] = parts[p][k];
            i += 1;
            k += 1;
        }
        p += 1;
    }
    all
};
const LEN: usize =
    host::HOST.len() + devices::DEVICE.len() + power::POWER.len() + system::SYSTEM.len();

#[cfg(test)]
mod tests;
