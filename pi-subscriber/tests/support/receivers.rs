//! Real remote write receivers for the tests (of both daemons: the publisher's include this
//! file by path): Prometheus (Debian `prometheus`, started with
//! `--web.enable-remote-write-receiver`, no out-of-order window) and VictoriaMetrics (Debian
//! `victoria-metrics`), each on its own address and data directory, stoppable and restartable
//! on the same ones; and what each holds, raw, for a series.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

/// A query string's value, percent-encoded.
fn urlencode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'_' | b'-' | b'.' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}

#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Kind {
    Prometheus,
    Victoria,
}

/// A receiver process; killed when dropped.
pub struct Receiver {
    pub kind: Kind,
    /// `ip:port` it listens on.
    pub addr: String,
    dir: PathBuf,
    netns: Option<String>,
    child: Option<Child>,
    /// Served over TLS with `dir/server.pem`, signed by this CA (Prometheus only).
    tls_ca: Option<PathBuf>,
}

impl Receiver {
    /// Starts one on `addr` with its data under `dir` (inside network namespace `netns`).
    pub fn start(kind: Kind, dir: &Path, addr: &str, netns: Option<&str>) -> Receiver {
        let mut r = Receiver {
            kind,
            addr: addr.to_owned(),
            dir: dir.to_owned(),
            netns: netns.map(str::to_owned),
            child: None,
            tls_ca: None,
        };
        r.restart();
        r
    }

    /// A Prometheus serving HTTPS with `dir/server.pem` and `dir/server.key` (made by the
    /// test), whose CA is `dir/ca.pem`.
    pub fn prometheus_tls(dir: &Path, addr: &str) -> Receiver {
        let mut r = Receiver {
            kind: Kind::Prometheus,
            addr: addr.to_owned(),
            dir: dir.to_owned(),
            netns: None,
            child: None,
            tls_ca: Some(dir.join("ca.pem")),
        };
        r.restart();
        r
    }

