//! Filesystems on the Pi: `/metrics` passes them through, `/series` keeps a series per mount,
//! `/prometheus` exports node_exporter-like families. Handlers through `oneshot`, no socket.
#![allow(clippy::unwrap_used, clippy::expect_used)]

#[path = "../../publisher/tests/common/mod.rs"]
mod common;
mod support;

use axum::http::StatusCode;
use broker::{Filesystem, Snapshot};
use pi_subscriber::http::router;
use pi_subscriber::store::Source;
use serde_json::json;
use tokio::time::Instant;

/// Ten minutes ago on a whole minute, so the raw tier answers.
fn t0() -> i64 {
    (pi_subscriber::ingest::unix_ms_now() - 600_000) / 60_000 * 60_000
}

fn snapshot(t0: i64, seq: u64, root_used: u64) -> Snapshot {
    let root = Filesystem {
        device: "nvme0n1p2".into(),
        fstype: "ext4".into(),
        size_bytes: 1_000_000,
        used_bytes: root_used,
        avail_bytes: 1_000_000 - root_used - 50_000,
        files: 100,
        files_free: 40,
    };
    let boot = Filesystem {
        device: "nvme0n1p1".into(),
        fstype: "vfat".into(),
        size_bytes: 4096,
        used_bytes: 1024,
        avail_bytes: 3072,
        files: 0,
        files_free: 0,
    };
    Snapshot {
        v: 1,
        host: "tower".into(),
        seq,
        ts: t0 / 1000 + 15 * seq as i64,
        ts_ms: t0 + 15_000 * seq as i64,
        boot_id: Some("b".into()),
        filesystems: Some(
            [
                ("/".to_string(), Some(root)),
                ("/boot/efi".to_string(), Some(boot)),
                ("/mnt/nas".to_string(), None),
            ]
            .into(),
        ),
        ..Snapshot::default()
    }
}

#[tokio::test]
async fn metrics_series_and_prometheus_carry_every_mount() {
    let st = support::app_state(100);
    let t0 = t0();
    for (seq, used) in [(1, 450_000), (2, 500_000)] {
        let s = snapshot(t0, seq, used);
        let now_ms = s.ts_ms;
        st.store.ingest(s, Source::Mqtt, Instant::now(), now_ms);
    }

    let (code, m) = common::oneshot_get(router(st.clone()), "/metrics?host=tower").await;
    assert_eq!(code, StatusCode::OK, "{m}");
    assert_eq!(
        m["filesystems"],
        json!({
            "/": {"device":"nvme0n1p2","fstype":"ext4","size_bytes":1_000_000,"used_bytes":500_000,
                  "avail_bytes":450_000,"files":100,"files_free":40},
            "/boot/efi": {"device":"nvme0n1p1","fstype":"vfat","size_bytes":4096,"used_bytes":1024,
                  "avail_bytes":3072,"files":0,"files_free":0},
            "/mnt/nas": null
        })
    );

    let (from, to) = (t0, t0 + 60_000);
    let (code, body) = common::oneshot_get(
        router(st.clone()),
        &format!("/series?host=tower&metric=filesystem_used_percent&mount=/&from={from}&to={to}"),
    )
    .await;
    assert_eq!(code, StatusCode::OK, "{body}");
    // 450000 / (450000 + 500000) and 500000 / (500000 + 450000).
    let points = &body["series"][0]["points"];
    assert_eq!(body["series"][0]["labels"], json!({"mount": "/"}));
    assert_eq!(points[0][0], t0 + 15_000);
    assert!(
        (points[0][1].as_f64().unwrap() - 47.368_421).abs() < 1e-5,
        "{points}"
    );
    assert!(
        (points[1][1].as_f64().unwrap() - 52.631_578).abs() < 1e-5,
        "{points}"
    );

    let text = pi_subscriber::prometheus::scrape(&st.prometheus).unwrap();
    let root = r#"{host="tower",mountpoint="/",device="nvme0n1p2",fstype="ext4"}"#;
    let efi = r#"{host="tower",mountpoint="/boot/efi",device="nvme0n1p1",fstype="vfat"}"#;
    for line in [
        "# TYPE server_analytics_filesystem_size_bytes gauge".to_string(),
        format!("server_analytics_filesystem_size_bytes{root} 1000000.0"),
        format!("server_analytics_filesystem_avail_bytes{root} 450000.0"),
        format!("server_analytics_filesystem_used_ratio{efi} 0.25"),
        format!("server_analytics_filesystem_files{root} 100.0"),
        format!("server_analytics_filesystem_files_free{root} 40.0"),
    ] {
        assert!(text.lines().any(|l| l == line), "no {line:?} in\n{text}");
    }
    assert!(
        !text.contains("/mnt/nas"),
        "a timed-out mount has no sample"
    );
}
