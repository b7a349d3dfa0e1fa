//! The `problem` binary sensors in a real Home Assistant (from PyPI, on a real mosquitto): a
//! Raspberry Pi's under-voltage (the Pi watching itself, `[self]`, on the rpi5 fixture's weak
//! supply) and a server's failed systemd units (a snapshot published with `mosquitto_pub`),
//! whose names are the entity's `units` attribute. HA renders the Pi's templates without an
//! error, and a unit reset turns the sensor off.
#![allow(clippy::unwrap_used, clippy::expect_used)]

#[path = "../../publisher/tests/common/mod.rs"]
mod common;
mod support;

use std::time::Duration;

use common::mosquitto::Mosquitto;
use serde_json::{json, Value};
use support::homeassistant::HomeAssistant;
use support::Subscriber;

const WAIT: Duration = Duration::from_secs(30);

fn nas(seq: u64, units: &str) -> String {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64;
    format!(
        r#"{{"v":1,"host":"nas","seq":{seq},"ts":{},"ts_ms":{now},"interval_s":15,"failed_units":{units}}}"#,
        now / 1000
    )
}

fn on_with(expected: &'static str) -> impl Fn(Option<&Value>) -> bool {
    move |s| s.is_some_and(|s| s["state"] == expected)
}

#[test]
fn under_voltage_and_failed_units_are_problem_sensors_in_home_assistant() {
    let (dir, sdir) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let mosquitto = Mosquitto::start(dir.path(), common::free_port(), "");
    let ha = HomeAssistant::start(mosquitto.port()).unwrap_or_else(|e| panic!("{e}"));
    let cfg = sdir.path().join("pi.toml");
    std::fs::write(
        &cfg,
        format!(
            "[homeassistant]\nenabled = true\n\n[self]\ninterval = \"1s\"\nhost = \"rpi\"\n\
             units = false\nproc_root = {:?}\nsys_root = {:?}\n",
            common::fixture("rpi4").join("proc"),
            common::fixture("rpi5").join("sys"),
        ),
    )
    .unwrap();
    let _pi = Subscriber::start(
        sdir.path(),
        Some(mosquitto.port()),
        "",
        &["--config", &cfg.to_string_lossy(), "--max-age", "600"],
        &[("PI_SUBSCRIBER_SELF__ENABLED", "true")],
    );
    let uv = "binary_sensor.rpi_power_under_voltage";
    let s = ha.wait_state(uv, WAIT, on_with("on")).unwrap();
    assert_eq!(s["attributes"]["device_class"], "problem");
    assert_eq!(s["attributes"]["friendly_name"], "rpi Under-voltage");

    mosquitto.publish(
        "server-analytics/nas/snapshot",
        &nas(
            1,
            r#"[{"name":"backup.service","since_ms":1,"result":"exit-code"}]"#,
        ),
        false,
    );
    let units = "binary_sensor.nas_unit_failed";
    let s = ha.wait_state(units, WAIT, on_with("on")).unwrap();
    assert_eq!(s["attributes"]["units"], json!(["backup.service"]));
    // A server that is no Pi has no under-voltage entity.
    assert!(ha.state("binary_sensor.nas_power_under_voltage").is_none());
    mosquitto.publish("server-analytics/nas/snapshot", &nas(2, "[]"), false);
    let s = ha.wait_state(units, WAIT, on_with("off")).unwrap();
    assert_eq!(s["attributes"]["units"], json!([]));
    assert_eq!(ha.log_errors(), Vec::<String>::new());
}
