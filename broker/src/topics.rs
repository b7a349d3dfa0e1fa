//! MQTT topic layout: `<prefix>/<host>/{snapshot,status,events}`.

/// The default topic prefix, so `mosquitto_sub -t 'server-analytics/#'` sees everything.
pub const DEFAULT_PREFIX: &str = "server-analytics";

/// Longest host id, in bytes (Linux's HOST_NAME_MAX).
pub const MAX_HOST_ID_BYTES: usize = 64;

/// A host id that cannot be used in a topic.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum HostIdError {
    #[error("host id is empty")]
    Empty,
    #[error("host id is {0} bytes long; at most 64 are allowed")]
    TooLong(usize),
    #[error("host id {0:?} may only contain A-Z, a-z, 0-9, '_' and '-' (it becomes an MQTT topic level)")]
    BadCharacter(String),
}

/// Checks a host id: it is one MQTT topic level and a Prometheus label value, so it is kept to
/// `[A-Za-z0-9_-]{1,64}` (no `/`, `+`, `#` or spaces that would change what a subscription
/// matches).
pub fn validate_host_id(host: &str) -> Result<(), HostIdError> {
    if host.is_empty() {
        return Err(HostIdError::Empty);
    }
    if host.len() > MAX_HOST_ID_BYTES {
        return Err(HostIdError::TooLong(host.len()));
    }
    if host
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
    {
        Ok(())
    } else {
        Err(HostIdError::BadCharacter(host.to_owned()))
    }
}

/// The topics of one host under one prefix.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Topics {
    /// Latest snapshot, retained, QoS 1.
    pub snapshot: String,
    /// `online` / `offline`, retained.
    pub status: String,
    /// Job events, QoS 1, not retained.
    pub events: String,
}

impl Topics {
    pub fn new(prefix: &str, host: &str) -> Self {
        let prefix = prefix.trim_end_matches('/');
        Self {
            snapshot: format!("{prefix}/{host}/snapshot"),
            status: format!("{prefix}/{host}/status"),
            events: format!("{prefix}/{host}/events"),
        }
    }

    /// Subscription filters that match every host under `prefix`.
    pub fn all_hosts(prefix: &str) -> [String; 3] {
        let prefix = prefix.trim_end_matches('/');
        [
            format!("{prefix}/+/snapshot"),
            format!("{prefix}/+/status"),
            format!("{prefix}/+/events"),
        ]
    }

    /// Splits a topic into `(host, kind)` when it is `<prefix>/<host>/<kind>`.
    pub fn parse<'a>(prefix: &str, topic: &'a str) -> Option<(&'a str, &'a str)> {
        let rest = topic
            .strip_prefix(prefix.trim_end_matches('/'))?
            .strip_prefix('/')?;
        let (host, kind) = rest.split_once('/')?;
        if kind.contains('/') || validate_host_id(host).is_err() {
            return None;
        }
        Some((host, kind))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn topics_follow_the_spec_layout() {
        let t = Topics::new("server-analytics", "tower");
        assert_eq!(t.snapshot, "server-analytics/tower/snapshot");
        assert_eq!(t.status, "server-analytics/tower/status");
        assert_eq!(t.events, "server-analytics/tower/events");
        assert_eq!(Topics::new("a/b/", "h").status, "a/b/h/status");
        assert_eq!(Topics::all_hosts("p")[0], "p/+/snapshot");
    }

    #[test]
    fn host_ids_are_one_safe_topic_level() {
        assert_eq!(validate_host_id("tower-01_b"), Ok(()));
        assert_eq!(validate_host_id(""), Err(HostIdError::Empty));
        assert_eq!(validate_host_id(&"h".repeat(64)), Ok(()));
        assert_eq!(
            validate_host_id(&"h".repeat(65)),
            Err(HostIdError::TooLong(65))
        );
        for bad in ["a/b", "a+", "#", "my host", "tõwer"] {
            assert!(validate_host_id(bad).is_err(), "{bad} accepted");
        }
    }

    #[test]
    fn parse_splits_host_and_kind() {
        assert_eq!(
            Topics::parse("server-analytics", "server-analytics/tower/snapshot"),
            Some(("tower", "snapshot"))
        );
        assert_eq!(
            Topics::parse("server-analytics", "other/tower/snapshot"),
            None
        );
        assert_eq!(
            Topics::parse("server-analytics", "server-analytics/a/b/c"),
            None
        );
        assert_eq!(
            Topics::parse("server-analytics", "server-analytics/a b/status"),
            None
        );
    }
}
