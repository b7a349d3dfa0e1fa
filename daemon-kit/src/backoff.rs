//! Reconnect pacing for MQTT and HTTP clients on both sides.

use std::time::Duration;

/// Exponential backoff with jitter: 0.5 s doubling to 30 s, each wait drawn from 50–100 % of
/// the step so many publishers do not reconnect in lockstep.
#[derive(Debug, Clone)]
pub struct Backoff {
    step: Duration,
    min: Duration,
    max: Duration,
}

impl Backoff {
    pub fn new(min: Duration, max: Duration) -> Self {
        Self {
            step: min,
            min,
            max,
        }
    }

    pub fn reset(&mut self) {
        self.step = self.min;
    }

    /// The next wait, with random jitter.
    pub fn next_jittered(&mut self) -> Duration {
        self.next(fastrand::f64())
    }

    /// The next wait; `jitter` in `0.0..1.0`.
    pub fn next(&mut self, jitter: f64) -> Duration {
        let wait = self.step.mul_f64(0.5 + 0.5 * jitter.clamp(0.0, 1.0));
        self.step = (self.step * 2).min(self.max);
        wait
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_to_a_cap_with_jitter_and_resets() {
        let mut b = Backoff::new(Duration::from_millis(500), Duration::from_secs(30));
        let waits: Vec<_> = (0..9).map(|_| b.next(1.0)).collect();
        assert_eq!(waits[0], Duration::from_millis(500));
        assert_eq!(waits[1], Duration::from_secs(1));
        assert_eq!(waits[6], Duration::from_secs(30));
        assert_eq!(waits[8], Duration::from_secs(30));
        assert_eq!(
            b.next(0.0),
            Duration::from_secs(15),
            "jitter draws from 50-100 %"
        );
        b.reset();
        assert_eq!(b.next(1.0), Duration::from_millis(500));
    }
}
