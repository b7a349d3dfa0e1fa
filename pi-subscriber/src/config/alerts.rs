//! `[alerts]`: the built-in rules' thresholds, user rules and notifiers, validated at load so a
//! typo is an error naming its key, never a rule that silently never fires.

use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::registry;

/// The built-in rules' names (a user rule may not take one).
pub const BUILTIN_NAMES: [&str; 11] = [
    "remote_write_behind",
    "unit_failed",
    "job_missed",
    "job_overrun",
    "host_down",
    "cpu_temp",
    "memory_used",
    "filesystem_used",
    "under_voltage",
    "job_failed",
    "reboot",
];

/// User rules at most.
pub const MAX_RULES: usize = 100;
/// Notifiers at most.
pub const MAX_NOTIFIERS: usize = 16;
/// Longest rule name.
pub const MAX_NAME: usize = 64;

/// How bad an alert is; notifiers send from their `min_severity` up.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize, Default,
)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    Info,
    #[default]
    Warning,
    Critical,
}

impl Severity {
    pub fn as_str(self) -> &'static str {
        match self {
            Severity::Info => "info",
            Severity::Warning => "warning",
            Severity::Critical => "critical",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AlertSettings {
    /// Evaluate rules at all.
    pub enabled: bool,
    /// Re-send an alert still firing this often (0s: never).
    #[serde(with = "daemon_kit::duration")]
    pub repeat_interval: Duration,
    /// Notifications waiting per notifier at most; more are dropped and counted.
    pub queue: usize,
    /// Attempts per notification (the first included) before it is given up and counted.
    pub max_attempts: u32,
    pub builtin: Builtin,
    pub rule: Vec<UserRule>,
    pub notify: Vec<Notifier>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Builtin {
    /// A host silent for longer than `health.max_age`.
    pub host_down: bool,
    pub cpu_temp: Levels,
    pub memory_used: Levels,
    /// Per mount (the registry says which metric each built-in rule watches).
    pub filesystem_used: Levels,
    /// A Raspberry Pi's supply below its threshold now (`power_under_voltage` is 1), on the
    /// first sample that shows it.
    pub under_voltage: Levels,
    /// One alert per failed systemd unit, on the first sample that shows it; resolved on the
    /// first that no longer does (recovered, or `systemctl reset-failed`).
    pub unit_failed: Levels,
    /// A `job_end` with a non-zero exit code, a signal or a start error.
    pub job_failed: bool,
    /// A new `boot_id`.
    pub reboot: bool,
    /// An expected job (`[[jobs.expect]]`) that did not start by its due time plus grace.
    pub job_missed: bool,
    /// An expected job still running after its `max_duration`.
    pub job_overrun: bool,
    /// A remote write receiver whose oldest unsent sample is this many seconds behind.
    pub remote_write_behind: Levels,
}

/// A threshold built-in rule: `warning` (and `critical` where given) above, `clear` below.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Levels {
    #[serde(default = "yes")]
    pub enabled: bool,
    pub warning: f64,
    #[serde(default)]
    pub critical: Option<f64>,
    /// Resolved only below this (hysteresis); default: `warning`.
    #[serde(default)]
    pub clear: Option<f64>,
    #[serde(rename = "for", with = "daemon_kit::duration", default)]
    pub for_: Duration,
}

fn yes() -> bool {
    true
}

/// `[[alerts.rule]]`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UserRule {
    pub name: String,
    /// A registry metric (`GET /series/metrics`).
    pub metric: String,
    #[serde(default)]
    pub above: Option<f64>,
    #[serde(default)]
    pub below: Option<f64>,
    /// Resolved only once past this (hysteresis); default: the threshold.
    #[serde(default)]
    pub clear: Option<f64>,
    #[serde(rename = "for", with = "daemon_kit::duration", default)]
    pub for_: Duration,
    #[serde(default)]
    pub severity: Severity,
    /// Only these hosts (empty: every host).
    #[serde(default)]
    pub hosts: Vec<String>,
    /// Only this device/interface/mount/core/sensor (empty: each one and the total).
    #[serde(default)]
    pub label: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum NotifierKind {
    Webhook,
    Ntfy,
    Alertmanager,
    Command,
    /// Retained state on `<prefix>/<host>/alerts/<rule>` of the Pi's `[mqtt]` broker.
    Mqtt,
}

impl NotifierKind {
    pub fn as_str(self) -> &'static str {
        match self {
            NotifierKind::Webhook => "webhook",
            NotifierKind::Ntfy => "ntfy",
            NotifierKind::Alertmanager => "alertmanager",
            NotifierKind::Command => "command",
            NotifierKind::Mqtt => "mqtt",
        }
    }
}

/// `[[alerts.notify]]`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Notifier {
    pub kind: NotifierKind,
    /// webhook: the URL POSTed to; ntfy: the topic URL; alertmanager: its base URL.
    #[serde(default)]
    pub url: Option<String>,
    /// command: the program and its arguments (alert JSON on stdin).
    #[serde(default)]
    pub command: Vec<String>,
    #[serde(default = "info")]
    pub min_severity: Severity,
    /// Per attempt.
    #[serde(with = "daemon_kit::duration", default = "ten_seconds")]
    pub timeout: Duration,
}

