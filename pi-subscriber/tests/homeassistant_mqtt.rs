//! Home Assistant discovery with real parts: the built `publisher` and `pi-subscriber`, a real
//! mosquitto as HA's broker, and `mosquitto_sub`/`mosquitto_pub` in HA's place.
#![allow(clippy::unwrap_used, clippy::expect_used)]

#[path = "../../publisher/tests/common/mod.rs"]
mod common;
mod support;

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use common::mosquitto::Mosquitto;
use common::{free_port, Publisher};
use pi_subscriber::sanitize::mount_key;
use serde_json::Value;
use support::ha_state::expected_state;
use support::mqtt_tools::{installed, one, publish, retained, wait_retained, Feeder};
use support::Subscriber;

const HOST: &str = "testhost";
const STATE: &str = "server-analytics/testhost/ha/state";
const AVAILABILITY: &str = "server-analytics/testhost/ha/availability";

/// `/health`, 200 or 503 (a stale host).
fn health(s: &Subscriber) -> Value {
    serde_json::from_str(&s.get("/health").1).unwrap()
}

#[test]
fn every_host_is_announced_to_home_assistant_and_a_dead_one_shows_as_dead() {
    if !installed("mosquitto_sub") || !installed("mosquitto") {
        eprintln!("skipped: mosquitto and mosquitto-clients are not installed (Debian packages mosquitto, mosquitto-clients)");
        return;
    }
    let (pdir, sdir, mdir) = (
        tempfile::tempdir().unwrap(),
        tempfile::tempdir().unwrap(),
        tempfile::tempdir().unwrap(),
    );
    let (http, mqtt, ha) = (free_port(), free_port(), free_port());
    let _mosquitto = Mosquitto::start(mdir.path(), ha, "");
    let cfg = sdir.path().join("pi.toml");
    std::fs::write(
        &cfg,
        format!("[mqtt]\nclient_id = \"pi-test\"\n\n[homeassistant]\nenabled = true\nhost = \"127.0.0.1\"\nport = {ha}\n"),
    )
    .unwrap();
    let mut p = Publisher::on_ports(pdir.path(), "500ms", http, mqtt);
    let s = Subscriber::start(
        sdir.path(),
        Some(mqtt),
        &format!("http://127.0.0.1:{http}/latest"),
        &["--max-age", "2", "--config", &cfg.to_string_lossy()],
        &[("PI_SUBSCRIBER_POLL__INTERVAL", "200ms")],
    );
    let m = s.wait_for("/metrics", |m| {
        m["seq"].as_u64() >= Some(3) && !m["network"]["rx_bytes_rate"].is_null()
    });
    s.wait_for("/health", |h| h["homeassistant"]["hosts"] == 1);
    std::thread::sleep(Duration::from_millis(1500));

    // Every config is retained: the heartbeat, 15 sensors, one per filesystem.
    let configs = retained(ha, "homeassistant/#");
    let node = format!("server_analytics_{HOST}");
    let mut want: Vec<String> = [
        "cpu_usage_percent",
        "load_1m",
        "load_5m",
        "load_15m",
        "memory_used_percent",
        "cpu_temp_c",
        "disk_read_bytes_rate",
        "disk_write_bytes_rate",
        "network_rx_bytes_rate",
        "network_tx_bytes_rate",
        "disk_busy_percent",
        "disk_await_ms",
        "booted_at",
        "last_job",
        "alerts_firing",
    ]
    .iter()
    .map(|k| format!("homeassistant/sensor/{node}/{k}/config"))
    .collect();
    want.push(format!(
        "homeassistant/binary_sensor/{node}/heartbeat/config"
    ));
    for mount in m["filesystems"]
        .as_object()
        .into_iter()
        .flatten()
        .map(|(k, _)| k)
    {
        want.push(format!(
            "homeassistant/sensor/{node}/filesystem_used_percent_{}/config",
            mount_key(mount)
        ));
    }
    want.sort();
    let got: Vec<String> = configs.keys().cloned().collect();
    assert_eq!(got, want);
    let cpu_topic = format!("homeassistant/sensor/{node}/cpu_usage_percent/config");
    let cpu: Value = serde_json::from_str(&configs[&cpu_topic]).unwrap();
    assert_eq!(
        cpu["unique_id"],
        "server_analytics_testhost_cpu_usage_percent"
    );
    assert_eq!(cpu["state_topic"], STATE);
    assert_eq!(
        cpu["availability"],
        serde_json::json!([{"topic": "server-analytics/pi/pi-test/availability"}, {"topic": AVAILABILITY}])
    );
    assert_eq!(
        one(ha, "server-analytics/pi/pi-test/availability").as_deref(),
        Some("online")
    );
    assert_eq!(one(ha, AVAILABILITY).as_deref(), Some("online"));

    // The publisher dies: its last sample is the state, and it goes offline within
    // max_age + 2 s.
    p.signal("KILL");
    p.wait_exit(Duration::from_secs(5));
    let killed = Instant::now();
    let took = wait_retained(ha, AVAILABILITY, Some("offline"), Duration::from_secs(4));
    let m = s.json("/metrics");
    let state: BTreeMap<String, Value> = serde_json::from_str(&one(ha, STATE).unwrap()).unwrap();
    let values: BTreeMap<String, Value> = state
        .iter()
        .filter(|(k, _)| *k != "booted_at" && *k != "alerts_firing")
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    assert_eq!(values, expected_state(&m));
    assert!(
        state["booted_at"].as_str().unwrap().ends_with(":00Z"),
        "{state:?}"
    );
    // Alerts are on by default (host_down may fire right now): a count, 0 included.
    assert!(state["alerts_firing"].is_u64(), "{state:?}");
    eprintln!(
        "offline {:?} after the kill ({took:?} of polling)",
        killed.elapsed()
    );

    // Back: online again.
    let _p = Publisher::on_ports(pdir.path(), "500ms", http, mqtt);
    wait_retained(ha, AVAILABILITY, Some("online"), Duration::from_secs(20));

    // HA restarts: a config cleared on its broker comes back after its `online`.
    publish(ha, &cpu_topic, &["-r", "-n"]);
    assert_eq!(one(ha, &cpu_topic), None);
    publish(ha, "homeassistant/status", &["-m", "online"]);
    wait_retained(
        ha,
        &cpu_topic,
        Some(&configs[&cpu_topic]),
        Duration::from_secs(10),
    );
    assert_eq!(health(&s)["homeassistant"]["ha_online_total"], 1);

    // Forgotten: every config, the state and the availability are cleared.
    drop(_p);
    let forgot = reqwest::blocking::Client::new()
        .delete(s.url(&format!("/hosts/{HOST}")))
        .send()
        .unwrap();
    assert_eq!(forgot.status(), 200);
    let start = Instant::now();
    while !retained(ha, "homeassistant/#").is_empty() {
        assert!(start.elapsed() < Duration::from_secs(10), "configs left");
    }
    assert_eq!(one(ha, STATE), None);
    assert_eq!(one(ha, AVAILABILITY), None);
    assert_eq!(health(&s)["homeassistant"]["hosts_removed_total"], 1);

    // The Pi stops: its own availability turns offline.
    s.stop();
    assert_eq!(
        one(ha, "server-analytics/pi/pi-test/availability").as_deref(),
        Some("offline")
    );
}

