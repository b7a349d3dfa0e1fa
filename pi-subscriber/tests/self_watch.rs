//! Issue 20 item 4: the Pi watches itself. The built Pi, with `[self]` on a fixture tree (a
//! Raspberry Pi 4's `/proc`, a Pi 5's `/sys` on a weak supply) and no broker at all, stores
//! its own machine as one more host: its values are the fixture's, the built-in
//! `under_voltage` alert fires for it, and after a restart its seq carries on with no hole.
#![allow(clippy::unwrap_used, clippy::expect_used)]

#[path = "support/alerts.rs"]
mod alerts;
#[path = "../../publisher/tests/common/mod.rs"]
mod common;
mod support;

use std::time::Duration;

use support::Subscriber;

fn start(dir: &std::path::Path, cfg: &std::path::Path) -> Subscriber {
    Subscriber::start(
        dir,
        None,
        "",
        &["--config", &cfg.to_string_lossy()],
        &[("PI_SUBSCRIBER_SELF__ENABLED", "true")],
    )
}

#[test]
fn the_pi_is_one_more_host_with_its_own_values_and_alerts() {
    let sdir = tempfile::tempdir().unwrap();
    let hook = alerts::Hook::start();
    let cfg = sdir.path().join("pi.toml");
    let rpi4 = common::fixture("rpi4");
    let rpi5 = common::fixture("rpi5");
    std::fs::write(
        &cfg,
        format!(
            "[self]\ninterval = \"300ms\"\nhost = \"raspberrypi\"\nunits = false\n\
             proc_root = {:?}\nsys_root = {:?}\n\n[alerts]\n{}\n\
             [alerts.builtin.filesystem_used]\nenabled = false\nwarning = 85.0\n",
            rpi4.join("proc"),
            rpi5.join("sys"),
            alerts::webhook(&hook.url)
        ),
    )
    .unwrap();
    let pi = start(sdir.path(), &cfg);
    let m = pi.wait_for("/metrics?host=raspberrypi", |m| {
        m["seq"].as_u64() >= Some(3)
    });
    // The rpi4 fixture's figures (publisher/tests/fixtures/rpi4/EXPECTED.md).
    assert_eq!(m["memory"]["total_mb"], 3791);
    assert_eq!(m["memory"]["available_mb"], 3030);
    assert_eq!(m["cpu"]["load_1m"], 0.31);
    assert_eq!(m["uptime_s"], 1043127.41);
    assert_eq!(m["power"]["under_voltage_alarm"], true);
    assert_eq!(m["interval_s"], 0.3);
    let hosts = pi.json("/hosts");
    assert_eq!(hosts.as_array().unwrap().len(), 1, "{hosts}");
    assert_eq!(hosts[0]["host"], "raspberrypi");
    let series = pi.json("/series?host=raspberrypi&metric=memory_available_mb");
    let last = series["series"][0]["points"]
        .as_array()
        .unwrap()
        .last()
        .unwrap()
        .clone();
    assert_eq!(last[1], 3030.0);
    // The same alerts as any host.
    hook.wait("under_voltage", "firing", Duration::from_secs(20));
    let health = pi.json("/health");
    assert!(
        health["ingest"]["stored_local_total"].as_u64().unwrap() >= 3,
        "{health}"
    );

    // A restart: the seq carries on from the stored one, no hole to fill.
    let before = pi.json("/metrics?host=raspberrypi")["seq"]
        .as_u64()
        .unwrap();
    pi.stop();
    let pi = start(sdir.path(), &cfg);
    let m = pi.wait_for("/metrics?host=raspberrypi", |m| {
        m["seq"].as_u64() > Some(before + 2)
    });
    assert!(m["seq"].as_u64().unwrap() > before);
    let health = pi.json("/health");
    assert_eq!(health["history"]["holes_open"], 0, "{health}");
    assert_eq!(health["history"]["samples_lost_total"], 0, "{health}");
}
