//! One staleness judgment (issue 19 item 4), with the built binaries: a publisher sampling
//! every second is judged by its own interval (3 s, no `--max-age` given), and when it hangs,
//! `/health`, `/hosts`, Prometheus's `up` and the `host_down` alert all say so, and agree.
#![allow(clippy::unwrap_used, clippy::expect_used)]

#[path = "../../publisher/tests/common/mod.rs"]
mod common;
mod support;

use std::time::{Duration, Instant};

use common::Publisher;
use support::Subscriber;

fn up(s: &Subscriber) -> Option<String> {
    let (_, text) = s.get("/prometheus");
    text.lines()
        .find(|l| l.starts_with("server_analytics_up{"))
        .and_then(|l| l.rsplit(' ').next())
        .map(str::to_owned)
}

fn host_down(s: &Subscriber) -> bool {
    let (_, body) = s.get("/alerts");
    serde_json::from_str::<serde_json::Value>(&body)
        .ok()
        .and_then(|a| a["alerts"].as_array().cloned())
        .is_some_and(|l| {
            l.iter()
                .any(|a| a["rule"] == "host_down" && a["state"] == "firing")
        })
}

#[test]
fn a_host_is_judged_by_its_own_interval_and_every_surface_agrees() {
    let pdir = tempfile::tempdir().unwrap();
    let sdir = tempfile::tempdir().unwrap();
    let p = Publisher::start(pdir.path(), &["--interval", "1s"]);
    let s = Subscriber::start(sdir.path(), p.mqtt_port, &p.url("/latest"), &[], &[]);
    let hosts = s.wait_for("/hosts", |h| h[0]["last_seq"].as_u64() >= Some(2));
    assert_eq!(hosts[0]["max_age_s"], 3.0, "3 × the 1 s interval: {hosts}");
    assert_eq!(hosts[0]["stale"], false);
    assert_eq!(up(&s).as_deref(), Some("1.0"));
    assert!(!host_down(&s));

    // The server hangs: within its 3 s (plus the alert engine's 1 s tick), every surface says
    // it is down.
    p.signal("STOP");
    let hung = Instant::now();
    let deadline = hung + Duration::from_secs(15);
    loop {
        let (status, body) = s.get("/health");
        let health: serde_json::Value = serde_json::from_str(&body).unwrap();
        let stale = health["hosts"][0]["stale"] == true;
        if stale && up(&s).as_deref() == Some("0.0") && host_down(&s) {
            assert_eq!(status, 503, "{health}");
            break;
        }
        assert!(
            Instant::now() < deadline,
            "not judged down in 15 s: {health}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    // Judged from the last sample received, at most one interval before the hang.
    let took = hung.elapsed();
    assert!(
        took >= Duration::from_secs(2),
        "not before its max_age: {took:?}"
    );
    p.signal("CONT");
    s.wait_for("/health", |h| h["hosts"][0]["stale"] == false);
    assert_eq!(up(&s).as_deref(), Some("1.0"));
}
