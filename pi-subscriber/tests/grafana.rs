//! The simPod JSON datasource contract, with the request bodies Grafana sends (extra fields
//! and all), through `tower::ServiceExt::oneshot`; and `/prometheus` in OpenMetrics.
#![allow(clippy::unwrap_used, clippy::expect_used)]

#[path = "../../publisher/tests/common/mod.rs"]
mod common;
mod support;

use std::time::Duration;

use axum::body::Body;
use axum::http::{header, Request, StatusCode};
use broker::{Cpu, Disk, DiskDevice, JobEnd, JobEvent, JobStart, Snapshot};
use http_body_util::BodyExt;
use pi_subscriber::http::{router, AppState};
use pi_subscriber::store::Source;
use serde_json::{json, Value};
use tokio::time::Instant;
use tower::ServiceExt;

/// 2026-01-01T00:00:00Z: months ago, so only the hour tier answers for it.
const T0: i64 = 1_767_225_600_000;

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

/// One hour of 15 s samples for `host` from [`T0`]: see [`fill_at`].
fn fill(state: &AppState, host: &str) {
    fill_at(state, host, T0);
}

/// One hour of 15 s samples for `host` from `t0`: CPU % = minute of the hour, 100 sectors
/// read per sample, and no data between minutes 30 and 40 (an outage).
fn fill_at(state: &AppState, host: &str, t0: i64) {
    for i in 0..240u64 {
        let minute = i / 4;
        if (30..40).contains(&minute) {
            continue;
        }
        let ts_ms = t0 + i as i64 * 15_000;
        let s = Snapshot {
            v: 1,
            host: host.into(),
            seq: i + 1,
            ts: ts_ms / 1000,
            ts_ms,
            boot_id: Some("b".into()),
            cpu: Some(Cpu {
                usage_percent: Some(minute as f64),
                ..Cpu::default()
            }),
            disk: Some(Disk {
                read_sectors: 100 * i,
                write_sectors: 0,
                devices: [(
                    "sda".to_string(),
                    DiskDevice {
                        read_sectors: 100 * i,
                        write_sectors: 0,
                        ..Default::default()
                    },
                )]
                .into(),
            }),
            ..Snapshot::default()
        };
        state.store.ingest(s, Source::Mqtt, Instant::now(), ts_ms);
    }
    let store = &state.store;
    let start = t0 + 600_000;
    store
        .add_event(JobEvent::JobStart(JobStart {
            v: 1,
            run_id: "r1".into(),
            name: "backup".into(),
            host: host.into(),
            start_ts_ms: start,
            command: vec![],
        }))
        .unwrap();
    store
        .add_event(JobEvent::JobEnd(JobEnd {
            v: 1,
            run_id: "r1".into(),
            name: "backup".into(),
            host: host.into(),
            start_ts_ms: start,
            end_ts_ms: start + 90_000,
            duration_s: 90.0,
            exit_code: Some(0),
            ..JobEnd::default()
        }))
        .unwrap();
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
        "targets": targets, "maxDataPoints": max_points, "scopedVars": {"__interval": {"text": "15s", "value": "15s"}},
        "startTime": 1767225600000i64, "rangeRaw": {"from": "now-1h", "to": "now"},
        "adhocFilters": [], "filters": []
    })
}

