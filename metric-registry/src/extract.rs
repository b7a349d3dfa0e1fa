//! What the registry's extractors share: reading a snapshot's sections in base units.

use broker::{Snapshot, SECTOR_BYTES};

use super::{Sink, Value};

pub(super) fn gauge(sink: Sink<'_>, label: &str, v: Option<f64>) {
    if let Some(v) = v.filter(|v| v.is_finite()) {
        sink(label, Value::Gauge(v));
    }
}

/// Disk counters are sectors on the wire; the registry speaks bytes (base units).
fn sectors(n: u64) -> Value {
    Value::Counter(n.saturating_mul(SECTOR_BYTES))
}

/// A disk sector counter in bytes: the total, then each disk's.
pub(super) fn disk_sectors(
    s: &Snapshot,
    sink: Sink<'_>,
    total: fn(&broker::Disk) -> u64,
    device: fn(&broker::DiskDevice) -> u64,
) {
    if let Some(d) = &s.disk {
        sink("", sectors(total(d)));
        for (name, dev) in &d.devices {
            sink(name, sectors(device(dev)));
        }
    }
}

/// A network byte counter: the total, then each counted interface's.
pub(super) fn network_bytes(
    s: &Snapshot,
    sink: Sink<'_>,
    total: fn(&broker::Network) -> u64,
    interface: fn(&broker::NetworkInterface) -> u64,
) {
    if let Some(n) = &s.network {
        sink("", Value::Counter(total(n)));
        for (name, i) in &n.interfaces {
            sink(name, Value::Counter(interface(i)));
        }
    }
}

/// A disk I/O counter of every device that has it, and their sum as the total (none when no
/// device has it: a publisher that predates the field says nothing rather than 0).
pub(super) fn disk_io(s: &Snapshot, sink: Sink<'_>, field: fn(&broker::DiskDevice) -> Option<u64>) {
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
pub(super) fn filesystems(s: &Snapshot) -> impl Iterator<Item = (&String, &broker::Filesystem)> {
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
