//! Runs the built `publisher` binary as a child process on a free loopback port, and talks to
//! it (or to a `pi-subscriber`, which logs its address the same way) over real HTTP; and finds
//! (and copies) the fixture machines' trees.
//! `pi-subscriber`'s tests include this file too (`#[path]`).
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

pub mod mosquitto;
mod ports;

#[allow(unused_imports)] // not every test binary names both
pub use ports::{free_port, free_ports};

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

/// Sends `signal` (`TERM`, `STOP`, `KILL`, …) to a child.
pub fn send_signal(child: &Child, signal: &str) {
    let ok = Command::new("kill")
        .args([&format!("-{signal}"), &child.id().to_string()])
        .status()
        .unwrap()
        .success();
    assert!(ok, "kill -{signal} {}", child.id());
}

/// The `publisher` binary: Cargo's own path inside this package; from another package's tests,
/// the one `cargo test --workspace` built next to them in the same target directory.
pub fn publisher_bin() -> PathBuf {
    if let Some(bin) = option_env!("CARGO_BIN_EXE_publisher") {
        return PathBuf::from(bin);
    }
    let exe = std::env::current_exe().unwrap();
    let profile_dir = exe.parent().and_then(Path::parent).unwrap();
    let bin = profile_dir.join("publisher");
    assert!(
        bin.exists(),
        "{} not built: run `cargo test --workspace`",
        bin.display()
    );
    bin
}

/// The environment every child gets: no stray `PUBLISHER_*` from the caller, no colours,
/// host id `testhost`.
pub fn command(data_dir: &Path) -> Command {
    let mut cmd = Command::new(publisher_bin());
    for (key, _) in std::env::vars() {
        if key.starts_with("PUBLISHER_") {
            cmd.env_remove(key);
        }
    }
    // The host id comes from the environment so that a test can still pass `--host`.
    cmd.env("RUST_LOG", "info")
        .env("TZ", "UTC")
        .env("PUBLISHER_HOST", "testhost")
        .arg("--data-dir")
        .arg(data_dir);
    cmd
}

/// HTTP access to a running publisher, plus its log lines.
pub struct Client {
    pub base: String,
    /// Port of the embedded MQTT broker, when it runs one.
    pub mqtt_port: Option<u16>,
    pub log: mpsc::Receiver<String>,
}

