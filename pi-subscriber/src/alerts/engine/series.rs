//! Series that stop: an unmounted filesystem, a removed disk, a rule taken out of the config.
//! A series the host's samples have lacked for longer than `max_age` (while the host went on
//! reporting) takes its alert with it: a pending one goes silently, a firing one expires with
//! a `resolved` notice that says so. Until then a pending alert does not fire without its
//! series in the newest sample, and a firing one is not reminded.

use std::collections::BTreeSet;

use super::{Engine, Key, Notice, Phase};

impl Engine {
    /// After a sample of `host`: the alerts of the series it lacked (`seen`: those it had).
    /// `was_stale`: the host was stale until this sample, so what it lacks counts from now.
    pub(super) fn unseen(
        &mut self,
        host: &str,
        seen: &BTreeSet<Key>,
        was_stale: bool,
        now_ms: i64,
    ) -> Vec<Notice> {
        let max_age = self.max_age_of(host);
        let from = (host.to_owned(), String::new(), String::new());
        let mut expired = Vec::new();
        for (key, a) in self.alerts.range_mut(from..) {
            if key.0 != host {
                break;
            }
            if a.rule == "host_down" || seen.contains(key) {
                continue;
            }
            let since = match a.unseen_since_ms {
                Some(t) if !was_stale => t,
                _ => now_ms,
            };
            a.unseen_since_ms = Some(since);
            if now_ms.saturating_sub(since) > max_age {
                expired.push(key.clone());
            }
        }
        expired
            .iter()
            .filter_map(|key| self.expire(key, now_ms))
            .collect()
    }

    /// After a sample that lists a set's members (failed units): the alerts of `rule` on
    /// members it no longer lists resolve now (the unit recovered or was reset), with 0.
    pub(super) fn members_gone(
        &mut self,
        host: &str,
        rule: &str,
        listed: &BTreeSet<&str>,
        now_ms: i64,
    ) -> Vec<Notice> {
        let gone: Vec<Key> = self
            .alerts
            .keys()
            .filter(|(h, r, l)| h == host && r == rule && !listed.contains(l.as_str()))
            .cloned()
            .collect();
        let mut out = Vec::new();
        for key in gone {
            if let Some(a) = self.alerts.get_mut(&key) {
                a.value = Some(0.0);
            }
            out.extend(self.resolve(&key, now_ms));
        }
        out
    }

    fn expire(&mut self, key: &Key, now_ms: i64) -> Option<Notice> {
        let a = self.alerts.remove(key)?;
        self.dirty = true;
        (a.phase == Phase::Firing).then(|| self.notice(&a, "expired", now_ms, false))
    }
}
