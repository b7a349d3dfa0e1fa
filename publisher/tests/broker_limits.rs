//! The embedded broker's retained-store bound, seen from the publisher: real mosquitto_pub
//! junk is cleared, the publisher's own snapshot stays retained, `/health` counts the clears.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::Publisher;

fn retained(port: u16) -> Vec<String> {
    let out = Command::new("mosquitto_sub")
        .args(["-p", &port.to_string(), "-t", "#", "-v", "--retained-only"])
        .args(["-W", "1"])
        .stderr(Stdio::null())
        .output()
        .unwrap();
    let mut topics: Vec<String> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| l.split(' ').next().unwrap_or_default().to_owned())
        .collect();
    topics.sort();
    topics
}

#[test]
fn retained_junk_is_cleared_and_counted_in_health() {
    let dir = tempfile::tempdir().unwrap();
    let big = dir.path().join("big");
    std::fs::write(&big, vec![b'x'; 256 * 1024 - 64]).unwrap();
    let mut p = Publisher::start(dir.path(), &["--interval", "200ms"]);
    let port = p.mqtt_port.expect("embedded broker port in the log");
    p.wait_for("/latest", |v| v["seq"].as_u64() >= Some(1));
    let port_s = port.to_string();
    for i in 0..8 {
        let ok = Command::new("mosquitto_pub")
            .args(["-p", &port_s, "-q", "1", "-r", "-t", &format!("junk/{i}")])
            .arg("-f")
            .arg(&big)
            .status()
            .unwrap()
            .success();
        assert!(ok);
    }
    let ok = Command::new("mosquitto_pub")
        .args([
            "-p",
            &port_s,
            "-q",
            "1",
            "-r",
            "-t",
            "server-analytics/ghost/snapshot",
        ])
        .arg("-f")
        .arg(&big)
        .status()
        .unwrap()
        .success();
    assert!(ok);
    let health = p.wait_for("/health", |h| {
        h["broker"]["cleared_outside_topics"] == 8 && h["broker"]["cleared_too_large"] == 1
    });
    assert_eq!(health["broker"]["cleared_over_count"], 0, "{health}");
    // The publisher's snapshot and status, nothing else.
    assert_eq!(health["broker"]["retained_topics"], 2, "{health}");
    let want = [
        "server-analytics/testhost/snapshot",
        "server-analytics/testhost/status",
    ];
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let got = retained(port);
        if got == want {
            break;
        }
        assert!(Instant::now() < deadline, "retained: {got:?}");
    }
    p.signal("TERM");
    assert!(p.wait_exit(Duration::from_secs(10)).success());
}
