//! Expected jobs judged at chosen instants (the clock is an argument), DST changes included.
#![allow(clippy::unwrap_used)]

use broker::{JobEnd, JobEvent, JobStart};

use super::*;

const MIN: i64 = 60_000;
const HOUR: i64 = 3_600_000;
/// 2026-12-06T00:00:00Z.
const DAY0: i64 = 1_796_515_200_000;

fn start(host: &str, name: &str, run: &str, at: i64) -> JobEvent {
    JobEvent::JobStart(JobStart {
        v: 1,
        run_id: run.into(),
        name: name.into(),
        host: host.into(),
        start_ts_ms: at,
        command: Vec::new(),
    })
}

fn end(host: &str, name: &str, run: &str, from: i64, at: i64, code: i32) -> JobEvent {
    JobEvent::JobEnd(JobEnd {
        v: 1,
        run_id: run.into(),
        name: name.into(),
        host: host.into(),
        start_ts_ms: from,
        end_ts_ms: at,
        duration_s: (at - from) as f64 / 1000.0,
        exit_code: Some(code),
        signal: None,
        error: None,
        output_tail: String::new(),
    })
}

fn nightly(zone: &str) -> Expectation {
    Expectation {
        name: "backup".into(),
        host: Some("tower".into()),
        schedule: Schedule::cron("0 3 * * *", zone).unwrap(),
        grace_ms: HOUR,
        max_duration_ms: Some(2 * HOUR),
    }
}

fn judge_at(e: &Expectation, events: &[JobEvent], now: i64, since: i64) -> Status {
    judge(e, &runs(events, &e.name, e.host.as_deref()), now, since)
}

#[test]
fn a_nightly_job_that_ran_is_fine_and_one_that_did_not_is_missed_after_its_grace() {
    let e = nightly("UTC");
    let ran = [
        start("tower", "backup", "r1", DAY0 + 3 * HOUR + 2_000),
        end(
            "tower",
            "backup",
            "r1",
            DAY0 + 3 * HOUR + 2_000,
            DAY0 + 3 * HOUR + 20 * MIN,
            0,
        ),
    ];
    let s = judge_at(&e, &ran, DAY0 + 10 * HOUR, DAY0);
    assert_eq!(s.missed_due_ms, None);
    assert_eq!(s.next_due_ms, Some(DAY0 + 27 * HOUR), "tomorrow 03:00");
    assert_eq!(
        s.last_run.as_ref().unwrap().result.as_deref(),
        Some("success")
    );
    assert!(!s.overrun);
    // The next night nothing starts: still fine at 03:59, missed from 04:00 on.
    let next_night = DAY0 + 27 * HOUR;
    assert_eq!(
        judge_at(&e, &ran, next_night + HOUR - 1, DAY0).missed_due_ms,
        None
    );
    let missed = judge_at(&e, &ran, next_night + HOUR + 1, DAY0);
    assert_eq!(missed.missed_due_ms, Some(next_night));
    assert_eq!(missed.next_due_ms, Some(next_night), "the missed due time");
    // A start a minute early counts for its due time (a clock a little ahead).
    let early = [start("tower", "backup", "r2", next_night - MIN)];
    assert_eq!(
        judge_at(&e, &early, next_night + 2 * HOUR, DAY0).missed_due_ms,
        None
    );
    // Another host's run or another job's does not count.
    let elsewhere = [
        start("zbox", "backup", "r3", next_night),
        start("tower", "other", "r4", next_night),
    ];
    assert_eq!(
        judge_at(&e, &elsewhere, next_night + 2 * HOUR, DAY0).missed_due_ms,
        Some(next_night)
    );
}

