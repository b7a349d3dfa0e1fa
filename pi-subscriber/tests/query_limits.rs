//! Issue 9 A3: every history query is bounded, and numbers no clock or panel could send get a
//! 400 with a message, never a panic, a 500 or an answer as large as the client asked for.
//! Through `tower::ServiceExt::oneshot`, as Grafana and a browser send them.
#![allow(clippy::unwrap_used, clippy::expect_used)]

#[path = "../../publisher/tests/common/mod.rs"]
mod common;
mod support;

use axum::body::Body;
use axum::http::{header, Request, StatusCode};
use broker::{Cpu, Snapshot};
use http_body_util::BodyExt;
use pi_subscriber::http::{router, AppState};
use pi_subscriber::store::Source;
use serde_json::{json, Value};
use tokio::time::Instant;
use tower::ServiceExt;

/// 2026-01-01T00:00:00Z.
const T0: i64 = 1_767_225_600_000;

/// A state with `hosts` hosts of 40 samples each (15 s apart from T0).
fn state(hosts: usize) -> AppState {
    state_at(hosts, T0)
}

/// A state with `hosts` hosts of 40 samples each (15 s apart from `t0`).
fn state_at(hosts: usize, t0: i64) -> AppState {
    let st = support::app_state(0);
    for h in 0..hosts {
        for i in 0..40u64 {
            let ts_ms = t0 + i as i64 * 15_000;
            let s = Snapshot {
                v: 1,
                host: format!("h{h}"),
                seq: i + 1,
                ts: ts_ms / 1000,
                ts_ms,
                boot_id: Some("b".into()),
                cpu: Some(Cpu {
                    usage_percent: Some(i as f64),
                    ..Cpu::default()
                }),
                ..Snapshot::default()
            };
            st.store.ingest(s, Source::Mqtt, Instant::now(), ts_ms);
        }
    }
    st
}

async fn send(state: &AppState, request: Request<Body>) -> (StatusCode, Value) {
    let response = router(state.clone()).oneshot(request).await.unwrap();
    let status = response.status();
    let bytes = response.into_body().collect().await.unwrap().to_bytes();
    (
        status,
        serde_json::from_slice(&bytes).unwrap_or(Value::Null),
    )
}

async fn post(state: &AppState, uri: &str, body: Value) -> (StatusCode, Value) {
    let request = Request::post(uri)
        .header(header::CONTENT_TYPE, "application/json")
        .body(Body::from(body.to_string()))
        .unwrap();
    send(state, request).await
}

async fn get(state: &AppState, uri: &str) -> (StatusCode, Value) {
    send(state, Request::get(uri).body(Body::empty()).unwrap()).await
}

fn cpu_target() -> Value {
    json!([{"refId": "A", "target": "cpu_usage_percent", "payload": {"host": "h0"}}])
}

/// A `/grafana/query` body with raw JSON for the numbers, so that values no Rust integer
/// holds can be sent.
fn body(from: &str, to: &str, max_points: &str, interval_ms: &str, targets: &Value) -> Value {
    let text = format!(
        r#"{{"range": {{"from": {from}, "to": {to}}}, "maxDataPoints": {max_points}, "intervalMs": {interval_ms}, "targets": {targets}}}"#
    );
    serde_json::from_str(&text).unwrap()
}

/// `(status, error message)` of a query.
async fn query(st: &AppState, from: &str, to: &str, points: &str, interval: &str) -> (u16, String) {
    let (code, body) = post(
        st,
        "/grafana/query",
        body(from, to, points, interval, &cpu_target()),
    )
    .await;
    (
        code.as_u16(),
        body["error"].as_str().unwrap_or("").to_owned(),
    )
}

