//! The one rate rule's cases, over pairs of snapshots.
use super::*;
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