#[tokio::test]
async fn save_and_test_and_metric_lists() {
    let st = state();
    fill(&st, "tower");
    let response = router(st.clone())
        .oneshot(Request::get("/grafana/").body(Body::empty()).unwrap())
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let response = router(st.clone())
        .oneshot(Request::get("/grafana").body(Body::empty()).unwrap())
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);

    let (code, metrics) = post(
        &st,
        "/grafana/metrics",
        json!({"metric": "", "payload": {}}),
    )
    .await;
    assert_eq!(code, StatusCode::OK);
    let names: Vec<&str> = metrics
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["value"].as_str().unwrap())
        .collect();
    assert!(
        names.contains(&"cpu_usage_percent")
            && names.contains(&"network_rx_bytes_rate")
            && names.contains(&"job_events")
    );
    let host_payload = &metrics[0]["payloads"][0];
    assert_eq!(host_payload["name"], "host");
    assert_eq!(
        host_payload["options"],
        json!([{"label": "tower", "value": "tower"}])
    );

    let (_, options) = post(
        &st,
        "/grafana/metric-payload-options",
        json!({"metric": "cpu_usage_percent", "payload": {"host": "tower"}, "name": "host"}),
    )
    .await;
    assert_eq!(options, json!([{"label": "tower", "value": "tower"}]));
    let (_, vars) = post(&st, "/grafana/variable", json!({"payload": {"target": "hosts"}, "range": {"from": iso(T0), "to": iso(T0)}, "rangeRaw": {}})).await;
    assert_eq!(vars, json!([{"__text": "tower", "__value": "tower"}]));
    // A `$device` variable: the label values of a per-device metric, per host or over all.
    let labels = |metric: &str, host: &str| json!({"payload": {"target": "labels", "metric": metric, "host": host}});
    let (code, vars) = post(
        &st,
        "/grafana/variable",
        labels("disk_read_bytes_rate", "tower"),
    )
    .await;
    assert_eq!(code, StatusCode::OK, "{vars}");
    assert_eq!(vars, json!([{"__text": "sda", "__value": "sda"}]));
    let (_, vars) = post(
        &st,
        "/grafana/variable",
        labels("disk_read_bytes_rate", "*"),
    )
    .await;
    assert_eq!(vars, json!([{"__text": "sda", "__value": "sda"}]));
    let (code, body) = post(&st, "/grafana/variable", labels("cpu_usage_percent", "")).await;
    assert_eq!(code, StatusCode::BAD_REQUEST, "{body}");
    let (code, body) = post(&st, "/grafana/variable", labels("no_such_metric", "")).await;
    assert_eq!(code, StatusCode::BAD_REQUEST, "{body}");
    let (code, body) = post(
        &st,
        "/grafana/variable",
        labels("disk_read_bytes_rate", "ghost"),
    )
    .await;
    assert_eq!(code, StatusCode::NOT_FOUND, "{body}");
    let (_, keys) = post(&st, "/grafana/tag-keys", json!({})).await;
    assert_eq!(keys, json!([{"type": "string", "text": "host"}]));
    let (_, values) = post(&st, "/grafana/tag-values", json!({"key": "host"})).await;
    assert_eq!(values, json!([{"text": "tower"}]));
}

#[tokio::test]
async fn query_timeseries_raw_with_nulls_for_the_outage() {
    let st = state();
    // Recent, so that the raw tier answers (for T0, months ago, only the hour tier does).
    let t0 = recent();
    fill_at(&st, "tower", t0);
    let targets = json!([{"refId": "A", "datasource": {"type": "simpod-json-datasource", "uid": "sa"}, "editorMode": "code",
                          "payload": {"host": "tower"}, "target": "cpu_usage_percent", "key": "Q-1", "hide": false}]);
    let (code, body) = post(
        &st,
        "/grafana/query",
        grafana_query(targets, t0, t0 + 3_600_000, 2000, 1000),
    )
    .await;
    assert_eq!(code, StatusCode::OK, "{body}");
    let series = &body[0];
    assert_eq!(series["target"], "cpu_usage_percent tower");
    let points = series["datapoints"].as_array().unwrap();
    assert_eq!(
        points.len(),
        200 + 1,
        "200 samples and one null marking the outage"
    );
    assert_eq!(points[0], json!([0.0, t0]));
    assert_eq!(points[119], json!([29.0, t0 + 119 * 15_000]));
    assert_eq!(
        points[120],
        json!([null, t0 + 120 * 15_000]),
        "explicit null for the gap"
    );
    assert_eq!(points[121], json!([40.0, t0 + 160 * 15_000]));
    assert!(
        points
            .windows(2)
            .all(|w| w[0][1].as_i64() < w[1][1].as_i64()),
        "ascending"
    );
}

