//! MQTT with real parts: the publisher's embedded rumqttd on a real socket, the real
//! `mosquitto_sub`/`mosquitto_pub` clients, and a real `mosquitto` broker for external mode.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use common::mosquitto::{self_signed_ca, Mosquitto};
use common::{free_port, Publisher};
use serde_json::Value;

/// `mosquitto_sub -v` running in the background, its lines on a channel.
struct Sub {
    child: Child,
    lines: mpsc::Receiver<String>,
    /// Lines received but not asked for yet: retained messages on different topics come in
    /// no set order.
    backlog: std::cell::RefCell<Vec<String>>,
}

impl Sub {
    fn start(port: u16, filter: &str, extra: &[&str]) -> Sub {
        let mut child = Command::new("mosquitto_sub")
            .args([
                "-h",
                "127.0.0.1",
                "-p",
                &port.to_string(),
                "-t",
                filter,
                "-v",
            ])
            .args(extra)
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("mosquitto_sub (Debian package mosquitto-clients)");
        let out = child.stdout.take().unwrap();
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(out).lines() {
                let Ok(line) = line else { break };
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        Sub {
            child,
            lines: rx,
            backlog: Default::default(),
        }
    }

    /// Waits for a line `topic payload` whose topic ends with `suffix` and whose payload
    /// `check` accepts.
    fn expect(&self, suffix: &str, check: impl Fn(&str) -> bool) -> String {
        let matches = |line: &str| {
            line.split_once(' ')
                .filter(|(topic, payload)| topic.ends_with(suffix) && check(payload))
                .map(|(_, payload)| payload.to_owned())
        };
        {
            let mut backlog = self.backlog.borrow_mut();
            if let Some(i) = backlog.iter().position(|l| matches(l).is_some()) {
                let line = backlog.remove(i);
                return matches(&line).unwrap_or_default();
            }
        }
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            let line = self
                .lines
                .recv_timeout(left)
                .unwrap_or_else(|_| panic!("no message on *{suffix} in time"));
            match matches(&line) {
                Some(payload) => return payload,
                None => self.backlog.borrow_mut().push(line),
            }
        }
    }
}

