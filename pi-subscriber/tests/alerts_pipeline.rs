//! Alerts with real parts: the built `publisher` and `pi-subscriber`, a webhook receiver this
//! test runs on a free port, and a real Prometheus Alertmanager.
#![allow(clippy::unwrap_used, clippy::expect_used)]

#[path = "support/alerts.rs"]
mod alerts;
#[path = "../../publisher/tests/common/mod.rs"]
mod common;
mod support;

use std::io::{Read, Write};
use std::net::TcpListener;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use alerts::{config, subscriber, webhook, Hook};
use common::{free_port, Publisher};
use serde_json::Value;

#[test]
fn host_down_job_failed_and_a_user_rule_reach_a_webhook_exactly_once() {
    let hook = Hook::start();
    let (pdir, sdir) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let (http, mqtt) = (free_port(), free_port());
    let cfg = config(sdir.path(), &webhook(&hook.url));
    let p = Publisher::on_ports(pdir.path(), "200ms", http, mqtt);
    let s = subscriber(sdir.path(), &cfg, http, mqtt);

    // A user rule that is always true fires on the next sample.
    hook.wait("busy", "firing", Duration::from_secs(15));
    let alerts = s.wait_for("/alerts", |a| {
        a["alerts"].as_array().is_some_and(|a| !a.is_empty())
    });
    let busy = &alerts["alerts"][0];
    // Grafana's alert_events target: one range for busy, from its firing to now.
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64;
    let body: Value = reqwest::blocking::Client::new()
        .post(format!("{}/grafana/query", s.base))
        .json(&serde_json::json!({
            "range": {"from": (now - 3_600_000).to_string(), "to": (now + 60_000).to_string()},
            "targets": [{"target": "alert_events", "payload": {"host": "testhost"}}]
        }))
        .send()
        .unwrap()
        .json()
        .unwrap();
    let rows = body[0]["rows"].as_array().unwrap();
    assert_eq!(rows.len(), 1, "{body}");
    assert_eq!(rows[0][2], "alert busy");
    assert_eq!(rows[0][4], "alert,info,testhost");
    assert_eq!(rows[0][5], "testhost");
    assert!(rows[0][0].as_i64().unwrap() <= rows[0][1].as_i64().unwrap());
    // /prometheus says so too.
    let (code, text) = s.get("/prometheus");
    assert_eq!(code, 200);
    assert!(
        text.lines().any(|l| l
            == r#"server_analytics_alert_firing{host="testhost",rule="busy",severity="info"} 1.0"#),
        "{text}"
    );
    assert_eq!(
        (
            &busy["host"],
            &busy["rule"],
            &busy["state"],
            &busy["severity"],
            &busy["threshold"]
        ),
        (
            &Value::from("testhost"),
            &Value::from("busy"),
            &Value::from("firing"),
            &Value::from("info"),
            &Value::from(-1.0)
        )
    );
    assert_eq!(alerts["recent"][0]["rule"], "busy");

    // A failed job: one job_failed.
    let out = common::command(pdir.path())
        .args(["job", "--name", "nightly", "--", "false"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    hook.wait("job_failed", "firing", Duration::from_secs(15));

    // The server goes silent: one host_down within max_age + 2 s.
    drop(p);
    let took = hook.wait("host_down", "firing", Duration::from_secs(8));
    assert!(
        took <= Duration::from_secs(4) + Duration::from_millis(500),
        "host_down after {took:?}"
    );
    let unknown = s.json("/alerts");
    let states: Vec<_> = unknown["alerts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| (a["rule"].clone(), a["state"].clone()))
        .collect();
    assert!(
        states.contains(&("busy".into(), "unknown".into())),
        "{states:?}"
    );
    std::thread::sleep(Duration::from_secs(2));

    // Back: one resolved; the user rule (true all along) is not told again.
    let p = Publisher::on_ports(pdir.path(), "200ms", http, mqtt);
    hook.wait("host_down", "resolved", Duration::from_secs(15));
    s.wait_for("/metrics", |m| m["stale"] == false);
    std::thread::sleep(Duration::from_secs(2));
    assert_eq!(hook.count("host_down", "firing"), 1, "{:?}", hook.seen());
    assert_eq!(hook.count("host_down", "resolved"), 1);
    assert_eq!(hook.count("job_failed", "firing"), 1);
    assert_eq!(hook.count("busy", "firing"), 1, "{:?}", hook.seen());
    assert_eq!(
        hook.count("busy", "resolved"),
        0,
        "no resolve while unknown"
    );
    let health = s.json("/health");
    assert_eq!(health["alerts"]["notifiers"][0]["kind"], "webhook");
    assert_eq!(
        health["alerts"]["notifiers"][0]["sent_total"],
        hook.seen().len()
    );
    assert_eq!(health["alerts"]["notifiers"][0]["dropped_total"], 0);
    drop(p);
}

/// The body of a 2xx answer; `None` otherwise or when nothing listens.
fn get_ok(url: &str) -> Option<String> {
    let client = reqwest::blocking::Client::builder()
        .timeout(Duration::from_secs(5))
        .build()
        .ok()?;
    let r = client.get(url).send().ok()?;
    r.status().is_success().then(|| r.text().ok()).flatten()
}

/// A real Alertmanager on a free port; killed when dropped.
struct Alertmanager(Child, String, #[allow(dead_code)] tempfile::TempDir);

impl Drop for Alertmanager {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn alertmanager() -> Option<Alertmanager> {
    let bin = Path::new("/usr/bin/prometheus-alertmanager");
    if !bin.exists() {
        eprintln!("SKIP: /usr/bin/prometheus-alertmanager missing (apt-get install prometheus-alertmanager; scripts/test.sh does as root)");
        return None;
    }
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("am.yml");
    std::fs::write(
        &cfg,
        "route:\n  receiver: none\nreceivers:\n  - name: none\n",
    )
    .unwrap();
    let port = free_port();
    let child = Command::new(bin)
        .arg(format!("--config.file={}", cfg.display()))
        .arg(format!(
            "--storage.path={}",
            dir.path().join("data").display()
        ))
        .arg(format!("--web.listen-address=127.0.0.1:{port}"))
        .arg("--cluster.listen-address=")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let url = format!("http://127.0.0.1:{port}");
    let start = Instant::now();
    while get_ok(&format!("{url}/-/ready")).is_none() {
        assert!(
            start.elapsed() < Duration::from_secs(20),
            "alertmanager not ready"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    Some(Alertmanager(child, url, dir))
}

#[test]
fn a_real_alertmanager_lists_the_alert_with_its_labels() {
    let Some(am) = alertmanager() else { return };
    let (pdir, sdir) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let (http, mqtt) = (free_port(), free_port());
    let cfg = config(
        sdir.path(),
        &format!(
            "[[alerts.notify]]\nkind = \"alertmanager\"\nurl = \"{}\"\n",
            am.1
        ),
    );
    let p = Publisher::on_ports(pdir.path(), "200ms", http, mqtt);
    let _s = subscriber(sdir.path(), &cfg, http, mqtt);
    let start = Instant::now();
    let listed = loop {
        let alerts: Value = get_ok(&format!("{}/api/v2/alerts", am.1))
            .and_then(|b| serde_json::from_str(&b).ok())
            .unwrap_or(Value::Null);
        if alerts.as_array().is_some_and(|a| !a.is_empty()) {
            break alerts;
        }
        assert!(
            start.elapsed() < Duration::from_secs(20),
            "not in Alertmanager"
        );
        std::thread::sleep(Duration::from_millis(200));
    };
    let labels = &listed[0]["labels"];
    assert_eq!(labels["alertname"], "busy");
    assert_eq!(labels["host"], "testhost");
    assert_eq!(labels["severity"], "info");
    assert_eq!(listed[0]["status"]["state"], "active");

    // The server goes down: host_down is listed; it comes back: Alertmanager has it resolved
    // (a resolved alert leaves its list of alerts).
    let listed_now = |name: &str| {
        get_ok(&format!("{}/api/v2/alerts", am.1))
            .and_then(|b| serde_json::from_str::<Value>(&b).ok())
            .and_then(|a| a.as_array().cloned())
            .unwrap_or_default()
            .iter()
            .any(|a| a["labels"]["alertname"] == name)
    };
    let until = |what: &str, ok: &dyn Fn() -> bool| {
        let start = Instant::now();
        while !ok() {
            assert!(start.elapsed() < Duration::from_secs(30), "{what}");
            std::thread::sleep(Duration::from_millis(200));
        }
    };
    drop(p);
    until("host_down never listed", &|| listed_now("host_down"));
    let _p = Publisher::on_ports(pdir.path(), "200ms", http, mqtt);
    until("host_down never resolved", &|| !listed_now("host_down"));
}

#[test]
fn a_hanging_and_a_failing_notifier_delay_nothing_and_are_retried() {
    // One accepts and never answers; the other answers 500.
    let hang = TcpListener::bind("127.0.0.1:0").unwrap();
    let hang_url = format!("http://{}/hook", hang.local_addr().unwrap());
    std::thread::spawn(move || {
        let mut held = Vec::new();
        for c in hang.incoming() {
            held.push(c);
        }
    });
    let fail = TcpListener::bind("127.0.0.1:0").unwrap();
    let fail_url = format!("http://{}/hook", fail.local_addr().unwrap());
    std::thread::spawn(move || {
        for c in fail.incoming().flatten() {
            let mut c = c;
            let mut buf = [0u8; 4096];
            let _ = c.read(&mut buf);
            let _ = c.write_all(b"HTTP/1.1 500 Internal Server Error\r\nContent-Length: 0\r\nConnection: close\r\n\r\n");
        }
    });
    let (pdir, sdir) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let (http, mqtt) = (free_port(), free_port());
    let notify = format!(
        "[[alerts.notify]]\nkind = \"webhook\"\nurl = \"{hang_url}\"\ntimeout = \"5m\"\n\n[[alerts.notify]]\nkind = \"ntfy\"\nurl = \"{fail_url}\"\n"
    );
    let cfg = config(sdir.path(), &notify);
    let _p = Publisher::on_ports(pdir.path(), "200ms", http, mqtt);
    let s = subscriber(sdir.path(), &cfg, http, mqtt);
    let h = s.wait_for("/health", |h| {
        h["alerts"]["notifiers"][1]["retries_total"].as_u64() >= Some(1)
    });
    assert_eq!(
        h["alerts"]["notifiers"][0]["sent_total"], 0,
        "still hanging"
    );
    assert_eq!(h["alerts"]["firing"], 1);
    // Ingest and the API go on.
    let seq = s.json("/metrics")["seq"].as_u64().unwrap();
    let m = s.wait_for("/metrics", |m| m["seq"].as_u64() >= Some(seq + 5));
    assert_eq!(m["stale"], false);
    assert_eq!(s.json("/alerts")["alerts"][0]["state"], "firing");
}

#[test]
fn the_mqtt_notifier_keeps_each_alert_retained_on_the_broker() {
    if std::process::Command::new("mosquitto_sub")
        .arg("--help")
        .output()
        .is_err()
    {
        eprintln!("skipped: mosquitto_sub is not installed (Debian package mosquitto-clients)");
        return;
    }
    let (pdir, sdir) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let (http, mqtt) = (free_port(), free_port());
    let cfg = config(sdir.path(), "[[alerts.notify]]\nkind = \"mqtt\"\n");
    let _p = Publisher::on_ports(pdir.path(), "200ms", http, mqtt);
    let s = subscriber(sdir.path(), &cfg, http, mqtt);
    s.wait_for("/health", |h| {
        h["alerts"]["notifiers"][0]["sent_total"].as_u64() >= Some(1)
    });
    // A subscriber that comes later gets the state, retained (the embedded broker's
    // retained-store guard keeps `<prefix>/+/alerts/#`).
    std::thread::sleep(Duration::from_secs(1));
    let mut cmd = std::process::Command::new("mosquitto_sub");
    cmd.args(["-h", "127.0.0.1", "-p", &mqtt.to_string()])
        .args([
            "-t",
            "server-analytics/+/alerts/#",
            "-v",
            "-C",
            "1",
            "-W",
            "10",
        ]);
    let out = support::mqtt_tools::bounded(cmd, Duration::from_secs(15));
    let text = String::from_utf8_lossy(&out);
    let (topic, json) = text.trim().split_once(' ').unwrap_or(("", ""));
    assert_eq!(topic, "server-analytics/testhost/alerts/busy", "{text}");
    let notice: Value = serde_json::from_str(json).unwrap();
    assert_eq!(notice["status"], "firing");
    assert_eq!(notice["rule"], "busy");
    assert_eq!(notice["host"], "testhost");
}
