//! Handlers through `tower::ServiceExt::oneshot` (no socket), on paused time.
#![allow(clippy::unwrap_used, clippy::expect_used)]

#[path = "../../publisher/tests/common/mod.rs"]
mod common;
mod support;

use std::time::Duration;

use axum::http::StatusCode;
use broker::{Disk, Snapshot};
use pi_subscriber::http::{router, AppState};
use pi_subscriber::store::Source;
use serde_json::Value;
use tokio::time::Instant;

fn state() -> AppState {
    support::app_state(100)
}

async fn call(state: &AppState, uri: &str) -> (StatusCode, Value) {
    common::oneshot_get(router(state.clone()), uri).await
}

fn snap(host: &str, seq: u64, ts_s: i64, read: u64) -> Snapshot {
    Snapshot {
        v: 1,
        host: host.into(),
        seq,
        ts: ts_s,
        ts_ms: ts_s * 1000,
        boot_id: Some("b".into()),
        disk: Some(Disk {
            read_sectors: read,
            write_sectors: 0,
            ..Disk::default()
        }),
        ..Snapshot::default()
    }
}

fn ingest(state: &AppState, s: Snapshot) {
    let now_ms = s.ts_ms;
    state.store.ingest(s, Source::Mqtt, Instant::now(), now_ms);
}

