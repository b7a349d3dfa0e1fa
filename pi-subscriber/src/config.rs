//! Settings: built-in defaults → TOML file → `PI_SUBSCRIBER_*` environment → flags (the
//! seed's `--port --bind --metrics-endpoint --poll-interval --timeout --max-age` among them).

use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};
use std::time::Duration;

use daemon_kit::settings::invalid;
use serde::{Deserialize, Serialize};

pub use daemon_kit::settings::SettingsError;

/// Live samples a host may store per second at most (`history.max_samples_per_s`).
pub const DEFAULT_MAX_SAMPLES_PER_S: u32 = 10;

pub mod alerts;
pub mod bytes;
pub mod homeassistant;
pub mod jobs;
pub mod self_watch;
/// `[[remote_write]]` (the `remote-write` crate's, shared with the publisher).
pub use remote_write::settings as remote_write;

pub use homeassistant::HomeAssistantSettings;

/// `PI_SUBSCRIBER_<SECTION>__<KEY>`, e.g. `PI_SUBSCRIBER_MQTT__HOST=10.8.0.1`.
pub const ENV_PREFIX: &str = "PI_SUBSCRIBER";

/// `history.max_disk` at least: the schema and a few hosts' open rows.
const MIN_MAX_DISK: u64 = 16 << 20;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Settings {
    /// Host shown by `/metrics` without `?host=`; empty means the one heard from last.
    pub default_host: String,
    /// Where the history is persisted; empty means `$STATE_DIRECTORY`, else
    /// `$XDG_STATE_HOME/server-analytics-pi`, else `~/.local/state/server-analytics-pi`.
    pub data_dir: PathBuf,
    pub http: HttpSettings,
    pub mqtt: MqttSettings,
    pub poll: PollSettings,
    pub history: HistorySettings,
    pub health: HealthSettings,
    /// Rules, thresholds and notifiers (`crate::alerts`).
    pub alerts: alerts::AlertSettings,
    /// MQTT discovery for Home Assistant (`crate::homeassistant`).
    pub homeassistant: HomeAssistantSettings,
    /// The runs the Pi expects (`crate::jobs`).
    pub jobs: jobs::JobsSettings,
    /// The Pi watching its own machine (`crate::self_watch`).
    #[serde(rename = "self")]
    pub self_watch: self_watch::SelfSettings,
    /// Receivers fed with every sample (`crate::remote_write`).
    pub remote_write: Vec<remote_write::RemoteWriteSettings>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct HttpSettings {
    /// Loopback by default; `0.0.0.0:9100` to serve the LAN.
    pub bind: SocketAddr,
    #[serde(with = "daemon_kit::duration")]
    pub request_timeout: Duration,
    /// Bearer token for the mutating endpoints (`DELETE /hosts/{host}`) from other machines;
    /// without it they answer only to loopback clients.
    pub admin_token: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct MqttSettings {
    /// Consume over MQTT (the HTTP poller still covers outages and backfill).
    pub enabled: bool,
    pub host: String,
    pub port: u16,
    pub username: Option<String>,
    pub password: Option<String>,
    pub topic_prefix: String,
    /// Empty means `pi-subscriber-<host name>-<12 hex digits>`, the digits hashed from
    /// `/etc/machine-id` (or random, kept in `<data_dir>/mqtt-client-id`): unique per Pi and
    /// stable across restarts (two clients with one id would keep kicking each other off).
    pub client_id: String,
    /// Connect with TLS (an external broker, usually on port 8883).
    pub tls: bool,
    /// With TLS: a PEM file of CA certificates to trust instead of the system's.
    pub ca_file: Option<PathBuf>,
    #[serde(with = "daemon_kit::duration")]
    pub keep_alive: Duration,
    /// Largest payload accepted; bigger ones are rejected and counted.
    pub max_payload_size: usize,
    /// Largest MQTT packet read (the consumer's and Home Assistant's clients): anything up
    /// to it is read, and ignored and counted when too large to use; a bigger one makes
    /// rumqttc drop the connection. At most [`MAX_PACKET_SIZE`], at least `max_payload_size`.
    pub max_packet_size: usize,
}

/// Largest `mqtt.max_packet_size`: MQTT's own limit (a remaining length of 256 MiB − 1).
pub const MAX_PACKET_SIZE: usize = 268_435_455;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct PollSettings {
    /// Publishers' `/latest` URLs (the seed's `--metrics-endpoint`); their `/history` and
    /// `/events` are next to it.
    pub endpoints: Vec<String>,
    /// Time between polls while polling (the seed's `--poll-interval`).
    #[serde(with = "daemon_kit::duration")]
    pub interval: Duration,
    /// Per-request timeout (the seed's `--timeout`).
    #[serde(with = "daemon_kit::duration")]
    pub timeout: Duration,
    /// Poll when MQTT has delivered no snapshot for this long (or MQTT is disabled).
    #[serde(with = "daemon_kit::duration")]
    pub fallback_after: Duration,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct HistorySettings {
    /// Snapshots one backfill fetches at most (the publisher's ring holds 5760 by default).
    pub capacity: usize,
    /// How long each tier keeps its data: every sample, 1-minute buckets, 1-hour buckets.
    #[serde(with = "daemon_kit::duration")]
    pub raw: Duration,
    #[serde(with = "daemon_kit::duration")]
    pub minute: Duration,
    #[serde(with = "daemon_kit::duration")]
    pub hour: Duration,
    /// Series (metric and label set) per host at most; new ones beyond are dropped, counted.
    pub max_series_per_host: usize,
    /// Series over all hosts at most: each keeps up to ~4 KB of open bucket rows in memory
    /// (`tsdb/open_row.rs`), so this bounds the Pi's RSS whatever hosts and names a flood
    /// invents.
    pub max_series: usize,
    /// Hosts tracked at most; snapshots from more are refused and counted.
    pub max_hosts: usize,
    /// Persist the history so it survives a restart.
    pub persist: bool,
    /// A host silent this long is forgotten: it leaves `/health`, `/hosts`, `/prometheus`
    /// and the host count, and its history file is removed.
    #[serde(with = "daemon_kit::duration")]
    pub forget_after: Duration,
    /// Live samples one host may store per second at most, whatever interval it declares
    /// (it gets a burst of 10, then 2 per declared `interval_s`); the rest are dropped and
    /// counted (`ingest.rate_limited_total`).
    pub max_samples_per_s: u32,
    /// Bytes the history database may use; beyond it the oldest raw rows are deleted first
    /// (`"2GiB"`, `"500MB"` or a number of bytes).
    #[serde(with = "bytes")]
    pub max_disk: u64,
    /// How often the history is committed to disk (bucket rows are closed and the disk bound
    /// kept at the same time). A power cut loses what came since the last commit: a server's
    /// samples come back from its ring by the backfill, the Pi's own `[self]` samples do not.
    /// Longer spares the SD card: see "Power cuts" in the README.
    #[serde(with = "daemon_kit::duration")]
    pub commit_interval: Duration,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct HealthSettings {
    /// A host is stale when nothing new arrived for this long, on the Pi's clock (the seed's
    /// `--max-age`). Unset (the default): 3 × the interval each host's snapshots declare.
    #[serde(default, with = "daemon_kit::duration::option")]
    pub max_age: Option<Duration>,
    /// A snapshot whose server clock is further than this from the Pi's is kept but flagged.
    #[serde(with = "daemon_kit::duration")]
    pub max_clock_skew: Duration,
}

impl Default for Settings {
    fn default() -> Self {
        Self {
            default_host: String::new(),
            data_dir: PathBuf::new(),
            http: HttpSettings::default(),
            mqtt: MqttSettings::default(),
            poll: PollSettings::default(),
            history: HistorySettings::default(),
            health: HealthSettings::default(),
            alerts: alerts::AlertSettings::default(),
            homeassistant: HomeAssistantSettings::default(),
            jobs: jobs::JobsSettings::default(),
            self_watch: self_watch::SelfSettings::default(),
            remote_write: Vec::new(),
        }
    }
}

impl Default for HttpSettings {
    fn default() -> Self {
        Self {
            bind: SocketAddr::from(([127, 0, 0, 1], 9100)),
            request_timeout: Duration::from_secs(10),
            admin_token: None,
        }
    }
}

impl Default for MqttSettings {
    fn default() -> Self {
        Self {
            enabled: true,
            host: "127.0.0.1".into(),
            port: 1883,
            username: None,
            password: None,
            topic_prefix: broker::DEFAULT_PREFIX.into(),
            client_id: String::new(),
            tls: false,
            ca_file: None,
            keep_alive: Duration::from_secs(30),
            max_payload_size: 256 * 1024,
            max_packet_size: 16 * 1024 * 1024,
        }
    }
}

impl Default for PollSettings {
    fn default() -> Self {
        Self {
            endpoints: vec!["http://127.0.0.1:9000/latest".into()],
            interval: Duration::from_secs(15),
            timeout: Duration::from_secs(5),
            fallback_after: Duration::from_secs(45),
        }
    }
}

impl Default for HistorySettings {
    fn default() -> Self {
        Self {
            capacity: 5760,
            raw: Duration::from_secs(48 * 3600),
            minute: Duration::from_secs(14 * 86_400),
            hour: Duration::from_secs(730 * 86_400),
            max_series_per_host: 500,
            max_series: 2000,
            max_hosts: 64,
            persist: true,
            forget_after: Duration::from_secs(7 * 86_400),
            max_samples_per_s: DEFAULT_MAX_SAMPLES_PER_S,
            max_disk: 2 << 30,
            commit_interval: Duration::from_secs(300),
        }
    }
}

impl Default for HealthSettings {
    fn default() -> Self {
        Self {
            max_age: None,
            max_clock_skew: Duration::from_secs(120),
        }
    }
}

/// Command-line values; each one set beats every other layer.
#[derive(Debug, Default, Clone)]
pub struct Overrides {
    /// `--bind`: an address, or an address with a port.
    pub bind: Option<String>,
    pub port: Option<u16>,
    pub metrics_endpoint: Option<String>,
    pub poll_interval: Option<String>,
    pub timeout: Option<String>,
    pub max_age: Option<String>,
    pub data_dir: Option<PathBuf>,
    pub mqtt_host: Option<String>,
    pub mqtt_port: Option<u16>,
    pub no_mqtt: bool,
}

impl Settings {
    pub fn load(file: Option<&Path>, o: &Overrides) -> Result<Settings, SettingsError> {
        let mut builder = daemon_kit::settings::layered_config(
            &Settings::default(),
            file,
            ENV_PREFIX,
            &["poll.endpoints"],
        )?;
        builder = builder
            .set_override_option("poll.interval", o.poll_interval.clone())?
            .set_override_option("poll.timeout", o.timeout.clone())?
            .set_override_option("health.max_age", o.max_age.clone())?
            .set_override_option(
                "data_dir",
                o.data_dir
                    .as_ref()
                    .map(|p| p.to_string_lossy().into_owned()),
            )?
            .set_override_option("mqtt.host", o.mqtt_host.clone())?
            .set_override_option("mqtt.port", o.mqtt_port.map(i64::from))?;
        if let Some(endpoint) = &o.metrics_endpoint {
            builder = builder.set_override("poll.endpoints", vec![endpoint.clone()])?;
        }
        if o.no_mqtt {
            builder = builder.set_override("mqtt.enabled", false)?;
        }
        let mut settings: Settings = builder.build()?.try_deserialize()?;
        settings.apply_bind(o)?;
        settings.resolve()?;
        Ok(settings)
    }

    /// The seed's `--bind ADDR --port N`, or `--bind ADDR:PORT`.
    fn apply_bind(&mut self, o: &Overrides) -> Result<(), SettingsError> {
        if let Some(bind) = &o.bind {
            if let Ok(addr) = bind.parse::<SocketAddr>() {
                self.http.bind = addr;
            } else {
                let ip: IpAddr = bind.parse().map_err(|_| {
                    invalid("http.bind", format!("--bind {bind:?} is not an address"))
                })?;
                self.http.bind.set_ip(ip);
            }
        }
        if let Some(port) = o.port {
            self.http.bind.set_port(port);
        }
        Ok(())
    }

    fn resolve(&mut self) -> Result<(), SettingsError> {
        if self.data_dir.as_os_str().is_empty() {
            self.data_dir = daemon_kit::daemon::default_state_dir("server-analytics-pi");
        }
        let connects = self.mqtt.enabled || self.homeassistant.enabled;
        if connects && self.mqtt.client_id.is_empty() {
            let name = std::fs::read_to_string("/proc/sys/kernel/hostname").unwrap_or_default();
            self.mqtt.client_id = crate::client_id::derive(
                &name,
                Path::new(crate::client_id::MACHINE_ID),
                &self.data_dir,
            )
            .map_err(|e| invalid("mqtt.client_id", e))?;
        }
        if self.mqtt.client_id.len() > 128 || self.mqtt.client_id.chars().any(char::is_control) {
            return Err(invalid(
                "mqtt.client_id",
                "at most 128 bytes, without control characters",
            ));
        }
        if self.mqtt.ca_file.is_some() && !self.mqtt.tls {
            return Err(invalid("mqtt.ca_file", "is only used with mqtt.tls = true"));
        }
        if self.mqtt.enabled && self.mqtt.tls {
            // A missing or unreadable CA file stops the start, naming the file.
            daemon_kit::tls::client_config(self.mqtt.ca_file.as_deref(), "mqtt.ca_file")
                .map_err(|e| invalid("mqtt.ca_file", e))?;
        }
        if self.mqtt.enabled && self.mqtt.host.is_empty() {
            return Err(invalid("mqtt.host", "must be set when mqtt.enabled"));
        }
        if self.mqtt.username.is_some() != self.mqtt.password.is_some() {
            return Err(invalid(
                "mqtt.password",
                "username and password go together",
            ));
        }
        if self.mqtt.max_packet_size < self.mqtt.max_payload_size
            || self.mqtt.max_packet_size > MAX_PACKET_SIZE
        {
            return Err(invalid(
                "mqtt.max_packet_size",
                format!("must be from mqtt.max_payload_size to {MAX_PACKET_SIZE} bytes"),
            ));
        }
        if self.mqtt.keep_alive < Duration::from_secs(1) {
            return Err(invalid("mqtt.keep_alive", "must be at least 1s"));
        }
        let p = &self.mqtt.topic_prefix;
        if p.is_empty() || p.contains(['+', '#']) || p.starts_with('/') || p.ends_with('/') {
            return Err(invalid(
                "mqtt.topic_prefix",
                format!("{p:?} is not a topic prefix"),
            ));
        }
        for endpoint in &self.poll.endpoints {
            match reqwest::Url::parse(endpoint) {
                Ok(url) if url.scheme() == "http" || url.scheme() == "https" => {}
                _ => {
                    return Err(invalid(
                        "poll.endpoints",
                        format!("{endpoint:?} is not an http:// URL"),
                    ))
                }
            }
        }
        if self.poll.interval < Duration::from_millis(10) {
            return Err(invalid("poll.interval", "must be at least 10ms"));
        }
        if self.poll.timeout.is_zero() {
            return Err(invalid("poll.timeout", "must be more than 0"));
        }
        if self.history.capacity < 2 {
            return Err(invalid("history.capacity", "must be at least 2"));
        }
        if self.history.max_hosts == 0 {
            return Err(invalid("history.max_hosts", "must be at least 1"));
        }
        // The open bucket rows of a day are rebuilt from raw samples after a restart.
        if self.history.raw < Duration::from_secs(26 * 3600) {
            return Err(invalid("history.raw", "must be at least 26h"));
        }
        // The raw tier is a table a day, read through one `UNION ALL` view: SQLite allows 500
        // terms in one (`SQLITE_MAX_COMPOUND_SELECT`).
        if self.history.raw > Duration::from_secs(366 * 86_400) {
            return Err(invalid("history.raw", "must be at most 366d"));
        }
        if self.history.minute < self.history.raw {
            return Err(invalid("history.minute", "must be at least history.raw"));
        }
        if self.history.hour < self.history.minute {
            return Err(invalid("history.hour", "must be at least history.minute"));
        }
        if self.history.max_series_per_host == 0 {
            return Err(invalid("history.max_series_per_host", "must be at least 1"));
        }
        if !(1..=100_000).contains(&self.history.max_series) {
            return Err(invalid(
                "history.max_series",
                "must be between 1 and 100000",
            ));
        }
        if self.history.forget_after < Duration::from_secs(1) {
            return Err(invalid("history.forget_after", "must be at least 1s"));
        }
        if !(1..=1000).contains(&self.history.max_samples_per_s) {
            return Err(invalid(
                "history.max_samples_per_s",
                "must be between 1 and 1000",
            ));
        }
        if !(Duration::from_secs(1)..=Duration::from_secs(3600))
            .contains(&self.history.commit_interval)
        {
            return Err(invalid(
                "history.commit_interval",
                "must be between 1s and 1h",
            ));
        }
        if self.history.max_disk < MIN_MAX_DISK {
            return Err(invalid("history.max_disk", "must be at least 16MiB"));
        }
        if let Some(token) = &self.http.admin_token {
            if token.len() < 16 || token.chars().any(|c| c.is_whitespace() || c.is_control()) {
                return Err(invalid(
                    "http.admin_token",
                    "must be at least 16 characters, without spaces or control characters",
                ));
            }
        }
        if self.health.max_age.is_some_and(|d| d.is_zero()) {
            return Err(invalid("health.max_age", "must be more than 0"));
        }
        if !self.default_host.is_empty() {
            broker::validate_host_id(&self.default_host).map_err(|e| invalid("default_host", e))?;
        }
        self.alerts
            .validate()
            .map_err(|(key, reason)| invalid(key, reason))?;
        self.homeassistant
            .validate(&self.mqtt)
            .map_err(|(key, reason)| invalid(key, reason))?;
        self.self_watch
            .validate()
            .map_err(|(key, reason)| invalid(key, reason))?;
        let known = |m: &str| crate::registry::metric(m).is_some_and(|m| m.prom.is_some());
        remote_write::validate(&self.remote_write, &known)
            .map_err(|(key, reason)| invalid(Box::leak(key.into_boxed_str()), reason))?;
        self.jobs
            .expectations()
            // The key names the expectation's index (`jobs.expect[2].cron`); leaked once, on
            // the error that ends the program.
            .map_err(|(key, reason)| invalid(Box::leak(key.into_boxed_str()), reason))?;
        Ok(())
    }

    /// The effective settings as TOML, password redacted.
    /// The history tiers' retention.
    pub fn retention(&self) -> crate::tsdb::Retention {
        let ms = |d: Duration| i64::try_from(d.as_millis()).unwrap_or(i64::MAX);
        crate::tsdb::Retention {
            raw_ms: ms(self.history.raw),
            minute_ms: ms(self.history.minute),
            hour_ms: ms(self.history.hour),
        }
    }

    pub fn to_toml(&self) -> String {
        let mut printable = self.clone();
        if printable.mqtt.password.is_some() {
            printable.mqtt.password = Some("<redacted>".into());
        }
        if printable.homeassistant.password.is_some() {
            printable.homeassistant.password = Some("<redacted>".into());
        }
        if printable.http.admin_token.is_some() {
            printable.http.admin_token = Some("<redacted>".into());
        }
        printable.remote_write = self.remote_write.iter().map(|r| r.redacted()).collect();
        toml::to_string_pretty(&printable)
            .unwrap_or_else(|e| format!("# cannot print settings: {e}"))
    }
}

impl MqttSettings {
    /// The client options of `[mqtt]` (or of a connection derived from it, as Home Assistant's
    /// and the alert notifier's): address, client id, login, TLS and packet limits.
    pub fn client_options(&self) -> daemon_kit::mqtt::ClientOptions {
        let login = match (&self.username, &self.password) {
            (Some(u), Some(p)) => Some((u.as_str(), p.as_str())),
            _ => None,
        };
        daemon_kit::mqtt::ClientOptions::new(&self.client_id, &self.host, self.port)
            .keep_alive(self.keep_alive)
            // Read packets far over our own payload limit, so an oversize payload is read,
            // refused and counted: over rumqttc's limit it would drop the connection instead (and
            // a retained one would do so on every reconnect, forever). Outgoing: Home Assistant's
            // states and configs, the alert notices (a few KiB).
            .max_packet_size(self.max_packet_size, 256 * 1024)
            .login(login)
            .tls(self.tls, self.ca_file.clone(), "mqtt.ca_file")
    }
}

#[cfg(test)]
mod tests;
