#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeMap;
use std::sync::Arc;

use broker::{Cpu, Disk, Filesystem, JobEnd, Memory, Network, Snapshot, Thermal};
use serde_json::{json, Value};

use super::discovery::{Context, MAX_FILESYSTEMS};
use super::tracker::{HostInput, Message, Tracker};
use crate::store::HostState;

pub(super) fn ctx() -> Context {
    Context {
        discovery_prefix: "homeassistant".into(),
        topic_prefix: "server-analytics".into(),
        pi_id: "pi-subscriber-pi-0123".into(),
        version: "test".into(),
        alerts: false,
    }
}

fn fs(used: u64, avail: u64) -> Option<Filesystem> {
    Some(Filesystem {
        device: "sda1".into(),
        fstype: "ext4".into(),
        size_bytes: used + avail,
        used_bytes: used,
        avail_bytes: avail,
        files: 10,
        files_free: 5,
    })
}

/// The tower of the registry's tests, 15 s apart; `rx`/`read` are its counters.
pub(super) fn tower(seq: u64, read: u64, rx: u64) -> Snapshot {
    Snapshot {
        host: "tower".into(),
        seq,
        ts_ms: 1_700_000_000_000 + seq as i64 * 15_000,
        boot_id: Some("b1".into()),
        uptime_s: Some(86_400.4 + seq as f64 * 15.0),
        cpu: Some(Cpu {
            usage_percent: Some(45.234_567),
            load_1m: Some(1.25),
            load_5m: Some(0.5),
            ..Cpu::default()
        }),
        memory: Some(Memory {
            available_mb: 4096,
            total_mb: 16384,
            ..Memory::default()
        }),
        thermal: Thermal {
            cpu_temp_c: Some(65.56),
            ..Thermal::default()
        },
        disk: Some(Disk {
            read_sectors: read,
            write_sectors: 100,
            ..Disk::default()
        }),
        network: Some(Network {
            rx_bytes: rx,
            tx_bytes: 1000,
            ..Network::default()
        }),
        filesystems: Some(
            [
                ("/".to_string(), fs(300, 500)),
                ("/mnt/data".to_string(), fs(1, 3)),
                ("/mnt/nas".to_string(), None),
            ]
            .into(),
        ),
        ..Snapshot::default()
    }
}

/// A host's state as the store leaves it: the rates computed at ingest beside the samples.
pub(super) fn host(prev: Option<Snapshot>, latest: Snapshot) -> HostState {
    HostState {
        samples: 2,
        rates: prev
            .as_ref()
            .and_then(|p| crate::rates::between(p, &latest))
            .map(Arc::new),
        previous: prev.map(Arc::new),
        latest: Some(Arc::new(latest)),
        ..HostState::default()
    }
}

fn parse(configs: &[(String, String)], topic: &str) -> Value {
    let (_, payload) = configs.iter().find(|(t, _)| t == topic).unwrap();
    serde_json::from_str(payload).unwrap()
}

const AVAILABILITY: &str = "server-analytics/tower/ha/availability";
const PI: &str = "server-analytics/pi/pi-subscriber-pi-0123/availability";

fn device() -> Value {
    json!({"identifiers": ["server_analytics_tower"], "name": "tower",
           "manufacturer": "Server Analytics", "model": "publisher"})
}

