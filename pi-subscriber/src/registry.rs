//! The metric registry: every number the Pi keeps is declared here once, with its unit, its
//! kind, the label that tells its series apart and how to read it from a snapshot. The store,
//! `/series`, `/history`, Grafana, `/prometheus`, the dashboard, alert rules and Home
//! Assistant all read this table; adding a metric is one entry here plus its collector on the
//! publisher.

use broker::{Snapshot, SECTOR_BYTES};
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
}

impl LabelKey {
    pub const ALL: [LabelKey; 5] = [
        LabelKey::Device,
        LabelKey::Interface,
        LabelKey::Core,
        LabelKey::Sensor,
        LabelKey::Mount,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            LabelKey::Device => "device",
            LabelKey::Interface => "interface",
            LabelKey::Core => "core",
            LabelKey::Sensor => "sensor",
            LabelKey::Mount => "mount",
        }
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
    pub extract: fn(&Snapshot, Sink<'_>),
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
        device_class,
        unit,
        display_precision: Some(display_precision),
        round,
        icon,
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

fn gauge(sink: Sink<'_>, label: &str, v: Option<f64>) {
    if let Some(v) = v.filter(|v| v.is_finite()) {
        sink(label, Value::Gauge(v));
    }
}

/// Disk counters are sectors on the wire; the registry speaks bytes (base units).
fn sectors(n: u64) -> Value {
    Value::Counter(n.saturating_mul(SECTOR_BYTES))
}

/// A disk I/O counter of every device that has it, and their sum as the total (none when no
/// device has it: a publisher that predates the field says nothing rather than 0).
fn disk_io(s: &Snapshot, sink: Sink<'_>, field: fn(&broker::DiskDevice) -> Option<u64>) {
    let Some(d) = &s.disk else { return };
    let mut total: Option<u64> = None;
    for (name, dev) in &d.devices {
        if let Some(v) = field(dev) {
            total = Some(total.unwrap_or(0).saturating_add(v));
            sink(name, Value::Counter(v));
        }
    }
    if let Some(t) = total {
        sink("", Value::Counter(t));
    }
}

/// The filesystems that answered, by mount point (a `null` entry timed out: absent here).
fn filesystems(s: &Snapshot) -> impl Iterator<Item = (&String, &broker::Filesystem)> {
    s.filesystems
        .iter()
        .flatten()
        .filter_map(|(mount, fs)| fs.as_ref().map(|fs| (mount, fs)))
}

/// `df`'s use%: used / (used + avail), the root reserve counted as neither.
pub fn used_percent(fs: &broker::Filesystem) -> Option<f64> {
    let whole = fs.used_bytes as f64 + fs.avail_bytes as f64;
    (whole > 0.0).then(|| 100.0 * fs.used_bytes as f64 / whole)
}

/// Every metric the Pi keeps. Names are the API: never rename one.
pub static METRICS: &[Metric] = &[
    Metric {
        name: "cpu_usage_percent",
        unit: "%",
        kind: Kind::Gauge,
        label: None,
        title: "CPU usage",
        prom: prom(
            "cpu_usage",
            "Busy share of all CPUs over the last interval (0-1)",
            Some(PromUnit::Ratio),
            Scale::Per(100.0),
            None,
        ),
        ha: ha(None, Some("%"), 1, 2, Some("mdi:cpu-64-bit")),
        extract: |s, sink| gauge(sink, "", s.cpu.as_ref().and_then(|c| c.usage_percent)),
    },
    Metric {
        name: "cpu_core_usage_percent",
        unit: "%",
        kind: Kind::Gauge,
        label: Some(LabelKey::Core),
        title: "CPU usage per core",
        prom: None,
        ha: None,
        extract: |s, sink| {
            for (i, v) in s
                .cpu
                .iter()
                .flat_map(|c| c.per_core_percent.iter())
                .enumerate()
            {
                gauge(sink, &i.to_string(), *v);
            }
        },
    },
    Metric {
        name: "load_1m",
        unit: "",
        kind: Kind::Gauge,
        label: None,
        title: "Load (1 min)",
        prom: prom("load1", "1-minute load average", None, Scale::Same, None),
        ha: ha(None, None, 2, 2, Some("mdi:gauge")),
        extract: |s, sink| gauge(sink, "", s.cpu.as_ref().and_then(|c| c.load_1m)),
    },
    Metric {
        name: "load_5m",
        unit: "",
        kind: Kind::Gauge,
        label: None,
        title: "Load (5 min)",
        prom: prom("load5", "5-minute load average", None, Scale::Same, None),
        ha: ha(None, None, 2, 2, Some("mdi:gauge")),
        extract: |s, sink| gauge(sink, "", s.cpu.as_ref().and_then(|c| c.load_5m)),
    },
    Metric {
        name: "load_15m",
        unit: "",
        kind: Kind::Gauge,
        label: None,
        title: "Load (15 min)",
        prom: prom("load15", "15-minute load average", None, Scale::Same, None),
        ha: ha(None, None, 2, 2, Some("mdi:gauge")),
        extract: |s, sink| gauge(sink, "", s.cpu.as_ref().and_then(|c| c.load_15m)),
    },
    Metric {
        name: "memory_used_percent",
        unit: "%",
        kind: Kind::Gauge,
        label: None,
        title: "Memory used",
        prom: None,
        ha: ha(None, Some("%"), 1, 2, Some("mdi:memory")),
        extract: |s, sink| {
            let used = s.memory.as_ref().filter(|m| m.total_mb > 0).map(|m| {
                100.0 * m.total_mb.saturating_sub(m.available_mb) as f64 / m.total_mb as f64
            });
            gauge(sink, "", used)
        },
    },
    Metric {
        name: "memory_available_mb",
        unit: "MB",
        kind: Kind::Gauge,
        label: None,
        title: "Memory available",
        prom: prom(
            "memory_available",
            "MemAvailable",
            Some(PromUnit::Bytes),
            Scale::Times(MIB),
            None,
        ),
        ha: None,
        extract: |s, sink| gauge(sink, "", s.memory.as_ref().map(|m| m.available_mb as f64)),
    },
    Metric {
        name: "memory_total_mb",
        unit: "MB",
        kind: Kind::Gauge,
        label: None,
        title: "Memory total",
        prom: prom(
            "memory_total",
            "MemTotal",
            Some(PromUnit::Bytes),
            Scale::Times(MIB),
            None,
        ),
        ha: None,
        extract: |s, sink| gauge(sink, "", s.memory.as_ref().map(|m| m.total_mb as f64)),
    },
    Metric {
        name: "swap_used_mb",
        unit: "MB",
        kind: Kind::Gauge,
        label: None,
        title: "Swap used",
        prom: prom(
            "swap_used",
            "SwapTotal - SwapFree",
            Some(PromUnit::Bytes),
            Scale::Times(MIB),
            None,
        ),
        ha: None,
        extract: |s, sink| gauge(sink, "", s.memory.as_ref().map(|m| m.swap_used_mb as f64)),
    },
    Metric {
        name: "cpu_temp_c",
        unit: "°C",
        kind: Kind::Gauge,
        label: None,
        title: "CPU temperature",
        prom: prom(
            "cpu_temperature",
            "CPU temperature",
            Some(PromUnit::Celsius),
            Scale::Same,
            None,
        ),
        ha: ha(Some("temperature"), Some("°C"), 1, 1, None),
        extract: |s, sink| gauge(sink, "", s.thermal.cpu_temp_c),
    },
    Metric {
        name: "sensor_temp_c",
        unit: "°C",
        kind: Kind::Gauge,
        label: Some(LabelKey::Sensor),
        title: "Temperature per sensor",
        prom: None,
        ha: None,
        extract: |s, sink| {
            for (name, t) in &s.thermal.sensors {
                gauge(sink, name, Some(*t));
            }
        },
    },
    Metric {
        name: "uptime_s",
        unit: "s",
        kind: Kind::Gauge,
        label: None,
        title: "Uptime",
        prom: prom(
            "uptime",
            "Time since the host booted",
            Some(PromUnit::Seconds),
            Scale::Same,
            None,
        ),
        ha: None,
        extract: |s, sink| gauge(sink, "", s.uptime_s),
    },
    Metric {
        name: "disk_read_bytes_rate",
        unit: "bytes/s",
        kind: COUNTER,
        label: Some(LabelKey::Device),
        title: "Disk read",
        prom: prom(
            "disk_read",
            "Bytes read from a whole disk (512-byte sectors)",
            Some(PromUnit::Bytes),
            Scale::Same,
            Some("device"),
        ),
        ha: ha(Some("data_rate"), Some("B/s"), 0, 0, Some("mdi:harddisk")),
        extract: |s, sink| {
            if let Some(d) = &s.disk {
                sink("", sectors(d.read_sectors));
                for (name, dev) in &d.devices {
                    sink(name, sectors(dev.read_sectors));
                }
            }
        },
    },
    Metric {
        name: "disk_write_bytes_rate",
        unit: "bytes/s",
        kind: COUNTER,
        label: Some(LabelKey::Device),
        title: "Disk write",
        prom: prom(
            "disk_written",
            "Bytes written to a whole disk (512-byte sectors)",
            Some(PromUnit::Bytes),
            Scale::Same,
            Some("device"),
        ),
        ha: ha(Some("data_rate"), Some("B/s"), 0, 0, Some("mdi:harddisk")),
        extract: |s, sink| {
            if let Some(d) = &s.disk {
                sink("", sectors(d.write_sectors));
                for (name, dev) in &d.devices {
                    sink(name, sectors(dev.write_sectors));
                }
            }
        },
    },
    Metric {
        name: "disk_io_ops_rate",
        unit: "ops/s",
        kind: COUNTER,
        label: Some(LabelKey::Device),
        title: "Disk I/O operations",
        prom: prom(
            "disk_io_completed",
            "Reads and writes completed on a whole disk (diskstats fields 4 + 8)",
            None,
            Scale::Same,
            Some("device"),
        ),
        ha: None,
        extract: |s, sink| disk_io(s, sink, |d| d.ios),
    },
    Metric {
        name: "disk_busy_percent",
        unit: "%",
        kind: Kind::Counter(Rate::BusyPercent),
        label: Some(LabelKey::Device),
        title: "Disk busy",
        prom: prom(
            "disk_io_time",
            "Time a whole disk had I/O in flight (diskstats field 13)",
            Some(PromUnit::Seconds),
            Scale::Per(1000.0),
            Some("device"),
        ),
        ha: ha(None, Some("%"), 1, 1, Some("mdi:harddisk")),
        extract: |s, sink| disk_io(s, sink, |d| d.io_time_ms),
    },
    Metric {
        name: "disk_await_ms",
        unit: "ms",
        kind: Kind::Counter(Rate::PerEvent("disk_io_ops_rate")),
        label: Some(LabelKey::Device),
        title: "Disk I/O wait",
        prom: prom(
            "disk_io_wait_time",
            "Time spent on completed reads and writes, queueing included (diskstats fields 7 + 11)",
            Some(PromUnit::Seconds),
            Scale::Per(1000.0),
            Some("device"),
        ),
        ha: ha(Some("duration"), Some("ms"), 1, 2, Some("mdi:timer-sand")),
        extract: |s, sink| disk_io(s, sink, |d| d.io_wait_ms),
    },
    Metric {
        name: "network_rx_bytes_rate",
        unit: "bytes/s",
        kind: COUNTER,
        label: Some(LabelKey::Interface),
        title: "Network received",
        prom: prom(
            "network_receive",
            "Bytes received on an interface",
            Some(PromUnit::Bytes),
            Scale::Same,
            Some("device"),
        ),
        ha: ha(
            Some("data_rate"),
            Some("B/s"),
            0,
            0,
            Some("mdi:download-network"),
        ),
        extract: |s, sink| {
            if let Some(n) = &s.network {
                sink("", Value::Counter(n.rx_bytes));
                for (name, i) in &n.interfaces {
                    sink(name, Value::Counter(i.rx_bytes));
                }
            }
        },
    },
    Metric {
        name: "network_tx_bytes_rate",
        unit: "bytes/s",
        kind: COUNTER,
        label: Some(LabelKey::Interface),
        title: "Network sent",
        prom: prom(
            "network_transmit",
            "Bytes transmitted on an interface",
            Some(PromUnit::Bytes),
            Scale::Same,
            Some("device"),
        ),
        ha: ha(
            Some("data_rate"),
            Some("B/s"),
            0,
            0,
            Some("mdi:upload-network"),
        ),
        extract: |s, sink| {
            if let Some(n) = &s.network {
                sink("", Value::Counter(n.tx_bytes));
                for (name, i) in &n.interfaces {
                    sink(name, Value::Counter(i.tx_bytes));
                }
            }
        },
    },
    Metric {
        name: "filesystem_used_percent",
        unit: "%",
        kind: Kind::Gauge,
        label: Some(LabelKey::Mount),
        title: "Filesystem used",
        prom: None,
        ha: ha(None, Some("%"), 1, 2, Some("mdi:harddisk")),
        extract: |s, sink| {
            for (mount, fs) in filesystems(s) {
                gauge(sink, mount, used_percent(fs));
            }
        },
    },
    Metric {
        name: "filesystem_avail_bytes",
        unit: "bytes",
        kind: Kind::Gauge,
        label: Some(LabelKey::Mount),
        title: "Filesystem available",
        prom: None,
        ha: None,
        extract: |s, sink| {
            for (mount, fs) in filesystems(s) {
                gauge(sink, mount, Some(fs.avail_bytes as f64));
            }
        },
    },
    Metric {
        name: "filesystem_size_bytes",
        unit: "bytes",
        kind: Kind::Gauge,
        label: Some(LabelKey::Mount),
        title: "Filesystem size",
        prom: None,
        ha: None,
        extract: |s, sink| {
            for (mount, fs) in filesystems(s) {
                gauge(sink, mount, Some(fs.size_bytes as f64));
            }
        },
    },
];

/// The metric called `name`.
pub fn metric(name: &str) -> Option<&'static Metric> {
    METRICS.iter().find(|m| m.name == name)
}

/// The registry index of the metric called `name`.
pub fn index_of(name: &str) -> Option<usize> {
    METRICS.iter().position(|m| m.name == name)
}

mod markdown;
pub use markdown::markdown;

#[cfg(test)]
mod tests {
    use super::*;
    use broker::{Cpu, Disk, DiskDevice, Memory, Thermal};

