//! A real Prometheus (Debian package `prometheus`) scrapes the subscriber's `/prometheus` on
//! loopback: the target is up, every metric has a value, and `rate()` works on the counters;
//! and hostile device names published with `mosquitto_pub` neither break the scrape nor forge
//! series (issue 9 A2).
#![allow(clippy::unwrap_used, clippy::expect_used)]

#[path = "../../publisher/tests/common/mod.rs"]
mod common;
mod support;

use std::process::Command;
use std::time::{Duration, Instant};

use common::Publisher;
use support::prometheus::{query, start_prometheus};
use support::Subscriber;

#[test]
fn prometheus_scrapes_every_metric_and_rate_works() {
    let pdir = tempfile::tempdir().unwrap();
    let sdir = tempfile::tempdir().unwrap();
    // Real /proc, and the tower fixture's /sys so there is a CPU temperature to export.
    let sys = common::fixture("tower").join("sys");
    let p = Publisher::start(
        pdir.path(),
        &["--interval", "500ms", "--sys-root", sys.to_str().unwrap()],
    );
    let s = Subscriber::start(sdir.path(), p.mqtt_port, &p.url("/latest"), &[], &[]);
    s.wait_for("/metrics", |m| m["seq"].as_u64() >= Some(2));
    let target = s.base.trim_start_matches("http://").to_owned();

    let (_prom, api) = start_prometheus(pdir.path(), &target);

    let deadline = Instant::now() + Duration::from_secs(60);
    let metrics = [
        "server_analytics_up",
        "server_analytics_last_seen_timestamp_seconds",
        "server_analytics_cpu_usage_ratio",
        "server_analytics_load1",
        "server_analytics_load5",
        "server_analytics_load15",
        "server_analytics_memory_available_bytes",
        "server_analytics_memory_total_bytes",
        "server_analytics_swap_used_bytes",
        "server_analytics_cpu_temperature_celsius",
        "server_analytics_uptime_seconds",
        "server_analytics_disk_read_bytes_total",
        "server_analytics_disk_written_bytes_total",
        "server_analytics_network_receive_bytes_total",
        "server_analytics_network_transmit_bytes_total",
        "server_analytics_ingest_stored_total",
    ];
    loop {
        let up = query(&api, "up{job=\"pi\"}");
        if up.first().is_some_and(|r| r["value"][1] == "1") {
            let missing: Vec<&str> = metrics
                .iter()
                .copied()
                .filter(|m| query(&api, m).is_empty())
                .collect();
            let rate = query(
                &api,
                "rate(server_analytics_network_receive_bytes_total[5s])",
            );
            if missing.is_empty() && !rate.is_empty() {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "no value in Prometheus for {missing:?} (rate: {rate:?})"
            );
        }
        assert!(Instant::now() < deadline, "target never up: {up:?}");
        std::thread::sleep(Duration::from_millis(250));
    }
    let temp = query(&api, "server_analytics_cpu_temperature_celsius");
    assert_eq!(temp[0]["metric"]["host"], "testhost");
    assert_eq!(temp[0]["value"][1], "52.5");
    let fresh = query(&api, "server_analytics_up{host=\"testhost\"}");
    assert_eq!(fresh[0]["value"][1], "1");
    let total = query(&api, "server_analytics_memory_total_bytes");
    let mib: u64 = std::fs::read_to_string("/proc/meminfo")
        .unwrap()
        .lines()
        .next()
        .unwrap()
        .split_whitespace()
        .nth(1)
        .unwrap()
        .parse::<u64>()
        .unwrap()
        / 1024;
    assert_eq!(total[0]["value"][1], (mib * 1024 * 1024).to_string());
}

fn mosquitto_pub(port: u16, topic: &str, message: &str) {
    let ok = Command::new("mosquitto_pub")
        .args([
            "-p",
            &port.to_string(),
            "-t",
            topic,
            "-q",
            "1",
            "-m",
            message,
        ])
        .status()
        .expect("mosquitto_pub (Debian package mosquitto-clients)")
        .success();
    assert!(ok, "mosquitto_pub {topic}");
}