#[tokio::test(start_paused = true)]
async fn before_any_data_metrics_is_503_and_health_stale() {
    let st = state();
    let (code, body) = call(&st, "/metrics").await;
    assert_eq!(code, StatusCode::SERVICE_UNAVAILABLE);
    assert!(body["error"].as_str().unwrap().contains("no data"));
    let (code, body) = call(&st, "/health").await;
    assert_eq!(code, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(body["status"], "stale");
    assert_eq!(call(&st, "/metrics?host=x").await.0, StatusCode::NOT_FOUND);
    // A retained status of a host that never sent data does not make the Pi healthy...
    st.store.set_status("ghost", "offline", 100_000).unwrap();
    assert_eq!(
        call(&st, "/health").await.0,
        StatusCode::SERVICE_UNAVAILABLE
    );
    // ...nor stale once real data flows.
    ingest(&st, snap("tower", 1, 1_700_000_000, 0));
    let (code, body) = call(&st, "/health").await;
    assert_eq!(code, StatusCode::OK, "{body}");
    assert_eq!(body["hosts"].as_array().unwrap().len(), 2);
}

#[tokio::test(start_paused = true)]
async fn metrics_rates_and_staleness_on_the_pis_clock() {
    let st = state();
    ingest(&st, snap("tower", 1, 1_700_000_000, 1000));
    ingest(&st, snap("tower", 2, 1_700_000_015, 1300));
    let (code, m) = call(&st, "/metrics").await;
    assert_eq!(code, StatusCode::OK);
    assert_eq!(m["seq"], 2);
    assert_eq!(m["disk"]["read_sectors_rate"], 20.0);
    assert_eq!(m["disk"]["read_bytes_rate"], 10240.0);
    assert!(m["network"].is_null());
    assert_eq!(m["stale"], false);
    assert_eq!(call(&st, "/health").await.0, StatusCode::OK);
    tokio::time::advance(Duration::from_secs(46)).await;
    let (code, h) = call(&st, "/health").await;
    assert_eq!(code, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(h["hosts"][0]["stale"], true);
    assert_eq!(call(&st, "/metrics").await.1["stale"], true);
    // New data: fresh again.
    ingest(&st, snap("tower", 3, 1_700_000_030, 1300));
    assert_eq!(call(&st, "/health").await.0, StatusCode::OK);
}

#[tokio::test(start_paused = true)]
async fn history_rows_by_time_in_seconds_or_milliseconds() {
    let st = state();
    for i in 0..10 {
        ingest(
            &st,
            snap("tower", i + 1, 1_700_000_000 + 15 * i as i64, 100 * i),
        );
    }
    let (code, rows) = call(&st, "/history?host=tower&from=1700000030&to=1700000060").await;
    assert_eq!(code, StatusCode::OK);
    let seqs: Vec<u64> = rows
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["seq"].as_u64().unwrap())
        .collect();
    assert_eq!(seqs, [3, 4, 5]);
    let (_, ms) = call(
        &st,
        "/history?host=tower&from=1700000030000&to=1700000060000",
    )
    .await;
    assert_eq!(ms, rows);
    assert_eq!(rows[0]["time"], 1_700_000_030_000i64);
    assert_eq!(
        rows[0]["disk_read_sectors_rate"], 6.667,
        "100 sectors in 15 s, 3 decimals"
    );
    // Every key present, null where there is no value.
    assert!(rows[0].as_object().unwrap().contains_key("cpu_temp_c"));
    assert!(rows[0]["cpu_temp_c"].is_null());
    assert_eq!(
        call(&st, "/history?host=tower&from=5&to=1").await.0,
        StatusCode::BAD_REQUEST
    );
    assert_eq!(
        call(&st, "/history?host=tower&from=soon").await.0,
        StatusCode::BAD_REQUEST
    );
    assert_eq!(
        call(&st, "/history?host=ghost").await.0,
        StatusCode::NOT_FOUND
    );
}

/// `DELETE /hosts/{host}` from `peer`, with an optional bearer token.
async fn delete_from(
    state: &AppState,
    peer: [u8; 4],
    host: &str,
    token: Option<&str>,
) -> StatusCode {
    use axum::extract::connect_info::MockConnectInfo;
    use tower::ServiceExt;
    let app =
        router(state.clone()).layer(MockConnectInfo(std::net::SocketAddr::from((peer, 5555))));
    let mut request = axum::http::Request::delete(format!("/hosts/{host}"));
    if let Some(token) = token {
        request = request.header("Authorization", format!("Bearer {token}"));
    }
    let request = request.body(axum::body::Body::empty()).unwrap();
    app.oneshot(request).await.unwrap().status()
}

#[tokio::test(start_paused = true)]
async fn forgetting_a_host_needs_loopback_or_the_admin_token() {
    let mut state = state();
    let now = Instant::now();
    for host in ["a", "b"] {
        state
            .store
            .ingest(snap(host, 1, 100, 0), Source::Mqtt, now, 100_000);
    }
    let lan = [192, 0, 2, 7];
    assert_eq!(
        delete_from(&state, lan, "a", None).await,
        StatusCode::FORBIDDEN
    );
    assert_eq!(
        delete_from(&state, [127, 0, 0, 1], "a", None).await,
        StatusCode::OK
    );
    assert_eq!(
        delete_from(&state, [127, 0, 0, 1], "a", None).await,
        StatusCode::NOT_FOUND
    );
    state.admin_token = Some("0123456789abcdef-secret".into());
    assert_eq!(
        delete_from(&state, lan, "b", None).await,
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        delete_from(&state, lan, "b", Some("0123456789abcdef-wrong!")).await,
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        delete_from(&state, lan, "b", Some("0123456789abcdef-secret")).await,
        StatusCode::OK
    );
    assert!(state.store.host_names().unwrap().is_empty());
    assert_eq!(call(&state, "/hosts").await.1, serde_json::json!([]));
}

/// Issue 19 item 3: `/history` is built from the raw tier's flat rows without a row type of
/// its own; its bytes stay what they were (the seed's field names, in the seed's order,
/// rounded as before, `null` where there is no value).
#[tokio::test(start_paused = true)]
async fn history_bytes_are_the_seeds() {
    use broker::{Cpu, Memory, Network, Thermal};
    use http_body_util::BodyExt;
    use tower::ServiceExt;
    let st = state();
    for i in 0..3u64 {
        let mut s = snap("tower", i + 1, 1_700_000_000 + 15 * i as i64, 100 * i);
        s.cpu = Some(Cpu {
            usage_percent: Some(45.23 + i as f64),
            load_1m: Some(1.42),
            load_5m: (i > 0).then_some(0.5),
            load_15m: None,
            ..Cpu::default()
        });
        s.memory = Some(Memory {
            available_mb: 20952,
            total_mb: 31951,
            swap_used_mb: 1159,
            swap_total_mb: 2048,
        });
        s.thermal = Thermal {
            cpu_temp_c: Some(52.5),
            ..Thermal::default()
        };
        s.network = Some(Network {
            rx_bytes: 1000 * i * i,
            tx_bytes: 7 * i,
            ..Network::default()
        });
        ingest(&st, s);
    }
    let request = axum::http::Request::get("/history?host=tower")
        .body(axum::body::Body::empty())
        .unwrap();
    let response = router(st.clone()).oneshot(request).await.unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let bytes = response.into_body().collect().await.unwrap().to_bytes();
    let text = String::from_utf8(bytes.to_vec()).unwrap();
    let expected = [
        r#"{"time":1700000000000,"host":"tower","seq":1,"cpu_usage_percent":45.23,"load_1m":1.42,"load_5m":null,"load_15m":null,"memory_available_mb":20952.0,"memory_total_mb":31951.0,"memory_used_percent":34.425,"swap_used_mb":1159.0,"cpu_temp_c":52.5,"disk_read_sectors_rate":null,"disk_write_sectors_rate":null,"disk_read_bytes_rate":null,"disk_write_bytes_rate":null,"network_rx_bytes_rate":null,"network_tx_bytes_rate":null}"#,
        r#"{"time":1700000015000,"host":"tower","seq":2,"cpu_usage_percent":46.23,"load_1m":1.42,"load_5m":0.5,"load_15m":null,"memory_available_mb":20952.0,"memory_total_mb":31951.0,"memory_used_percent":34.425,"swap_used_mb":1159.0,"cpu_temp_c":52.5,"disk_read_sectors_rate":6.667,"disk_write_sectors_rate":0.0,"disk_read_bytes_rate":3413.333,"disk_write_bytes_rate":0.0,"network_rx_bytes_rate":66.667,"network_tx_bytes_rate":0.467}"#,
        r#"{"time":1700000030000,"host":"tower","seq":3,"cpu_usage_percent":47.23,"load_1m":1.42,"load_5m":0.5,"load_15m":null,"memory_available_mb":20952.0,"memory_total_mb":31951.0,"memory_used_percent":34.425,"swap_used_mb":1159.0,"cpu_temp_c":52.5,"disk_read_sectors_rate":6.667,"disk_write_sectors_rate":0.0,"disk_read_bytes_rate":3413.333,"disk_write_bytes_rate":0.0,"network_rx_bytes_rate":200.0,"network_tx_bytes_rate":0.467}"#,
    ];
    assert_eq!(text, format!("[{}]", expected.join(",")));
}
