//! `publisher job`: exit codes, untouched arguments, output tails, and events that are kept
//! whether or not the daemon runs.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::process::Stdio;

use common::{command, Publisher};
use serde_json::Value;

fn job(data_dir: &std::path::Path, args: &[&str]) -> std::process::Output {
    command(data_dir)
        .arg("job")
        .args(args)
        .stdin(Stdio::null())
        .output()
        .unwrap()
}

fn events(p: &Publisher) -> Vec<Value> {
    p.json("/events").as_array().unwrap().clone()
}

#[test]
fn exit_code_output_and_events_recorded_while_the_daemon_is_down() {
    let dir = tempfile::tempdir().unwrap();
    let out = job(
        dir.path(),
        &[
            "--name",
            "t",
            "--",
            "sh",
            "-c",
            "echo hi; echo oops >&2; exit 3",
        ],
    );
    assert_eq!(out.status.code(), Some(3));
    assert_eq!(String::from_utf8_lossy(&out.stdout), "hi\n");
    assert_eq!(String::from_utf8_lossy(&out.stderr), "oops\n");

    // The daemon starts afterwards and serves what the job stored.
    let p = Publisher::start(dir.path(), &["--interval", "1s"]);
    let ev = events(&p);
    assert_eq!(ev.len(), 2);
    assert_eq!(ev[0]["type"], "job_start");
    assert_eq!(ev[0]["name"], "t");
    assert_eq!(ev[0]["host"], "testhost");
    assert_eq!(
        ev[0]["command"],
        serde_json::json!(["sh", "-c", "echo hi; echo oops >&2; exit 3"])
    );
    assert_eq!(ev[1]["type"], "job_end");
    assert_eq!(ev[1]["run_id"], ev[0]["run_id"]);
    assert_eq!(ev[1]["exit_code"], 3);
    assert!(ev[1]["signal"].is_null());
    let tail = ev[1]["output_tail"].as_str().unwrap();
    assert!(tail == "hi\noops\n" || tail == "oops\nhi\n", "{tail:?}");
    let duration = ev[1]["duration_s"].as_f64().unwrap();
    assert!((0.0..30.0).contains(&duration));
    assert_eq!(ev[1]["start_ts_ms"], ev[0]["start_ts_ms"]);
    assert!(ev[1]["end_ts_ms"].as_i64() >= ev[0]["start_ts_ms"].as_i64());

    // The seed's text format.
    let (status, text) = p.get("/events?format=text");
    assert_eq!(status, 200);
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 2);
    let shape = |line: &str, tail: &str| {
        let (date, rest) = line.split_at(16);
        assert!(
            date.chars().enumerate().all(|(i, c)| match i {
                4 | 7 => c == '-',
                10 => c == ' ',
                13 => c == ':',
                _ => c.is_ascii_digit(),
            }),
            "{line}"
        );
        assert_eq!(rest, tail, "{line}");
    };
    shape(lines[0], " job=t start");
    shape(lines[1], " job=t end rc=3");

    // A job while the daemon runs shows up too, and ?limit keeps the newest.
    let out = job(dir.path(), &["--", "true"]);
    assert_eq!(out.status.code(), Some(0));
    let ev = events(&p);
    assert_eq!(ev.len(), 4);
    assert_eq!(ev[3]["name"], "true");
    assert_eq!(ev[3]["exit_code"], 0);
    let newest = p.json("/events?limit=1");
    assert_eq!(newest.as_array().unwrap().len(), 1);
    assert_eq!(newest[0]["run_id"], ev[3]["run_id"]);
}

#[test]
fn arguments_pass_untouched() {
    let dir = tempfile::tempdir().unwrap();
    let out = job(
        dir.path(),
        &["--", "printf", "%s|", "a b", "*", "$HOME", "", "--name"],
    );
    assert_eq!(out.status.code(), Some(0));
    assert_eq!(String::from_utf8_lossy(&out.stdout), "a b|*|$HOME||--name|");
}

#[test]
fn signals_and_missing_commands() {
    let dir = tempfile::tempdir().unwrap();
    let out = job(
        dir.path(),
        &["--name", "killed", "--", "sh", "-c", "kill -9 $$"],
    );
    assert_eq!(out.status.code(), Some(128 + 9));
    let out = job(
        dir.path(),
        &["--name", "ghost", "--", "/nonexistent/command"],
    );
    assert_eq!(out.status.code(), Some(127));
    assert!(String::from_utf8_lossy(&out.stderr).contains("/nonexistent/command"));

    let read = publisher::events::EventLog::new(dir.path()).read().unwrap();
    let ends: Vec<_> = read
        .events
        .iter()
        .filter_map(|e| match e {
            broker::JobEvent::JobEnd(end) => Some(end.clone()),
            _ => None,
        })
        .collect();
    assert_eq!(ends.len(), 2);
    assert_eq!((ends[0].exit_code, ends[0].signal), (None, Some(9)));
    assert_eq!(ends[1].exit_code, None);
    assert!(ends[1].error.as_deref().unwrap().contains("No such file"));
}

