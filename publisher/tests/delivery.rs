//! Job events at least once to a real external mosquitto: a broker that dies with an event
//! unacknowledged gets it again from the publisher after it comes back (issue 9 item 8).
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use common::mosquitto::Mosquitto;
use common::{free_port, Publisher};

/// mosquitto on 127.0.0.1:`port` that saves its sessions to `dir` every second, so a
/// subscriber's persistent session outlives a `kill -9`.
fn mosquitto(dir: &Path, port: u16) -> Mosquitto {
    Mosquitto::start(
        dir,
        port,
        &format!(
            "persistence true\npersistence_location {}/\nautosave_interval 1\n",
            dir.display()
        ),
    )
}

/// Job events (`topic payload` lines) a persistent-session `mosquitto_sub` receives.
struct Watcher {
    child: Child,
    lines: mpsc::Receiver<String>,
}

impl Watcher {
    fn start(port: u16, id: &str) -> Watcher {
        let mut child = Command::new("mosquitto_sub")
            .args(["-h", "127.0.0.1", "-p", &port.to_string()])
            .args(["-t", "server-analytics/+/events", "-q", "1", "-v"])
            // A persistent session: what is published while it is away is kept for it.
            .args(["-c", "-i", id])
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("mosquitto_sub (Debian package mosquitto-clients)");
        let out = child.stdout.take().unwrap();
        let (tx, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(out).lines().map_while(Result::ok) {
                eprintln!("[mosquitto_sub] {line}");
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        Watcher { child, lines }
    }

    /// Events received for job `name` within `within`, as JSON.
    fn events_of(&self, name: &str, within: Duration) -> Vec<serde_json::Value> {
        let mut deadline = Instant::now() + within;
        let mut got: Vec<serde_json::Value> = Vec::new();
        while let Ok(line) = self
            .lines
            .recv_timeout(deadline.saturating_duration_since(Instant::now()))
        {
            let Some((_, payload)) = line.split_once(' ') else {
                continue;
            };
            let event: serde_json::Value = serde_json::from_str(payload).unwrap();
            if event["name"] == name {
                if event["type"] == "job_end" {
                    // Anything sent twice would follow within a second.
                    deadline = deadline.min(Instant::now() + Duration::from_secs(1));
                }
                got.push(event);
            }
        }
        got
    }
}

impl Drop for Watcher {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[test]
fn job_end_survives_a_broker_that_dies_before_acknowledging_it() {
    let dir = tempfile::tempdir().unwrap();
    let mdir = tempfile::tempdir().unwrap();
    let port = free_port();
    let broker = mosquitto(mdir.path(), port);
    let watcher = Watcher::start(port, "delivery-watcher");
    let p = Publisher::start_with_env(
        dir.path(),
        &["--interval", "200ms", "--broker-mode", "external"],
        &[
            ("PUBLISHER_BROKER__PORT", &port.to_string()),
            ("PUBLISHER_BROKER__HOST", "127.0.0.1"),
        ],
    );
    p.wait_for("/health", |h| h["mqtt"]["connected"] == true);
    // The watcher's session is on disk (autosave every second).
    std::thread::sleep(Duration::from_millis(2500));

    // The broker hangs: the connection stays open but nothing is acknowledged.
    broker.signal("STOP");
    let out = common::command(dir.path())
        .args(["job", "--name", "unacked", "--", "true"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0));
    // The publisher sees the events in its log (1 s poll) and writes them to the socket.
    std::thread::sleep(Duration::from_millis(2500));
    // … then the broker dies without having read them, and a new one takes its port.
    broker.signal("KILL");
    drop(broker);
    let _broker = mosquitto(mdir.path(), port);

    let events = watcher.events_of("unacked", Duration::from_secs(20));
    let kinds: Vec<&str> = events.iter().map(|e| e["type"].as_str().unwrap()).collect();
    assert_eq!(
        kinds.iter().filter(|k| **k == "job_end").count(),
        1,
        "the job_end arrives after the restart: {kinds:?}"
    );
    let end = events.iter().find(|e| e["type"] == "job_end").unwrap();
    assert_eq!(end["exit_code"], 0);
    assert_eq!(end["host"], "testhost");
    let health = p.json("/health");
    assert_eq!(health["mqtt"]["connected"], true);
    assert_eq!(health["mqtt"]["events_acked_total"], 2, "{health}");
}
