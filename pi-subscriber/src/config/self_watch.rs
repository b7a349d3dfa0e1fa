//! `[self]`: the Pi samples its own machine (`crate::self_watch`).

use std::path::PathBuf;
use std::time::Duration;

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SelfSettings {
    pub enabled: bool,
    #[serde(with = "daemon_kit::duration")]
    pub interval: Duration,
    /// The host id it is stored under; empty: the machine's (as the publisher picks its own).
    pub host: String,
    /// Where procfs and sysfs are (fixture trees in tests).
    pub proc_root: PathBuf,
    pub sys_root: PathBuf,
    /// Ask systemd for failed units too.
    pub units: bool,
}

impl Default for SelfSettings {
    fn default() -> Self {
        Self {
            enabled: true,
            interval: Duration::from_secs(15),
            host: String::new(),
            proc_root: PathBuf::from("/proc"),
            sys_root: PathBuf::from("/sys"),
            units: true,
        }
    }
}

impl SelfSettings {
    /// A bad key and why.
    pub fn validate(&self) -> Result<(), (&'static str, String)> {
        if !(Duration::from_millis(100)..=Duration::from_secs(3600)).contains(&self.interval) {
            return Err(("self.interval", "must be from 100ms to 1h".into()));
        }
        if !self.host.is_empty() {
            broker::validate_host_id(&self.host).map_err(|e| ("self.host", e.to_string()))?;
        }
        Ok(())
    }
}
