//! The registry's per-device metrics: disks, network interfaces, filesystems. Names are the
//! API: never rename one.

use super::extract::{disk_io, filesystems, gauge, sectors, used_percent};
use super::{
    chart, ha, prom,
    ChartPlace::{Both as BOTH, Devices as DEVICES},
    ChartRange, Kind, LabelKey, Metric, PromUnit, Rate, Scale, Value, COUNTER,
};

/// In registry order (see [`super::METRICS`]).
pub(super) const DEVICE: [Metric; 10] = [
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
        alert: None,
        chart: chart(
            "disk",
            "Disk",
            "Read",
            "MB/s",
            1e-6,
            2,
            ChartRange::Zero,
            true,
            BOTH,
        ),
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
        alert: None,
        chart: chart(
            "disk",
            "Disk",
            "Write",
            "MB/s",
            1e-6,
            2,
            ChartRange::Zero,
            true,
            BOTH,
        ),
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
        alert: None,
        chart: chart(
            "net",
            "Network",
            "Rx",
            "MB/s",
            1e-6,
            2,
            ChartRange::Zero,
            true,
            BOTH,
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
        alert: None,
        chart: chart(
            "net",
            "Network",
            "Tx",
            "MB/s",
            1e-6,
            2,
            ChartRange::Zero,
            true,
            BOTH,
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
        alert: Some("filesystem_used"),
        chart: chart(
            "fs",
            "Filesystem used",
            "Used",
            "%",
            1.0,
            1,
            ChartRange::Percent,
            true,
            DEVICES,
        ),
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
        alert: None,
        chart: None,
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
        alert: None,
        chart: None,
        extract: |s, sink| {
            for (mount, fs) in filesystems(s) {
                gauge(sink, mount, Some(fs.size_bytes as f64));
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
        alert: None,
        chart: None,
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
        alert: None,
        chart: chart(
            "disk-busy",
            "Disk busy",
            "Busy",
            "%",
            1.0,
            1,
            ChartRange::Percent,
            true,
            DEVICES,
        ),
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
        alert: None,
        chart: chart(
            "disk-await",
            "Disk I/O wait",
            "Await",
            "ms",
            1.0,
            2,
            ChartRange::Zero,
            true,
            DEVICES,
        ),
        extract: |s, sink| disk_io(s, sink, |d| d.io_wait_ms),
    },
];
