//! The wall clock as epoch milliseconds, the unit of every timestamp on the wire.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// `t` in milliseconds since the epoch; 0 before it, `i64::MAX` past year 292 million.
pub fn unix_ms(t: SystemTime) -> i64 {
    t.duration_since(UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}

/// Now, in milliseconds since the epoch.
pub fn unix_ms_now() -> i64 {
    unix_ms(SystemTime::now())
}

/// Epoch milliseconds as a time; a negative value is the epoch.
pub fn from_unix_ms(ms: i64) -> SystemTime {
    UNIX_EPOCH + Duration::from_millis(u64::try_from(ms).unwrap_or(0))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn epoch_ms_both_ways_and_before_the_epoch_is_zero() {
        let t = UNIX_EPOCH + Duration::from_millis(1_767_225_600_123);
        assert_eq!(unix_ms(t), 1_767_225_600_123);
        assert_eq!(from_unix_ms(1_767_225_600_123), t);
        assert_eq!(unix_ms(UNIX_EPOCH - Duration::from_secs(1)), 0);
        assert_eq!(from_unix_ms(-5), UNIX_EPOCH);
        assert!(unix_ms_now() > 1_700_000_000_000);
    }
}
