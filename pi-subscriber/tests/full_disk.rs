//! The Pi's disk fills while samples flow, then frees (issue 18 A5), with the built binaries:
//! the history lives on a small tmpfs (root only). Commits fail and are rolled back while it
//! is full; once it frees, history resumes, and nothing the publisher's ring still holds is
//! missing (what was rolled back came back by backfill).
#![allow(clippy::unwrap_used, clippy::expect_used)]

#[path = "../../publisher/tests/common/mod.rs"]
mod common;
mod support;

use std::io::Write;
use std::path::Path;
use std::process::Command;
use std::time::Duration;

use common::Publisher;
use support::netns::{publisher_range, seqs};
use support::Subscriber;

struct Tmpfs(tempfile::TempDir);

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(self.0.path()).status();
    }
}

fn fill(dir: &Path) {
    let mut f = std::fs::File::create(dir.join("filler")).unwrap();
    let block = vec![0u8; 4096];
    while f.write_all(&block).is_ok() {}
    let _ = f.sync_all();
}

#[test]
fn a_full_disk_on_the_pi_loses_nothing_the_ring_still_holds() {
    if !support::netns::is_root() {
        eprintln!("SKIPPED: mounting a small tmpfs needs root");
        return;
    }
    let fs = Tmpfs(tempfile::tempdir().unwrap());
    let mounted = Command::new("mount")
        .args(["-t", "tmpfs", "-o", "size=16m", "tmpfs"])
        .arg(fs.0.path())
        .status()
        .is_ok_and(|s| s.success());
    if !mounted {
        eprintln!("SKIPPED: cannot mount a tmpfs here");
        return;
    }
    let pdir = tempfile::tempdir().unwrap();
    let p = Publisher::start(pdir.path(), &["--interval", "200ms"]);
    let s = Subscriber::start(
        fs.0.path(),
        p.mqtt_port,
        &p.url("/latest"),
        &["--max-age", "5"],
        &[("PI_SUBSCRIBER_POLL__INTERVAL", "200ms")],
    );
    s.wait_for("/health", |h| {
        h["history"]["commits_total"].as_u64() >= Some(3)
            && h["ingest"]["stored_mqtt_total"].as_u64() >= Some(5)
    });
    fill(fs.0.path());
    // Several seconds of samples while nothing can be committed.
    let full = s.wait_for_within("/health", Duration::from_secs(30), |h| {
        h["history"]["rollbacks_total"].as_u64() >= Some(2)
    });
    eprintln!("while full: {}", full["history"]);
    std::thread::sleep(Duration::from_secs(2));
    std::fs::remove_file(fs.0.path().join("filler")).unwrap();
    let health = s.wait_for_within("/health", Duration::from_secs(60), |h| {
        h["history"]["holes_open"] == 0
            && h["history"]["holes_filled_total"].as_u64() >= Some(1)
            && h["ingest"]["stored_backfill_total"].as_u64() >= Some(1)
    });
    assert_eq!(health["history"]["samples_lost_total"], 0, "{health}");
    std::thread::sleep(Duration::from_secs(2)); // one more commit
    let (status, body) = s.get("/history?host=testhost");
    assert_eq!(status, 200, "{body}");
    let have = seqs(&serde_json::from_str(&body).unwrap());
    let (want, missing) = publisher_range(&p, &have);
    assert!(missing.is_empty(), "missing on the Pi: {missing:?}");
    assert!(want.len() >= 30, "{} samples", want.len());
}
