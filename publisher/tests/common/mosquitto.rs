//! A real mosquitto for the tests of both daemons, and a private CA (made with the openssl
//! command line) for its TLS listener.

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A running mosquitto; killed when dropped.
pub struct Mosquitto {
    child: Child,
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
        let mosquitto = Mosquitto { child };
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

    /// Sends `signal` (`STOP`, `CONT`, `KILL`, …).
    pub fn signal(&self, signal: &str) {
        let ok = Command::new("kill")
            .args([&format!("-{signal}"), &self.child.id().to_string()])
            .status()
            .unwrap()
            .success();
        assert!(ok, "kill -{signal} mosquitto");
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
fn server_certificate(dir: &Path) {
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
