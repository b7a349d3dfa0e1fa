//! Issue 20 item 5: jobs that did not run. Real `publisher job` runs reach the built Pi over
//! the embedded broker; `[[jobs.expect]]` judges them: a job that stops running fires
//! `job_missed` to a real webhook receiver and resolves when it runs again; a run that
//! outlasts `max_duration` fires `job_overrun` and resolves when it ends. `/jobs/expected`
//! shows each expectation's last run and next due time.
#![allow(clippy::unwrap_used, clippy::expect_used)]

#[path = "support/alerts.rs"]
mod alerts;
#[path = "../../publisher/tests/common/mod.rs"]
mod common;
mod support;

use std::process::{Child, Stdio};
use std::time::Duration;

use common::Publisher;
use serde_json::Value;
use support::Subscriber;

fn job(dir: &std::path::Path, name: &str, cmd: &[&str]) -> Child {
    common::command(dir)
        .args(["job", "--name", name, "--"])
        .args(cmd)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap()
}

fn expected<'a>(list: &'a Value, name: &str) -> &'a Value {
    list.as_array()
        .unwrap()
        .iter()
        .find(|s| s["name"] == name)
        .unwrap_or_else(|| panic!("no {name} in {list}"))
}

#[test]
fn a_job_that_stops_running_or_runs_too_long_is_said_and_then_resolved() {
    let (pdir, sdir) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let hook = alerts::Hook::start();
    let cfg = sdir.path().join("pi.toml");
    std::fs::write(
        &cfg,
        format!(
            "[alerts]\n{}\n[alerts.builtin.filesystem_used]\nenabled = false\nwarning = 85.0\n\
             [alerts.builtin.memory_used]\nenabled = false\nwarning = 90.0\n\n\
             [[jobs.expect]]\nname = \"tick\"\nhost = \"testhost\"\nevery = \"4s\"\ngrace = \"1s\"\n\n\
             [[jobs.expect]]\nname = \"long\"\nevery = \"1h\"\nmax_duration = \"2s\"\n",
            alerts::webhook(&hook.url),
        ),
    )
    .unwrap();
    let p = Publisher::start(pdir.path(), &["--interval", "1s"]);
    let pi = Subscriber::start(
        sdir.path(),
        p.mqtt_port,
        &p.url("/latest"),
        &["--config", &cfg.to_string_lossy()],
        &[],
    );
    pi.wait_for("/metrics", |m| m["seq"].as_u64() >= Some(1));

    // `tick` runs: judged fine, its next run due 4 s after this one's start.
    assert!(job(pdir.path(), "tick", &["true"])
        .wait()
        .unwrap()
        .success());
    let list = pi.wait_for("/jobs/expected", |l| {
        l.as_array()
            .is_some_and(|a| a.iter().any(|s| s["last_run"]["result"] == "success"))
    });
    let tick = expected(&list, "tick");
    assert_eq!(tick["host"], "testhost");
    assert_eq!(tick["schedule"], "every 4s");
    assert!(tick["missed_due_ms"].is_null(), "{list}");
    let start = tick["last_run"]["start_ms"].as_i64().unwrap();
    assert_eq!(tick["next_due_ms"].as_i64(), Some(start + 4000));
    // `long` (any host) has not run: no host yet.
    assert_eq!(expected(&list, "long")["host"], "(any)");

    // It stops running: missed once the 4 s and the 1 s grace are over.
    hook.wait("job_missed", "firing", Duration::from_secs(20));
    let list = pi.json("/jobs/expected");
    assert_eq!(
        expected(&list, "tick")["missed_due_ms"].as_i64(),
        Some(start + 4000)
    );
    assert_eq!(hook.count("job_missed", "resolved"), 0);
    // It runs again: resolved.
    assert!(job(pdir.path(), "tick", &["true"])
        .wait()
        .unwrap()
        .success());
    hook.wait("job_missed", "resolved", Duration::from_secs(20));
    assert_eq!(hook.count("job_missed", "firing"), 1, "{:?}", hook.seen());

    // `long` runs 6 s where 2 s are allowed: overrun while it runs, resolved when it ends.
    let mut long = job(pdir.path(), "long", &["sleep", "6"]);
    hook.wait("job_overrun", "firing", Duration::from_secs(20));
    assert_eq!(hook.count("job_overrun", "resolved"), 0);
    assert!(long.wait().unwrap().success());
    hook.wait("job_overrun", "resolved", Duration::from_secs(20));
    let list = pi.json("/jobs/expected");
    assert_eq!(expected(&list, "long")["host"], "testhost");
    assert_eq!(expected(&list, "long")["last_run"]["result"], "success");
}

/// The Pi restarted while the server is down: the job's runs are not on the Pi's broker or
/// HTTP to fetch again, yet the missed job stays missed (no false `resolved`, no second
/// `firing`), and the run after the server is back resolves it once.
#[test]
fn a_pi_restarted_while_the_server_is_down_keeps_a_missed_job_missed() {
    let (pdir, sdir) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let hook = alerts::Hook::start();
    let cfg = sdir.path().join("pi.toml");
    std::fs::write(
        &cfg,
        format!(
            "[alerts]\n{}\n[alerts.builtin.filesystem_used]\nenabled = false\nwarning = 85.0\n\
             [alerts.builtin.memory_used]\nenabled = false\nwarning = 90.0\n\
             [[jobs.expect]]\nname = \"tick\"\nhost = \"testhost\"\nevery = \"3s\"\ngrace = \"1s\"\n",
            alerts::webhook(&hook.url),
        ),
    )
    .unwrap();
    let [http, mqtt] = common::free_ports::<2>();
    let mut p = Publisher::on_ports(pdir.path(), "1s", http, mqtt);
    let start = |dir: &std::path::Path| {
        Subscriber::start(
            dir,
            Some(mqtt),
            &format!("http://127.0.0.1:{http}/latest"),
            &["--config", &cfg.to_string_lossy()],
            &[("PI_SUBSCRIBER_POLL__INTERVAL", "200ms")],
        )
    };
    let pi = start(sdir.path());
    pi.wait_for("/metrics", |m| m["seq"].as_u64() >= Some(1));
    assert!(job(pdir.path(), "tick", &["true"])
        .wait()
        .unwrap()
        .success());
    pi.wait_for("/jobs/expected", |l| {
        !expected(l, "tick")["last_run"].is_null()
    });
    hook.wait("job_missed", "firing", Duration::from_secs(20));
    let due = expected(&pi.json("/jobs/expected"), "tick")["missed_due_ms"].clone();

    // The server goes down, then the Pi restarts.
    p.signal("KILL");
    p.wait_exit(Duration::from_secs(5));
    pi.stop();
    let pi = start(sdir.path());
    // Several judgments later: still missed, the same due time, nothing said.
    std::thread::sleep(Duration::from_secs(6));
    let list = pi.json("/jobs/expected");
    assert_eq!(expected(&list, "tick")["missed_due_ms"], due, "{list}");
    assert_eq!(hook.count("job_missed", "resolved"), 0, "{:?}", hook.seen());
    assert_eq!(hook.count("job_missed", "firing"), 1, "{:?}", hook.seen());

    // The server is back and the job runs: resolved, once.
    let _p = Publisher::on_ports(pdir.path(), "1s", http, mqtt);
    assert!(job(pdir.path(), "tick", &["true"])
        .wait()
        .unwrap()
        .success());
    hook.wait("job_missed", "resolved", Duration::from_secs(20));
    assert_eq!(hook.count("job_missed", "resolved"), 1, "{:?}", hook.seen());
}