#[tokio::test]
async fn grafana_numbers_that_overflow_get_a_400_with_a_message() {
    // An hour ago, so that the raw tier answers (for T0, months ago, only the hour tier does).
    let t0 = (pi_subscriber::ingest::unix_ms_now() - 3_600_000) / 60_000 * 60_000;
    let st = state_at(1, t0);
    let from = format!("\"{t0}\"");
    let to = format!("\"{}\"", t0 + 600_000);
    // A sane query answers: the 40 raw samples.
    let (code, body) = post(
        &st,
        "/grafana/query",
        body(&from, &to, "1000", "15000", &cpu_target()),
    )
    .await;
    assert_eq!(code, StatusCode::OK, "{body}");
    assert_eq!(body[0]["datapoints"].as_array().unwrap().len(), 40);

    let (code, message) = query(&st, &from, &to, "18446744073709551615", "1000").await;
    assert_eq!(code, 400);
    assert_eq!(
        message,
        "maxDataPoints 18446744073709551615 is not an integer between 1 and 10000"
    );
    let (code, message) = query(&st, &from, &to, "0", "1000").await;
    assert_eq!(
        (code, message.as_str()),
        (400, "maxDataPoints 0 is not an integer between 1 and 10000")
    );
    let (code, message) = query(&st, &from, &to, "1000", "-1").await;
    assert_eq!(code, 400);
    assert_eq!(
        message,
        "intervalMs -1 is not an integer between 0 and 31622400000 (366 days)"
    );
    let (code, _) = query(&st, &from, &to, "1000", "9223372036854775808").await;
    assert_eq!(code, 400);
    let (code, _) = query(&st, &from, &to, "1000", "1.5e300").await;
    assert_eq!(code, 400);
    // Extreme, reversed and impossible ranges.
    let (code, message) = query(
        &st,
        "\"-9223372036854775808\"",
        "\"9223372036854775807\"",
        "1000",
        "0",
    )
    .await;
    assert_eq!(code, 400);
    assert_eq!(
        message,
        "range.from \"-9223372036854775808\" is not a time between 1970 and 2200"
    );
    let (code, message) = query(&st, &from, "\"9223372036854775807\"", "1000", "0").await;
    assert_eq!(
        (code, message.as_str()),
        (
            400,
            "range.to \"9223372036854775807\" is not a time between 1970 and 2200"
        )
    );
    let (code, message) = query(&st, "\"2026-13-45T00:00:00Z\"", &to, "1000", "0").await;
    assert_eq!(
        (code, message.as_str()),
        (
            400,
            "range.from \"2026-13-45T00:00:00Z\" is not a time between 1970 and 2200"
        )
    );
    let (code, message) = query(&st, &to, &from, "1000", "0").await;
    assert_eq!(
        (code, message.as_str()),
        (400, "range.from is after range.to")
    );
    // The whole span 1970..2200 is a legal range: bounded by maxDataPoints, it answers.
    let (code, _) = query(&st, "\"0\"", "\"7258118400000\"", "1000", "0").await;
    assert_eq!(code, 200);
    // Annotations check their range too.
    let (code, _) = post(&st, "/grafana/annotations", json!({"range": {"from": "-9223372036854775808", "to": "9223372036854775807"}, "annotation": {}})).await;
    assert_eq!(code, StatusCode::BAD_REQUEST);
}

#[tokio::test]
async fn grafana_targets_times_hosts_times_points_is_bounded() {
    let st = state(3);
    let from = format!("\"{T0}\"");
    let to = format!("\"{}\"", T0 + 600_000);
    let many: Vec<Value> = (0..17)
        .map(|i| json!({"refId": format!("T{i}"), "target": "cpu_usage_percent"}))
        .collect();
    let (code, b) = post(
        &st,
        "/grafana/query",
        body(&from, &to, "100", "0", &Value::Array(many)),
    )
    .await;
    assert_eq!(code, StatusCode::BAD_REQUEST);
    assert_eq!(b["error"], "17 targets in one query; at most 16");
    // A host list that names thousands of hosts.
    let hosts: Vec<String> = (0..200).map(|i| format!("h{i}")).collect();
    let t = json!([{"target": "cpu_usage_percent", "payload": {"host": hosts}}]);
    let (code, b) = post(&st, "/grafana/query", body(&from, &to, "100", "0", &t)).await;
    assert_eq!(code, StatusCode::BAD_REQUEST);
    assert_eq!(
        b["error"],
        "200 series (targets × hosts) in one query; at most 128"
    );
    // 16 targets × 3 hosts × 10000 points is more than one answer may hold.
    let all: Vec<Value> = (0..16)
        .map(|i| json!({"refId": format!("T{i}"), "target": "cpu_usage_percent"}))
        .collect();
    let (code, b) = post(
        &st,
        "/grafana/query",
        body(
            "\"0\"",
            "\"7258118400000\"",
            "10000",
            "0",
            &Value::Array(all),
        ),
    )
    .await;
    assert_eq!(code, StatusCode::BAD_REQUEST);
    assert_eq!(b["error"], "48 series × 10000 points is more than 200000 points; narrow the range, lower maxDataPoints or raise intervalMs");
}

