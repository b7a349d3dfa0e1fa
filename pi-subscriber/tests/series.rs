//! `/series` and `/series/metrics` through `oneshot`: exact values from the registry and the
//! store, and a 400 (never a panic) for every hostile parameter.
#![allow(clippy::unwrap_used, clippy::expect_used)]

#[path = "../../publisher/tests/common/mod.rs"]
mod common;
mod support;

use std::collections::BTreeMap;

use axum::http::StatusCode;
use broker::{Cpu, Disk, DiskDevice, Snapshot};
use pi_subscriber::http::{router, AppState};
use pi_subscriber::store::Source;
use serde_json::{json, Value};
use tokio::time::Instant;

async fn call(state: &AppState, uri: &str) -> (StatusCode, Value) {
    common::oneshot_get(router(state.clone()), uri).await
}

/// A minute boundary ten minutes ago, so the samples are in the raw tier.
fn t0() -> i64 {
    let now = pi_subscriber::ingest::unix_ms_now();
    (now - 600_000) / 60_000 * 60_000
}

fn snap(seq: u64, ts_ms: i64, cpu: f64, sda: u64, sdb: u64) -> Snapshot {
    Snapshot {
        v: 1,
        host: "tower".into(),
        seq,
        ts: ts_ms / 1000,
        ts_ms,
        boot_id: Some("b".into()),
        cpu: Some(Cpu {
            usage_percent: Some(cpu),
            ..Cpu::default()
        }),
        disk: Some(Disk {
            read_sectors: sda + sdb,
            write_sectors: 0,
            devices: BTreeMap::from([
                (
                    "sda".into(),
                    DiskDevice {
                        read_sectors: sda,
                        write_sectors: 0,
                        ..Default::default()
                    },
                ),
                (
                    "sdb".into(),
                    DiskDevice {
                        read_sectors: sdb,
                        write_sectors: 0,
                        ..Default::default()
                    },
                ),
            ]),
        }),
        ..Snapshot::default()
    }
}

/// Three samples 15 s apart: sda reads 30 then 60 sectors (1024 and 2048 B/s), sdb 0.
fn state_with_three_samples() -> (AppState, i64) {
    let st = support::app_state(100);
    let t0 = t0();
    for (i, (cpu, sda)) in [(10.0, 1000), (20.0, 1030), (60.0, 1090)]
        .iter()
        .enumerate()
    {
        let ts = t0 + i as i64 * 15_000;
        st.store.ingest(
            snap(i as u64 + 1, ts, *cpu, *sda, 7),
            Source::Mqtt,
            Instant::now(),
            ts,
        );
    }
    (st, t0)
}

#[tokio::test]
async fn series_metrics_lists_the_registry() {
    let st = support::app_state(100);
    let (code, body) = call(&st, "/series/metrics").await;
    assert_eq!(code, StatusCode::OK);
    let list = body.as_array().unwrap();
    assert_eq!(list.len(), pi_subscriber::registry::METRICS.len());
    let find = |name: &str| list.iter().find(|m| m["metric"] == name).unwrap().clone();
    assert_eq!(
        find("cpu_usage_percent"),
        json!({"metric":"cpu_usage_percent","unit":"%","kind":"gauge","title":"CPU usage","labels":[],
               "chart":{"id":"cpu","title":"CPU usage","line":"CPU","unit":"%","scale":1.0,"decimals":1,
                        "range":"percent","band":true,"place":"main","top":"top_cpu","spark":true}})
    );
    // The overview's sparklines, and the lists shown when one points at a chart.
    let sparks: Vec<&str> = list
        .iter()
        .filter(|m| m["chart"]["spark"] == true)
        .map(|m| m["metric"].as_str().unwrap())
        .collect();
    assert_eq!(
        sparks,
        [
            "cpu_usage_percent",
            "memory_used_percent",
            "network_rx_bytes_rate",
            "network_tx_bytes_rate",
            "disk_busy_percent"
        ]
    );
    assert_eq!(find("memory_used_percent")["chart"]["top"], "top_rss");
    // What the dashboard draws per device, and what it does not chart at all.
    assert_eq!(find("disk_busy_percent")["chart"]["place"], "devices");
    assert_eq!(find("disk_read_bytes_rate")["chart"]["scale"], 1e-6);
    assert!(find("uptime_s").get("chart").is_none());
    let disk = find("disk_read_bytes_rate");
    assert_eq!(disk["kind"], "counter");
    assert_eq!(disk["unit"], "bytes/s");
    assert_eq!(disk["labels"], json!(["device"]));
}

