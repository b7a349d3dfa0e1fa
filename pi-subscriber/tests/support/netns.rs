//! A network namespace joined to this one by a veth pair, for tests that cut a real link
//! (root only), and a child process killed when dropped.

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use crate::common::{Client, Publisher};

/// A network namespace `sadlv<pid>x<k>` joined to this one by a veth pair (a /30 of
/// 10.213.x.0/24: `here` on this side, `there` on the far one); removed when dropped.
pub struct Netns {
    pub name: String,
    host_if: String,
    pub ns_if: String,
    pub here: String,
    pub there: String,
}

pub fn sh(args: &[&str]) -> bool {
    Command::new(args[0])
        .args(&args[1..])
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

impl Netns {
    pub fn create() -> Result<Netns, String> {
        // Unique per process and per call: tests of one binary run side by side.
        static NEXT: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
        let k = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed) % 60;
        let pid = std::process::id();
        let net = Netns {
            name: format!("sadlv{pid}x{k}"),
            host_if: format!("d{pid}h{k}"),
            ns_if: format!("d{pid}n{k}"),
            here: format!("10.213.{}.{}", pid % 250, 4 * k + 1),
            there: format!("10.213.{}.{}", pid % 250, 4 * k + 2),
        };
        let (ns, h, n) = (&net.name, &net.host_if, &net.ns_if);
        let steps: Vec<Vec<String>> = [
            "ip netns add {ns}",
            "ip link add {h} type veth peer name {n}",
            "ip link set {n} netns {ns}",
            "ip addr add {here}/30 dev {h}",
            "ip link set {h} up",
            "ip netns exec {ns} ip addr add {there}/30 dev {n}",
            "ip netns exec {ns} ip link set {n} up",
            "ip netns exec {ns} ip link set lo up",
            "ip netns exec {ns} iptables -S",
        ]
        .iter()
        .map(|step| {
            step.replace("{ns}", ns)
                .replace("{h}", h)
                .replace("{n}", n)
                .replace("{here}", &net.here)
                .replace("{there}", &net.there)
                .split(' ')
                .map(str::to_owned)
                .collect()
        })
        .collect();
        for step in steps {
            let args: Vec<&str> = step.iter().map(String::as_str).collect();
            if !sh(&args) {
                return Err(format!("`{}` failed", step.join(" ")));
            }
        }
        Ok(net)
    }

    /// Drops every packet through the veth, both directions (no RST, no ICMP: a real cut).
    pub fn cut(&self) {
        for chain in [["INPUT", "-i"], ["OUTPUT", "-o"]] {
            assert!(sh(&[
                "ip",
                "netns",
                "exec",
                &self.name,
                "iptables",
                "-A",
                chain[0],
                chain[1],
                &self.ns_if,
                "-j",
                "DROP"
            ]));
        }
    }

    /// Drops only TCP to and from `port` on the far side (a service there, or reached from
    /// there), both directions; everything else passes.
    pub fn cut_port(&self, port: u16) {
        let port = port.to_string();
        for rule in [
            ["INPUT", "-i", "--sport"],
            ["INPUT", "-i", "--dport"],
            ["OUTPUT", "-o", "--sport"],
            ["OUTPUT", "-o", "--dport"],
        ] {
            assert!(sh(&[
                "ip",
                "netns",
                "exec",
                &self.name,
                "iptables",
                "-A",
                rule[0],
                rule[1],
                &self.ns_if,
                "-p",
                "tcp",
                rule[2],
                &port,
                "-j",
                "DROP"
            ]));
        }
    }

    pub fn heal(&self) {
        assert!(sh(&["ip", "netns", "exec", &self.name, "iptables", "-F"]));
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        sh(&["ip", "link", "del", &self.host_if]);
        sh(&["ip", "netns", "del", &self.name]);
    }
}

/// A child killed when dropped.
pub struct Guard(pub Child);

impl Drop for Guard {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Whether this test runs as root (CI does).
pub fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
}

/// A namespace for a link-cut test, or `None` with a line saying why the test is skipped.
pub fn create_or_skip() -> Option<Netns> {
    if !is_root() {
        eprintln!("SKIPPED: a link cut needs root (network namespace, veth, iptables)");
        return None;
    }
    match Netns::create() {
        Ok(net) => Some(net),
        Err(why) => {
            eprintln!(
                "SKIPPED: cannot build the network namespace (packages iproute2, iptables): {why}"
            );
            None
        }
    }
}

impl Netns {
    /// The publisher on this side (HTTP on `here`, every 200 ms), publishing to the broker on
    /// the far side at `there:1883`.
    pub fn publisher_here(&self, data: &Path) -> Publisher {
        Publisher::start_with_env(
            data,
            &[
                "--interval",
                "200ms",
                "--broker-mode",
                "external",
                "--bind",
                &format!("{}:0", self.here),
            ],
            &[
                ("PUBLISHER_BROKER__HOST", &self.there),
                ("PUBLISHER_BROKER__PORT", "1883"),
                ("PUBLISHER_BROKER__KEEP_ALIVE", "2s"),
            ],
        )
    }

    /// The Pi on the far side, subscribed to the broker there, polling `endpoint` every
    /// 200 ms with no fallback polling (what it misses must come by MQTT or backfill).
    pub fn pi_there(&self, data: &Path, endpoint: &str, args: &[&str]) -> (Guard, Client) {
        self.pi_there_with_env(data, endpoint, args, &[])
    }

