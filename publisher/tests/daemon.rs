//! The built `publisher` binary against this machine's real /proc, over real HTTP.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::process::Command;
use std::time::Duration;

use common::{get, Publisher};
use serde_json::Value;

fn meminfo_kb(key: &str) -> u64 {
    let text = std::fs::read_to_string("/proc/meminfo").unwrap();
    text.lines()
        .find_map(|l| l.strip_prefix(&format!("{key}:")))
        .and_then(|v| v.split_whitespace().next())
        .unwrap()
        .parse()
        .unwrap()
}

fn seqs(history: &Value) -> Vec<u64> {
    history["snapshots"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["seq"].as_u64().unwrap())
        .collect()
}

#[test]
fn live_machine_latest_history_health_and_clean_restart() {
    let dir = tempfile::tempdir().unwrap();
    let mut p = Publisher::start(dir.path(), &["--interval", "200ms"]);

    let latest = p.wait_for("/latest", |v| v["seq"].as_u64() >= Some(2));
    assert_eq!(latest["v"], 1);
    assert_eq!(latest["host"], "testhost");
    assert_eq!(latest["interval_s"], 0.2);
    let usage = latest["cpu"]["usage_percent"].as_f64().unwrap();
    assert!((0.0..=100.0).contains(&usage), "{usage}");
    for core in latest["cpu"]["per_core_percent"].as_array().unwrap() {
        let c = core.as_f64().unwrap();
        assert!((0.0..=100.0).contains(&c), "{c}");
    }
    let cores = std::fs::read_to_string("/proc/stat")
        .unwrap()
        .lines()
        .filter(|l| l.starts_with("cpu") && !l.starts_with("cpu "))
        .count();
    assert_eq!(latest["cpu"]["cores"], cores as u64);
    assert_eq!(latest["memory"]["total_mb"], meminfo_kb("MemTotal") / 1024);
    assert_eq!(
        latest["memory"]["swap_total_mb"],
        meminfo_kb("SwapTotal") / 1024
    );
    assert!(latest["memory"]["available_mb"].as_u64().unwrap() <= meminfo_kb("MemTotal") / 1024);
    let boot_id = std::fs::read_to_string("/proc/sys/kernel/random/boot_id").unwrap();
    assert_eq!(latest["boot_id"], boot_id.trim());
    assert!(latest["disk"]["read_sectors"].is_u64());
    assert!(latest["network"]["interfaces"].get("lo").is_none());
    let ts_ms = latest["ts_ms"].as_i64().unwrap();
    assert_eq!(latest["ts"].as_i64().unwrap(), ts_ms / 1000);

    let history = p.wait_for("/history", |v| v["count"].as_u64() >= Some(4));
    let first = seqs(&history);
    assert_eq!(
        first,
        (1..=first.len() as u64).collect::<Vec<_>>(),
        "contiguous from 1"
    );
    let later = p.wait_for("/history", |v| {
        v["count"].as_u64() > Some(first.len() as u64)
    });
    assert!(seqs(&later).len() > first.len(), "history grows");
    let since = p.json("/history?since_seq=2&limit=2");
    assert_eq!(seqs(&since), vec![3, 4]);
    assert_eq!(since["oldest_seq"], 1);

    let (status, body) = p.get("/health");
    assert_eq!(status, 200, "{body}");
    let health: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(health["status"], "ok");
    assert_eq!(health["ring_write_errors"], 0);
    assert!(health["samples_total"].as_u64().unwrap() >= 4);

    // SIGTERM: a clean exit, and the next start carries on from the ring's newest seq.
    p.signal("TERM");
    let status = p.wait_exit(Duration::from_secs(10));
    assert!(status.success(), "{status:?}");
    let newest = {
        let (ring, recovery) =
            publisher::ring::Ring::open(&dir.path().join("ring"), 5760, false).unwrap();
        assert_eq!(
            recovery.truncated_bytes, 0,
            "nothing half-written after SIGTERM"
        );
        ring.newest_seq().unwrap()
    };
    let p = Publisher::start(dir.path(), &["--interval", "200ms"]);
    let latest = p.wait_for("/latest", |_| true);
    assert_eq!(
        latest["seq"].as_u64(),
        Some(newest + 1),
        "seq survives restarts"
    );
    let all = p.json("/history?limit=10000");
    let s = seqs(&all);
    assert_eq!(s, (1..=s.len() as u64).collect::<Vec<_>>());
}