impl Drop for Sub {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn snapshot(payload: &str) -> broker::Snapshot {
    serde_json::from_str(payload).expect("a snapshot")
}

fn pub_msg(port: u16, topic: &str, args: &[&str]) -> bool {
    Command::new("mosquitto_pub")
        .args(["-h", "127.0.0.1", "-p", &port.to_string(), "-t", topic])
        .args(args)
        .stderr(Stdio::null())
        .status()
        .unwrap()
        .success()
}

#[test]
fn mosquitto_sub_sees_retained_snapshot_online_and_offline() {
    let dir = tempfile::tempdir().unwrap();
    let mut p = Publisher::start(dir.path(), &["--interval", "200ms"]);
    let port = p.mqtt_port.expect("embedded broker port in the log");
    p.wait_for("/latest", |v| v["seq"].as_u64() >= Some(2));

    // A late subscriber, exactly as the README tells a user, gets the retained state.
    let sub = Sub::start(port, "server-analytics/#", &[]);
    let s = snapshot(&sub.expect("/testhost/snapshot", |_| true));
    assert_eq!(s.v, 1);
    assert_eq!(s.host, "testhost");
    assert!(s.seq >= 1);
    assert!(s.memory.unwrap().total_mb > 0);
    assert_eq!(sub.expect("/testhost/status", |_| true), "online");
    // Live snapshots follow, in order.
    let next = snapshot(&sub.expect("/testhost/snapshot", |_| true));
    assert!(next.seq > s.seq);

    let health = p.json("/health");
    assert_eq!(health["mqtt"]["connected"], true);
    assert_eq!(health["mqtt"]["mode"], "embedded");
    assert!(health["mqtt"]["snapshots_published_total"].as_u64() >= Some(2));

    // A clean stop says offline before the broker goes with the process.
    p.signal("TERM");
    assert!(p.wait_exit(Duration::from_secs(10)).success());
    assert_eq!(sub.expect("/testhost/status", |m| m != "online"), "offline");
}

#[test]
fn job_events_are_published_including_those_from_before_start() {
    let dir = tempfile::tempdir().unwrap();
    let run = |name: &str, cmd: &[&str]| {
        let status = common::command(dir.path())
            .args(["job", "--name", name, "--"])
            .args(cmd)
            .stdout(Stdio::null())
            .status()
            .unwrap();
        status.code()
    };
    assert_eq!(run("before", &["sh", "-c", "exit 4"]), Some(4));
    let mut p = Publisher::start(dir.path(), &["--interval", "200ms"]);
    let port = p.mqtt_port.unwrap();
    let sub = Sub::start(port, "server-analytics/+/events", &["-q", "1"]);
    // Wait until subscribed (the retained status comes through another filter, so probe with
    // a job and look for it).
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(run("during", &["true"]), Some(0));
    let end = sub.expect("/testhost/events", |m| {
        m.contains("\"during\"") && m.contains("job_end")
    });
    let end: Value = serde_json::from_str(&end).unwrap();
    assert_eq!(end["exit_code"], 0);
    assert_eq!(end["host"], "testhost");
    drop(sub);
    // A clean stop saves the cursor (after `kill -9` the acks of the last second may be lost,
    // and those events sent again: at least once).
    p.signal("TERM");
    assert!(p.wait_exit(Duration::from_secs(10)).success());
    drop(p);

    // The event from before start was published too (the cursor moved past it), and a restart
    // does not send everything again.
    let cursor = std::fs::read_to_string(dir.path().join("mqtt-events.cursor")).unwrap();
    assert!(cursor.contains("job_end"), "{cursor}");
    let p = Publisher::start(dir.path(), &["--interval", "200ms"]);
    let health = p.wait_for("/health", |h| h["mqtt"]["connected"] == true);
    std::thread::sleep(Duration::from_millis(1500));
    let health2 = p.json("/health");
    assert_eq!(health2["mqtt"]["events_published_total"], 0, "{health}");
}

#[test]
fn garbage_on_the_publishers_topics_does_not_disturb_it() {
    let dir = tempfile::tempdir().unwrap();
    let p = Publisher::start(dir.path(), &["--interval", "200ms"]);
    let port = p.mqtt_port.unwrap();
    p.wait_for("/latest", |_| true);
    let topic = "server-analytics/testhost/snapshot";
    assert!(pub_msg(port, topic, &["-r", "-m", "not json {{{"]));
    assert!(pub_msg(
        port,
        topic,
        &["-r", "-q", "1", "-m", "{\"v\":\"wrong types\"}"]
    ));
    let binary = dir.path().join("binary");
    std::fs::write(&binary, [0u8, 1, 0xff, 0xfe, b'{']).unwrap();
    assert!(pub_msg(
        port,
        "server-analytics/testhost/status",
        &["-r", "-f", binary.to_str().unwrap()]
    ));
    assert!(pub_msg(
        port,
        "server-analytics/testhost/events",
        &["-m", "[]"]
    ));
    assert!(
        pub_msg(port, topic, &["-r", "-n"]),
        "empty retained clears the topic"
    );
    // Bigger than broker.max_payload_size: the broker drops that client, nobody else.
    let big = dir.path().join("big");
    std::fs::write(&big, "x".repeat(300 * 1024)).unwrap();
    let _ = pub_msg(port, topic, &["-f", big.to_str().unwrap()]);

    // The publisher carries on: still connected, still sampling, and the retained snapshot
    // is a real one again within an interval.
    let before = p.json("/latest")["seq"].as_u64().unwrap();
    p.wait_for("/latest", |v| v["seq"].as_u64().unwrap() > before + 2);
    let health = p.json("/health");
    assert_eq!(health["mqtt"]["connected"], true, "{health}");
    assert_eq!(
        health["mqtt"]["connects_total"], 1,
        "never lost its connection"
    );
    let sub = Sub::start(port, topic, &["-C", "1"]);
    let s = snapshot(&sub.expect("/snapshot", |_| true));
    assert!(s.seq > before);
}

#[test]
fn credentials_wrong_password_refused_right_one_accepted() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("p.toml");
    std::fs::write(&cfg, "[broker]\nusername = \"pi\"\npassword = \"s3cret\"\n").unwrap();
    let p = Publisher::start(
        dir.path(),
        &["--interval", "200ms", "--config", cfg.to_str().unwrap()],
    );
    let port = p.mqtt_port.unwrap();
    // The publisher itself connects with the same credentials.
    p.wait_for("/health", |h| h["mqtt"]["connected"] == true);

    let run_sub = |user: Option<(&str, &str)>| {
        let mut cmd = Command::new("mosquitto_sub");
        cmd.args([
            "-h",
            "127.0.0.1",
            "-p",
            &port.to_string(),
            "-t",
            "server-analytics/#",
            "-C",
            "1",
            "-W",
            "3",
        ]);
        if let Some((u, pw)) = user {
            cmd.args(["-u", u, "-P", pw]);
        }
        cmd.stderr(Stdio::null()).output().unwrap()
    };
    let wrong = run_sub(Some(("pi", "guess")));
    assert!(!wrong.status.success());
    assert!(wrong.stdout.is_empty(), "wrong password got data");
    let anonymous = run_sub(None);
    assert!(anonymous.stdout.is_empty(), "anonymous client got data");
    let right = run_sub(Some(("pi", "s3cret")));
    assert!(right.status.success());
    let first = String::from_utf8_lossy(&right.stdout);
    assert!(
        first.starts_with('{') || first.trim() == "online",
        "{first}"
    );
}

