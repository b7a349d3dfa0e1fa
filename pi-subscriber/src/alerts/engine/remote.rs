//! `remote_write_behind`: a remote write receiver whose oldest unsent sample is more than
//! `warning` (then `critical`) seconds behind, on the Pi's own host, labelled with the
//! remote's name; resolved once the backlog is under `clear` or the remote is gone.

use std::collections::BTreeSet;

use super::{Engine, Key, Notice};
use crate::alerts::config::Severity;

pub(super) const RULE: &str = "remote_write_behind";

impl Engine {
    /// Follows the remotes' backlogs (seconds behind, by remote name).
    pub fn remote_write(
        &mut self,
        pi_host: &str,
        behind: &[(String, f64)],
        now_ms: i64,
    ) -> Vec<Notice> {
        let mut out = Vec::new();
        let mut live: BTreeSet<Key> = BTreeSet::new();
        if let Some(l) = self.rules.remote_write_behind.clone() {
            for (remote, seconds) in behind {
                let key: Key = (pi_host.to_owned(), RULE.to_owned(), remote.clone());
                let level = match l.critical {
                    Some(c) if *seconds > c => Some((Severity::Critical, c)),
                    _ if *seconds > l.warning => Some((Severity::Warning, l.warning)),
                    _ => None,
                };
                if let Some(a) = self.alerts.get_mut(&key) {
                    if *seconds <= l.clear.unwrap_or(l.warning) {
                        out.extend(self.resolve(&key, now_ms));
                        continue;
                    }
                    a.value = Some(*seconds);
                    if let Some((sev, t)) = level {
                        a.severity = sev;
                        a.threshold = Some(t);
                    }
                    live.insert(key);
                    continue;
                }
                let Some((severity, threshold)) = level else {
                    continue;
                };
                live.insert(key.clone());
                out.extend(self.fire_now(key, severity, *seconds, Some(threshold), now_ms));
            }
        }
        let gone: Vec<Key> = self
            .alerts
            .keys()
            .filter(|k| k.1 == RULE && !live.contains(*k))
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

    #[test]
    fn fires_past_warning_escalates_past_critical_and_resolves_under_clear() {
        let rules = RuleSet::from_settings(&AlertSettings::default());
        let mut e = Engine::new(rules, 45_000, 3_600_000, Saved::default(), 0);
        let behind = |s: f64| vec![("prom".to_owned(), s)];
        assert!(e.remote_write("pi", &behind(299.0), 1).is_empty());
        let n = e.remote_write("pi", &behind(301.0), 2);
        assert_eq!(n.len(), 1);
        assert_eq!((n[0].status.as_str(), n[0].host.as_str()), ("firing", "pi"));
        assert!(
            e.remote_write("pi", &behind(3601.0), 3).is_empty(),
            "one firing"
        );
        let a = e.alerts().next().unwrap();
        assert_eq!((a.severity, a.label.as_str()), (Severity::Critical, "prom"));
        assert!(
            e.remote_write("pi", &behind(120.0), 4).is_empty(),
            "above clear"
        );
        let n = e.remote_write("pi", &behind(59.0), 5);
        assert_eq!(n[0].status, "resolved");
        // A remote no longer configured resolves its alert.
        e.remote_write("pi", &behind(400.0), 6);
        let n = e.remote_write("pi", &[], 7);
        assert_eq!(n[0].status, "resolved");
    }
}
