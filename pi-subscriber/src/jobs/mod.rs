//! Jobs that did not run: what `[[jobs.expect]]` says should happen (a schedule, a grace, a
//! longest run) judged against the job events the store keeps. Pure: no I/O, no clock; the
//! [`watch`] task judges every few seconds and everyone (the alert engine, `/jobs/expected`,
//! the dashboard) reads that one judgment.

mod schedule;
pub mod watch;

use broker::JobEvent;
use serde::{Deserialize, Serialize};

pub use schedule::{Schedule, ScheduleError};

/// The host shown for a job expected on any host that has never run.
pub const ANY_HOST: &str = "(any)";

/// One `[[jobs.expect]]`, validated.
#[derive(Debug, Clone)]
pub struct Expectation {
    pub name: String,
    /// `None`: a run on any host counts.
    pub host: Option<String>,
    pub schedule: Schedule,
    pub grace_ms: i64,
    pub max_duration_ms: Option<i64>,
}

/// One run of a job, from its start and (when it came) its end.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Run {
    pub host: String,
    pub run_id: String,
    pub start_ms: i64,
    pub end_ms: Option<i64>,
    /// `success` or `failed` once it ended.
    pub result: Option<String>,
}

/// The judgment of one expectation at one instant.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Status {
    pub name: String,
    /// The expectation's host, else the host of the newest run, else [`ANY_HOST`].
    pub host: String,
    pub schedule: String,
    pub grace_ms: i64,
    pub max_duration_ms: Option<i64>,
    pub last_run: Option<Run>,
    /// When the next run is due (a missed one: when it was due).
    pub next_due_ms: Option<i64>,
    /// The due time whose grace passed without a start.
    pub missed_due_ms: Option<i64>,
    /// The newest run, still going beyond `max_duration`.
    pub overrun: bool,
}

/// Starts may come this much before their due time and still count for it (a server whose
/// clock is a little ahead, a scheduler that fires early): at most the grace, at most 5 min.
const EARLY_MS: i64 = 300_000;

/// The runs of `name` (on `host`, or any) in `events`, oldest first: one per start, and one
/// per end whose start the store no longer has (an end carries its start time).
pub fn runs(events: &[JobEvent], name: &str, host: Option<&str>) -> Vec<Run> {
    let ours = |e: &&JobEvent| host.is_none_or(|h| h == e.host());
    let mut runs: Vec<Run> = Vec::new();
    for e in events.iter().filter(ours) {
        if let JobEvent::JobStart(s) = e {
            if s.name == name {
                runs.push(Run {
                    host: s.host.clone(),
                    run_id: s.run_id.clone(),
                    start_ms: s.start_ts_ms,
                    end_ms: None,
                    result: None,
                });
            }
        }
    }
    for e in events.iter().filter(ours) {
        let JobEvent::JobEnd(end) = e else { continue };
        if end.name != name {
            continue;
        }
        let result = Some(if end.failed() { "failed" } else { "success" }.to_owned());
        match runs
            .iter_mut()
            .find(|r| r.run_id == end.run_id && r.host == end.host)
        {
            Some(r) => {
                r.end_ms = Some(end.end_ts_ms);
                r.result = result;
            }
            None => runs.push(Run {
                host: end.host.clone(),
                run_id: end.run_id.clone(),
                start_ms: end.start_ts_ms,
                end_ms: Some(end.end_ts_ms),
                result,
            }),
        }
    }
    runs.sort_by_key(|r| r.start_ms);
    runs
}

/// Judges `e` at `now_ms` over its runs; `watching_since_ms`: when the Pi began watching (a
/// job that never ran is only missed for a due time after it).
pub fn judge(e: &Expectation, runs: &[Run], now_ms: i64, watching_since_ms: i64) -> Status {
    let last = runs.last();
    let early = EARLY_MS.min(e.grace_ms);
    let (next_due_ms, missed_due_ms) = match &e.schedule {
        Schedule::Every { every_ms, .. } => {
            let due = last
                .map_or(watching_since_ms, |r| r.start_ms)
                .saturating_add(*every_ms);
            let missed = now_ms > due.saturating_add(e.grace_ms);
            (Some(due), missed.then_some(due))
        }
        Schedule::Cron { .. } => {
            // The newest due time whose grace is over: a start since (almost) then covers it.
            let expired = e.schedule.previous(now_ms.saturating_sub(e.grace_ms));
            let covered = |due: i64| match last {
                Some(r) => r.start_ms >= due - early,
                None => due < watching_since_ms,
            };
            let missed = expired.filter(|d| !covered(*d));
            (missed.or_else(|| e.schedule.next(now_ms)), missed)
        }
    };
    let overrun = match (e.max_duration_ms, last) {
        (Some(max), Some(r)) => r.end_ms.is_none() && now_ms.saturating_sub(r.start_ms) > max,
        _ => false,
    };
    Status {
        name: e.name.clone(),
        host: e
            .host
            .clone()
            .or_else(|| last.map(|r| r.host.clone()))
            .unwrap_or_else(|| ANY_HOST.to_owned()),
        schedule: e.schedule.to_string(),
        grace_ms: e.grace_ms,
        max_duration_ms: e.max_duration_ms,
        last_run: last.cloned(),
        next_due_ms,
        missed_due_ms,
        overrun,
    }
}

#[cfg(test)]
mod tests;