fn info() -> Severity {
    Severity::Info
}

fn ten_seconds() -> Duration {
    Duration::from_secs(10)
}

impl Default for AlertSettings {
    fn default() -> Self {
        Self {
            enabled: true,
            repeat_interval: Duration::from_secs(4 * 3600),
            queue: 256,
            max_attempts: 5,
            builtin: Builtin::default(),
            rule: Vec::new(),
            notify: Vec::new(),
        }
    }
}

impl Default for Builtin {
    fn default() -> Self {
        Self {
            host_down: true,
            cpu_temp: Levels {
                enabled: true,
                warning: 70.0,
                critical: Some(85.0),
                clear: Some(65.0),
                for_: Duration::from_secs(60),
            },
            memory_used: Levels {
                enabled: true,
                warning: 90.0,
                critical: None,
                clear: Some(85.0),
                for_: Duration::from_secs(300),
            },
            filesystem_used: Levels {
                enabled: true,
                warning: 85.0,
                critical: Some(95.0),
                clear: Some(80.0),
                for_: Duration::from_secs(300),
            },
            under_voltage: Levels {
                enabled: true,
                warning: 0.5,
                critical: Some(0.5),
                clear: Some(0.5),
                for_: Duration::ZERO,
            },
            unit_failed: Levels {
                enabled: true,
                warning: 0.5,
                critical: None,
                clear: Some(0.5),
                for_: Duration::ZERO,
            },
            job_failed: true,
            reboot: true,
            job_missed: true,
            job_overrun: true,
            remote_write_behind: Levels {
                enabled: true,
                warning: 300.0,
                critical: Some(3600.0),
                clear: Some(60.0),
                for_: Duration::ZERO,
            },
        }
    }
}

/// A bad key: (the key, why).
pub type Invalid = (&'static str, String);

fn valid_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= MAX_NAME
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
}

impl Builtin {
    /// The levels of the built-in threshold rule called `name` (the registry names the metric
    /// each one watches).
    pub fn levels(&self, name: &str) -> Option<&Levels> {
        match name {
            "cpu_temp" => Some(&self.cpu_temp),
            "memory_used" => Some(&self.memory_used),
            "filesystem_used" => Some(&self.filesystem_used),
            "under_voltage" => Some(&self.under_voltage),
            "unit_failed" => Some(&self.unit_failed),
            "remote_write_behind" => Some(&self.remote_write_behind),
            _ => None,
        }
    }
}