#[test]
fn sigint_also_stops_cleanly() {
    let dir = tempfile::tempdir().unwrap();
    let mut p = Publisher::start(dir.path(), &["--interval", "50ms"]);
    p.wait_for("/latest", |_| true);
    p.signal("INT");
    assert!(p.wait_exit(Duration::from_secs(10)).success());
    // The process has exited, but the thread reading its stderr may not have passed on its
    // last lines yet: read until the pipe's end (it failed once in CI reading only what had
    // arrived).
    let mut stopped = false;
    while let Ok(line) = p.log.recv_timeout(Duration::from_secs(10)) {
        if line.contains("publisher stopped cleanly") {
            stopped = true;
            break;
        }
    }
    assert!(stopped);
}

/// Issue 22: once two samples are out, the publisher gives back the pages start-up used
/// (`daemon_kit::trim`), says how much, and samples and serves on as before.
#[test]
fn start_up_pages_are_given_back_and_sampling_goes_on() {
    let dir = tempfile::tempdir().unwrap();
    let p = Publisher::start(dir.path(), &["--interval", "100ms"]);
    let line = loop {
        let line = p
            .log
            .recv_timeout(Duration::from_secs(20))
            .expect("no 'start-up pages given back' line");
        if line.contains("start-up pages given back") {
            break line;
        }
    };
    let field = |name: &str| -> u64 {
        let (_, rest) = line.split_once(&format!("{name}=")).expect(name);
        rest.split(|c: char| !c.is_ascii_digit())
            .next()
            .unwrap()
            .parse()
            .unwrap()
    };
    // At least the binary's code and read-only data (the C library's too unless static).
    assert!(field("mappings") >= 2, "{line}");
    assert!(field("resident_kb") >= 1024, "{line}");
    let seq = p.json("/latest")["seq"].as_u64().unwrap();
    p.wait_for("/latest", |v| v["seq"].as_u64().unwrap() >= seq + 5);
    let (status, body) = p.get("/health");
    assert_eq!(status, 200, "{body}");
}

#[test]
fn bad_requests_get_400_with_a_message() {
    let dir = tempfile::tempdir().unwrap();
    let p = Publisher::start(dir.path(), &["--interval", "1s"]);
    for path in [
        "/history?since_seq=abc",
        "/history?limit=0",
        "/history?limit=99999999",
        "/events?format=xml",
    ] {
        let (status, body) = p.get(path);
        assert_eq!(status, 400, "{path}");
        let v: Value = serde_json::from_str(&body).unwrap();
        assert!(!v["error"].as_str().unwrap().is_empty(), "{path}: {body}");
    }
    assert_eq!(p.get("/nope").0, 404);
    let (_, body) = p.get("/history?since_seq=abc");
    assert!(body.contains("since_seq"), "{body}");
}

#[test]
fn fixture_tree_roots_are_honoured() {
    let dir = tempfile::tempdir().unwrap();
    let root = common::fixture("rpi4");
    let p = Publisher::start(
        dir.path(),
        &[
            "--interval",
            "100ms",
            "--proc-root",
            root.join("proc").to_str().unwrap(),
            "--sys-root",
            root.join("sys").to_str().unwrap(),
        ],
    );
    let latest = p.wait_for("/latest", |_| true);
    assert_eq!(latest["thermal"]["cpu_temp_c"], 48.686);
    assert_eq!(latest["memory"]["total_mb"], 3791);
    assert_eq!(latest["cpu"]["cores"], 4);
    assert_eq!(latest["disk"]["read_sectors"], 55149058u64);
    // The same file twice: no time passed, so no CPU % rather than a made-up one.
    assert!(latest["cpu"]["usage_percent"].is_null());
}

#[test]
fn bad_config_stops_start_up_naming_the_key() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("p.toml");
    std::fs::write(&cfg, "[ring]\ncapacity = \"lots\"\n").unwrap();
    let out = common::command(dir.path())
        .arg("--config")
        .arg(&cfg)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("ring.capacity"), "{err}");
    let out = common::command(dir.path())
        .env("PUBLISHER_SAMPLER__PERIOD", "5s")
        .arg("check-config")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("period"));
}

#[test]
fn failing_collectors_leave_nulls_and_sampling_goes_on() {
    // A proc root with no files: every collector fails, yet samples go on with nulls.
    let dir = tempfile::tempdir().unwrap();
    let empty = tempfile::tempdir().unwrap();
    let p = Publisher::start(
        dir.path(),
        &[
            "--interval",
            "100ms",
            "--proc-root",
            empty.path().to_str().unwrap(),
        ],
    );
    let latest = p.wait_for("/latest", |v| v["seq"].as_u64() >= Some(2));
    assert!(latest["cpu"].is_null());
    assert!(latest["memory"].is_null());
    assert!(latest["disk"].is_null());
    let health = p.json("/health");
    assert_eq!(health["status"], "ok");
    assert!(health["collector_errors"]["memory"].as_u64().unwrap() >= 2);
    let (status, _) = get(&p.url("/latest"));
    assert_eq!(status, 200);
}

