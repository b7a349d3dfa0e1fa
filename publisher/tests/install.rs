//! The install scripts in a scratch root (`DESTDIR`), twice (idempotent) and over an edited
//! config (kept); the units they install pass `systemd-analyze verify` (Debian package
//! systemd). The one-command demo is `demo.rs`.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn subscriber_bin() -> PathBuf {
    common::publisher_bin().with_file_name("pi-subscriber")
}

fn run(script: &str, destdir: &Path, home: &Path, binary: &Path) -> Output {
    let out = Command::new(repo().join("scripts").join(script))
        .arg("--binary")
        .arg(binary)
        .env("DESTDIR", destdir)
        .env("HOME", home)
        .env_remove("XDG_CONFIG_HOME")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{script}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

/// `systemd-analyze verify` with no warnings at all (it exits 0 on unknown keys).
fn assert_verifies(mut cmd: Command, what: &str) {
    let out = cmd
        .output()
        .expect("systemd-analyze (Debian package systemd)");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{what}: {stderr}");
    let warnings: Vec<&str> = stderr
        .lines()
        .filter(|l| !l.contains("Too many levels of symbolic links"))
        .collect();
    assert!(warnings.is_empty(), "{what}: {warnings:?}");
}

fn assert_unit_rules(unit: &str) {
    for needed in [
        "After=network-online.target",
        "Wants=network-online.target",
        "Restart=on-failure",
        "NoNewPrivileges=yes",
        "ProtectSystem=strict",
        "MemoryMax=",
    ] {
        assert!(unit.contains(needed), "unit lacks {needed}");
    }
    assert!(
        !unit.contains("User=") || unit.contains("DynamicUser=yes"),
        "no hard-coded user"
    );
    let ip = unit
        .split(|c: char| !(c.is_ascii_digit() || c == '.'))
        .any(|w| w.split('.').count() == 4 && w.split('.').all(|p| !p.is_empty()));
    assert!(!ip, "no hard-coded address");
}

#[test]
fn publisher_user_install_is_idempotent_keeps_edits_and_verifies() {
    let root = tempfile::tempdir().unwrap();
    let home = Path::new("/home/tester");
    let dest = root.path();
    let first = run("install-publisher.sh", dest, home, &common::publisher_bin());
    let base = dest.join("home/tester");
    let config = base.join(".config/server-analytics/publisher.toml");
    let unit = base.join(".config/systemd/user/publisher.service");
    assert!(base.join(".local/bin/publisher").exists());
    assert!(base.join(".local/state/server-analytics").is_dir());
    assert_eq!(
        std::fs::read(&config).unwrap(),
        std::fs::read(repo().join("configs/publisher.toml")).unwrap()
    );
    assert!(stdout(&first).contains("edit it"));
    let again = run("install-publisher.sh", dest, home, &common::publisher_bin());
    assert!(
        stdout(&again).contains("unchanged default"),
        "{}",
        stdout(&again)
    );

    std::fs::write(&config, "host = \"mine\"\n").unwrap();
    let edited = run("install-publisher.sh", dest, home, &common::publisher_bin());
    assert!(stdout(&edited).contains("kept your edited"));
    assert_eq!(
        std::fs::read_to_string(&config).unwrap(),
        "host = \"mine\"\n"
    );
    assert!(config.with_extension("toml.dist").exists());

    let unit_text = std::fs::read_to_string(&unit).unwrap();
    assert_unit_rules(&unit_text);
    let runtime = tempfile::tempdir().unwrap();
    let mut verify = Command::new("systemd-analyze");
    verify
        .args(["--user", "verify"])
        .arg(&unit)
        .env("HOME", &base)
        .env("XDG_RUNTIME_DIR", runtime.path());
    assert_verifies(verify, "publisher.service");
}

#[test]
fn pi_system_install_is_idempotent_keeps_edits_and_verifies() {
    let root = tempfile::tempdir().unwrap();
    let dest = root.path();
    let first = run("install-pi.sh", dest, Path::new("/root"), &subscriber_bin());
    assert!(stdout(&first).contains("edit it"));
    assert!(dest.join("usr/local/bin/pi-subscriber").exists());
    let config = dest.join("etc/server-analytics/pi-subscriber.toml");
    let again = run("install-pi.sh", dest, Path::new("/root"), &subscriber_bin());
    assert!(stdout(&again).contains("unchanged default"));
    std::fs::write(&config, "[mqtt]\nhost = \"10.9.0.1\"\n").unwrap();
    let edited = run("install-pi.sh", dest, Path::new("/root"), &subscriber_bin());
    assert!(stdout(&edited).contains("kept your edited"));
    assert!(std::fs::read_to_string(&config)
        .unwrap()
        .contains("10.9.0.1"));

    let unit =
        std::fs::read_to_string(dest.join("etc/systemd/system/pi-subscriber.service")).unwrap();
    assert_unit_rules(&unit);
    // The scratch root needs systemd's own units (sysinit.target …) for a full check.
    std::fs::create_dir_all(dest.join("usr/lib/systemd")).unwrap();
    let copied = Command::new("cp")
        .arg("-a")
        .arg("/usr/lib/systemd/system")
        .arg(dest.join("usr/lib/systemd/"))
        .status()
        .unwrap();
    assert!(copied.success());
    let mut verify = Command::new("systemd-analyze");
    verify
        .arg(format!("--root={}", dest.display()))
        .args(["verify", "pi-subscriber.service"]);
    assert_verifies(verify, "pi-subscriber.service");
}
