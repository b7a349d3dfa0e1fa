//! The whole pipeline with real parts: the built `publisher` (embedded rumqttd) and
//! `pi-subscriber` as child processes on loopback, real HTTP, real `mosquitto_pub`.
//! Run with `cargo test --workspace` (the publisher binary is built alongside).
#![allow(clippy::unwrap_used, clippy::expect_used)]

#[path = "../../publisher/tests/common/mod.rs"]
mod common;
mod support;

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use common::{free_port, Publisher};
use serde_json::Value;
use support::Subscriber;

/// The pipeline tests' subscriber: 200 ms polls, 2 s max age, 5 s keep-alive.
fn start_sub(
    data_dir: &Path,
    mqtt_port: Option<u16>,
    endpoint: &str,
    env: &[(&str, &str)],
) -> Subscriber {
    let mut all = vec![
        ("PI_SUBSCRIBER_POLL__INTERVAL", "200ms"),
        ("PI_SUBSCRIBER_MQTT__KEEP_ALIVE", "5s"),
    ];
    all.extend_from_slice(env);
    Subscriber::start(data_dir, mqtt_port, endpoint, &["--max-age", "2"], &all)
}

fn seqs(rows: &Value) -> Vec<u64> {
    rows.as_array()
        .unwrap()
        .iter()
        .map(|r| r["seq"].as_u64().unwrap())
        .collect()
}

