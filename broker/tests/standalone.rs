//! The standalone `broker` binary with the real mosquitto clients.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

const BIN: &str = env!("CARGO_BIN_EXE_broker");

#[path = "../../publisher/tests/common/ports.rs"]
mod ports;

use ports::free_port;

fn wait_listening(port: u16) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(Instant::now() < deadline, "broker did not listen");
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn retained_roundtrip_with_credentials_from_the_publishers_config_file() {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let cfg = dir.path().join("publisher.toml");
    // The publisher's whole file: the broker reads only [broker].
    std::fs::write(
        &cfg,
        format!("host = \"tower\"\n[http]\nbind = \"127.0.0.1:9000\"\n[broker]\nlisten = \"127.0.0.1:{port}\"\nusername = \"pi\"\npassword = \"pw\"\n"),
    )
    .unwrap();
    let mut broker = Command::new(BIN)
        .arg("--config")
        .arg(&cfg)
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    wait_listening(port);
    let p = port.to_string();
    let ok = Command::new("mosquitto_pub")
        .args([
            "-p",
            &p,
            "-u",
            "pi",
            "-P",
            "pw",
            "-t",
            "server-analytics/tower/status",
            "-r",
            "-q",
            "1",
            "-m",
            "hello",
        ])
        .status()
        .unwrap()
        .success();
    assert!(ok);
    let out = Command::new("mosquitto_sub")
        .args([
            "-p",
            &p,
            "-u",
            "pi",
            "-P",
            "pw",
            "-t",
            "server-analytics/#",
            "-v",
            "-C",
            "1",
            "-W",
            "5",
        ])
        .output()
        .unwrap();
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        "server-analytics/tower/status hello\n"
    );
    let refused = Command::new("mosquitto_sub")
        .args([
            "-p", &p, "-u", "pi", "-P", "nope", "-t", "a/#", "-C", "1", "-W", "2",
        ])
        .stderr(Stdio::null())
        .output()
        .unwrap();
    assert!(refused.stdout.is_empty());

    Command::new("kill")
        .args(["-TERM", &broker.id().to_string()])
        .status()
        .unwrap();
    let status = broker.wait().unwrap();
    assert!(status.success(), "{status:?}");
}

#[test]
fn bad_broker_keys_are_named() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("b.toml");
    std::fs::write(&cfg, "[broker]\nmax_segment_sise = 5\n").unwrap();
    let out = Command::new(BIN)
        .arg("--config")
        .arg(&cfg)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("max_segment_sise"));
    let out = Command::new(BIN)
        .args(["--listen", "0.0.0.0:1883", "--check-config"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("allow_anonymous"));
}

/// A broker whose listener died exits non-zero (debug builds can stop it on purpose with
/// `SERVER_ANALYTICS_TEST_BROKER_STOP_AFTER`), so systemd restarts it.
#[test]
fn a_broker_whose_listener_stopped_exits_non_zero() {
    let port = free_port();
    let mut broker = Command::new(BIN)
        .args(["--listen", &format!("127.0.0.1:{port}")])
        .env("SERVER_ANALYTICS_TEST_BROKER_STOP_AFTER", "500")
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    let status = loop {
        if let Some(status) = broker.try_wait().unwrap() {
            break status;
        }
        assert!(Instant::now() < deadline, "the broker did not exit");
        std::thread::sleep(Duration::from_millis(50));
    };
    assert_eq!(status.code(), Some(1));
}

/// Ports named in advance never come from the range outgoing connections and `bind(":0")`
/// draw from, and one test process never hands out the same one twice.
#[test]
fn ports_named_in_advance_lie_outside_the_ephemeral_range_and_never_repeat() {
    let low: u16 = std::fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range")
        .unwrap()
        .split_whitespace()
        .next()
        .unwrap()
        .parse()
        .unwrap();
    let mut seen = std::collections::HashSet::new();
    for _ in 0..2000 {
        let port = free_port();
        assert!(port < low, "{port} lies in the ephemeral range from {low}");
        assert!(seen.insert(port), "{port} handed out twice");
    }
}
