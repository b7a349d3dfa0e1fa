//! Holes filled while the failure is still happening (issue 18 A1), with real parts: the built
//! `publisher` and `pi-subscriber`, a real mosquitto, and real link cuts (a network namespace,
//! a veth pair, iptables) when run as root. MQTT and the publisher's HTTP are cut together,
//! MQTT comes back first (the gap shows, the backfill fails), HTTP later: once it is back no
//! sample is missing, none is said to be lost. Then the same with the Pi restarted while the
//! hole is open.
#![allow(clippy::unwrap_used, clippy::expect_used)]

#[path = "../../publisher/tests/common/mod.rs"]
mod common;
mod support;

use std::collections::BTreeSet;
use std::time::Duration;

use common::Client;
use support::netns::{seqs, Guard, Netns, Outage};

/// The Pi inside the namespace, subscribed to the broker there, polling the publisher here.
fn start_pi(net: &Netns, data: &std::path::Path, endpoint: &str) -> (Guard, Client) {
    net.pi_there(data, endpoint, &["--max-age", "3"])
}

fn history(c: &Client, path: &str) -> serde_json::Value {
    let (status, body) = c.get(path);
    assert_eq!(status, 200, "{path}: {body}");
    serde_json::from_str(&body).unwrap()
}

fn stored_mqtt(c: &Client) -> u64 {
    let (_, body) = c.get("/health");
    serde_json::from_str::<serde_json::Value>(&body)
        .ok()
        .and_then(|h| h["ingest"]["stored_mqtt_total"].as_u64())
        .unwrap_or(0)
}

fn cut_mqtt_and_http_then_heal_mqtt_first(restart_pi: bool) {
    let Some(o) = Outage::start_or_skip() else {
        return;
    };
    let (net, p, http_port, endpoint, sdir) =
        (&o.net, &o.publisher, o.http_port, &o.endpoint, &o.pi_dir);
    let (mut pi, mut s) = start_pi(net, sdir.path(), endpoint);
    p.wait_for("/health", |h| h["mqtt"]["connected"] == true);
    s.wait_for("/health", |h| {
        h["ingest"]["stored_mqtt_total"].as_u64() >= Some(3)
    });

    // Both cut: samples go on being taken on the server, none reaches the Pi.
    net.cut();
    p.wait_for("/health", |h| h["mqtt"]["connected"] == false);
    std::thread::sleep(Duration::from_secs(2));
    // MQTT back, HTTP still cut: the next live sample reveals the hole, its backfill fails.
    net.heal();
    net.cut_port(http_port);
    let before = stored_mqtt(&s);
    s.wait_for_within("/health", Duration::from_secs(40), |h| {
        h["ingest"]["stored_mqtt_total"].as_u64() > Some(before)
    });
    let open = s.wait_for_within("/health", Duration::from_secs(20), |h| {
        h["history"]["holes_open"].as_u64() >= Some(1)
            && h["history"]["holes_retried_total"].as_u64() >= Some(1)
    });
    assert_eq!(open["history"]["samples_lost_total"], 0, "{open}");
    if restart_pi {
        // The Pi restarts while the hole is open (and HTTP still cut).
        drop(pi);
        std::thread::sleep(Duration::from_secs(1));
        (pi, s) = start_pi(net, sdir.path(), endpoint);
        s.wait_for_within("/health", Duration::from_secs(40), |h| {
            h["ingest"]["stored_mqtt_total"].as_u64() >= Some(1)
                && h["history"]["holes_open"].as_u64() >= Some(1)
        });
        std::thread::sleep(Duration::from_secs(2));
    } else {
        std::thread::sleep(Duration::from_secs(3));
    }
    // HTTP back: every hole fills, nothing is said to be lost.
    net.heal();
    let health = s.wait_for_within("/health", Duration::from_secs(60), |h| {
        h["history"]["holes_open"] == 0 && h["history"]["holes_filled_total"].as_u64() >= Some(1)
    });
    assert_eq!(health["history"]["samples_lost_total"], 0, "{health}");
    // Every sample the publisher took between the Pi's first and newest is on the Pi.
    let pi_rows = history(&s, "/history?host=testhost");
    let have = seqs(&pi_rows);
    let (first, newest) = (*have.first().unwrap(), *have.last().unwrap());
    let page = history(p, &format!("/history?since_seq={}&limit=10000", first - 1));
    let want: BTreeSet<u64> = seqs(&page["snapshots"])
        .into_iter()
        .filter(|s| *s <= newest)
        .collect();
    let missing: Vec<_> = want.difference(&have).collect();
    assert!(missing.is_empty(), "missing on the Pi: {missing:?}");
    assert!(
        want.len() >= 20,
        "the test covered a real outage: {} samples",
        want.len()
    );
    drop(pi);
}

#[test]
fn a_backfill_that_fails_while_http_is_down_is_retried_until_the_hole_is_filled() {
    cut_mqtt_and_http_then_heal_mqtt_first(false);
}

#[test]
fn a_hole_open_across_a_pi_restart_is_still_filled() {
    cut_mqtt_and_http_then_heal_mqtt_first(true);
}