    fn scheme(&self) -> &'static str {
        if self.tls_ca.is_some() {
            "https"
        } else {
            "http"
        }
    }

    /// A client that trusts the receiver's CA.
    fn client(&self) -> reqwest::blocking::Client {
        let mut b = reqwest::blocking::Client::builder().timeout(Duration::from_secs(10));
        if let Some(ca) = &self.tls_ca {
            let pem = std::fs::read(ca).unwrap();
            b = b.add_root_certificate(reqwest::Certificate::from_pem(&pem).unwrap());
        }
        b.build().unwrap()
    }

    /// Whether both are installed (CI installs them); a test without them says why it skips.
    pub fn available() -> bool {
        let ok = Path::new("/usr/bin/prometheus").exists()
            && Path::new("/usr/bin/victoria-metrics").exists();
        if !ok {
            eprintln!("SKIPPED: needs prometheus and victoria-metrics (Debian packages; scripts/test.sh installs them)");
        }
        ok
    }

    /// The URL a sender writes to.
    pub fn write_url(&self) -> String {
        format!("{}://{}/api/v1/write", self.scheme(), self.addr)
    }

    /// Stops it as a service manager would (SIGTERM, then SIGKILL after 10 s): an acknowledged
    /// write must survive (VictoriaMetrics keeps the newest rows in memory for a few seconds
    /// and flushes them on SIGTERM; a SIGKILL would lose them on the receiver's side).
    pub fn stop(&mut self) {
        if let Some(mut c) = self.child.take() {
            // Under `ip netns exec` the receiver is the exec'd process itself (same pid).
            crate::common::send_signal(&c, "TERM");
            let deadline = Instant::now() + Duration::from_secs(10);
            while c.try_wait().ok().flatten().is_none() && Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(50));
            }
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// Starts it again on the same address and data (or the first time), and waits until it
    /// answers.
    pub fn restart(&mut self) {
        self.stop();
        std::fs::create_dir_all(&self.dir).unwrap();
        let mut cmd = match &self.netns {
            Some(ns) => {
                let mut c = Command::new("ip");
                c.args(["netns", "exec", ns]);
                c
            }
            None => Command::new("env"),
        };
        match self.kind {
            Kind::Prometheus => {
                let config = self.dir.join("prometheus.yml");
                std::fs::write(&config, "global:\n  scrape_interval: 1m\n").unwrap();
                cmd.arg("prometheus");
                if self.tls_ca.is_some() {
                    let web = self.dir.join("web.yml");
                    std::fs::write(
                        &web,
                        format!(
                            "tls_server_config:\n  cert_file: {0}/server.pem\n  key_file: {0}/server.key\n",
                            self.dir.display()
                        ),
                    )
                    .unwrap();
                    cmd.arg(format!("--web.config.file={}", web.display()));
                }
                cmd.arg(format!("--config.file={}", config.display()))
                    .arg(format!(
                        "--storage.tsdb.path={}",
                        self.dir.join("tsdb").display()
                    ))
                    .arg(format!("--web.listen-address={}", self.addr))
                    .arg("--web.enable-remote-write-receiver");
            }
            Kind::Victoria => {
                cmd.arg("victoria-metrics")
                    .arg(format!("-httpListenAddr={}", self.addr))
                    .arg(format!(
                        "-storageDataPath={}",
                        self.dir.join("vm").display()
                    ))
                    .arg("-retentionPeriod=100y")
                    .arg("-search.latencyOffset=0s");
            }
        }
        let child = cmd
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("prometheus / victoria-metrics (Debian packages)");
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(30);
        let ready = match self.kind {
            Kind::Prometheus => "/-/ready",
            Kind::Victoria => "/health",
        };
        let client = self.client();
        while client
            .get(format!("{}://{}{ready}", self.scheme(), self.addr))
            .send()
            .map(|r| r.status().as_u16())
            .unwrap_or(0)
            != 200
        {
            assert!(
                Instant::now() < deadline,
                "{:?} on {} never ready",
                self.kind,
                self.addr
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// Every raw sample the receiver holds of the series `selector` (a PromQL selector),
    /// `(ms, value)` ascending.
    pub fn raw(&self, selector: &str) -> Vec<(i64, f64)> {
        match self.kind {
            Kind::Prometheus => {
                let url = format!(
                    "{}://{}/api/v1/query?query={}",
                    self.scheme(),
                    self.addr,
                    urlencode(&format!("{selector}[1d]"))
                );
                let v: Value = self.client().get(&url).send().unwrap().json().unwrap();
                let Some(series) = v["data"]["result"].as_array().and_then(|r| r.first()) else {
                    return Vec::new();
                };
                series["values"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|p| {
                        let t = (p[0].as_f64().unwrap() * 1000.0).round() as i64;
                        (t, p[1].as_str().unwrap().parse().unwrap())
                    })
                    .collect()
            }
            Kind::Victoria => {
                let client = reqwest::blocking::Client::new();
                let _ = client
                    .get(format!("http://{}/internal/force_flush", self.addr))
                    .send();
                let url = format!(
                    "http://{}/api/v1/export?match[]={}&start=0",
                    self.addr,
                    urlencode(selector)
                );
                let text = client.get(&url).send().unwrap().text().unwrap();
                let mut out = Vec::new();
                for line in text.lines().filter(|l| !l.trim().is_empty()) {
                    let v: Value = serde_json::from_str(line).unwrap();
                    let ts = v["timestamps"].as_array().unwrap();
                    let vals = v["values"].as_array().unwrap();
                    for (t, x) in ts.iter().zip(vals) {
                        out.push((t.as_i64().unwrap(), x.as_f64().unwrap()));
                    }
                }
                out.sort_by_key(|p| p.0);
                out
            }
        }
    }

    /// A PromQL instant query at `at_ms`: the first result's value.
    pub fn instant(&self, q: &str, at_ms: i64) -> Option<f64> {
        let url = format!(
            "http://{}/api/v1/query?query={}&time={}.{:03}",
            self.addr,
            urlencode(q),
            at_ms.div_euclid(1000),
            at_ms.rem_euclid(1000)
        );
        let v: Value = reqwest::blocking::get(&url).ok()?.json().ok()?;
        v["data"]["result"][0]["value"][1].as_str()?.parse().ok()
    }
}

impl Drop for Receiver {
    fn drop(&mut self) {
        self.stop();
    }
}
