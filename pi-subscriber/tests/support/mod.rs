//! Helpers for pi-subscriber's tests: the built binary as a child process, and an
//! `AppState` for oneshot handler tests.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use pi_subscriber::http::AppState;
use pi_subscriber::mqtt::SharedMqtt;

use crate::common::Client;

pub mod cdp;
pub mod chromium;
pub mod cut;
pub mod ha_state;
pub mod homeassistant;
pub mod mqtt_tools;
pub mod netns;
pub mod prometheus;
pub mod receivers;

/// A running pi-subscriber; killed when dropped.
pub struct Subscriber {
    pub child: Child,
    pub client: Client,
}

impl std::ops::Deref for Subscriber {
    type Target = Client;
    fn deref(&self) -> &Client {
        &self.client
    }
}

impl Drop for Subscriber {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Subscriber {
    /// Starts `pi-subscriber` on a free port: `mqtt_port` is the broker to subscribe to
    /// (`None`: MQTT off), `endpoint` the publisher's `/latest` (empty: none given); `args`
    /// and `env` are added.
    pub fn start(
        data_dir: &Path,
        mqtt_port: Option<u16>,
        endpoint: &str,
        args: &[&str],
        env: &[(&str, &str)],
    ) -> Subscriber {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_pi-subscriber"));
        for (key, _) in std::env::vars() {
            if key.starts_with("PI_SUBSCRIBER_") {
                cmd.env_remove(key);
            }
        }
        // Tests about published hosts do not also see the test machine as a host (`[self]`);
        // the ones about it turn it on.
        // They also commit every second, as the Pi did before `history.commit_interval`
        // (5 min by default): what they check on disk or in `/health` shows within seconds.
        // `power_cut.rs` runs the default.
        cmd.env("RUST_LOG", "info")
            .env("PI_SUBSCRIBER_SELF__ENABLED", "false")
            .env("PI_SUBSCRIBER_HISTORY__COMMIT_INTERVAL", "1s")
            .envs(env.iter().copied())
            .args(["--bind", "127.0.0.1:0"])
            .args(args)
            .arg("--data-dir")
            .arg(data_dir)
            .stdout(Stdio::null())
            .stderr(Stdio::piped());
        // An empty endpoint leaves `poll.endpoints` to the environment.
        if !endpoint.is_empty() {
            cmd.args(["--metrics-endpoint", endpoint]);
        }
        match mqtt_port {
            Some(port) => cmd.args(["--mqtt-port", &port.to_string()]),
            None => cmd.arg("--no-mqtt"),
        };
        let mut child = cmd.spawn().expect("spawn pi-subscriber");
        let client = Client::attach(&mut child);
        Subscriber { child, client }
    }

    /// SIGKILL, as a power cut would end it (nothing flushed, nothing committed).
    #[allow(dead_code)]
    pub fn kill(mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// SIGTERM, and a clean exit.
    pub fn stop(mut self) {
        crate::common::send_signal(&self.child, "TERM");
        let status = self.child.wait().unwrap();
        assert!(status.success(), "{status:?}");
    }
}

/// The history database file in the data directory `data`.
pub fn history_db(data: &Path) -> std::path::PathBuf {
    std::fs::read_dir(data)
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| p.extension().is_some_and(|e| e == "sqlite"))
        .expect("a history database")
}

/// The seqs the history database file in `data` holds (committed rows only), as a Pi
/// starting on it would find them.
pub fn seqs_on_disk(data: &Path) -> std::collections::BTreeSet<u64> {
    let conn = rusqlite::Connection::open(history_db(data)).unwrap();
    let mut stmt = conn
        .prepare("SELECT seq FROM raw_rows ORDER BY seq")
        .unwrap();
    let rows = stmt.query_map([], |r| r.get::<_, i64>(0)).unwrap();
    let mut seqs: std::collections::BTreeSet<u64> = rows.map(|r| r.unwrap() as u64).collect();
    seqs.extend(raw_records_on_disk(data).iter().map(|r| r.seq));
    seqs
}

/// The raw rows the history's day files in `data` hold at the lengths its last commit stored,
/// read from a copy (opening them cuts what no commit stored, which a running Pi's files may
/// still hold).
pub fn raw_records_on_disk(data: &Path) -> Vec<pi_subscriber::tsdb::raw_log::RawRecord> {
    let db = history_db(data);
    let conn = rusqlite::Connection::open(&db).unwrap();
    let mut stmt = conn
        .prepare("SELECT key, value FROM meta WHERE key GLOB 'raw_log:*'")
        .unwrap();
    let lens: std::collections::BTreeMap<i64, u64> = stmt
        .query_map([], |r| Ok((r.get::<_, String>(0)?, r.get::<_, i64>(1)?)))
        .unwrap()
        .map(|r| r.unwrap())
        .map(|(k, v)| (k["raw_log:".len()..].parse().unwrap(), v as u64))
        .collect();
    let mut files = db.as_os_str().to_owned();
    files.push(".raw");
    let copy = tempfile::tempdir().unwrap();
    if let Ok(entries) = std::fs::read_dir(&files) {
        for e in entries {
            let e = e.unwrap();
            std::fs::copy(e.path(), copy.path().join(e.file_name())).unwrap();
        }
    }
    let (log, _) = pi_subscriber::tsdb::raw_log::RawLog::open(copy.path(), &lens).unwrap();
    log.walk(i64::MIN, i64::MAX, None, false).collect()
}

/// An `AppState` over an empty store, for oneshot tests.
pub fn app_state(capacity: usize) -> AppState {
    let _ = capacity;
    let store = pi_subscriber::store::SharedStore::in_memory(10).unwrap();
    AppState {
        prometheus: pi_subscriber::prometheus::registry(store.clone(), None),
        store,
        mqtt: SharedMqtt::default(),
        default_host: "".into(),
        max_age: Duration::from_secs(45),
        request_timeout: Duration::from_secs(5),
        admin_token: None,
        alerts: None,
        homeassistant: None,
        jobs: Default::default(),
        remote_write: Default::default(),
    }
}