    fn tower() -> Snapshot {
        Snapshot {
            host: "tower".into(),
            seq: 1,
            ts_ms: 1_000,
            uptime_s: Some(86_400.5),
            cpu: Some(Cpu {
                usage_percent: Some(45.23),
                load_1m: Some(1.25),
                per_core_percent: vec![Some(10.0), None, Some(30.5)],
                ..Cpu::default()
            }),
            memory: Some(Memory {
                available_mb: 8192,
                total_mb: 16384,
                swap_used_mb: 0,
                ..Memory::default()
            }),
            thermal: Thermal {
                cpu_temp_c: Some(65.5),
                sensors: [("x86_pkg_temp".to_string(), 65.5)].into(),
            },
            disk: Some(Disk {
                read_sectors: 3,
                write_sectors: 4,
                devices: [(
                    "nvme0n1".to_string(),
                    DiskDevice {
                        read_sectors: 3,
                        write_sectors: 4,
                        ..Default::default()
                    },
                )]
                .into(),
            }),
            ..Snapshot::default()
        }
    }

    fn of(name: &str, s: &Snapshot) -> Vec<(String, Value)> {
        metric(name).unwrap().values(s)
    }

    #[test]
    fn every_metric_reads_the_snapshot_in_base_units() {
        let s = tower();
        assert_eq!(
            of("cpu_usage_percent", &s),
            [("".into(), Value::Gauge(45.23))]
        );
        assert_eq!(
            of("cpu_core_usage_percent", &s),
            [
                ("0".into(), Value::Gauge(10.0)),
                ("2".into(), Value::Gauge(30.5))
            ]
        );
        assert_eq!(
            of("memory_used_percent", &s),
            [("".into(), Value::Gauge(50.0))]
        );
        assert_eq!(
            of("disk_read_bytes_rate", &s),
            [
                ("".into(), Value::Counter(1536)),
                ("nvme0n1".into(), Value::Counter(1536))
            ]
        );
        assert_eq!(
            of("sensor_temp_c", &s),
            [("x86_pkg_temp".into(), Value::Gauge(65.5))]
        );
        assert_eq!(of("uptime_s", &s), [("".into(), Value::Gauge(86_400.5))]);
        assert!(
            of("network_rx_bytes_rate", &s).is_empty(),
            "missing is absent, not 0"
        );
        assert!(of("load_5m", &s).is_empty());
    }