/// Issue 9 A2: a host whose device and interface names hold `"`, `\` and exposition syntax is
/// scraped by a real Prometheus: `up` stays 1, its series carry the names verbatim, no series
/// is forged, the other host's series are intact; a name with a newline is refused at ingest
/// and counted.
#[test]
fn hostile_names_neither_break_the_scrape_nor_forge_series() {
    let pdir = tempfile::tempdir().unwrap();
    let sdir = tempfile::tempdir().unwrap();
    let p = Publisher::start(pdir.path(), &["--interval", "500ms"]);
    let s = Subscriber::start(sdir.path(), p.mqtt_port, &p.url("/latest"), &[], &[]);
    s.wait_for("/metrics", |m| m["seq"].as_u64() >= Some(2));
    let (_prom, api) = start_prometheus(pdir.path(), s.base.trim_start_matches("http://"));

    let port = p.mqtt_port.unwrap();
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let forged = "x\"} 1\nserver_analytics_up{host=\"forged\"} 1\n# EOF";
    let hostile = serde_json::json!({
        "host": "evil", "seq": 1, "ts": now,
        "disk": {"read_sectors": 2, "write_sectors": 2, "devices": {
            "sd\"a": {"read_sectors": 1, "write_sectors": 1},
            "c:\\d\\": {"read_sectors": 1, "write_sectors": 1}}},
        "network": {"rx_bytes": 7, "tx_bytes": 8, "interfaces": {
            "eth0\"} 99 # EOF": {"rx_bytes": 7, "tx_bytes": 8}}}
    });
    let newline = serde_json::json!({
        "host": "evil", "seq": 2, "ts": now,
        "network": {"rx_bytes": 7, "tx_bytes": 8, "interfaces": {forged: {"rx_bytes": 7, "tx_bytes": 8}}}
    });
    let topic = "server-analytics/evil/snapshot";
    mosquitto_pub(port, topic, &newline.to_string());
    mosquitto_pub(port, topic, &hostile.to_string());
    let health = s.wait_for("/health", |h| h["ingest"]["rejected"]["bad_name"] == 1);
    assert_eq!(health["ingest"]["rejected_total"], 1, "{health}");

    // The hostile host's series reach Prometheus with the names as sent.
    let deadline = Instant::now() + Duration::from_secs(60);
    let devices = loop {
        let r = query(
            &api,
            "server_analytics_disk_read_bytes_total{host=\"evil\"}",
        );
        if r.len() == 2 {
            break r;
        }
        assert!(
            Instant::now() < deadline,
            "evil's disks never reached Prometheus (up: {:?})",
            query(&api, "up")
        );
        std::thread::sleep(Duration::from_millis(250));
    };
    let mut names: Vec<&str> = devices
        .iter()
        .map(|r| r["metric"]["device"].as_str().unwrap())
        .collect();
    names.sort_unstable();
    assert_eq!(names, ["c:\\d\\", "sd\"a"]);
    let iface = query(
        &api,
        "server_analytics_network_receive_bytes_total{host=\"evil\"}",
    );
    assert_eq!(iface.len(), 1);
    assert_eq!(iface[0]["metric"]["device"], "eth0\"} 99 # EOF");
    assert_eq!(iface[0]["value"][1], "7");

    // Every scrape since has succeeded, and nothing was forged.
    std::thread::sleep(Duration::from_secs(4));
    let up = query(&api, "min_over_time(up{job=\"pi\"}[4s])");
    assert_eq!(up.len(), 1);
    assert_eq!(up[0]["value"][1], "1", "a scrape failed");
    let mut hosts: Vec<String> = query(&api, "server_analytics_up")
        .iter()
        .map(|r| r["metric"]["host"].as_str().unwrap().to_owned())
        .collect();
    hosts.sort_unstable();
    assert_eq!(hosts, ["evil", "testhost"]);
    assert!(query(&api, "{host=\"forged\"}").is_empty());
    // The real host is intact.
    let cpu = query(&api, "server_analytics_cpu_usage_ratio");
    assert_eq!(cpu.len(), 1);
    assert_eq!(cpu[0]["metric"]["host"], "testhost");
    assert!(!query(
        &api,
        "server_analytics_network_receive_bytes_total{host=\"testhost\"}"
    )
    .is_empty());
}