/// `thermal.exclude_chips`: a NAS's `drivetemp` inputs are never read (reading them keeps
/// disks from spinning down). Here they are FIFOs, so a read would block the sampler and
/// `/latest` would never come; the other sensors keep their exact values.
#[test]
fn excluded_hwmon_chips_are_not_read() {
    let dir = tempfile::tempdir().unwrap();
    let sys = dir.path().join("sys");
    let copied = Command::new("cp")
        .arg("-r")
        .arg(common::fixture("tower").join("sys"))
        .arg(&sys)
        .status()
        .unwrap();
    assert!(copied.success());
    for chip in ["hwmon5", "hwmon6"] {
        let input = sys.join("class/hwmon").join(chip).join("temp1_input");
        std::fs::remove_file(&input).unwrap();
        assert!(Command::new("mkfifo")
            .arg(&input)
            .status()
            .unwrap()
            .success());
    }
    let config = dir.path().join("p.toml");
    std::fs::write(&config, "[thermal]\nexclude_chips = [\"drive*\"]\n").unwrap();
    let p = Publisher::start(
        &dir.path().join("data"),
        &[
            "--interval",
            "200ms",
            "--sys-root",
            sys.to_str().unwrap(),
            "--config",
            config.to_str().unwrap(),
        ],
    );
    let latest = p.wait_for("/latest", |v| v["seq"].as_u64() >= Some(2));
    let expected = serde_json::json!({
        "cpu_temp_c": 52.5,
        "sensors": {
            "acpitz": 27.8, "x86_pkg_temp": 52.5, "iwlwifi_1": 41.0,
            "acpitz/temp1": 27.8, "nvme/Composite": 44.85, "nvme/Sensor 1": 52.85,
            "coretemp/Package id 0": 53.375, "coretemp/Core 0": 51.0, "coretemp/Core 1": 47.375,
            "coretemp/Core 2": 49.5, "coretemp/Core 3": 50.125, "coretemp/Core 4": 46.0,
            "coretemp/Core 5": 48.25, "hwmon3/temp1": 40.125, "nct6775/SYSTIN": 34.5,
            "nct6775/CPUTIN": 38.5, "nct6775/AUXTIN0": 31.5
        }
    });
    assert_eq!(latest["thermal"], expected);
    assert_eq!(
        p.json("/health")["collector_errors"]["thermal"],
        Value::Null
    );
}

#[test]
fn bad_chip_pattern_names_the_key() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("p.toml");
    std::fs::write(&config, "[thermal]\nexclude_chips = [\"[\"]\n").unwrap();
    let out = common::command(dir.path())
        .args(["check-config", "--config", config.to_str().unwrap()])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("thermal.exclude_chips"), "{stderr}");
}

/// Issue 9 A6: a dead embedded broker must not leave a publisher whose `/health` says ok.
/// Debug builds stop the broker's listener after `SERVER_ANALYTICS_TEST_BROKER_STOP_AFTER`
/// ms (the way a crashed broker thread looks from outside); the publisher exits non-zero so
/// systemd restarts it.
#[test]
fn a_dead_embedded_broker_stops_the_publisher_with_an_error() {
    let dir = tempfile::tempdir().unwrap();
    let mut p = Publisher::start_with_env(
        dir.path(),
        &["--interval", "200ms"],
        &[("SERVER_ANALYTICS_TEST_BROKER_STOP_AFTER", "1500")],
    );
    assert_eq!(p.get("/health").0, 200);
    let status = p.wait_exit(Duration::from_secs(15));
    assert!(!status.success(), "exit status {status:?}");
    assert_eq!(status.code(), Some(1));
}

/// A broker port another program holds (a mosquitto already on 1883) stops start-up with
/// each cause said once, not `…: Address already in use (os error 98): Address already in
/// use (os error 98)`.
#[test]
fn a_taken_broker_port_is_reported_once() {
    let dir = tempfile::tempdir().unwrap();
    let held = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = held.local_addr().unwrap();
    let out = common::command(dir.path())
        .args([
            "--bind",
            "127.0.0.1:0",
            "--broker-listen",
            &addr.to_string(),
        ])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    let last = err.lines().last().unwrap_or_default();
    assert_eq!(
        last,
        format!(
            "publisher: cannot start the embedded MQTT broker: cannot listen on {addr} \
             (broker.listen): Address already in use (os error 98)"
        ),
        "{err}"
    );
}
