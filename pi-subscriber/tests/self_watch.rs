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

/// A publisher that names itself as the Pi's `[self]` host (both default to the machine's
/// name, so a publisher installed on the Pi does) is refused and counted: one host, one
/// source. Its seqs interleaved with the Pi's own would open holes that are not there, and
/// backfill the Pi's host from another stream.
#[test]
fn a_publisher_naming_the_pis_own_host_is_refused_and_nothing_false_is_said() {
    let (pdir, sdir) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let publisher = common::Publisher::start_with_env(
        pdir.path(),
        &["--interval", "200ms"],
        &[("PUBLISHER_HOST", "raspberrypi")],
    );
    let cfg = sdir.path().join("pi.toml");
    std::fs::write(
        &cfg,
        format!(
            "[self]\ninterval = \"300ms\"\nhost = \"raspberrypi\"\nunits = false\n\
             proc_root = {:?}\nsys_root = {:?}\n",
            common::fixture("rpi4").join("proc"),
            common::fixture("rpi5").join("sys"),
        ),
    )
    .unwrap();
    let pi = Subscriber::start(
        sdir.path(),
        publisher.mqtt_port,
        &publisher.url("/latest"),
        &["--config", &cfg.to_string_lossy()],
        &[("PI_SUBSCRIBER_SELF__ENABLED", "true")],
    );
    let health = pi.wait_for("/health", |h| {
        h["ingest"]["rejected"]["own_host"].as_u64() >= Some(5)
            && h["ingest"]["stored_local_total"].as_u64() >= Some(5)
    });
    assert_eq!(health["ingest"]["stored_mqtt_total"], 0, "{health}");
    assert_eq!(health["ingest"]["stored_http_total"], 0, "{health}");
    assert_eq!(health["history"]["holes_open"], 0, "{health}");
    assert_eq!(health["history"]["samples_lost_total"], 0, "{health}");
    // The Pi's own values, not the test machine's the publisher reads.
    let m = pi.json("/metrics?host=raspberrypi");
    assert_eq!(m["memory"]["total_mb"], 3791, "{m}");
    let metrics = pi.get("/prometheus").1;
    assert!(
        metrics.contains("reason=\"own_host\""),
        "the refusals counted by reason"
    );
}
