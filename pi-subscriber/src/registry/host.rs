//! The registry's host-wide metrics (CPU, load, memory, temperature, uptime); the per-device
//! ones are in `devices.rs`. Names are the API: never rename one.

use super::extract::gauge;
use super::{
    chart, ha, prom, ChartPlace::Main as MAIN, ChartRange, Kind, LabelKey, Metric, PromUnit, Scale,
    MIB,
};

/// In registry order (see [`super::METRICS`]).
pub(super) const HOST: [Metric; 12] = [
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
        chart: chart(
            "cpu",
            "CPU usage",
            "CPU",
            "%",
            1.0,
            1,
            ChartRange::Percent,
            true,
            MAIN,
        ),
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
        chart: None,
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
        chart: chart(
            "load",
            "Load average",
            "1 min",
            "",
            1.0,
            2,
            ChartRange::Zero,
            true,
            MAIN,
        ),
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
        chart: chart(
            "load",
            "Load average",
            "5 min",
            "",
            1.0,
            2,
            ChartRange::Zero,
            false,
            MAIN,
        ),
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
        chart: chart(
            "load",
            "Load average",
            "15 min",
            "",
            1.0,
            2,
            ChartRange::Zero,
            false,
            MAIN,
        ),
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
        chart: chart(
            "mem",
            "Memory used",
            "Used",
            "%",
            1.0,
            1,
            ChartRange::Percent,
            true,
            MAIN,
        ),
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
        chart: None,
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
        chart: None,
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
        chart: None,
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
        chart: chart(
            "temp",
            "CPU temperature",
            "CPU",
            "°C",
            1.0,
            1,
            ChartRange::Temperature,
            true,
            MAIN,
        ),
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
        chart: None,
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
        chart: None,
        extract: |s, sink| gauge(sink, "", s.uptime_s),
    },
];
