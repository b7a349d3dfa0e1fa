//! The ring survives `kill -9` at any moment and a full disk.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::Publisher;
use publisher::ring::Ring;

/// Seqs in the ring on disk, checked the way the daemon reads it at start-up.
fn ring_seqs(ring_dir: &Path) -> Vec<u64> {
    let (ring, _) = Ring::open(ring_dir, 1_000_000, false).unwrap();
    ring.after(0, usize::MAX)
        .unwrap()
        .iter()
        .map(|raw| {
            serde_json::from_str::<broker::Snapshot>(raw.get())
                .unwrap()
                .seq
        })
        .collect()
}

#[test]
fn kill_9_during_writes_never_leaves_an_unreadable_ring() {
    let dir = tempfile::tempdir().unwrap();
    // 10 ms samples with fsync and a small ring, so kills land in appends, segment rotation
    // and segment deletion alike.
    let args = ["--interval", "10ms"];
    let cfg = dir.path().join("p.toml");
    std::fs::write(&cfg, "[ring]\ncapacity = 40\n").unwrap();
    let cfg = cfg.to_str().unwrap().to_owned();
    let mut newest = 0;
    for round in 0..20u64 {
        let mut p = Publisher::start(dir.path(), &[&args[..], &["--config", &cfg]].concat());
        // It must start from what the last kill left, and carry on from the ring's newest seq.
        let latest = p.wait_for("/latest", |_| true);
        assert!(latest["seq"].as_u64().unwrap() > newest, "round {round}");
        p.wait_for("/latest", |v| v["seq"].as_u64().unwrap() > newest + 3);
        std::thread::sleep(Duration::from_millis(round * 7 % 23));
        p.signal("KILL");
        p.wait_exit(Duration::from_secs(5));
        let seqs = ring_seqs(&dir.path().join("ring"));
        assert!(seqs.len() >= 4, "round {round}: {seqs:?}");
        assert!(
            seqs.windows(2).all(|w| w[1] == w[0] + 1),
            "round {round}: gap in {seqs:?}"
        );
        assert!(*seqs.last().unwrap() > newest);
        newest = *seqs.last().unwrap();
    }
    // Old segments were deleted as the ring turned over: about capacity + 1/8 remain.
    let seqs = ring_seqs(&dir.path().join("ring"));
    assert!(seqs.len() <= 40 + 16 + 1, "{}", seqs.len());
}

/// `/health` whatever its status code.
fn health(p: &common::Client) -> serde_json::Value {
    serde_json::from_str(&p.get("/health").1).unwrap()
}

#[test]
fn full_disk_consumes_no_seq_and_serves_only_stored_snapshots() {
    // A 64 KiB tmpfs in a private mount namespace (unshare -rm: no root needed, and the mount
    // goes away with the process), two thirds taken by a filler file that SIGUSR1 deletes to
    // free the space again. The ring is copied out after a clean stop, for checking.
    let dir = tempfile::tempdir().unwrap();
    let small = dir.path().join("small");
    let copy = dir.path().join("copy");
    std::fs::create_dir_all(&small).unwrap();
    let script = r#"
        mount -t tmpfs -o size=64k tmpfs "$1" || exit 99
        head -c 40960 /dev/zero > "$1/filler"
        "$2" --data-dir "$1" --host testhost --bind 127.0.0.1:0 --broker-listen 127.0.0.1:0 --interval 10ms &
        pid=$!
        trap 'kill -TERM $pid' TERM
        trap 'rm -f "$1/filler"' USR1
        while kill -0 $pid 2>/dev/null; do wait $pid; rc=$?; done
        cp -r "$1/ring" "$3"
        exit $rc
    "#;
    let mut child = Command::new("unshare")
        .args(["-rm", "sh", "-c", script, "sh"])
        .arg(&small)
        .arg(common::publisher_bin())
        .arg(&copy)
        .env("RUST_LOG", "info")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let p = common::Client::attach(&mut child);
    let signal = |name: &str| {
        let sent = Command::new("kill")
            .args([&format!("-{name}"), &child.id().to_string()])
            .status()
            .unwrap();
        assert!(sent.success());
    };

    // The disk fills up: samples keep being taken, fail to be stored, and are not served.
    let deadline = Instant::now() + Duration::from_secs(20);
    while health(&p)["ring_write_errors"].as_u64() < Some(20) {
        assert!(Instant::now() < deadline, "{}", health(&p));
        std::thread::sleep(Duration::from_millis(20));
    }
    for _ in 0..10 {
        let latest = p.json("/latest")["seq"].as_u64().unwrap();
        let stored = p.json("/history?since_seq=0&limit=1")["newest_seq"]
            .as_u64()
            .unwrap();
        assert_eq!(latest, stored, "/latest serves a seq that was never stored");
        std::thread::sleep(Duration::from_millis(15));
    }
    let full = health(&p);
    assert_eq!(full["status"], "stale", "{full}");
    assert!(
        full["last_ring_error"]
            .as_str()
            .unwrap()
            .contains("ring segment"),
        "{full}"
    );
    assert!(
        p.log
            .try_iter()
            .any(|l| l.contains("cannot store snapshot in the ring")),
        "the full disk is logged"
    );
    let stuck = p.json("/latest")["seq"].as_u64().unwrap();

    // Space comes back: sampling carries on with the next seq, no hole.
    signal("USR1");
    // At 10 ms a sample may see no clock tick of CPU time pass (usage is then null, rightly):
    // one of the samples after has it.
    let after = p.wait_for("/latest", |v| {
        v["seq"].as_u64().unwrap() > stuck + 5 && v["cpu"]["usage_percent"].is_number()
    });
    assert!(after["cpu"]["usage_percent"].is_number());
    let ok = health(&p);
    assert_eq!(ok["status"], "ok", "{ok}");
    assert_eq!(ok["last_ring_error"], serde_json::Value::Null, "{ok}");
    signal("TERM");
    let status = child.wait().unwrap();
    assert!(status.success(), "{status:?}");
    drop(p);

    let (_, recovery) = Ring::open(&copy, 1_000_000, false).unwrap();
    assert_eq!(
        recovery.truncated_bytes, 0,
        "a failed append was cut off at once"
    );
    assert_eq!(recovery.corrupt_records, 0);
    let seqs = ring_seqs(&copy);
    assert_eq!(seqs.first(), Some(&1));
    assert!(seqs.len() as u64 > stuck + 5, "{seqs:?}");
    assert!(
        seqs.windows(2).all(|w| w[1] == w[0] + 1),
        "a hole in the stored seqs: {seqs:?}"
    );
}
