//! Top processes in the Pi's history, with the built binaries: a CPU hog runs on the server
//! while the Pi is down; once the Pi is back, the backfilled samples carry their process lists
//! into the history, and `/series/top` and Grafana's table answer with exactly what the
//! publisher sampled (its ring is the truth the Pi is checked against).
#![allow(clippy::unwrap_used, clippy::expect_used)]

#[path = "../../publisher/tests/common/mod.rs"]
mod common;
mod support;

use std::process::{Command, Stdio};
use std::time::Duration;

use common::Publisher;
use serde_json::{json, Value};
use support::Subscriber;

/// Kills the hog when the test ends, however it ends.
struct Hog(std::process::Child);

impl Drop for Hog {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn start_sub(dir: &std::path::Path, p: &Publisher) -> Subscriber {
    Subscriber::start(
        dir,
        p.mqtt_port,
        &p.url("/latest"),
        &["--max-age", "5"],
        &[("PI_SUBSCRIBER_POLL__INTERVAL", "200ms")],
    )
}

/// The publisher's ring, oldest first.
fn ring(p: &Publisher) -> Vec<Value> {
    p.json("/history?limit=1000")["snapshots"]
        .as_array()
        .unwrap()
        .clone()
}

fn post(url: &str, body: &Value) -> Value {
    let client = reqwest::blocking::Client::builder()
        .timeout(Duration::from_secs(10))
        .build()
        .unwrap();
    let r = client
        .post(url)
        .header("content-type", "application/json")
        .body(body.to_string())
        .send()
        .unwrap();
    assert_eq!(r.status().as_u16(), 200);
    serde_json::from_str(&r.text().unwrap()).unwrap()
}

#[test]
fn a_hog_that_ran_while_the_pi_was_down_is_in_its_history_after_the_backfill() {
    let pdir = tempfile::tempdir().unwrap();
    let sdir = tempfile::tempdir().unwrap();
    let p = Publisher::start(pdir.path(), &["--interval", "300ms"]);
    let s = start_sub(sdir.path(), &p);
    s.wait_for("/metrics", |m| m["seq"].as_u64() >= Some(3));
    s.stop();

    let down = p.json("/latest")["seq"].as_u64().unwrap();
    let hog = Hog(Command::new("yes")
        .stdout(Stdio::null())
        .spawn()
        .expect("spawn yes"));
    p.wait_for("/latest", |l| l["seq"].as_u64().unwrap() >= down + 10);
    drop(hog);
    let up = p.json("/latest")["seq"].as_u64().unwrap();

    let s = start_sub(sdir.path(), &p);
    s.wait_for("/history?host=testhost", |rows| {
        let got: Vec<u64> = rows
            .as_array()
            .unwrap()
            .iter()
            .filter_map(|r| r["seq"].as_u64())
            .collect();
        (down..=up).all(|q| got.contains(&q))
    });

    // Every sample taken while the Pi was down: the Pi's raw lists are the publisher's.
    let outage: Vec<Value> = ring(&p)
        .into_iter()
        .filter(|snap| (down + 1..=up).contains(&snap["seq"].as_u64().unwrap()))
        .collect();
    assert_eq!(outage.len() as u64, up - down);
    let mut hog_on_top = 0;
    for snap in &outage {
        let ts = snap["ts_ms"].as_i64().unwrap();
        let top = s.json(&format!("/series/top?host=testhost&at={ts}"));
        assert_eq!(top["tier"], "raw", "{top}");
        assert_eq!(top["top_cpu"]["ts_ms"], ts);
        assert_eq!(top["top_cpu"]["processes"], snap["processes"]["top_cpu"]);
        assert_eq!(top["top_rss"]["processes"], snap["processes"]["top_rss"]);
        // Among the top five by CPU (first on a quiet machine; a busy one's compilers may
        // outrank it for a sample).
        let listed = snap["processes"]["top_cpu"].as_array().unwrap();
        hog_on_top += usize::from(listed.iter().any(|p| p["name"] == "yes"));
    }
    assert!(
        hog_on_top >= outage.len() / 2,
        "`yes` among the top five in {hog_on_top} of {} samples",
        outage.len()
    );

    // Over the outage's minutes: the list of the sample with the highest CPU use, as the Pi
    // judged it, is that sample's list; Grafana's table shows the same rows.
    let (from, to) = (
        outage[0]["ts_ms"].as_i64().unwrap(),
        outage.last().unwrap()["ts_ms"].as_i64().unwrap(),
    );
    let minute = |t: i64| t.div_euclid(60_000) * 60_000;
    let peak = ring(&p)
        .into_iter()
        .filter(|snap| {
            let t = snap["ts_ms"].as_i64().unwrap();
            t >= minute(from) && minute(t) <= minute(to)
        })
        .map(|snap| snap["cpu"]["usage_percent"].as_f64().unwrap_or(-1.0))
        .fold(f64::MIN, f64::max);
    let top = s.json(&format!("/series/top?host=testhost&from={from}&to={to}"));
    assert_eq!(top["tier"], "1m", "{top}");
    let at = top["top_cpu"]["ts_ms"].as_i64().unwrap();
    let sampled = ring(&p)
        .into_iter()
        .find(|snap| snap["ts_ms"] == at)
        .unwrap();
    assert_eq!(sampled["cpu"]["usage_percent"].as_f64(), Some(peak));
    assert_eq!(top["top_cpu"]["processes"], sampled["processes"]["top_cpu"]);

    let iso = |ms: i64| {
        chrono::DateTime::from_timestamp_millis(ms)
            .unwrap()
            .to_rfc3339()
    };
    let answer = post(
        &s.url("/grafana/query"),
        &json!({
            "range": {"from": iso(from), "to": iso(to)},
            "maxDataPoints": 100,
            "intervalMs": 1000,
            "targets": [{"refId": "A", "target": "top_processes", "payload": {"host": "testhost"}}],
        }),
    );
    let rows = answer[0]["rows"].as_array().unwrap();
    let listed = sampled["processes"]["top_cpu"].as_array().unwrap();
    assert_eq!(rows.len(), listed.len());
    for (row, p) in rows.iter().zip(listed) {
        assert_eq!(
            row,
            &json!([
                at,
                "testhost",
                p["pid"],
                p["name"],
                p["user"],
                p["cpu_percent"],
                p["rss_bytes"]
            ])
        );
    }
}
