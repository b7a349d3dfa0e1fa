//! Rates from two consecutive samples of one host: a pure function, no I/O, no clock.
//!
//! A rate is only computed within one series: the later sample must have a higher `seq`, a
//! later timestamp, the same `boot_id`, and a counter that did not go down. A reboot, a
//! counter wrap or a publisher whose ring was reset starts a new series: the rate is `None`
//! (shown as `null`), never negative and never the huge number a naive subtraction gives.

use std::collections::BTreeMap;

use broker::{Snapshot, SECTOR_BYTES};
use serde::Serialize;

/// The counters a rate is computed from, with what identifies their series.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Point {
    pub seq: u64,
    pub ts_ms: i64,
    /// A hash of the boot id (0 when unknown): a change means the counters restarted.
    pub boot: u64,
}

/// Seconds between two points of one series, or `None` when they are not one series.
pub fn elapsed_s(earlier: &Point, later: &Point) -> Option<f64> {
    if later.seq <= earlier.seq || later.ts_ms <= earlier.ts_ms {
        return None;
    }
    if earlier.boot != 0 && later.boot != 0 && earlier.boot != later.boot {
        return None;
    }
    Some(later.ts_ms.saturating_sub(earlier.ts_ms) as f64 / 1000.0)
}

/// Per-second increase of a cumulative counter; `None` when it went down (reset or wrap).
pub fn counter_rate(earlier: u64, later: u64, elapsed_s: f64) -> Option<f64> {
    if later < earlier || elapsed_s <= 0.0 {
        return None;
    }
    Some((later - earlier) as f64 / elapsed_s)
}

/// A stable 64-bit hash of a boot id (FNV-1a), so rows can carry it in 8 bytes.
pub fn boot_hash(boot_id: Option<&str>) -> u64 {
    let Some(id) = boot_id else { return 0 };
    let mut h: u64 = 0xcbf29ce484222325;
    for b in id.bytes() {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x100000001b3);
    }
    h.max(1)
}

/// A fingerprint of a set of device or interface names (FNV-1a over the sorted names), so a
/// history row can tell which devices its totals sum; 0 for an empty or unknown set.
pub fn name_set_hash<'a>(names: impl IntoIterator<Item = &'a String>) -> u32 {
    let mut h: u32 = 0x811c9dc5;
    let mut any = false;
    for name in names {
        any = true;
        for b in name.bytes().chain([0xff]) {
            h ^= u32::from(b);
            h = h.wrapping_mul(0x01000193);
        }
    }
    if any {
        h.max(1)
    } else {
        0
    }
}

pub fn point_of(s: &Snapshot) -> Point {
    Point {
        seq: s.seq,
        ts_ms: s.ts_ms,
        boot: boot_hash(s.boot_id.as_deref()),
    }
}

/// Read and write rates of one disk (or the sum), in sectors/s and bytes/s.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Default)]
pub struct DiskRates {
    pub read_sectors_rate: Option<f64>,
    pub write_sectors_rate: Option<f64>,
    pub read_bytes_rate: Option<f64>,
    pub write_bytes_rate: Option<f64>,
}

/// Receive and transmit rates of one interface (or the sum), in bytes/s.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Default)]
pub struct NetRates {
    pub rx_bytes_rate: Option<f64>,
    pub tx_bytes_rate: Option<f64>,
}

/// Every rate between two snapshots.
#[derive(Debug, Clone, PartialEq, Default, Serialize)]
pub struct Rates {
    pub disk: DiskRates,
    pub disk_devices: BTreeMap<String, DiskRates>,
    pub network: NetRates,
    pub interfaces: BTreeMap<String, NetRates>,
}

impl Rates {
    /// The host-wide rate of a registry counter (`crate::registry`, `Kind::Counter`), as
    /// `/metrics` serves it; `None` for another name or a rate that could not be computed.
    pub fn total(&self, metric: &str) -> Option<f64> {
        match metric {
            "disk_read_bytes_rate" => self.disk.read_bytes_rate,
            "disk_write_bytes_rate" => self.disk.write_bytes_rate,
            "network_rx_bytes_rate" => self.network.rx_bytes_rate,
            "network_tx_bytes_rate" => self.network.tx_bytes_rate,
            _ => None,
        }
    }
}

pub fn disk_rates(read: (u64, u64), write: (u64, u64), dt: f64) -> DiskRates {
    let r = counter_rate(read.0, read.1, dt);
    let w = counter_rate(write.0, write.1, dt);
    let bytes = SECTOR_BYTES as f64;
    DiskRates {
        read_sectors_rate: r,
        write_sectors_rate: w,
        read_bytes_rate: r.map(|x| x * bytes),
        write_bytes_rate: w.map(|x| x * bytes),
    }
}

pub fn net_rates(rx: (u64, u64), tx: (u64, u64), dt: f64) -> NetRates {
    NetRates {
        rx_bytes_rate: counter_rate(rx.0, rx.1, dt),
        tx_bytes_rate: counter_rate(tx.0, tx.1, dt),
    }
}