#[test]
fn without_a_host_the_configs_stay_retained_on_the_publishers_embedded_broker() {
    if !installed("mosquitto_sub") {
        eprintln!("skipped: mosquitto_sub is not installed (Debian package mosquitto-clients)");
        return;
    }
    let (pdir, sdir) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let (http, mqtt) = (free_port(), free_port());
    let cfg = sdir.path().join("pi.toml");
    std::fs::write(
        &cfg,
        "[mqtt]\nclient_id = \"pi-test\"\n\n[homeassistant]\nenabled = true\n",
    )
    .unwrap();
    let _p = Publisher::on_ports(pdir.path(), "500ms", http, mqtt);
    let s = Subscriber::start(
        sdir.path(),
        Some(mqtt),
        &format!("http://127.0.0.1:{http}/latest"),
        &["--max-age", "2", "--config", &cfg.to_string_lossy()],
        &[],
    );
    s.wait_for("/health", |h| {
        h["homeassistant"]["published_total"].as_u64() >= Some(16)
    });
    // The retained-store guard sweeps what its filters do not keep; give it a sweep.
    std::thread::sleep(Duration::from_secs(2));
    let topic = format!("homeassistant/binary_sensor/server_analytics_{HOST}/heartbeat/config");
    assert!(one(mqtt, &topic).is_some_and(|c| c.contains("connectivity")));
    assert_eq!(one(mqtt, AVAILABILITY).as_deref(), Some("online"));
    assert!(one(mqtt, STATE).is_some_and(|s| s.contains("cpu_usage_percent")));
    assert_eq!(
        one(mqtt, "server-analytics/pi/pi-test/availability").as_deref(),
        Some("online")
    );
}

