//! Remote write on the Pi (issue 21): catch-up after an outage, bytes on the wire per
//! sample, and the CPU of forwarding 10 hosts at 1 s. The receiver is a loopback HTTP server
//! in this process that counts bytes and answers 204 (it decodes nothing, so its cost is
//! small); the history is a real database in a temporary directory.
//!
//! Run: `cargo bench -p pi-subscriber --bench remote_write`
//! Env: `RW_OUTAGE_S` (default 3600: one hour of 10 hosts at 1 s), `RW_LIVE_S` (default 60).
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use pi_subscriber::config::remote_write::RemoteWriteSettings;
use pi_subscriber::config::Settings;
use pi_subscriber::store::{SharedStore, Source};

const HOSTS: u64 = 10;

/// This process's CPU time (utime + stime of `/proc/self/stat`, 10 ms ticks).
fn cpu_time() -> Duration {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap();
    let rest = &stat[stat.rfind(')').unwrap() + 2..];
    let f: Vec<u64> = rest
        .split_whitespace()
        .map(|x| x.parse().unwrap_or(0))
        .collect();
    Duration::from_millis((f[11] + f[12]) * 10)
}

fn rss_kb() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .unwrap()
        .lines()
        .find(|l| l.starts_with("VmRSS:"))
        .and_then(|l| l.split_whitespace().nth(1)?.parse().ok())
        .unwrap_or(0)
}

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64
}

/// A receiver on loopback: counts requests and body bytes, answers 204.
fn receiver(rt: &tokio::runtime::Runtime) -> (String, Arc<AtomicU64>, Arc<AtomicU64>) {
    let bytes = Arc::new(AtomicU64::new(0));
    let requests = Arc::new(AtomicU64::new(0));
    let (b, r) = (bytes.clone(), requests.clone());
    let app = axum::Router::new().route(
        "/api/v1/write",
        axum::routing::post(move |body: axum::body::Bytes| {
            let (b, r) = (b.clone(), r.clone());
            async move {
                b.fetch_add(body.len() as u64, Ordering::Relaxed);
                r.fetch_add(1, Ordering::Relaxed);
                axum::http::StatusCode::NO_CONTENT
            }
        }),
    );
    let listener = rt
        .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
        .unwrap();
    let url = format!("http://{}/api/v1/write", listener.local_addr().unwrap());
    rt.spawn(async move { axum::serve(listener, app).await.unwrap() });
    (url, bytes, requests)
}

fn store(dir: &std::path::Path) -> SharedStore {
    let s = Settings {
        data_dir: dir.to_owned(),
        ..Settings::default()
    };
    SharedStore::open(&s, now_ms()).unwrap()
}

fn ingest(store: &SharedStore, host: u64, seq: u64, ts_ms: i64) {
    let mut snap = common::at(&format!("host{host}"), seq, ts_ms);
    snap.interval_s = 1.0;
    store.ingest(
        snap,
        Source::Backfill,
        tokio::time::Instant::now(),
        now_ms(),
    );
}

fn main() {
    let outage_s: u64 = std::env::var("RW_OUTAGE_S")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(3600);
    let live_s: u64 = std::env::var("RW_LIVE_S")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(60);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let _guard = rt.enter();
    let dir = tempfile::tempdir().unwrap();
    let store = store(dir.path());
    let (url, bytes, requests) = receiver(&rt);
    let remote = RemoteWriteSettings {
        name: "bench".into(),
        url,
        ..RemoteWriteSettings::default()
    };

    // 1. An outage: an hour of 10 hosts at 1 s is stored while the receiver is unknown…
    store.rw_register("bench").unwrap();
    let start_ms = now_ms() - outage_s as i64 * 1000;
    for i in 0..outage_s {
        for h in 0..HOSTS {
            ingest(&store, h, i + 1, start_ms + i as i64 * 1000);
        }
        if i % 60 == 0 {
            store.commit().unwrap();
        }
    }
    store.commit().unwrap();
    let (backlog, behind) = store.rw_backlog("bench", |_| true).unwrap();
    // …then the shipper starts and catches up.
    let cpu0 = cpu_time();
    let t0 = Instant::now();
    let remotes = pi_subscriber::remote_write::start(&[remote], &store).unwrap();
    let writer = {
        let store = store.clone();
        std::thread::spawn(move || loop {
            std::thread::sleep(Duration::from_millis(500));
            if store.commit().is_err() {
                break;
            }
        })
    };
    loop {
        std::thread::sleep(Duration::from_millis(200));
        let s = &remotes.stats()[0];
        if s.backlog_samples == 0 && s.samples_sent_total > 0 {
            break;
        }
        assert!(
            t0.elapsed() < Duration::from_secs(3600),
            "never caught up: {s:?}"
        );
    }
    let wall = t0.elapsed().as_secs_f64();
    let cpu = (cpu_time() - cpu0).as_secs_f64();
    let s = remotes.stats()[0].clone();
    println!(
        "catch-up: {backlog} stored samples ({behind:.0} s behind, {} hosts), {} series samples in {} requests: {wall:.1} s wall, {cpu:.1} s CPU: {:.0} stored samples/s, {:.0} series samples/s",
        HOSTS,
        s.samples_sent_total,
        requests.load(Ordering::Relaxed),
        backlog as f64 / wall,
        s.samples_sent_total as f64 / wall,
    );
    let wire = bytes.load(Ordering::Relaxed);
    println!(
        "wire: {wire} bytes: {:.2} bytes per series sample, {:.0} bytes per stored sample (snappy-compressed protobuf)",
        wire as f64 / s.samples_sent_total as f64,
        wire as f64 / backlog as f64,
    );

    // 2. Live: 10 hosts at 1 s while the shipper forwards them.
    let sent0 = remotes.stats()[0].samples_sent_total;
    let cpu0 = cpu_time();
    let t0 = Instant::now();
    for i in 0..live_s {
        let ts = now_ms();
        for h in 0..HOSTS {
            ingest(&store, h, outage_s + i + 1, ts);
        }
        std::thread::sleep(
            Duration::from_secs(1).saturating_sub(t0.elapsed() - Duration::from_secs(i)),
        );
    }
    std::thread::sleep(Duration::from_secs(2));
    let cpu = (cpu_time() - cpu0).as_secs_f64();
    let sent = remotes.stats()[0].samples_sent_total - sent0;
    println!(
        "live: {HOSTS} hosts at 1 s for {live_s} s (ingest + history + forwarding): {:.1} ms CPU per second, {sent} series samples sent, VmRSS {} kB (this process: store, shipper, receiver)",
        cpu * 1000.0 / (live_s as f64 + 2.0),
        rss_kb()
    );
    drop(remotes);
    drop(writer);
}