/// Rates from `earlier` to `later`, per device/interface present in both, and totals summed
/// over those same devices (a disk that appears or disappears between the two changes no
/// total); `None` when the two are not one series. Snapshots without per-device maps (the
/// seed's) use their totals.
pub fn rates(earlier: &Snapshot, later: &Snapshot) -> Option<Rates> {
    let dt = elapsed_s(&point_of(earlier), &point_of(later))?;
    let mut out = Rates::default();
    if let (Some(a), Some(b)) = (&earlier.disk, &later.disk) {
        let (mut read, mut write) = ((0u64, 0u64), (0u64, 0u64));
        for (name, d) in &b.devices {
            if let Some(p) = a.devices.get(name) {
                read = (
                    read.0.saturating_add(p.read_sectors),
                    read.1.saturating_add(d.read_sectors),
                );
                write = (
                    write.0.saturating_add(p.write_sectors),
                    write.1.saturating_add(d.write_sectors),
                );
                out.disk_devices.insert(
                    name.clone(),
                    disk_rates(
                        (p.read_sectors, d.read_sectors),
                        (p.write_sectors, d.write_sectors),
                        dt,
                    ),
                );
            }
        }
        out.disk = if a.devices.is_empty() || b.devices.is_empty() {
            disk_rates(
                (a.read_sectors, b.read_sectors),
                (a.write_sectors, b.write_sectors),
                dt,
            )
        } else {
            disk_rates(read, write, dt)
        };
    }
    if let (Some(a), Some(b)) = (&earlier.network, &later.network) {
        let (mut rx, mut tx) = ((0u64, 0u64), (0u64, 0u64));
        for (name, i) in &b.interfaces {
            if let Some(p) = a.interfaces.get(name) {
                rx = (
                    rx.0.saturating_add(p.rx_bytes),
                    rx.1.saturating_add(i.rx_bytes),
                );
                tx = (
                    tx.0.saturating_add(p.tx_bytes),
                    tx.1.saturating_add(i.tx_bytes),
                );
                out.interfaces.insert(
                    name.clone(),
                    net_rates((p.rx_bytes, i.rx_bytes), (p.tx_bytes, i.tx_bytes), dt),
                );
            }
        }
        out.network = if a.interfaces.is_empty() || b.interfaces.is_empty() {
            net_rates((a.rx_bytes, b.rx_bytes), (a.tx_bytes, b.tx_bytes), dt)
        } else {
            net_rates(rx, tx, dt)
        };
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use broker::{Disk, DiskDevice, Network, NetworkInterface};

    #[test]
    fn every_registry_counter_has_a_host_wide_rate() {
        let some = DiskRates {
            read_bytes_rate: Some(1.0),
            write_bytes_rate: Some(2.0),
            ..DiskRates::default()
        };
        let r = Rates {
            disk: some,
            network: NetRates {
                rx_bytes_rate: Some(3.0),
                tx_bytes_rate: Some(4.0),
            },
            ..Rates::default()
        };
        let counters: Vec<_> = crate::registry::METRICS
            .iter()
            .filter(|m| m.kind == crate::registry::Kind::Counter)
            .map(|m| r.total(m.name))
            .collect();
        assert_eq!(counters, [Some(1.0), Some(2.0), Some(3.0), Some(4.0)]);
        assert_eq!(r.total("cpu_usage_percent"), None);
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
        let r = rates(
            &snap(1, 100, "b", 1000, 30_000),
            &snap(2, 115, "b", 1300, 60_000),
        )
        .unwrap();
        assert_eq!(r.disk.read_sectors_rate, Some(20.0));
        assert_eq!(r.disk.write_sectors_rate, Some(40.0));
        assert_eq!(r.disk.read_bytes_rate, Some(20.0 * 512.0));
        assert_eq!(r.network.rx_bytes_rate, Some(2000.0));
        assert_eq!(r.network.tx_bytes_rate, Some(1000.0));
        assert_eq!(r.disk_devices["sda"].read_sectors_rate, Some(20.0));
        assert_eq!(r.interfaces["eth0"].rx_bytes_rate, Some(2000.0));
    }

    #[test]
    fn reboot_starts_a_new_series() {
        // Counters drop and the boot id changes: no rate, not a negative or wrapped one.
        assert_eq!(
            rates(
                &snap(1, 100, "a", 1_000_000, 9_000_000),
                &snap(2, 115, "b", 10, 20)
            ),
            None
        );
        // Counters drop with the same boot id (a wrap, or a device replaced): that counter only.
        let r = rates(
            &snap(1, 100, "a", 1_000_000, 100),
            &snap(2, 115, "a", 10, 400),
        )
        .unwrap();
        assert_eq!(r.disk.read_sectors_rate, None);
        assert_eq!(r.network.rx_bytes_rate, Some(20.0));
    }

    #[test]
    fn no_rate_without_time_or_order() {
        assert_eq!(
            rates(&snap(2, 100, "a", 1, 1), &snap(2, 100, "a", 5, 5)),
            None,
            "same sample"
        );
        assert_eq!(
            rates(&snap(3, 100, "a", 1, 1), &snap(2, 115, "a", 5, 5)),
            None,
            "seq went back"
        );
        assert_eq!(
            rates(&snap(1, 115, "a", 1, 1), &snap(2, 100, "a", 5, 5)),
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
        let r = rates(&snap(1, 100, "a", 1000, 30_000), &b).unwrap();
        assert!(
            !r.disk_devices.contains_key("sdb"),
            "no rate for a device that just appeared"
        );
        assert_eq!(r.network, NetRates::default());
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
        let r = rates(&snap(1, 100, "a", 1000, 30_000), &b).unwrap();
        assert_eq!(r.disk.read_sectors_rate, Some(20.0), "sdb just appeared");
        assert_eq!(r.disk.write_sectors_rate, Some(40.0));
        // Seed-format snapshots (no per-device maps) use their totals.
        let (mut a, mut b) = (snap(1, 100, "a", 1000, 0), snap(2, 115, "a", 1300, 0));
        a.disk.as_mut().unwrap().devices.clear();
        b.disk.as_mut().unwrap().devices.clear();
        assert_eq!(rates(&a, &b).unwrap().disk.read_sectors_rate, Some(20.0));
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
}
