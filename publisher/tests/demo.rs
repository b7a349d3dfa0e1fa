//! `scripts/demo.sh`, the one-command demo, as a newcomer runs it: it says what it builds,
//! moves off default ports that are taken, prints its banner only once both daemons answer
//! (and fails without one when a daemon dies first), runs the pipeline and stops on Ctrl-C,
//! SIGINT or SIGTERM however it was started.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// The demo's default ports, in the order of `Demo::ports`: publisher HTTP, MQTT, Pi HTTP.
const DEFAULT_PORTS: [u16; 3] = [9000, 1883, 9100];

/// `scripts/demo.sh` in its own process group, as a terminal runs a foreground job, and
/// started with SIGINT ignored, as every background job of a non-interactive shell is (bash
/// cannot trap a signal it inherited ignored). Dropping it kills the whole group, so a failed
/// test leaves neither the script nor its daemons behind.
struct Demo {
    child: Child,
    /// From its banner: publisher HTTP, MQTT, Pi HTTP.
    ports: [u16; 3],
    /// Everything it printed on stdout up to the end of its banner.
    stdout: String,
    _data: tempfile::TempDir,
}

/// How a demo that ended before its banner ended.
#[derive(Debug)]
struct Failed {
    status: ExitStatus,
    stdout: String,
    stderr: String,
}

/// The port of the first `http://127.0.0.1:PORT` (or `-p PORT`) in the banner line
/// starting with `label`.
fn banner_port(stdout: &str, label: &str) -> u16 {
    let line = stdout
        .lines()
        .find(|l| l.trim_start().starts_with(label))
        .unwrap_or_else(|| panic!("no {label} line in the banner: {stdout}"));
    let rest = line
        .split_once("http://127.0.0.1:")
        .or_else(|| line.split_once(" -p "))
        .unwrap_or_else(|| panic!("no port in {line:?}"))
        .1;
    let digits: String = rest.chars().take_while(char::is_ascii_digit).collect();
    digits
        .parse()
        .unwrap_or_else(|_| panic!("no port in {line:?}"))
}

/// The script with the built binaries and a 200 ms interval, plus `env`, not yet waited for.
fn demo_command(data: &Path, env: &[(&str, String)]) -> Command {
    let mut cmd = Command::new("bash");
    cmd.args(["-c", "trap '' INT; exec \"$0\" \"$@\""])
        .arg(repo().join("scripts/demo.sh"))
        .process_group(0);
    for (key, _) in std::env::vars() {
        if key.starts_with("DEMO_")
            || key.starts_with("PUBLISHER_")
            || key.starts_with("PI_SUBSCRIBER_")
        {
            cmd.env_remove(key);
        }
    }
    cmd.env("DEMO_BIN_DIR", common::publisher_bin().parent().unwrap())
        .env("DEMO_DATA_DIR", data)
        .env("DEMO_INTERVAL", "200ms");
    for (key, value) in env {
        cmd.env(key, value);
    }
    cmd
}

