//! Issue 18 item 10 with real parts: one login floods a host name with distinct seqs at
//! broker speed (`mosquitto_pub -l` through the publisher's embedded rumqttd); the built
//! `pi-subscriber` stores the burst its rate bound allows, counts the rest in `/health`, and
//! reports its database size against `history.max_disk`, while the real host is untouched.
#![allow(clippy::unwrap_used, clippy::expect_used)]

#[path = "../../publisher/tests/common/mod.rs"]
mod common;
mod support;

use std::io::Write;
use std::process::{Command, Stdio};

use common::Publisher;
use support::Subscriber;

/// Snapshots the flood sends.
const FLOOD: u64 = 200;

#[test]
fn a_flood_of_distinct_seqs_stores_one_burst_and_counts_the_rest() {
    let pdir = tempfile::tempdir().unwrap();
    let sdir = tempfile::tempdir().unwrap();
    let p = Publisher::start(pdir.path(), &["--interval", "200ms"]);
    let s = Subscriber::start(
        sdir.path(),
        p.mqtt_port,
        &p.url("/latest"),
        &["--max-age", "2"],
        &[
            ("PI_SUBSCRIBER_POLL__INTERVAL", "200ms"),
            ("PI_SUBSCRIBER_HISTORY__MAX_DISK", "16MiB"),
        ],
    );
    s.wait_for("/metrics?host=testhost", |m| m["seq"].as_u64() >= Some(2));
    let now_ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as u64;
    // Distinct seqs and times, declaring an hour's interval: after the burst of 10, the
    // next one is due in half an hour, so the counts do not depend on timing.
    let lines: String = (1..=FLOOD)
        .map(|seq| {
            let ts_ms = now_ms + seq;
            format!(
                r#"{{"v":1,"host":"flood","seq":{seq},"ts":{},"ts_ms":{ts_ms},"interval_s":3600}}"#,
                ts_ms / 1000
            ) + "\n"
        })
        .collect();
    let mut publish = Command::new("mosquitto_pub")
        .args(["-p", &p.mqtt_port.unwrap().to_string()])
        .args(["-t", "server-analytics/flood/snapshot", "-q", "1", "-l"])
        .stdin(Stdio::piped())
        .spawn()
        .expect("mosquitto_pub (Debian package mosquitto-clients)");
    publish
        .stdin
        .take()
        .unwrap()
        .write_all(lines.as_bytes())
        .unwrap();
    assert!(publish.wait().unwrap().success());

    let health = s.wait_for("/health", |h| {
        h["ingest"]["rate_limited_total"].as_u64() == Some(FLOOD - 10)
    });
    assert_eq!(health["ingest"]["queue_full_total"], 0, "{health}");
    let hosts = s.json("/hosts");
    let flood = hosts
        .as_array()
        .unwrap()
        .iter()
        .find(|h| h["host"] == "flood")
        .unwrap();
    assert_eq!(flood["history_rows"], 10, "{hosts}");
    assert_eq!(s.json("/history?host=flood").as_array().unwrap().len(), 10);
    // The real host goes on, never limited, and the size figures are in /health.
    let seq = s.json("/metrics?host=testhost")["seq"].as_u64().unwrap();
    let health = s.wait_for("/health", |h| {
        h["history"]["disk"]["db_bytes"].as_u64() > Some(0)
            && h["hosts"]
                .as_array()
                .unwrap()
                .iter()
                .any(|x| x["host"] == "testhost" && x["last_seq"].as_u64() > Some(seq + 2))
    });
    assert_eq!(
        health["history"]["disk"]["max_disk_bytes"],
        16 << 20,
        "{health}"
    );
    assert_eq!(health["history"]["disk"]["pruned_raw_rows_total"], 0);
    assert_eq!(health["ingest"]["rate_limited_total"], FLOOD - 10);
    s.stop();
}
