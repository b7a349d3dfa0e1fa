//! Handlers through `tower::ServiceExt::oneshot` (no socket), and the sampler on paused time.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use axum::http::StatusCode;
use broker::Snapshot;
use daemon_kit::stats::Stats;
use publisher::collectors::{Collectors, Roots};
use publisher::events::EventLog;
use publisher::http::{router, AppState};
use publisher::ring::Ring;
use publisher::sampler::{Sampler, SamplerStats};
use publisher::shared_ring::SharedRing;
use serde_json::Value;
use tokio::sync::watch;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

struct Fixture {
    _dir: tempfile::TempDir,
    state: AppState,
    latest: watch::Sender<Option<Arc<Snapshot>>>,
}

fn fixture(interval: Duration) -> Fixture {
    let dir = tempfile::tempdir().unwrap();
    let (ring, _) = Ring::open(&dir.path().join("ring"), 100, false).unwrap();
    let (latest, latest_rx) = watch::channel(None);
    let state = AppState {
        host: "h".into(),
        interval,
        latest: latest_rx,
        ring: SharedRing::new(ring),
        events: EventLog::new(dir.path()),
        stats: Stats::<SamplerStats>::default(),
        mqtt: None,
        broker: None,
        started: Instant::now(),
        request_timeout: Duration::from_secs(5),
        remote_write: Default::default(),
    };
    Fixture {
        _dir: dir,
        state,
        latest,
    }
}

async fn call(state: &AppState, uri: &str) -> (StatusCode, Value) {
    common::oneshot_get(router(state.clone()), uri).await
}

#[tokio::test]
async fn latest_is_503_with_a_json_error_before_the_first_sample() {
    let f = fixture(Duration::from_secs(15));
    let (status, body) = call(&f.state, "/latest").await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
    assert!(body["error"].as_str().unwrap().contains("no sample yet"));
    f.latest.send_replace(Some(Arc::new(Snapshot {
        seq: 7,
        host: "h".into(),
        ..Snapshot::default()
    })));
    let (status, body) = call(&f.state, "/latest").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body["seq"], 7);
}

#[tokio::test]
async fn history_pages_by_seq() {
    let f = fixture(Duration::from_secs(15));
    {
        let ring = &f.state.ring;
        for seq in 10..20 {
            ring.append(&Snapshot {
                seq,
                ..Snapshot::default()
            })
            .unwrap();
        }
    }
    let (status, body) = call(&f.state, "/history?since_seq=15&limit=3").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body["count"], 3);
    assert_eq!(body["oldest_seq"], 10);
    assert_eq!(body["newest_seq"], 19);
    let seqs: Vec<u64> = body["snapshots"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["seq"].as_u64().unwrap())
        .collect();
    assert_eq!(seqs, [16, 17, 18]);
    let (status, body) = call(&f.state, "/history?since_seq=-1").await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(body["error"].as_str().unwrap().contains("since_seq"));
}

#[tokio::test(start_paused = true)]
async fn health_turns_stale_after_three_intervals_without_a_sample() {
    let f = fixture(Duration::from_secs(15));
    let (status, body) = call(&f.state, "/health").await;
    assert_eq!(
        (status, body["status"].as_str()),
        (StatusCode::OK, Some("ok")),
        "starting up"
    );
    f.state
        .stats
        .update(|s| s.last_sample_at = Some(Instant::now()));
    tokio::time::advance(Duration::from_secs(45)).await;
    let (status, _) = call(&f.state, "/health").await;
    assert_eq!(status, StatusCode::OK, "exactly 3 intervals is still ok");
    tokio::time::advance(Duration::from_secs(1)).await;
    let (status, body) = call(&f.state, "/health").await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(body["status"], "stale");
    assert_eq!(body["last_sample_age_s"], 46.0);
}

fn sampler(dir: &Path, machine: &str, interval: Duration) -> (Sampler, AppState) {
    let roots = Roots::under(
        Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("tests/fixtures")
            .join(machine),
    );
    let f = fixture(interval);
    let (ring, _) = Ring::open(&dir.join("ring"), 100, false).unwrap();
    let ring = SharedRing::new(ring);
    let (latest, latest_rx) = watch::channel(None);
    let state = AppState {
        ring: ring.clone(),
        latest: latest_rx,
        ..f.state
    };
    let sampler = Sampler {
        host: "h".into(),
        interval,
        collectors: Some(Collectors::new(
            roots,
            publisher::collectors::network::default_filter(),
        )),
        ring,
        latest,
        stats: state.stats.clone(),
        next_seq: 41,
        events: EventLog::new(dir),
        keep_events: 10,
        units: None,
    };
    (sampler, state)
}

#[tokio::test(start_paused = true)]
async fn sampler_ticks_on_a_fixed_schedule_and_continues_seq() {
    let dir = tempfile::tempdir().unwrap();
    let (sampler, state) = sampler(dir.path(), "rpi4", Duration::from_secs(15));
    let shutdown = CancellationToken::new();
    let task = tokio::spawn(sampler.run(shutdown.clone()));
    // First sample after 1 s, then at 16, 31, 46, 61 s.
    tokio::time::sleep(Duration::from_millis(61_500)).await;
    assert_eq!(state.stats.snapshot().samples_total, 5);
    let latest = state.latest.borrow().clone().unwrap();
    assert_eq!(latest.seq, 45);
    assert_eq!(latest.host, "h");
    assert_eq!(latest.interval_s, 15.0);
    assert_eq!(latest.thermal.cpu_temp_c, Some(48.686));
    assert_eq!(state.ring.page(0, 1).unwrap().newest_seq, Some(45));
    shutdown.cancel();
    task.await.unwrap();
    tokio::time::sleep(Duration::from_secs(60)).await;
    assert_eq!(
        state.stats.snapshot().samples_total,
        5,
        "stopped means stopped"
    );
}
