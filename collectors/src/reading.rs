//! What one sample read, before it becomes a snapshot.

use std::collections::BTreeMap;
use std::time::SystemTime;

use broker::{Cpu, Snapshot, Thermal};

/// Everything one sample reads, before it gets its host and seq.
#[derive(Debug, Clone, PartialEq)]
pub struct Reading {
    /// When the counters (CPU times, disk and network bytes) were read: the sample's time,
    /// which rates divide by. Taken before the slower collectors (hwmon, `statvfs`).
    pub read_at: SystemTime,
    pub boot_id: Option<String>,
    pub uptime_s: Option<f64>,
    pub cpu: Option<Cpu>,
    pub memory: Option<broker::Memory>,
    pub thermal: Thermal,
    pub disk: Option<broker::Disk>,
    pub network: Option<broker::Network>,
    pub filesystems: Option<BTreeMap<String, Option<broker::Filesystem>>>,
    pub power: Option<broker::Power>,
    pub processes: Option<broker::Processes>,
    /// Filled by the caller ([`units`], async), not by [`Collectors::sample`].
    pub failed_units: Option<Vec<broker::FailedUnit>>,
}

impl Reading {
    /// Fills a snapshot's measured fields from this reading.
    pub fn into_snapshot(self, mut base: Snapshot) -> Snapshot {
        base.boot_id = self.boot_id;
        base.uptime_s = self.uptime_s;
        base.cpu = self.cpu;
        base.memory = self.memory;
        base.thermal = self.thermal;
        base.disk = self.disk;
        base.network = self.network;
        base.filesystems = self.filesystems;
        base.power = self.power;
        base.processes = self.processes;
        base.failed_units = self.failed_units;
        base
    }
}
