//! Issue 20 item 2 on the Pi: snapshots listing failed systemd units, published with
//! `mosquitto_pub` on a real mosquitto as a client would, reach `/series` (one series per
//! unit), `/prometheus` (scraped by a real Prometheus), Home Assistant (a `problem` binary
//! sensor with the units as an attribute) and the built-in `unit_failed` alert (a real
//! webhook receiver), which fires on the first sample that lists a unit and resolves on the
//! first that does not.
#![allow(clippy::unwrap_used, clippy::expect_used)]

#[path = "support/alerts.rs"]
mod alerts;
#[path = "../../publisher/tests/common/mod.rs"]
mod common;
mod support;

use std::time::{Duration, Instant};

use common::free_port;
use common::mosquitto::Mosquitto;
use serde_json::Value;
use support::prometheus::{query, start_prometheus};
use support::Subscriber;

fn snapshot(seq: u64, units: &str) -> String {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64;
    format!(
        r#"{{"v":1,"host":"nas","seq":{seq},"ts":{},"ts_ms":{now},"interval_s":1,"failed_units":{units}}}"#,
        now / 1000
    )
}

#[test]
fn a_failed_unit_is_alerted_shown_and_resolved_when_it_is_no_longer_listed() {
    let (sdir, mdir, pdir) = (
        tempfile::tempdir().unwrap(),
        tempfile::tempdir().unwrap(),
        tempfile::tempdir().unwrap(),
    );
    let mosquitto = Mosquitto::start(mdir.path(), free_port(), "");
    let config =
        mosquitto.subscribe("homeassistant/binary_sensor/server_analytics_nas/unit_failed/config");
    let state = mosquitto.subscribe("server-analytics/nas/ha/state");
    let hook = alerts::Hook::start();
    let cfg = sdir.path().join("pi.toml");
    std::fs::write(
        &cfg,
        format!(
            "[homeassistant]\nenabled = true\n\n[alerts]\n{}\n\
             [alerts.builtin.filesystem_used]\nenabled = false\nwarning = 85.0\n",
            alerts::webhook(&hook.url)
        ),
    )
    .unwrap();
    let pi = Subscriber::start(
        sdir.path(),
        Some(mosquitto.port()),
        "",
        &["--config", &cfg.to_string_lossy(), "--max-age", "600"],
        &[],
    );
    let units = r#"[{"name":"backup.service","since_ms":1796526000000,"result":"exit-code"},{"name":"nas\"x.mount","since_ms":null,"result":null}]"#;
    // Retained: the Pi may not have subscribed yet (a non-retained first message raced its
    // subscription once in CI and was never delivered).
    mosquitto.publish("server-analytics/nas/snapshot", &snapshot(1, units), true);
    let m = pi.wait_for("/metrics?host=nas", |m| m["seq"] == 1);
    assert_eq!(m["failed_units"][0]["result"], "exit-code");
    let series = pi.json("/series?host=nas&metric=unit_failed&unit=backup.service");
    assert_eq!(series["series"][0]["points"][0][1], 1.0, "{series}");
    let total = pi.json("/series?host=nas&metric=unit_failed");
    let count = total["series"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["labels"].as_object().unwrap().is_empty())
        .unwrap();
    assert_eq!(
        count["points"][0][1], 2.0,
        "the host-wide value counts them"
    );
    let (_, text) = pi.get("/prometheus");
    for line in [
        r#"server_analytics_systemd_unit_failed{host="nas",unit="backup.service"} 1.0"#,
        r#"server_analytics_systemd_unit_failed{host="nas",unit="nas\"x.mount"} 1.0"#,
    ] {
        assert!(text.lines().any(|l| l == line), "no {line} in\n{text}");
    }
    hook.wait("unit_failed", "firing", Duration::from_secs(20));
    let labels: Vec<String> = pi.json("/alerts")["alerts"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|a| a["rule"] == "unit_failed")
        .map(|a| a["label"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(
        labels,
        ["backup.service", "nas\"x.mount"],
        "one per unit, none for the count"
    );

    // Home Assistant: a problem sensor, on, listing the units.
    let line = config.next(Duration::from_secs(20)).expect("no config");
    let c: Value = serde_json::from_str(line.split_once(' ').unwrap().1).unwrap();
    assert_eq!(c["device_class"], "problem");
    assert_eq!(
        c["json_attributes_template"],
        "{{ {'units': value_json.unit_failed_labels} | tojson if value_json is defined and value_json.unit_failed_labels is defined else '{}' }}"
    );
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let line = state.next(Duration::from_secs(1)).unwrap_or_default();
        if let Some((_, json)) = line.split_once(' ') {
            let v: Value = serde_json::from_str(json).unwrap_or(Value::Null);
            if v["unit_failed"] == 2 {
                assert_eq!(
                    v["unit_failed_labels"],
                    serde_json::json!(["backup.service", "nas\"x.mount"])
                );
                break;
            }
        }
        assert!(Instant::now() < deadline, "no units in HA's state");
    }

    // A real Prometheus scrapes the per-unit series.
    let target = pi.base.trim_start_matches("http://").to_owned();
    let (_prom, api) = start_prometheus(pdir.path(), &target);
    let deadline = Instant::now() + Duration::from_secs(60);
    while query(
        &api,
        "server_analytics_systemd_unit_failed{unit=\"backup.service\"}",
    )
    .is_empty()
    {
        assert!(Instant::now() < deadline, "Prometheus never had the unit");
        std::thread::sleep(Duration::from_millis(250));
    }

    // Reset: the next sample lists one unit; the other's alert resolves at once.
    let one = r#"[{"name":"nas\"x.mount","since_ms":null,"result":null}]"#;
    mosquitto.publish("server-analytics/nas/snapshot", &snapshot(2, one), false);
    hook.wait("unit_failed", "resolved", Duration::from_secs(20));
    let resolved: Vec<(String, String)> = hook
        .seen()
        .into_iter()
        .filter(|(r, s)| r == "unit_failed" && s == "resolved")
        .collect();
    assert_eq!(resolved.len(), 1, "{:?}", hook.seen());
}