#[tokio::test]
async fn query_downsamples_by_max_data_points_avg_and_max() {
    let st = state();
    // Recent, so that the raw tier answers (for T0, months ago, only the hour tier does).
    let t0 = recent();
    fill_at(&st, "tower", t0);
    let query = |agg: &str| {
        grafana_query(
            json!([{"refId": "A", "target": "cpu_usage_percent", "payload": {"host": "tower", "agg": agg}}]),
            t0,
            t0 + 3_600_000,
            12,
            1000,
        )
    };
    let (_, avg) = post(&st, "/grafana/query", query("avg")).await;
    let points = avg[0]["datapoints"].as_array().unwrap();
    // 12 buckets of 5 minutes; minutes 30-39 are empty: two explicit nulls. The range's end
    // (inclusive) starts a 13th, empty: a null, as `/series` answers.
    assert_eq!(points.len(), 13);
    assert_eq!(points[12], json!([null, t0 + 12 * 300_000]));
    assert_eq!(points[0], json!([2.0, t0]), "mean of minutes 0..=4");
    assert_eq!(points[6], json!([null, t0 + 6 * 300_000]));
    assert_eq!(points[7], json!([null, t0 + 7 * 300_000]));
    assert_eq!(points[8], json!([42.0, t0 + 8 * 300_000]));
    let (_, max) = post(&st, "/grafana/query", query("max")).await;
    assert_eq!(
        max[0]["datapoints"][0],
        json!([4.0, t0]),
        "max keeps the spike"
    );
    // Rates: 100 sectors per 15 s = 3413.333… bytes/s, unrounded as `/series` serves it.
    let (_, rate) = post(
        &st,
        "/grafana/query",
        grafana_query(
            json!([{"refId": "B", "target": "disk_read_bytes_rate", "payload": {"host": "tower"}}]),
            t0,
            t0 + 600_000,
            1000,
            15_000,
        ),
    )
    .await;
    assert_eq!(
        rate[0]["datapoints"][1],
        json!([100.0 * 512.0 / 15.0, t0 + 15_000])
    );
}

#[tokio::test]
async fn query_table_hosts_by_adhoc_filter_and_errors() {
    let st = state();
    // Recent, so that the raw tier answers (for T0, months ago, only the hour tier does).
    let t0 = recent();
    fill_at(&st, "tower", t0);
    fill_at(&st, "nas", t0);
    let table_of = |metric: &str| {
        let mut body = grafana_query(
            json!([{"refId": "A", "target": metric, "type": "table", "payload": {}}]),
            t0,
            t0 + 60_000,
            100,
            15_000,
        );
        body["adhocFilters"] =
            json!([{"key": "host", "operator": "=", "value": "nas", "condition": ""}]);
        body
    };
    let (code, table) = post(&st, "/grafana/query", table_of("load_1m")).await;
    assert_eq!(code, StatusCode::OK);
    assert_eq!(table[0]["type"], "table");
    assert_eq!(table[0]["columns"][2]["text"], "load_1m");
    // Neither host sends a load: no series, no rows (raw rows answered 5 of `null`).
    assert_eq!(table[0]["rows"], json!([]));
    let (code, table) = post(&st, "/grafana/query", table_of("cpu_usage_percent")).await;
    assert_eq!(code, StatusCode::OK);
    let at = |i: i64| t0 + i * 15_000;
    assert_eq!(
        table[0]["rows"],
        json!([
            [at(0), "nas", 0.0],
            [at(1), "nas", 0.0],
            [at(2), "nas", 0.0],
            [at(3), "nas", 0.0],
            [at(4), "nas", 1.0]
        ])
    );
    // Both hosts when no host is named.
    let (_, both) = post(
        &st,
        "/grafana/query",
        grafana_query(
            json!([{"refId": "A", "target": "cpu_usage_percent"}]),
            t0,
            t0 + 60_000,
            100,
            15_000,
        ),
    )
    .await;
    assert_eq!(both.as_array().unwrap().len(), 2);
    let (code, err) = post(
        &st,
        "/grafana/query",
        grafana_query(
            json!([{"refId": "A", "target": "nonsense"}]),
            t0,
            t0 + 1,
            1,
            1,
        ),
    )
    .await;
    assert_eq!(code, StatusCode::BAD_REQUEST);
    assert!(err["error"].as_str().unwrap().contains("nonsense"));
    let (code, _) = post(
        &st,
        "/grafana/query",
        json!({"range": {"from": "soon", "to": "later"}, "targets": []}),
    )
    .await;
    assert_eq!(code, StatusCode::BAD_REQUEST);
    let (code, _) = post(&st, "/grafana/query", json!("not an object")).await;
    assert_eq!(code, StatusCode::BAD_REQUEST);
}

