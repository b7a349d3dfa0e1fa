//! The Home Assistant harness against a real Home Assistant (`scripts/homeassistant-venv.sh`)
//! and a real mosquitto: MQTT discovery by hand with `mosquitto_pub`, checked in `/api/states`.
//! It pins down what the Pi's discovery relies on: a key missing from the state JSON gives
//! `unknown` (not 0), availability `offline` gives `unavailable`, HA says `offline`/`online` on
//! `homeassistant/status`, a restarted HA rebuilds the entity from the retained config, an empty
//! retained config removes it. Then the whole pipeline: publisher → Pi → HA's mosquitto → HA.
#![allow(clippy::unwrap_used, clippy::expect_used)]

#[path = "../../publisher/tests/common/mod.rs"]
mod common;
mod support;

use std::time::{Duration, Instant};

use common::mosquitto::Mosquitto;
use common::Publisher;
use pi_subscriber::sanitize::mount_key;
use serde_json::{json, Value};
use support::ha_state::expected_state;
use support::homeassistant::HomeAssistant;
use support::Subscriber;

const WAIT: Duration = Duration::from_secs(20);

fn state_is(expected: &'static str) -> impl Fn(Option<&Value>) -> bool {
    move |s| s.is_some_and(|s| s["state"] == expected && s["attributes"].get("restored").is_none())
}

