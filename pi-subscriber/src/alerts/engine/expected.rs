//! `job_missed` and `job_overrun`: alerts that follow the judgment of `[[jobs.expect]]`
//! ([`crate::jobs::watch::JobWatch`]), labelled with the job's name.

use std::collections::BTreeSet;

use super::{Engine, Key, Notice};
use crate::alerts::config::Severity;
use crate::jobs::Status;

pub(super) fn is_job_rule(rule: &str) -> bool {
    rule == "job_missed" || rule == "job_overrun"
}

/// Epoch ms as RFC 3339 (UTC, seconds).
pub(super) fn rfc3339_ms(ms: i64) -> String {
    u64::try_from(ms / 1000)
        .ok()
        .and_then(|s| std::time::UNIX_EPOCH.checked_add(std::time::Duration::from_secs(s)))
        .map(|t| humantime::format_rfc3339_seconds(t).to_string())
        .unwrap_or_else(|| ms.to_string())
}

impl Engine {
    /// Follows the expected jobs' judgment: an alert fires on the first judgment that finds
    /// a run missed (value: the due time, ms; threshold: the grace, s) or overrunning (value:
    /// seconds running; threshold: `max_duration`, s) and resolves on the first that does
    /// not, or when its expectation is gone.
    pub fn expected(&mut self, statuses: &[Status], now_ms: i64) -> Vec<Notice> {
        let mut out = Vec::new();
        let mut live: BTreeSet<Key> = BTreeSet::new();
        for s in statuses {
            let (grace_ms, max_ms) = (s.grace_ms, s.max_duration_ms);
            let running_s = s
                .last_run
                .as_ref()
                .map(|r| now_ms.saturating_sub(r.start_ms) as f64 / 1000.0);
            let checks = [
                (
                    "job_missed",
                    self.rules.job_missed,
                    s.missed_due_ms.map(|d| d as f64),
                    Some(grace_ms as f64 / 1000.0),
                ),
                (
                    "job_overrun",
                    self.rules.job_overrun,
                    s.overrun.then_some(running_s).flatten(),
                    max_ms.map(|m| m as f64 / 1000.0),
                ),
            ];
            for (rule, enabled, value, threshold) in checks {
                let key: Key = (s.host.clone(), rule.to_owned(), s.name.clone());
                let Some(value) = value.filter(|_| enabled) else {
                    out.extend(self.resolve(&key, now_ms));
                    continue;
                };
                live.insert(key.clone());
                if let Some(a) = self.alerts.get_mut(&key) {
                    a.value = Some(value);
                    continue;
                }
                out.extend(self.fire_now(key, Severity::Warning, value, threshold, now_ms));
            }
        }
        let gone: Vec<Key> = self
            .alerts
            .keys()
            .filter(|k| is_job_rule(&k.1) && !live.contains(*k))
            .cloned()
            .collect();
        for key in gone {
            out.extend(self.resolve(&key, now_ms));
        }
        out
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use crate::alerts::config::AlertSettings;
    use crate::alerts::engine::Saved;
    use crate::alerts::rules::RuleSet;

    fn status(missed: Option<i64>, overrun: bool) -> Status {
        Status {
            name: "backup".into(),
            host: "tower".into(),
            schedule: "0 3 * * * (UTC)".into(),
            grace_ms: 3_600_000,
            max_duration_ms: Some(7_200_000),
            last_run: overrun.then(|| crate::jobs::Run {
                host: "tower".into(),
                run_id: "r1".into(),
                start_ms: 1_796_526_000_000 - 7_300_000,
                end_ms: None,
                result: None,
            }),
            next_due_ms: missed,
            missed_due_ms: missed,
            overrun,
        }
    }

    #[test]
    fn fires_once_resolves_when_judged_fine_or_when_its_expectation_is_gone() {
        let rules = RuleSet::from_settings(&AlertSettings::default());
        let mut e = Engine::new(rules, 45_000, 0, Saved::default(), 0);
        let due = 1_796_526_000_000; // 2026-12-06T03:00:00Z
        let n = e.expected(&[status(Some(due), false)], due + 3_600_001);
        assert_eq!(n.len(), 1);
        assert_eq!(
            (n[0].rule.as_str(), n[0].label.as_str()),
            ("job_missed", "backup")
        );
        assert_eq!(
            n[0].message,
            "tower: job backup did not start: due 2026-12-06T03:00:00Z (grace 3600.0 s)"
        );
        // Judged again, still missed: no second notice.
        assert!(e
            .expected(&[status(Some(due), false)], due + 3_700_000)
            .is_empty());
        let n = e.expected(&[status(None, false)], due + 3_800_000);
        assert_eq!(
            (n[0].status.as_str(), n[0].rule.as_str()),
            ("resolved", "job_missed")
        );
        // Overrun, then its expectation removed from the config: resolved.
        let n = e.expected(&[status(None, true)], due);
        assert_eq!(
            n[0].message,
            "tower: job backup still running after 7300.0 s (max_duration 7200.0 s)"
        );
        let n = e.expected(&[], due + 1);
        assert_eq!(
            (n[0].status.as_str(), n[0].rule.as_str()),
            ("resolved", "job_overrun")
        );
        // Turned off: nothing fires.
        let mut off = AlertSettings::default();
        off.builtin.job_missed = false;
        let mut e = Engine::new(RuleSet::from_settings(&off), 45_000, 0, Saved::default(), 0);
        assert!(e
            .expected(&[status(Some(due), false)], due + 3_600_001)
            .is_empty());
    }
}