#[tokio::test]
async fn a_gauge_and_a_per_device_rate_from_the_raw_tier() {
    let (st, t0) = state_with_three_samples();
    let to = t0 + 60_000;
    let (code, body) = call(
        &st,
        &format!("/series?host=tower&metric=cpu_usage_percent&from={t0}&to={to}"),
    )
    .await;
    assert_eq!(code, StatusCode::OK, "{body}");
    assert_eq!(
        body,
        json!({"tier":"raw","series":[{"host":"tower","metric":"cpu_usage_percent","labels":{},
            "points":[[t0,10.0],[t0+15_000,20.0],[t0+30_000,60.0]]}]})
    );

    let (code, body) = call(
        &st,
        &format!("/series?host=tower&metric=disk_read_bytes_rate&device=sda&from={t0}&to={to}"),
    )
    .await;
    assert_eq!(code, StatusCode::OK, "{body}");
    assert_eq!(
        body["series"],
        json!([{"host":"tower","metric":"disk_read_bytes_rate","labels":{"device":"sda"},
            "points":[[t0,null],[t0+15_000,1024.0],[t0+30_000,2048.0]]}])
    );

    // Every series of the metric: the total (no label) and each device.
    let (_, body) = call(
        &st,
        &format!("/series?host=tower&metric=disk_read_bytes_rate&from={t0}&to={to}"),
    )
    .await;
    let series = body["series"].as_array().unwrap();
    let labels: Vec<&Value> = series.iter().map(|s| &s["labels"]).collect();
    assert_eq!(
        labels,
        [
            &json!({}),
            &json!({"device":"sda"}),
            &json!({"device":"sdb"})
        ]
    );
    assert_eq!(
        series[0]["points"],
        json!([[t0, null], [t0 + 15_000, 1024.0], [t0 + 30_000, 2048.0]])
    );
    assert_eq!(
        series[2]["points"],
        json!([[t0, null], [t0 + 15_000, 0.0], [t0 + 30_000, 0.0]])
    );
}

/// Issue 19 item 3: a gap in the raw tier is a `null` point, after the last sample before it
/// (at one sampling interval, 15 s here): seq 3 lost (seq 4 comes 30 s after 2: only the seq
/// says so), and a 5-minute stall between seqs 5 and 6 (they follow on: only the time says
/// so). A counter has no rate after a lost sample either.
#[tokio::test]
async fn a_gap_in_the_raw_tier_is_a_null_point() {
    let st = support::app_state(100);
    let t0 = t0();
    let at = |s: i64| t0 + s * 1000;
    for (seq, s) in [(1, 0), (2, 15), (4, 45), (5, 60), (6, 360), (7, 375)] {
        st.store.ingest(
            snap(seq, at(s), seq as f64, 30 * seq, 0),
            Source::Mqtt,
            Instant::now(),
            at(s),
        );
    }
    let to = at(400);
    let (code, body) = call(
        &st,
        &format!("/series?host=tower&metric=cpu_usage_percent&from={t0}&to={to}"),
    )
    .await;
    assert_eq!(code, StatusCode::OK, "{body}");
    assert_eq!(body["tier"], "raw");
    assert_eq!(
        body["series"][0]["points"],
        json!([
            [at(0), 1.0],
            [at(15), 2.0],
            [at(30), null],
            [at(45), 4.0],
            [at(60), 5.0],
            [at(75), null],
            [at(360), 6.0],
            [at(375), 7.0]
        ])
    );
    let (code, body) = call(
        &st,
        &format!("/series?host=tower&metric=disk_read_bytes_rate&device=sda&from={t0}&to={to}"),
    )
    .await;
    assert_eq!(code, StatusCode::OK, "{body}");
    assert_eq!(
        body["series"][0]["points"],
        json!([
            [at(0), null],
            [at(15), 1024.0],
            [at(30), null],
            [at(45), null],
            [at(60), 1024.0],
            [at(75), null],
            [at(360), 51.2],
            [at(375), 1024.0]
        ])
    );
}

#[tokio::test]
async fn a_step_aggregates_with_the_asked_summary() {
    let (st, t0) = state_with_three_samples();
    let to = t0 + 59_999;
    for (agg, want) in [("avg", 30.0), ("min", 10.0), ("max", 60.0), ("last", 60.0)] {
        let (code, body) = call(
            &st,
            &format!(
                "/series?host=tower&metric=cpu_usage_percent&from={t0}&to={to}&step=60&agg={agg}"
            ),
        )
        .await;
        assert_eq!(code, StatusCode::OK, "{body}");
        assert_eq!(body["series"][0]["points"], json!([[t0, want]]), "{agg}");
    }
}