impl Client {
    /// Reads `child`'s stderr (echoing it) until the daemon says where it listens.
    pub fn attach(child: &mut Child) -> Client {
        let stderr = child.stderr.take().unwrap();
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines() {
                let Ok(line) = line else { break };
                eprintln!("[child] {line}");
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        let deadline = Instant::now() + Duration::from_secs(20);
        let field = |line: &str, name: &str| {
            line.split(&format!(" {name}="))
                .nth(1)
                .and_then(|rest| rest.split_whitespace().next())
                .map(str::to_owned)
        };
        let mut mqtt_port = None;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            let line = rx
                .recv_timeout(left)
                .expect("publisher did not report its address in time");
            if line.contains("MQTT broker listening") {
                mqtt_port = field(&line, "mqtt")
                    .and_then(|a| a.parse::<std::net::SocketAddr>().ok())
                    .map(|a| a.port());
            }
            if let Some(addr) = field(&line, "http") {
                return Client {
                    base: format!("http://{addr}"),
                    mqtt_port,
                    log: rx,
                };
            }
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{}", self.base, path)
    }

    pub fn get(&self, path: &str) -> (u16, String) {
        get(&self.url(path))
    }

    pub fn json(&self, path: &str) -> serde_json::Value {
        let (status, body) = self.get(path);
        assert_eq!(status, 200, "{path}: {body}");
        serde_json::from_str(&body).unwrap()
    }

    /// Polls `path` until `check` accepts the JSON body (for up to 20 s).
    pub fn wait_for(
        &self,
        path: &str,
        check: impl Fn(&serde_json::Value) -> bool,
    ) -> serde_json::Value {
        self.wait_for_within(path, Duration::from_secs(20), check)
    }

    pub fn wait_for_within(
        &self,
        path: &str,
        within: Duration,
        check: impl Fn(&serde_json::Value) -> bool,
    ) -> serde_json::Value {
        let deadline = Instant::now() + within;
        loop {
            let (status, body) = self.get(path);
            if status == 200 {
                let v: serde_json::Value = serde_json::from_str(&body).unwrap();
                if check(&v) {
                    return v;
                }
            }
            assert!(
                Instant::now() < deadline,
                "timed out waiting on {path}: {status} {body}"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

/// A running publisher; killed when dropped.
pub struct Publisher {
    pub child: Child,
    pub client: Client,
}

impl std::ops::Deref for Publisher {
    type Target = Client;
    fn deref(&self) -> &Client {
        &self.client
    }
}

impl Publisher {
    /// Starts `publisher ARGS`, on free ports unless `ARGS` name `--bind`/`--broker-listen`,
    /// and waits until it says where it listens.
    pub fn start(data_dir: &Path, args: &[&str]) -> Publisher {
        Self::start_with_env(data_dir, args, &[])
    }

    /// Sampling every `interval`, on fixed ports (HTTP on 127.0.0.1:`http`, the embedded
    /// broker on 127.0.0.1:`mqtt`), so that a restarted one is found again.
    pub fn on_ports(data_dir: &Path, interval: &str, http: u16, mqtt: u16) -> Publisher {
        Self::start(
            data_dir,
            &[
                "--interval",
                interval,
                "--bind",
                &format!("127.0.0.1:{http}"),
                "--broker-listen",
                &format!("127.0.0.1:{mqtt}"),
            ],
        )
    }

    pub fn start_with_env(data_dir: &Path, args: &[&str], env: &[(&str, &str)]) -> Publisher {
        let mut cmd = command(data_dir);
        // HTTP binds port 0 itself and says which port it got. The broker is given a port
        // from below the ephemeral range: for port 0 the publisher would probe one and release
        // it before rumqttd binds it, a moment in which another test's connection can take it.
        if !args.contains(&"--bind") {
            cmd.args(["--bind", "127.0.0.1:0"]);
        }
        if !args.contains(&"--broker-listen") {
            cmd.args(["--broker-listen", &format!("127.0.0.1:{}", free_port())]);
        }
        let mut child = cmd
            .args(args)
            .envs(env.iter().copied())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn publisher");
        let client = Client::attach(&mut child);
        Publisher { child, client }
    }

    pub fn signal(&self, signal: &str) {
        send_signal(&self.child, signal);
    }

    pub fn wait_exit(&mut self, within: Duration) -> ExitStatus {
        let deadline = Instant::now() + within;
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                return status;
            }
            assert!(
                Instant::now() < deadline,
                "publisher did not exit in {within:?}"
            );
            std::thread::sleep(Duration::from_millis(10));
        }
    }
}

impl Drop for Publisher {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub fn get(url: &str) -> (u16, String) {
    let client = reqwest::blocking::Client::builder()
        .timeout(Duration::from_secs(10))
        .build()
        .unwrap();
    let response = client.get(url).send().unwrap();
    let status = response.status().as_u16();
    (status, response.text().unwrap())
}

/// `GET uri` through a router with `tower::ServiceExt::oneshot` (no socket): the status and
/// the JSON body (`null` when it is not JSON).
pub async fn oneshot_get(
    router: axum::Router,
    uri: &str,
) -> (axum::http::StatusCode, serde_json::Value) {
    use http_body_util::BodyExt;
    use tower::ServiceExt;
    let request = axum::http::Request::get(uri)
        .body(axum::body::Body::empty())
        .unwrap();
    let response = router.oneshot(request).await.unwrap();
    let status = response.status();
    let bytes = response.into_body().collect().await.unwrap().to_bytes();
    (
        status,
        serde_json::from_slice(&bytes).unwrap_or(serde_json::Value::Null),
    )
}

/// `POST uri` with a JSON body through a router with `oneshot`: the status and the JSON body
/// (`null` when it is not JSON).
pub async fn oneshot_post(
    router: axum::Router,
    uri: &str,
    body: serde_json::Value,
) -> (axum::http::StatusCode, serde_json::Value) {
    use http_body_util::BodyExt;
    use tower::ServiceExt;
    let request = axum::http::Request::post(uri)
        .header(axum::http::header::CONTENT_TYPE, "application/json")
        .body(axum::body::Body::from(body.to_string()))
        .unwrap();
    let response = router.oneshot(request).await.unwrap();
    let status = response.status();
    let bytes = response.into_body().collect().await.unwrap().to_bytes();
    (
        status,
        serde_json::from_slice(&bytes).unwrap_or(serde_json::Value::Null),
    )
}

/// A fixture machine's tree (found from either package that includes this file).
pub fn fixture(machine: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../publisher/tests/fixtures")
        .join(machine)
}

/// Copies the directory tree `from` into `to` (created if missing): a fixture machine made
/// writable, for tests that change it as the kernel would.
pub fn copy_tree(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let target = to.join(entry.file_name());
        if entry.file_type().unwrap().is_dir() {
            copy_tree(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), target).unwrap();
        }
    }
}