/// A host forgotten while the Pi was down (or an earlier Pi's mount gone since) left retained
/// configs of this Pi on HA's broker: a restarted Pi removes them once its hosts are told,
/// and leaves another Pi's alone.
#[test]
fn a_restarted_pi_removes_the_configs_an_earlier_run_left_and_only_those() {
    if !installed("mosquitto_sub") || !installed("mosquitto") {
        eprintln!("skipped: mosquitto and mosquitto-clients are not installed (Debian packages mosquitto, mosquitto-clients)");
        return;
    }
    let (sdir, mdir) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let ha = free_port();
    let _mosquitto = Mosquitto::start(mdir.path(), ha, "");
    let config = |pi: &str| {
        serde_json::json!({"name": "CPU", "state_topic": "server-analytics/ghost/ha/state",
            "availability": [{"topic": format!("server-analytics/pi/{pi}/availability")}]})
        .to_string()
    };
    let ghost = "homeassistant/sensor/server_analytics_ghost/cpu_usage_percent/config";
    let elsewhere = "homeassistant/sensor/server_analytics_elsewhere/cpu_usage_percent/config";
    publish(ha, ghost, &["-r", "-m", &config("pi-test")]);
    publish(ha, elsewhere, &["-r", "-m", &config("other-pi")]);
    publish(
        ha,
        "server-analytics/ghost/ha/availability",
        &["-r", "-m", "offline"],
    );
    let cfg = sdir.path().join("pi.toml");
    std::fs::write(
        &cfg,
        format!("[mqtt]\nclient_id = \"pi-test\"\n\n[homeassistant]\nenabled = true\nhost = \"127.0.0.1\"\nport = {ha}\n"),
    )
    .unwrap();
    let s = Subscriber::start(
        sdir.path(),
        None,
        "http://127.0.0.1:9/latest",
        &["--max-age", "2", "--config", &cfg.to_string_lossy()],
        &[],
    );
    // (`/health` is 503 here: the Pi knows no host.)
    let start = Instant::now();
    while health(&s)["homeassistant"]["connected"] != true {
        assert!(start.elapsed() < Duration::from_secs(10), "not connected");
        std::thread::sleep(Duration::from_millis(50));
    }
    // Swept 2 × max_age (at least 5 s) after connecting.
    wait_retained(ha, ghost, None, Duration::from_secs(10));
    assert_eq!(one(ha, "server-analytics/ghost/ha/availability"), None);
    assert_eq!(one(ha, elsewhere), Some(config("other-pi")));
    assert_eq!(health(&s)["homeassistant"]["leftovers_removed_total"], 1);
}

/// Issue 18 item 12: a host merely offline when the Pi restarts is known from its history
/// only, with no mounts on record: the sweep keeps its filesystem entities, and removes only
/// the one gone since, once the host's first sample tells its mounts.
#[test]
fn the_sweep_keeps_the_filesystems_of_a_host_offline_at_the_pis_start() {
    if !installed("mosquitto_sub") || !installed("mosquitto") {
        eprintln!("skipped: mosquitto and mosquitto-clients are not installed (Debian packages mosquitto, mosquitto-clients)");
        return;
    }
    let (sdir, mdir) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let ha = free_port();
    let _mosquitto = Mosquitto::start(mdir.path(), ha, "");
    let cfg = sdir.path().join("pi.toml");
    std::fs::write(
        &cfg,
        format!("[mqtt]\nclient_id = \"pi-test\"\n\n[homeassistant]\nenabled = true\nhost = \"127.0.0.1\"\nport = {ha}\n"),
    )
    .unwrap();
    let start = || {
        let args = ["--max-age", "2", "--config", &cfg.to_string_lossy()];
        Subscriber::start(
            sdir.path(),
            Some(ha),
            "http://127.0.0.1:9/latest",
            &args,
            &[],
        )
    };
    let config = |key: &str| format!("homeassistant/sensor/server_analytics_tower/{key}/config");
    let mounts = [
        config("filesystem_used_percent_mnt_d0"),
        config("filesystem_used_percent_mnt_d1"),
    ];
    let tower = ["tower".to_owned()];
    let feeder = Feeder::start(ha, &tower, 2, Duration::from_millis(500));
    let s = start();
    let start_wait = Instant::now();
    while !mounts.iter().all(|m| one(ha, m).is_some()) {
        assert!(
            start_wait.elapsed() < Duration::from_secs(20),
            "{:?}",
            retained(ha, "homeassistant/#")
        );
    }
    drop(feeder);
    s.stop();
    // A mount that went away while the Pi was down.
    let gone = config("filesystem_used_percent_mnt_gone");
    let ours = one(ha, &mounts[0]).unwrap().replace("mnt_d0", "mnt_gone");
    publish(ha, &gone, &["-r", "-m", &ours]);

    // The Pi restarts; tower is silent. Swept 2 × max_age (at least 5 s) after connecting.
    let s = start();
    let connected = Instant::now();
    while health(&s)["homeassistant"]["connected"] != true {
        assert!(
            connected.elapsed() < Duration::from_secs(10),
            "not connected"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    std::thread::sleep(Duration::from_secs(7));
    for m in mounts.iter().chain([&gone]) {
        assert!(one(ha, m).is_some(), "{m} removed while tower was offline");
    }
    assert_eq!(health(&s)["homeassistant"]["leftovers_removed_total"], 0);
    // tower is back with its two mounts: only the gone one is removed.
    let _feeder = Feeder::start(ha, &tower, 2, Duration::from_millis(500));
    wait_retained(ha, &gone, None, Duration::from_secs(20));
    for m in &mounts {
        assert!(one(ha, m).is_some(), "{m}");
    }
    assert_eq!(health(&s)["homeassistant"]["leftovers_removed_total"], 1);
}
