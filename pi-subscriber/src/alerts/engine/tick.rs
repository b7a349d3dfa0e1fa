//! The every-second pass: `host_down` from the hosts' last receipt, pending alerts whose `for`
//! elapsed, reminders. A host restored after a restart of the Pi and not heard from since is
//! judged from when it was last heard before (saved), counting only the time the Pi was
//! listening: a host already down stays down (no `back up`, no second `down`), a host that
//! was fine gets `max_age` after the restart.

use std::collections::BTreeSet;

use super::{Alert, Engine, Key, Phase};
use crate::alerts::config::Severity;
use crate::alerts::engine::Notice;

/// How late a `heard` that moved may be saved when the engine is not told otherwise
/// ([`Engine::with_checkpoint`]; the daemon always tells it).
pub const DEFAULT_CHECKPOINT_MS: i64 = 60_000;

impl Engine {
    /// A `heard` that moved is saved at most `ms` late; the daemon passes
    /// `history.commit_interval` (5 min by default). Everything an operator would miss (an
    /// alert's phase, a notice, a boot, a job seen, a host forgotten) makes the state dirty
    /// at once and is saved before it is sent; a clean stop saves everything. So with live
    /// hosts and nothing happening, `alerts.json` is written once per commit interval, no
    /// longer every minute (issue 22: 12–28 KB of `write_bytes` a minute on the Pi).
    ///
    /// Why not drop the checkpoint and take `heard` from the history store at a restart
    /// ("one table per fact"): what the store knows across a restart does not mean "heard on
    /// the Pi's clock". Its receipt time (`last_received_ms`) lives in memory only; the
    /// history database keeps each sample's *server* time, which may be off the Pi's clock
    /// by up to `health.max_clock_skew` (2 min, more than the 45 s `max_age`), and which
    /// backfill fills after a restart with samples the Pi never heard live. Judging
    /// `host_down` from it would judge on the wrong clock. Persisting the receipt time in
    /// the history is a schema change; until then `heard` rides at the history's pace, the
    /// loss window a power cut already has for the history itself.
    ///
    /// Why a late `heard` is safe: a restored host not heard since the restart is judged
    /// silent for (saved `clock_ms` − saved `heard`) + the time since the restart; the time
    /// between the save and the power cut counts as the Pi being off. That first term is
    /// the silence the host really had at the save (for a live host, under one sampling
    /// interval), whatever the checkpoint's length: a longer checkpoint only adds time
    /// counted as off, so it delays a `host_down` (never past `max_age` after the restart)
    /// and never brings one forward.
    pub fn with_checkpoint(mut self, ms: i64) -> Self {
        self.checkpoint_ms = ms.max(0);
        self
    }

    /// `host` was heard at `at_ms` (Pi clock).
    pub(super) fn hear(&mut self, host: &str, at_ms: i64) {
        match self.heard.get_mut(host) {
            Some(t) if *t >= at_ms => {}
            Some(t) => {
                *t = at_ms;
                self.heard_moved = true;
            }
            None => {
                self.heard.insert(host.to_owned(), at_ms);
                self.heard_moved = true;
            }
        }
    }

    /// When `host` was last heard (for the notice), and the time its `max_age` runs from.
    fn heard_from(&self, host: &str, last: Option<i64>) -> (i64, i64) {
        match (last, self.heard.get(host)) {
            (Some(t), _) => (t, t),
            (None, Some(&t)) => (t, t.saturating_add(self.offline_ms)),
            (None, None) => (self.start_ms, self.start_ms),
        }
    }

    /// Every second: `host_down` from the hosts' last receipt (Pi clock; `None`: not since
    /// start-up), pending alerts whose `for` elapsed, and reminders. A host missing from
    /// `hosts` was forgotten: its alerts go silently.
    pub fn tick(&mut self, hosts: &[(String, Option<i64>)], now_ms: i64) -> Vec<Notice> {
        let mut out = Vec::new();
        self.clock_ms = now_ms;
        let known: BTreeSet<&str> = hosts.iter().map(|(h, _)| h.as_str()).collect();
        let before = self.alerts.len();
        // An expected job's alerts live as long as its judgment (a job on any host that never
        // ran has no known host).
        self.alerts.retain(|(h, r, _), _| {
            known.contains(h.as_str())
                || super::expected::is_job_rule(r)
                || r == super::remote::RULE
        });
        let remembered = self.boots.len() + self.heard.len();
        self.boots.retain(|h, _| known.contains(h.as_str()));
        self.heard.retain(|h, _| known.contains(h.as_str()));
        self.max_ages.retain(|h, _| known.contains(h.as_str()));
        // A host forgotten is saved at once, with or without alerts.
        self.dirty |=
            self.alerts.len() != before || self.boots.len() + self.heard.len() != remembered;
        self.stale.clear();
        for (host, last) in hosts {
            if let Some(t) = last {
                self.hear(host, *t);
            }
            let (heard, from) = self.heard_from(host, *last);
            let key = (host.clone(), "host_down".to_owned(), String::new());
            // Down stays down until the host is heard again (an older alerts.json has no
            // `heard`).
            let max_age = self.max_age_of(host);
            let stale = now_ms.saturating_sub(from) > max_age
                || (last.is_none() && self.alerts.contains_key(&key));
            if stale {
                self.stale.insert(host.clone());
                if self.rules.host_down && !self.alerts.contains_key(&key) {
                    self.alerts.insert(
                        key.clone(),
                        Alert {
                            host: host.clone(),
                            rule: "host_down".into(),
                            label: String::new(),
                            phase: Phase::Pending,
                            severity: Severity::Critical,
                            value: None,
                            threshold: Some(max_age as f64 / 1000.0),
                            pending_since_ms: heard,
                            firing_since_ms: None,
                            for_ms: 0,
                            notified_ms: None,
                            unseen_since_ms: None,
                        },
                    );
                    out.extend(self.fire(&key, now_ms));
                }
            } else {
                out.extend(self.resolve(&key, now_ms));
            }
        }
        let keys: Vec<Key> = self.alerts.keys().cloned().collect();
        for key in keys {
            let Some(a) = self.alerts.get(&key) else {
                continue;
            };
            // While a host is stale its metric rules are unknown, and a series its newest
            // sample lacked may have stopped: neither fires nor reminds.
            if a.rule != "host_down"
                && (self.stale.contains(&a.host) || a.unseen_since_ms.is_some())
            {
                continue;
            }
            match a.phase {
                Phase::Pending if now_ms.saturating_sub(a.pending_since_ms) >= a.for_ms => {
                    out.extend(self.fire(&key, now_ms));
                }
                Phase::Firing
                    if self.repeat_ms > 0
                        && a.notified_ms
                            .is_some_and(|t| now_ms.saturating_sub(t) >= self.repeat_ms) =>
                {
                    let a = a.clone();
                    out.push(self.notice(&a, "firing", now_ms, true));
                    if let Some(a) = self.alerts.get_mut(&key) {
                        a.notified_ms = Some(now_ms);
                    }
                    self.dirty = true;
                }
                _ => {}
            }
        }
        if self.heard_moved && now_ms.saturating_sub(self.saved_at_ms) >= self.checkpoint_ms {
            self.dirty = true;
        }
        out
    }
}
