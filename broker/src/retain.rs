//! A bound on rumqttd's retained store.
//!
//! rumqttd 0.20 keeps every retained publish, on any topic, in an unbounded map, and has no
//! hook to refuse one. What it does have: a local link (a client inside the process) that
//! subscribes to `#` sees every publish, and a publish with an empty payload removes the
//! retained message of its topic. So a guard thread watches everything and clears, right after
//! it arrives, whatever breaks the rule:
//!
//! * a topic outside `broker.retained_topics` (default: the prefix's snapshot, status and
//!   events topics),
//! * a payload over `broker.max_retained_payload`,
//! * a new topic once `broker.max_retained` topics may hold a retained message.
//!
//! An empty retained config deletes a Home Assistant entity, so the prefix's own topics and
//! the discovery prefix's (`RetainPolicy::protected`) are never cleared to make room: the
//! other topics may hold `max_retained - reserved` slots at most, and when the store is full a
//! new protected topic takes the slot of the oldest other topic (which is cleared). Only when
//! every slot holds a protected topic is a new one cleared (counted apart).
//!
//! rumqttd hands a local link every live publish with `retain` unset, so the guard cannot tell
//! a retained publish from a plain one: it treats every publish as possibly retained (a clear
//! after a plain publish costs one empty message to that topic's subscribers). When the guard
//! falls behind a flood (rumqttd skips a slow reader forward in its log), it sees a gap in the
//! log's offsets and sweeps: it subscribes to `#` afresh, which makes rumqttd send it the
//! retained messages themselves (at most 200 per sweep), and judges those.

use std::collections::{BTreeMap, HashMap};
use std::time::Duration;

use serde::Serialize;

mod guard;
pub(crate) use guard::run;

/// rumqttd forwards at most this many retained messages to a new subscription (its router's
/// `max_outgoing_packet_count`, set in `embedded.rs`); `broker.max_retained` stays below it so
/// a sweep sees every kept message and the junk beside them.
pub const SWEEP_WINDOW: usize = 200;

/// Sweep at least this often while publishes arrive, to catch what a lost log segment hid.
const SWEEP_EVERY: Duration = Duration::from_secs(30);
/// And at most this often when the guard keeps falling behind.
const SWEEP_AT_MOST: Duration = Duration::from_millis(200);

/// What the guard has done since the broker started (the publisher's `/health` `broker`
/// section, the standalone broker's log).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct RetainStats {
    /// Topics that may hold a retained message now, and their payload bytes.
    pub retained_topics: usize,
    pub retained_bytes: usize,
    /// Clears sent, by reason.
    pub cleared_outside_topics: u64,
    pub cleared_too_large: u64,
    pub cleared_over_count: u64,
    /// Other topics cleared to make room for a protected one.
    pub cleared_to_make_room: u64,
    /// Protected topics cleared because every slot held a protected topic.
    pub cleared_protected_over_count: u64,
    /// Times the guard fell behind and swept the retained store.
    pub sweeps: u64,
}

/// The rule: which topics may keep a retained message, how big, how many.
#[derive(Debug, Clone)]
pub struct RetainPolicy {
    pub filters: Vec<String>,
    /// Topics (within `filters`) never cleared to make room: the prefix's own and the Home
    /// Assistant discovery prefix's.
    pub protected: Vec<String>,
    pub max_payload: usize,
    pub max_topics: usize,
    /// Slots only protected topics may take.
    pub reserved: usize,
}

/// What to do with one publish.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    Keep,
    /// Keep it, in the slot of this other topic, to be cleared.
    KeepClearing(String),
    /// An empty payload: a clear, nothing to keep.
    Cleared,
    ClearOutside,
    ClearTooLarge,
    ClearOverCount,
    /// A protected topic while every slot holds one.
    ClearProtectedOverCount,
}

/// One topic that may hold a retained message.
#[derive(Debug, Clone, Copy)]
struct Slot {
    len: usize,
    /// Its place among the other (unprotected) topics, oldest write first; `None` when
    /// protected.
    order: Option<u64>,
}

