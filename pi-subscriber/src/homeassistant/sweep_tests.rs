//! The leftover sweep: what an earlier run of this Pi left on the broker goes, and nothing
//! the hosts still have.

use serde_json::json;

use super::tests::host_wide;
use super::tests::{ctx, host, input, topics, tower};
use super::tracker::Tracker;
use crate::store::HostState;

fn ours() -> String {
    json!({"availability": [{"topic": "server-analytics/pi/pi-subscriber-pi-0123/availability"}]})
        .to_string()
}

/// What an earlier run of this Pi left on the broker goes at the sweep: a host it no longer
/// knows (configs, state, availability), a mount gone since; another Pi's configs and
/// anything else stay.
#[test]
fn the_sweep_removes_what_an_earlier_run_left_and_nothing_else() {
    let mut t = Tracker::new(ctx());
    let ours = ours();
    let theirs = json!({"availability": [{"topic": "server-analytics/pi/other-pi/availability"}]})
        .to_string();
    let ghost = "homeassistant/sensor/server_analytics_ghost/cpu_usage_percent/config";
    let old_mount =
        "homeassistant/sensor/server_analytics_tower/filesystem_used_percent_old/config";
    let cpu = "homeassistant/sensor/server_analytics_tower/cpu_usage_percent/config";
    let other_pi = "homeassistant/sensor/server_analytics_elsewhere/cpu_usage_percent/config";
    let zigbee = "homeassistant/sensor/0x00158d/temperature/config";
    for (topic, payload) in [
        (ghost, ours.as_str()),
        (old_mount, ours.as_str()),
        (cpu, ours.as_str()),
        (other_pi, theirs.as_str()),
        (zigbee, ours.as_str()),
        (
            "homeassistant/sensor/server_analytics_bad host/x/config",
            ours.as_str(),
        ),
        (
            "homeassistant/sensor/server_analytics_tower/x/config",
            "not json",
        ),
        ("homeassistant/sensor/server_analytics_tower/y/config", ""),
        (
            &format!(
                "homeassistant/sensor/server_analytics_ghost/{}/config",
                "k".repeat(97)
            ),
            ours.as_str(),
        ),
        (
            "homeassistant/light/server_analytics_ghost/lamp/config",
            ours.as_str(),
        ),
        (
            "homeassistant/sensor/server_analytics_ghost/Upper/config",
            ours.as_str(),
        ),
    ] {
        t.found_config(topic, payload.as_bytes());
    }
    let tower = host(None, tower(1, 0, 0));
    assert_eq!(
        t.tick(&[input("tower", &tower, false)]).len(),
        host_wide() + 3 + 2
    );
    let swept = t.sweep();
    assert_eq!(
        topics(&swept),
        [
            (ghost, ""),
            ("server-analytics/ghost/ha/state", ""),
            ("server-analytics/ghost/ha/availability", ""),
            (old_mount, ""),
        ]
    );
    assert_eq!(t.stats.leftovers_removed_total, 2);
    assert_eq!(t.sweep(), []);
}

/// Issue 18 item 12: a host merely offline at the Pi's start is known from its history only,
/// without mounts on record: its filesystem entities stay until its first sample tells which
/// mounts it has; then only those gone since are removed.
#[test]
fn the_sweep_keeps_the_filesystems_of_a_host_offline_at_start_until_its_mounts_are_known() {
    let mut t = Tracker::new(ctx());
    let config = |key: &str| format!("homeassistant/sensor/server_analytics_tower/{key}/config");
    let (root, data, old, alerts) = (
        config("filesystem_used_percent_root"),
        config("filesystem_used_percent_mnt_data"),
        config("filesystem_used_percent_old"),
        config("alerts_firing"),
    );
    for topic in [&root, &data, &old, &config("cpu_usage_percent"), &alerts] {
        t.found_config(topic, ours().as_bytes());
    }
    let offline = HostState {
        samples: 40,
        ..HostState::default()
    };
    assert_eq!(
        t.tick(&[input("tower", &offline, true)]).len(),
        host_wide() + 2
    );
    // Only what no mount list can bring back (`alerts_firing` with alerts off).
    assert_eq!(topics(&t.sweep()), [(alerts.as_str(), "")]);
    assert_eq!(t.tick(&[input("tower", &offline, true)]), []);
    // Back, with `/`, `/mnt/data` and `/mnt/nas`: `old` goes, once.
    let back = host(None, tower(1, 0, 0));
    let told = t.tick(&[input("tower", &back, false)]);
    let removed: Vec<(&str, &str)> = topics(&told)
        .into_iter()
        .filter(|(_, p)| p.is_empty())
        .collect();
    assert_eq!(removed, [(old.as_str(), "")]);
    // Its mounts are announced (again: HA keeps the same entities).
    let announced: Vec<&str> = topics(&told)
        .into_iter()
        .filter(|(t, p)| t.contains("filesystem_used_percent") && !p.is_empty())
        .map(|(t, _)| t)
        .collect();
    assert_eq!(
        announced,
        [
            root.as_str(),
            data.as_str(),
            &config("filesystem_used_percent_mnt_nas")
        ]
    );
    assert_eq!(t.stats.leftovers_removed_total, 2);
    assert_eq!(t.tick(&[input("tower", &back, false)]), []);
}

/// A host forgotten while its filesystem leftovers wait for its mounts: they go with it.
#[test]
fn a_forgotten_host_takes_its_waiting_leftovers_with_it() {
    let mut t = Tracker::new(ctx());
    let old = "homeassistant/sensor/server_analytics_tower/filesystem_used_percent_old/config";
    t.found_config(old, ours().as_bytes());
    let offline = HostState {
        samples: 40,
        ..HostState::default()
    };
    t.tick(&[input("tower", &offline, true)]);
    assert_eq!(t.sweep(), []);
    let gone = t.tick(&[]);
    assert!(topics(&gone).contains(&(old, "")), "{gone:?}");
    assert_eq!(
        topics(&gone).iter().filter(|(_, p)| p.is_empty()).count(),
        host_wide() + 1 + 2
    );
    assert_eq!(t.stats.leftovers_removed_total, 1);
}