#[test]
fn output_tail_is_bounded() {
    let dir = tempfile::tempdir().unwrap();
    let out = job(
        dir.path(),
        &[
            "--",
            "sh",
            "-c",
            "i=0; while [ $i -lt 2000 ]; do echo line$i; i=$((i+1)); done",
        ],
    );
    assert_eq!(out.status.code(), Some(0));
    assert_eq!(
        out.stdout.len(),
        (0..2000).map(|i| format!("line{i}\n").len()).sum::<usize>()
    );
    let read = publisher::events::EventLog::new(dir.path()).read().unwrap();
    let broker::JobEvent::JobEnd(end) = &read.events[1] else {
        panic!("second event is not job_end")
    };
    assert_eq!(end.output_tail.len(), 4096);
    assert!(end.output_tail.ends_with("line1999\n"));
}

#[test]
fn sigterm_to_the_wrapper_reaches_the_job_and_is_recorded() {
    let dir = tempfile::tempdir().unwrap();
    let mut child = command(dir.path())
        .args(["job", "--name", "long", "--", "sleep", "30"])
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    // Wait until the start event is stored, i.e. the job is running.
    let log = publisher::events::EventLog::new(dir.path());
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while log.read().unwrap().events.is_empty() {
        assert!(std::time::Instant::now() < deadline);
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    std::thread::sleep(std::time::Duration::from_millis(100));
    std::process::Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    let status = child.wait().unwrap();
    assert_eq!(status.code(), Some(128 + 15));
    let events = log.read().unwrap().events;
    let broker::JobEvent::JobEnd(end) = &events[1] else {
        panic!("no job_end")
    };
    assert_eq!(end.signal, Some(15));
    assert!(end.duration_s < 25.0);
}

#[test]
fn a_background_process_holding_the_output_does_not_hang_the_wrapper() {
    let dir = tempfile::tempdir().unwrap();
    let started = std::time::Instant::now();
    let out = job(
        dir.path(),
        &[
            "--name",
            "bg",
            "--",
            "sh",
            "-c",
            "sleep 30 & echo started; exit 5",
        ],
    );
    assert_eq!(out.status.code(), Some(5));
    assert!(
        started.elapsed() < std::time::Duration::from_secs(10),
        "wrapper waited for the background process"
    );
    let read = publisher::events::EventLog::new(dir.path()).read().unwrap();
    assert_eq!(read.events.len(), 2, "job_end recorded");
}

#[test]
fn secrets_in_the_command_line_are_neither_stored_nor_served() {
    let dir = tempfile::tempdir().unwrap();
    let script = "PGPASSWORD=S3cret true pg_dump db; \
                  true mysqldump -uroot -pS3cret --password=S3cret --token S3cret \
                  https://backup:S3cret@host/db; echo done";
    let out = job(
        dir.path(),
        &[
            "--name",
            "dump",
            "--",
            "sh",
            "-c",
            script,
            "sh",
            "--password",
            "S3cret",
        ],
    );
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    assert_eq!(String::from_utf8_lossy(&out.stdout), "done\n");
    // Name only, and no output tail (environment layer of the config).
    let out = command(dir.path())
        .env("PUBLISHER_JOBS__RECORD_COMMAND", "name-only")
        .env("PUBLISHER_JOBS__RECORD_OUTPUT", "false")
        .args(["job", "--", "sh", "-c", "echo S3cret"])
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    let stored = std::fs::read_to_string(dir.path().join("events.log")).unwrap();
    assert!(!stored.contains("S3cret"), "{stored}");

    let p = Publisher::start(dir.path(), &["--interval", "1s"]);
    let (status, body) = p.get("/events");
    assert_eq!(status, 200);
    assert!(!body.contains("S3cret"), "{body}");
    let ev = events(&p);
    assert_eq!(
        ev[0]["command"],
        serde_json::json!([
            "sh",
            "-c",
            "PGPASSWORD=*** true pg_dump db; \
             true mysqldump -uroot -p*** --password=*** --token *** \
             https://backup:***@host/db; echo done",
            "sh",
            "--password",
            "***"
        ])
    );
    assert_eq!(ev[1]["output_tail"], "done\n");
    assert_eq!(ev[2]["command"], serde_json::json!(["sh"]));
    assert_eq!(ev[3]["output_tail"], "");
}
