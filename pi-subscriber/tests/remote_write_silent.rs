//! Remote write while one server is cut off and another goes on (root: a network namespace,
//! a veth pair, iptables). `testhost` publishes by MQTT to a real mosquitto beside the Pi;
//! `nas` is polled over HTTP. `testhost` is cut off entirely while `nas` goes on being
//! forwarded to a real Prometheus, so the Pi's walks for `testhost`'s next samples find only
//! `nas`'s rows; then MQTT comes back while its HTTP is still cut (a hole it cannot fill yet),
//! then HTTP: the backfill stores `testhost`'s missing samples below where those walks went,
//! and every one of them must still reach Prometheus, in order, none refused.
#![allow(clippy::unwrap_used, clippy::expect_used)]

#[path = "../../publisher/tests/common/mod.rs"]
mod common;
mod support;

use std::time::{Duration, Instant};

use common::mosquitto::Mosquitto;
use common::Publisher;
use support::netns::{prometheus_holds_the_pis_cpu, seqs};
use support::receivers::{Kind, Receiver};

/// `/health`, whatever its status (503 while a host is down).
fn health(s: &common::Client) -> serde_json::Value {
    serde_json::from_str(&s.get("/health").1).unwrap()
}

fn sent(h: &serde_json::Value) -> u64 {
    h["remote_write"][0]["samples_sent_total"]
        .as_u64()
        .unwrap_or(0)
}

#[test]
fn a_server_cut_off_beside_another_is_sent_whole_once_its_backfill_comes() {
    if !Receiver::available() {
        return;
    }
    let Some(net) = support::netns::create_or_skip() else {
        return;
    };
    let dirs: Vec<tempfile::TempDir> = (0..5).map(|_| tempfile::tempdir().unwrap()).collect();
    let _broker = Mosquitto::start_in(dirs[0].path(), Some(&net.name), "", 1883, "");
    let prom = Receiver::start(
        Kind::Prometheus,
        dirs[1].path(),
        &format!("{}:{}", net.there, 9090),
        Some(&net.name),
    );
    let a = net.publisher_here(dirs[2].path());
    let a_http: u16 = a.base.rsplit(':').next().unwrap().parse().unwrap();
    let b = Publisher::start_with_env(
        dirs[3].path(),
        // Slower than the Pi polls (200 ms, and ~1.2 s while it also tries testhost's cut
        // endpoint), so that polling misses none of its samples: a missed one is a hole, and
        // remote write holds a host's stream at its holes.
        &[
            "--interval",
            "2s",
            "--broker-mode",
            "off",
            "--bind",
            &format!("{}:0", net.here),
        ],
        &[("PUBLISHER_HOST", "nas")],
    );
    let cfg = dirs[4].path().join("pi.toml");
    std::fs::write(
        &cfg,
        format!(
            "[poll]\nendpoints = [\"{}\", \"{}\"]\n\n[[remote_write]]\nname = \"prom\"\nurl = \"{}\"\nhold = \"60s\"\nmin_backoff = \"100ms\"\nmax_backoff = \"1s\"\n",
            a.url("/latest"),
            b.url("/latest"),
            prom.write_url()
        ),
    )
    .unwrap();
    let pi_dir = tempfile::tempdir().unwrap();
    let (pi, s) = net.pi_there_polling(
        pi_dir.path(),
        // nas, polled every ~2 s (slower while testhost's endpoint times out), stays fresh.
        &["--max-age", "10", "--config", cfg.to_str().unwrap()],
        // nas never speaks MQTT: polled once MQTT has been quiet about it for a second.
        &[("PI_SUBSCRIBER_POLL__FALLBACK_AFTER", "1s")],
    );
    s.wait_for("/health", |h| sent(h) >= 100);
    s.wait_for("/health", |_| {
        seqs(&s.json("/history?host=nas")).len() >= 3
            && seqs(&s.json("/history?host=testhost")).len() >= 10
    });

    // testhost cut off, MQTT and HTTP; nas goes on, and goes on being forwarded.
    net.cut_port(1883);
    net.cut_port(a_http);
    std::thread::sleep(Duration::from_secs(1));
    let before = sent(&health(&s));
    // Two of nas's samples (21 series each); `/health` says 503 meanwhile (testhost is down).
    let deadline = Instant::now() + Duration::from_secs(20);
    while sent(&health(&s)) < before + 40 {
        assert!(Instant::now() < deadline, "nas is not forwarded meanwhile");
        std::thread::sleep(Duration::from_millis(100));
    }
    // MQTT back, testhost's HTTP still cut: a hole the backfill cannot fill yet.
    net.heal();
    net.cut_port(a_http);
    s.wait_for_within("/health", Duration::from_secs(40), |h| {
        h["history"]["holes_open"].as_u64() >= Some(1)
            && h["history"]["holes_retried_total"].as_u64() >= Some(1)
    });
    net.heal();
    s.wait_for_within("/health", Duration::from_secs(60), |h| {
        h["history"]["holes_open"] == 0
            && h["remote_write"][0]["backlog_samples"].as_u64() < Some(3)
    });

    // Every sample the Pi holds of each host is in Prometheus, once, and none was refused.
    for (host, least) in [("testhost", 20), ("nas", 5)] {
        prometheus_holds_the_pis_cpu(&prom, &s, host, least);
    }
    let h = health(&s);
    assert_eq!(h["remote_write"][0]["samples_dropped_total"], 0, "{h}");
    assert_eq!(h["history"]["samples_lost_total"], 0, "{h}");
    assert!(
        h["history"]["holes_filled_total"].as_u64() >= Some(1),
        "{h}"
    );
    drop(pi);
}
