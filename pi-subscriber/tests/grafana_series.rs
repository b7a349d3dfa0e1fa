//! Issue 19 item 3, one Grafana path: every `/grafana/query` metric target reads the tiered
//! store as `/series` does, the raw tier with a `null` in each gap; the seed's metric names
//! answer under their names. Through `tower::ServiceExt::oneshot`.
#![allow(clippy::unwrap_used, clippy::expect_used)]

#[path = "../../publisher/tests/common/mod.rs"]
mod common;
mod support;

use std::time::Duration;

use axum::http::StatusCode;
use broker::{Cpu, Disk, DiskDevice, Snapshot};
use pi_subscriber::http::{router, AppState};
use pi_subscriber::store::Source;
use serde_json::{json, Value};
use tokio::time::Instant;

/// An hour boundary three to four hours ago, the same for every test of the run: what it
/// fills is in the raw tier.
fn recent() -> i64 {
    static AT: std::sync::OnceLock<i64> = std::sync::OnceLock::new();
    *AT.get_or_init(|| {
        (pi_subscriber::ingest::unix_ms_now() - 3 * 3_600_000) / 3_600_000 * 3_600_000
    })
}

fn state() -> AppState {
    support::app_state(10_000)
}

async fn post(state: &AppState, uri: &str, body: Value) -> (StatusCode, Value) {
    common::oneshot_post(router(state.clone()), uri, body).await
}

fn iso(ms: i64) -> String {
    humantime::format_rfc3339_millis(std::time::UNIX_EPOCH + Duration::from_millis(ms as u64))
        .to_string()
}

/// A /query body as Grafana 11 with simPod 0.6 sends it.
fn grafana_query(targets: Value, from: i64, to: i64, max_points: u64, interval_ms: u64) -> Value {
    json!({
        "app": "dashboard", "requestId": "Q101", "timezone": "browser", "panelId": 2, "dashboardUID": "sa",
        "range": {"from": iso(from), "to": iso(to), "raw": {"from": "now-1h", "to": "now"}},
        "timeInfo": "", "interval": format!("{}ms", interval_ms), "intervalMs": interval_ms,
        "targets": targets, "maxDataPoints": max_points,
        "adhocFilters": [], "filters": []
    })
}

/// A sample of `host` with every metric of the seed: CPU % `cpu` (core 0 the same, core 1
/// `100 - cpu`), loads 0.5/0.25/0.125, 250 of 1000 MB available, 100 MB of swap used,
/// 52.5 °C, sda having read `read` sectors and eth0 received `rx` bytes in all.
fn full(
    host: &str,
    seq: u64,
    ts_ms: i64,
    cpu: f64,
    read: u64,
    rx: u64,
    interval_s: f64,
) -> Snapshot {
    Snapshot {
        v: 1,
        host: host.into(),
        seq,
        ts: ts_ms / 1000,
        ts_ms,
        interval_s,
        boot_id: Some("b".into()),
        cpu: Some(Cpu {
            usage_percent: Some(cpu),
            load_1m: Some(0.5),
            load_5m: Some(0.25),
            load_15m: Some(0.125),
            cores: Some(2),
            per_core_percent: vec![Some(cpu), Some(100.0 - cpu)],
        }),
        memory: Some(broker::Memory {
            available_mb: 250,
            total_mb: 1000,
            swap_used_mb: 100,
            swap_total_mb: 1000,
        }),
        thermal: broker::Thermal {
            cpu_temp_c: Some(52.5),
            ..broker::Thermal::default()
        },
        disk: Some(Disk {
            read_sectors: read,
            write_sectors: 0,
            devices: [(
                "sda".to_string(),
                DiskDevice {
                    read_sectors: read,
                    write_sectors: 0,
                    ..Default::default()
                },
            )]
            .into(),
        }),
        network: Some(broker::Network {
            rx_bytes: rx,
            tx_bytes: 0,
            interfaces: [(
                "eth0".to_string(),
                broker::NetworkInterface {
                    rx_bytes: rx,
                    tx_bytes: 0,
                },
            )]
            .into(),
        }),
        ..Snapshot::default()
    }
}

