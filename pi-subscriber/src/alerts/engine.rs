//! The alert state machine: ok → pending (condition true, `for` not yet elapsed) → firing →
//! resolved (past `clear`), one notice per transition worth telling. Pure: every call gets the
//! Pi's clock (Unix ms); what survives a restart is [`Saved`].

use std::collections::{BTreeMap, BTreeSet, VecDeque};

use serde::{Deserialize, Serialize};

use super::config::Severity;
use super::rules::RuleSet;

mod expected;
mod remote;
mod sample;
mod series;
mod tick;

/// Notices kept for `GET /alerts`' `recent`.
pub const MAX_RECENT: usize = 100;
/// Job runs remembered as already notified (MQTT and polling both deliver a job's end).
pub const MAX_JOBS_SEEN: usize = 512;
/// A `job_end` older than this (on arrival) is history, not news: never notified.
pub const MAX_JOB_AGE_MS: i64 = 24 * 3600 * 1000;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Phase {
    Pending,
    Firing,
}

/// One alert that is not ok: (host, rule, label).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Alert {
    pub host: String,
    pub rule: String,
    /// The device/interface/mount (`""`: the host-wide value).
    pub label: String,
    pub phase: Phase,
    pub severity: Severity,
    pub value: Option<f64>,
    pub threshold: Option<f64>,
    /// When the condition became true.
    pub pending_since_ms: i64,
    /// When it started firing.
    pub firing_since_ms: Option<i64>,
    pub for_ms: i64,
    /// The last firing notice (first or repeat).
    pub notified_ms: Option<i64>,
    /// Since when the host's samples lack this series (`None`: the newest had it). Not saved:
    /// after a restart every series is unseen until a sample shows it.
    #[serde(skip)]
    pub unseen_since_ms: Option<i64>,
}

/// Something to tell the notifiers.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Notice {
    /// `firing` or `resolved`.
    pub status: String,
    pub host: String,
    pub rule: String,
    pub label: String,
    pub severity: Severity,
    pub value: Option<f64>,
    pub threshold: Option<f64>,
    /// When the alert started firing (Pi clock, Unix ms).
    pub since_ms: i64,
    /// When this notice was made.
    pub ts_ms: i64,
    /// A one-shot event (`job_failed`, `reboot`): no `resolved` follows.
    pub event: bool,
    /// A reminder for an alert still firing (`repeat_interval`).
    pub repeat: bool,
    pub message: String,
}

/// What is written to `alerts.json`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct Saved {
    pub alerts: Vec<Alert>,
    pub recent: VecDeque<Notice>,
    /// The newest `boot_id` of each host.
    pub boots: BTreeMap<String, String>,
    pub jobs_seen: VecDeque<String>,
    /// When each host was last heard (Pi clock, Unix ms): after a restart a host is judged
    /// stale from it, not from the restart.
    pub heard: BTreeMap<String, i64>,
    /// The Pi's clock when this was saved: from then until the restart it was not listening.
    pub clock_ms: Option<i64>,
}

type Key = (String, String, String);

#[derive(Debug)]
pub struct Engine {
    rules: RuleSet,
    /// The staleness bound of a host the store has not told (`health.max_age` or 45 s).
    max_age_ms: i64,
    /// Each host's bound as the store judges it (`health.max_age`, else 3 × its interval).
    max_ages: BTreeMap<String, i64>,
    repeat_ms: i64,
    /// Hosts not heard from ever get `max_age` from here before they are down.
    start_ms: i64,
    /// How long the Pi was down before `start_ms` (from the saved state's `clock_ms`): a host
    /// restored and not heard from since is down after `max_age` of the Pi listening.
    offline_ms: i64,
    /// The Pi's clock at the latest call.
    clock_ms: i64,
    heard: BTreeMap<String, i64>,
    /// `heard` moved since the last save, and when that save was: a moved `heard` is saved
    /// at most `checkpoint_ms` late (on its own it does not make the state dirty; see
    /// [`Engine::with_checkpoint`]).
    heard_moved: bool,
    saved_at_ms: i64,
    checkpoint_ms: i64,
    alerts: BTreeMap<Key, Alert>,
    recent: VecDeque<Notice>,
    boots: BTreeMap<String, String>,
    jobs_seen: VecDeque<String>,
    /// Stale hosts as of the last tick: their metric rules are `unknown`.
    stale: BTreeSet<String>,
    /// Something worth persisting changed since [`Engine::take_dirty`].
    dirty: bool,
}

fn fmt_value(v: Option<f64>) -> String {
    v.map_or_else(|| "-".into(), |v| format!("{v:.1}"))
}

impl Engine {
    /// The store's staleness bound for `host` (the one judgment: `host_down` and the expiry
    /// of stopped series use the same bound as `/health`).
    pub fn set_max_age(&mut self, host: &str, max_age_ms: i64) {
        if self.max_ages.get(host) != Some(&max_age_ms) {
            self.max_ages.insert(host.to_owned(), max_age_ms);
        }
    }

    pub(super) fn max_age_of(&self, host: &str) -> i64 {
        self.max_ages.get(host).copied().unwrap_or(self.max_age_ms)
    }

    pub fn new(rules: RuleSet, max_age_ms: i64, repeat_ms: i64, saved: Saved, now_ms: i64) -> Self {
        let alerts = saved
            .alerts
            .into_iter()
            .map(|mut a| {
                if a.rule != "host_down" {
                    a.unseen_since_ms = Some(now_ms);
                }
                ((a.host.clone(), a.rule.clone(), a.label.clone()), a)
            })
            .collect();
        Self {
            rules,
            max_age_ms,
            max_ages: BTreeMap::new(),
            repeat_ms,
            start_ms: now_ms,
            offline_ms: saved
                .clock_ms
                .map_or(0, |c| now_ms.saturating_sub(c).max(0)),
            clock_ms: now_ms,
            heard: saved.heard,
            heard_moved: false,
            saved_at_ms: now_ms,
            checkpoint_ms: tick::DEFAULT_CHECKPOINT_MS,
            alerts,
            recent: saved.recent,
            boots: saved.boots,
            jobs_seen: saved.jobs_seen,
            stale: BTreeSet::new(),
            dirty: false,
        }
    }

