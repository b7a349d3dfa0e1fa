//! A real Prometheus (Debian package `prometheus`) scraping a Pi's `/prometheus`, and its
//! query API.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use std::path::Path;
use std::process::{Child, Command, Stdio};

use serde_json::Value;

use crate::common::free_port;

/// A child process killed when dropped.
pub struct Killed(Child);

impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

pub fn query(prom: &str, q: &str) -> Vec<Value> {
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

pub fn urlencode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'_' | b'-' | b'.' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// Starts Prometheus on a free port scraping `target`'s `/prometheus` every second; returns
/// the process and its API base URL.
pub fn start_prometheus(dir: &Path, target: &str) -> (Killed, String) {
    let prom_port = free_port();
    let config = dir.join("prometheus.yml");
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
            dir.join("tsdb").display()
        ))
        .arg(format!("--web.listen-address=127.0.0.1:{prom_port}"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("prometheus (Debian package prometheus)");
    (Killed(prom), format!("http://127.0.0.1:{prom_port}"))
}