fn ingest(st: &AppState, s: Snapshot) {
    let ts = s.ts_ms;
    st.store.ingest(s, Source::Mqtt, Instant::now(), ts);
}

/// `(target, datapoints)` of each series of an answer.
fn answered(body: &Value) -> Vec<(String, Value)> {
    body.as_array()
        .unwrap_or_else(|| panic!("{body}"))
        .iter()
        .map(|s| {
            (
                s["target"].as_str().unwrap().to_owned(),
                s["datapoints"].clone(),
            )
        })
        .collect()
}

/// Issue 19 item 3: one path. The same targets over the last hour (the raw tier) and over
/// three days (the minute tier), in 5-minute buckets: every bucket both ranges hold whole
/// has the same value, and the same time, in both answers (an outage is `null` in both).
#[tokio::test]
async fn one_hour_and_three_days_agree_where_they_overlap() {
    let st = state();
    let base = recent();
    let mut read = 0;
    for i in 0..720u64 {
        // 15·(i mod 3) sectors per sample: 0, 512 or 1024 B/s; an outage at minutes 150..160.
        read += 15 * (i % 3);
        if (600..640).contains(&i) {
            continue;
        }
        let ts = base + i as i64 * 15_000;
        ingest(&st, full("tower", i + 1, ts, (i % 7) as f64, read, 0, 15.0));
    }
    // As Grafana asks for "the last hour": not on a bucket boundary.
    let to = base + 3 * 3_600_000 - 7_000;
    let hour = to - 3_600_000;
    let targets = json!([
        {"refId": "A", "target": "cpu_usage_percent", "payload": {"host": "tower"}},
        {"refId": "B", "target": "disk_read_bytes_rate", "payload": {"host": "tower", "agg": "max"}},
        {"refId": "C", "target": "disk_read_sectors_rate", "payload": {"host": "tower"}}
    ]);
    let (code, short) = post(
        &st,
        "/grafana/query",
        grafana_query(targets.clone(), hour, to, 12, 1000),
    )
    .await;
    assert_eq!(code, StatusCode::OK, "{short}");
    let (code, long) = post(
        &st,
        "/grafana/query",
        grafana_query(targets, to - 3 * 86_400_000, to, 864, 1000),
    )
    .await;
    assert_eq!(code, StatusCode::OK, "{long}");
    let (short, long) = (answered(&short), answered(&long));
    assert_eq!(
        short.iter().map(|s| s.0.as_str()).collect::<Vec<_>>(),
        [
            "cpu_usage_percent tower",
            "disk_read_bytes_rate tower",
            "disk_read_sectors_rate tower"
        ]
    );
    for ((name, short), (long_name, long)) in short.iter().zip(&long) {
        assert_eq!(name, long_name);
        let long: std::collections::HashMap<i64, &Value> = long
            .as_array()
            .unwrap()
            .iter()
            .map(|p| (p[1].as_i64().unwrap(), &p[0]))
            .collect();
        let whole: Vec<&Value> = short
            .as_array()
            .unwrap()
            .iter()
            .filter(|p| p[1].as_i64().unwrap() >= hour && p[1].as_i64().unwrap() + 300_000 <= to)
            .collect();
        // base+2h, +5 min, …, base+2h50: eleven buckets, two of them the outage.
        assert_eq!(whole.len(), 11, "{name}: {short}");
        for p in &whole {
            let t = p[1].as_i64().unwrap();
            assert_eq!(
                long.get(&t),
                Some(&&p[0]),
                "{name} at base+{} s",
                (t - base) / 1000
            );
        }
        let nulls: Vec<i64> = whole
            .iter()
            .filter(|p| p[0].is_null())
            .map(|p| (p[1].as_i64().unwrap() - base) / 60_000)
            .collect();
        assert_eq!(nulls, [150, 155], "{name}");
    }
}

