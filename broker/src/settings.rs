//! The `[broker]` settings: the embedded broker's listener and limits, or the external broker
//! to publish to, and what both sides share (credentials, topic prefix).
//!
//! Plain serde types with no broker code, so both the publisher and the standalone `broker`
//! binary read the same `[broker]` table.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::topics::DEFAULT_PREFIX;

/// Whether the publisher runs its own broker or publishes to someone else's.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum BrokerMode {
    /// rumqttd inside the publisher process (the default: nothing else to install).
    #[default]
    Embedded,
    /// Any MQTT 3.1.1 broker (mosquitto, EMQX, HiveMQ): how a fleet outgrows one machine.
    External,
    /// No MQTT at all: HTTP only.
    Off,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct BrokerSettings {
    pub mode: BrokerMode,
    /// Embedded: where the MQTT 3.1.1 listener binds. Loopback by default (mosquitto 2.0's
    /// rule); bind the VPN address to serve the Pi. Port 0 picks a free port (tests).
    pub listen: SocketAddr,
    /// Embedded: a non-loopback listener without credentials is refused unless this is set,
    /// as in mosquitto 2.0.
    pub allow_anonymous: bool,
    /// Embedded: most clients connected at once.
    pub max_connections: usize,
    /// Embedded: largest MQTT packet accepted (a snapshot of a big machine is ~20 KB).
    pub max_payload_size: usize,
    /// Embedded: rumqttd keeps a replay log per subscription filter of at most
    /// `max_segment_size × max_segment_count` bytes. Its sample config allows 100 MB × 10
    /// (1 GB per filter). 256 KiB × 2 holds ~250 snapshots of 2 KB, an hour at 15 s: a
    /// subscriber that stops reading is cut off after `stall_timeout` long before, and the
    /// retained guard sweeps when a flood outruns its log. A log stays full once filled, so
    /// each filter costs its size in RSS for good (256 KiB × 4 cost ~1.7 MB for the two a
    /// publisher has; issue 22).
    pub max_segment_size: usize,
    pub max_segment_count: usize,
    /// Embedded: a connection that takes no data for this long (a client that stopped
    /// reading, a peer gone without a word) is closed by the kernel (`TCP_USER_TIMEOUT` on
    /// the listener), and rumqttd frees the up to 200 messages it queues for it. `0s`: never.
    #[serde(with = "daemon_kit::duration")]
    pub stall_timeout: Duration,
    /// External: the broker's host name or address.
    pub host: String,
    /// External: the broker's port (8883 is usual with TLS).
    pub port: u16,
    /// External: connect with TLS.
    pub tls: bool,
    /// External, with TLS: a PEM file of CA certificates to trust instead of the system's.
    pub ca_file: Option<PathBuf>,
    /// Credentials: required of clients by the embedded broker, presented to an external one.
    pub username: Option<String>,
    pub password: Option<String>,
    /// Embedded: more logins (`[[broker.users]]`), one per client (the publisher itself uses
    /// `username`/`password`). rumqttd has no ACLs: every login may publish and subscribe to
    /// every topic.
    pub users: Vec<BrokerUser>,
    /// Embedded: MQTT filters of the topics that may hold a retained message; empty means the
    /// prefix's `<prefix>/+/snapshot`, `/status`, `/events`, `<prefix>/+/alerts/#` (the Pi's
    /// alerts), `<prefix>/+/ha/#`, `<prefix>/pi/+/availability` and `<discovery_prefix>/#`
    /// (the Pi's Home Assistant discovery). Anything retained elsewhere is cleared as it
    /// arrives.
    pub retained_topics: Vec<String>,
    /// Embedded: Home Assistant's discovery prefix (the Pi's `homeassistant.discovery_prefix`):
    /// `<discovery_prefix>/#` keeps retained messages by default, and like the topic prefix's
    /// own topics they are never cleared to make room (an empty config deletes an entity).
    pub discovery_prefix: String,
    /// Embedded: a retained payload larger than this is cleared.
    pub max_retained_payload: usize,
    /// Embedded: at most this many topics hold a retained message; a new topic beyond them is
    /// cleared. At most 192 (rumqttd shows the guard 200 retained messages per sweep).
    pub max_retained: usize,
    /// Topics are `<topic_prefix>/<host>/{snapshot,status,events}`.
    pub topic_prefix: String,
    /// MQTT client id of the publisher; empty means `publisher-<host>`.
    pub client_id: String,
    /// MQTT keep-alive of the publisher's connection.
    #[serde(with = "daemon_kit::duration")]
    pub keep_alive: Duration,
}

