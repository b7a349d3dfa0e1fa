//! Issue 19 item 7, the worked example: a disk's busy % and its average I/O wait, added as a
//! collector change, two wire fields and registry entries, reach every surface with the same
//! numbers. The built publisher reads the tower fixture's `/proc` (a copy whose `diskstats`
//! is swapped for the t1 one between two samples), the built Pi consumes it over the
//! embedded broker and publishes Home Assistant's state to a real mosquitto.
//!
//! Expected figures from the fixture (nvme0n1, t0 → t1): io_time 1913249 → 1913951 ms (702
//! ms busy), reads + writes 6191271 → 6193724 (2453), their ms 3316695 → 3317584 (889): busy
//! = 702 / (Δt × 10) %, await = 889 / 2453 ms; the host's await is every disk's ms over
//! every disk's I/Os (889 + 219 + 190) / (2453 + 17 + 14) = 1298 / 2484 ms.
#![allow(clippy::unwrap_used, clippy::expect_used)]

#[path = "support/alerts.rs"]
mod alerts;
#[path = "../../publisher/tests/common/mod.rs"]
mod common;
mod support;

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use common::mosquitto::Mosquitto;
use common::{free_port, Publisher};
use serde_json::{json, Value};
use support::Subscriber;

const AWAIT_NVME: f64 = 889.0 / 2453.0;
const AWAIT_HOST: f64 = 1298.0 / 2484.0;

/// The Pi's raw points of `metric` for nvme0n1: (ts_ms, value).
fn points(pi: &Subscriber, metric: &str) -> Vec<(i64, Option<f64>)> {
    let body = pi.json(&format!(
        "/series?host=testhost&metric={metric}&device=nvme0n1"
    ));
    body["series"][0]["points"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| (p[0].as_i64().unwrap(), p[1].as_f64()))
        .collect()
}

fn post(url: &str, body: &Value) -> Value {
    let response = reqwest::blocking::Client::new()
        .post(url)
        .json(body)
        .send()
        .unwrap();
    assert_eq!(response.status(), 200, "{url}");
    response.json().unwrap()
}

fn copy_tree(from: &Path, to: &Path) {
    let ok = Command::new("cp")
        .arg("-r")
        .arg(from)
        .arg(to)
        .status()
        .unwrap();
    assert!(ok.success(), "cp -r {from:?} {to:?}");
}

