//! The job events the store keeps: deduplicated by host, run and kind; beyond the bounds the
//! host holding the most gives up the one that arrived first.

use std::collections::BTreeMap;

use broker::JobEvent;

use super::state::Store;
use crate::validate::names::event_bytes;

impl Store {
    /// Adds a job event unless it is already there (MQTT and HTTP may both deliver it: the
    /// same host, run and kind). Beyond `max_events` or `max_event_bytes`, the host holding
    /// the most events gives up the one that arrived first: a flooding host pushes out its
    /// own events, whatever their dates, never another host's.
    pub(super) fn add_event(&mut self, event: JobEvent) -> bool {
        let same = |e: &JobEvent| {
            e.run_id() == event.run_id()
                && e.host() == event.host()
                && std::mem::discriminant(e) == std::mem::discriminant(&event)
        };
        if self.events.iter().rev().any(same) {
            return false;
        }
        let at = self.events.partition_point(|e| e.ts_ms() <= event.ts_ms());
        self.event_bytes += event_bytes(&event);
        self.events.insert(at, event);
        self.arrived += 1;
        self.arrivals.insert(at, self.arrived);
        while self.events.len() > self.max_events || self.event_bytes > self.max_event_bytes {
            let Some(i) = self.eviction_victim() else {
                break;
            };
            self.remove_event(i);
        }
        self.stats.events_total += 1;
        true
    }

    /// The index of the first-arrived event of the host with the most events.
    fn eviction_victim(&self) -> Option<usize> {
        let mut per_host: BTreeMap<&str, usize> = BTreeMap::new();
        for e in &self.events {
            *per_host.entry(e.host()).or_insert(0) += 1;
        }
        let (host, _) = per_host.iter().max_by_key(|(_, n)| **n)?;
        self.events
            .iter()
            .zip(&self.arrivals)
            .enumerate()
            .filter(|(_, (e, _))| e.host() == *host)
            .min_by_key(|(_, (_, arrival))| **arrival)
            .map(|(i, _)| i)
    }

    pub(super) fn remove_event(&mut self, i: usize) {
        if let Some(gone) = self.events.remove(i) {
            self.event_bytes = self.event_bytes.saturating_sub(event_bytes(&gone));
        }
        self.arrivals.remove(i);
    }
}
