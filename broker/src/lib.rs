//! The wire contract between the publisher and the Pi subscriber, and the embedded broker.
//!
//! Everything that crosses the broker lives here: the snapshot and job-event payload types
//! ([`wire`]), the MQTT topic layout ([`topics`]) and the `[broker]` settings ([`settings`]);
//! also what both daemons share without depending on each other: reconnect pacing
//! ([`backoff`]) and the checksummed line format of their local logs ([`record`]).
//! These depend on neither side, so `pi-subscriber` uses this crate with
//! `default-features = false` and gets no broker code. The rumqttd launcher ([`embedded`]) is
//! behind the default `embedded` feature.

pub mod backoff;
#[cfg(feature = "daemon")]
pub mod daemon;
pub mod duration;
#[cfg(feature = "embedded")]
pub mod embedded;
#[cfg(feature = "http")]
pub mod http_error;
pub mod record;
#[cfg(feature = "embedded")]
pub mod retain;
pub mod settings;
#[cfg(feature = "tls")]
pub mod tls;
pub mod topics;
pub mod wire;

pub use settings::{BrokerConfigError, BrokerMode, BrokerSettings, BrokerUser};
pub use topics::{validate_host_id, HostIdError, Topics, DEFAULT_PREFIX};
pub use wire::{
    Cpu, Disk, DiskDevice, Filesystem, JobEnd, JobEvent, JobStart, Memory, Network,
    NetworkInterface, Snapshot, Thermal, SECTOR_BYTES, SNAPSHOT_VERSION,
};