#[test]
fn discovery_by_hand_appears_goes_unknown_unavailable_survives_a_restart_and_is_removed() {
    let dir = tempfile::tempdir().unwrap();
    let mosquitto = Mosquitto::start(dir.path(), common::free_port(), "");
    let mut ha = HomeAssistant::start(mosquitto.port()).unwrap_or_else(|e| panic!("{e}"));

    let device = json!({"identifiers": ["smoke"], "name": "Smoke host"});
    let template = "{{ value_json.cpu_percent if value_json.cpu_percent is defined else 'None' }}";
    // No object_id: HA names it from the device and entity names.
    let cpu = json!({
        "name": "CPU", "unique_id": "smoke_cpu", "state_topic": "smoke/state",
        "availability_topic": "smoke/availability", "value_template": template,
        "unit_of_measurement": "%", "state_class": "measurement", "device": device,
    });
    // With object_id: HA takes it for the entity id.
    let load = json!({
        "name": "Load", "unique_id": "smoke_load", "object_id": "server_analytics_smoke_load",
        "state_topic": "smoke/state", "availability_topic": "smoke/availability",
        "value_template": "{{ value_json.load if value_json.load is defined else 'None' }}",
        "state_class": "measurement", "device": device,
    });
    mosquitto.publish("smoke/availability", "online", true);
    mosquitto.publish(
        "smoke/state",
        r#"{"cpu_percent": 12.5, "load": 0.75}"#,
        true,
    );
    let t = Instant::now();
    mosquitto.publish(
        "homeassistant/sensor/smoke/cpu/config",
        &cpu.to_string(),
        true,
    );
    mosquitto.publish(
        "homeassistant/sensor/smoke/load/config",
        &load.to_string(),
        true,
    );
    let state = ha
        .wait_state("sensor.smoke_host_cpu", WAIT, state_is("12.5"))
        .unwrap();
    eprintln!("[timing] discovered in {:?}", t.elapsed());
    assert_eq!(state["attributes"]["unit_of_measurement"], "%");
    assert_eq!(state["attributes"]["friendly_name"], "Smoke host CPU");
    assert_eq!(state["attributes"]["state_class"], "measurement");
    let load_state = ha.wait_state("sensor.server_analytics_smoke_load", WAIT, state_is("0.75"));
    assert_eq!(
        load_state.unwrap()["attributes"]["friendly_name"],
        "Smoke host Load"
    );

    // A state without the key: the template answers 'None', which HA shows as unknown.
    let t = Instant::now();
    mosquitto.publish("smoke/state", r#"{"load": 0.5}"#, true);
    ha.wait_state("sensor.server_analytics_smoke_load", WAIT, state_is("0.5"));
    assert_eq!(
        ha.state("sensor.smoke_host_cpu").unwrap()["state"],
        "unknown"
    );
    eprintln!("[timing] missing key shown as unknown in {:?}", t.elapsed());

    let t = Instant::now();
    mosquitto.publish("smoke/availability", "offline", true);
    ha.wait_state("sensor.smoke_host_cpu", WAIT, state_is("unavailable"));
    eprintln!("[timing] offline shown as unavailable in {:?}", t.elapsed());
    assert_eq!(
        ha.state("sensor.server_analytics_smoke_load").unwrap()["state"],
        "unavailable"
    );
    mosquitto.publish("smoke/availability", "online", true);
    mosquitto.publish("smoke/state", r#"{"cpu_percent": 30, "load": 1.25}"#, true);
    ha.wait_state("sensor.smoke_host_cpu", WAIT, state_is("30"));

    // Restarted, HA rebuilds the entity from the retained config and state (before that, the
    // entity registry shows it as restored and unavailable).
    // HA says `offline` on `homeassistant/status` when it stops and `online` (neither
    // retained) once it is connected again: the Pi's cue to publish its discovery again.
    let status = mosquitto.subscribe("homeassistant/status");
    let t = Instant::now();
    ha.stop().unwrap();
    eprintln!("[timing] HA stopped in {:?}", t.elapsed());
    assert_eq!(
        status.next(WAIT).as_deref(),
        Some("homeassistant/status offline")
    );
    let t = Instant::now();
    ha.start_again().unwrap();
    eprintln!("[timing] HA running again in {:?}", t.elapsed());
    assert_eq!(
        status.next(WAIT).as_deref(),
        Some("homeassistant/status online")
    );
    eprintln!(
        "[timing] HA online on MQTT {:?} after the start",
        t.elapsed()
    );
    ha.wait_state("sensor.smoke_host_cpu", WAIT, state_is("30"));
    ha.wait_state("sensor.server_analytics_smoke_load", WAIT, state_is("1.25"));
    eprintln!(
        "[timing] entities back in {:?} after the start",
        t.elapsed()
    );

    // An empty retained config removes the entity; the other one stays.
    let t = Instant::now();
    mosquitto.publish("homeassistant/sensor/smoke/cpu/config", "", true);
    ha.wait_state("sensor.smoke_host_cpu", WAIT, |s| s.is_none());
    eprintln!("[timing] removed in {:?}", t.elapsed());
    let states = ha.states();
    let ids: Vec<&str> = states
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|s| s["entity_id"].as_str())
        .filter(|id| id.starts_with("sensor."))
        .collect();
    assert_eq!(ids, ["sensor.server_analytics_smoke_load"]);
    // Every integration HA set up had its packages (the venv is complete).
    assert_eq!(ha.log_errors(), Vec::<String>::new());
}

/// A sensor's value, once HA has one (not unknown, unavailable, or restored from before a
/// restart).
fn value(ha: &HomeAssistant, entity: &str) -> f64 {
    let state = ha.wait_state(entity, WAIT, |s| {
        s.is_some_and(|s| {
            s["attributes"].get("restored").is_none()
                && s["state"]
                    .as_str()
                    .is_some_and(|v| v.parse::<f64>().is_ok())
        })
    });
    state.unwrap()["state"].as_str().unwrap().parse().unwrap()
}

#[test]
fn the_pis_hosts_appear_in_home_assistant_go_unavailable_when_dead_and_leave_when_forgotten() {
    let (pdir, sdir, mdir) = (
        tempfile::tempdir().unwrap(),
        tempfile::tempdir().unwrap(),
        tempfile::tempdir().unwrap(),
    );
    let mosquitto = Mosquitto::start(mdir.path(), common::free_port(), "");
    let mut ha = HomeAssistant::start(mosquitto.port()).unwrap_or_else(|e| panic!("{e}"));
    let (http, mqtt) = (common::free_port(), common::free_port());
    let cfg = sdir.path().join("pi.toml");
    std::fs::write(
        &cfg,
        format!(
            "[homeassistant]\nenabled = true\nhost = \"127.0.0.1\"\nport = {}\n",
            mosquitto.port()
        ),
    )
    .unwrap();
    let max_age = Duration::from_secs(3);
    let mut p = Publisher::on_ports(pdir.path(), "500ms", http, mqtt);
    let pi = Subscriber::start(
        sdir.path(),
        Some(mqtt),
        &format!("http://127.0.0.1:{http}/latest"),
        &["--max-age", "3", "--config", &cfg.to_string_lossy()],
        &[],
    );
    let m = pi.wait_for("/metrics", |m| !m["network"]["rx_bytes_rate"].is_null());
    let mount = m["filesystems"]
        .as_object()
        .and_then(|f| f.iter().find(|(_, fs)| !fs.is_null()))
        .map(|(mount, _)| mount.clone())
        .expect("the publisher reports a filesystem");
    let fs_key = format!("filesystem_used_percent_{}", mount_key(&mount));
    let cpu = "sensor.testhost_cpu_usage_percent";
    let rx = "sensor.testhost_network_rx_bytes_rate";
    let fs = format!("sensor.testhost_{fs_key}");
    let heartbeat = "binary_sensor.testhost_heartbeat";
    value(&ha, cpu);
    ha.wait_state(heartbeat, WAIT, state_is("on"));
    let device = ha.state(cpu).unwrap();
    assert_eq!(device["attributes"]["unit_of_measurement"], "%");
    assert_eq!(
        ha.state(rx).unwrap()["attributes"]["unit_of_measurement"],
        "B/s"
    );
    assert_eq!(
        ha.state(rx).unwrap()["attributes"]["device_class"],
        "data_rate"
    );

    // The server hangs (SIGSTOP): its last values stay in HA, equal to the Pi's, until the
    // Pi judges it stale; then its sensors are unavailable and its heartbeat off.
    p.signal("STOP");
    let hung = Instant::now();
    std::thread::sleep(Duration::from_millis(1200));
    let want = expected_state(&pi.json("/metrics"));
    for (entity, key) in [
        (cpu, "cpu_usage_percent"),
        (rx, "network_rx_bytes_rate"),
        (fs.as_str(), fs_key.as_str()),
    ] {
        let got = ha.wait_state(entity, WAIT, |s| {
            s.is_some_and(|s| {
                s["state"].as_str().and_then(|v| v.parse::<f64>().ok()) == want[key].as_f64()
            })
        });
        assert!(got.is_some(), "{entity}");
    }
    ha.wait_state(
        cpu,
        max_age + Duration::from_secs(2),
        state_is("unavailable"),
    );
    ha.wait_state(heartbeat, WAIT, state_is("off"));
    let took = hung.elapsed();
    assert!(
        took <= max_age + Duration::from_secs(2),
        "unavailable {took:?} after the server hung (max_age {max_age:?})"
    );
    eprintln!("[timing] unavailable in HA {took:?} after the server hung");

    // Restarted, it comes back by itself.
    p.signal("KILL");
    p.wait_exit(Duration::from_secs(5));
    let _p = Publisher::on_ports(pdir.path(), "500ms", http, mqtt);
    ha.wait_state(heartbeat, WAIT, state_is("on"));
    value(&ha, cpu);
    value(&ha, &fs);

    // HA restarts; the entities come back without touching the Pi.
    ha.restart().unwrap();
    value(&ha, cpu);
    value(&ha, rx);
    ha.wait_state(heartbeat, WAIT, state_is("on"));

    // The server is retired and forgotten: its entities leave HA.
    drop(_p);
    let forgot = reqwest::blocking::Client::new()
        .delete(pi.url("/hosts/testhost"))
        .send()
        .unwrap();
    assert_eq!(forgot.status(), 200);
    for entity in [cpu, rx, fs.as_str(), heartbeat] {
        ha.wait_state(entity, WAIT, |s| s.is_none());
    }
    assert_eq!(ha.log_errors(), Vec::<String>::new());
}
