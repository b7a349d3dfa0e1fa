//! Both daemons under a real systemd: installed with the README's steps ("Installing for
//! real") into a container whose PID 1 is systemd, the Pi's system unit (a `DynamicUser`
//! reading its root-only config through `LoadCredential=`) and the publisher's user unit (a
//! lingering user) start, answer HTTP, restart cleanly, stop with exit 0 and leave whole
//! files that the next start loads. Also: a config the daemon may not read is reported
//! with its path. Needs root and systemd-nspawn (and mmdebstrap once, for the rootfs);
//! skips with the reason otherwise.
#![allow(clippy::unwrap_used, clippy::expect_used)]

#[path = "common/nspawn.rs"]
mod nspawn;

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use nspawn::Container;
use serde_json::Value;

const USER: &str = "srv";
/// journalctl matches for the publisher's user unit: its own lines and its manager's.
const USER_UNIT_JOURNAL: &str =
    "_SYSTEMD_USER_UNIT=publisher.service + USER_UNIT=publisher.service";

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn binaries() -> (PathBuf, PathBuf) {
    let publisher = PathBuf::from(env!("CARGO_BIN_EXE_publisher"));
    let pi = publisher.with_file_name("pi-subscriber");
    assert!(
        pi.exists(),
        "{} not built: run `cargo test --workspace`",
        pi.display()
    );
    (publisher, pi)
}

/// A user's view of the project: a checkout with the scripts and configs, the publisher
/// built in `target/release/`, and the Pi's binary copied beside them (`scp … pi:`).
fn checkout(dir: &Path) {
    let copy = |from: &Path, to: &Path| {
        std::fs::create_dir_all(to.parent().unwrap()).unwrap();
        if std::fs::hard_link(from, to).is_err() {
            std::fs::copy(from, to).unwrap();
        }
    };
    for sub in ["scripts", "configs", "configs/systemd"] {
        for entry in std::fs::read_dir(repo().join(sub)).unwrap().flatten() {
            if entry.file_type().unwrap().is_file() {
                copy(&entry.path(), &dir.join(sub).join(entry.file_name()));
            }
        }
    }
    let (publisher, pi) = binaries();
    copy(&publisher, &dir.join("target/release/publisher"));
    copy(&pi, &dir.join("pi-subscriber"));
}

fn json(text: &str) -> Value {
    serde_json::from_str(text).unwrap_or_else(|e| panic!("{e}: {text}"))
}

/// Polls `probe` (a shell command inside) until `done` holds for its output.
fn wait_for(c: &Container, what: &str, probe: &str, done: impl Fn(&str) -> bool) -> String {
    let deadline = Instant::now() + Duration::from_secs(45);
    loop {
        let out = c.sh(probe);
        let text = String::from_utf8_lossy(&out.stdout).trim().to_owned();
        if out.status.success() && done(&text) {
            return text;
        }
        assert!(Instant::now() < deadline, "{what}: last answer {text:?}");
        std::thread::sleep(Duration::from_millis(200));
    }
}

struct Units<'a> {
    c: &'a Container,
    uid: u32,
}