#[test]
fn the_configs_of_a_host_are_exact() {
    let (mounts, over) = super::state::mounts(&host(None, tower(1, 0, 0)));
    assert_eq!(over, 0);
    let configs = ctx().configs("tower", &mounts, &Default::default());
    let topics: Vec<&str> = configs.iter().map(|(t, _)| t.as_str()).collect();
    let p = "homeassistant/sensor/server_analytics_tower";
    assert_eq!(
        topics,
        [
            "homeassistant/binary_sensor/server_analytics_tower/heartbeat/config".to_string(),
            format!("{p}/cpu_usage_percent/config"),
            format!("{p}/load_1m/config"),
            format!("{p}/load_5m/config"),
            format!("{p}/load_15m/config"),
            format!("{p}/memory_used_percent/config"),
            format!("{p}/cpu_temp_c/config"),
            format!("{p}/disk_read_bytes_rate/config"),
            format!("{p}/disk_write_bytes_rate/config"),
            format!("{p}/network_rx_bytes_rate/config"),
            format!("{p}/network_tx_bytes_rate/config"),
            format!("{p}/disk_busy_percent/config"),
            format!("{p}/disk_await_ms/config"),
            format!("{p}/booted_at/config"),
            format!("{p}/last_job/config"),
            format!("{p}/filesystem_used_percent_root/config"),
            format!("{p}/filesystem_used_percent_mnt_data/config"),
            format!("{p}/filesystem_used_percent_mnt_nas/config"),
        ]
    );
    assert_eq!(
        parse(&configs, &format!("{p}/cpu_usage_percent/config")),
        json!({
            "name": "CPU usage",
            "object_id": "tower_cpu_usage_percent",
            "unique_id": "server_analytics_tower_cpu_usage_percent",
            "state_topic": "server-analytics/tower/ha/state",
            "value_template": "{{ value_json.cpu_usage_percent if value_json is defined and value_json.cpu_usage_percent is defined else 'None' }}",
            "availability": [{"topic": PI}, {"topic": AVAILABILITY}],
            "availability_mode": "all",
            "state_class": "measurement",
            "unit_of_measurement": "%",
            "suggested_display_precision": 1,
            "icon": "mdi:cpu-64-bit",
            "device": device(),
            "origin": {"name": "Server Analytics", "sw": "test"},
        })
    );
    assert_eq!(
        parse(&configs, &format!("{p}/network_rx_bytes_rate/config")),
        json!({
            "name": "Network received",
            "object_id": "tower_network_rx_bytes_rate",
            "unique_id": "server_analytics_tower_network_rx_bytes_rate",
            "state_topic": "server-analytics/tower/ha/state",
            "value_template": "{{ value_json.network_rx_bytes_rate if value_json is defined and value_json.network_rx_bytes_rate is defined else 'None' }}",
            "availability": [{"topic": PI}, {"topic": AVAILABILITY}],
            "availability_mode": "all",
            "device_class": "data_rate",
            "state_class": "measurement",
            "unit_of_measurement": "B/s",
            "suggested_display_precision": 0,
            "icon": "mdi:download-network",
            "device": device(),
            "origin": {"name": "Server Analytics", "sw": "test"},
        })
    );
    let data = parse(
        &configs,
        &format!("{p}/filesystem_used_percent_mnt_data/config"),
    );
    assert_eq!(data["name"], "Filesystem used /mnt/data");
    assert_eq!(
        data["unique_id"],
        "server_analytics_tower_filesystem_used_percent_mnt_data"
    );
    assert_eq!(data["value_template"], "{{ value_json.filesystem_used_percent_mnt_data if value_json is defined and value_json.filesystem_used_percent_mnt_data is defined else 'None' }}");
    assert_eq!(
        parse(
            &configs,
            "homeassistant/binary_sensor/server_analytics_tower/heartbeat/config"
        ),
        json!({
            "name": "Heartbeat",
            "object_id": "tower_heartbeat",
            "unique_id": "server_analytics_tower_heartbeat",
            "state_topic": AVAILABILITY,
            "payload_on": "online",
            "payload_off": "offline",
            "device_class": "connectivity",
            "availability": [{"topic": PI}],
            "device": device(),
            "origin": {"name": "Server Analytics", "sw": "test"},
        })
    );
    let booted = parse(&configs, &format!("{p}/booted_at/config"));
    assert_eq!(
        (&booted["device_class"], booted.get("state_class")),
        (&json!("timestamp"), None)
    );
    let job = parse(&configs, &format!("{p}/last_job/config"));
    assert_eq!(job["options"], json!(["success", "failed"]));
    assert_eq!(job["device_class"], "enum");
    // With alerts, one more sensor.
    let with_alerts = Context {
        alerts: true,
        ..ctx()
    }
    .configs("tower", &mounts, &Default::default());
    assert_eq!(with_alerts.len(), configs.len() + 1);
    assert_eq!(
        parse(&with_alerts, &format!("{p}/alerts_firing/config"))["name"],
        "Alerts firing"
    );
}