#[test]
fn non_loopback_broker_without_credentials_is_refused_at_start() {
    let dir = tempfile::tempdir().unwrap();
    let out = common::command(dir.path())
        .args(["--broker-listen", "0.0.0.0:0", "check-config"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("broker.listen") && err.contains("allow_anonymous"),
        "{err}"
    );
}

#[test]
fn taken_broker_port_is_a_clear_start_up_error() {
    let dir = tempfile::tempdir().unwrap();
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = taken.local_addr().unwrap().to_string();
    let out = common::command(dir.path())
        .args(["--bind", "127.0.0.1:0", "--broker-listen", &addr])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("broker.listen") && err.contains(&addr),
        "{err}"
    );
}

#[test]
fn external_mosquitto_outage_of_30_s_then_publishing_resumes() {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let mut mosquitto = Mosquitto::start(dir.path(), port, "");
    let p = Publisher::start_with_env(
        dir.path(),
        &["--interval", "200ms", "--broker-mode", "external"],
        &[
            ("PUBLISHER_BROKER__PORT", &port.to_string()),
            ("PUBLISHER_BROKER__HOST", "127.0.0.1"),
        ],
    );
    assert_eq!(p.mqtt_port, None, "no embedded broker in external mode");
    let sub = Sub::start(port, "server-analytics/#", &[]);
    let first = snapshot(&sub.expect("/testhost/snapshot", |_| true));
    assert_eq!(sub.expect("/testhost/status", |_| true), "online");
    drop(sub);

    mosquitto.stop();
    let seq_at_stop = p.json("/latest")["seq"].as_u64().unwrap();
    p.wait_for("/health", |h| h["mqtt"]["connected"] == false);
    std::thread::sleep(Duration::from_secs(30));
    // Sampling and HTTP never waited on the broker.
    let during = p.json("/latest")["seq"].as_u64().unwrap();
    assert!(
        during >= seq_at_stop + 100,
        "sampling went on: {seq_at_stop} → {during}"
    );
    let health = p.json("/health");
    assert_eq!(health["status"], "ok");
    let errors = health["mqtt"]["connect_errors_total"].as_u64().unwrap();
    // Backoff: 0.5, 1, 2, 4, 8, 16 s … at most ~10 attempts in 30 s, not thousands.
    assert!(
        (2..=15).contains(&errors),
        "{errors} connect attempts in 30 s"
    );

    let _mosquitto = Mosquitto::start(dir.path(), port, "");
    // The backoff step is at its 30 s cap by now: the next attempt comes within 15-30 s.
    let health = p.wait_for_within("/health", Duration::from_secs(45), |h| {
        h["mqtt"]["connected"] == true
    });
    assert_eq!(health["mqtt"]["connects_total"], 2);
    let sub = Sub::start(port, "server-analytics/#", &[]);
    let after = snapshot(&sub.expect("/testhost/snapshot", |_| true));
    assert!(after.seq > during, "fresh snapshots after the outage");
    assert!(after.seq > first.seq);
}

#[test]
fn external_broker_over_tls_with_a_private_ca() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let tls_port = free_port();
    let plain_port = free_port();
    let _mosquitto = Mosquitto::with_tls(d, plain_port, tls_port);
    let cfg = d.join("p.toml");
    std::fs::write(
        &cfg,
        format!(
            "[broker]\nmode = \"external\"\nhost = \"localhost\"\nport = {tls_port}\ntls = true\nca_file = \"{}/ca.pem\"\n",
            d.display()
        ),
    )
    .unwrap();
    let p = Publisher::start(
        d,
        &["--interval", "200ms", "--config", cfg.to_str().unwrap()],
    );
    p.wait_for("/health", |h| h["mqtt"]["connected"] == true);
    // Plain subscriber on the other listener of the same broker sees what came in over TLS.
    let sub = Sub::start(plain_port, "server-analytics/#", &[]);
    assert_eq!(
        snapshot(&sub.expect("/testhost/snapshot", |_| true)).host,
        "testhost"
    );

    // A CA that did not sign the server's certificate: the connection is refused.
    self_signed_ca(d, "other", "/CN=other CA");
    std::fs::write(
        &cfg,
        format!(
            "[broker]\nmode = \"external\"\nhost = \"localhost\"\nport = {tls_port}\ntls = true\nca_file = \"{}/other.pem\"\n",
            d.display()
        ),
    )
    .unwrap();
    let other = tempfile::tempdir().unwrap();
    let q = Publisher::start(
        other.path(),
        &["--interval", "200ms", "--config", cfg.to_str().unwrap()],
    );
    let h = q.wait_for("/health", |h| {
        h["mqtt"]["connect_errors_total"].as_u64() >= Some(1)
    });
    assert_eq!(h["mqtt"]["connected"], false);
    assert!(
        h["mqtt"]["last_error"]
            .as_str()
            .unwrap()
            .to_lowercase()
            .contains("cert"),
        "{h}"
    );
}
