//! What a live sample and a failed job do to the alerts: the threshold rules judged on each
//! new sample of a host (pending, firing, escalated, resolved past `clear`, silent inside the
//! hysteresis band), and one `job_failed` event per failed run.

use std::collections::BTreeSet;

use broker::{JobEnd, Snapshot};

use super::super::rules;
use super::{Alert, Engine, Notice, Phase, MAX_JOBS_SEEN, MAX_JOB_AGE_MS};

impl Engine {
    /// A new live sample of `cur.host` with its counters' rates as the store computed them.
    pub fn sample(
        &mut self,
        cur: &Snapshot,
        rates: Option<&crate::rates::Derived>,
        now_ms: i64,
    ) -> Vec<Notice> {
        let host = cur.host.as_str();
        let mut out = Vec::new();
        let was_stale = self.stale.remove(host);
        self.clock_ms = now_ms;
        self.hear(host, now_ms);
        let down = (host.to_owned(), "host_down".to_owned(), String::new());
        out.extend(self.resolve(&down, now_ms));
        if let Some(boot) = &cur.boot_id {
            let was = self.boots.insert(host.to_owned(), boot.clone());
            if was.as_ref() != Some(boot) {
                self.dirty = true;
                if self.rules.reboot && was.is_some() {
                    let msg = format!("{host}: rebooted (new boot_id)");
                    out.push(self.event(host, "reboot", "", msg, now_ms));
                }
            }
        }
        let rules = std::mem::take(&mut self.rules.thresholds);
        let mut seen = BTreeSet::new();
        for rule in rules.iter().filter(|r| r.applies_to(host)) {
            let observed = rule.evaluate(cur, rates);
            if rule.members_listed(cur) {
                let labels: BTreeSet<&str> = observed.iter().map(|o| o.label.as_str()).collect();
                out.extend(self.members_gone(host, &rule.name, &labels, now_ms));
            }
            for o in observed {
                let key = (host.to_owned(), rule.name.clone(), o.label.clone());
                if let Some(a) = self.alerts.get_mut(&key) {
                    a.unseen_since_ms = None;
                }
                let existing = self.alerts.get(&key).map(|a| (a.phase, a.severity));
                match (o.level, existing) {
                    (Some((severity, threshold)), None) => {
                        self.alerts.insert(
                            key.clone(),
                            Alert {
                                host: host.to_owned(),
                                rule: rule.name.clone(),
                                label: o.label.clone(),
                                phase: Phase::Pending,
                                severity,
                                value: Some(o.value),
                                threshold: Some(threshold),
                                pending_since_ms: now_ms,
                                firing_since_ms: None,
                                for_ms: rule.for_ms,
                                notified_ms: None,
                                unseen_since_ms: None,
                            },
                        );
                        self.dirty = true;
                        if rule.for_ms <= 0 {
                            out.extend(self.fire(&key, now_ms));
                        }
                    }
                    (Some((severity, threshold)), Some((phase, was))) => {
                        let escalated = phase == Phase::Firing && severity > was;
                        if let Some(a) = self.alerts.get_mut(&key) {
                            a.value = Some(o.value);
                            if phase == Phase::Pending || escalated {
                                a.severity = severity;
                                a.threshold = Some(threshold);
                            }
                        }
                        let due = self
                            .alerts
                            .get(&key)
                            .is_some_and(|a| now_ms.saturating_sub(a.pending_since_ms) >= a.for_ms);
                        if (phase == Phase::Pending && due) || escalated {
                            out.extend(self.fire(&key, now_ms));
                        }
                    }
                    (None, Some((phase, _))) if o.cleared || phase == Phase::Pending => {
                        if let Some(a) = self.alerts.get_mut(&key) {
                            a.value = Some(o.value);
                        }
                        out.extend(self.resolve(&key, now_ms));
                    }
                    (None, Some(_)) => {
                        // Inside the hysteresis band: a firing alert stays firing, silently.
                        if let Some(a) = self.alerts.get_mut(&key) {
                            a.value = Some(o.value);
                        }
                    }
                    (None, None) => {}
                }
                // Only the series with an alert matter to `unseen`.
                if self.alerts.contains_key(&key) {
                    seen.insert(key);
                }
            }
        }
        self.rules.thresholds = rules;
        out.extend(self.unseen(host, &seen, was_stale, now_ms));
        out
    }

    /// A new `job_end` (already deduplicated by the store).
    pub fn job_end(&mut self, e: &JobEnd, now_ms: i64) -> Vec<Notice> {
        self.clock_ms = now_ms;
        if !self.rules.job_failed
            || !rules::job_failed(e)
            || now_ms.saturating_sub(e.end_ts_ms) > MAX_JOB_AGE_MS
            || self.jobs_seen.iter().any(|r| *r == e.run_id)
        {
            return Vec::new();
        }
        self.jobs_seen.push_back(e.run_id.clone());
        while self.jobs_seen.len() > MAX_JOBS_SEEN {
            self.jobs_seen.pop_front();
        }
        let how = match (e.exit_code, e.signal, &e.error) {
            (_, Some(sig), _) => format!("killed by signal {sig}"),
            (_, _, Some(err)) => format!("could not start: {err}"),
            (code, _, _) => format!("exit code {}", code.unwrap_or(-1)),
        };
        let msg = format!("{}: job {} failed ({how})", e.host, e.name);
        vec![self.event(&e.host, "job_failed", &e.name, msg, now_ms)]
    }
}
