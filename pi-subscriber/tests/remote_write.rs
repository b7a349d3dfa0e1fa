//! Remote write with real receivers started by the test: a real Prometheus (remote-write
//! receiver, no out-of-order window) and a real VictoriaMetrics, fed by the built Pi from a
//! real publisher. Exact values (a gauge's raw samples, a counter's `irate` equal to the Pi's
//! rate); both receivers down while samples flow and the Pi restarted during it, then back:
//! nothing missing, nothing twice, nothing refused.
#![allow(clippy::unwrap_used, clippy::expect_used)]

#[path = "../../publisher/tests/common/mod.rs"]
mod common;
mod support;

use std::path::Path;
use std::time::{Duration, Instant};

use common::{free_ports, Publisher};
use serde_json::Value;
use support::receivers::{Kind, Receiver};
use support::Subscriber;

const CPU: &str = r#"server_analytics_cpu_usage_ratio{host="testhost",job="server-analytics"}"#;

/// A Pi config sending to `receivers` (named `prom` and `vm`).
fn config(dir: &Path, receivers: &[&Receiver]) -> String {
    let mut text = String::new();
    for r in receivers {
        let name = match r.kind {
            Kind::Prometheus => "prom",
            Kind::Victoria => "vm",
        };
        text.push_str(&format!(
            "[[remote_write]]\nname = \"{name}\"\nurl = \"{}\"\nmin_backoff = \"100ms\"\nmax_backoff = \"1s\"\n\n",
            r.write_url()
        ));
    }
    let path = dir.join("pi.toml");
    std::fs::write(&path, text).unwrap();
    path.to_string_lossy().into_owned()
}

fn start_pi(dir: &Path, p: &Publisher, config: &str) -> Subscriber {
    Subscriber::start(
        dir,
        p.mqtt_port,
        &p.url("/latest"),
        &["--config", config, "--max-age", "600"],
        &[("PI_SUBSCRIBER_POLL__INTERVAL", "200ms")],
    )
}

/// The Pi's raw points of a metric (`extra`: a label selector), non-null, ascending.
fn pi_points(s: &Subscriber, metric: &str, extra: &str) -> Vec<(i64, f64)> {
    let from = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64
        - 600_000;
    let v = s.json(&format!(
        "/series?host=testhost&metric={metric}{extra}&from={from}"
    ));
    assert_eq!(v["tier"], "raw", "{v}");
    v["series"][0]["points"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|p| Some((p[0].as_i64()?, p[1].as_f64()?)))
        .collect()
}

/// Waits until the receiver holds a sample at every time the Pi has up to `upto`.
fn wait_for_all(r: &Receiver, s: &Subscriber, upto: i64) -> (Vec<i64>, Vec<(i64, f64)>) {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let want: Vec<i64> = pi_points(s, "cpu_usage_percent", "")
            .into_iter()
            .map(|p| p.0)
            .filter(|t| *t <= upto)
            .collect();
        let got = r.raw(CPU);
        let have: Vec<i64> = got.iter().map(|p| p.0).filter(|t| *t <= upto).collect();
        if have == want {
            return (want, got);
        }
        assert!(
            Instant::now() < deadline,
            "{:?} never held the Pi's samples: want {} ({:?}…), have {} ({:?}…)",
            r.kind,
            want.len(),
            want.first(),
            have.len(),
            have.first()
        );
        std::thread::sleep(Duration::from_millis(300));
    }
}

fn newest(s: &Subscriber) -> i64 {
    pi_points(s, "cpu_usage_percent", "").last().unwrap().0
}

fn health_remote(s: &Subscriber, name: &str) -> Value {
    let h = s.json("/health");
    h["remote_write"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["name"] == name)
        .cloned()
        .unwrap_or_else(|| panic!("no remote {name} in {h}"))
}

