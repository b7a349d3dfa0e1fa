//! The one rate rule's cases, over pairs of snapshots.
use super::*;
use crate::registry::metric;
use broker::{Disk, DiskDevice, Network, NetworkInterface};

/// Sectors per second of a disk rate in bytes/s (the registry speaks bytes).
fn sectors(r: Option<f64>) -> Option<f64> {
    r.map(|b| b / 512.0)
}

fn snap(seq: u64, ts_s: i64, boot: &str, read: u64, rx: u64) -> Snapshot {
    Snapshot {
        seq,
        ts_ms: ts_s * 1000,
        boot_id: Some(boot.into()),
        disk: Some(Disk {
            read_sectors: read,
            write_sectors: 2 * read,
            devices: [(
                "sda".to_string(),
                DiskDevice {
                    read_sectors: read,
                    write_sectors: 2 * read,
                    ..Default::default()
                },
            )]
            .into(),
        }),
        network: Some(Network {
            rx_bytes: rx,
            tx_bytes: rx / 2,
            interfaces: [(
                "eth0".to_string(),
                NetworkInterface {
                    rx_bytes: rx,
                    tx_bytes: rx / 2,
                },
            )]
            .into(),
        }),
        ..Snapshot::default()
    }
}

#[test]
fn rates_over_15_s() {
    let r = between(
        &snap(1, 100, "b", 1000, 30_000),
        &snap(2, 115, "b", 1300, 60_000),
    )
    .unwrap();
    assert_eq!(sectors(r.total("disk_read_bytes_rate")), Some(20.0));
    assert_eq!(sectors(r.total("disk_write_bytes_rate")), Some(40.0));
    assert_eq!(r.total("disk_read_bytes_rate"), Some(20.0 * 512.0));
    assert_eq!(r.total("network_rx_bytes_rate"), Some(2000.0));
    assert_eq!(r.total("network_tx_bytes_rate"), Some(1000.0));
    assert_eq!(sectors(r.get("disk_read_bytes_rate", "sda")), Some(20.0));
    assert_eq!(r.get("network_rx_bytes_rate", "eth0"), Some(2000.0));
    assert_eq!(r.total("cpu_usage_percent"), None, "a gauge has no rate");
}

#[test]
fn reboot_starts_a_new_series() {
    // Counters drop and the boot id changes: no rate, not a negative or wrapped one.
    assert_eq!(
        between(
            &snap(1, 100, "a", 1_000_000, 9_000_000),
            &snap(2, 115, "b", 10, 20)
        ),
        None
    );
    // Counters drop with the same boot id (a wrap, or a device replaced): that counter only.
    let r = between(
        &snap(1, 100, "a", 1_000_000, 100),
        &snap(2, 115, "a", 10, 400),
    )
    .unwrap();
    assert_eq!(r.get("disk_read_bytes_rate", "sda"), None);
    assert_eq!(
        r.total("disk_read_bytes_rate"),
        None,
        "a device reset: no total"
    );
    assert_eq!(r.total("network_rx_bytes_rate"), Some(20.0));
}

#[test]
fn no_rate_without_time_or_order() {
    assert_eq!(
        between(&snap(2, 100, "a", 1, 1), &snap(2, 100, "a", 5, 5)),
        None,
        "same sample"
    );
    assert_eq!(
        between(&snap(3, 100, "a", 1, 1), &snap(2, 115, "a", 5, 5)),
        None,
        "seq went back"
    );
    assert_eq!(
        between(&snap(1, 115, "a", 1, 1), &snap(2, 100, "a", 5, 5)),
        None,
        "time went back"
    );
    assert_eq!(counter_rate(5, 10, 0.0), None);
    assert_eq!(counter_rate(10, 5, 15.0), None);
    assert_eq!(counter_rate(u64::MAX - 1, u64::MAX, 1.0), Some(1.0));
}

#[test]
fn missing_sections_and_new_devices() {
    let mut b = snap(2, 115, "a", 1300, 60_000);
    b.disk
        .as_mut()
        .unwrap()
        .devices
        .insert("sdb".into(), DiskDevice::default());
    b.network = None;
    let r = between(&snap(1, 100, "a", 1000, 30_000), &b).unwrap();
    assert_eq!(
        r.get("disk_read_bytes_rate", "sdb"),
        None,
        "no rate for a device that just appeared"
    );
    assert_eq!(r.total("network_rx_bytes_rate"), None);
}

#[test]
fn totals_are_summed_over_the_devices_present_in_both() {
    let mut b = snap(2, 115, "a", 1300, 60_000);
    let disk = b.disk.as_mut().unwrap();
    disk.devices.insert(
        "sdb".into(),
        DiskDevice {
            read_sectors: 9_000_000,
            write_sectors: 9_000_000,
            ..Default::default()
        },
    );
    disk.read_sectors += 9_000_000;
    disk.write_sectors += 9_000_000;
    let r = between(&snap(1, 100, "a", 1000, 30_000), &b).unwrap();
    assert_eq!(
        sectors(r.total("disk_read_bytes_rate")),
        Some(20.0),
        "sdb just appeared"
    );
    assert_eq!(sectors(r.total("disk_write_bytes_rate")), Some(40.0));
    // Seed-format snapshots (no per-device maps) use their totals.
    let (mut a, mut b) = (snap(1, 100, "a", 1000, 0), snap(2, 115, "a", 1300, 0));
    a.disk.as_mut().unwrap().devices.clear();
    b.disk.as_mut().unwrap().devices.clear();
    assert_eq!(
        sectors(between(&a, &b).unwrap().total("disk_read_bytes_rate")),
        Some(20.0)
    );
    assert_eq!(
        name_set_hash(["sda".to_string()].iter()),
        name_set_hash(["sda".to_string()].iter())
    );
    assert_ne!(
        name_set_hash(["sda".to_string()].iter()),
        name_set_hash(["sda".to_string(), "sdb".to_string()].iter())
    );
    assert_eq!(name_set_hash(std::iter::empty()), 0);
}