/// Issue 19 item 3: a gap in the raw tier is a `null` in the answer: seq 5 lost (seq 6 comes
/// 30 s after 4: only the seq says so), and the publisher stalled for 5 minutes between 8
/// and 9 (their seqs follow on: only the time says so). For a seed metric, a per-core series
/// and a counter alike.
#[tokio::test]
async fn a_gap_in_the_raw_tier_is_a_null() {
    let st = state();
    let b = recent();
    for (seq, s) in [
        (1, 0),
        (2, 15),
        (3, 30),
        (4, 45),
        (6, 75),
        (7, 90),
        (8, 105),
        (9, 405),
        (10, 420),
    ] {
        ingest(
            &st,
            full("gappy", seq, b + s * 1000, seq as f64, 30 * seq, 0, 15.0),
        );
    }
    let targets = json!([
        {"refId": "A", "target": "cpu_usage_percent", "payload": {"host": "gappy"}},
        {"refId": "B", "target": "cpu_core_usage_percent", "payload": {"host": "gappy", "label": "*"}},
        {"refId": "C", "target": "disk_read_bytes_rate", "payload": {"host": "gappy"}}
    ]);
    let (code, body) = post(
        &st,
        "/grafana/query",
        grafana_query(targets, b, b + 600_000, 2000, 1000),
    )
    .await;
    assert_eq!(code, StatusCode::OK, "{body}");
    let at = |s: i64| b + s * 1000;
    let gauge = |f: fn(f64) -> f64| {
        json!([
            [f(1.0), at(0)],
            [f(2.0), at(15)],
            [f(3.0), at(30)],
            [f(4.0), at(45)],
            [null, at(60)],
            [f(6.0), at(75)],
            [f(7.0), at(90)],
            [f(8.0), at(105)],
            [null, at(120)],
            [f(9.0), at(405)],
            [f(10.0), at(420)]
        ])
    };
    // 30 sectors per 15 s is 1024 B/s; over the stall's 300 s, 51.2 B/s. A counter has no
    // rate after the lost sample either (no seq neighbour).
    let rate = json!([
        [null, at(0)],
        [1024.0, at(15)],
        [1024.0, at(30)],
        [1024.0, at(45)],
        [null, at(60)],
        [null, at(75)],
        [1024.0, at(90)],
        [1024.0, at(105)],
        [null, at(120)],
        [51.2, at(405)],
        [1024.0, at(420)]
    ]);
    assert_eq!(
        answered(&body),
        [
            ("cpu_usage_percent gappy".to_owned(), gauge(|v| v)),
            ("cpu_core_usage_percent gappy 0".to_owned(), gauge(|v| v)),
            (
                "cpu_core_usage_percent gappy 1".to_owned(),
                gauge(|v| 100.0 - v)
            ),
            ("disk_read_bytes_rate gappy".to_owned(), rate),
        ]
    );
}

/// A host that samples every minute (`interval_s` 60), asked for 30 s buckets: its samples,
/// without a `null` between every two of them.
#[tokio::test]
async fn a_host_sampling_every_minute_has_no_false_gaps() {
    let st = state();
    let b = recent();
    for seq in 1..=10u64 {
        ingest(
            &st,
            full(
                "slow",
                seq,
                b + (seq as i64 - 1) * 60_000,
                seq as f64,
                0,
                0,
                60.0,
            ),
        );
    }
    let targets = json!([{"refId": "A", "target": "cpu_core_usage_percent", "payload": {"host": "slow", "label": "0"}}]);
    let (code, body) = post(
        &st,
        "/grafana/query",
        grafana_query(targets, b, b + 540_000, 18, 1000),
    )
    .await;
    assert_eq!(code, StatusCode::OK, "{body}");
    let points: Vec<Value> = (1..=10)
        .map(|seq| json!([seq as f64, b + (seq - 1) * 60_000]))
        .collect();
    assert_eq!(
        answered(&body),
        [(
            "cpu_core_usage_percent slow 0".to_owned(),
            Value::Array(points)
        )]
    );
}

