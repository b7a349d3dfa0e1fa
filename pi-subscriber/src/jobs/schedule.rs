//! When a job is due: a cron expression in a time zone (croner, POSIX/Vixie semantics, 5
//! fields) or a fixed period after the last start.

use std::fmt;
use std::str::FromStr;

use chrono::{DateTime, TimeZone, Utc};
use chrono_tz::Tz;
use croner::Cron;

/// A bad schedule, with what was wrong.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ScheduleError {
    #[error("not a cron expression ({0})")]
    Cron(String),
    #[error("unknown time zone {0:?} (an IANA name such as \"Europe/Berlin\")")]
    Zone(String),
}

#[derive(Debug, Clone)]
pub enum Schedule {
    Cron {
        cron: Box<Cron>,
        zone: Tz,
        text: String,
    },
    Every {
        every_ms: i64,
        text: String,
    },
}

impl Schedule {
    pub fn cron(expr: &str, zone: &str) -> Result<Schedule, ScheduleError> {
        let zone = Tz::from_str(zone).map_err(|_| ScheduleError::Zone(zone.to_owned()))?;
        let cron = Cron::from_str(expr).map_err(|e| ScheduleError::Cron(e.to_string()))?;
        Ok(Schedule::Cron {
            cron: Box::new(cron),
            zone,
            text: format!("{expr} ({zone})"),
        })
    }

    pub fn every(every_ms: i64, text: &str) -> Schedule {
        Schedule::Every {
            every_ms,
            text: format!("every {text}"),
        }
    }

    fn at(zone: &Tz, ms: i64) -> Option<DateTime<Tz>> {
        Utc.timestamp_millis_opt(ms)
            .single()
            .map(|t| t.with_timezone(zone))
    }

    /// The newest due time at or before `ms` (a cron schedule; `None` for a period).
    pub fn previous(&self, ms: i64) -> Option<i64> {
        let Schedule::Cron { cron, zone, .. } = self else {
            return None;
        };
        cron.find_previous_occurrence(&Self::at(zone, ms)?, true)
            .ok()
            .map(|t| t.timestamp_millis())
    }

    /// The first due time after `ms` (a cron schedule; `None` for a period).
    pub fn next(&self, ms: i64) -> Option<i64> {
        let Schedule::Cron { cron, zone, .. } = self else {
            return None;
        };
        cron.find_next_occurrence(&Self::at(zone, ms)?, false)
            .ok()
            .map(|t| t.timestamp_millis())
    }
}

impl fmt::Display for Schedule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Schedule::Cron { text, .. } | Schedule::Every { text, .. } => f.write_str(text),
        }
    }
}

/// Epoch ms as RFC 3339, for test messages.
#[cfg(test)]
pub(super) fn fmt_ms(ms: i64) -> String {
    Utc.timestamp_millis_opt(ms)
        .single()
        .map_or_else(|| ms.to_string(), |t| t.to_rfc3339())
}
