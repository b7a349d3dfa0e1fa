//! Cost of the filesystem collector per sample: the tower fixture (26 mountinfo lines, 9
//! filesystems reported; `statvfs` answered from the fixture's table through the helper
//! thread, so this is parsing + selection + the thread hand-off), and this machine with the
//! real `statvfs`. `cargo bench -p publisher --bench filesystems`; `FS_BENCH_ITERATIONS`.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;
use common::cpu_time;

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use publisher::collectors::filesystem::{read_mountinfo, select, FilesystemCollector, Selection};
use publisher::collectors::statvfs::FixedStatvfs;
use publisher::collectors::Roots;

fn measure(name: &str, roots: &Roots, mut c: FilesystemCollector, iterations: u32) {
    let mut mounts = 0;
    for _ in 0..100 {
        mounts = c.read(roots).unwrap().len();
    }
    let (wall0, cpu0) = (Instant::now(), cpu_time());
    for _ in 0..iterations {
        mounts = c.read(roots).unwrap().len();
    }
    let wall = wall0.elapsed() / iterations;
    let cpu = (cpu_time() - cpu0) / iterations;
    println!(
        "  {name:<8}: {:>8.1} µs CPU/sample, {:>8.1} µs wall/sample ({mounts} filesystems, {iterations} samples, {} thread(s))",
        cpu.as_secs_f64() * 1e6,
        wall.as_secs_f64() * 1e6,
        c.threads()
    );
}

fn main() {
    let iterations = std::env::var("FS_BENCH_ITERATIONS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(5000);
    let tower = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/tower");
    let table = std::fs::read_to_string(tower.join("statvfs")).unwrap();
    let fixed = FilesystemCollector::new(
        Selection::default(),
        Arc::new(FixedStatvfs::parse(&table).unwrap()),
        Duration::from_secs(1),
    );
    println!("filesystems:");
    // Reading and selecting the mounts alone, without any statvfs.
    let roots = Roots::under(&tower);
    let selection = Selection::default();
    let (wall0, cpu0) = (Instant::now(), cpu_time());
    let mut n = 0;
    for _ in 0..iterations {
        n = select(read_mountinfo(&roots).unwrap(), &selection).len();
    }
    println!(
        "  mountinfo: {:>6.1} µs CPU/sample, {:>8.1} µs wall/sample (read + parse + select, {n} kept)",
        ((cpu_time() - cpu0) / iterations).as_secs_f64() * 1e6,
        (wall0.elapsed() / iterations).as_secs_f64() * 1e6
    );
    measure("tower", &Roots::under(&tower), fixed, iterations);
    measure(
        "live",
        &Roots::default(),
        FilesystemCollector::system(),
        iterations,
    );
}