/// The guard's judgment, without rumqttd: pure and unit-tested.
#[derive(Debug)]
pub struct RetainJudge {
    policy: RetainPolicy,
    kept: HashMap<String, Slot>,
    /// The unprotected kept topics by their last write, oldest first (the first to make room).
    others: BTreeMap<u64, String>,
    writes: u64,
    bytes: usize,
}

impl RetainJudge {
    pub fn new(policy: RetainPolicy) -> Self {
        Self {
            policy,
            kept: HashMap::new(),
            others: BTreeMap::new(),
            writes: 0,
            bytes: 0,
        }
    }

    /// Judges a publish of `len` bytes on `topic`; keeps the count of what stays.
    pub fn judge(&mut self, topic: &str, len: usize) -> Verdict {
        let verdict = if len == 0 {
            Verdict::Cleared
        } else if !self.policy.filters.iter().any(|f| matches(f, topic)) {
            Verdict::ClearOutside
        } else if len > self.policy.max_payload {
            Verdict::ClearTooLarge
        } else if self.kept.contains_key(topic) {
            Verdict::Keep
        } else if self.policy.protected.iter().any(|f| matches(f, topic)) {
            if self.kept.len() < self.policy.max_topics {
                Verdict::Keep
            } else if let Some((_, oldest)) = self.others.pop_first() {
                Verdict::KeepClearing(oldest)
            } else {
                Verdict::ClearProtectedOverCount
            }
        } else {
            let others_max = self.policy.max_topics.saturating_sub(self.policy.reserved);
            if self.kept.len() >= self.policy.max_topics || self.others.len() >= others_max {
                Verdict::ClearOverCount
            } else {
                Verdict::Keep
            }
        };
        match &verdict {
            Verdict::Keep => self.keep(topic, len),
            Verdict::KeepClearing(oldest) => {
                let oldest = oldest.clone();
                self.forget(&oldest);
                self.keep(topic, len);
            }
            _ => self.forget(topic),
        }
        verdict
    }

    fn keep(&mut self, topic: &str, len: usize) {
        let protected = self.policy.protected.iter().any(|f| matches(f, topic));
        self.forget(topic);
        let order = (!protected).then(|| {
            self.writes += 1;
            self.others.insert(self.writes, topic.to_owned());
            self.writes
        });
        self.kept.insert(topic.to_owned(), Slot { len, order });
        self.bytes += len;
    }

    fn forget(&mut self, topic: &str) {
        if let Some(slot) = self.kept.remove(topic) {
            self.bytes -= slot.len;
            if let Some(order) = slot.order {
                self.others.remove(&order);
            }
        }
    }

    /// Forgets what is kept: a sweep is about to report the retained store as it is.
    pub fn reset(&mut self) {
        self.kept.clear();
        self.others.clear();
        self.bytes = 0;
    }

    pub fn topics(&self) -> usize {
        self.kept.len()
    }

    pub fn bytes(&self) -> usize {
        self.bytes
    }
}

