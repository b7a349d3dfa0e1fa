//! CPU cost of the top-processes collector per process and sample, over a generated `/proc`
//! of 1 000 processes (and this machine's real `/proc`), CPU time from getrusage; on the real
//! `/proc` also with the same fork count every sample (no task created: `<proc>` not listed).
//! Back to back, almost no kernel thread runs between two samples, so almost every kernel
//! thread's `stat` is skipped: the real-`/proc` lines are a floor, not a 15 s sample's cost.
//!
//! Run: `cargo bench -p publisher --bench processes`
//! Env: `PROCESSES_ITERATIONS` (default 200).
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;
use common::cpu_time;

use std::time::{Duration, SystemTime};

use publisher::collectors::processes::ProcessCollector;
use publisher::collectors::Roots;

/// `forks`: the fork count handed to every read (`None`: `<proc>` listed each time).
fn measure(label: &str, roots: &Roots, iterations: usize, forks: Option<u64>) {
    let mut c = ProcessCollector::new(5, "/etc/passwd");
    let mut now = SystemTime::now();
    let first = c.read_counted(roots, now, forks).unwrap();
    let before = cpu_time();
    for _ in 0..iterations {
        now += Duration::from_secs(15);
        std::hint::black_box(c.read_counted(roots, now, forks).unwrap());
    }
    let per_sample = (cpu_time() - before) / iterations as u32;
    let n = first.count.max(1);
    println!(
        "{label}: {n} processes, {:.1} µs per sample, {:.2} µs per process, {:.1} kernel \
         threads' stat not read per sample",
        per_sample.as_secs_f64() * 1e6,
        per_sample.as_secs_f64() * 1e6 / f64::from(n),
        c.stat_reads_saved() as f64 / (iterations + 1) as f64
    );
}

fn main() {
    let iterations = std::env::var("PROCESSES_ITERATIONS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(200);
    let dir = tempfile::tempdir().unwrap();
    let proc = dir.path().join("proc");
    for pid in 1..=1000u32 {
        let d = proc.join(pid.to_string());
        std::fs::create_dir_all(&d).unwrap();
        std::fs::write(
            d.join("stat"),
            format!("{pid} (worker-{pid}) S 1 {pid} {pid} 0 -1 4194560 2000 0 3 0 {} 50 0 0 20 0 1 0 {} 12345678 {} 18446744073709551615\n", pid * 7, pid * 3, pid * 11),
        )
        .unwrap();
    }
    measure(
        "generated /proc",
        &Roots::under(dir.path()),
        iterations,
        None,
    );
    measure("this machine's /proc", &Roots::default(), iterations, None);
    measure(
        "this machine's /proc, no task created (not listed)",
        &Roots::default(),
        iterations,
        Some(0),
    );
}
