//! What the Home Assistant task still has to hand to rumqttc, coalesced: every message is
//! retained, so only the newest one per topic matters. The task never waits on rumqttc's
//! request queue (its event loop may be busy delivering to us): it hands over what fits
//! (`try_publish`) and keeps the rest here for the next wake-up. Pure, no I/O.
//!
//! Bounded by what the tracker writes: one entry per topic this Pi publishes (every host's
//! configs, state and availability, the leftovers of the sweep).

use std::collections::{HashMap, VecDeque};

use super::tracker::Message;

/// Messages by topic, in the order their topic was first queued.
#[derive(Debug, Default)]
pub struct Outbox {
    order: VecDeque<String>,
    by_topic: HashMap<String, Message>,
    /// Messages replaced by a newer one on their topic before they were handed over.
    pub coalesced_total: u64,
}

impl Outbox {
    /// Queues `m`; a message already queued on its topic is replaced (keeping its place).
    pub fn push(&mut self, m: Message) {
        if let Some(old) = self.by_topic.get_mut(&m.topic) {
            *old = m;
            self.coalesced_total += 1;
        } else {
            self.order.push_back(m.topic.clone());
            self.by_topic.insert(m.topic.clone(), m);
        }
    }

    /// Queues `m` before everything else (replacing one queued on its topic).
    pub fn push_front(&mut self, m: Message) {
        if self.by_topic.contains_key(&m.topic) {
            self.order.retain(|t| *t != m.topic);
            self.coalesced_total += 1;
        }
        self.order.push_front(m.topic.clone());
        self.by_topic.insert(m.topic.clone(), m);
    }

    /// The oldest queued message.
    pub fn pop(&mut self) -> Option<Message> {
        while let Some(topic) = self.order.pop_front() {
            if let Some(m) = self.by_topic.remove(&topic) {
                return Some(m);
            }
        }
        None
    }

    /// Puts back a message just popped (rumqttc's queue was full), unless a newer one was
    /// queued on its topic meanwhile.
    pub fn unpop(&mut self, m: Message) {
        if !self.by_topic.contains_key(&m.topic) {
            self.push_front(m);
        }
    }

    pub fn len(&self) -> usize {
        self.by_topic.len()
    }

    pub fn is_empty(&self) -> bool {
        self.by_topic.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn m(topic: &str, payload: &str) -> Message {
        Message {
            topic: topic.into(),
            payload: payload.into(),
            retain: true,
        }
    }

    #[test]
    fn the_newest_message_per_topic_goes_out_in_first_queued_order() {
        let mut o = Outbox::default();
        o.push(m("a", "1"));
        o.push(m("b", "1"));
        o.push(m("a", "2"));
        o.push_front(m("pi", "online"));
        o.push(m("c", "1"));
        o.push_front(m("b", "2"));
        assert_eq!(o.len(), 4);
        assert_eq!(o.coalesced_total, 2);
        let first = o.pop().unwrap();
        assert_eq!(first, m("b", "2"));
        o.unpop(first);
        let mut out = Vec::new();
        while let Some(x) = o.pop() {
            out.push(x);
        }
        assert_eq!(
            out,
            [m("b", "2"), m("pi", "online"), m("a", "2"), m("c", "1")]
        );
        assert!(o.is_empty());
        // A message put back after a newer one was queued on its topic is dropped.
        o.push(m("a", "3"));
        let a = o.pop().unwrap();
        o.push(m("a", "4"));
        o.unpop(a);
        assert_eq!((o.pop(), o.pop()), (Some(m("a", "4")), None));
    }
}
