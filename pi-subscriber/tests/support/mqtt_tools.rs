//! The mosquitto command-line clients against a test broker: retained messages, one-off
//! publishes, and fake publishers (one `mosquitto_pub -l` per host, a snapshot a second).

use std::collections::BTreeMap;
use std::io::Write;
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Whether `bin --help` runs (a Debian package is installed).
pub fn installed(bin: &str) -> bool {
    Command::new(bin).arg("--help").output().is_ok()
}

/// The retained messages under `filter` now, by topic.
pub fn retained(port: u16, filter: &str) -> BTreeMap<String, String> {
    let mut cmd = Command::new("mosquitto_sub");
    cmd.args(["-h", "127.0.0.1", "-p", &port.to_string(), "-t", filter])
        .args(["--retained-only", "-W", "1", "-F", "%t %p"]);
    let stdout = bounded(cmd, Duration::from_secs(10));
    String::from_utf8_lossy(&stdout)
        .lines()
        .filter_map(|l| l.split_once(' '))
        .map(|(t, p)| (t.to_owned(), p.to_owned()))
        .collect()
}

/// The retained message on one topic (at once when there is one; 1 s to tell there is none).
pub fn one(port: u16, topic: &str) -> Option<String> {
    let mut cmd = Command::new("mosquitto_sub");
    cmd.args(["-h", "127.0.0.1", "-p", &port.to_string(), "-t", topic])
        .args(["--retained-only", "-C", "1", "-W", "1"]);
    let stdout = bounded(cmd, Duration::from_secs(10));
    let text = String::from_utf8_lossy(&stdout);
    text.strip_suffix('\n').map(str::to_owned)
}

/// A `mosquitto_sub` run's output, killed (SIGKILL) after `within`: its own `-W` timeout once
/// deadlocked in CI (SIGALRM blocked in a thread) and the run hung the whole suite.
pub fn bounded(mut cmd: Command, within: Duration) -> Vec<u8> {
    use std::io::Read;
    let mut child = cmd
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("mosquitto_sub (Debian package mosquitto-clients)");
    let mut stdout = child.stdout.take().expect("piped stdout");
    let reader = std::thread::spawn(move || {
        let mut out = Vec::new();
        let _ = stdout.read_to_end(&mut out);
        out
    });
    let deadline = Instant::now() + within;
    while child.try_wait().ok().flatten().is_none() {
        if Instant::now() > deadline {
            let _ = child.kill();
            break;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let _ = child.wait();
    reader.join().unwrap_or_default()
}

/// Polls the retained message on `topic` until it is `want`; the time it took.
pub fn wait_retained(port: u16, topic: &str, want: Option<&str>, within: Duration) -> Duration {
    let start = Instant::now();
    loop {
        let got = one(port, topic);
        if got.as_deref() == want {
            return start.elapsed();
        }
        assert!(
            start.elapsed() < within,
            "{topic}: {got:?}, not {want:?} within {within:?}"
        );
    }
}

/// `mosquitto_pub -t topic args…`.
pub fn publish(port: u16, topic: &str, args: &[&str]) {
    let ok = Command::new("mosquitto_pub")
        .args(["-h", "127.0.0.1", "-p", &port.to_string(), "-t", topic])
        .args(args)
        .status()
        .expect("mosquitto_pub (Debian package mosquitto-clients)")
        .success();
    assert!(ok, "mosquitto_pub {topic}");
}

/// `lines` messages of `payload` on `topic` (QoS 1, not retained), as fast as one
/// `mosquitto_pub -l` sends them.
pub fn burst(port: u16, topic: &str, payload: &str, lines: usize) {
    let mut child = Command::new("mosquitto_pub")
        .args(["-h", "127.0.0.1", "-p", &port.to_string(), "-t", topic])
        .args(["-q", "1", "-l"])
        .stdin(Stdio::piped())
        .spawn()
        .expect("mosquitto_pub (Debian package mosquitto-clients)");
    let mut stdin = child.stdin.take().unwrap();
    for _ in 0..lines {
        writeln!(stdin, "{payload}").unwrap();
    }
    drop(stdin);
    assert!(child.wait().unwrap().success(), "mosquitto_pub -l {topic}");
}

/// A snapshot of `host` (`seq` ≥ 1, dated now) whose CPU usage moves with `seq`, with
/// `mounts` filesystems.
pub fn snapshot(host: &str, seq: u64, mounts: usize) -> String {
    let ts_ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64;
    let filesystems: serde_json::Map<String, serde_json::Value> = (0..mounts)
        .map(|m| {
            let used = 1000 + seq % 1000;
            let fs = serde_json::json!({"device": format!("sd{m}"), "fstype": "ext4",
                "size_bytes": 10_000, "used_bytes": used, "avail_bytes": 10_000 - used,
                "files": 100, "files_free": 50});
            (format!("/mnt/d{m}"), fs)
        })
        .collect();
    serde_json::json!({
        "v": 1, "host": host, "seq": seq, "ts": ts_ms / 1000, "ts_ms": ts_ms,
        "interval_s": 1.0, "uptime_s": 1000.0 + seq as f64,
        "cpu": {"usage_percent": (seq % 100) as f64, "load_1m": 0.5},
        "filesystems": filesystems,
    })
    .to_string()
}

/// Fake publishers: one `mosquitto_pub -l` per host on `<prefix>/<host>/snapshot`, each fed a
/// new [`snapshot`] every `every`. Stopped (and their processes reaped) when dropped.
pub struct Feeder {
    children: Vec<Child>,
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Feeder {
    pub fn start(port: u16, hosts: &[String], mounts: usize, every: Duration) -> Feeder {
        let mut children = Vec::new();
        let mut inputs: Vec<(String, ChildStdin)> = Vec::new();
        for host in hosts {
            let mut child = Command::new("mosquitto_pub")
                .args(["-h", "127.0.0.1", "-p", &port.to_string(), "-q", "1", "-l"])
                .args(["-t", &format!("server-analytics/{host}/snapshot")])
                .stdin(Stdio::piped())
                .spawn()
                .expect("mosquitto_pub (Debian package mosquitto-clients)");
            inputs.push((host.clone(), child.stdin.take().unwrap()));
            children.push(child);
        }
        let stop = Arc::new(AtomicBool::new(false));
        let stopped = Arc::clone(&stop);
        let thread = std::thread::spawn(move || {
            let mut seq = 1;
            while !stopped.load(Ordering::Relaxed) {
                for (host, stdin) in &mut inputs {
                    let _ = writeln!(stdin, "{}", snapshot(host, seq, mounts));
                    let _ = stdin.flush();
                }
                seq += 1;
                std::thread::sleep(every);
            }
        });
        Feeder {
            children,
            stop,
            thread: Some(thread),
        }
    }
}

impl Drop for Feeder {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
        for child in &mut self.children {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}
