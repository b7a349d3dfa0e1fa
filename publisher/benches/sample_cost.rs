//! CPU cost of one full sample (every collector, parse + serialize) against the original's
//! shell approach (awk over the same files plus a python JSON write), measured the same way:
//! CPU time (user + system, from getrusage) per sample.
//!
//! Run: `cargo bench -p publisher --bench sample_cost`
//! Env: `SAMPLE_COST_ROOT=<dir with proc/ and sys/>` (default: this machine's /proc and /sys),
//!      `SAMPLE_COST_ITERATIONS` (default 5000), `SAMPLE_COST_SHELL_RUNS` (default 100; 0 skips
//!      the shell, for a tree without `/proc` such as the rpi5 fixture),
//!      `SAMPLE_COST_PROCESSES=1` (with the top processes), `SAMPLE_COST_PARTS=1` (each
//!      collector alone too: what costs what).
//! A fixture tree's mounts are asked through its `statvfs` table (what that machine's kernel
//! answered), as the publisher's fixture tests do: asking this machine's kernel about another
//! machine's mount points measured failures (ENOENT) instead (until 2026-12-07).
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;
mod parts;
use common::cpu_time_of as cpu_time;

use std::path::PathBuf;
use std::process::Command;
use std::time::Instant;

use broker::Snapshot;
use publisher::collectors::{Collectors, Roots};

fn env_usize(key: &str, default: usize) -> usize {
    std::env::var(key)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn main() {
    // `cargo bench` passes `--bench`; nothing to parse.
    let roots = match std::env::var_os("SAMPLE_COST_ROOT") {
        Some(dir) => Roots::under(PathBuf::from(dir)),
        None => Roots::default(),
    };
    let iterations = env_usize("SAMPLE_COST_ITERATIONS", 5000);
    let shell_runs = env_usize("SAMPLE_COST_SHELL_RUNS", 100);

    // `SAMPLE_COST_PROCESSES=1`: with the top processes (the daemon's default).
    let processes = std::env::var_os("SAMPLE_COST_PROCESSES")
        .map(|_| publisher::collectors::processes::ProcessCollector::new(5, "/etc/passwd"));
    println!(
        "processes: {}",
        if processes.is_some() { "on" } else { "off" }
    );
    let table = std::env::var_os("SAMPLE_COST_ROOT")
        .and_then(|dir| std::fs::read_to_string(PathBuf::from(dir).join("statvfs")).ok());
    let mut collectors = Collectors::new(
        roots.clone(),
        publisher::collectors::network::default_filter(),
    )
    .with_processes(processes);
    if let Some(table) = table {
        use publisher::collectors::filesystem::{FilesystemCollector, Selection};
        use publisher::collectors::statvfs::FixedStatvfs;
        collectors = collectors.with_filesystems(Some(FilesystemCollector::new(
            Selection::default(),
            std::sync::Arc::new(FixedStatvfs::parse(&table).expect("the fixture's statvfs table")),
            std::time::Duration::from_secs(1),
        )));
    }
    collectors.prime();
    let mut bytes = 0usize;
    // Warm-up.
    for _ in 0..100 {
        bytes = one_sample(&mut collectors);
    }
    let (wall0, cpu0) = (Instant::now(), cpu_time(libc::RUSAGE_SELF));
    for _ in 0..iterations {
        bytes = one_sample(&mut collectors);
    }
    let rust_wall = wall0.elapsed() / iterations as u32;
    let rust_cpu = (cpu_time(libc::RUSAGE_SELF) - cpu0) / iterations as u32;

    println!(
        "sample_cost: proc={} sys={}",
        roots.proc.display(),
        roots.sys.display()
    );
    println!("  rust   : {:>10.1} µs CPU/sample, {:>10.1} µs wall/sample ({iterations} samples, {bytes} B JSON)",
        rust_cpu.as_secs_f64() * 1e6, rust_wall.as_secs_f64() * 1e6);
    if std::env::var_os("SAMPLE_COST_PARTS").is_some() {
        parts::measure(&roots, &mut collectors, iterations as u32);
    }
    if shell_runs == 0 {
        return;
    }
    let script = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../bench/seed_sample.sh");
    let out = std::env::temp_dir().join(format!("seed-sample-{}.json", std::process::id()));
    let (wall0, cpu0) = (Instant::now(), cpu_time(libc::RUSAGE_CHILDREN));
    for _ in 0..shell_runs {
        let status = Command::new("sh")
            .arg(&script)
            .arg(&out)
            .env("PROC_ROOT", &roots.proc)
            .env("SYS_ROOT", &roots.sys)
            .status()
            .expect("run bench/seed_sample.sh (needs sh, awk, python3)");
        assert!(status.success());
    }
    let shell_wall = wall0.elapsed() / shell_runs as u32;
    let shell_cpu = (cpu_time(libc::RUSAGE_CHILDREN) - cpu0) / shell_runs as u32;
    let _ = std::fs::remove_file(&out);

    println!(
        "  seed sh: {:>10.1} µs CPU/sample, {:>10.1} µs wall/sample ({shell_runs} runs)",
        shell_cpu.as_secs_f64() * 1e6,
        shell_wall.as_secs_f64() * 1e6
    );
    println!(
        "  ratio  : {:.0}x less CPU, {:.0}x less wall time",
        shell_cpu.as_secs_f64() / rust_cpu.as_secs_f64().max(1e-9),
        shell_wall.as_secs_f64() / rust_wall.as_secs_f64().max(1e-9)
    );
}

fn one_sample(collectors: &mut Collectors) -> usize {
    let snapshot = collectors.sample().into_snapshot(Snapshot {
        v: 1,
        host: "bench".into(),
        ..Snapshot::default()
    });
    serde_json::to_vec(&snapshot).unwrap().len()
}
