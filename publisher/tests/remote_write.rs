//! Remote write from the publisher (a server with no Pi), with a real Prometheus started by
//! the test: every sample of the ring arrives with the Pi's names and labels and exact values;
//! the receiver down while samples are taken and the publisher restarted meanwhile: once the
//! receiver is back, every sample is there once.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;
#[path = "../../pi-subscriber/tests/support/receivers.rs"]
mod receivers;

use std::time::{Duration, Instant};

use common::{free_ports, Publisher};
use receivers::{Kind, Receiver};

const CPU: &str = r#"server_analytics_cpu_usage_ratio{host="testhost",job="server-analytics"}"#;

/// The ring's samples after `after` (seq), as (ms, CPU %) where the CPU is known.
fn ring(p: &Publisher, after: u64) -> Vec<(u64, i64, f64)> {
    p.json(&format!("/history?since_seq={after}&limit=10000"))["snapshots"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|s| {
            Some((
                s["seq"].as_u64()?,
                s["ts_ms"].as_i64()?,
                s["cpu"]["usage_percent"].as_f64()?,
            ))
        })
        .collect()
}

#[test]
fn every_sample_of_the_ring_reaches_prometheus_across_its_outage_and_a_restart() {
    if !Receiver::available() {
        return;
    }
    let (pdir, rdir) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let [port, http, mqtt] = free_ports::<3>();
    let mut prom = Receiver::start(
        Kind::Prometheus,
        rdir.path(),
        &format!("127.0.0.1:{port}"),
        None,
    );
    let cfg = pdir.path().join("publisher.toml");
    std::fs::write(
        &cfg,
        format!(
            "host = \"testhost\"\n[[remote_write]]\nurl = \"{}\"\nmin_backoff = \"100ms\"\nmax_backoff = \"1s\"\n",
            prom.write_url()
        ),
    )
    .unwrap();
    let args = |c: &str| {
        vec![
            "--config".to_owned(),
            c.to_owned(),
            "--interval".into(),
            "200ms".into(),
            "--bind".into(),
            format!("127.0.0.1:{http}"),
            "--broker-listen".into(),
            format!("127.0.0.1:{mqtt}"),
        ]
    };
    let a = args(cfg.to_str().unwrap());
    let a: Vec<&str> = a.iter().map(String::as_str).collect();
    let p = Publisher::start(pdir.path(), &a);
    p.wait_for("/health", |h| {
        h["remote_write"][0]["samples_sent_total"].as_u64() >= Some(50)
    });
    let first = ring(&p, 0).first().unwrap().0;

    prom.stop();
    let down = p.json("/latest")["seq"].as_u64().unwrap();
    p.wait_for("/latest", |l| l["seq"].as_u64() >= Some(down + 10));
    let h = p.json("/health");
    assert!(
        h["remote_write"][0]["batches_retried_total"].as_u64() >= Some(1),
        "{h}"
    );
    drop(p);
    let p = Publisher::start(pdir.path(), &a);
    let again = p.wait_for("/latest", |l| l["seq"].is_u64())["seq"]
        .as_u64()
        .unwrap();
    p.wait_for("/latest", |l| l["seq"].as_u64() >= Some(again + 10));
    prom.restart();

    let want = ring(&p, first - 1);
    let newest = want.last().unwrap().1;
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let got: Vec<(i64, f64)> = prom
            .raw(CPU)
            .into_iter()
            .filter(|s| s.0 <= newest)
            .collect();
        let times: Vec<i64> = got.iter().map(|s| s.0).collect();
        let wanted: Vec<i64> = want.iter().map(|s| s.1).collect();
        if times == wanted {
            for ((_, t, cpu), (rt, v)) in want.iter().zip(&got) {
                assert_eq!(t, rt);
                assert!((cpu / 100.0 - v).abs() < 1e-12, "at {t}: {v} vs {cpu} %");
            }
            break;
        }
        assert!(
            Instant::now() < deadline,
            "Prometheus holds {} of the ring's {} samples",
            times.len(),
            wanted.len()
        );
        std::thread::sleep(Duration::from_millis(300));
    }
    assert!(want.len() >= 20, "{} samples", want.len());
    let h = p.json("/health");
    assert_eq!(h["remote_write"][0]["samples_dropped_total"], 0, "{h}");
}