#[tokio::test]
async fn history_extreme_times_get_a_400() {
    let st = state(1);
    let (code, rows) = get(&st, &format!("/history?host=h0&from={T0}")).await;
    assert_eq!(code, StatusCode::OK);
    assert_eq!(rows.as_array().unwrap().len(), 40);
    for uri in [
        "/history?host=h0&from=-9223372036854775808",
        "/history?host=h0&to=-9223372036854775808",
        "/history?host=h0&from=-5",
        "/history?host=h0&to=9223372036854775807",
    ] {
        let (code, body) = get(&st, uri).await;
        assert_eq!(code, StatusCode::BAD_REQUEST, "{uri}: {body}");
        assert!(
            body["error"]
                .as_str()
                .unwrap()
                .contains("between 1970 and 2200"),
            "{uri}: {body}"
        );
    }
    let (code, _) = get(&st, "/history?host=h0&from=99999999999999999999").await;
    assert_eq!(code, StatusCode::BAD_REQUEST);
}

/// Issue 18 item 9: `label: "*"` expands to every series of the metric on every host; the
/// series bound counts what it expands to, before a row is read.
#[tokio::test]
async fn grafana_label_star_counts_every_series_it_expands_to() {
    let st = support::app_state(0);
    for h in 0..2 {
        let s = Snapshot {
            v: 1,
            host: format!("h{h}"),
            seq: 1,
            ts: T0 / 1000,
            ts_ms: T0,
            cpu: Some(Cpu {
                per_core_percent: (0..100).map(|c| Some(c as f64)).collect(),
                ..Cpu::default()
            }),
            ..Snapshot::default()
        };
        st.store.ingest(s, Source::Mqtt, Instant::now(), T0);
    }
    let from = format!("\"{T0}\"");
    let to = format!("\"{}\"", T0 + 600_000);
    let star = |host: Option<&str>| {
        let mut payload = json!({"label": "*"});
        if let Some(h) = host {
            payload["host"] = json!(h);
        }
        json!([{"refId": "A", "target": "cpu_core_usage_percent", "payload": payload}])
    };
    // One host: its 100 cores, within the bound.
    let (code, b) = post(
        &st,
        "/grafana/query",
        body(&from, &to, "100", "0", &star(Some("h0"))),
    )
    .await;
    assert_eq!(code, StatusCode::OK, "{b}");
    assert_eq!(b.as_array().unwrap().len(), 100);
    // Both hosts: 200 series, though the target names one metric and no host.
    let (code, b) = post(
        &st,
        "/grafana/query",
        body(&from, &to, "100", "0", &star(None)),
    )
    .await;
    assert_eq!(
        code,
        StatusCode::BAD_REQUEST,
        "{} series answered",
        b.as_array().map_or(0, Vec::len)
    );
    assert_eq!(
        b["error"],
        "200 series (targets × hosts × labels) in one query; at most 128"
    );
    // The points bound counts them too: 100 series × 10000 points.
    let (code, b) = post(
        &st,
        "/grafana/query",
        body(
            "\"0\"",
            "\"7258118400000\"",
            "10000",
            "0",
            &star(Some("h0")),
        ),
    )
    .await;
    assert_eq!(code, StatusCode::BAD_REQUEST, "{b}");
    assert_eq!(b["error"], "100 series × 10000 points is more than 200000 points; narrow the range, lower maxDataPoints or raise intervalMs");
}