    pub fn saved(&self) -> Saved {
        Saved {
            alerts: self.alerts.values().cloned().collect(),
            recent: self.recent.clone(),
            boots: self.boots.clone(),
            jobs_seen: self.jobs_seen.clone(),
            heard: self.heard.clone(),
            clock_ms: Some(self.clock_ms),
        }
    }

    pub fn is_dirty(&self) -> bool {
        self.dirty
    }

    /// `true` once after a change worth persisting (the caller saves [`Engine::saved`] now).
    pub fn take_dirty(&mut self) -> bool {
        self.heard_moved = false;
        self.saved_at_ms = self.clock_ms;
        std::mem::take(&mut self.dirty)
    }

    pub fn alerts(&self) -> impl Iterator<Item = &Alert> {
        self.alerts.values()
    }

    pub fn recent(&self) -> &VecDeque<Notice> {
        &self.recent
    }

    pub fn is_stale(&self, host: &str) -> bool {
        self.stale.contains(host)
    }

    fn notice(&mut self, a: &Alert, status: &str, now_ms: i64, repeat: bool) -> Notice {
        let what = if a.label.is_empty() {
            a.rule.clone()
        } else {
            format!("{} {}", a.rule, a.label)
        };
        let message = match (status, a.rule.as_str()) {
            ("expired", _) => format!(
                "{}: {what} no longer reported: expired (last {})",
                a.host,
                fmt_value(a.value)
            ),
            ("resolved", "host_down") => format!("{}: back up", a.host),
            ("resolved", "job_missed" | "job_overrun") => {
                format!("{}: {what} resolved", a.host)
            }
            ("resolved", _) => format!("{}: {what} resolved ({})", a.host, fmt_value(a.value)),
            (_, "job_missed") => format!(
                "{}: job {} did not start: due {} (grace {} s)",
                a.host,
                a.label,
                expected::rfc3339_ms(a.value.map_or(0, |v| v as i64)),
                fmt_value(a.threshold)
            ),
            (_, "job_overrun") => format!(
                "{}: job {} still running after {} s (max_duration {} s)",
                a.host,
                a.label,
                fmt_value(a.value),
                fmt_value(a.threshold)
            ),
            (_, "host_down") => format!(
                "{}: down, nothing received for {} s",
                a.host,
                (now_ms - a.pending_since_ms) / 1000
            ),
            _ => format!(
                "{}: {what} is {} (threshold {})",
                a.host,
                fmt_value(a.value),
                fmt_value(a.threshold)
            ),
        };
        let n = Notice {
            // An expiry is a resolution, said in the message.
            status: if status == "expired" {
                "resolved"
            } else {
                status
            }
            .into(),
            host: a.host.clone(),
            rule: a.rule.clone(),
            label: a.label.clone(),
            severity: a.severity,
            value: a.value,
            threshold: a.threshold,
            since_ms: a.firing_since_ms.unwrap_or(a.pending_since_ms),
            ts_ms: now_ms,
            event: false,
            repeat,
            message,
        };
        if !repeat {
            self.remember(n.clone());
        }
        n
    }

    fn remember(&mut self, n: Notice) {
        self.recent.push_back(n);
        while self.recent.len() > MAX_RECENT {
            self.recent.pop_front();
        }
        self.dirty = true;
    }

    fn event(
        &mut self,
        host: &str,
        rule: &str,
        label: &str,
        message: String,
        now_ms: i64,
    ) -> Notice {
        let n = Notice {
            status: "firing".into(),
            host: host.into(),
            rule: rule.into(),
            label: label.into(),
            severity: Severity::Warning,
            value: None,
            threshold: None,
            since_ms: now_ms,
            ts_ms: now_ms,
            event: true,
            repeat: false,
            message,
        };
        self.remember(n.clone());
        n
    }

    /// Starts an alert that fires at once (no `for`): the judged rules (expected jobs, remote
    /// write), whose condition is decided outside the engine.
    fn fire_now(
        &mut self,
        key: Key,
        severity: Severity,
        value: f64,
        threshold: Option<f64>,
        now_ms: i64,
    ) -> Option<Notice> {
        let alert = Alert {
            host: key.0.clone(),
            rule: key.1.clone(),
            label: key.2.clone(),
            phase: Phase::Pending,
            severity,
            value: Some(value),
            threshold,
            pending_since_ms: now_ms,
            firing_since_ms: None,
            for_ms: 0,
            notified_ms: None,
            unseen_since_ms: None,
        };
        self.alerts.insert(key.clone(), alert);
        self.fire(&key, now_ms)
    }

    fn fire(&mut self, key: &Key, now_ms: i64) -> Option<Notice> {
        let mut a = self.alerts.get(key)?.clone();
        a.phase = Phase::Firing;
        a.firing_since_ms = Some(now_ms);
        a.notified_ms = Some(now_ms);
        let n = self.notice(&a, "firing", now_ms, false);
        self.alerts.insert(key.clone(), a);
        Some(n)
    }

    fn resolve(&mut self, key: &Key, now_ms: i64) -> Option<Notice> {
        let a = self.alerts.remove(key)?;
        self.dirty = true;
        // No `resolved` without a `firing` before it.
        (a.phase == Phase::Firing).then(|| self.notice(&a, "resolved", now_ms, false))
    }
}