#[test]
fn a_job_that_never_ran_is_missed_only_for_due_times_after_the_pi_began_watching() {
    let e = nightly("UTC");
    // The Pi started at 05:00: the 03:00 run before it is not held against the job.
    let since = DAY0 + 5 * HOUR;
    let s = judge_at(&e, &[], DAY0 + 6 * HOUR, since);
    assert_eq!(s.missed_due_ms, None);
    assert_eq!(s.host, "tower");
    assert_eq!(s.last_run, None);
    let s = judge_at(&e, &[], DAY0 + 28 * HOUR + 1, since);
    assert_eq!(s.missed_due_ms, Some(DAY0 + 27 * HOUR));
}

#[test]
fn every_is_a_period_after_the_last_start() {
    let e = Expectation {
        name: "sync".into(),
        host: None,
        schedule: Schedule::every(HOUR, "1h"),
        grace_ms: 5 * MIN,
        max_duration_ms: None,
    };
    let events = [start("nas", "sync", "a", DAY0)];
    let s = judge_at(&e, &events, DAY0 + HOUR + 5 * MIN, DAY0);
    assert_eq!((s.next_due_ms, s.missed_due_ms), (Some(DAY0 + HOUR), None));
    assert_eq!(s.host, "nas", "any host: the host of the newest run");
    let s = judge_at(&e, &events, DAY0 + HOUR + 5 * MIN + 1, DAY0);
    assert_eq!(s.missed_due_ms, Some(DAY0 + HOUR));
    // Never ran: due a period after the Pi began watching, on no host yet.
    let s = judge_at(&e, &[], DAY0 + 2 * HOUR, DAY0);
    assert_eq!(
        (s.host.as_str(), s.missed_due_ms),
        (ANY_HOST, Some(DAY0 + HOUR))
    );
}

#[test]
fn a_run_without_an_end_beyond_max_duration_overruns_and_an_end_clears_it() {
    let e = nightly("UTC");
    let at = DAY0 + 3 * HOUR;
    let started = [start("tower", "backup", "r1", at)];
    assert!(!judge_at(&e, &started, at + 2 * HOUR, DAY0).overrun);
    assert!(judge_at(&e, &started, at + 2 * HOUR + 1, DAY0).overrun);
    let ended = [
        started[0].clone(),
        end("tower", "backup", "r1", at, at + 3 * HOUR, 1),
    ];
    let s = judge_at(&e, &ended, at + 3 * HOUR + 1, DAY0);
    assert!(!s.overrun);
    assert_eq!(s.last_run.unwrap().result.as_deref(), Some("failed"));
    // An end whose start the store no longer has is still a run.
    let only_end = [end("tower", "backup", "r9", at, at + MIN, 0)];
    let s = judge_at(&e, &only_end, at + 2 * HOUR, DAY0);
    assert_eq!(s.last_run.unwrap().start_ms, at);
    assert_eq!(s.missed_due_ms, None);
}

#[test]
fn due_times_follow_the_time_zone_across_daylight_saving_changes() {
    // 03:00 Europe/Berlin is 02:00Z in winter (CET) and 01:00Z in summer (CEST): the UTC due
    // time moves by an hour across the change.
    let e = nightly("Europe/Berlin");
    // Sunday 2027-03-28 the clocks go from 02:00 CET to 03:00 CEST.
    let before = 1_806_112_800_000; // 2027-03-27T03:00:00+01:00 = 02:00Z
    let after = 1_806_195_600_000; // 2027-03-28T03:00:00+02:00 = 01:00Z
    assert_eq!(e.schedule.next(before - 1), Some(before));
    assert_eq!(e.schedule.next(before), Some(after), "23 h later, not 24");
    // A job that ran on Saturday and not on Sunday is missed an hour after Sunday's 03:00
    // CEST, not an hour after 03:00 CET.
    let ran = [start("tower", "backup", "r1", before)];
    assert_eq!(judge_at(&e, &ran, after + HOUR - 1, 0).missed_due_ms, None);
    assert_eq!(
        judge_at(&e, &ran, after + HOUR + 1, 0).missed_due_ms,
        Some(after)
    );
    // 02:30 does not exist that night: croner moves it to the first time that does, 03:00
    // CEST (as Vixie cron runs a skipped job right after the jump).
    let half_past_two = Expectation {
        schedule: Schedule::cron("30 2 * * *", "Europe/Berlin").unwrap(),
        ..nightly("Europe/Berlin")
    };
    let next = half_past_two.schedule.next(before).unwrap();
    assert_eq!(next, after, "{}", super::schedule::fmt_ms(next));
    // Sunday 2026-10-25 02:30 happens twice (CEST, then CET): due once, at the first.
    let first = 1_792_888_200_000; // 2026-10-25T02:30:00+02:00 = 00:30Z
    assert_eq!(half_past_two.schedule.next(first - 1), Some(first));
    let following = half_past_two.schedule.next(first).unwrap();
    assert_eq!(
        following,
        first + 25 * HOUR,
        "{}",
        super::schedule::fmt_ms(following)
    );
}

