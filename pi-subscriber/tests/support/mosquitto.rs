//! A real mosquitto on a free loopback port, and `mosquitto_pub` / `mosquitto_sub` around it.

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

/// A real mosquitto (plain listener on 127.0.0.1, anonymous); killed when dropped.
pub struct Mosquitto {
    child: Child,
    pub port: u16,
}

/// `name` from `PATH`, else from `/usr/sbin` (where Debian puts mosquitto).
fn program(name: &str) -> String {
    let sbin = format!("/usr/sbin/{name}");
    let on_path = std::env::var_os("PATH")
        .is_some_and(|path| std::env::split_paths(&path).any(|d| d.join(name).exists()));
    if !on_path && Path::new(&sbin).exists() {
        sbin
    } else {
        name.to_owned()
    }
}

impl Mosquitto {
    /// Starts mosquitto on a free port, its config file in `dir`.
    pub fn start(dir: &Path) -> Mosquitto {
        let port = crate::common::free_port();
        let conf = dir.join(format!("mosquitto-{port}.conf"));
        let user =
            String::from_utf8(Command::new("id").arg("-un").output().unwrap().stdout).unwrap();
        std::fs::write(
            &conf,
            format!(
                "listener {port} 127.0.0.1\nallow_anonymous true\nuser {}\n",
                user.trim()
            ),
        )
        .unwrap();
        let child = Command::new(program("mosquitto"))
            .arg("-c")
            .arg(&conf)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("mosquitto (Debian package mosquitto)");
        let deadline = Instant::now() + Duration::from_secs(10);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(
                Instant::now() < deadline,
                "mosquitto did not start on {port}"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        Mosquitto { child, port }
    }

    /// `mosquitto_pub` one message (`-r` when `retain`; an empty payload is sent as `-n`, which
    /// with `retain` clears the retained message).
    pub fn publish(&self, topic: &str, payload: &str, retain: bool) {
        let mut cmd = Command::new("mosquitto_pub");
        cmd.args(["-h", "127.0.0.1", "-p", &self.port.to_string(), "-q", "1"])
            .args(["-t", topic]);
        if retain {
            cmd.arg("-r");
        }
        if payload.is_empty() {
            cmd.arg("-n");
        } else {
            cmd.args(["-m", payload]);
        }
        let status = cmd
            .status()
            .expect("mosquitto_pub (Debian package mosquitto-clients)");
        assert!(status.success(), "mosquitto_pub -t {topic}: {status}");
    }
}

/// A `mosquitto_sub -v` running in the background: its lines (`topic payload`) in order.
pub struct Subscription {
    child: Child,
    lines: mpsc::Receiver<String>,
}

impl Mosquitto {
    /// Subscribes to `topic` and waits until mosquitto has the subscription (a probe message
    /// on a topic of its own comes back).
    pub fn subscribe(&self, topic: &str) -> Subscription {
        let probe = format!("probe/{}", crate::common::free_port());
        let mut child = Command::new("mosquitto_sub")
            .args(["-h", "127.0.0.1", "-p", &self.port.to_string(), "-v"])
            .args(["-t", topic, "-t", &probe])
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("mosquitto_sub (Debian package mosquitto-clients)");
        let stdout = child.stdout.take().unwrap();
        let (tx, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            self.publish(&probe, "probe", false);
            if let Ok(line) = lines.recv_timeout(Duration::from_millis(200)) {
                if line.starts_with(&probe) {
                    break;
                }
            }
            assert!(
                Instant::now() < deadline,
                "mosquitto_sub -t {topic} did not start"
            );
        }
        Subscription { child, lines }
    }
}

impl Subscription {
    /// The next line, or `None` after `timeout`.
    pub fn next(&self, timeout: Duration) -> Option<String> {
        self.lines.recv_timeout(timeout).ok()
    }
}

impl Drop for Subscription {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Mosquitto {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
