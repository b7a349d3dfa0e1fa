//! A receiver that refuses: 400 for the first batch (dropped, counted, never sent again), 503
//! with `Retry-After` for the second (sent again, the same bytes), then 204. A scripted
//! receiver, because no real one answers 400 and 503 on demand; what it is sent is checked
//! against the Remote Write 1.0 spec (headers, snappy, protobuf, sorted labels, time order).
#![allow(clippy::unwrap_used, clippy::expect_used)]

#[path = "../../publisher/tests/common/mod.rs"]
mod common;
mod support;

use std::sync::{Arc, Mutex};

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::IntoResponse;
use common::Publisher;
use support::Subscriber;

#[derive(Default)]
struct Seen {
    /// (status answered, body, headers) per request.
    requests: Vec<(u16, Bytes, HeaderMap)>,
}

async fn write(
    State(seen): State<Arc<Mutex<Seen>>>,
    headers: HeaderMap,
    body: Bytes,
) -> axum::response::Response {
    let mut s = seen.lock().unwrap();
    let status = match s.requests.len() {
        0 => 400,
        1 => 503,
        _ => 204,
    };
    s.requests.push((status, body, headers));
    match status {
        400 => (StatusCode::BAD_REQUEST, "out of bounds: sample too old").into_response(),
        503 => (
            StatusCode::SERVICE_UNAVAILABLE,
            [("retry-after", "1")],
            "busy",
        )
            .into_response(),
        _ => StatusCode::NO_CONTENT.into_response(),
    }
}

#[test]
fn a_400_batch_is_dropped_and_counted_a_503_batch_is_sent_again() {
    let seen = Arc::new(Mutex::new(Seen::default()));
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    listener.set_nonblocking(true).unwrap();
    let addr = listener.local_addr().unwrap();
    let app = axum::Router::new()
        .route("/api/v1/write", axum::routing::post(write))
        .with_state(seen.clone());
    std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async move {
            let listener = tokio::net::TcpListener::from_std(listener).unwrap();
            axum::serve(listener, app).await.unwrap();
        });
    });

    let (pdir, sdir) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let cfg = sdir.path().join("pi.toml");
    std::fs::write(
        &cfg,
        format!(
            "[[remote_write]]\nname = \"scripted\"\nurl = \"http://{addr}/api/v1/write\"\n\
             max_samples_per_send = 40\nmin_backoff = \"100ms\"\nmax_backoff = \"200ms\"\n\
             username = \"pi\"\npassword = \"s3cret\"\n\
             headers = {{ X-Scope-OrgID = \"home\" }}\n"
        ),
    )
    .unwrap();
    let p = Publisher::start(pdir.path(), &["--interval", "200ms"]);
    let s = Subscriber::start(
        sdir.path(),
        p.mqtt_port,
        &p.url("/latest"),
        &["--config", cfg.to_str().unwrap(), "--max-age", "600"],
        &[],
    );
    let h = s.wait_for("/health", |h| {
        h["remote_write"][0]["batches_sent_total"].as_u64() >= Some(3)
    });
    let r = &h["remote_write"][0];
    assert_eq!(r["name"], "scripted");
    assert_eq!(r["batches_dropped_total"], 1, "{r}");
    assert!(r["batches_retried_total"].as_u64() >= Some(1), "{r}");

    let seen = seen.lock().unwrap();
    let reqs = &seen.requests;
    let (s0, refused, headers) = &reqs[0];
    assert_eq!(*s0, 400);
    let dropped = remote_write::batch::decode(refused).expect("snappy + protobuf");
    let n: usize = dropped.timeseries.iter().map(|t| t.samples.len()).sum();
    assert_eq!(r["samples_dropped_total"], n as u64, "{r}");
    assert!(r["last_error"].as_str().is_some());
    // The 503'd batch is sent again, byte for byte, and the refused one never again.
    assert_eq!(reqs[1].0, 503);
    assert_eq!(reqs[2].1, reqs[1].1);
    assert!(reqs[1..].iter().all(|(_, b, _)| b != refused));
    // Remote Write 1.0: headers, sorted labels, each series in time order.
    for (k, v) in [
        ("content-encoding", "snappy"),
        ("content-type", "application/x-protobuf"),
        ("x-prometheus-remote-write-version", "0.1.0"),
        ("x-scope-orgid", "home"),
        // Basic auth: base64("pi:s3cret").
        ("authorization", "Basic cGk6czNjcmV0"),
    ] {
        assert_eq!(headers.get(k).and_then(|v| v.to_str().ok()), Some(v), "{k}");
    }
    for (_, body, _) in reqs.iter() {
        let req = remote_write::batch::decode(body).unwrap();
        for ts in &req.timeseries {
            let names: Vec<&str> = ts.labels.iter().map(|l| l.name.as_str()).collect();
            let mut sorted = names.clone();
            sorted.sort_unstable();
            assert_eq!(names, sorted);
            assert_eq!(names[0], "__name__");
            assert!(names.contains(&"job") && names.contains(&"host"));
            assert!(ts
                .samples
                .windows(2)
                .all(|w| w[0].timestamp < w[1].timestamp));
        }
    }
}
