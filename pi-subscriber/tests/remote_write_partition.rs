//! Remote write while the Pi is filling a hole (root: a network namespace, a veth pair,
//! iptables). The publisher is cut off, then MQTT comes back while its HTTP is still cut: live
//! samples arrive past a hole the backfill cannot fill yet. The Pi holds that host's stream at
//! the hole; once HTTP is back the hole fills and everything goes out in time order, so a real
//! Prometheus without an out-of-order window takes every sample and refuses none.
#![allow(clippy::unwrap_used, clippy::expect_used)]

#[path = "../../publisher/tests/common/mod.rs"]
mod common;
mod support;

use std::time::Duration;

use common::mosquitto::Mosquitto;
use support::netns::prometheus_holds_the_pis_cpu;
use support::receivers::{Kind, Receiver};

#[test]
fn a_partitioned_publisher_is_sent_in_order_once_its_hole_fills() {
    if !Receiver::available() {
        return;
    }
    let Some(net) = support::netns::create_or_skip() else {
        return;
    };
    let (pdir, sdir, mdir, rdir) = (
        tempfile::tempdir().unwrap(),
        tempfile::tempdir().unwrap(),
        tempfile::tempdir().unwrap(),
        tempfile::tempdir().unwrap(),
    );
    let _broker = Mosquitto::start_in(mdir.path(), Some(&net.name), "", 1883, "");
    // The receiver is beside the Pi: the cuts are between the Pi and the publisher.
    let prom = Receiver::start(
        Kind::Prometheus,
        rdir.path(),
        &format!("{}:{}", net.there, 9090),
        Some(&net.name),
    );
    let cfg = sdir.path().join("pi.toml");
    std::fs::write(
        &cfg,
        format!(
            "[[remote_write]]\nname = \"prom\"\nurl = \"{}\"\nhold = \"60s\"\nmin_backoff = \"100ms\"\nmax_backoff = \"1s\"\n",
            prom.write_url()
        ),
    )
    .unwrap();
    let p = net.publisher_here(pdir.path());
    let http_port: u16 = p.base.rsplit(':').next().unwrap().parse().unwrap();
    let (pi, s) = net.pi_there(
        sdir.path(),
        &p.url("/latest"),
        &["--max-age", "3", "--config", cfg.to_str().unwrap()],
    );
    p.wait_for("/health", |h| h["mqtt"]["connected"] == true);
    s.wait_for("/health", |h| {
        h["remote_write"][0]["samples_sent_total"].as_u64() >= Some(100)
    });

    net.cut();
    std::thread::sleep(Duration::from_secs(2));
    // MQTT back, HTTP still cut: live samples past a hole the backfill cannot fill.
    net.heal();
    net.cut_port(http_port);
    s.wait_for_within("/health", Duration::from_secs(40), |h| {
        h["history"]["holes_open"].as_u64() >= Some(1)
            && h["history"]["holes_retried_total"].as_u64() >= Some(1)
    });
    std::thread::sleep(Duration::from_secs(2));
    let held = s.json("/health");
    assert!(
        held["remote_write"][0]["backlog_samples"].as_u64() >= Some(5),
        "the stream waits at the hole: {held}"
    );
    net.heal();
    s.wait_for_within("/health", Duration::from_secs(60), |h| {
        h["history"]["holes_open"] == 0
            && h["remote_write"][0]["backlog_samples"].as_u64() < Some(3)
    });

    // Every sample the Pi holds is in Prometheus, once, and none was refused.
    prometheus_holds_the_pis_cpu(&prom, &s, "testhost", 20);
    let h = s.json("/health");
    assert_eq!(h["remote_write"][0]["samples_dropped_total"], 0, "{h}");
    assert_eq!(h["history"]["samples_lost_total"], 0, "{h}");
    drop(pi);
}