#[test]
fn the_state_is_the_pis_values_rounded_and_a_missing_one_is_absent() {
    let (mounts, _) = super::state::mounts(&host(None, tower(1, 0, 0)));
    // 15 s apart: 30 sectors (15 360 bytes) read and 15 000 bytes received.
    let h = host(Some(tower(1, 0, 0)), tower(2, 30, 15_000));
    let job = JobEnd {
        name: "backup".into(),
        host: "tower".into(),
        end_ts_ms: 1_700_000_060_000,
        duration_s: 12.34,
        exit_code: Some(1),
        ..JobEnd::default()
    };
    let state = Value::Object(super::state::state(&h, &mounts, Some(&job), Some(0)));
    assert_eq!(
        state,
        json!({
            "cpu_usage_percent": 45.23,
            "load_1m": 1.25,
            "load_5m": 0.5,
            "memory_used_percent": 75.0,
            "cpu_temp_c": 65.6,
            "disk_read_bytes_rate": 1024,
            "disk_write_bytes_rate": 0,
            "network_rx_bytes_rate": 1000,
            "network_tx_bytes_rate": 0,
            "filesystem_used_percent_root": 37.5,
            "filesystem_used_percent_mnt_data": 25.0,
            "booted_at": "2023-11-13T22:13:00Z",
            "last_job": "failed",
            "last_job_detail": {"name": "backup", "exit_code": 1, "duration_s": 12.3,
                                "ended_at": "2023-11-14T22:14:20Z"},
            "alerts_firing": 0,
        })
    );
    // One sample: no rates (absent, not 0); no load_15m, no timed-out /mnt/nas.
    let first = Value::Object(super::state::state(
        &host(None, tower(1, 0, 0)),
        &mounts,
        None,
        None,
    ));
    for absent in [
        "disk_read_bytes_rate",
        "network_rx_bytes_rate",
        "load_15m",
        "filesystem_used_percent_mnt_nas",
        "last_job",
        "alerts_firing",
    ] {
        assert!(first.get(absent).is_none(), "{absent}: {first}");
    }
    // A reboot between the samples: no rate.
    let mut rebooted = tower(2, 30, 15_000);
    rebooted.boot_id = Some("b2".into());
    let r = Value::Object(super::state::state(
        &host(Some(tower(1, 0, 0)), rebooted),
        &mounts,
        None,
        None,
    ));
    assert!(r.get("disk_read_bytes_rate").is_none(), "{r}");
}

pub(super) fn input<'a>(name: &'a str, state: &'a HostState, stale: bool) -> HostInput<'a> {
    HostInput {
        name,
        state,
        stale,
        last_job: None,
        alerts_firing: None,
    }
}

pub(super) fn topics(m: &[Message]) -> Vec<(&str, &str)> {
    m.iter()
        .map(|m| {
            assert!(m.retain, "{m:?}");
            (m.topic.as_str(), m.payload.as_str())
        })
        .collect()
}

#[test]
fn the_tracker_announces_once_then_sends_only_what_changed_and_removes_a_forgotten_host() {
    let mut t = Tracker::new(ctx());
    let one = host(None, tower(1, 0, 0));
    let first = t.tick(&[input("tower", &one, false)]);
    assert_eq!(first.len(), host_wide() + 3 + 2, "{first:?}");
    let last_two: Vec<_> = topics(&first[host_wide() + 3..])
        .into_iter()
        .map(|(t, _)| t)
        .collect();
    assert_eq!(last_two, [AVAILABILITY, "server-analytics/tower/ha/state"]);
    assert_eq!(first[host_wide() + 3].payload, "online");
    assert_eq!(t.stats.hosts_announced_total, 1);
    // Nothing new: nothing sent.
    assert_eq!(t.tick(&[input("tower", &one, false)]), []);
    // A new sample: its state only.
    let two = host(Some(tower(1, 0, 0)), tower(2, 30, 15_000));
    let sent = t.tick(&[input("tower", &two, false)]);
    assert_eq!(sent.len(), 1);
    assert_eq!(sent[0].topic, "server-analytics/tower/ha/state");
    // Stale: offline, once.
    assert_eq!(
        topics(&t.tick(&[input("tower", &two, true)])),
        [(AVAILABILITY, "offline")]
    );
    assert_eq!(t.tick(&[input("tower", &two, true)]), []);
    // A new mount: its config, then the state that holds it.
    let mut three = tower(3, 60, 30_000);
    three
        .filesystems
        .as_mut()
        .unwrap()
        .insert("/srv".into(), fs(1, 1));
    let three = host(Some(tower(2, 30, 15_000)), three);
    let sent = t.tick(&[input("tower", &three, true)]);
    let sent = topics(&sent);
    assert_eq!(
        sent[0].0,
        "homeassistant/sensor/server_analytics_tower/filesystem_used_percent_srv/config"
    );
    assert_eq!(sent.len(), 2);
    // HA came back: everything again, availability and state included.
    t.resend_all();
    assert_eq!(
        t.tick(&[input("tower", &three, true)]).len(),
        host_wide() + 4 + 2
    );
    // Forgotten: an empty retained message on each of its 17 configs, its state and its
    // availability.
    let gone = t.tick(&[]);
    assert_eq!(gone.len(), host_wide() + 4 + 2);
    assert!(gone.iter().all(|m| m.payload.is_empty() && m.retain));
    assert!(gone
        .iter()
        .any(|m| m.topic == "homeassistant/binary_sensor/server_analytics_tower/heartbeat/config"));
    assert_eq!((t.stats.hosts, t.stats.hosts_removed_total), (0, 1));
    assert_eq!(t.tick(&[]), []);
}