impl Default for BrokerSettings {
    fn default() -> Self {
        Self {
            mode: BrokerMode::Embedded,
            listen: SocketAddr::from(([127, 0, 0, 1], 1883)),
            allow_anonymous: false,
            max_connections: 64,
            max_payload_size: 256 * 1024,
            max_segment_size: 256 * 1024,
            max_segment_count: 2,
            stall_timeout: Duration::from_secs(30),
            host: "127.0.0.1".to_owned(),
            port: 1883,
            tls: false,
            ca_file: None,
            username: None,
            password: None,
            users: Vec::new(),
            retained_topics: Vec::new(),
            discovery_prefix: "homeassistant".to_owned(),
            max_retained_payload: 64 * 1024,
            max_retained: 192,
            topic_prefix: DEFAULT_PREFIX.to_owned(),
            client_id: String::new(),
            keep_alive: Duration::from_secs(30),
        }
    }
}

/// One login of the embedded broker (`[[broker.users]]`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BrokerUser {
    pub username: String,
    pub password: String,
}

/// Most `[[broker.users]]` entries.
pub const MAX_USERS: usize = 256;
/// `broker.stall_timeout`'s range (besides 0, never).
pub const MIN_STALL_TIMEOUT: Duration = Duration::from_secs(1);
pub const MAX_STALL_TIMEOUT: Duration = Duration::from_secs(3600);
/// Largest `broker.max_retained` (see `retain::SWEEP_WINDOW`).
pub const MAX_RETAINED: usize = 192;

/// A `[broker]` value that cannot work, with the key it concerns.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("configuration key `broker.{key}`: {reason}")]
pub struct BrokerConfigError {
    pub key: &'static str,
    pub reason: String,
}

/// The publisher's settings carry the `[broker]` section's error as it is (its message names
/// `broker.<key>`).
impl From<BrokerConfigError> for daemon_kit::settings::SettingsError {
    fn from(e: BrokerConfigError) -> Self {
        Self::Section(Box::new(e))
    }
}

fn invalid(key: &'static str, reason: impl Into<String>) -> BrokerConfigError {
    BrokerConfigError {
        key,
        reason: reason.into(),
    }
}

impl BrokerSettings {
    /// Username and password, when both are set.
    pub fn credentials(&self) -> Option<(&str, &str)> {
        match (&self.username, &self.password) {
            (Some(u), Some(p)) if !u.is_empty() => Some((u, p)),
            _ => None,
        }
    }

    /// Every login the embedded broker accepts: `username`/`password` and `[[broker.users]]`.
    /// `None` when there is none (anonymous).
    pub fn logins(&self) -> Option<std::collections::HashMap<String, String>> {
        let logins: std::collections::HashMap<String, String> = self
            .credentials()
            .map(|(u, p)| (u.to_owned(), p.to_owned()))
            .into_iter()
            .chain(
                self.users
                    .iter()
                    .map(|u| (u.username.clone(), u.password.clone())),
            )
            .collect();
        (!logins.is_empty()).then_some(logins)
    }

    /// The filters of the topics that may hold a retained message.
    pub fn retained_filters(&self) -> Vec<String> {
        if self.retained_topics.is_empty() {
            let mut filters = crate::Topics::all_hosts(&self.topic_prefix).to_vec();
            let prefix = self.topic_prefix.trim_end_matches('/');
            // The Pi's `mqtt` alert notifier keeps each alert's state there; its Home
            // Assistant discovery (pointed at this broker) its state, availability and
            // configs (at HA's default discovery prefix).
            filters.extend([
                format!("{prefix}/+/alerts/#"),
                format!("{prefix}/+/ha/#"),
                format!("{prefix}/pi/+/availability"),
                format!("{}/#", self.discovery_prefix),
            ]);
            filters
        } else {
            self.retained_topics.clone()
        }
    }

    /// The filters of the topics never cleared to make room: the topic prefix's and the
    /// discovery prefix's.
    pub fn protected_filters(&self) -> Vec<String> {
        vec![
            format!("{}/#", self.topic_prefix.trim_end_matches('/')),
            format!("{}/#", self.discovery_prefix),
        ]
    }

    /// A copy safe to print: passwords replaced by `"<redacted>"`.
    pub fn redacted(&self) -> Self {
        let mut copy = self.clone();
        if copy.password.is_some() {
            copy.password = Some("<redacted>".to_owned());
        }
        for user in &mut copy.users {
            user.password = "<redacted>".to_owned();
        }
        copy
    }