/// Runs `cmd` to its end, 20 s at most (then kills its process group and fails): a script
/// that started the demo instead of answering must not hang the test.
fn run_to_end(mut cmd: Command, what: &str) -> std::process::Output {
    let dir = tempfile::tempdir().unwrap();
    let (out, err) = (dir.path().join("stdout"), dir.path().join("stderr"));
    let mut child = cmd
        .stdout(std::fs::File::create(&out).unwrap())
        .stderr(std::fs::File::create(&err).unwrap())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if Instant::now() > deadline {
            let _ = Command::new("kill")
                .args(["-KILL", "--", &format!("-{}", child.id())])
                .status();
            let _ = child.wait();
            panic!(
                "{what} did not end within 20 s: {}",
                std::fs::read_to_string(&out).unwrap()
            );
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    std::process::Output {
        status,
        stdout: std::fs::read(&out).unwrap(),
        stderr: std::fs::read(&err).unwrap(),
    }
}

impl Demo {
    /// On free ports of its own (`DEMO_*_PORT`), showing live data.
    fn start() -> Demo {
        let ports = common::free_ports::<3>();
        let [publisher, mqtt, pi] = ports;
        let demo = Demo::spawn(&[
            ("DEMO_PUBLISHER_PORT", publisher.to_string()),
            ("DEMO_MQTT_PORT", mqtt.to_string()),
            ("DEMO_PI_PORT", pi.to_string()),
        ])
        .unwrap();
        assert_eq!(demo.ports, ports, "{}", demo.stdout);
        demo.wait_live();
        demo
    }

    /// Runs the script and waits (60 s at most) for the end of its banner, or for it to end.
    fn spawn(env: &[(&str, String)]) -> Result<Demo, Failed> {
        let data = tempfile::tempdir().unwrap();
        let stderr_path = data.path().join("demo.stderr");
        let mut child = demo_command(&data.path().join("data"), env)
            .stdout(Stdio::piped())
            .stderr(std::fs::File::create(&stderr_path).unwrap())
            .spawn()
            .unwrap();
        let out = child.stdout.take().unwrap();
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            use std::io::BufRead;
            for line in std::io::BufReader::new(out).lines() {
                let Ok(line) = line else { break };
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        let mut demo = Demo {
            child,
            ports: [0; 3],
            stdout: String::new(),
            _data: data,
        };
        let deadline = Instant::now() + Duration::from_secs(60);
        let mut in_banner = false;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match rx.recv_timeout(left) {
                Ok(line) => {
                    demo.stdout.push_str(&line);
                    demo.stdout.push('\n');
                    if line.contains("dashboard:") {
                        in_banner = true;
                    } else if in_banner && line.trim().is_empty() {
                        break;
                    }
                }
                Err(mpsc::RecvTimeoutError::Disconnected) => {
                    let status = demo.child.wait().unwrap();
                    return Err(Failed {
                        status,
                        stdout: std::mem::take(&mut demo.stdout),
                        stderr: std::fs::read_to_string(&stderr_path).unwrap(),
                    });
                }
                Err(mpsc::RecvTimeoutError::Timeout) => {
                    panic!("no banner within 60 s: {}", demo.stdout)
                }
            }
        }
        demo.ports = [
            banner_port(&demo.stdout, "publisher:"),
            banner_port(&demo.stdout, "MQTT:"),
            banner_port(&demo.stdout, "dashboard:"),
        ];
        Ok(demo)
    }

    fn url(&self, which: usize, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.ports[which])
    }

    /// Both daemons answer over HTTP now, without a retry: the banner waited for them.
    fn assert_both_answer(&self) {
        for which in [0, 2] {
            let url = self.url(which, "/health");
            let answer = reqwest::blocking::get(&url)
                .unwrap_or_else(|e| panic!("{url} after the banner: {e}\n{}", self.stdout));
            let status = answer.status().as_u16();
            assert!(status == 200 || status == 503, "{url}: {status}");
        }
    }

    /// `GET path` on the publisher (0) or the Pi (2) until `ok` holds for its JSON (30 s).
    fn wait_json(&self, which: usize, path: &str, ok: impl Fn(&serde_json::Value) -> bool) {
        let url = self.url(which, path);
        let deadline = Instant::now() + Duration::from_secs(30);
        let mut last = serde_json::Value::Null;
        loop {
            if let Ok(r) = reqwest::blocking::get(&url) {
                if let Ok(json) = r.json::<serde_json::Value>() {
                    if ok(&json) {
                        return;
                    }
                    last = json;
                }
            }
            assert!(Instant::now() < deadline, "{url} never as expected: {last}");
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    fn wait_live(&self) {
        self.wait_json(2, "/metrics", |m| m["stale"] == false);
        let page = reqwest::blocking::get(self.url(2, "/"))
            .unwrap()
            .text()
            .unwrap();
        assert!(page.contains("Server Analytics"));
    }

    /// Sends `signal` to the script alone, or to its whole group as a terminal's Ctrl-C does.
    fn signal(&self, signal: &str, group: bool) {
        let pid = self.child.id();
        let target = if group {
            format!("-{pid}")
        } else {
            pid.to_string()
        };
        let sent = Command::new("kill")
            .args([&format!("-{signal}"), "--", &target])
            .status()
            .unwrap();
        assert!(sent.success(), "kill -{signal} {target}");
    }

    /// The script exited 0 within 15 s and both daemons' ports are closed.
    fn assert_stops(&mut self, what: &str) {
        let deadline = Instant::now() + Duration::from_secs(15);
        let status = loop {
            if let Some(s) = self.child.try_wait().unwrap() {
                break s;
            }
            assert!(Instant::now() < deadline, "demo did not stop on {what}");
            std::thread::sleep(Duration::from_millis(50));
        };
        assert!(status.success(), "{what}: {status:?}");
        for port in self.ports {
            assert!(
                std::net::TcpStream::connect(("127.0.0.1", port)).is_err(),
                "{what}: port {port} still open"
            );
        }
    }
}

impl Drop for Demo {
    fn drop(&mut self) {
        let _ = Command::new("kill")
            .args(["-KILL", "--", &format!("-{}", self.child.id())])
            .stderr(Stdio::null())
            .status();
        let _ = self.child.wait();
    }
}

#[test]
fn demo_runs_the_pipeline_and_stops_on_ctrl_c() {
    let mut demo = Demo::start();
    demo.assert_both_answer();
    demo.signal("INT", true);
    demo.assert_stops("Ctrl-C (SIGINT to its process group)");
}

#[test]
fn demo_stops_on_sigint_or_sigterm_sent_to_the_script_alone() {
    for signal in ["INT", "TERM"] {
        let mut demo = Demo::start();
        demo.signal(signal, false);
        demo.assert_stops(&format!("SIG{signal} to the script"));
    }
}

/// A home server already running mosquitto on 1883 (and something on 9000 and 9100): the
/// demo moves to free ports, says so, and comes up there, MQTT included.
#[test]
fn demo_moves_off_default_ports_that_are_taken() {
    // Held here, or already by another program on this machine: taken either way.
    let _held: Vec<std::net::TcpListener> = DEFAULT_PORTS
        .iter()
        .filter_map(
            |&port| match std::net::TcpListener::bind(("127.0.0.1", port)) {
                Ok(listener) => Some(listener),
                Err(e) if e.kind() == std::io::ErrorKind::AddrInUse => None,
                Err(e) => panic!("127.0.0.1:{port}: {e}"),
            },
        )
        .collect();
    let mut demo = Demo::spawn(&[]).unwrap();
    demo.assert_both_answer();
    for (port, default) in demo.ports.into_iter().zip(DEFAULT_PORTS) {
        assert_ne!(port, default, "{}", demo.stdout);
        assert!(
            demo.stdout
                .contains(&format!("127.0.0.1:{default} is taken")),
            "{}",
            demo.stdout
        );
    }
    demo.wait_live();
    let mqtt = format!("127.0.0.1:{}", demo.ports[1]);
    demo.wait_json(0, "/health", |h| {
        h["mqtt"]["broker"] == mqtt.as_str() && h["mqtt"]["connected"] == true
    });
    demo.wait_json(2, "/health", |h| {
        h["ingest"]["stored_mqtt_total"].as_u64() > Some(0)
    });
    demo.signal("INT", true);
    demo.assert_stops("Ctrl-C after moving ports");
}

/// A daemon that cannot start (here a bad interval stops the publisher): no banner, a
/// message naming it, a non-zero exit, and the other daemon stopped too.
#[test]
fn demo_fails_without_a_banner_when_a_daemon_dies_at_start() {
    let [pi, publisher, mqtt] = common::free_ports::<3>();
    let failed = match Demo::spawn(&[
        ("DEMO_INTERVAL", "soon".to_owned()),
        ("DEMO_PUBLISHER_PORT", publisher.to_string()),
        ("DEMO_MQTT_PORT", mqtt.to_string()),
        ("DEMO_PI_PORT", pi.to_string()),
    ]) {
        Ok(demo) => panic!("the demo came up: {}", demo.stdout),
        Err(failed) => failed,
    };
    assert_eq!(failed.status.code(), Some(1), "{failed:?}");
    assert!(!failed.stdout.contains("dashboard:"), "{failed:?}");
    assert!(
        failed
            .stderr
            .contains("demo: the publisher exited (status 2) before it answered"),
        "{failed:?}"
    );
    assert!(
        failed.stderr.contains("sampler.interval"),
        "the publisher's own error: {failed:?}"
    );
    assert!(std::net::TcpStream::connect(("127.0.0.1", pi)).is_err());
}

/// A fresh clone: the demo says what it builds and that the first build takes minutes, and
/// lets cargo show its progress (`cargo` here is a stand-in that records its arguments and
/// fails, so the test takes no minutes).
#[test]
fn demo_says_what_it_builds_and_stops_when_the_build_fails() {
    let dir = tempfile::tempdir().unwrap();
    let args = dir.path().join("cargo-args");
    let cargo = dir.path().join("cargo");
    std::fs::write(
        &cargo,
        format!("#!/bin/sh\necho \"$*\" > '{}'\nexit 101\n", args.display()),
    )
    .unwrap();
    std::fs::set_permissions(&cargo, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    let path = format!(
        "{}:{}",
        dir.path().display(),
        std::env::var("PATH").unwrap()
    );
    let mut cmd = demo_command(&dir.path().join("data"), &[("PATH", path)]);
    cmd.env_remove("DEMO_BIN_DIR");
    let out = run_to_end(cmd, "the demo with a failing build");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert_eq!(
        std::fs::read_to_string(&args).unwrap().trim(),
        "build --release -p publisher -p pi-subscriber"
    );
    assert!(
        stderr.contains("demo: building publisher and pi-subscriber (release)"),
        "{stderr}"
    );
    assert!(
        stderr.contains("the first build takes a few minutes"),
        "{stderr}"
    );
    assert!(stderr.contains("demo: the build failed"), "{stderr}");
    assert!(String::from_utf8_lossy(&out.stdout).is_empty());
}

/// `--help` names the variables that move the ports, and starts nothing.
#[test]
fn demo_help_documents_the_port_variables() {
    let dir = tempfile::tempdir().unwrap();
    let mut cmd = demo_command(&dir.path().join("data"), &[]);
    cmd.arg("--help");
    let out = run_to_end(cmd, "scripts/demo.sh --help");
    assert!(out.status.success());
    let help = String::from_utf8_lossy(&out.stdout);
    for variable in [
        "DEMO_PI_PORT=9100",
        "DEMO_PUBLISHER_PORT=9000",
        "DEMO_MQTT_PORT=1883",
        "DEMO_INTERVAL",
        "DEMO_DATA_DIR",
        "DEMO_BIN_DIR",
    ] {
        assert!(help.contains(variable), "{variable}: {help}");
    }
    assert!(!dir.path().join("data").exists(), "--help started the demo");
}
