//! The plumbing both daemons share: logging and signals ([`daemon`]), config layering and the
//! settings error ([`settings`]), the HTTP error type ([`http_error`]), crash-safe record files
//! ([`record`]), reconnect backoff ([`backoff`]), durations in config files ([`duration`]), the
//! counters shared with `/health` ([`stats`]), the TLS client towards an external MQTT
//! broker ([`tls`]), the one MQTT client link ([`mqtt`]), the wall clock ([`clock`]) and a ticker
//! that wakes its thread once a tick ([`tick`]), and the resident set trimmed after start-up
//! ([`trim`]).
//!
//! None of it knows about snapshots, topics or the broker; that is the `broker` crate's wire
//! contract. The publisher, the Pi subscriber and the standalone broker binary all use it.

pub mod backoff;
pub mod clock;
pub mod daemon;
pub mod duration;
pub mod http_error;
pub mod mqtt;
pub mod record;
pub mod settings;
pub mod stats;
pub mod tick;
pub mod tls;
pub mod trim;
