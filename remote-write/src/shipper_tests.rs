//! The shipper against a receiver on loopback that takes every batch.
#![allow(clippy::unwrap_used)]

use std::sync::atomic::{AtomicUsize, Ordering};

use super::*;
use crate::client::Endpoint;

/// `batches` batches of one sample each; counts the calls it gets.
struct Counted {
    left: usize,
    acked: Arc<AtomicUsize>,
    backlogs: Arc<AtomicUsize>,
}

impl Queue for Counted {
    type Mark = ();

    fn next(&mut self, _max: usize) -> Result<Option<(Batch, ())>, String> {
        if self.left == 0 {
            return Ok(None);
        }
        let mut b = Batch::new();
        b.push(
            "up",
            &[("host", "tower")],
            1_700_000_000_000 + self.left as i64,
            1.0,
        );
        Ok(Some((b, ())))
    }

    fn ack(&mut self, _: ()) -> Result<(), String> {
        self.left -= 1;
        self.acked.fetch_add(1, Ordering::SeqCst);
        Ok(())
    }

    fn backlog(&mut self) -> Result<(u64, f64), String> {
        self.backlogs.fetch_add(1, Ordering::SeqCst);
        Ok((self.left as u64, 0.0))
    }
}

/// Counting the backlog reads every unsent sample's key: a catch-up of many batches counts it
/// once every `BACKLOG_EVERY` and at rest, not once a batch, and it reads 0 once drained.
#[tokio::test]
async fn a_catch_up_counts_its_backlog_once_in_a_while_not_once_a_batch() {
    let app = axum::Router::new().route(
        "/api/v1/write",
        axum::routing::post(|| async { axum::http::StatusCode::NO_CONTENT }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/api/v1/write", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    let client = Client::new(&Endpoint {
        name: "test".into(),
        url,
        basic_auth: None,
        bearer_token: None,
        headers: Vec::new(),
        ca_file: None,
        timeout: Duration::from_secs(5),
    })
    .unwrap();
    let (acked, backlogs) = (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)));
    let queue = Counted {
        left: 200,
        acked: acked.clone(),
        backlogs: backlogs.clone(),
    };
    let settings = Settings {
        idle: Duration::from_millis(50),
        ..Settings::default()
    };
    let start = std::time::Instant::now();
    let shipper = Shipper::spawn(client, queue, settings);
    while acked.load(Ordering::SeqCst) < 200 {
        assert!(start.elapsed() < Duration::from_secs(30), "stuck");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let counts = backlogs.load(Ordering::SeqCst);
    // At the start, every BACKLOG_EVERY, and once drained.
    let bound = 2 + (start.elapsed().as_secs_f64() / BACKLOG_EVERY.as_secs_f64()) as usize;
    assert!(counts <= bound, "{counts} counts for 200 batches");
    // Drained: the next turn counts again and reads 0.
    while shipper.stats().backlog_samples != 0 {
        assert!(
            start.elapsed() < Duration::from_secs(30),
            "backlog never read 0"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}