/// The seed's 14 metric names (the shipped dashboard's) answer under their names, with the
/// payloads every metric takes: a label (`*`: every device) and any summary.
#[tokio::test]
async fn the_seeds_metric_names_still_answer() {
    const SEED: [&str; 14] = [
        "cpu_usage_percent",
        "load_1m",
        "load_5m",
        "load_15m",
        "memory_used_percent",
        "memory_available_mb",
        "swap_used_mb",
        "cpu_temp_c",
        "disk_read_bytes_rate",
        "disk_write_bytes_rate",
        "disk_read_sectors_rate",
        "disk_write_sectors_rate",
        "network_rx_bytes_rate",
        "network_tx_bytes_rate",
    ];
    let st = state();
    let b = recent();
    for seq in 1..=5u64 {
        ingest(
            &st,
            full(
                "tower",
                seq,
                b + (seq as i64 - 1) * 15_000,
                10.0 * seq as f64,
                30 * seq,
                1500 * seq,
                15.0,
            ),
        );
    }
    let (_, metrics) = post(&st, "/grafana/metrics", json!({})).await;
    let (_, vars) = post(
        &st,
        "/grafana/variable",
        json!({"payload": {"target": "metrics"}}),
    )
    .await;
    for name in SEED {
        assert!(
            metrics
                .as_array()
                .unwrap()
                .iter()
                .any(|m| m["value"] == name),
            "{name} in /metrics"
        );
        assert!(
            vars.as_array()
                .unwrap()
                .iter()
                .any(|m| m["__value"] == name),
            "{name} in /variable"
        );
    }
    let targets: Vec<Value> = SEED
        .iter()
        .map(|n| json!({"refId": n, "target": n, "payload": {"host": "tower"}}))
        .collect();
    let (code, body) = post(
        &st,
        "/grafana/query",
        grafana_query(Value::Array(targets), b, b + 60_000, 1000, 15_000),
    )
    .await;
    assert_eq!(code, StatusCode::OK, "{body}");
    // The second sample: 30 sectors (15 360 B) read and 1 500 B received in 15 s.
    let second = [
        20.0, 0.5, 0.25, 0.125, 75.0, 250.0, 100.0, 52.5, 1024.0, 0.0, 2.0, 0.0, 100.0, 0.0,
    ];
    let got: Vec<(String, Value)> = answered(&body)
        .into_iter()
        .map(|(t, p)| (t, p[1].clone()))
        .collect();
    let want: Vec<(String, Value)> = SEED
        .iter()
        .zip(second)
        .map(|(n, v)| (format!("{n} tower"), json!([v, b + 15_000])))
        .collect();
    assert_eq!(got, want);
    // A seed name takes a label and a summary as the registry's do.
    let (code, body) = post(
        &st,
        "/grafana/query",
        grafana_query(
            json!([{"refId": "S", "target": "disk_read_sectors_rate", "payload": {"host": "tower", "label": "*", "agg": "min"}}]),
            b,
            b + 60_000,
            1000,
            15_000,
        ),
    )
    .await;
    assert_eq!(code, StatusCode::OK, "{body}");
    let got: Vec<(String, Value)> = answered(&body)
        .into_iter()
        .map(|(t, p)| (t, p[1].clone()))
        .collect();
    assert_eq!(
        got,
        [
            (
                "disk_read_sectors_rate tower".to_owned(),
                json!([2.0, b + 15_000])
            ),
            (
                "disk_read_sectors_rate tower sda".to_owned(),
                json!([2.0, b + 15_000])
            ),
        ]
    );
    let (code, body) = post(
        &st,
        "/grafana/query",
        grafana_query(
            json!([{"refId": "S", "target": "disk_read_sectors_rate", "payload": {"host": "tower", "agg": "median"}}]),
            b,
            b + 60_000,
            1000,
            15_000,
        ),
    )
    .await;
    assert_eq!(code, StatusCode::BAD_REQUEST, "{body}");
}