#[test]
fn end_to_end_over_mqtt_metrics_follow_the_publisher() {
    let pdir = tempfile::tempdir().unwrap();
    let sdir = tempfile::tempdir().unwrap();
    let p = Publisher::start(pdir.path(), &["--interval", "200ms"]);
    let s = start_sub(sdir.path(), p.mqtt_port, &p.url("/latest"), &[]);
    let m = s.wait_for("/metrics", |m| m["seq"].as_u64() >= Some(5));
    // Within one interval of the publisher.
    let latest = p.json("/latest")["seq"].as_u64().unwrap();
    let seen = m["seq"].as_u64().unwrap();
    assert!(latest - seen <= 2, "publisher {latest}, subscriber {seen}");
    assert_eq!(m["host"], "testhost");
    assert_eq!(m["stale"], false);
    assert_eq!(m["status"], "online");
    for rate in [
        &m["disk"]["read_sectors_rate"],
        &m["disk"]["write_sectors_rate"],
        &m["network"]["rx_bytes_rate"],
        &m["network"]["tx_bytes_rate"],
        &m["disk"]["read_bytes_rate"],
    ] {
        assert!(rate.as_f64().unwrap() >= 0.0, "{m}");
    }
    let health = s.json("/health");
    assert_eq!(health["status"], "ok");
    assert!(health["ingest"]["stored_mqtt_total"].as_u64() >= Some(5));
    assert_eq!(
        health["ingest"]["stored_http_total"], 0,
        "no polling while MQTT delivers"
    );
    let hosts = s.json("/hosts");
    assert_eq!(hosts[0]["host"], "testhost");
    let rows = s.json("/history?host=testhost");
    let got = seqs(&rows);
    assert!(got.windows(2).all(|w| w[1] > w[0]), "ascending");
    assert!(rows[1]["time"].as_i64() > rows[0]["time"].as_i64());

    // A job on the server shows up on the Pi.
    let out = common::command(pdir.path())
        .args(["job", "--name", "nightly", "--", "sh", "-c", "exit 2"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let events = s.wait_for("/events", |e| e.as_array().is_some_and(|a| a.len() >= 2));
    assert_eq!(events[1]["type"], "job_end");
    assert_eq!(events[1]["exit_code"], 2);
    assert_eq!(events[1]["name"], "nightly");
    s.stop();
}

#[test]
fn http_fallback_when_the_broker_is_unreachable() {
    let pdir = tempfile::tempdir().unwrap();
    let sdir = tempfile::tempdir().unwrap();
    let p = Publisher::start(pdir.path(), &["--interval", "200ms"]);
    let dead = free_port();
    let s = start_sub(
        sdir.path(),
        Some(dead),
        &p.url("/latest"),
        &[("PI_SUBSCRIBER_POLL__FALLBACK_AFTER", "300ms")],
    );
    let h = s.wait_for("/health", |h| h["status"] == "ok");
    assert_eq!(h["mqtt"]["connected"], false);
    let before = s.json("/metrics")["seq"].as_u64().unwrap();
    let m = s.wait_for("/metrics", |m| m["seq"].as_u64().unwrap() > before + 2);
    assert_eq!(m["stale"], false);
    assert!(s.json("/health")["ingest"]["stored_http_total"].as_u64() >= Some(3));
}

#[test]
fn backfill_after_the_subscriber_was_down_leaves_no_gap() {
    let pdir = tempfile::tempdir().unwrap();
    let sdir = tempfile::tempdir().unwrap();
    let p = Publisher::start(pdir.path(), &["--interval", "200ms"]);
    let s = start_sub(sdir.path(), p.mqtt_port, &p.url("/latest"), &[]);
    let first = s.wait_for("/metrics", |m| m["seq"].as_u64() >= Some(3))["seq"]
        .as_u64()
        .unwrap();
    s.stop();
    // Several intervals pass while the Pi is down.
    let down_at = p.json("/latest")["seq"].as_u64().unwrap();
    p.wait_for("/latest", |l| l["seq"].as_u64().unwrap() >= down_at + 10);
    let s = start_sub(sdir.path(), p.mqtt_port, &p.url("/latest"), &[]);
    let now = p.json("/latest")["seq"].as_u64().unwrap();
    let contiguous = |got: &[u64]| got.windows(2).all(|w| w[1] == w[0] + 1);
    let rows = s.wait_for("/history?host=testhost", |rows| {
        let got = seqs(rows);
        got.last().is_some_and(|&l| l >= now) && contiguous(&got)
    });
    let got = seqs(&rows);
    assert_eq!(got[0], 1, "history from before the restart is still there");
    assert!(got.contains(&first));
    assert!(
        got.len() as u64 >= now,
        "every seq up to {now}, no gap: {got:?}"
    );
    let health = s.json("/health");
    assert!(
        health["ingest"]["stored_backfill_total"].as_u64() >= Some(8),
        "{health}"
    );
}

#[test]
fn stale_when_the_publisher_stops_and_ok_when_it_returns() {
    let pdir = tempfile::tempdir().unwrap();
    let sdir = tempfile::tempdir().unwrap();
    let broker_port = free_port().to_string();
    let http_port = free_port();
    let bind = format!("127.0.0.1:{http_port}");
    let args = [
        "--interval",
        "200ms",
        "--broker-listen",
        &format!("127.0.0.1:{broker_port}"),
        "--bind",
        &bind,
    ];
    let mut p = Publisher::start(pdir.path(), &args);
    let s = start_sub(sdir.path(), p.mqtt_port, &p.url("/latest"), &[]);
    s.wait_for("/health", |h| h["status"] == "ok");
    p.signal("TERM");
    p.wait_exit(Duration::from_secs(10));
    drop(p);
    // max age is 2 s: stale (503) within it, judged on the Pi's clock.
    let started = std::time::Instant::now();
    let stale = loop {
        let (code, body) = s.get("/health");
        if code == 503 {
            break serde_json::from_str::<Value>(&body).unwrap();
        }
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "never went stale"
        );
        std::thread::sleep(Duration::from_millis(100));
    };
    assert_eq!(stale["status"], "stale");
    assert_eq!(stale["hosts"][0]["stale"], true);
    assert!(started.elapsed() < Duration::from_secs(5));
    let (code, m) = s.get("/metrics");
    assert_eq!(code, 200);
    assert_eq!(serde_json::from_str::<Value>(&m).unwrap()["stale"], true);

    // Back on the same ports: ok again (the subscriber reconnects on its own).
    let _p = Publisher::start(pdir.path(), &args);
    let h = s.wait_for_within("/health", Duration::from_secs(45), |h| h["status"] == "ok");
    assert_eq!(h["hosts"][0]["stale"], false);
}

#[test]
fn garbage_on_the_snapshot_topic_is_counted_not_stored() {
    let pdir = tempfile::tempdir().unwrap();
    let sdir = tempfile::tempdir().unwrap();
    let p = Publisher::start(pdir.path(), &["--interval", "200ms"]);
    let port = p.mqtt_port.unwrap().to_string();
    // The subscriber's limit (64 KiB) is below the broker's (256 KiB), so an oversize payload
    // reaches it.
    let s = start_sub(
        sdir.path(),
        p.mqtt_port,
        &p.url("/latest"),
        &[("PI_SUBSCRIBER_MQTT__MAX_PAYLOAD_SIZE", "65536")],
    );
    s.wait_for("/metrics", |_| true);
    let send = |topic: &str, args: &[&str]| {
        let ok = Command::new("mosquitto_pub")
            .args(["-p", &port, "-t", topic, "-q", "1"])
            .args(args)
            .status()
            .unwrap()
            .success();
        assert!(ok);
    };
    let big = sdir.path().join("big.json");
    std::fs::write(
        &big,
        format!(
            "{{\"host\":\"intruder\",\"seq\":1,\"ts\":1,\"pad\":\"{}\"}}",
            "x".repeat(200_000)
        ),
    )
    .unwrap();
    send(
        "server-analytics/intruder/snapshot",
        &["-m", "{{{ not json"],
    );
    send(
        "server-analytics/intruder/snapshot",
        &["-m", r#"{"host":"intruder","seq":"one","ts":1}"#],
    );
    send(
        "server-analytics/intruder/snapshot",
        &["-m", r#"{"host":"someone-else","seq":1,"ts":1}"#],
    );
    send(
        "server-analytics/intruder/snapshot",
        &[
            "-m",
            r#"{"host":"intruder","seq":1,"ts":1,"cpu":{"usage_percent":400}}"#,
        ],
    );
    send(
        "server-analytics/intruder/snapshot",
        &["-f", big.to_str().unwrap()],
    );
    send("server-analytics/intruder/events", &["-m", "[]"]);
    let health = s.wait_for("/health", |h| {
        h["ingest"]["rejected_total"].as_u64() >= Some(6)
    });
    let rejected = &health["ingest"]["rejected"];
    assert_eq!(rejected["not_json"], 1, "{health}");
    assert_eq!(rejected["wrong_types"].as_u64(), Some(2), "{health}"); // snapshot + the event
    assert_eq!(rejected["host_mismatch"], 1);
    assert_eq!(rejected["bad_number"], 1);
    assert_eq!(rejected["too_large"], 1);
    assert!(
        s.json("/hosts")
            .as_array()
            .unwrap()
            .iter()
            .all(|h| h["host"] != "intruder"),
        "nothing stored"
    );
    // The real host keeps flowing.
    let before = s.json("/metrics?host=testhost")["seq"].as_u64().unwrap();
    s.wait_for("/metrics?host=testhost", |m| {
        m["seq"].as_u64().unwrap() > before + 2
    });
    assert_eq!(s.get("/metrics?host=nobody").0, 404);
}

#[test]
fn fallback_is_per_host_one_on_mqtt_one_polled() {
    let adir = tempfile::tempdir().unwrap();
    let bdir = tempfile::tempdir().unwrap();
    let sdir = tempfile::tempdir().unwrap();
    // "a" publishes through the broker the Pi subscribes to; "b" runs its own broker the Pi
    // never reaches, so only HTTP polling can bring its data.
    let a = Publisher::start(adir.path(), &["--interval", "200ms", "--host", "a"]);
    let b = Publisher::start(bdir.path(), &["--interval", "200ms", "--host", "b"]);
    let endpoints = format!("{},{}", a.url("/latest"), b.url("/latest"));
    let s = start_sub(
        sdir.path(),
        a.mqtt_port,
        "",
        &[
            ("PI_SUBSCRIBER_POLL__ENDPOINTS", &endpoints),
            ("PI_SUBSCRIBER_POLL__FALLBACK_AFTER", "500ms"),
        ],
    );
    let hosts = s.wait_for("/hosts", |h| {
        h.as_array().is_some_and(|list| {
            list.len() == 2
                && list
                    .iter()
                    .all(|x| x["stale"] == false && x["last_seq"].as_u64() >= Some(5))
        })
    });
    assert_eq!(hosts[0]["host"], "a");
    assert_eq!(hosts[1]["host"], "b");
    let before = s.json("/health")["ingest"].clone();
    std::thread::sleep(Duration::from_secs(2));
    let after = s.json("/health")["ingest"].clone();
    let grew = |k: &str| after[k].as_u64().unwrap() - before[k].as_u64().unwrap();
    // a: ~10 samples over MQTT; b: polled every 200 ms; and a is not polled as well.
    assert!(grew("stored_mqtt_total") >= 5, "{before} → {after}");
    assert!(grew("stored_http_total") >= 5, "{before} → {after}");
    assert!(
        grew("stored_http_total") <= grew("stored_mqtt_total") + 3,
        "a is not polled too: {before} → {after}"
    );
}