#[test]
fn bad_schedules_name_their_key() {
    use crate::config::jobs::JobsSettings;
    let load = |toml_text: &str| {
        let s: JobsSettings = toml::from_str(toml_text).unwrap();
        s.expectations().map(|v| v.len())
    };
    assert_eq!(
        load("[[expect]]\nname = \"b\"\ncron = \"0 3 * * *\"\n"),
        Ok(1)
    );
    assert_eq!(
        load("[[expect]]\nname = \"b\"\ncron = \"0 3 * * *\"\n[[expect]]\nname = \"c\"\ncron = \"61 3 * * *\"\n")
            .unwrap_err()
            .0,
        "jobs.expect[1].cron"
    );
    assert_eq!(
        load("[[expect]]\nname = \"b\"\ncron = \"0 3 * * *\"\ntimezone = \"Mars/Olympus\"\n")
            .unwrap_err()
            .0,
        "jobs.expect[0].timezone"
    );
    assert_eq!(
        load("[[expect]]\nname = \"b\"\n").unwrap_err(),
        (
            "jobs.expect[0].cron".into(),
            "give either cron or every".into()
        )
    );
    assert_eq!(
        load("[[expect]]\nname = \"b\"\nevery = \"1d\"\ncron = \"0 3 * * *\"\n")
            .unwrap_err()
            .0,
        "jobs.expect[0].cron"
    );
    assert_eq!(
        load("[[expect]]\nname = \"b\"\nevery = \"1d\"\nhost = \"no such/host\"\n")
            .unwrap_err()
            .0,
        "jobs.expect[0].host"
    );
    assert_eq!(
        load("[[expect]]\nname = \"b\"\nevery = \"1d\"\ngrace = \"0s\"\n")
            .unwrap_err()
            .0,
        "jobs.expect[0].grace"
    );
}

/// The watch remembers each expectation's newest run: when the store's events later hold a
/// less complete copy of that run (its end evicted, its start kept), the run stays ended and
/// no overrun comes back (a run's end seen once is never forgotten).
#[test]
fn a_run_seen_ended_stays_ended_when_the_store_keeps_only_its_start() {
    let e = nightly("UTC");
    let at = DAY0 + 3 * HOUR;
    let watch = watch::JobWatch::new(vec![e], DAY0, None);
    let started = start("tower", "backup", "r1", at);
    let ended = end("tower", "backup", "r1", at, at + 3 * HOUR, 0);
    watch.judge(&[started.clone(), ended], at + 3 * HOUR + 1);
    let s = &watch.statuses()[0];
    assert_eq!(
        s.last_run.as_ref().unwrap().result.as_deref(),
        Some("success")
    );
    watch.judge(&[started], at + 3 * HOUR + 2);
    let s = &watch.statuses()[0];
    assert!(!s.overrun);
    let last = s.last_run.as_ref().unwrap();
    assert_eq!(
        (last.result.as_deref(), last.end_ms),
        (Some("success"), Some(at + 3 * HOUR))
    );
}
