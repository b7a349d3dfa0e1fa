//! The wire contract between the publisher and the Pi subscriber, and the embedded broker.
//!
//! Everything that crosses the broker lives here: the snapshot and job-event payload types
//! ([`wire`]), the MQTT topic layout ([`topics`]) and the `[broker]` settings ([`settings`]).
//! These depend on neither side, so `pi-subscriber` uses this crate with
//! `default-features = false` and gets no broker code. The rumqttd launcher ([`embedded`]) and
//! its retained-store guard ([`retain`]) are behind the default `embedded` feature. What the
//! daemons share besides the contract (logging, config layering, record files...) is the
//! `daemon-kit` crate.

#[cfg(feature = "embedded")]
pub mod embedded;
#[cfg(feature = "embedded")]
pub mod retain;
pub mod settings;
pub mod topics;
pub mod wire;

pub use settings::{BrokerConfigError, BrokerMode, BrokerSettings, BrokerUser};
pub use topics::{validate_host_id, HostIdError, Topics, DEFAULT_PREFIX};
pub use wire::{
    Cpu, Disk, DiskDevice, FailedUnit, Filesystem, JobEnd, JobEvent, JobStart, Memory, Network,
    NetworkInterface, Power, ProcessTop, Processes, Snapshot, Thermal, SECTOR_BYTES,
    SNAPSHOT_VERSION,
};
