//! Exponential backoff between retries of one batch: `min`, doubling to `max`; a receiver's
//! `Retry-After` (seconds or an HTTP date) replaces the step, bounded by [`MAX_RETRY_AFTER`].

use std::time::{Duration, SystemTime};

/// The longest `Retry-After` honoured (a receiver asking for a day is asked again sooner).
pub const MAX_RETRY_AFTER: Duration = Duration::from_secs(600);

#[derive(Debug, Clone)]
pub struct Backoff {
    min: Duration,
    max: Duration,
    next: Duration,
}

impl Backoff {
    pub fn new(min: Duration, max: Duration) -> Self {
        let min = min.max(Duration::from_millis(1));
        Self {
            min,
            max: max.max(min),
            next: min,
        }
    }

    /// How long to wait before the next try: the receiver's `Retry-After` when it gave one,
    /// else the current step (which then doubles, up to `max`).
    pub fn wait(&mut self, retry_after: Option<Duration>) -> Duration {
        let step = self.next;
        self.next = (self.next * 2).min(self.max);
        match retry_after {
            Some(after) => after.min(MAX_RETRY_AFTER),
            None => step,
        }
    }

    /// Back to `min` (after a batch went through).
    pub fn reset(&mut self) {
        self.next = self.min;
    }
}

/// A `Retry-After` value: delay-seconds or an HTTP date (RFC 9110 §10.2.3), relative to `now`.
pub fn parse_retry_after(value: &str, now: SystemTime) -> Option<Duration> {
    let value = value.trim();
    if let Ok(seconds) = value.parse::<u64>() {
        return Some(Duration::from_secs(seconds));
    }
    let at = httpdate::parse_http_date(value).ok()?;
    Some(at.duration_since(now).unwrap_or(Duration::ZERO))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn doubles_to_max_and_honours_retry_after() {
        let mut b = Backoff::new(Duration::from_millis(500), Duration::from_secs(3));
        let waits: Vec<u128> = (0..5).map(|_| b.wait(None).as_millis()).collect();
        assert_eq!(waits, [500, 1000, 2000, 3000, 3000]);
        assert_eq!(b.wait(Some(Duration::from_secs(7))), Duration::from_secs(7));
        assert_eq!(b.wait(Some(Duration::from_secs(86_400))), MAX_RETRY_AFTER);
        b.reset();
        assert_eq!(b.wait(None), Duration::from_millis(500));
    }

    #[test]
    fn retry_after_in_seconds_or_as_a_date() {
        let now = httpdate::parse_http_date("Sun, 06 Dec 2026 18:00:00 GMT").unwrap();
        assert_eq!(
            parse_retry_after("120", now),
            Some(Duration::from_secs(120))
        );
        assert_eq!(
            parse_retry_after("Sun, 06 Dec 2026 18:00:30 GMT", now),
            Some(Duration::from_secs(30))
        );
        assert_eq!(
            parse_retry_after("Sun, 06 Dec 2026 17:00:00 GMT", now),
            Some(Duration::ZERO),
            "a date past"
        );
        assert_eq!(parse_retry_after("soon", now), None);
        assert_eq!(parse_retry_after("-1", now), None);
    }
}
