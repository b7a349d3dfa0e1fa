//! Job events at least once, end to end (issue 9 item 8), with real parts: the built
//! `publisher` and `pi-subscriber`, a real mosquitto, and a real link cut (a network namespace,
//! a veth pair and iptables DROP in both directions) when run as root.
#![allow(clippy::unwrap_used, clippy::expect_used)]

#[path = "../../publisher/tests/common/mod.rs"]
mod common;
mod support;

use std::path::Path;
use std::time::Duration;

use common::mosquitto::Mosquitto;
use common::{free_port, Publisher};
use serde_json::Value;
use support::Subscriber;

/// How many events of `kind` for job `name` the Pi's `/events` lists.
fn count(events: &Value, name: &str, kind: &str) -> usize {
    events
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["name"] == name && e["type"] == kind)
        .count()
}

fn run_job(data_dir: &Path, name: &str) {
    let out = common::command(data_dir)
        .args(["job", "--name", name, "--", "true"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{out:?}");
}

#[test]
fn events_published_while_the_pi_was_offline_arrive_by_reconciliation() {
    let pdir = tempfile::tempdir().unwrap();
    let sdir = tempfile::tempdir().unwrap();
    let mdir = tempfile::tempdir().unwrap();
    // The publisher keeps its events to itself (no MQTT): the Pi learns them only over HTTP.
    let p = Publisher::start(
        pdir.path(),
        &["--interval", "200ms", "--broker-mode", "off"],
    );
    let port = free_port();
    let mut broker = Mosquitto::start_in(mdir.path(), None, "127.0.0.1", port, "");
    let s = Subscriber::start(
        sdir.path(),
        Some(port),
        &p.url("/latest"),
        &["--max-age", "2"],
        &[
            ("PI_SUBSCRIBER_POLL__INTERVAL", "200ms"),
            // No fallback polling in this test: only the reconciliation may fetch `/events`.
            ("PI_SUBSCRIBER_POLL__FALLBACK_AFTER", "600s"),
        ],
    );
    s.wait_for("/health", |h| h["mqtt"]["connected"] == true);
    s.wait_for("/hosts", |h| h[0]["host"] == "testhost");

    broker.stop();
    s.wait_for("/health", |h| h["mqtt"]["connected"] == false);
    run_job(pdir.path(), "while-away");
    std::thread::sleep(Duration::from_secs(1));
    let _broker = Mosquitto::start_in(mdir.path(), None, "127.0.0.1", port, "");

    let events = s.wait_for_within("/events", Duration::from_secs(30), |e| {
        count(e, "while-away", "job_end") >= 1
    });
    assert_eq!(count(&events, "while-away", "job_start"), 1, "{events}");
    assert_eq!(count(&events, "while-away", "job_end"), 1, "{events}");
    // No snapshot reaches the Pi over MQTT here, so it may be stale (503): read it anyway.
    let (_, body) = s.get("/health");
    let health: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(health["mqtt"]["connects_total"], 2, "{health}");
    assert_eq!(health["mqtt"]["reconciles_total"], 2, "{health}");
}

#[test]
fn job_end_crosses_a_real_link_cut_exactly_once() {
    let Some(net) = support::netns::create_or_skip() else {
        return;
    };
    let pdir = tempfile::tempdir().unwrap();
    let sdir = tempfile::tempdir().unwrap();
    let mdir = tempfile::tempdir().unwrap();
    // Broker and Pi on the far side of the link; the publisher here.
    let _broker = Mosquitto::start_in(mdir.path(), Some(&net.name), "", 1883, "");
    let p = net.publisher_here(pdir.path());
    // No fallback polling: the job_end must come over MQTT.
    let (_pi, s) = net.pi_there(sdir.path(), &p.url("/latest"), &[]);
    // Both connected, snapshots flowing over MQTT.
    p.wait_for("/health", |h| h["mqtt"]["connected"] == true);
    s.wait_for("/health", |h| {
        h["ingest"]["stored_mqtt_total"].as_u64() >= Some(2)
    });

    net.cut();
    run_job(pdir.path(), "cut");
    // The publisher writes the events into a connection that no longer carries anything, then
    // its keep-alive (2 s) gives up on it; the broker drops its side too (1.5 × keep-alive).
    p.wait_for("/health", |h| h["mqtt"]["connected"] == false);
    std::thread::sleep(Duration::from_secs(2));
    net.heal();

    let events = s.wait_for_within("/events", Duration::from_secs(40), |e| {
        count(e, "cut", "job_end") >= 1
    });
    // Anything delivered twice would arrive right behind the first copy.
    std::thread::sleep(Duration::from_millis(1500));
    let events_after = s.json("/events");
    assert_eq!(count(&events_after, "cut", "job_end"), 1, "{events}");
    assert_eq!(count(&events_after, "cut", "job_start"), 1, "{events}");
    let health = p.json("/health");
    assert_eq!(health["mqtt"]["connects_total"], 2, "{health}");
    assert_eq!(health["mqtt"]["events_acked_total"], 2, "{health}");
}
