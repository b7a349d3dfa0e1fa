//! The Pi against a real mosquitto over TLS with a private CA (`[mqtt] tls`, `ca_file`).
#![allow(clippy::unwrap_used, clippy::expect_used)]

#[path = "../../publisher/tests/common/mod.rs"]
mod common;
mod support;

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::free_port;
use support::Subscriber;

fn openssl(dir: &Path, args: &[&str]) {
    let ok = Command::new("openssl")
        .current_dir(dir)
        .args(args)
        .stderr(Stdio::null())
        .status()
        .expect("openssl")
        .success();
    assert!(ok, "openssl {args:?}");
}

fn self_signed_ca(dir: &Path, name: &str, subject: &str) {
    let (key, pem) = (format!("{name}.key"), format!("{name}.pem"));
    openssl(
        dir,
        &[
            "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", &key, "-out", &pem,
            "-days", "2", "-subj", subject,
        ],
    );
}

/// mosquitto with a plain listener and a TLS one (certificate for localhost signed by
/// `ca.pem`); killed when dropped.
struct Mosquitto(Child);

impl Drop for Mosquitto {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn mosquitto_tls(d: &Path, plain_port: u16, tls_port: u16) -> Mosquitto {
    self_signed_ca(d, "ca", "/CN=test CA");
    openssl(
        d,
        &[
            "req",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-keyout",
            "server.key",
            "-out",
            "server.csr",
            "-subj",
            "/CN=localhost",
        ],
    );
    std::fs::write(
        d.join("san.ext"),
        "subjectAltName=DNS:localhost,IP:127.0.0.1\n",
    )
    .unwrap();
    openssl(
        d,
        &[
            "x509",
            "-req",
            "-in",
            "server.csr",
            "-CA",
            "ca.pem",
            "-CAkey",
            "ca.key",
            "-CAcreateserial",
            "-out",
            "server.pem",
            "-days",
            "2",
            "-extfile",
            "san.ext",
        ],
    );
    let user = String::from_utf8(Command::new("id").arg("-un").output().unwrap().stdout).unwrap();
    let conf = d.join("mosquitto.conf");
    std::fs::write(
        &conf,
        format!(
            "listener {plain_port} 127.0.0.1\nallow_anonymous true\nuser {user}\n\
             listener {tls_port} 127.0.0.1\ncafile {0}/ca.pem\ncertfile {0}/server.pem\nkeyfile {0}/server.key\n",
            d.display(),
            user = user.trim()
        ),
    )
    .unwrap();
    let child = Command::new("mosquitto")
        .arg("-c")
        .arg(&conf)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("mosquitto (Debian package mosquitto)");
    let deadline = Instant::now() + Duration::from_secs(10);
    for port in [plain_port, tls_port] {
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(Instant::now() < deadline, "mosquitto did not start");
            std::thread::sleep(Duration::from_millis(20));
        }
    }
    Mosquitto(child)
}

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
    let _mosquitto = mosquitto_tls(d, plain_port, tls_port);
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
