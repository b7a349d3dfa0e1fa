//! The registry's extractors over a snapshot, in base units.
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

#[test]
fn the_table_is_append_only() {
    // A host's "total from its own counter" mask is persisted by registry index (tsdb meta
    // `partial:<host>`): the entries of a released table keep their places.
    let released = [
        "cpu_usage_percent",
        "cpu_core_usage_percent",
        "load_1m",
        "load_5m",
        "load_15m",
        "memory_used_percent",
        "memory_available_mb",
        "memory_total_mb",
        "swap_used_mb",
        "cpu_temp_c",
        "sensor_temp_c",
        "uptime_s",
        "disk_read_bytes_rate",
        "disk_write_bytes_rate",
        "network_rx_bytes_rate",
        "network_tx_bytes_rate",
        "filesystem_used_percent",
        "filesystem_avail_bytes",
        "filesystem_size_bytes",
    ];
    let names: Vec<&str> = METRICS.iter().map(|m| m.name).collect();
    assert_eq!(&names[..released.len()], released);
    assert!(METRICS.len() < 64, "the mask has 64 bits");
}

#[test]
fn the_lines_of_a_chart_agree_on_unit_label_and_place() {
    for m in METRICS {
        let Some(c) = m.chart else { continue };
        for other in METRICS
            .iter()
            .filter(|o| o.chart.is_some_and(|x| x.id == c.id))
        {
            let o = other.chart.unwrap();
            assert_eq!(
                (o.title, o.unit, o.scale, o.range, o.place, other.label),
                (c.title, c.unit, c.scale, c.range, c.place, m.label),
                "{} and {} share chart {:?}",
                m.name,
                other.name,
                c.id
            );
        }
        let per_device = c.place != ChartPlace::Main;
        assert!(
            !per_device || m.label.is_some(),
            "{}: per device without a label",
            m.name
        );
    }
}

#[test]
fn a_per_event_metric_divides_by_a_counter_of_the_same_label() {
    for m in METRICS {
        if let Kind::Counter(Rate::PerEvent(per)) = m.kind {
            let p = metric(per).unwrap_or_else(|| panic!("{}: no metric {per}", m.name));
            assert_eq!(p.kind, Kind::Counter(Rate::PerSecond), "{per}");
            assert_eq!(p.label, m.label, "{} / {per}", m.name);
        }
    }
}

#[test]
fn one_per_mount_metric_has_home_assistant_hints() {
    // Home Assistant's per-mount sensor is that metric (`homeassistant::discovery::FILESYSTEM`).
    let per_mount: Vec<&str> = METRICS
        .iter()
        .filter(|m| m.label == Some(LabelKey::Mount) && m.ha.is_some())
        .map(|m| m.name)
        .collect();
    assert_eq!(per_mount, ["filesystem_used_percent"]);
}
