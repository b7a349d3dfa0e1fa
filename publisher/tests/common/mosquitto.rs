//! A real mosquitto for the tests of both daemons, and a private CA (made with the openssl
//! command line) for its TLS listener.

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

/// A running mosquitto; killed when dropped.
pub struct Mosquitto {
    child: Child,
    port: u16,
}

impl Mosquitto {
    /// Anonymous, on 127.0.0.1:`port`, with `extra_conf` appended (more listeners,
    /// persistence, …); returns once it accepts connections.
    pub fn start(dir: &Path, port: u16, extra_conf: &str) -> Mosquitto {
        Mosquitto::start_in(dir, None, "127.0.0.1", port, extra_conf)
    }

    /// On `addr:port` (`addr` empty: every address), inside network namespace `netns` when
    /// given (then not waited for: the port is not reachable from here).
    pub fn start_in(
        dir: &Path,
        netns: Option<&str>,
        addr: &str,
        port: u16,
        extra_conf: &str,
    ) -> Mosquitto {
        let conf = dir.join(format!("mosquitto-{port}.conf"));
        let user =
            String::from_utf8(Command::new("id").arg("-un").output().unwrap().stdout).unwrap();
        std::fs::write(
            &conf,
            format!(
                "listener {port} {addr}\nallow_anonymous true\nuser {}\n{extra_conf}",
                user.trim()
            ),
        )
        .unwrap();
        let mut cmd = match netns {
            Some(ns) => {
                let mut c = Command::new("ip");
                c.args(["netns", "exec", ns, "mosquitto"]);
                c
            }
            None => Command::new("mosquitto"),
        };
        let child = cmd
            .arg("-c")
            .arg(&conf)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("mosquitto (Debian package mosquitto)");
        let mosquitto = Mosquitto { child, port };
        if netns.is_none() {
            let probe = if addr.is_empty() { "127.0.0.1" } else { addr };
            wait_for_port(probe, port);
        }
        mosquitto
    }

    /// With a TLS listener on `tls_port` beside the plain one, its certificate (for
    /// `localhost` and 127.0.0.1) signed by a CA made in `dir` (`dir/ca.pem`).
    pub fn with_tls(dir: &Path, plain_port: u16, tls_port: u16) -> Mosquitto {
        self_signed_ca(dir, "ca", "/CN=test CA");
        server_certificate(dir);
        let m = Mosquitto::start(
            dir,
            plain_port,
            &format!(
                "listener {tls_port} 127.0.0.1\ncafile {0}/ca.pem\ncertfile {0}/server.pem\nkeyfile {0}/server.key\n",
                dir.display()
            ),
        );
        wait_for_port("127.0.0.1", tls_port);
        m
    }

    /// The plain listener's port.
    pub fn port(&self) -> u16 {
        self.port
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

    /// Sends `signal` (`STOP`, `CONT`, `KILL`, …).
    pub fn signal(&self, signal: &str) {
        super::send_signal(&self.child, signal);
    }

    /// Stops it cleanly (SIGTERM) and waits.
    pub fn stop(&mut self) {
        let _ = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status();
        let _ = self.child.wait();
    }
}

impl Drop for Mosquitto {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
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
        let probe = format!("probe/{}", super::free_port());
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

fn wait_for_port(addr: &str, port: u16) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while std::net::TcpStream::connect((addr, port)).is_err() {
        assert!(
            Instant::now() < deadline,
            "mosquitto did not listen on {addr}:{port}"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Runs `openssl args…` in `dir`.
pub fn openssl(dir: &Path, args: &[&str]) {
    let ok = Command::new("openssl")
        .current_dir(dir)
        .args(args)
        .stderr(Stdio::null())
        .status()
        .expect("openssl")
        .success();
    assert!(ok, "openssl {args:?}");
}

/// A self-signed CA: `dir/<name>.pem` and its key.
pub fn self_signed_ca(dir: &Path, name: &str, subject: &str) {
    let (key, pem) = (format!("{name}.key"), format!("{name}.pem"));
    openssl(
        dir,
        &[
            "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", &key, "-out", &pem,
            "-days", "2", "-subj", subject,
        ],
    );
}

/// `dir/server.pem` for localhost and 127.0.0.1, signed by `dir/ca.pem`.
pub fn server_certificate(dir: &Path) {
    openssl(
        dir,
        &[
            "req",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-keyout",
            "server.key",
            "-out",
            "server.csr",
            "-subj",
            "/CN=localhost",
        ],
    );
    std::fs::write(
        dir.join("san.ext"),
        "subjectAltName=DNS:localhost,IP:127.0.0.1\n",
    )
    .unwrap();
    openssl(
        dir,
        &[
            "x509",
            "-req",
            "-in",
            "server.csr",
            "-CA",
            "ca.pem",
            "-CAkey",
            "ca.key",
            "-CAcreateserial",
            "-out",
            "server.pem",
            "-days",
            "2",
            "-extfile",
            "san.ext",
        ],
    );
}
