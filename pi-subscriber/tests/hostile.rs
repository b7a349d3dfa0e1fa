//! Issue 9 A1 and A5 with real parts: the built `publisher` (embedded rumqttd) and
//! `pi-subscriber` on loopback, a spoofed snapshot sent with `mosquitto_pub`, and hosts
//! forgotten by age and by `DELETE /hosts/{host}`.
#![allow(clippy::unwrap_used, clippy::expect_used)]

#[path = "../../publisher/tests/common/mod.rs"]
mod common;
mod support;

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use common::Publisher;
use support::Subscriber;

fn start_sub(data_dir: &Path, p: &Publisher, env: &[(&str, &str)]) -> Subscriber {
    let mut all = vec![
        ("PI_SUBSCRIBER_POLL__INTERVAL", "200ms"),
        ("PI_SUBSCRIBER_MQTT__KEEP_ALIVE", "5s"),
    ];
    all.extend_from_slice(env);
    Subscriber::start(
        data_dir,
        p.mqtt_port,
        &p.url("/latest"),
        &["--max-age", "2"],
        &all,
    )
}

fn mosquitto_pub(port: u16, topic: &str, args: &[&str]) {
    let ok = Command::new("mosquitto_pub")
        .args(["-p", &port.to_string(), "-t", topic, "-q", "1"])
        .args(args)
        .status()
        .expect("mosquitto_pub (Debian package mosquitto-clients)")
        .success();
    assert!(ok, "mosquitto_pub {topic}");
}

/// A seq this large is the spoof's; every real one is small.
const REAL: u64 = 1_000_000;

#[test]
fn a_spoofed_newest_snapshot_is_replaced_by_the_next_real_one_before_and_after_a_restart() {
    let pdir = tempfile::tempdir().unwrap();
    let sdir = tempfile::tempdir().unwrap();
    let p = Publisher::start(pdir.path(), &["--interval", "200ms"]);
    let s = start_sub(sdir.path(), &p, &[]);
    let before = s.wait_for("/metrics", |m| m["seq"].as_u64() >= Some(3))["seq"]
        .as_u64()
        .unwrap();
    // The issue's message, verbatim, retained so that a restarted Pi gets it again too.
    mosquitto_pub(
        p.mqtt_port.unwrap(),
        "server-analytics/testhost/snapshot",
        &[
            "-r",
            "-m",
            r#"{"host":"testhost","seq":18446744073709551614,"ts":7258118399}"#,
        ],
    );
    let m = s.wait_for("/metrics", |m| {
        m["seq"]
            .as_u64()
            .is_some_and(|q| q > before + 3 && q < REAL)
    });
    assert_eq!(m["stale"], false);
    assert_eq!(
        s.wait_for("/health", |h| h["status"] == "ok")["status"],
        "ok"
    );
    // History keeps the spoof (it was received) but rates stay sane around it.
    let rows = s.json("/history?host=testhost");
    assert!(rows
        .as_array()
        .unwrap()
        .iter()
        .all(|r| r["disk_read_bytes_rate"].as_f64().is_none_or(|x| x < 1e12)));
    s.stop();

    // After a restart the persisted spoof does not come back as the newest.
    mosquitto_pub(
        p.mqtt_port.unwrap(),
        "server-analytics/testhost/snapshot",
        &[
            "-r",
            "-m",
            r#"{"host":"testhost","seq":18446744073709551614,"ts":7258118399}"#,
        ],
    );
    let s = start_sub(sdir.path(), &p, &[]);
    let now = p.json("/latest")["seq"].as_u64().unwrap();
    s.wait_for("/metrics", |m| {
        m["seq"].as_u64().is_some_and(|q| q > now && q < REAL)
    });
    assert_eq!(
        s.wait_for("/health", |h| h["status"] == "ok")["status"],
        "ok"
    );
}