#[test]
fn both_receivers_hold_exactly_the_pis_samples_and_rates() {
    if !Receiver::available() {
        return;
    }
    let (pdir, sdir, rdir) = (
        tempfile::tempdir().unwrap(),
        tempfile::tempdir().unwrap(),
        tempfile::tempdir().unwrap(),
    );
    let [pp, vp] = free_ports::<2>();
    let prom = Receiver::start(
        Kind::Prometheus,
        &rdir.path().join("p"),
        &format!("127.0.0.1:{pp}"),
        None,
    );
    let vm = Receiver::start(
        Kind::Victoria,
        &rdir.path().join("v"),
        &format!("127.0.0.1:{vp}"),
        None,
    );
    let p = Publisher::start(pdir.path(), &["--interval", "200ms"]);
    let s = start_pi(sdir.path(), &p, &config(sdir.path(), &[&prom, &vm]));
    s.wait_for("/metrics", |m| m["seq"].as_u64() >= Some(15));
    let upto = newest(&s);
    let pi = pi_points(&s, "cpu_usage_percent", "");
    for r in [&prom, &vm] {
        let (_, got) = wait_for_all(r, &s, upto);
        // The gauge: the Pi's raw values, in the family's unit (a ratio).
        for ((t, v), (rt, rv)) in pi.iter().filter(|p| p.0 <= upto).zip(&got) {
            assert_eq!(t, rt);
            assert!(
                (v / 100.0 - rv).abs() < 1e-12,
                "{:?} at {t}: {rv} vs {v} %",
                r.kind
            );
        }
    }
    // A counter: irate() at a sample's time is the Pi's rate for that sample.
    let m = s.json("/metrics?host=testhost");
    let iface = m["network"]["interfaces"]
        .as_object()
        .unwrap()
        .keys()
        .next()
        .unwrap()
        .clone();
    let rates = pi_points(&s, "network_rx_bytes_rate", &format!("&interface={iface}"));
    let q = format!(
        r#"irate(server_analytics_network_receive_bytes_total{{host="testhost",device="{iface}"}}[1m])"#
    );
    let mut checked = 0;
    for (t, rate) in rates.iter().rev().filter(|p| p.0 <= upto).take(5) {
        for r in [&prom, &vm] {
            let got = r
                .instant(&q, *t)
                .unwrap_or_else(|| panic!("{:?}: no irate at {t}", r.kind));
            assert!(
                (got - rate).abs() <= 1e-9 * rate.abs().max(1.0),
                "{:?} at {t}: irate {got} vs the Pi's {rate}",
                r.kind
            );
            checked += 1;
        }
    }
    assert_eq!(checked, 10);
    // The shipped PromQL dashboard: every query answers in both receivers, the CPU panel with
    // the Pi's own value.
    let dash: Value = serde_json::from_str(
        &std::fs::read_to_string(
            Path::new(env!("CARGO_MANIFEST_DIR"))
                .join("../configs/grafana/dashboards/server-analytics-promql.json"),
        )
        .unwrap(),
    )
    .unwrap();
    let no_temp = m["thermal"]["cpu_temp_c"].is_null();
    let (t, cpu) = *pi.iter().rev().find(|p| p.0 <= upto).unwrap();
    let mut queried = 0;
    for panel in dash["panels"].as_array().unwrap() {
        for target in panel["targets"].as_array().unwrap() {
            let e = target["expr"].as_str().unwrap();
            if no_temp && e.contains("temperature") {
                continue;
            }
            let q = e
                .replace("$host", "testhost")
                .replace("$__rate_interval", "1m");
            for r in [&prom, &vm] {
                let v = r.instant(&q, t);
                assert!(
                    v.is_some(),
                    "{:?}: no answer to the dashboard's {q}",
                    r.kind
                );
                // Prometheus answers an instant query with the newest sample at or before the
                // time; VictoriaMetrics' instant queries are a rollup over a window (its raw
                // values are checked above, through its export API).
                if r.kind == Kind::Prometheus && q.starts_with("server_analytics_cpu_usage_ratio") {
                    assert!(
                        (v.unwrap() - cpu).abs() < 1e-9,
                        "{:?} {q}: {v:?} vs {cpu}",
                        r.kind
                    );
                }
                queried += 1;
            }
        }
    }
    assert!(queried >= 16, "{queried} queries");
    for name in ["prom", "vm"] {
        let h = health_remote(&s, name);
        assert_eq!(h["samples_dropped_total"], 0, "{h}");
        assert!(h["samples_sent_total"].as_u64() > Some(100), "{h}");
    }
    let scrape = s.get("/prometheus").1;
    assert!(
        scrape.contains(r#"server_analytics_remote_write_samples_dropped_total{remote="prom"} 0"#),
        "{scrape}"
    );
}

#[test]
fn receivers_down_and_the_pi_restarted_meanwhile_lose_nothing_and_duplicate_nothing() {
    if !Receiver::available() {
        return;
    }
    let (pdir, sdir, rdir) = (
        tempfile::tempdir().unwrap(),
        tempfile::tempdir().unwrap(),
        tempfile::tempdir().unwrap(),
    );
    let [pp, vp] = free_ports::<2>();
    let mut prom = Receiver::start(
        Kind::Prometheus,
        &rdir.path().join("p"),
        &format!("127.0.0.1:{pp}"),
        None,
    );
    let mut vm = Receiver::start(
        Kind::Victoria,
        &rdir.path().join("v"),
        &format!("127.0.0.1:{vp}"),
        None,
    );
    let p = Publisher::start(pdir.path(), &["--interval", "200ms"]);
    let cfg = config(sdir.path(), &[&prom, &vm]);
    let s = start_pi(sdir.path(), &p, &cfg);
    s.wait_for("/metrics", |m| m["seq"].as_u64() >= Some(5));
    wait_for_all(&prom, &s, newest(&s));

    // Both receivers down while samples flow; the Pi restarts in the middle of it.
    prom.stop();
    vm.stop();
    let before = s.json("/metrics")["seq"].as_u64().unwrap();
    s.wait_for("/metrics", |m| m["seq"].as_u64() >= Some(before + 10));
    let behind = health_remote(&s, "prom");
    assert!(
        behind["batches_retried_total"].as_u64() >= Some(1),
        "{behind}"
    );
    s.stop();
    std::thread::sleep(Duration::from_secs(1));
    let s = start_pi(sdir.path(), &p, &cfg);
    let again = p.json("/latest")["seq"].as_u64().unwrap();
    s.wait_for("/metrics", |m| m["seq"].as_u64() >= Some(again + 10));
    let h = health_remote(&s, "vm");
    assert!(
        h["backlog_samples"].as_u64() > Some(0),
        "a backlog while down: {h}"
    );

    prom.restart();
    vm.restart();
    let upto = newest(&s);
    for r in [&prom, &vm] {
        let (want, got) = wait_for_all(r, &s, upto);
        let times: Vec<i64> = got.iter().map(|p| p.0).filter(|t| *t <= upto).collect();
        assert_eq!(times, want, "{:?}: every sample once", r.kind);
        assert!(
            want.len() >= 25,
            "the outage covered samples: {}",
            want.len()
        );
    }
    for name in ["prom", "vm"] {
        let h = s.wait_for("/health", |h| {
            h["remote_write"].as_array().is_some_and(|l| {
                l.iter()
                    .any(|r| r["name"] == name && r["backlog_samples"].as_u64() < Some(100))
            })
        });
        let r = h["remote_write"]
            .as_array()
            .unwrap()
            .iter()
            .find(|r| r["name"] == name)
            .unwrap()
            .clone();
        assert_eq!(r["samples_dropped_total"], 0, "nothing refused: {r}");
    }
}

#[test]
fn a_receiver_behind_a_private_ca_is_reached_with_ca_file_and_refused_without() {
    if !Receiver::available() {
        return;
    }
    let (pdir, sdir, rdir) = (
        tempfile::tempdir().unwrap(),
        tempfile::tempdir().unwrap(),
        tempfile::tempdir().unwrap(),
    );
    common::mosquitto::self_signed_ca(rdir.path(), "ca", "/CN=test CA");
    common::mosquitto::server_certificate(rdir.path());
    let [port] = free_ports::<1>();
    let prom = Receiver::prometheus_tls(rdir.path(), &format!("127.0.0.1:{port}"));
    let cfg = sdir.path().join("pi.toml");
    std::fs::write(
        &cfg,
        format!(
            "[[remote_write]]\nname = \"trusted\"\nurl = \"{0}\"\nca_file = \"{1}\"\n\n\
             [[remote_write]]\nname = \"untrusted\"\nurl = \"{0}\"\nmin_backoff = \"100ms\"\nmax_backoff = \"200ms\"\n",
            prom.write_url(),
            rdir.path().join("ca.pem").display()
        ),
    )
    .unwrap();
    let p = Publisher::start(pdir.path(), &["--interval", "200ms"]);
    let s = start_pi(sdir.path(), &p, cfg.to_str().unwrap());
    s.wait_for("/health", |h| {
        h["remote_write"][0]["samples_sent_total"].as_u64() > Some(0)
            && h["remote_write"][1]["batches_retried_total"].as_u64() >= Some(2)
    });
    assert!(!prom.raw(CPU).is_empty(), "samples over TLS");
    let untrusted = health_remote(&s, "untrusted");
    assert_eq!(untrusted["samples_sent_total"], 0, "{untrusted}");
    let why = untrusted["last_error"]
        .as_str()
        .unwrap_or_default()
        .to_lowercase();
    assert!(
        why.contains("certificate") || why.contains("unknownissuer"),
        "{why}"
    );
}