    /// The embedded broker's logins and retained-store bound.
    fn validate_embedded(&self) -> Result<(), BrokerConfigError> {
        if self.users.len() > MAX_USERS {
            return Err(invalid("users", format!("at most {MAX_USERS} entries")));
        }
        let mut seen = std::collections::HashSet::new();
        for user in &self.users {
            if user.username.is_empty() || user.username.len() > 256 || user.password.len() > 256 {
                return Err(invalid(
                    "users",
                    format!(
                        "username {:?}: usernames must be 1-256 bytes, passwords at most 256",
                        user.username
                    ),
                ));
            }
            let clashes = self.username.as_deref() == Some(user.username.as_str())
                && self.password.as_deref() != Some(user.password.as_str());
            if !seen.insert(user.username.as_str()) || clashes {
                return Err(invalid(
                    "users",
                    format!("username {:?} is given twice", user.username),
                ));
            }
        }
        if self.retained_topics.len() > 64 {
            return Err(invalid("retained_topics", "at most 64 filters"));
        }
        for filter in &self.retained_topics {
            let bad_hash = filter.contains('#') && !(filter == "#" || filter.ends_with("/#"))
                || filter.matches('#').count() > 1;
            let bad_plus = filter.split('/').any(|l| l.contains('+') && l != "+");
            if filter.is_empty()
                || filter.len() > 1024
                || filter.contains('\0')
                || bad_hash
                || bad_plus
            {
                return Err(invalid(
                    "retained_topics",
                    format!("{filter:?} is not an MQTT topic filter"),
                ));
            }
        }
        let d = &self.discovery_prefix;
        if d.is_empty()
            || d.len() > 64
            || d.contains(['+', '#', '\0'])
            || d.starts_with('/')
            || d.ends_with('/')
        {
            return Err(invalid(
                "discovery_prefix",
                format!("{d:?} is not a topic prefix (1 to 64 bytes, without + # NUL or a leading/trailing /)"),
            ));
        }
        if self.max_retained > MAX_RETAINED {
            return Err(invalid(
                "max_retained",
                format!(
                    "at most {MAX_RETAINED}: rumqttd shows the retained-store guard 200 messages per sweep"
                ),
            ));
        }
        if self.max_retained_payload > self.max_payload_size {
            return Err(invalid(
                "max_retained_payload",
                "must not exceed broker.max_payload_size",
            ));
        }
        Ok(())
    }