    /// [`Netns::pi_there`] with `env` added last (it overrides the defaults above, e.g.
    /// `PI_SUBSCRIBER_HISTORY__COMMIT_INTERVAL`).
    pub fn pi_there_with_env(
        &self,
        data: &Path,
        endpoint: &str,
        args: &[&str],
        env: &[(&str, &str)],
    ) -> (Guard, Client) {
        let mut all = vec!["--metrics-endpoint", endpoint];
        all.extend_from_slice(args);
        self.pi_there_polling(data, &all, env)
    }

    /// [`Netns::pi_there_with_env`] without an endpoint of its own: `args` name them
    /// (`--metrics-endpoint`, or a `--config` with `[poll] endpoints`).
    pub fn pi_there_polling(
        &self,
        data: &Path,
        args: &[&str],
        env: &[(&str, &str)],
    ) -> (Guard, Client) {
        let mut cmd = Command::new("ip");
        cmd.args(["netns", "exec", &self.name])
            .arg(env!("CARGO_BIN_EXE_pi-subscriber"))
            .env("RUST_LOG", "info")
            .env("PI_SUBSCRIBER_POLL__INTERVAL", "200ms")
            .env("PI_SUBSCRIBER_HISTORY__COMMIT_INTERVAL", "1s")
            .env("PI_SUBSCRIBER_POLL__TIMEOUT", "1s")
            .env("PI_SUBSCRIBER_POLL__FALLBACK_AFTER", "600s")
            .envs(env.iter().copied())
            .args(["--bind", &format!("{}:0", self.there)])
            .args(["--mqtt-host", "127.0.0.1", "--mqtt-port", "1883"])
            .args(args)
            .arg("--data-dir")
            .arg(data)
            .stdout(Stdio::null())
            .stderr(Stdio::piped());
        let mut child = Guard(cmd.spawn().expect("ip netns exec pi-subscriber"));
        let client = Client::attach(&mut child.0);
        (child, client)
    }
}

/// The seqs of a list of snapshots or `/history` rows.
pub fn seqs(rows: &serde_json::Value) -> std::collections::BTreeSet<u64> {
    rows.as_array()
        .into_iter()
        .flatten()
        .filter_map(|r| r["seq"].as_u64())
        .collect()
}

/// What every outage test starts with: a namespace, a real mosquitto on its far side, and
/// the publisher here (`http_port`, `endpoint` its `/latest`); `pi_dir` for the Pi's data.
/// Fields drop in order: the publisher and the broker stop before the namespace goes.
pub struct Outage {
    pub publisher: Publisher,
    _broker: crate::common::mosquitto::Mosquitto,
    pub net: Netns,
    pub http_port: u16,
    pub endpoint: String,
    pub pi_dir: tempfile::TempDir,
    _dirs: (tempfile::TempDir, tempfile::TempDir),
}

impl Outage {
    /// `None` (with a message saying why) when the namespace cannot be built: not root.
    pub fn start_or_skip() -> Option<Outage> {
        let net = create_or_skip()?;
        let (pdir, mdir) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
        let broker = crate::common::mosquitto::Mosquitto::start_in(
            mdir.path(),
            Some(&net.name),
            "",
            1883,
            "",
        );
        let publisher = net.publisher_here(pdir.path());
        let http_port: u16 = publisher.base.rsplit(':').next()?.parse().ok()?;
        let endpoint = publisher.url("/latest");
        Some(Outage {
            publisher,
            _broker: broker,
            net,
            http_port,
            endpoint,
            pi_dir: tempfile::tempdir().unwrap(),
            _dirs: (pdir, mdir),
        })
    }
}

/// The seqs publisher `p` took between `have`'s first and newest (its ring's `/history`),
/// and those of them not in `have`.
pub fn publisher_range(
    p: &Publisher,
    have: &std::collections::BTreeSet<u64>,
) -> (std::collections::BTreeSet<u64>, Vec<u64>) {
    let (Some(first), Some(newest)) = (have.first(), have.last()) else {
        return Default::default();
    };
    let page = p.json(&format!(
        "/history?since_seq={}&limit=10000",
        first.saturating_sub(1)
    ));
    let want: std::collections::BTreeSet<u64> = seqs(&page["snapshots"])
        .into_iter()
        .filter(|s| s <= newest)
        .collect();
    let missing = want.difference(have).copied().collect();
    (want, missing)
}

/// Waits (30 s at most) until Prometheus `prom` holds exactly the CPU samples the Pi `s`
/// holds of `host` (up to the Pi's newest), at least `least` of them, each once.
pub fn prometheus_holds_the_pis_cpu(
    prom: &crate::support::receivers::Receiver,
    s: &Client,
    host: &str,
    least: usize,
) {
    let selector =
        format!(r#"server_analytics_cpu_usage_ratio{{host="{host}",job="server-analytics"}}"#);
    let rows = s.json(&format!("/history?host={host}"));
    let times: Vec<i64> = rows
        .as_array()
        .unwrap()
        .iter()
        .filter(|r| r["cpu_usage_percent"].is_number())
        .map(|r| r["time"].as_i64().unwrap())
        .collect();
    assert!(times.len() >= least, "{host}: {} samples", times.len());
    let newest = *times.last().unwrap();
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    loop {
        let got: Vec<i64> = prom
            .raw(&selector)
            .into_iter()
            .map(|p| p.0)
            .filter(|t| *t <= newest)
            .collect();
        if got == times {
            return;
        }
        let missing = times.iter().filter(|t| !got.contains(t)).count();
        assert!(
            std::time::Instant::now() < deadline,
            "{host}: Prometheus has {} samples, the Pi {} ({missing} missing, {} seqs)",
            got.len(),
            times.len(),
            seqs(&rows).len()
        );
        std::thread::sleep(Duration::from_millis(300));
    }
}
