//! Subscriber benchmarks (issue targets in parentheses):
//! 1. ingest throughput, one core: validate + store (+ the rates `/metrics` computes) of
//!    realistic snapshots (≥ 20 000/s);
//! 2. RSS of the real `pi-subscriber` holding 24 h at 15 s for 10 hosts (< 12 MB): the
//!    history database is generated, the release binary opens it, VmRSS is read.
//!
//! Run: `cargo bench -p pi-subscriber --bench ingest`
//! (the `/metrics` latency under load is `bench/subscriber-load.sh`, with `hey`).
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::{Duration, Instant};

mod common;

use common::snapshot;
use pi_subscriber::ingest::Ingestor;
use pi_subscriber::store::{SharedStore, Source};
use pi_subscriber::tsdb::{Retention, Tsdb};

const DAY_MS: i64 = 86_400_000;

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64
}

fn throughput() {
    let n: u64 = 200_000;
    let hosts = 10;
    let now = now_ms();
    let per_host = n / hosts + 1;
    let payloads: Vec<(String, Vec<u8>)> = (1..=n)
        .map(|seq| {
            let host = format!("host{}", seq % hosts);
            let bytes =
                serde_json::to_vec(&snapshot(&host, seq / hosts + 1, per_host, now)).unwrap();
            (host, bytes)
        })
        .collect();
    let size = payloads[0].1.len();
    let (gaps, _keep) = tokio::sync::mpsc::channel(1 << 20);
    let ingestor = Ingestor {
        store: SharedStore::in_memory(64).unwrap(),
        gaps,
        max_payload: 256 * 1024,
        alerts: None,
        own_host: None,
    };
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let _guard = runtime.enter();
    let start = Instant::now();
    for (host, bytes) in &payloads {
        // The rates are computed once, at ingest (the one rate rule).
        ingestor
            .snapshot_payload(bytes, Some(host), Source::Mqtt)
            .unwrap();
    }
    let elapsed = start.elapsed();
    println!(
        "ingest: {n} snapshots of {size} B (10 hosts) in {:.3} s = {:.0} snapshots/s on one core ({:.1} µs each)",
        elapsed.as_secs_f64(),
        n as f64 / elapsed.as_secs_f64(),
        elapsed.as_secs_f64() * 1e6 / n as f64
    );
}

fn rss_for_a_day_of_ten_hosts() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("history.sqlite");
    let now = now_ms();
    let retention = Retention {
        raw_ms: 2 * DAY_MS,
        minute_ms: 14 * DAY_MS,
        hour_ms: 730 * DAY_MS,
    };
    {
        let mut db = Tsdb::open(&path, retention, 500, now).unwrap();
        for h in 0..10 {
            let host = format!("host{h}");
            for seq in 1..=5760 {
                db.ingest(&snapshot(&host, seq, 5760, now), true, now)
                    .unwrap();
            }
            db.commit().unwrap();
        }
    }
    let file_bytes = common::dir_bytes(dir.path());
    // Loading a day of 10 hosts takes well under a second; give it time to settle.
    let (rss, hwm) = common::rss_of_subscriber_on(dir.path(), Duration::from_secs(3));
    if std::env::var_os("INGEST_BENCH_KEEP").is_some() {
        let kept = dir.keep();
        println!("kept {}", kept.display());
    }
    println!(
        "memory: 10 hosts × 5760 rows (24 h at 15 s) in a {:.1} MB history database: VmRSS {rss}, VmHWM {hwm}",
        file_bytes as f64 / 1e6
    );
}

fn main() {
    throughput();
    rss_for_a_day_of_ten_hosts();
}
