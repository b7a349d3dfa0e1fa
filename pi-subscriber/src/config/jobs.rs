//! `[jobs]`: the runs the Pi expects (`[[jobs.expect]]`), validated at load so a typo in a
//! schedule is an error naming its key, never an expectation that silently never fires.

use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::jobs::{Expectation, Schedule};

/// Expectations at most.
pub const MAX_EXPECT: usize = 100;
/// Longest job name (what `publisher job --name` accepts).
const MAX_NAME: usize = 128;
/// The shortest period and the longest (`every`, `grace`, `max_duration`).
const SHORTEST: Duration = Duration::from_secs(1);
const LONGEST: Duration = Duration::from_secs(400 * 86_400);

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct JobsSettings {
    pub expect: Vec<ExpectSettings>,
}

/// One `[[jobs.expect]]`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ExpectSettings {
    /// The job's `--name`.
    pub name: String,
    /// The host that runs it; absent: a run on any host counts.
    #[serde(default)]
    pub host: Option<String>,
    /// A 5-field cron expression (`"0 3 * * *"`), in `timezone`.
    #[serde(default)]
    pub cron: Option<String>,
    /// An IANA time zone for `cron` (default `"UTC"`).
    #[serde(default)]
    pub timezone: Option<String>,
    /// Or a period: a start at most this long after the previous one.
    #[serde(default, with = "daemon_kit::duration::option")]
    pub every: Option<Duration>,
    /// How late a start may be before the run counts as missed (default 1 h).
    #[serde(default = "hour", with = "daemon_kit::duration")]
    pub grace: Duration,
    /// A run still going after this long is overrunning.
    #[serde(default, with = "daemon_kit::duration::option")]
    pub max_duration: Option<Duration>,
}

fn hour() -> Duration {
    Duration::from_secs(3600)
}

fn ms(d: Duration) -> i64 {
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX)
}

/// `7d`, `1h30m`, `4s`: a period as a person writes it in the config.
fn compact(d: Duration) -> String {
    let mut s = d.as_secs();
    let mut out = String::new();
    for (unit, len) in [("d", 86_400), ("h", 3600), ("m", 60), ("s", 1)] {
        if s >= len {
            out.push_str(&format!("{}{unit}", s / len));
            s %= len;
        }
    }
    if out.is_empty() {
        out = format!("{}ms", d.as_millis());
    }
    out
}

/// A bad key: (the key, why).
pub type Invalid = (String, String);

impl JobsSettings {
    /// The expectations, or the first bad key (`jobs.expect[2].cron`, …) and why.
    pub fn expectations(&self) -> Result<Vec<Expectation>, Invalid> {
        if self.expect.len() > MAX_EXPECT {
            return Err(("jobs.expect".into(), format!("at most {MAX_EXPECT}")));
        }
        self.expect
            .iter()
            .enumerate()
            .map(|(i, e)| e.expectation(&format!("jobs.expect[{i}]")))
            .collect()
    }
}

impl ExpectSettings {
    fn expectation(&self, at: &str) -> Result<Expectation, Invalid> {
        let bad = |key: &str, why: String| (format!("{at}.{key}"), why);
        let name_ok = !self.name.is_empty()
            && self.name.len() <= MAX_NAME
            && !self.name.chars().any(char::is_control);
        if !name_ok {
            return Err(bad(
                "name",
                format!("must be 1..={MAX_NAME} bytes without control characters"),
            ));
        }
        if let Some(host) = &self.host {
            broker::validate_host_id(host).map_err(|e| bad("host", e.to_string()))?;
        }
        let span = |key: &str, d: Duration| {
            if (SHORTEST..=LONGEST).contains(&d) {
                Ok(())
            } else {
                Err(bad(key, "must be from 1 s to 400 days".into()))
            }
        };
        span("grace", self.grace)?;
        if let Some(d) = self.max_duration {
            span("max_duration", d)?;
        }
        let schedule = match (&self.cron, self.every) {
            (Some(expr), None) => {
                let zone = self.timezone.as_deref().unwrap_or("UTC");
                Schedule::cron(expr, zone).map_err(|e| match e {
                    crate::jobs::ScheduleError::Zone(_) => bad("timezone", e.to_string()),
                    crate::jobs::ScheduleError::Cron(_) => bad("cron", e.to_string()),
                })?
            }
            (None, Some(every)) => {
                span("every", every)?;
                if self.timezone.is_some() {
                    return Err(bad("timezone", "is only used with cron".into()));
                }
                Schedule::every(ms(every), &compact(every))
            }
            _ => return Err(bad("cron", "give either cron or every".into())),
        };
        Ok(Expectation {
            name: self.name.clone(),
            host: self.host.clone(),
            schedule,
            grace_ms: ms(self.grace),
            max_duration_ms: self.max_duration.map(ms),
        })
    }
}