impl Units<'_> {
    /// `systemctl` for the Pi's system unit, or (`user`) the publisher's user unit.
    fn systemctl(&self, user: bool, args: &str) -> String {
        if user {
            let script = format!("systemctl --user {args} publisher.service");
            self.c.ok_as(USER, self.uid, &script)
        } else {
            self.c
                .ok(&format!("systemctl {args} pi-subscriber.service"))
        }
    }

    fn show(&self, user: bool, prop: &str) -> String {
        self.systemctl(user, &format!("show --value -p {prop}"))
    }

    fn wait_active(&self, user: bool) {
        let deadline = Instant::now() + Duration::from_secs(30);
        while self.show(user, "ActiveState") != "active" {
            assert!(Instant::now() < deadline, "unit not active (user: {user})");
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// The unit's journal as plain messages.
    fn journal(&self, user: bool) -> String {
        if user {
            // `--user-unit` would match root's own uid only.
            self.c
                .ok(&format!("journalctl --no-pager -o cat {USER_UNIT_JOURNAL}"))
        } else {
            self.c
                .ok("journalctl --no-pager -o cat -u pi-subscriber.service")
        }
    }

    /// After a stop: the main process exited by itself with status 0 (SIGTERM handled, no
    /// SIGKILL after `TimeoutStopSec`), and systemd saw no failure.
    fn assert_stopped_cleanly(&self, user: bool) {
        assert_eq!(self.show(user, "ActiveState"), "inactive");
        assert_eq!(self.show(user, "Result"), "success");
        assert_eq!(
            self.show(user, "ExecMainCode"),
            "1",
            "CLD_EXITED, not killed"
        );
        assert_eq!(self.show(user, "ExecMainStatus"), "0");
        let journal = self.journal(user);
        for bad in [
            "Failed with result",
            "timed out",
            "code=killed",
            "status=1/",
            "status=2/",
        ] {
            assert!(!journal.contains(bad), "{bad:?} in the journal:\n{journal}");
        }
    }
}

/// The publisher answers with a sample newer than seq `after`; its ring holds every seq
/// from 1 on.
fn publisher_ok(c: &Container, after: u64) -> u64 {
    let health = wait_for(
        c,
        "publisher /health",
        "curl -sf http://127.0.0.1:9000/health",
        |t| {
            serde_json::from_str::<Value>(t)
                .is_ok_and(|v| v["status"] == "ok" && v["last_seq"].as_u64() > Some(after))
        },
    );
    let health = json(&health);
    assert_eq!(health["host"], "tower");
    let newest = health["last_seq"].as_u64().unwrap();
    let history = json(&c.ok("curl -sf 'http://127.0.0.1:9000/history?since_seq=0&limit=10000'"));
    let seqs: Vec<u64> = history["snapshots"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["seq"].as_u64().unwrap())
        .collect();
    assert_eq!(seqs.first(), Some(&1), "the ring starts at seq 1");
    assert!(
        seqs.windows(2).all(|w| w[1] == w[0] + 1),
        "the ring has every seq: {seqs:?}"
    );
    assert!(*seqs.last().unwrap() >= newest);
    newest
}

/// tower's entry in the Pi's `/hosts` (the Pi's own machine, `[self]`, is there too).
fn tower(hosts: &Value) -> Option<&Value> {
    hosts.as_array()?.iter().find(|h| h["host"] == "tower")
}

/// The Pi's entry for tower once it has seen seq `after` or later.
fn pi_host(c: &Container, after: u64) -> Value {
    let hosts = wait_for(
        c,
        "pi-subscriber /hosts",
        "curl -sf http://127.0.0.1:9100/hosts",
        |t| {
            serde_json::from_str::<Value>(t).is_ok_and(|v| {
                tower(&v).is_some_and(|h| h["last_seq"].as_u64().is_some_and(|s| s >= after))
            })
        },
    );
    tower(&json(&hosts)).cloned().unwrap_or_default()
}

/// The seqs of tower's rows in the Pi's history.
fn pi_history(c: &Container) -> Vec<u64> {
    let rows = wait_for(
        c,
        "pi-subscriber /history",
        "curl -sf 'http://127.0.0.1:9100/history?host=tower'",
        |t| t.starts_with('['),
    );
    json(&rows)
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["seq"].as_u64().unwrap())
        .collect()
}

fn no_temporary_files(c: &Container) {
    let dirs = "/var/lib/private/server-analytics-pi /home/srv/.local/state/server-analytics";
    let left = c.ok(&format!("find {dirs} -name '*.tmp'"));
    assert_eq!(left, "", "half-written files left behind");
    let files = c.ok(&format!("find {dirs} -type f | sort"));
    assert!(
        files.contains("/var/lib/private/server-analytics-pi/history.sqlite"),
        "{files}"
    );
    assert!(
        files.contains("/home/srv/.local/state/server-analytics/ring/"),
        "{files}"
    );
}