#[test]
fn disk_busy_and_await_reach_every_surface_with_one_value() {
    let (pdir, sdir, mdir, root) = (
        tempfile::tempdir().unwrap(),
        tempfile::tempdir().unwrap(),
        tempfile::tempdir().unwrap(),
        tempfile::tempdir().unwrap(),
    );
    let tower = common::fixture("tower");
    let proc = root.path().join("proc");
    copy_tree(&tower.join("proc"), &proc);
    let mosquitto = Mosquitto::start(mdir.path(), free_port(), "");
    let state = mosquitto.subscribe("server-analytics/testhost/ha/state");
    let hook = alerts::Hook::start();
    let cfg = sdir.path().join("pi.toml");
    std::fs::write(
        &cfg,
        format!(
            "[homeassistant]\nenabled = true\nhost = \"127.0.0.1\"\nport = {}\n\n\
             [alerts]\n[[alerts.rule]]\nname = \"disk-busy\"\nmetric = \"disk_busy_percent\"\n\
             above = 3.0\nfor = \"0s\"\nseverity = \"warning\"\n{}\n\
             [alerts.builtin.filesystem_used]\nenabled = false\nwarning = 85.0\n",
            mosquitto.port(),
            alerts::webhook(&hook.url),
        ),
    )
    .unwrap();
    let p = Publisher::start(
        pdir.path(),
        &[
            "--interval",
            "2s",
            "--proc-root",
            proc.to_str().unwrap(),
            "--sys-root",
            tower.join("sys").to_str().unwrap(),
        ],
    );
    let pi = Subscriber::start(
        sdir.path(),
        p.mqtt_port,
        &p.url("/latest"),
        &["--config", &cfg.to_string_lossy()],
        &[],
    );
    // Two samples of t0: every disk idle, the I/O wait 0 (no I/O completed), as iostat says.
    let idle = pi.wait_for("/metrics", |m| {
        m["rates"]["disk_busy_percent"]["value"] == 0.0
    });
    assert_eq!(idle["rates"]["disk_await_ms"]["device"]["nvme0n1"], 0.0);
    let seq = idle["seq"].as_u64().unwrap();

    // The disks work between two samples: diskstats becomes t1's (renamed over, as the
    // kernel's file never reads half-written).
    let next = root.path().join("diskstats.t1");
    std::fs::copy(tower.join("proc_t1/diskstats"), &next).unwrap();
    std::fs::rename(&next, proc.join("diskstats")).unwrap();
    let busy = pi.wait_for("/metrics", |m| {
        m["rates"]["disk_busy_percent"]["value"]
            .as_f64()
            .is_some_and(|v| v > 0.0)
    });
    assert!(busy["seq"].as_u64().unwrap() > seq);
    let at = busy["ts_ms"].as_i64().unwrap();

    // /series (the raw tier): the busy point and its seq neighbour give the interval.
    let raw = points(&pi, "disk_busy_percent");
    let i = raw
        .iter()
        .position(|(t, _)| *t == at)
        .expect("the busy sample");
    let dt_s = (at - raw[i - 1].0) as f64 / 1000.0;
    let busy_nvme = 702.0 / (dt_s * 10.0);
    near(&json!(raw[i].1), busy_nvme);
    let waits = points(&pi, "disk_await_ms");
    near(
        &json!(waits.iter().find(|(t, _)| *t == at).unwrap().1),
        AWAIT_NVME,
    );

    // /metrics: the same numbers, by registry name; the host's busy % is its busiest disk's.
    let rates = &busy["rates"];
    near(&rates["disk_busy_percent"]["device"]["nvme0n1"], busy_nvme);
    near(&rates["disk_busy_percent"]["value"], busy_nvme);
    near(
        &rates["disk_busy_percent"]["device"]["sda"],
        201.0 / (dt_s * 10.0),
    );
    near(&rates["disk_await_ms"]["device"]["nvme0n1"], AWAIT_NVME);
    near(&rates["disk_await_ms"]["device"]["sda"], 219.0 / 17.0);
    near(&rates["disk_await_ms"]["device"]["sr0"], 0.0);
    near(&rates["disk_await_ms"]["value"], AWAIT_HOST);
    near(&rates["disk_io_ops_rate"]["value"], 2484.0 / dt_s);

    // /prometheus: the raw counters in seconds, node_exporter's io_time figure for t1.
    let (_, text) = pi.get("/prometheus");
    for line in [
        r#"server_analytics_disk_io_time_seconds_total{host="testhost",device="nvme0n1"} 1913.951"#,
        r#"server_analytics_disk_io_wait_time_seconds_total{host="testhost",device="nvme0n1"} 3317.584"#,
        r#"server_analytics_disk_io_completed_total{host="testhost",device="nvme0n1"} 6193724"#,
    ] {
        assert!(text.lines().any(|l| l == line), "no {line} in\n{text}");
    }

    // Grafana: the host-wide series (the series path, raw tier) has the busy point.
    let to = at + 1000;
    let answer = post(
        &pi.url("/grafana/query"),
        &json!({
            "range": {"from": iso(at - 120_000), "to": iso(to)},
            "intervalMs": 1000, "maxDataPoints": 1000,
            "targets": [{"refId": "A", "target": "disk_await_ms", "payload": {"host": "testhost"}}]
        }),
    );
    let dp = answer[0]["datapoints"].as_array().unwrap();
    assert!(
        dp.iter().any(|p| p[1].as_i64() == Some(at)
            && p[0]
                .as_f64()
                .is_some_and(|v| (v - AWAIT_HOST).abs() < 1e-12)),
        "{answer}"
    );

    // Home Assistant's state: the same numbers, rounded as the registry says.
    let deadline = Instant::now() + Duration::from_secs(20);
    let seen = loop {
        let line = state.next(Duration::from_secs(1)).unwrap_or_default();
        if let Some(json) = line.split_once(' ').map(|(_, j)| j) {
            let v: Value = serde_json::from_str(json).unwrap_or(Value::Null);
            if v["disk_busy_percent"].as_f64().is_some_and(|b| b > 0.0) {
                break v;
            }
        }
        assert!(Instant::now() < deadline, "no busy state in HA");
    };
    assert_eq!(seen["disk_busy_percent"], (busy_nvme * 10.0).round() / 10.0);
    assert_eq!(seen["disk_await_ms"], (AWAIT_HOST * 100.0).round() / 100.0);

    // The alert rule saw the same value, per device and host-wide.
    hook.wait("disk-busy", "firing", Duration::from_secs(20));
    let (_, body) = pi.get("/alerts");
    let firing: Value = serde_json::from_str(&body).unwrap();
    let values: Vec<(String, f64)> = firing["alerts"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|a| a["rule"] == "disk-busy")
        .map(|a| {
            (
                a["label"].as_str().unwrap().to_owned(),
                a["value"].as_f64().unwrap(),
            )
        })
        .collect();
    for label in ["nvme0n1", ""] {
        let (_, v) = values.iter().find(|(l, _)| l == label).unwrap();
        near(&json!(v), busy_nvme);
    }
    assert_eq!(
        values.len(),
        4,
        "nvme0n1, sda, sdb and the host: {values:?}"
    );
}

/// `v` is `want`, up to the last bit serde_json's float parser may get wrong (it parses
/// without `float_roundtrip`: 12.882352941176471 written by the Pi reads back as …473).
fn near(v: &Value, want: f64) {
    let got = v.as_f64().unwrap_or_else(|| panic!("{v} is not a number"));
    assert!(
        (got - want).abs() <= want.abs() * 1e-15,
        "{got} where {want} was expected"
    );
}

/// Grafana's range bounds: RFC 3339 from epoch ms.
fn iso(ms: i64) -> String {
    humantime::format_rfc3339_millis(std::time::UNIX_EPOCH + Duration::from_millis(ms as u64))
        .to_string()
}
