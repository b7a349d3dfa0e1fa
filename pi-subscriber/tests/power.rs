//! Issue 20 item 3: a Raspberry Pi on a weak supply. The built publisher reads the rpi5
//! fixture's `/sys` (the `rpi_volt` alarm on, `get_throttled` = 50005: under-voltage and
//! throttled now and since boot); the built Pi shows it on `/series`, `/prometheus` (scraped
//! by a real Prometheus), Home Assistant (a `problem` binary sensor on a real mosquitto) and
//! fires the built-in `under_voltage` alert to a real webhook receiver on the first sample.
#![allow(clippy::unwrap_used, clippy::expect_used)]

#[path = "support/alerts.rs"]
mod alerts;
#[path = "../../publisher/tests/common/mod.rs"]
mod common;
mod support;

use std::time::{Duration, Instant};

use common::mosquitto::Mosquitto;
use common::{free_port, Publisher};
use serde_json::Value;
use support::prometheus::{query, start_prometheus};
use support::Subscriber;

/// The newest raw point of a host-wide metric.
fn newest(pi: &Subscriber, metric: &str) -> Option<f64> {
    let body = pi.json(&format!("/series?host=testhost&metric={metric}"));
    body["series"][0]["points"]
        .as_array()?
        .last()
        .and_then(|p| p[1].as_f64())
}

#[test]
fn under_voltage_reaches_every_surface_and_fires_on_the_first_sample() {
    let (pdir, sdir, mdir) = (
        tempfile::tempdir().unwrap(),
        tempfile::tempdir().unwrap(),
        tempfile::tempdir().unwrap(),
    );
    let mosquitto = Mosquitto::start(mdir.path(), free_port(), "");
    let configs = mosquitto.subscribe("homeassistant/binary_sensor/+/power_under_voltage/config");
    let state = mosquitto.subscribe("server-analytics/testhost/ha/state");
    let hook = alerts::Hook::start();
    let cfg = sdir.path().join("pi.toml");
    std::fs::write(
        &cfg,
        format!(
            "[homeassistant]\nenabled = true\nhost = \"127.0.0.1\"\nport = {}\n\n[alerts]\n{}\n\
             [alerts.builtin.filesystem_used]\nenabled = false\nwarning = 85.0\n\
             [alerts.builtin.memory_used]\nenabled = false\nwarning = 90.0\n",
            mosquitto.port(),
            alerts::webhook(&hook.url),
        ),
    )
    .unwrap();
    let sys = common::fixture("rpi5").join("sys");
    let p = Publisher::start(
        pdir.path(),
        &["--interval", "1s", "--sys-root", sys.to_str().unwrap()],
    );
    let started = Instant::now();
    let pi = Subscriber::start(
        sdir.path(),
        p.mqtt_port,
        &p.url("/latest"),
        &["--config", &cfg.to_string_lossy()],
        &[],
    );
    // The snapshot as received, and the registry's flags from it.
    let m = pi.wait_for("/metrics", |m| !m["power"].is_null());
    assert_eq!(m["power"]["under_voltage_alarm"], true);
    assert_eq!(m["power"]["throttled"], 0x50005);
    for (metric, want) in [
        ("power_under_voltage", 1.0),
        ("power_under_voltage_occurred", 1.0),
        ("power_throttled", 1.0),
        ("power_throttled_occurred", 1.0),
        ("power_freq_capped", 0.0),
        ("power_soft_temp_limit", 0.0),
    ] {
        assert_eq!(newest(&pi, metric), Some(want), "{metric}");
    }
    let (_, text) = pi.get("/prometheus");
    for line in [
        r#"server_analytics_power_under_voltage{host="testhost"} 1.0"#,
        r#"server_analytics_power_freq_capped{host="testhost"} 0.0"#,
    ] {
        assert!(text.lines().any(|l| l == line), "no {line} in\n{text}");
    }

    // The built-in alert, critical, on the first sample (no `for`).
    hook.wait("under_voltage", "firing", Duration::from_secs(20));
    assert!(started.elapsed() < Duration::from_secs(20));
    let (_, body) = pi.get("/alerts");
    let alerts: Value = serde_json::from_str(&body).unwrap();
    let uv = alerts["alerts"]
        .as_array()
        .unwrap()
        .iter()
        .find(|a| a["rule"] == "under_voltage")
        .unwrap_or_else(|| panic!("{body}"))
        .clone();
    assert_eq!(uv["severity"], "critical");
    assert_eq!(uv["value"], 1.0);

    // Home Assistant: a `problem` binary sensor, on.
    let line = configs.next(Duration::from_secs(20)).expect("no config");
    let config: Value = serde_json::from_str(line.split_once(' ').unwrap().1).unwrap();
    assert_eq!(config["device_class"], "problem");
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let line = state.next(Duration::from_secs(1)).unwrap_or_default();
        if let Some((_, json)) = line.split_once(' ') {
            let v: Value = serde_json::from_str(json).unwrap_or(Value::Null);
            if !v["power_under_voltage"].is_null() {
                assert_eq!(v["power_under_voltage"], 1);
                break;
            }
        }
        assert!(Instant::now() < deadline, "no power in HA's state");
    }

    // A real Prometheus scrapes it.
    let target = pi.base.trim_start_matches("http://").to_owned();
    let (_prom, api) = start_prometheus(pdir.path(), &target);
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let r = query(&api, "server_analytics_power_under_voltage");
        if let Some(v) = r.first() {
            assert_eq!(v["metric"]["host"], "testhost");
            assert_eq!(v["value"][1], "1");
            break;
        }
        assert!(Instant::now() < deadline, "Prometheus never had the flag");
        std::thread::sleep(Duration::from_millis(250));
    }
}
