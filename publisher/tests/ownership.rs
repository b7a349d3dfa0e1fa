//! `sudo publisher job …` in a user's data directory must leave files that the user's daemon
//! (and the user's own jobs) can still use. Needs root: the job runs as root, the daemon and a
//! second job as uid 65534 through `setpriv`.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::fs;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::Path;
use std::process::{Command, Stdio};

use common::{command, publisher_bin, Client};

const NOBODY: u32 = 65534;

/// Why this machine cannot run the test, if it cannot.
fn cannot_run() -> Option<&'static str> {
    let probe = tempfile::tempdir().unwrap();
    if fs::metadata(probe.path()).unwrap().uid() != 0 {
        return Some("needs root (runs a job as root and the daemon as uid 65534)");
    }
    match Command::new("setpriv").arg("--version").output() {
        Ok(out) if out.status.success() => None,
        _ => Some("needs setpriv (Debian package util-linux)"),
    }
}

fn owner(path: &Path) -> (u32, u32) {
    let meta = fs::symlink_metadata(path).unwrap();
    (meta.uid(), meta.gid())
}

/// `publisher ARGS` as uid/gid 65534, with the test environment of [`command`].
fn as_nobody(data_dir: &Path) -> Command {
    let mut cmd = Command::new("setpriv");
    cmd.args([
        "--reuid=65534",
        "--regid=65534",
        "--clear-groups",
        "--inh-caps=-all",
    ])
    .arg(publisher_bin())
    .arg("--data-dir")
    .arg(data_dir)
    .env("RUST_LOG", "info")
    .env("PUBLISHER_HOST", "testhost")
    .env("HOME", "/nonexistent");
    cmd
}

fn job_events(client: &Client, count: usize) -> Vec<serde_json::Value> {
    client
        .wait_for("/events", |v| v.as_array().map(Vec::len) == Some(count))
        .as_array()
        .unwrap()
        .clone()
}

#[test]
fn a_job_run_as_root_leaves_its_files_to_the_data_dirs_owner() {
    if let Some(why) = cannot_run() {
        eprintln!("skipped: {why}");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    fs::set_permissions(dir.path(), fs::Permissions::from_mode(0o755)).unwrap();
    let home = dir.path().join("home");
    fs::create_dir(&home).unwrap();
    std::os::unix::fs::chown(&home, Some(NOBODY), Some(NOBODY)).unwrap();
    // The user's data directory does not exist yet: the root job creates it.
    let data = home.join("state/server-analytics");

    let out = command(&data)
        .args(["job", "--name", "rootjob", "--", "sh", "-c", "echo as root"])
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    assert_eq!(String::from_utf8_lossy(&out.stderr), "");
    for path in [
        home.join("state"),
        data.clone(),
        data.join("events.log"),
        data.join("events.lock"),
    ] {
        assert_eq!(owner(&path), (NOBODY, NOBODY), "{}", path.display());
    }

    // The user's daemon serves them and keeps its own files there; the user's next job appends.
    let mut daemon = as_nobody(&data)
        .args(["--bind", "127.0.0.1:0", "--broker-listen", "127.0.0.1:0"])
        .args(["--interval", "200ms"])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let client = Client::attach(&mut daemon);
    let events = job_events(&client, 2);
    assert_eq!(events[0]["name"], "rootjob");
    client.wait_for("/latest", |v| v["seq"].as_u64() >= Some(1));
    assert_eq!(owner(&data.join("ring")), (NOBODY, NOBODY));

    let out = as_nobody(&data)
        .args(["job", "--name", "userjob", "--", "true"])
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    assert_eq!(String::from_utf8_lossy(&out.stderr), "");
    let events = job_events(&client, 4);
    assert_eq!(events[3]["name"], "userjob");
    assert_eq!(events[3]["exit_code"], 0);

    // Root again, now that the files exist: their owner is kept.
    let out = command(&data)
        .args(["job", "--name", "rootjob2", "--", "true"])
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    job_events(&client, 6);
    assert_eq!(owner(&data.join("events.log")), (NOBODY, NOBODY));
    assert_eq!(owner(&data.join("events.lock")), (NOBODY, NOBODY));

    // Files left root-owned (0644) by an older version: the daemon still reads them (its
    // lock is taken through a read-only descriptor) and a job that cannot append says whose
    // file is in the way.
    for name in ["events.log", "events.lock"] {
        std::os::unix::fs::chown(data.join(name), Some(0), Some(0)).unwrap();
        fs::set_permissions(data.join(name), fs::Permissions::from_mode(0o644)).unwrap();
    }
    let (status, body) = client.get("/events");
    assert_eq!(status, 200, "{body}");
    let out = as_nobody(&data)
        .args(["job", "--name", "blocked", "--", "true"])
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert!(out.status.success(), "the job itself still runs: {out:?}");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains(&format!(
            "{}: not writable here, it belongs to uid 0",
            data.join("events.log").display()
        )),
        "{stderr}"
    );

    let _ = daemon.kill();
    let _ = daemon.wait();
}
