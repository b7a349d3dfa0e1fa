//! The ring survives `kill -9` at any moment and a full disk.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

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

#[test]
fn full_disk_is_counted_and_logged_and_leaves_no_torn_record() {
    // A 64 KiB tmpfs in a private mount namespace (unshare -rm: no root needed, and the mount
    // goes away with the process). The ring is copied out after a clean stop, for checking.
    let dir = tempfile::tempdir().unwrap();
    let small = dir.path().join("small");
    let copy = dir.path().join("copy");
    std::fs::create_dir_all(&small).unwrap();
    let script = r#"
        mount -t tmpfs -o size=64k tmpfs "$1" || exit 99
        "$2" --data-dir "$1" --host testhost --bind 127.0.0.1:0 --broker-listen 127.0.0.1:0 --interval 10ms &
        pid=$!
        trap 'kill -TERM $pid' TERM
        wait $pid
        wait $pid
        rc=$?
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
    // Fill the disk, then keep sampling.
    let health = p.wait_for("/health", |h| h["ring_write_errors"].as_u64() >= Some(20));
    assert_eq!(health["status"], "ok");
    let before = p.json("/latest")["seq"].as_u64().unwrap();
    let after = p.wait_for("/latest", |v| v["seq"].as_u64().unwrap() > before + 5);
    assert!(
        after["cpu"]["usage_percent"].is_number(),
        "samples are still served"
    );
    let stored = p.json("/history?limit=10000");
    let count = stored["count"].as_u64().unwrap();
    assert!(count > 5, "{stored}");
    assert!(
        p.log
            .try_iter()
            .any(|l| l.contains("cannot store snapshot in the ring")),
        "the full disk is logged"
    );
    Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    let status = child.wait().unwrap();
    assert!(status.success(), "{status:?}");
    drop(p);

    let (ring, recovery) = Ring::open(&copy, 1_000_000, false).unwrap();
    assert_eq!(
        recovery.truncated_bytes, 0,
        "a failed append was cut off at once"
    );
    assert_eq!(recovery.corrupt_records, 0);
    assert_eq!(ring.len() as u64, count);
}
