//! The raw tier's day files (`tsdb::raw_log`, issue 22 target 3) against its SQLite tables:
//! the bytes one day of raw rows costs in each, with the same rows and the same commits.
//!
//! One day of `BENCH_HOSTS` (1, else 10) tower-sized hosts at 15 s (`BENCH_PROCESSES=1` with
//! the top-process lists) is ingested into a store without warm-up, then its raw rows are
//! read back and appended to a `RawLog`, synced every `BENCH_COMMIT_S` seconds of sample time
//! (300: `history.commit_interval`'s default), as the writer would before each commit.
//! Counted by the kernel for the log alone: `wchar` (bytes handed to `write`) and
//! `write_bytes` (page-cache pages dirtied: a partly written page synced and written to
//! again counts again).
//!
//! Run: `cargo bench -p pi-subscriber --bench raw_log`.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::collections::BTreeMap;

use pi_subscriber::tsdb::raw_log::{RawLog, RawRecord};
use pi_subscriber::tsdb::{Retention, Tsdb};

const DAY_MS: i64 = 86_400_000;

fn env(name: &str, default: i64) -> i64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn anon_kb() -> i64 {
    std::fs::read_to_string("/proc/self/status")
        .unwrap()
        .lines()
        .find_map(|l| l.strip_prefix("RssAnon:"))
        .and_then(|v| v.trim().trim_end_matches(" kB").parse().ok())
        .unwrap()
}

/// In the child: opens the log and prints what its index added to the anonymous RSS.
fn index_only(dir: &str, lens: &str) {
    let lens: BTreeMap<i64, u64> = lens
        .split(',')
        .filter_map(|p| p.split_once(':'))
        .map(|(d, l)| (d.parse().unwrap(), l.parse().unwrap()))
        .collect();
    let before = anon_kb();
    let (log, _) = RawLog::open(std::path::Path::new(dir), &lens).unwrap();
    let after = anon_kb();
    assert_eq!(log.days().count(), lens.len());
    println!("{}", after - before);
}

fn main() {
    if let (Ok(dir), Ok(lens)) = (
        std::env::var("RAW_LOG_INDEX"),
        std::env::var("RAW_LOG_LENS"),
    ) {
        return index_only(&dir, &lens);
    }
    let n = env("BENCH_HOSTS", 1) as usize;
    let every_ms = env("BENCH_COMMIT_S", 300) * 1000;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("h.sqlite");
    let retention = Retention {
        raw_ms: 2 * DAY_MS,
        minute_ms: 14 * DAY_MS,
        hour_ms: 730 * DAY_MS,
    };
    // A whole UTC day, so every row lands in one day's file.
    let day = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64
        / DAY_MS
        - 1;
    let start = day * DAY_MS;
    let mut db = Tsdb::open(&path, retention, 500 * n, start + DAY_MS).unwrap();
    let hosts: Vec<String> = (0..n).map(|i| format!("tower{i}")).collect();
    for i in 0..5760u64 {
        let ts = start + i as i64 * 15_000;
        for h in &hosts {
            db.ingest(&common::at(h, i + 1, ts), true, ts).unwrap();
        }
        if i % 20 == 19 {
            db.commit().unwrap();
        }
    }
    db.commit().unwrap();
    drop(db);
    // The store's own day files, at the lengths its last commit stored.
    let conn = rusqlite::Connection::open(&path).unwrap();
    let mut stmt = conn
        .prepare("SELECT key, value FROM meta WHERE key GLOB 'raw_log:*'")
        .unwrap();
    let lens: BTreeMap<i64, u64> = stmt
        .query_map([], |r| {
            let key: String = r.get(0)?;
            Ok((key[8..].parse().unwrap(), r.get::<_, i64>(1)? as u64))
        })
        .unwrap()
        .map(Result::unwrap)
        .collect();
    let mut files = path.as_os_str().to_owned();
    files.push(".raw");
    let (stored_log, _) = RawLog::open(std::path::Path::new(&files), &lens).unwrap();
    let rows: Vec<(i64, RawRecord)> = stored_log
        .walk(i64::MIN, i64::MAX, None, false)
        .map(|r| (r.key.div_euclid(256), r))
        .collect();
    drop(stored_log);
    assert_eq!(rows.len(), 5760 * n);
    let count = rows.len();
    let stored: usize = rows
        .iter()
        .map(|(_, r)| r.data.len() + r.top.as_ref().map_or(0, Vec::len))
        .sum();
    let logdir = dir.path().join("raw");
    let (mut log, _) = RawLog::open(&logdir, &BTreeMap::new()).unwrap();
    let before = common::io();
    let mut last = start;
    for (ts, r) in &rows {
        if ts - last >= every_ms {
            log.sync().unwrap();
            log.committed();
            last = *ts;
        }
        log.append(day, r).unwrap();
    }
    log.sync().unwrap();
    log.committed();
    let after = common::io();
    let lens = log.sync().unwrap();
    let per_host = |b: u64| b as f64 / n as f64 / 1e6;
    println!(
        "raw log, {n} host(s): {:.2} MB per host per day (wchar; write_bytes {:.2} MB) for {:.2} MB of rows ({:.1} B a row), a sync every {} s",
        per_host(after.0 - before.0),
        per_host(after.1 - before.1),
        stored as f64 / n as f64 / 1e6,
        stored as f64 / count as f64,
        every_ms / 1000
    );
    // The index a reopen builds, in a process of its own (this one's heap holds the rows).
    let lens: Vec<String> = lens.iter().map(|(d, l)| format!("{d}:{l}")).collect();
    let out = std::process::Command::new(std::env::current_exe().unwrap())
        .env("RAW_LOG_INDEX", logdir.as_os_str())
        .env("RAW_LOG_LENS", lens.join(","))
        .output()
        .unwrap();
    let kb: i64 = String::from_utf8_lossy(&out.stdout).trim().parse().unwrap();
    println!(
        "raw log index: {kb} kB of anonymous memory for {} records ({:.0} B a record)",
        5760 * n,
        kb as f64 * 1024.0 / (5760 * n) as f64
    );
}