    #[test]
    fn filesystems_per_mount_and_a_timed_out_mount_is_absent() {
        let mut s = tower();
        let root = broker::Filesystem {
            device: "nvme0n1p2".into(),
            fstype: "ext4".into(),
            size_bytes: 1000,
            used_bytes: 300,
            avail_bytes: 500,
            files: 10,
            files_free: 5,
        };
        let empty = broker::Filesystem {
            used_bytes: 0,
            avail_bytes: 0,
            ..root.clone()
        };
        s.filesystems = Some(
            [
                ("/".to_string(), Some(root)),
                ("/mnt/nas".to_string(), None),
                ("/zero".to_string(), Some(empty)),
            ]
            .into(),
        );
        assert_eq!(
            of("filesystem_used_percent", &s),
            [("/".into(), Value::Gauge(37.5))]
        );
        assert_eq!(
            of("filesystem_avail_bytes", &s),
            [
                ("/".into(), Value::Gauge(500.0)),
                ("/zero".into(), Value::Gauge(0.0))
            ]
        );
        assert_eq!(
            of("filesystem_size_bytes", &s),
            [
                ("/".into(), Value::Gauge(1000.0)),
                ("/zero".into(), Value::Gauge(1000.0))
            ]
        );
        assert!(of("filesystem_size_bytes", &tower()).is_empty());
        assert_eq!(
            metric("filesystem_used_percent").unwrap().label,
            Some(LabelKey::Mount)
        );
    }

    #[test]
    fn names_are_unique_and_labels_parse() {
        let mut names: Vec<_> = METRICS.iter().map(|m| m.name).collect();
        names.sort_unstable();
        names.dedup();
        assert_eq!(names.len(), METRICS.len());
        for key in LabelKey::ALL {
            assert_eq!(LabelKey::parse(key.as_str()), Some(key));
        }
        assert_eq!(LabelKey::parse("host"), None);
    }
}
