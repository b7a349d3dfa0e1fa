//! A real Prometheus (Debian package `prometheus`) scrapes the subscriber's `/prometheus` on
//! loopback: the target is up, every metric has a value, and `rate()` works on the counters.
#![allow(clippy::unwrap_used, clippy::expect_used)]

#[path = "../../publisher/tests/common/mod.rs"]
mod common;
mod support;

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::{free_port, Publisher};
use serde_json::Value;
use support::Subscriber;

struct Killed(Child);

impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn query(prom: &str, q: &str) -> Vec<Value> {
    let url = format!("{prom}/api/v1/query?query={}", urlencode(q));
    // Prometheus may not listen yet: that is "no result", not a failure.
    let Ok(response) = reqwest::blocking::get(&url) else {
        return Vec::new();
    };
    let Ok(v) = response.json::<Value>() else {
        return Vec::new();
    };
    v["data"]["result"].as_array().cloned().unwrap_or_default()
}

fn urlencode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'_' | b'-' | b'.' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}

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

    let prom_port = free_port();
    let config = pdir.path().join("prometheus.yml");
    std::fs::write(
        &config,
        format!(
            "global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\nscrape_configs:\n  - job_name: pi\n    metrics_path: /prometheus\n    static_configs:\n      - targets: ['{target}']\n"
        ),
    )
    .unwrap();
    let prom = Command::new("prometheus")
        .arg(format!("--config.file={}", config.display()))
        .arg(format!(
            "--storage.tsdb.path={}",
            pdir.path().join("tsdb").display()
        ))
        .arg(format!("--web.listen-address=127.0.0.1:{prom_port}"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("prometheus (Debian package prometheus)");
    let _prom = Killed(prom);
    let api = format!("http://127.0.0.1:{prom_port}");

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
