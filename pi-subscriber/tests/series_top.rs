//! `/series/top` through `oneshot`: the stored lists exactly, `null` where none are stored,
//! and a 4xx (never a panic) for every hostile parameter.
#![allow(clippy::unwrap_used, clippy::expect_used)]

#[path = "../../publisher/tests/common/mod.rs"]
mod common;
mod support;

use axum::http::StatusCode;
use broker::{Cpu, ProcessTop, Processes, Snapshot};
use pi_subscriber::http::{router, AppState};
use pi_subscriber::store::Source;
use serde_json::{json, Value};
use tokio::time::Instant;

async fn call(state: &AppState, uri: &str) -> (StatusCode, Value) {
    common::oneshot_get(router(state.clone()), uri).await
}

fn snap(host: &str, seq: u64, ts_ms: i64, with_lists: bool) -> Snapshot {
    let hog = ProcessTop {
        pid: 4242,
        name: "ffmpeg".into(),
        user: Some("media".into()),
        cpu_percent: Some(187.25),
        rss_bytes: 491_520_000,
    };
    Snapshot {
        v: 1,
        host: host.into(),
        seq,
        ts: ts_ms / 1000,
        ts_ms,
        boot_id: Some("b".into()),
        cpu: Some(Cpu {
            usage_percent: Some(50.0),
            ..Cpu::default()
        }),
        processes: with_lists.then(|| Processes {
            count: 212,
            top_cpu: vec![hog.clone()],
            top_rss: vec![hog],
        }),
        ..Snapshot::default()
    }
}

/// `tower` has lists at t0 and t0 + 15 s; `nas` (an older publisher) has none.
fn state() -> (AppState, i64) {
    let st = support::app_state(100);
    let now = pi_subscriber::ingest::unix_ms_now();
    let t0 = (now - 600_000) / 60_000 * 60_000;
    for (host, lists) in [("tower", true), ("nas", false)] {
        for i in 0..2 {
            let ts = t0 + i * 15_000;
            st.store.ingest(
                snap(host, i as u64 + 1, ts, lists),
                Source::Mqtt,
                Instant::now(),
                ts,
            );
        }
    }
    (st, t0)
}

#[tokio::test]
async fn the_stored_lists_exactly_and_null_where_a_host_sends_none() {
    let (st, t0) = state();
    let (code, body) = call(&st, &format!("/series/top?host=tower&at={}", t0 + 9_000)).await;
    assert_eq!(code, StatusCode::OK, "{body}");
    let hog = json!({"pid": 4242, "name": "ffmpeg", "user": "media", "cpu_percent": 187.25,
                     "rss_bytes": 491_520_000u64});
    assert_eq!(
        body,
        json!({"host": "tower", "tier": "raw",
               "top_cpu": {"ts_ms": t0 + 15_000, "processes": [hog]},
               "top_rss": {"ts_ms": t0 + 15_000, "processes": [hog]}})
    );
    // A range: the minute's peak (50 % twice: the first).
    let (_, body) = call(
        &st,
        &format!("/series/top?host=tower&from={t0}&to={}", t0 + 59_999),
    )
    .await;
    assert_eq!(body["tier"], "1m");
    assert_eq!(body["top_cpu"]["ts_ms"], t0);
    let (code, body) = call(&st, &format!("/series/top?host=nas&at={t0}")).await;
    assert_eq!(code, StatusCode::OK);
    assert_eq!(
        body,
        json!({"host": "nas", "tier": null, "top_cpu": null, "top_rss": null})
    );
}

#[tokio::test]
async fn hostile_parameters_get_a_4xx_never_a_panic() {
    let (st, t0) = state();
    let (min, max) = (i64::MIN, i64::MAX);
    for (uri, want) in [
        (format!("/series/top?host=ghost&at={t0}"), 404),
        ("/series/top?host=tower".to_string(), 400),
        (
            format!("/series/top?host=tower&at={t0}&from={t0}&to={t0}"),
            400,
        ),
        (format!("/series/top?host=tower&from={t0}"), 400),
        (format!("/series/top?host=tower&at={min}"), 400),
        (format!("/series/top?host=tower&at={max}"), 400),
        ("/series/top?host=tower&at=-1".to_string(), 400),
        (format!("/series/top?host=tower&at={t0}&step=-1"), 400),
        (format!("/series/top?host=tower&at={t0}&step={max}"), 400),
        (
            format!("/series/top?host=tower&from={}&to={t0}", t0 + 1),
            400,
        ),
        (format!("/series/top?host=tower&from={min}&to={max}"), 400),
        (format!("/series/top?host=tower&at={t0}&bogus=1"), 400),
        ("/series/top?host=tower&at=x".to_string(), 400),
    ] {
        let (code, body) = call(&st, &uri).await;
        assert_eq!(code.as_u16(), want, "{uri}: {body}");
        assert!(body["error"].is_string(), "{uri}: {body}");
    }
    // The widest valid asks answer.
    let (code, body) = call(
        &st,
        &format!("/series/top?host=tower&at={t0}&step=315360000"),
    )
    .await;
    assert_eq!(code, StatusCode::OK, "{body}");
    assert_eq!(body["tier"], "1m");
    let (code, _) = call(&st, "/series/top?host=tower&at=0").await;
    assert_eq!(code, StatusCode::OK);
}