#[tokio::test]
async fn hostile_parameters_get_a_4xx_never_a_panic() {
    let (st, t0) = state_with_three_samples();
    let min = i64::MIN;
    let max = i64::MAX;
    for (uri, want) in [
        ("/series?host=tower&metric=nope".to_string(), 404),
        ("/series?host=ghost&metric=cpu_usage_percent".into(), 404),
        ("/series?host=tower".into(), 400),
        (
            "/series?host=tower&metric=cpu_usage_percent&device=sda".into(),
            400,
        ),
        (
            "/series?host=tower&metric=disk_read_bytes_rate&device=sda&interface=eth0".into(),
            400,
        ),
        (
            "/series?host=tower&metric=cpu_usage_percent&step=0".into(),
            400,
        ),
        (
            "/series?host=tower&metric=cpu_usage_percent&step=18446744073709551615".into(),
            400,
        ),
        (
            "/series?host=tower&metric=cpu_usage_percent&step=-1".into(),
            400,
        ),
        (
            "/series?host=tower&metric=cpu_usage_percent&agg=median".into(),
            400,
        ),
        (
            "/series?host=tower&metric=cpu_usage_percent&bogus=1".into(),
            400,
        ),
        (
            format!(
                "/series?host=tower&metric=cpu_usage_percent&from={}&to={t0}",
                t0 + 1
            ),
            400,
        ),
        (
            format!("/series?host=tower&metric=cpu_usage_percent&from={min}&to={max}&step=1"),
            400,
        ),
        (
            "/series?host=tower&metric=cpu_usage_percent&from=0&step=1".to_string(),
            400,
        ),
        (
            format!(
                "/series?host=tower&metric=cpu_usage_percent&device={}",
                "x".repeat(300)
            ),
            400,
        ),
    ] {
        let (code, body) = call(&st, &uri).await;
        assert_eq!(code.as_u16(), want, "{uri}: {body}");
        assert!(body["error"].is_string(), "{uri}: {body}");
    }
    // Extreme but valid: the whole of time at a ten-year step is a few points, from the
    // hour tier.
    let (code, body) = call(
        &st,
        &format!("/series?host=tower&metric=cpu_usage_percent&from={min}&to={max}&step=315360000"),
    )
    .await;
    assert_eq!(code, StatusCode::OK, "{body}");
    assert_eq!(body["tier"], "1h");
}

#[tokio::test]
async fn health_reports_the_history_counters_as_of_the_last_commit() {
    let (st, _) = state_with_three_samples();
    let (_, body) = call(&st, "/health").await;
    assert_eq!(body["history"]["samples_total"], 0, "{body}");
    st.store.commit().unwrap();
    let (_, body) = call(&st, "/health").await;
    assert_eq!(body["history"]["samples_total"], 3, "{body}");
    // cpu, disk read + write (total, sda, sdb each).
    assert_eq!(body["history"]["series_total"], 7, "{body}");
    assert_eq!(body["history"]["series_dropped_total"], 0, "{body}");
}

/// Issue 18 A1: samples lost for good are said, never silent: `/series` carries the region
/// (the dashboard hatches it) and Grafana's annotations list it.
#[tokio::test]
async fn lost_samples_are_shown_in_series_and_grafana_annotations() {
    let st = support::app_state(100);
    let t0 = t0();
    let at = |seq: u64| t0 + 15_000 * (seq as i64 - 1);
    for seq in [1, 2, 9] {
        st.store.ingest(
            snap(seq, at(seq), 5.0, 0, 0),
            Source::Mqtt,
            Instant::now(),
            at(seq),
        );
    }
    // The publisher answered the backfill with 7 and 8 only: 3..=6 are gone from its ring.
    for seq in [7, 8] {
        st.store.ingest(
            snap(seq, at(seq), 5.0, 0, 0),
            Source::Backfill,
            Instant::now(),
            at(9),
        );
    }
    let now = pi_subscriber::ingest::unix_ms_now();
    let holes = st.store.due_holes(now, 8).unwrap();
    assert_eq!(holes.len(), 1);
    assert_eq!((holes[0].after_seq, holes[0].before_seq), (2, 9));
    let fate = st
        .store
        .settle_hole(
            &holes[0],
            &pi_subscriber::tsdb::Attempt::Answered { newest_seq: None },
            now,
        )
        .unwrap();
    assert_eq!(fate, pi_subscriber::tsdb::Fate::Lost(4));

    let (code, body) = call(
        &st,
        &format!(
            "/series?host=tower&metric=cpu_usage_percent&from={t0}&to={}",
            at(9)
        ),
    )
    .await;
    assert_eq!(code, StatusCode::OK, "{body}");
    assert_eq!(
        body["lost"],
        json!([{"from_ms": at(2), "to_ms": at(9), "samples": 4}])
    );
    let (code, ann) = common::oneshot_post(
        router(st.clone()),
        "/grafana/annotations",
        json!({"range": {"from": t0.to_string(), "to": at(9).to_string()}, "annotation": {"name": "lost", "query": ""}}),
    )
    .await;
    assert_eq!(code, StatusCode::OK, "{ann}");
    let lost: Vec<&Value> = ann
        .as_array()
        .unwrap()
        .iter()
        .filter(|a| a["tags"][0] == "lost")
        .collect();
    assert_eq!(lost.len(), 1, "{ann}");
    assert_eq!(lost[0]["time"], at(2));
    assert_eq!(lost[0]["timeEnd"], at(9));
    assert_eq!(lost[0]["title"], "tower: 4 samples lost");
}