impl AlertSettings {
    pub fn validate(&self) -> Result<(), Invalid> {
        if self.queue == 0 || self.queue > 10_000 {
            return Err(("alerts.queue", "must be 1..=10000".into()));
        }
        if self.max_attempts == 0 || self.max_attempts > 20 {
            return Err(("alerts.max_attempts", "must be 1..=20".into()));
        }
        for (key, l) in [
            ("alerts.builtin.cpu_temp", &self.builtin.cpu_temp),
            ("alerts.builtin.memory_used", &self.builtin.memory_used),
            (
                "alerts.builtin.filesystem_used",
                &self.builtin.filesystem_used,
            ),
            ("alerts.builtin.under_voltage", &self.builtin.under_voltage),
            ("alerts.builtin.unit_failed", &self.builtin.unit_failed),
        ] {
            let finite = l.warning.is_finite()
                && l.critical.is_none_or(f64::is_finite)
                && l.clear.is_none_or(f64::is_finite);
            if !finite
                || l.critical.is_some_and(|c| c < l.warning)
                || l.clear.is_some_and(|c| c > l.warning)
            {
                return Err((
                    key,
                    "needs clear ≤ warning ≤ critical, finite numbers".into(),
                ));
            }
        }
        if self.rule.len() > MAX_RULES {
            return Err(("alerts.rule", format!("at most {MAX_RULES} rules")));
        }
        let mut seen = std::collections::BTreeSet::new();
        for r in &self.rule {
            self.check_rule(r)?;
            if !seen.insert(r.name.as_str()) {
                return Err(("alerts.rule.name", format!("{:?} is used twice", r.name)));
            }
        }
        if self.notify.len() > MAX_NOTIFIERS {
            return Err((
                "alerts.notify",
                format!("at most {MAX_NOTIFIERS} notifiers"),
            ));
        }
        for n in &self.notify {
            check_notifier(n)?;
        }
        Ok(())
    }

    fn check_rule(&self, r: &UserRule) -> Result<(), Invalid> {
        let name = &r.name;
        if !valid_name(name) || BUILTIN_NAMES.contains(&name.as_str()) {
            return Err((
                "alerts.rule.name",
                format!("{name:?}: 1 to {MAX_NAME} of [A-Za-z0-9_-], not a built-in rule's name"),
            ));
        }
        let Some(metric) = registry::metric(&r.metric) else {
            return Err((
                "alerts.rule.metric",
                format!(
                    "rule {name:?}: unknown metric {:?} (see GET /series/metrics)",
                    r.metric
                ),
            ));
        };
        let threshold = match (r.above, r.below) {
            (Some(t), None) | (None, Some(t)) => t,
            _ => {
                return Err((
                    "alerts.rule.above",
                    format!("rule {name:?}: give exactly one of above and below"),
                ))
            }
        };
        let clear_ok = match (r.clear, r.above.is_some()) {
            (None, _) => true,
            (Some(c), true) => c <= threshold,
            (Some(c), false) => c >= threshold,
        };
        if !threshold.is_finite() || r.clear.is_some_and(|c| !c.is_finite()) || !clear_ok {
            return Err((
                "alerts.rule.clear",
                format!("rule {name:?}: finite numbers, clear on the far side of the threshold"),
            ));
        }
        if r.label.is_some() && metric.label.is_none() {
            return Err((
                "alerts.rule.label",
                format!("rule {name:?}: metric {} has no label", metric.name),
            ));
        }
        if r.label.as_ref().is_some_and(|l| l.len() > 256) {
            return Err(("alerts.rule.label", format!("rule {name:?}: too long")));
        }
        for host in &r.hosts {
            broker::validate_host_id(host)
                .map_err(|e| ("alerts.rule.hosts", format!("rule {name:?}: {e}")))?;
        }
        Ok(())
    }
}

fn check_notifier(n: &Notifier) -> Result<(), Invalid> {
    let kind = n.kind.as_str();
    if n.timeout.is_zero() || n.timeout > Duration::from_secs(300) {
        return Err(("alerts.notify.timeout", format!("{kind}: must be 1ms..=5m")));
    }
    match n.kind {
        NotifierKind::Mqtt => {
            if n.url.is_some() || !n.command.is_empty() {
                return Err((
                    "alerts.notify.url",
                    "kind = \"mqtt\" publishes to the [mqtt] broker: no url or command".into(),
                ));
            }
        }
        NotifierKind::Command => {
            if n.command.is_empty() || n.url.is_some() {
                return Err((
                    "alerts.notify.command",
                    "kind = \"command\" needs command = [\"program\", \"arg\", …] and no url"
                        .into(),
                ));
            }
        }
        _ => {
            let Some(url) = &n.url else {
                return Err(("alerts.notify.url", format!("kind = {kind:?} needs a url")));
            };
            match reqwest::Url::parse(url) {
                Ok(u) if matches!(u.scheme(), "http" | "https") => {}
                _ => {
                    return Err((
                        "alerts.notify.url",
                        format!("{url:?} is not an http:// or https:// URL"),
                    ))
                }
            }
            if !n.command.is_empty() {
                return Err((
                    "alerts.notify.command",
                    format!("only for kind = \"command\", not {kind:?}"),
                ));
            }
        }
    }
    Ok(())
}