/// Polls `check` every 20 ms for up to 20 s.
fn wait_until(what: &str, check: impl Fn() -> bool) {
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    while !check() {
        assert!(std::time::Instant::now() < deadline, "timed out: {what}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn host_names(s: &Subscriber) -> Vec<String> {
    s.json("/hosts")
        .as_array()
        .unwrap()
        .iter()
        .map(|h| h["host"].as_str().unwrap().to_owned())
        .collect()
}

#[test]
fn a_silent_host_is_forgotten_after_forget_after() {
    let pdir = tempfile::tempdir().unwrap();
    let sdir = tempfile::tempdir().unwrap();
    let mut p = Publisher::start(pdir.path(), &["--interval", "200ms"]);
    let s = start_sub(
        sdir.path(),
        &p,
        &[("PI_SUBSCRIBER_HISTORY__FORGET_AFTER", "3s")],
    );
    s.wait_for("/metrics", |m| m["seq"].as_u64() >= Some(2));
    s.wait_for("/history?host=testhost", |rows| {
        rows.as_array().is_some_and(|r| r.len() >= 2)
    });
    p.signal("TERM");
    p.wait_exit(Duration::from_secs(10));
    wait_until("stale", || s.get("/health").0 == 503);
    s.wait_for_within("/hosts", Duration::from_secs(15), |h| {
        h.as_array().is_some_and(|a| a.is_empty())
    });
    let (code, body) = s.get("/health");
    assert_eq!(code, 503, "no host left to be ok: {body}");
    let health: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(health["ingest"]["forgotten_total"], 1, "{health}");
    assert!(!s.get("/prometheus").1.contains("testhost"));
    assert_eq!(s.get("/history?host=testhost").0, 404);
    // Its history is gone from the disk too: a restarted Pi does not know it.
    s.stop();
    let s = start_sub(sdir.path(), &p, &[]);
    assert!(host_names(&s).is_empty());
}

#[test]
fn delete_hosts_forgets_one_host_now_and_needs_loopback_or_the_token() {
    let pdir = tempfile::tempdir().unwrap();
    let sdir = tempfile::tempdir().unwrap();
    let mut p = Publisher::start(pdir.path(), &["--interval", "200ms"]);
    let s = start_sub(sdir.path(), &p, &[]);
    s.wait_for("/metrics", |m| m["seq"].as_u64() >= Some(2));
    s.wait_for("/history?host=testhost", |rows| {
        rows.as_array().is_some_and(|r| r.len() >= 2)
    });
    p.signal("TERM");
    p.wait_exit(Duration::from_secs(10));
    let client = reqwest::blocking::Client::new();
    let delete = |host: &str| {
        let r = client
            .delete(s.url(&format!("/hosts/{host}")))
            .send()
            .unwrap();
        (r.status().as_u16(), r.text().unwrap())
    };
    assert_eq!(delete("nobody").0, 404);
    assert_eq!(delete("bad%20name").0, 400);
    let (code, body) = delete("testhost");
    assert_eq!(code, 200, "{body}");
    assert!(host_names(&s).is_empty());
    assert_eq!(s.get("/metrics?host=testhost").0, 404);
    s.stop();
    let s = start_sub(sdir.path(), &p, &[]);
    assert!(host_names(&s).is_empty(), "history deleted on disk");
}

/// A hostile "publisher" on HTTP: `/latest` says seq 1, then a seq near 2^64; `/history`
/// answers every page with `limit` new snapshots, forever.
fn endless_publisher() -> (
    std::net::SocketAddr,
    std::sync::Arc<std::sync::atomic::AtomicU64>,
) {
    use std::io::{BufRead, BufReader, Write};
    use std::sync::atomic::{AtomicU64, Ordering};
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let pages = std::sync::Arc::new(AtomicU64::new(0));
    let counter = pages.clone();
    std::thread::spawn(move || {
        let latest = AtomicU64::new(0);
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { return };
            let mut line = String::new();
            let _ = BufReader::new(&stream).read_line(&mut line);
            let path = line.split_whitespace().nth(1).unwrap_or("/").to_owned();
            let snap = |seq: u64| {
                format!(
                    r#"{{"host":"evil","seq":{seq},"ts":1700000000,"ts_ms":{}}}"#,
                    1_700_000_000_000u64.wrapping_add(seq % 1_000_000)
                )
            };
            let body = if path.starts_with("/latest") {
                let n = latest.fetch_add(1, Ordering::SeqCst);
                snap(if n == 0 { 1 } else { u64::MAX - 1 })
            } else if path.starts_with("/history") {
                counter.fetch_add(1, Ordering::SeqCst);
                let arg = |k: &str| -> u64 {
                    path.split(['?', '&'])
                        .find_map(|kv| kv.strip_prefix(k))
                        .and_then(|v| v.parse().ok())
                        .unwrap_or(0)
                };
                let (since, limit) = (arg("since_seq="), arg("limit="));
                let snaps: Vec<String> = (since + 1..=since + limit).map(snap).collect();
                format!(r#"{{"host":"evil","snapshots":[{}]}}"#, snaps.join(","))
            } else {
                "[]".to_owned()
            };
            let _ = write!(
                stream,
                "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                body.len()
            );
        }
    });
    (addr, pages)
}

/// Issue 9 A3: a gap of 2^64 announced by a hostile publisher costs at most
/// `history.capacity` rows of backfill, not an endless loop.
#[test]
fn backfill_of_an_absurd_gap_is_bounded() {
    let sdir = tempfile::tempdir().unwrap();
    let (addr, pages) = endless_publisher();
    let s = Subscriber::start(
        sdir.path(),
        None,
        &format!("http://{addr}/latest"),
        &["--poll-interval", "0.2"],
        &[("PI_SUBSCRIBER_HISTORY__CAPACITY", "1200")],
    );
    let h = s.wait_for("/health", |h| {
        h["ingest"]["stored_backfill_total"].as_u64() >= Some(1)
    });
    drop(h);
    std::thread::sleep(Duration::from_secs(3));
    let (_, body) = s.get("/health");
    let health: serde_json::Value = serde_json::from_str(&body).unwrap();
    let stored = health["ingest"]["stored_backfill_total"].as_u64().unwrap();
    assert!(
        stored <= 1200 * 2,
        "backfill bounded by history.capacity per gap: {stored}"
    );
    let before = pages.load(std::sync::atomic::Ordering::SeqCst);
    std::thread::sleep(Duration::from_secs(2));
    let after = pages.load(std::sync::atomic::Ordering::SeqCst);
    assert!(
        after - before <= 10,
        "no endless paging: {before} -> {after}"
    );
}

/// Issue 9 A3 against the built binary: snapshots with too many entries, over-long or
/// control-character names and an over-long host id are refused and counted by reason, the
/// real host is still served, and a Grafana query with numbers no integer holds is a 400.
#[test]
fn oversized_snapshots_are_refused_and_absurd_queries_get_a_400() {
    let pdir = tempfile::tempdir().unwrap();
    let sdir = tempfile::tempdir().unwrap();
    let p = Publisher::start(pdir.path(), &["--interval", "200ms"]);
    let s = start_sub(sdir.path(), &p, &[]);
    s.wait_for("/metrics", |m| m["seq"].as_u64() >= Some(2));
    let port = p.mqtt_port.unwrap();
    let disks = |n: usize, name: &dyn Fn(usize) -> String| {
        let devices: serde_json::Map<String, serde_json::Value> = (0..n)
            .map(|i| {
                (
                    name(i),
                    serde_json::json!({"read_sectors": 1, "write_sectors": 1}),
                )
            })
            .collect();
        serde_json::json!({"host": "evil", "seq": 1, "ts": 1_767_225_600,
                           "disk": {"read_sectors": 1, "write_sectors": 1, "devices": devices}})
        .to_string()
    };
    let topic = "server-analytics/evil/snapshot";
    mosquitto_pub(port, topic, &["-m", &disks(129, &|i| format!("sd{i}"))]);
    mosquitto_pub(port, topic, &["-m", &disks(1, &|_| "d".repeat(129))]);
    mosquitto_pub(port, topic, &["-m", &disks(1, &|_| "sda\n".into())]);
    let long = "h".repeat(65);
    mosquitto_pub(
        port,
        &format!("server-analytics/{long}/snapshot"),
        &[
            "-m",
            &format!(r#"{{"host":"{long}","seq":1,"ts":1767225600}}"#),
        ],
    );
    mosquitto_pub(
        port,
        topic,
        &[
            "-m",
            &format!(r#"{{"host":"{long}","seq":1,"ts":1767225600}}"#),
        ],
    );
    let health = s.wait_for("/health", |h| {
        let r = &h["ingest"]["rejected"];
        r["too_many_entries"] == 1 && r["too_long"] == 1 && r["bad_name"] == 1
    });
    let rejected = &health["ingest"]["rejected"];
    // The 65-byte host's own topic is not a topic of a host at all; in the payload of
    // another topic it is a bad host.
    assert_eq!(rejected["bad_host"], 1, "{health}");
    assert_eq!(health["status"], "ok", "{health}");
    let hosts: Vec<&str> = health["hosts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|h| h["host"].as_str().unwrap())
        .collect();
    assert_eq!(hosts, ["testhost"]);

    let body = r#"{"range":{"from":"0","to":"7258118400000"},"maxDataPoints":18446744073709551615,"intervalMs":-1,"targets":[{"target":"cpu_usage_percent"}]}"#;
    let response = reqwest::blocking::Client::new()
        .post(s.url("/grafana/query"))
        .header("content-type", "application/json")
        .body(body)
        .send()
        .unwrap();
    assert_eq!(response.status().as_u16(), 400);
    let error: serde_json::Value = response.json().unwrap();
    assert_eq!(
        error["error"],
        "maxDataPoints 18446744073709551615 is not an integer between 1 and 10000"
    );
    let (code, _) = s.get("/history?host=testhost&from=-9223372036854775808");
    assert_eq!(code, 400);
    assert_eq!(s.json("/health")["status"], "ok", "still serving");
}
