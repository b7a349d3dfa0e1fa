//! For the alert tests (declared with `#[path]`; the other test targets do not need it): a
//! webhook receiver on a free port that keeps every JSON body POSTed to it, and a Pi whose
//! config has an always-true user rule.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpListener;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::support::Subscriber;

/// Every JSON body POSTed to it, in order.
#[derive(Clone)]
pub struct Hook {
    pub url: String,
    got: Arc<Mutex<Vec<Value>>>,
}

impl Hook {
    pub fn start() -> Hook {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!("http://{}/hook", listener.local_addr().unwrap());
        let got = Arc::new(Mutex::new(Vec::new()));
        let sink = Arc::clone(&got);
        std::thread::spawn(move || {
            for conn in listener.incoming() {
                let Ok(mut conn) = conn else { continue };
                let mut reader = BufReader::new(conn.try_clone().unwrap());
                let mut len = 0usize;
                loop {
                    let mut line = String::new();
                    if reader.read_line(&mut line).unwrap_or(0) == 0 || line == "\r\n" {
                        break;
                    }
                    let lower = line.to_ascii_lowercase();
                    if let Some(v) = lower.strip_prefix("content-length:") {
                        len = v.trim().parse().unwrap_or(0);
                    }
                }
                let mut body = vec![0; len];
                if reader.read_exact(&mut body).is_ok() {
                    if let Ok(v) = serde_json::from_slice(&body) {
                        sink.lock().unwrap().push(v);
                    }
                }
                let _ = conn.write_all(
                    b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
                );
            }
        });
        Hook { url, got }
    }

    /// (rule, status) of every notice received.
    pub fn seen(&self) -> Vec<(String, String)> {
        self.got
            .lock()
            .unwrap()
            .iter()
            .map(|v| {
                (
                    v["rule"].as_str().unwrap_or("").into(),
                    v["status"].as_str().unwrap_or("").into(),
                )
            })
            .collect()
    }

    pub fn count(&self, rule: &str, status: &str) -> usize {
        self.seen()
            .iter()
            .filter(|(r, s)| r == rule && s == status)
            .count()
    }

    /// Waits until `rule`/`status` was received at least once; the time it took.
    pub fn wait(&self, rule: &str, status: &str, within: Duration) -> Duration {
        let start = Instant::now();
        while self.count(rule, status) == 0 {
            assert!(
                start.elapsed() < within,
                "no {rule} {status} within {within:?}: {:?}",
                self.seen()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        start.elapsed()
    }
}

pub const BUSY: &str = r#"
[[alerts.rule]]
name = "busy"
metric = "cpu_usage_percent"
above = -1.0
for = "0s"
severity = "info"
"#;

pub fn config(dir: &Path, notify: &str) -> std::path::PathBuf {
    let path = dir.join("pi.toml");
    // The built-in rules on the test machine's own disk, memory and systemd units are off:
    // how full this machine is, or a unit failed on it, must not add alerts the tests count.
    let quiet = "[alerts.builtin.filesystem_used]\nenabled = false\nwarning = 85.0\n\
                 [alerts.builtin.memory_used]\nenabled = false\nwarning = 90.0\n\
                 [alerts.builtin.unit_failed]\nenabled = false\nwarning = 0.5\n";
    std::fs::write(&path, format!("[alerts]\n{BUSY}\n{notify}\n{quiet}")).unwrap();
    path
}

pub fn webhook(url: &str) -> String {
    format!("[[alerts.notify]]\nkind = \"webhook\"\nurl = \"{url}\"\nmin_severity = \"info\"\n")
}

pub fn subscriber(data: &Path, config: &Path, http: u16, mqtt: u16) -> Subscriber {
    let config = config.to_string_lossy().into_owned();
    Subscriber::start(
        data,
        Some(mqtt),
        &format!("http://127.0.0.1:{http}/latest"),
        &["--max-age", "2", "--config", &config],
        &[
            ("PI_SUBSCRIBER_POLL__INTERVAL", "200ms"),
            ("PI_SUBSCRIBER_MQTT__KEEP_ALIVE", "5s"),
        ],
    )
}