#[test]
fn mounts_are_capped_and_counted_and_a_status_only_host_is_not_announced() {
    let mut s = tower(1, 0, 0);
    s.filesystems = Some(
        (0..MAX_FILESYSTEMS + 5)
            .map(|i| (format!("/m/{i:03}"), fs(1, 1)))
            .collect::<BTreeMap<_, _>>(),
    );
    let h = host(None, s);
    let mut t = Tracker::new(ctx());
    let sent = t.tick(&[input("tower", &h, false)]);
    assert_eq!(sent.len(), host_wide() + MAX_FILESYSTEMS + 2);
    assert_eq!(t.stats.filesystems_over_cap, 5);
    let ghost = HostState {
        status: Some("online".into()),
        ..HostState::default()
    };
    let mut t = Tracker::new(ctx());
    assert_eq!(t.tick(&[input("ghost", &ghost, true)]), []);
    assert_eq!(t.tick(&[input("bad/host", &h, false)]), []);
}

/// The configs of a host without mounts, with alerts off and no Raspberry Pi power section:
/// the heartbeat and every sensor but `alerts_firing` and the power `problem` sensor (one per
/// registry entry with Home Assistant hints, `booted_at`, `last_job`).
pub(super) fn host_wide() -> usize {
    let binary = super::discovery::SENSORS
        .iter()
        .filter(|s| s.binary)
        .count();
    1 + super::discovery::SENSORS.len() - 1 - binary
}

#[test]
fn a_raspberry_pi_gets_an_under_voltage_problem_sensor_once_it_reports_power() {
    let mut t = Tracker::new(ctx());
    let plain = host(None, tower(1, 0, 0));
    let first = t.tick(&[input("tower", &plain, false)]);
    let topic = "homeassistant/binary_sensor/server_analytics_tower/power_under_voltage/config";
    assert!(!topics(&first).iter().any(|(t, _)| *t == topic), "not a Pi");

    let mut pi = tower(2, 0, 0);
    pi.power = Some(broker::Power {
        under_voltage_alarm: Some(true),
        throttled: Some(0x50005),
    });
    let pi = host(None, pi);
    let sent = t.tick(&[input("tower", &pi, false)]);
    let config = sent
        .iter()
        .find(|m| m.topic == topic)
        .expect("announced on the first sample with power");
    let c: Value = serde_json::from_str(&config.payload).unwrap();
    assert_eq!(c["device_class"], "problem");
    assert_eq!(c["name"], "Under-voltage");
    assert_eq!(
        c["value_template"],
        "{{ ('ON' if value_json.power_under_voltage > 0 else 'OFF') if value_json is defined and value_json.power_under_voltage is defined else 'None' }}"
    );
    assert!(c.get("state_class").is_none() && c.get("unit_of_measurement").is_none());
    let state = sent
        .iter()
        .find(|m| m.topic == "server-analytics/tower/ha/state")
        .unwrap();
    let state: Value = serde_json::from_str(&state.payload).unwrap();
    assert_eq!(state["power_under_voltage"], 1);
    // Kept once announced, even when a later sample lacks the section.
    let again = host(None, tower(3, 0, 0));
    let next = t.tick(&[input("tower", &again, false)]);
    assert!(!next
        .iter()
        .any(|m| m.topic == topic && m.payload.is_empty()));
}
