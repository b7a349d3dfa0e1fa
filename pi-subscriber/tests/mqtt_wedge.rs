//! Nothing wedges the Pi's MQTT clients (issue 18, items 7 and 8): the built `pi-subscriber`,
//! a real mosquitto as both its broker and Home Assistant's, and `mosquitto_pub` feeding it
//! snapshots of ten hosts, a burst of HA `online` messages and oversized retained messages.
#![allow(clippy::unwrap_used, clippy::expect_used)]

#[path = "../../publisher/tests/common/mod.rs"]
mod common;
mod support;

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::time::{Duration, Instant};

use common::free_port;
use common::mosquitto::Mosquitto;
use serde_json::Value;
use support::mqtt_tools::{burst, installed, one, publish, Feeder};
use support::Subscriber;

/// `/health`, 200 or 503 (no host yet, a stale host).
fn health(s: &Subscriber) -> Value {
    serde_json::from_str(&s.get("/health").1).unwrap()
}

/// Polls `/health` until `check` accepts it (for up to `within`).
fn wait_health(s: &Subscriber, within: Duration, what: &str, check: impl Fn(&Value) -> bool) {
    let deadline = Instant::now() + within;
    loop {
        let h = health(s);
        if check(&h) {
            return;
        }
        assert!(Instant::now() < deadline, "timed out: {what}: {h}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// A Pi whose consumer and Home Assistant client both use the mosquitto on `port`.
fn pi(dir: &Path, port: u16, extra: &str) -> Subscriber {
    let cfg = dir.join("pi.toml");
    std::fs::write(
        &cfg,
        format!(
            "[mqtt]\nclient_id = \"pi-test\"\n{extra}\n[homeassistant]\nenabled = true\n\
             host = \"127.0.0.1\"\nport = {port}\n"
        ),
    )
    .unwrap();
    Subscriber::start(
        dir,
        Some(port),
        "http://127.0.0.1:9/latest",
        &["--max-age", "5", "--config", &cfg.to_string_lossy()],
        &[],
    )
}

/// Every host's `ha/state` as it arrives on `sub`, for `window`: host → distinct payloads.
fn states(
    sub: &common::mosquitto::Subscription,
    window: Duration,
) -> BTreeMap<String, BTreeSet<String>> {
    let mut got: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    let end = Instant::now() + window;
    while let Some(left) = end.checked_duration_since(Instant::now()) {
        let Some(line) = sub.next(left) else { break };
        let Some((topic, payload)) = line.split_once(' ') else {
            continue;
        };
        if let Some(host) = topic
            .strip_prefix("server-analytics/")
            .and_then(|t| t.strip_suffix("/ha/state"))
        {
            got.entry(host.to_owned())
                .or_default()
                .insert(payload.to_owned());
        }
    }
    got
}

/// Issue 18 item 7: ten hosts sampling every second (a resend is ~200 messages), the Pi's own
/// configs echoed back during the leftover sweep, then 100 `online` on HA's status topic at
/// once: every host's state keeps updating, and `/health` tells the truth.
#[test]
fn a_burst_of_ha_online_messages_never_stops_the_states() {
    if !installed("mosquitto_sub") || !installed("mosquitto") {
        eprintln!("skipped: mosquitto and mosquitto-clients are not installed (Debian packages mosquitto, mosquitto-clients)");
        return;
    }
    let (sdir, mdir) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let port = free_port();
    let mosquitto = Mosquitto::start(mdir.path(), port, "");
    let hosts: Vec<String> = (0..10).map(|i| format!("host{i}")).collect();
    let _feeder = Feeder::start(port, &hosts, 4, Duration::from_secs(1));
    let s = pi(sdir.path(), port, "");
    wait_health(&s, Duration::from_secs(20), "10 hosts told", |h| {
        h["homeassistant"]["hosts"] == 10
    });
    // Past the leftover sweep (2 × max_age after connecting): every state is retained.
    std::thread::sleep(Duration::from_secs(10));
    for host in &hosts {
        let state = one(port, &format!("server-analytics/{host}/ha/state"));
        assert!(
            state.is_some_and(|s| s.contains("cpu_usage_percent")),
            "{host}: no state; /health: {}",
            health(&s)
        );
    }

    burst(port, "homeassistant/status", "online", 100);
    let sub = mosquitto.subscribe("server-analytics/+/ha/state");
    let got = states(&sub, Duration::from_secs(15));
    let h = health(&s);
    for host in &hosts {
        let n = got.get(host).map_or(0, BTreeSet::len);
        // A new state a second; a few are enough to tell it flows.
        assert!(
            n >= 5,
            "{host}: {n} states in 15 s after the burst; /health: {h}"
        );
    }
    wait_health(&s, Duration::from_secs(10), "every online counted", |h| {
        h["homeassistant"]["ha_online_total"] == 100
    });
    let h = health(&s)["homeassistant"].clone();
    eprintln!("after the burst: {h}");
    assert_eq!(h["connected"], true, "{h}");
    assert_eq!(h["connects_total"], 1, "{h}");
    // Coalesced: one resend at the connect, one at the first `online` of the burst, and at
    // most one more 5 s later for the rest of it.
    assert!(matches!(h["resends_total"].as_u64(), Some(2 | 3)), "{h}");
}

/// Issue 18 item 8: retained messages larger than the clients' old packet limits (1 MiB for
/// the consumer, 64 KiB for Home Assistant's) on topics they subscribe to: both stay
/// connected (rumqttc used to drop the connection on every reconnect, forever), ingest goes
/// on, states go on, and what is too large is ignored and counted.
#[test]
fn an_oversized_retained_message_never_disconnects_the_pi() {
    if !installed("mosquitto_sub") || !installed("mosquitto") {
        eprintln!("skipped: mosquitto and mosquitto-clients are not installed (Debian packages mosquitto, mosquitto-clients)");
        return;
    }
    let (sdir, mdir) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let port = free_port();
    let _mosquitto = Mosquitto::start(mdir.path(), port, "");
    let (snapshot, config) = (mdir.path().join("snapshot"), mdir.path().join("config"));
    std::fs::write(&snapshot, vec![b'x'; 2 << 20]).unwrap();
    std::fs::write(&config, vec![b'{'; 200 << 10]).unwrap();
    let retain = |topic: &str, file: &Path| {
        publish(
            port,
            topic,
            &["-r", "-q", "1", "-f", &file.to_string_lossy()],
        );
    };
    retain("server-analytics/big/snapshot", &snapshot);
    retain(
        "homeassistant/sensor/server_analytics_big/big/config",
        &config,
    );
    retain("homeassistant/status", &config);
    let hosts: Vec<String> = (0..2).map(|i| format!("host{i}")).collect();
    let _feeder = Feeder::start(port, &hosts, 1, Duration::from_secs(1));
    let s = pi(sdir.path(), port, "");
    wait_health(&s, Duration::from_secs(20), "both hosts told", |h| {
        h["homeassistant"]["hosts"] == 2
            && h["homeassistant"]["published_total"].as_u64() > Some(40)
    });
    let before = health(&s)["ingest"]["stored_mqtt_total"].as_u64().unwrap();
    std::thread::sleep(Duration::from_secs(4));
    let h = health(&s);
    let status = std::fs::read_to_string(format!("/proc/{}/status", s.child.id())).unwrap();
    let peak = status
        .lines()
        .find(|l| l.starts_with("VmHWM"))
        .unwrap_or("");
    eprintln!("{h}\npi-subscriber {peak}");
    assert!(
        h["ingest"]["stored_mqtt_total"].as_u64().unwrap() >= before + 4,
        "{h}"
    );
    for host in &hosts {
        let state = one(port, &format!("server-analytics/{host}/ha/state"));
        assert!(
            state.is_some_and(|s| s.contains("cpu_usage_percent")),
            "{host}: {h}"
        );
    }
    for client in ["mqtt", "homeassistant"] {
        assert_eq!(h[client]["connects_total"], 1, "{client}: {h}");
        assert_eq!(h[client]["connect_errors_total"], 0, "{client}: {h}");
        assert_eq!(h[client]["connected"], true, "{client}: {h}");
    }
    assert_eq!(h["ingest"]["rejected"]["too_large"], 1, "{h}");
    assert_eq!(h["homeassistant"]["ignored_total"], 1, "{h}");
    assert_eq!(h["homeassistant"]["too_large_total"], 1, "{h}");
}