#[test]
fn readme_install_runs_both_daemons_under_systemd() {
    if let Some(why) = nspawn::unavailable() {
        eprintln!("SKIPPED readme_install_runs_both_daemons_under_systemd: {why}");
        return;
    }
    let rootfs = nspawn::rootfs();
    let tmp = nspawn::target_dir().join("tmp");
    std::fs::create_dir_all(&tmp).unwrap();
    let work = tempfile::tempdir_in(&tmp).unwrap();
    let src = work.path().join("checkout");
    checkout(&src);
    let mut c = Container::boot(&rootfs, &[(&src, "/src")], work.path().join("console.log"));
    c.journals = vec![
        vec!["-u".into(), "pi-subscriber.service".into()],
        USER_UNIT_JOURNAL.split(' ').map(String::from).collect(),
    ];

    // The server's user: a lingering account has its own systemd --user from boot (over
    // ssh the login session starts it; the README enables lingering for after logout).
    c.ok(&format!(
        "useradd -m -s /bin/sh {USER} && loginctl enable-linger {USER}"
    ));
    let uid: u32 = c.ok(&format!("id -u {USER}")).parse().unwrap();
    wait_for(
        &c,
        "user manager",
        &format!("test -S /run/user/{uid}/systemd/private && echo up"),
        |t| t == "up",
    );
    let units = Units { c: &c, uid };

    // README, "On the server".
    let out = c.ok_as(USER, uid, "cd /src && scripts/install-publisher.sh");
    assert!(
        out.contains("installed /home/srv/.local/bin/publisher"),
        "{out}"
    );
    assert!(
        out.contains("example password"),
        "it must not start with change-me: {out}"
    );
    // $EDITOR: loopback instead of the VPN address, a real password, 1 s samples.
    c.ok_as(USER, uid, r#"sed -i -e 's/10\.8\.0\.1/127.0.0.1/' -e 's/change-me/s3cret-pw/' -e 's/^interval = "15s"/interval = "1s"/' ~/.config/server-analytics/publisher.toml"#);
    c.ok_as(USER, uid, "systemctl --user enable --now publisher");

    // README, "On the Pi" (the binary was copied beside the scripts).
    let out = c.ok("cd /src && scripts/install-pi.sh --binary ./pi-subscriber");
    assert!(
        out.contains("installed /usr/local/bin/pi-subscriber"),
        "{out}"
    );
    // sudoedit: the server's address and the broker password.
    let config = "/etc/server-analytics/pi-subscriber.toml";
    c.ok(&format!(
        "sed -i -e 's/10\\.8\\.0\\.1/127.0.0.1/g' -e 's/change-me/s3cret-pw/' {config}"
    ));
    assert_eq!(
        c.ok(&format!("stat -c '%a %U:%G' {config}")),
        "640 root:root"
    );
    c.ok("systemctl enable --now pi-subscriber");

    // Both start and answer; each runs as its own user.
    units.wait_active(true);
    units.wait_active(false);
    let seq = publisher_ok(&c, 0);
    let tower = pi_host(&c, seq);
    assert_eq!(tower["stale"], false);
    // The Pi watches its own machine too (`[self]`, on by default): one more host.
    wait_for(
        &c,
        "the Pi's own host",
        "curl -sf http://127.0.0.1:9100/hosts",
        |t| t.contains(r#""host":"sa-test""#),
    );
    wait_for(
        &c,
        "pi /health",
        "curl -sf http://127.0.0.1:9100/health",
        |t| t.contains(r#""status":"ok""#),
    );
    let owner = |user: bool| {
        let pid = units.show(user, "MainPID");
        c.ok(&format!("ps -o user= -p {pid}"))
    };
    assert_eq!(owner(true), USER);
    assert_eq!(owner(false), "pi-subscriber", "the DynamicUser");
    failed_unit_shows_up_and_clears(&c);

    // Restart each: a new process that carries on from what it stored.
    for user in [true, false] {
        let before = units.show(user, "MainPID");
        let seq = publisher_ok(&c, 0);
        let rows = pi_host(&c, seq)["history_rows"].as_u64().unwrap();
        units.systemctl(user, "restart");
        units.wait_active(user);
        assert_ne!(units.show(user, "MainPID"), before);
        assert_eq!(units.show(user, "NRestarts"), "0");
        // seq continues across a restart (the ring was reloaded, not started afresh).
        let after = publisher_ok(&c, seq);
        let tower = pi_host(&c, after);
        assert!(tower["history_rows"].as_u64().unwrap() > rows, "{tower}");
    }
    let stops = |user| units.journal(user).matches("stopped cleanly").count();
    assert_eq!((stops(true), stops(false)), (1, 1), "one clean stop each");

    // Stop both: exit 0, no temporary file, and what they wrote loads whole.
    units.systemctl(true, "stop");
    units.assert_stopped_cleanly(true);
    // The Pi has taken in the publisher's last snapshot once two reads agree.
    let (last_seq, stored) = loop {
        let stored = pi_history(&c);
        std::thread::sleep(Duration::from_millis(300));
        let last_seq = pi_host(&c, 0)["last_seq"].as_u64().unwrap();
        if stored.last() == Some(&last_seq) && pi_history(&c) == stored {
            break (last_seq, stored);
        }
    };
    units.systemctl(false, "stop");
    units.assert_stopped_cleanly(false);
    no_temporary_files(&c);

    units.systemctl(false, "start");
    units.wait_active(false);
    assert_eq!(pi_history(&c), stored, "every row back, none torn");
    let journal = units.journal(false);
    let restored = journal
        .lines()
        .rfind(|l| l.contains("history restored host=tower"));
    let expected = format!("history restored host=tower rows={}", stored.len());
    assert!(
        restored.is_some_and(|l| l.ends_with(&expected)),
        "{journal}"
    );
    units.systemctl(true, "start");
    units.wait_active(true);
    publisher_ok(&c, last_seq);
    for user in [true, false] {
        units.systemctl(user, "stop");
        units.assert_stopped_cleanly(user);
    }
    no_temporary_files(&c);
}

/// Issue 20 item 2: a system unit whose `ExecStart` fails is in the publisher's next
/// sample (the publisher, a user service, reads the system bus), the Pi fires `unit_failed`
/// for it, and `systemctl reset-failed` clears both.
fn failed_unit_shows_up_and_clears(c: &Container) {
    let latest = |c: &Container| json(&c.ok("curl -sf http://127.0.0.1:9000/latest"));
    assert_eq!(latest(c)["failed_units"], serde_json::json!([]));
    c.ok("printf '[Service]\\nExecStart=/bin/false\\n' > /etc/systemd/system/boom.service && systemctl daemon-reload");
    let _ = c.sh("systemctl start boom.service");
    assert_eq!(
        c.ok("systemctl show --value -p ActiveState boom.service"),
        "failed"
    );
    let seq = latest(c)["seq"].as_u64().unwrap();
    // The first sample taken after the failure has it.
    let next = wait_for(
        c,
        "the next sample",
        &format!("curl -sf 'http://127.0.0.1:9000/history?since_seq={seq}&limit=1'"),
        |t| {
            json(t)["snapshots"]
                .as_array()
                .is_some_and(|a| !a.is_empty())
        },
    );
    let units = &json(&next)["snapshots"][0]["failed_units"];
    assert_eq!(units[0]["name"], "boom.service", "{next}");
    assert_eq!(units[0]["result"], "exit-code");
    assert!(
        units[0]["since_ms"].as_i64().unwrap() > 1_700_000_000_000,
        "{units}"
    );
    let firing = |t: &str| {
        json(t)["alerts"].as_array().unwrap().iter().any(|a| {
            a["rule"] == "unit_failed" && a["label"] == "boom.service" && a["state"] == "firing"
        })
    };
    wait_for(
        c,
        "unit_failed on the Pi",
        "curl -sf http://127.0.0.1:9100/alerts",
        firing,
    );
    c.ok("systemctl reset-failed boom.service");
    wait_for(
        c,
        "boom.service cleared",
        "curl -sf http://127.0.0.1:9000/latest",
        |t| json(t)["failed_units"] == serde_json::json!([]),
    );
    wait_for(
        c,
        "unit_failed resolved",
        "curl -sf http://127.0.0.1:9100/alerts",
        |t| !firing(t),
    );
}

/// What a `DynamicUser` met before `LoadCredential=`: a 0640 root:root config. Run as
/// nobody (root reads any file), each daemon names the file it cannot read.
#[test]
fn an_unreadable_config_is_named() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    let config = dir.path().join("secret.toml");
    std::fs::write(&config, "").unwrap();
    std::fs::set_permissions(&config, std::fs::Permissions::from_mode(0o640)).unwrap();
    let root = nspawn::is_root();
    if !root {
        std::fs::set_permissions(&config, std::fs::Permissions::from_mode(0o000)).unwrap();
    }
    let (publisher, pi) = binaries();
    for bin in [publisher, pi] {
        let mut cmd = if root {
            let mut c = Command::new("setpriv");
            c.args(["--reuid=65534", "--regid=65534", "--clear-groups"])
                .arg(&bin);
            c
        } else {
            Command::new(&bin)
        };
        let out = cmd
            .arg("--config")
            .arg(&config)
            .arg("check-config")
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{stderr}");
        let name = bin.file_name().unwrap().to_string_lossy();
        assert_eq!(
            stderr.trim(),
            format!(
                "{name}: configuration: cannot read {}: Permission denied (os error 13)",
                config.display()
            )
        );
    }
}
