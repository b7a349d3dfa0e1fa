//! The seed's field names, in one place: `/metrics`' rate fields (this file's alias table)
//! and `/history`'s columns ([`history`]). `/metrics` is the newest snapshot as received,
//! with these rate fields added beside its counters; their values are the store's (the one
//! rate rule, at ingest).

pub mod history;

use serde_json::{json, Value};

use crate::rates::Derived;
use broker::SECTOR_BYTES;

/// One rate field of the seed: the registry counter it shows, the snapshot section it is
/// written into (and the map of that section's devices, which get it per device), the field's
/// name, and the factor from the registry's unit (bytes/s) to the field's.
pub struct Alias {
    pub metric: &'static str,
    pub section: &'static str,
    pub devices: &'static str,
    pub field: &'static str,
    pub factor: f64,
}

const PER_SECTOR: f64 = 1.0 / SECTOR_BYTES as f64;

pub const ALIASES: &[Alias] = &[
    Alias {
        metric: "disk_read_bytes_rate",
        section: "disk",
        devices: "devices",
        field: "read_sectors_rate",
        factor: PER_SECTOR,
    },
    Alias {
        metric: "disk_write_bytes_rate",
        section: "disk",
        devices: "devices",
        field: "write_sectors_rate",
        factor: PER_SECTOR,
    },
    Alias {
        metric: "disk_read_bytes_rate",
        section: "disk",
        devices: "devices",
        field: "read_bytes_rate",
        factor: 1.0,
    },
    Alias {
        metric: "disk_write_bytes_rate",
        section: "disk",
        devices: "devices",
        field: "write_bytes_rate",
        factor: 1.0,
    },
    Alias {
        metric: "network_rx_bytes_rate",
        section: "network",
        devices: "interfaces",
        field: "rx_bytes_rate",
        factor: 1.0,
    },
    Alias {
        metric: "network_tx_bytes_rate",
        section: "network",
        devices: "interfaces",
        field: "tx_bytes_rate",
        factor: 1.0,
    },
];

/// Adds every alias's rate to the snapshot's JSON: the total in its section, each device's
/// in its entry; `null` where the store has none.
pub fn add_rates(body: &mut Value, rates: Option<&Derived>) {
    let rate = |metric: &str, label: &str, factor: f64| {
        json!(rates.and_then(|r| r.get(metric, label)).map(|v| v * factor))
    };
    for a in ALIASES {
        let Some(section) = body.get_mut(a.section).and_then(Value::as_object_mut) else {
            continue;
        };
        section.insert(a.field.into(), rate(a.metric, "", a.factor));
        if let Some(devices) = section.get_mut(a.devices).and_then(Value::as_object_mut) {
            for (name, dev) in devices.iter_mut() {
                if let Some(dev) = dev.as_object_mut() {
                    dev.insert(a.field.into(), rate(a.metric, name, a.factor));
                }
            }
        }
    }
}