    /// Checks the values against each other.
    pub fn validate(&self) -> Result<(), BrokerConfigError> {
        if self.username.is_some() != self.password.is_some() {
            return Err(invalid(
                if self.username.is_some() {
                    "password"
                } else {
                    "username"
                },
                "username and password go together",
            ));
        }
        if self.username.as_deref() == Some("") {
            return Err(invalid("username", "must not be empty"));
        }
        let prefix = &self.topic_prefix;
        if prefix.is_empty()
            || prefix.contains(['+', '#', '\0'])
            || prefix.starts_with('/')
            || prefix.ends_with('/')
            || prefix.contains("//")
        {
            return Err(invalid(
                "topic_prefix",
                format!(
                    "{prefix:?} must be non-empty topic levels without '+', '#', or empty levels"
                ),
            ));
        }
        if self.keep_alive < Duration::from_secs(1) {
            return Err(invalid(
                "keep_alive",
                "must be at least 1s (rumqttd refuses 0)",
            ));
        }
        match self.mode {
            BrokerMode::Embedded => {
                self.validate_embedded()?;
                if !self.listen.ip().is_loopback()
                    && self.logins().is_none()
                    && !self.allow_anonymous
                {
                    return Err(invalid(
                        "listen",
                        format!(
                            "{} is reachable from other machines: set broker.username and broker.password, \
                             or allow_anonymous = true to accept anyone (as mosquitto 2.0 requires)",
                            self.listen
                        ),
                    ));
                }
                if self.max_connections == 0 {
                    return Err(invalid("max_connections", "must be at least 1"));
                }
                if self.max_payload_size < 1024 {
                    return Err(invalid("max_payload_size", "must be at least 1024 bytes"));
                }
                // rumqttd panics below these.
                if self.max_segment_size < 1024 {
                    return Err(invalid("max_segment_size", "must be at least 1024 bytes"));
                }
                if self.max_segment_count == 0 {
                    return Err(invalid("max_segment_count", "must be at least 1"));
                }
                if !(self.stall_timeout.is_zero()
                    || (MIN_STALL_TIMEOUT..=MAX_STALL_TIMEOUT).contains(&self.stall_timeout))
                {
                    return Err(invalid(
                        "stall_timeout",
                        "must be 0s (never) or between 1s and 1h",
                    ));
                }
            }
            BrokerMode::External => {
                if self.host.is_empty() {
                    return Err(invalid("host", "must be set in external mode"));
                }
                if self.port == 0 {
                    return Err(invalid("port", "must be set in external mode"));
                }
                if self.ca_file.is_some() && !self.tls {
                    return Err(invalid("ca_file", "is only used with tls = true"));
                }
            }
            BrokerMode::Off => {}
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_valid_and_loopback() {
        let s = BrokerSettings::default();
        assert_eq!(s.validate(), Ok(()));
        assert!(s.listen.ip().is_loopback());
        assert_eq!(s.listen.port(), 1883);
    }

    #[test]
    fn the_default_retained_filters_keep_the_pis_alerts_and_home_assistant_topics() {
        assert_eq!(
            BrokerSettings::default().retained_filters(),
            [
                "server-analytics/+/snapshot",
                "server-analytics/+/status",
                "server-analytics/+/events",
                "server-analytics/+/alerts/#",
                "server-analytics/+/ha/#",
                "server-analytics/pi/+/availability",
                "homeassistant/#",
            ]
        );
    }

    #[test]
    fn the_discovery_prefix_is_kept_and_protected_with_the_topic_prefix() {
        let s = BrokerSettings {
            discovery_prefix: "ha".into(),
            ..BrokerSettings::default()
        };
        assert_eq!(
            s.retained_filters().last().map(String::as_str),
            Some("ha/#")
        );
        assert_eq!(s.protected_filters(), ["server-analytics/#", "ha/#"]);
        for bad in ["", "ha/#", "/ha", "ha/"] {
            let s = BrokerSettings {
                discovery_prefix: bad.into(),
                ..BrokerSettings::default()
            };
            assert_eq!(s.validate().unwrap_err().key, "discovery_prefix", "{bad:?}");
        }
    }

    #[test]
    fn open_listener_needs_credentials_or_allow_anonymous() {
        let mut s = BrokerSettings {
            listen: "0.0.0.0:1883".parse().unwrap(),
            ..BrokerSettings::default()
        };
        let e = s.validate().unwrap_err();
        assert_eq!(e.key, "listen");
        assert!(e.to_string().contains("broker.listen"));
        s.allow_anonymous = true;
        assert_eq!(s.validate(), Ok(()));
        s.allow_anonymous = false;
        s.username = Some("pi".into());
        assert_eq!(s.validate().unwrap_err().key, "password");
        s.password = Some("secret".into());
        assert_eq!(s.validate(), Ok(()));
    }

    #[test]
    fn bad_values_name_their_key() {
        let key = |s: BrokerSettings| s.validate().unwrap_err().key;
        for prefix in ["", "a/#", "/a", "a/", "a//b", "a+b"] {
            let s = BrokerSettings {
                topic_prefix: prefix.into(),
                ..BrokerSettings::default()
            };
            assert_eq!(key(s), "topic_prefix", "{prefix:?}");
        }
        assert_eq!(
            key(BrokerSettings {
                max_segment_size: 10,
                ..BrokerSettings::default()
            }),
            "max_segment_size"
        );
        assert_eq!(
            key(BrokerSettings {
                mode: BrokerMode::External,
                host: String::new(),
                ..BrokerSettings::default()
            }),
            "host"
        );
        for stall in [Duration::from_millis(500), Duration::from_secs(3601)] {
            let s = BrokerSettings {
                stall_timeout: stall,
                ..BrokerSettings::default()
            };
            assert_eq!(key(s), "stall_timeout", "{stall:?}");
        }
        assert_eq!(
            key(BrokerSettings {
                keep_alive: Duration::ZERO,
                ..BrokerSettings::default()
            }),
            "keep_alive"
        );
    }

    #[test]
    fn a_broker_error_keeps_its_message_in_the_daemons_settings_error() {
        let e: daemon_kit::settings::SettingsError = invalid("users", "at most 64 entries").into();
        assert_eq!(
            e.to_string(),
            "configuration key `broker.users`: at most 64 entries"
        );
    }
}
