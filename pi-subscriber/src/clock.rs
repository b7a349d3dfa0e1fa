//! The Pi's wall clock, in the one unit every table and answer uses.

use std::time::SystemTime;

/// Now, in Unix milliseconds (0 before 1970).
pub fn unix_ms_now() -> i64 {
    SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}