#[tokio::test]
async fn job_runs_as_annotation_regions() {
    let st = state();
    fill(&st, "tower");
    let (_, table) = post(
        &st,
        "/grafana/query",
        grafana_query(
            json!([{"refId": "J", "target": "job_events", "payload": {"host": ["tower"]}}]),
            T0,
            T0 + 3_600_000,
            100,
            15_000,
        ),
    )
    .await;
    let rows = table[0]["rows"].as_array().unwrap();
    assert_eq!(rows.len(), 1, "start and end make one region");
    assert_eq!(
        rows[0],
        json!([
            T0 + 600_000,
            T0 + 690_000,
            "job backup",
            "rc=0, 90.0 s",
            "job,tower",
            "tower"
        ])
    );
    let (_, ann) = post(&st, "/grafana/annotations", json!({"range": {"from": iso(T0), "to": iso(T0 + 3_600_000)}, "annotation": {"name": "jobs", "enable": true, "query": ""}})).await;
    assert_eq!(ann[0]["time"], T0 + 600_000);
    assert_eq!(ann[0]["timeEnd"], T0 + 690_000);
    assert_eq!(ann[0]["isRegion"], true);
    assert_eq!(ann[0]["tags"], json!(["job", "tower"]));
}

#[tokio::test]
async fn openmetrics_names_units_and_raw_counters() {
    let st = state();
    fill(&st, "tower");
    let response = router(st.clone())
        .oneshot(Request::get("/prometheus").body(Body::empty()).unwrap())
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    assert!(response.headers()[header::CONTENT_TYPE]
        .to_str()
        .unwrap()
        .starts_with("application/openmetrics-text"));
    let text = String::from_utf8(
        response
            .into_body()
            .collect()
            .await
            .unwrap()
            .to_bytes()
            .to_vec(),
    )
    .unwrap();
    assert!(
        text.contains("server_analytics_up{host=\"tower\"} 1"),
        "{text}"
    );
    assert!(text.contains("# TYPE server_analytics_disk_read_bytes counter"));
    // The raw counter (239 samples x 100 sectors x 512), not a rate.
    assert!(
        text.contains(
            "server_analytics_disk_read_bytes_total{host=\"tower\",device=\"sda\"} 12236800"
        ),
        "{text}"
    );
    assert!(
        text.contains("server_analytics_cpu_usage_ratio{host=\"tower\"} 0.59"),
        "{text}"
    );
    assert!(text.trim_end().ends_with("# EOF"));
}