/// Whether MQTT filter `filter` (with `+` and `#`) matches `topic`. Topics starting with `$`
/// are matched only by filters that spell the `$` level out (MQTT 3.1.1 §4.7.2).
pub fn matches(filter: &str, topic: &str) -> bool {
    if topic.starts_with('$') && !filter.starts_with('$') {
        return false;
    }
    let mut levels = topic.split('/');
    for f in filter.split('/') {
        match (f, levels.next()) {
            ("#", _) => return true,
            (_, None) => return false,
            ("+", Some(_)) => {}
            (f, Some(t)) if f == t => {}
            _ => return false,
        }
    }
    levels.next().is_none()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn judge(max_payload: usize, max_topics: usize) -> RetainJudge {
        RetainJudge::new(RetainPolicy {
            filters: vec!["p/+/snapshot".into(), "p/+/status".into()],
            protected: Vec::new(),
            max_payload,
            max_topics,
            reserved: 0,
        })
    }

    #[test]
    fn filters_match_like_mqtt() {
        assert!(matches("p/+/snapshot", "p/tower/snapshot"));
        assert!(!matches("p/+/snapshot", "p/tower/snapshot/x"));
        assert!(!matches("p/+/snapshot", "p/snapshot"));
        assert!(matches("p/#", "p"));
        assert!(matches("p/#", "p/a/b"));
        assert!(matches("#", "anything/at/all"));
        assert!(!matches("#", "$SYS/x"));
        assert!(!matches("a/b", "a/b/c"));
        assert!(!matches("a/b/c", "a/b"));
    }

    #[test]
    fn outside_topics_oversize_and_overflow_are_cleared() {
        let mut j = judge(100, 2);
        assert_eq!(j.judge("junk/1", 10), Verdict::ClearOutside);
        assert_eq!(j.judge("p/a/events", 10), Verdict::ClearOutside);
        assert_eq!(j.judge("p/a/snapshot", 101), Verdict::ClearTooLarge);
        assert_eq!(j.judge("p/a/snapshot", 100), Verdict::Keep);
        assert_eq!(j.judge("p/a/status", 6), Verdict::Keep);
        assert_eq!((j.topics(), j.bytes()), (2, 106));
        assert_eq!(j.judge("p/b/snapshot", 50), Verdict::ClearOverCount);
        // A kept topic may be replaced within the bound.
        assert_eq!(j.judge("p/a/snapshot", 40), Verdict::Keep);
        assert_eq!((j.topics(), j.bytes()), (2, 46));
        // A clear frees the slot; an oversize replacement clears the topic.
        assert_eq!(j.judge("p/a/status", 0), Verdict::Cleared);
        assert_eq!(j.judge("p/b/snapshot", 50), Verdict::Keep);
        assert_eq!(j.judge("p/a/snapshot", 500), Verdict::ClearTooLarge);
        assert_eq!((j.topics(), j.bytes()), (1, 50));
        j.reset();
        assert_eq!((j.topics(), j.bytes()), (0, 0));
    }

    /// Issue 18 item 13: the prefix's and Home Assistant's topics are never cleared to make
    /// room; other topics get at most `max_topics - reserved` slots and give theirs up, oldest
    /// write first.
    #[test]
    fn protected_topics_are_never_cleared_to_make_room() {
        let mut j = RetainJudge::new(RetainPolicy {
            filters: vec!["p/#".into(), "ha/#".into(), "home/#".into()],
            protected: vec!["p/#".into(), "ha/#".into()],
            max_payload: 100,
            max_topics: 4,
            reserved: 2,
        });
        assert_eq!(j.judge("home/a", 1), Verdict::Keep);
        assert_eq!(j.judge("home/b", 1), Verdict::Keep);
        assert_eq!(j.judge("home/c", 1), Verdict::ClearOverCount);
        // A rewrite makes `home/a` the newest.
        assert_eq!(j.judge("home/a", 2), Verdict::Keep);
        assert_eq!(j.judge("ha/x/config", 10), Verdict::Keep);
        assert_eq!(j.judge("p/h/snapshot", 20), Verdict::Keep);
        assert_eq!((j.topics(), j.bytes()), (4, 33));
        assert_eq!(
            j.judge("ha/y/config", 10),
            Verdict::KeepClearing("home/b".into())
        );
        assert_eq!(
            j.judge("ha/z/config", 10),
            Verdict::KeepClearing("home/a".into())
        );
        assert_eq!((j.topics(), j.bytes()), (4, 50));
        // Every slot protected: another topic, and (the last resort) a protected one, are
        // cleared; kept ones may still be rewritten.
        assert_eq!(j.judge("home/a", 1), Verdict::ClearOverCount);
        assert_eq!(j.judge("ha/w/config", 1), Verdict::ClearProtectedOverCount);
        assert_eq!(j.judge("ha/x/config", 5), Verdict::Keep);
        assert_eq!((j.topics(), j.bytes()), (4, 45));
        // Still judged like any topic for size and filters.
        assert_eq!(j.judge("ha/x/config", 101), Verdict::ClearTooLarge);
        assert_eq!(j.judge("homeassistant/x", 1), Verdict::ClearOutside);
        assert_eq!((j.topics(), j.bytes()), (3, 40));
        // A freed slot goes to another topic again, within its share.
        assert_eq!(j.judge("home/a", 1), Verdict::Keep);
        assert_eq!(j.judge("home/b", 1), Verdict::ClearOverCount);
    }
}
