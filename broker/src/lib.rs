//! The wire contract between the publisher and the Pi subscriber.
//!
//! Everything that crosses the broker lives here: the snapshot and job-event payload types
//! ([`wire`]) and the MQTT topic layout ([`topics`]). This module depends on neither side, so
//! `pi-subscriber` can use it with `default-features = false` and get no broker code.

pub mod topics;
pub mod wire;

pub use topics::{validate_host_id, HostIdError, Topics, DEFAULT_PREFIX};
pub use wire::{
    Cpu, Disk, DiskDevice, JobEnd, JobEvent, JobStart, Memory, Network, NetworkInterface, Snapshot,
    Thermal, SECTOR_BYTES, SNAPSHOT_VERSION,
};
