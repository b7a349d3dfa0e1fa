//! What the Pi's benchmarks feed it: a tower-sized snapshot.
#![allow(dead_code)]

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

use broker::{Cpu, Disk, DiskDevice, Memory, Network, NetworkInterface, Snapshot, Thermal};

/// A tower-sized snapshot (12 cores, 4 disks, 2 interfaces, 17 sensors): ~1.3 KB of JSON.
/// Values vary with `seq` as a busy machine's do.
///
/// Samples end at the Pi's clock: seq 1 is `count` samples ago.
pub fn snapshot(host: &str, seq: u64, count: u64, now_ms: i64) -> Snapshot {
    let ts_ms = now_ms - (count as i64 - seq as i64) * 15_000;
    at(host, seq, ts_ms)
}

/// The tower's snapshot number `seq`, taken at `ts_ms`.
pub fn at(host: &str, seq: u64, ts_ms: i64) -> Snapshot {
    Snapshot {
        v: 1,
        host: host.into(),
        seq,
        ts: ts_ms / 1000,
        ts_ms,
        interval_s: 15.0,
        boot_id: Some("7c1e4a9d-52b8-4f0e-9d36-a1f07c3e8b25".into()),
        uptime_s: Some(274512.83 + seq as f64 * 15.0),
        cpu: Some(Cpu {
            usage_percent: Some(((seq * 37) % 1000) as f64 / 10.0),
            load_1m: Some(1.42),
            load_5m: Some(1.18),
            load_15m: Some(0.97),
            cores: Some(12),
            per_core_percent: (0..12)
                .map(|c| Some(((seq * 7 + c * 13) % 1000) as f64 / 10.0))
                .collect(),
        }),
        memory: Some(Memory {
            available_mb: 20952,
            total_mb: 31951,
            swap_used_mb: 1159,
            swap_total_mb: 8191,
        }),
        thermal: Thermal {
            cpu_temp_c: Some(52.5),
            sensors: (0..17)
                .map(|i| (format!("coretemp/Core {i}"), 40.0 + ((seq + i) % 20) as f64))
                .collect(),
        },
        disk: Some(Disk {
            read_sectors: 248141916 + seq * 1000,
            write_sectors: 418102760 + seq * 2000,
            devices: ["nvme0n1", "sda", "sdb", "sr0"]
                .iter()
                .map(|d| {
                    (
                        d.to_string(),
                        DiskDevice {
                            read_sectors: seq * 250,
                            write_sectors: seq * 500,
                            ..Default::default()
                        },
                    )
                })
                .collect(),
        }),
        network: Some(Network {
            rx_bytes: 184515514814 + seq * 1_000_000,
            tx_bytes: 23128324247 + seq * 100_000,
            interfaces: ["enp3s0", "wlp4s0"]
                .iter()
                .map(|i| {
                    (
                        i.to_string(),
                        NetworkInterface {
                            rx_bytes: seq * 500_000,
                            tx_bytes: seq * 50_000,
                        },
                    )
                })
                .collect(),
        }),
        // Without filesystems, so the recorded figures stay comparable; a tower's 9 mounts
        // would add 27 gauge series (3 filesystem metrics per mount).
        filesystems: None,
        power: None,
        failed_units: None,
        // `BENCH_PROCESSES=1`: with the top 5 by CPU and by memory, as a publisher sends them.
        processes: std::env::var_os("BENCH_PROCESSES").map(|_| top_lists(seq)),
    }
}

/// A busy machine's top lists at `seq`: 5 by CPU, 5 by memory, names of a real server.
fn top_lists(seq: u64) -> broker::Processes {
    let names = [
        "postgres",
        "ffmpeg",
        "node",
        "java",
        "nginx",
        "redis-server",
        "dockerd",
        "systemd",
    ];
    let p = |i: u64| broker::ProcessTop {
        pid: 1000 + ((seq + i) % 400) as u32,
        name: names[((seq + i) % names.len() as u64) as usize].into(),
        // A process keeps its user from one sample to the next (until issue 22 this followed
        // the list position, so the same pid changed user at every sample).
        user: Some(
            if ((seq + i) % 400).is_multiple_of(2) {
                "root"
            } else {
                "www-data"
            }
            .into(),
        ),
        cpu_percent: Some(((seq * 13 + i * 7) % 2000) as f64 / 10.0),
        rss_bytes: (50 + (seq + i) % 900) << 20,
    };
    broker::Processes {
        count: 412,
        top_cpu: (0..5).map(p).collect(),
        top_rss: (5..10).map(p).collect(),
    }
}

/// Bytes in the files of `dir`.
pub fn dir_bytes(dir: &Path) -> u64 {
    std::fs::read_dir(dir)
        .unwrap()
        .map(|e| {
            let e = e.unwrap();
            let meta = e.metadata().unwrap();
            // The raw tier's day files are in a directory beside the database.
            if meta.is_dir() {
                dir_bytes(&e.path())
            } else {
                meta.len()
            }
        })
        .sum()
}

/// Starts the release `pi-subscriber` on `data_dir` (MQTT off), waits `settle`, and returns
/// its VmRSS and VmHWM as /proc prints them.
pub fn rss_of_subscriber_on(data_dir: &Path, settle: Duration) -> (String, String) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_pi-subscriber"))
        .args([
            "--no-mqtt",
            "--bind",
            "127.0.0.1:0",
            "--metrics-endpoint",
            "http://127.0.0.1:9/latest",
            "--data-dir",
        ])
        .arg(data_dir)
        .env("RUST_LOG", "warn")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    std::thread::sleep(settle);
    let status = std::fs::read_to_string(format!("/proc/{}/status", child.id())).unwrap();
    let _ = child.kill();
    let _ = child.wait();
    let field = |name: &str| {
        status
            .lines()
            .find(|l| l.starts_with(name))
            .map(|l| l.split_whitespace().skip(1).collect::<Vec<_>>().join(" "))
            .unwrap_or_else(|| "?".into())
    };
    (field("VmRSS"), field("VmHWM"))
}

/// `/proc/self/io`'s `wchar` (bytes handed to `write`) and `write_bytes` (bytes of page
/// cache dirtied, which the kernel sends to the device; 0 on tmpfs).
pub fn io() -> (u64, u64) {
    let text = std::fs::read_to_string("/proc/self/io").unwrap();
    let field = |name: &str| -> u64 {
        text.lines()
            .find_map(|l| l.strip_prefix(name))
            .unwrap()
            .trim()
            .parse()
            .unwrap()
    };
    (field("wchar: "), field("write_bytes: "))
}
