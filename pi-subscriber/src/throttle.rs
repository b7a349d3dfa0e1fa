//! A warning that repeats for one subject (a host whose publisher does not answer a
//! backfill) is logged once per interval, with how many were held back since: a Pi whose
//! servers stay unreachable logs a line per host every few minutes, not several per hole
//! every 30 s. Found by issue 22's write measurements: with a few hundred open holes the
//! retry lines were 86% of what the Pi wrote, on the way to tens of MB a day.

use std::collections::HashMap;

/// Subjects remembered at most (hosts are bounded well below this); past it, all are
/// forgotten and each warns again once.
const MAX_SUBJECTS: usize = 4096;

#[derive(Debug)]
pub struct Throttle {
    every_ms: i64,
    /// Per subject: when it was last logged, and how many were held back since.
    last: HashMap<String, (i64, u64)>,
}

impl Throttle {
    pub fn new(every_ms: i64) -> Self {
        Self {
            every_ms,
            last: HashMap::new(),
        }
    }

    /// `Some(held back since the last one)` when a warning about `subject` at `now_ms` is to
    /// be logged; `None` when it is held back (log it at debug).
    pub fn allow(&mut self, subject: &str, now_ms: i64) -> Option<u64> {
        if let Some((at, held)) = self.last.get_mut(subject) {
            if now_ms.saturating_sub(*at) < self.every_ms {
                *held = held.saturating_add(1);
                return None;
            }
            let before = *held;
            *at = now_ms;
            *held = 0;
            return Some(before);
        }
        if self.last.len() >= MAX_SUBJECTS {
            self.last.clear();
        }
        self.last.insert(subject.to_owned(), (now_ms, 0));
        Some(0)
    }

    /// `subject` is fine again: its next warning is logged at once.
    pub fn clear(&mut self, subject: &str) {
        self.last.remove(subject);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn once_per_interval_per_subject_with_the_count_held_back() {
        let mut t = Throttle::new(300_000);
        assert_eq!(t.allow("tower", 0), Some(0));
        assert_eq!(t.allow("nas", 1_000), Some(0), "another subject");
        for i in 1..=9 {
            assert_eq!(t.allow("tower", i * 30_000), None, "at {} s", i * 30);
        }
        assert_eq!(t.allow("tower", 300_000), Some(9));
        assert_eq!(t.allow("tower", 300_001), None);
        t.clear("tower");
        assert_eq!(t.allow("tower", 300_002), Some(0), "fine again: at once");
    }

    #[test]
    fn a_flood_of_subjects_stays_bounded() {
        let mut t = Throttle::new(300_000);
        for i in 0..10_000 {
            assert_eq!(t.allow(&format!("h{i}"), 0), Some(0));
        }
        assert!(t.last.len() <= MAX_SUBJECTS);
    }
}
