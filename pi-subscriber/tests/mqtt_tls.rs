//! The Pi against a real mosquitto over TLS with a private CA (`[mqtt] tls`, `ca_file`).
#![allow(clippy::unwrap_used, clippy::expect_used)]

#[path = "../../publisher/tests/common/mod.rs"]
mod common;
mod support;

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::free_port;
use common::mosquitto::{self_signed_ca, Mosquitto};
use support::Subscriber;

/// `/health` (503 while no host is known) once `check` holds.
fn health_when(pi: &Subscriber, check: impl Fn(&serde_json::Value) -> bool) -> serde_json::Value {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let (_, body) = pi.get("/health");
        let health: serde_json::Value = serde_json::from_str(&body).unwrap();
        if check(&health) {
            return health;
        }
        assert!(Instant::now() < deadline, "timed out: {health}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn the_pi_subscribes_over_tls_with_a_private_ca_and_refuses_another_ca() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let (plain_port, tls_port) = (free_port(), free_port());
    let _mosquitto = Mosquitto::with_tls(d, plain_port, tls_port);
    let ca = d.join("ca.pem");
    let pi = Subscriber::start(
        &d.join("pi"),
        Some(tls_port),
        "",
        &[],
        &[
            ("PI_SUBSCRIBER_MQTT__HOST", "localhost"),
            ("PI_SUBSCRIBER_MQTT__TLS", "true"),
            ("PI_SUBSCRIBER_MQTT__CA_FILE", ca.to_str().unwrap()),
        ],
    );
    health_when(&pi, |h| h["mqtt"]["connected"] == true);
    // Published in plain text on the other listener, received by the Pi over TLS.
    let ok = Command::new("mosquitto_pub")
        .args(["-p", &plain_port.to_string(), "-r", "-q", "1"])
        .args(["-t", "server-analytics/tower/status", "-m", "online"])
        .status()
        .unwrap()
        .success();
    assert!(ok);
    let health = health_when(&pi, |h| h["mqtt"]["messages_total"] == 1);
    assert_eq!(health["mqtt"]["connects_total"], 1, "{health}");
    pi.stop();

    // A CA that did not sign the broker's certificate: never connected, the error says why.
    self_signed_ca(d, "other", "/CN=other CA");
    let other = d.join("other.pem");
    let pi = Subscriber::start(
        &d.join("pi2"),
        Some(tls_port),
        "",
        &[],
        &[
            ("PI_SUBSCRIBER_MQTT__HOST", "localhost"),
            ("PI_SUBSCRIBER_MQTT__TLS", "true"),
            ("PI_SUBSCRIBER_MQTT__CA_FILE", other.to_str().unwrap()),
        ],
    );
    let health = health_when(&pi, |h| {
        h["mqtt"]["connect_errors_total"].as_u64() >= Some(1)
    });
    assert_eq!(health["mqtt"]["connected"], false, "{health}");
    assert_eq!(health["mqtt"]["connects_total"], 0, "{health}");
    let error = health["mqtt"]["last_error"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    assert!(error.to_lowercase().contains("certificate"), "{error}");
    pi.stop();
}

#[test]
fn a_missing_ca_file_stops_the_start_naming_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("nowhere/ca.pem");
    let out = Command::new(env!("CARGO_BIN_EXE_pi-subscriber"))
        .args(["--bind", "127.0.0.1:0", "--data-dir"])
        .arg(dir.path())
        .env("PI_SUBSCRIBER_MQTT__TLS", "true")
        .env("PI_SUBSCRIBER_MQTT__CA_FILE", &missing)
        .stderr(Stdio::piped())
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("mqtt.ca_file") && err.contains(&missing.display().to_string()),
        "{err}"
    );
}
