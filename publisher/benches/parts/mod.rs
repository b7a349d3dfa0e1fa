//! `SAMPLE_COST_PARTS=1`: each collector of one sample alone (its state kept between samples,
//! as in [`Collectors`]), and the JSON, CPU per sample from getrusage: what costs what.

use std::time::{Duration, Instant};

use broker::Snapshot;
use publisher::collectors::{
    cpu, disk, host, load, memory, network, power, ChipFilter, Collectors, FilesystemCollector,
    Roots, ThermalCollector,
};

use crate::common::cpu_time;

fn part(name: &str, iterations: u32, mut f: impl FnMut()) -> Duration {
    for _ in 0..100 {
        f();
    }
    let cpu0 = cpu_time();
    for _ in 0..iterations {
        f();
    }
    let cpu = (cpu_time() - cpu0) / iterations;
    println!(
        "    {name:<28}: {:>7.2} µs CPU/sample",
        cpu.as_secs_f64() * 1e6
    );
    cpu
}

pub fn measure(roots: &Roots, collectors: &mut Collectors, iterations: u32) {
    println!("  parts:");
    let mut total = Duration::ZERO;
    let mut stat = cpu::StatReader::new(roots);
    let mut sample = cpu::StatSample::default();
    total += part("stat", iterations, || {
        let _ = stat.read_into(&mut sample);
    });
    let mut d = disk::DiskReader::new(roots);
    total += part("diskstats", iterations, || {
        let _ = std::hint::black_box(d.read());
    });
    let mut n = network::NetDevReader::new(roots, network::default_filter());
    total += part("net/dev", iterations, || {
        let _ = std::hint::black_box(n.read());
    });
    let (mut l, mut m, mut h) = (
        load::LoadReader::new(roots),
        memory::MemReader::new(roots),
        host::HostReader::new(roots),
    );
    total += part("loadavg meminfo uptime boot_id", iterations, || {
        let _ = std::hint::black_box((l.read(), m.read(), h.uptime(), h.boot_id()));
    });
    let mut t = ThermalCollector::new(roots, ChipFilter::default());
    total += part("thermal (zones, hwmon)", iterations, || {
        let _ = std::hint::black_box(t.read(Instant::now()));
    });
    let mut p = power::PowerCollector::new(roots);
    total += part("power", iterations, || {
        let _ = std::hint::black_box(p.read(Instant::now()));
    });
    let mut f = FilesystemCollector::system();
    total += part("filesystems (statvfs thread)", iterations, || {
        let _ = std::hint::black_box(f.read(roots));
    });
    let snapshot = collectors.sample().into_snapshot(Snapshot {
        v: 1,
        host: "bench".into(),
        ..Snapshot::default()
    });
    total += part("JSON", iterations, || {
        let _ = std::hint::black_box(serde_json::to_vec(&snapshot));
    });
    println!(
        "    {:<28}: {:>7.2} µs CPU/sample",
        "sum",
        total.as_secs_f64() * 1e6
    );
}