#[test]
fn boot_hash_is_stable_and_nonzero() {
    assert_eq!(boot_hash(None), 0);
    assert_eq!(boot_hash(Some("x")), boot_hash(Some("x")));
    assert_ne!(boot_hash(Some("x")), boot_hash(Some("y")));
    assert_ne!(boot_hash(Some("")), 0);
}

/// A tower's disks at `seq` from its diskstats (publisher/tests/fixtures/tower, t0 and t1):
/// (name, reads + writes, read + write ms, io_time ms).
fn tower_disks(seq: u64, ts_s: i64, disks: &[(&str, u64, u64, u64)]) -> Snapshot {
    let devices = disks
        .iter()
        .map(|(name, ios, wait, busy)| {
            let d = DiskDevice {
                ios: Some(*ios),
                io_wait_ms: Some(*wait),
                io_time_ms: Some(*busy),
                ..Default::default()
            };
            (name.to_string(), d)
        })
        .collect();
    Snapshot {
        seq,
        ts_ms: ts_s * 1000,
        boot_id: Some("b".into()),
        disk: Some(Disk {
            devices,
            ..Disk::default()
        }),
        ..Snapshot::default()
    }
}

#[test]
fn busy_percent_and_await_as_iostat_computes_them() {
    // Fields 4 + 8, 7 + 11 and 13 of the tower fixture's nvme0n1, sda, sdb and sr0.
    let t0 = tower_disks(
        1,
        100,
        &[
            ("nvme0n1", 2419321 + 3771950, 512563 + 2804132, 1913249),
            ("sda", 88432 + 12448, 1445010 + 408223, 763998),
            ("sdb", 80516 + 100465, 1319238 + 3712324, 1114993),
            ("sr0", 0, 0, 0),
        ],
    );
    let t1 = tower_disks(
        2,
        115,
        &[
            ("nvme0n1", 2421163 + 3772561, 512951 + 2804633, 1913951),
            ("sda", 88446 + 12451, 1445198 + 408254, 764199),
            ("sdb", 80527 + 100468, 1319400 + 3712352, 1115170),
            ("sr0", 0, 0, 0),
        ],
    );
    let r = between(&t0, &t1).unwrap();
    // %util: io_time's increase over the 15 000 ms interval.
    assert_eq!(r.get("disk_busy_percent", "nvme0n1"), Some(702.0 / 150.0));
    assert_eq!(r.get("disk_busy_percent", "sda"), Some(201.0 / 150.0));
    assert_eq!(r.get("disk_busy_percent", "sdb"), Some(177.0 / 150.0));
    assert_eq!(r.get("disk_busy_percent", "sr0"), Some(0.0));
    assert_eq!(
        r.total("disk_busy_percent"),
        Some(702.0 / 150.0),
        "the busiest"
    );
    // await: ms spent over I/Os completed; 0 for a disk that completed none.
    assert_eq!(r.get("disk_await_ms", "nvme0n1"), Some(889.0 / 2453.0));
    assert_eq!(r.get("disk_await_ms", "sda"), Some(219.0 / 17.0));
    assert_eq!(r.get("disk_await_ms", "sdb"), Some(190.0 / 14.0));
    assert_eq!(r.get("disk_await_ms", "sr0"), Some(0.0));
    assert_eq!(
        r.total("disk_await_ms"),
        Some((889.0 + 219.0 + 190.0) / (2453.0 + 17.0 + 14.0)),
        "every I/O of the host, each counted once"
    );
    assert_eq!(r.get("disk_io_ops_rate", "sda"), Some(17.0 / 15.0));
    assert_eq!(r.total("disk_io_ops_rate"), Some(2484.0 / 15.0));
}

#[test]
fn busy_is_capped_a_reset_has_no_value_and_an_old_publisher_says_nothing() {
    let t0 = tower_disks(1, 100, &[("sda", 10, 100, 1_000), ("sdb", 10, 100, 50)]);
    // sda ran 15.2 s busy in 15 s (accounting ahead of the clock); sdb's counters reset.
    let t1 = tower_disks(2, 115, &[("sda", 20, 300, 16_200), ("sdb", 2, 1, 1)]);
    let r = between(&t0, &t1).unwrap();
    assert_eq!(r.get("disk_busy_percent", "sda"), Some(100.0));
    assert_eq!(r.get("disk_busy_percent", "sdb"), None);
    assert_eq!(r.get("disk_await_ms", "sdb"), None);
    assert_eq!(
        r.total("disk_busy_percent"),
        Some(100.0),
        "the busiest valid"
    );
    assert_eq!(r.total("disk_await_ms"), None, "a device reset: no total");
    // A snapshot without the I/O fields (a publisher before them) has no busy series at all.
    let old = snap(1, 100, "b", 1000, 0);
    assert!(metric("disk_busy_percent").unwrap().values(&old).is_empty());
    let r = between(&old, &snap(2, 115, "b", 1300, 0)).unwrap();
    assert_eq!(r.total("disk_busy_percent"), None);
    assert_eq!(r.total("disk_await_ms"), None);
}