/// The shipped Grafana files: every panel asks for a metric the datasource serves, the
/// datasource URL points at `/grafana`, and the temperature panel has the 70/85 °C steps.
#[test]
fn shipped_grafana_files_match_the_datasource() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../configs/grafana");
    let dash: Value = serde_json::from_str(
        &std::fs::read_to_string(dir.join("dashboards/server-analytics.json")).unwrap(),
    )
    .unwrap();
    let panels = dash["panels"].as_array().unwrap();
    let titles: Vec<&str> = panels
        .iter()
        .map(|p| p["title"].as_str().unwrap())
        .collect();
    assert_eq!(
        titles,
        [
            "CPU usage",
            "Load average",
            "Memory used",
            "CPU temperature",
            "Disk throughput",
            "Network throughput"
        ]
    );
    for panel in panels {
        for target in panel["targets"].as_array().unwrap() {
            let metric = target["target"].as_str().unwrap();
            assert!(
                pi_subscriber::grafana::metric(metric).is_some(),
                "{metric} is not served"
            );
            assert_eq!(target["payload"]["host"], "$host");
            assert_eq!(target["datasource"]["uid"], "server-analytics-json");
        }
    }
    let temp = panels
        .iter()
        .find(|p| p["title"] == "CPU temperature")
        .unwrap();
    let steps: Vec<f64> = temp["fieldConfig"]["defaults"]["thresholds"]["steps"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|s| s["value"].as_f64())
        .collect();
    assert_eq!(steps, [70.0, 85.0]);
    assert_eq!(dash["templating"]["list"][0]["name"], "host");
    assert_eq!(
        dash["templating"]["list"][0]["query"]["payload"]["target"],
        "hosts"
    );
    assert_eq!(
        dash["annotations"]["list"][1]["target"]["target"],
        pi_subscriber::grafana::JOB_EVENTS
    );
    let datasources = std::fs::read_to_string(dir.join("datasources.yaml")).unwrap();
    assert!(datasources.contains("type: simpod-json-datasource"));
    assert!(datasources.contains(":9100/grafana"));
    assert!(datasources.contains("uid: server-analytics-json"));
    assert!(datasources.contains("type: prometheus"));
    let providers = std::fs::read_to_string(dir.join("dashboards.yaml")).unwrap();
    assert!(providers.contains("path: /var/lib/grafana/dashboards/server-analytics"));
}

#[tokio::test]
async fn registry_metrics_labels_and_summaries_come_from_the_tiered_store() {
    let st = state();
    fill(&st, "tower");
    let (_, metrics) = post(&st, "/grafana/metrics", json!({})).await;
    let list = metrics.as_array().unwrap();
    let find = |name: &str| list.iter().find(|m| m["value"] == name).cloned();
    let disk = find("disk_read_bytes_rate").unwrap();
    let names: Vec<&str> = disk["payloads"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["host", "agg", "label"]);
    let aggs: Vec<&str> = disk["payloads"][1]["options"]
        .as_array()
        .unwrap()
        .iter()
        .map(|o| o["value"].as_str().unwrap())
        .collect();
    assert_eq!(aggs, ["avg", "max", "min", "last"]);
    for name in [
        "filesystem_used_percent",
        "cpu_core_usage_percent",
        "sensor_temp_c",
    ] {
        assert!(find(name).is_some(), "{name} offered");
    }

    // T0 is months ago: the hour tier answers, one bucket for the hour; 100 sectors per
    // 15 s is 3413.33 bytes/s for the total and for sda alike.
    let query = |payload: Value| {
        grafana_query(
            json!([{"refId": "A", "target": "disk_read_bytes_rate", "payload": payload}]),
            T0,
            T0 + 3_599_999,
            12,
            1000,
        )
    };
    let (code, body) = post(
        &st,
        "/grafana/query",
        query(json!({"host": "tower", "label": "*", "agg": "min"})),
    )
    .await;
    assert_eq!(code, StatusCode::OK, "{body}");
    let targets: Vec<&str> = body
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["target"].as_str().unwrap())
        .collect();
    assert_eq!(
        targets,
        [
            "disk_read_bytes_rate tower",
            "disk_read_bytes_rate tower sda"
        ]
    );
    for series in body.as_array().unwrap() {
        let points = series["datapoints"].as_array().unwrap();
        assert_eq!(points.len(), 1, "{series}");
        assert_eq!(points[0][1], T0);
        let v = points[0][0].as_f64().unwrap();
        assert!((v - 100.0 * 512.0 / 15.0).abs() < 1e-6, "{v}");
    }
    let (code, body) = post(
        &st,
        "/grafana/query",
        query(json!({"host": "tower", "agg": "median"})),
    )
    .await;
    assert_eq!(code, StatusCode::BAD_REQUEST, "{body}");
}
