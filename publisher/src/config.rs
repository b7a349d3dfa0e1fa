//! Settings: built-in defaults → TOML file → `PUBLISHER_*` environment → command-line flags,
//! layered with the `config` crate. Unknown keys and bad values stop start-up with a message
//! that names the key.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use daemon_kit::settings::invalid;
use serde::{Deserialize, Serialize};

pub use daemon_kit::settings::SettingsError;

use crate::collectors::{self, ChipFilter, FilesystemCollector, InterfaceFilter, Roots};
use crate::redact::RecordCommand;

mod filesystems;

pub use filesystems::{FilesystemSettings, FilterSettings};

/// Environment variables `PUBLISHER_<SECTION>__<KEY>` override the file, e.g.
/// `PUBLISHER_HTTP__BIND=0.0.0.0:9000` or `PUBLISHER_HOST=tower`.
pub const ENV_PREFIX: &str = "PUBLISHER";

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Settings {
    /// Host id in snapshots and topics (`[A-Za-z0-9_-]+`); empty means the machine's host name.
    pub host: String,
    /// Where the ring and the event log live; empty means `$STATE_DIRECTORY` (systemd),
    /// else `$XDG_STATE_HOME/server-analytics`, else `~/.local/state/server-analytics`.
    pub data_dir: PathBuf,
    pub sampler: SamplerSettings,
    pub ring: RingSettings,
    pub http: HttpSettings,
    pub network: NetworkSettings,
    pub thermal: ThermalSettings,
    pub filesystems: FilesystemSettings,
    pub jobs: JobSettings,
    /// Failed systemd units (`crate::units`).
    pub units: UnitsSettings,
    /// The top processes in each sample.
    pub processes: ProcessSettings,
    /// MQTT: the embedded broker, or the external one to publish to.
    pub broker: broker::BrokerSettings,
    /// Receivers fed with every sample from the ring (`crate::remote_write`).
    pub remote_write: Vec<remote_write::RemoteWriteSettings>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SamplerSettings {
    /// Time between samples: `"15s"`, `"500ms"`, or a number of seconds.
    #[serde(with = "daemon_kit::duration")]
    pub interval: Duration,
    /// Where procfs is mounted (node_exporter's `--path.procfs`); fixture trees in tests.
    pub proc_root: PathBuf,
    /// Where sysfs is mounted (node_exporter's `--path.sysfs`).
    pub sys_root: PathBuf,
}

/// `[processes]`: each sample carries the top processes by CPU and by memory.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ProcessSettings {
    pub enabled: bool,
    /// Processes per list (1–32).
    pub top: usize,
}

impl Default for ProcessSettings {
    fn default() -> Self {
        Self {
            enabled: true,
            top: 5,
        }
    }
}

/// `[units]`: each sample carries the system's failed systemd units.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct UnitsSettings {
    /// Ask systemd over the system bus; `false`: `failed_units` is always `null`.
    pub enabled: bool,
}

impl Default for UnitsSettings {
    fn default() -> Self {
        Self { enabled: true }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RingSettings {
    /// Snapshots kept at least: 5760 is 24 h at 15 s (the original kept 100).
    pub capacity: usize,
    /// `fdatasync` every snapshot. Turning it off saves a disk flush per sample on an SD card
    /// at the cost of the last samples before a power cut.
    pub fsync: bool,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct HttpSettings {
    /// Loopback by default (mosquitto 2.0's rule); set the VPN address to serve the Pi.
    pub bind: SocketAddr,
    /// Requests taking longer than this get a 408.
    #[serde(with = "daemon_kit::duration")]
    pub request_timeout: Duration,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct NetworkSettings {
    /// Only interfaces matching one of these globs are counted; empty means all.
    pub include: Vec<String>,
    /// Interfaces matching one of these globs are never counted. Setting this replaces the
    /// default list.
    pub exclude: Vec<String>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ThermalSettings {
    /// hwmon chips never read, by chip name (`drivetemp`), as shell globs: like
    /// node_exporter's `--collector.hwmon.chip-exclude` (a regex there).
    pub exclude_chips: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct JobSettings {
    /// Bytes of a job's combined output kept in its `job_end` event.
    pub output_tail_bytes: usize,
    /// Events kept in the log (it is compacted past twice this).
    pub keep_events: usize,
    /// What `job_start` records of the command line: `redacted` (secrets masked, the
    /// default), `full` or `name-only`. Events are served on :9000, MQTT and the Pi.
    pub record_command: RecordCommand,
    /// Whether `job_end` carries the tail of the job's output (which the redaction does not
    /// look at).
    pub record_output: bool,
}

impl Default for Settings {
    fn default() -> Self {
        Self {
            host: String::new(),
            data_dir: PathBuf::new(),
            sampler: SamplerSettings::default(),
            ring: RingSettings::default(),
            http: HttpSettings::default(),
            network: NetworkSettings::default(),
            thermal: ThermalSettings::default(),
            filesystems: FilesystemSettings::default(),
            jobs: JobSettings::default(),
            units: UnitsSettings::default(),
            processes: ProcessSettings::default(),
            broker: broker::BrokerSettings::default(),
            remote_write: Vec::new(),
        }
    }
}

impl Default for SamplerSettings {
    fn default() -> Self {
        let roots = Roots::default();
        Self {
            interval: Duration::from_secs(15),
            proc_root: roots.proc,
            sys_root: roots.sys,
        }
    }
}

impl Default for RingSettings {
    fn default() -> Self {
        Self {
            capacity: 5760,
            fsync: true,
        }
    }
}

impl Default for HttpSettings {
    fn default() -> Self {
        Self {
            bind: SocketAddr::from(([127, 0, 0, 1], 9000)),
            request_timeout: Duration::from_secs(10),
        }
    }
}

impl Default for NetworkSettings {
    fn default() -> Self {
        Self {
            include: Vec::new(),
            exclude: collectors::network::DEFAULT_EXCLUDE
                .iter()
                .map(|s| s.to_string())
                .collect(),
        }
    }
}

impl Default for JobSettings {
    fn default() -> Self {
        Self {
            output_tail_bytes: 4096,
            keep_events: 1000,
            record_command: RecordCommand::default(),
            record_output: true,
        }
    }
}

/// Values given on the command line; each one set overrides every other layer.
#[derive(Debug, Default, Clone)]
pub struct Overrides {
    pub host: Option<String>,
    pub data_dir: Option<PathBuf>,
    pub interval: Option<String>,
    pub http_bind: Option<String>,
    pub proc_root: Option<PathBuf>,
    pub sys_root: Option<PathBuf>,
    pub broker_mode: Option<String>,
    pub broker_listen: Option<String>,
}

impl Settings {
    /// Loads the layers. `file` must exist when given; without it `configs/publisher.toml`
    /// is not read implicitly, so what runs is what the command line says.
    pub fn load(file: Option<&Path>, overrides: &Overrides) -> Result<Settings, SettingsError> {
        let mut list_keys = vec![
            "network.include",
            "network.exclude",
            "thermal.exclude_chips",
        ];
        list_keys.extend(filesystems::LIST_KEYS);
        let mut builder = daemon_kit::settings::layered_config(
            &Settings::default(),
            file,
            ENV_PREFIX,
            &list_keys,
        )?;
        let path = |p: &Option<PathBuf>| p.as_ref().map(|p| p.to_string_lossy().into_owned());
        builder = builder
            .set_override_option("host", overrides.host.clone())?
            .set_override_option("data_dir", path(&overrides.data_dir))?
            .set_override_option("sampler.interval", overrides.interval.clone())?
            .set_override_option("http.bind", overrides.http_bind.clone())?
            .set_override_option("sampler.proc_root", path(&overrides.proc_root))?
            .set_override_option("sampler.sys_root", path(&overrides.sys_root))?
            .set_override_option("broker.mode", overrides.broker_mode.clone())?
            .set_override_option("broker.listen", overrides.broker_listen.clone())?;
        let mut settings: Settings = builder.build()?.try_deserialize()?;
        settings.resolve()?;
        Ok(settings)
    }

    /// Fills the derived defaults (host id, data dir) and checks every value.
    fn resolve(&mut self) -> Result<(), SettingsError> {
        if self.host.is_empty() {
            self.host = collectors::host::read_host_id(&self.roots())
                .unwrap_or_else(|_| "localhost".to_owned());
        }
        broker::validate_host_id(&self.host).map_err(|e| invalid("host", e))?;
        if self.data_dir.as_os_str().is_empty() {
            self.data_dir = daemon_kit::daemon::default_state_dir("server-analytics");
        }
        if self.sampler.interval < Duration::from_millis(10) {
            return Err(invalid("sampler.interval", "must be at least 10ms"));
        }
        if self.ring.capacity == 0 {
            return Err(invalid("ring.capacity", "must be at least 1"));
        }
        if self.jobs.keep_events == 0 {
            return Err(invalid("jobs.keep_events", "must be at least 1"));
        }
        if !(1..=collectors::processes::MAX_TOP).contains(&self.processes.top) {
            return Err(invalid("processes.top", "must be 1..=32"));
        }
        self.broker.validate()?;
        if let Err(e) = InterfaceFilter::new(&self.network.include, &[]) {
            return Err(invalid("network.include", e));
        }
        if let Err(e) = InterfaceFilter::new(&[], &self.network.exclude) {
            return Err(invalid("network.exclude", e));
        }
        if let Err(e) = ChipFilter::new(&self.thermal.exclude_chips) {
            return Err(invalid("thermal.exclude_chips", e));
        }
        self.filesystems.validate()?;
        let known = |m: &str| metric_registry::metric(m).is_some_and(|m| m.prom.is_some());
        remote_write::settings::validate(&self.remote_write, &known)
            // The key names the receiver's index (`remote_write[1].url`); leaked once, on the
            // error that ends the program.
            .map_err(|(key, reason)| invalid(Box::leak(key.into_boxed_str()), reason))?;
        Ok(())
    }

    pub fn roots(&self) -> Roots {
        Roots::new(&self.sampler.proc_root, &self.sampler.sys_root)
    }

    pub fn interface_filter(&self) -> InterfaceFilter {
        InterfaceFilter::new(&self.network.include, &self.network.exclude)
            .unwrap_or_else(|_| collectors::network::default_filter())
    }

    /// The top-processes collector, `None` when `processes.enabled` is off.
    pub fn process_collector(&self) -> Option<collectors::processes::ProcessCollector> {
        self.processes.enabled.then(|| {
            collectors::processes::ProcessCollector::new(self.processes.top, "/etc/passwd")
        })
    }

    /// The filesystem collector, `None` when `filesystems.enabled` is off.
    pub fn filesystem_collector(&self) -> Option<FilesystemCollector> {
        self.filesystems.collector()
    }

    pub fn chip_filter(&self) -> ChipFilter {
        ChipFilter::new(&self.thermal.exclude_chips).unwrap_or_default()
    }

    pub fn ring_dir(&self) -> PathBuf {
        self.data_dir.join("ring")
    }

    /// The effective settings as TOML, for `publisher check-config`; the broker password
    /// is redacted.
    pub fn to_toml(&self) -> String {
        let mut printable = self.clone();
        printable.broker = self.broker.redacted();
        printable.remote_write = self.remote_write.iter().map(|r| r.redacted()).collect();
        toml::to_string_pretty(&printable)
            .unwrap_or_else(|e| format!("# cannot print settings: {e}"))
    }
}

/// Settings from `text` as the config file, with a throwaway data dir and `host` (`None`:
/// read from the machine), for the config tests.
#[cfg(test)]
#[allow(clippy::unwrap_used)]
pub(crate) fn load_for_test(text: &str, host: Option<&str>) -> Result<Settings, SettingsError> {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("p.toml");
    std::fs::write(&path, text).unwrap();
    Settings::load(
        Some(&path),
        &Overrides {
            host: host.map(str::to_owned),
            data_dir: Some(dir.path().to_owned()),
            ..Overrides::default()
        },
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn load_toml(text: &str) -> Result<Settings, SettingsError> {
        load_for_test(text, None)
    }

    #[test]
    fn defaults_match_the_spec() {
        let s = load_toml("").unwrap();
        assert_eq!(s.sampler.interval, Duration::from_secs(15));
        assert_eq!(s.ring.capacity, 5760);
        assert_eq!(s.http.bind.to_string(), "127.0.0.1:9000");
        assert!(s.network.exclude.contains(&"veth*".to_string()));
        assert!(broker::validate_host_id(&s.host).is_ok());
    }

    #[test]
    fn file_values_and_number_durations() {
        let s = load_toml(
            "host = \"tower\"\n[sampler]\ninterval = 5\n[http]\nbind = \"10.8.0.1:9000\"\n[network]\nexclude = [\"lo\"]\n",
        )
        .unwrap();
        assert_eq!(s.host, "tower");
        assert_eq!(s.sampler.interval, Duration::from_secs(5));
        assert_eq!(s.http.bind.to_string(), "10.8.0.1:9000");
        assert_eq!(s.network.exclude, vec!["lo".to_string()]);
        let s = load_toml("[sampler]\ninterval = \"250ms\"\n").unwrap();
        assert_eq!(s.sampler.interval, Duration::from_millis(250));
    }

    #[test]
    fn unknown_keys_and_bad_values_name_the_key() {
        let msg = |t: &str| load_toml(t).unwrap_err().to_string();
        let e = msg("[sampler]\nintervall = \"15s\"\n");
        assert!(e.contains("intervall"), "{e}");
        let e = msg("colour = 1\n");
        assert!(e.contains("colour"), "{e}");
        let e = msg("[http]\nbind = \"not an address\"\n");
        assert!(e.contains("bind"), "{e}");
        let e = msg("[sampler]\ninterval = \"fast\"\n");
        assert!(e.contains("interval"), "{e}");
        let e = msg("host = \"my/host\"\n");
        assert!(e.contains("`host`"), "{e}");
        let e = msg("[ring]\ncapacity = 0\n");
        assert!(e.contains("ring.capacity"), "{e}");
        let e = msg("[network]\ninclude = [\"[\"]\n");
        assert!(e.contains("network.include"), "{e}");
        let e = msg("[jobs]\nrecord_command = \"some\"\n");
        assert!(e.contains("record_command"), "{e}");
        assert_eq!(
            load_toml("[jobs]\nrecord_command = \"name-only\"\nrecord_output = false\n")
                .map(|s| (s.jobs.record_command, s.jobs.record_output))
                .unwrap(),
            (RecordCommand::NameOnly, false)
        );
        let e = msg("[thermal]\nexclude_chips = [\"[\"]\n");
        assert!(e.contains("thermal.exclude_chips"), "{e}");
        let e = msg("[thermal]\nexclude_chip = [\"drivetemp\"]\n");
        assert!(e.contains("exclude_chip"), "{e}");
        let e = msg("[broker]\nlisten = \"0.0.0.0:1883\"\n");
        assert!(e.contains("broker.listen"), "{e}");
        let e = msg("[broker]\nmode = \"carrier-pigeon\"\n");
        assert!(e.contains("broker.mode"), "{e}");
        let e = msg("[broker]\npasword = \"x\"\n");
        assert!(e.contains("pasword"), "{e}");
    }

    #[test]
    fn an_unknown_key_or_a_bad_value_names_the_file_and_the_key() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("publisher.toml");
        let error = |text: &str| {
            std::fs::write(&path, text).unwrap();
            Settings::load(Some(&path), &Overrides::default())
                .unwrap_err()
                .to_string()
        };
        let file = path.display();
        assert_eq!(
            error("[sampler]\nintervall = \"15s\"\n"),
            format!(
                "configuration: unknown key `sampler.intervall` in {file}, \
                 expected one of `interval`, `proc_root`, `sys_root`"
            )
        );
        let e = error("colour = 1\n");
        assert!(
            e.starts_with(&format!(
                "configuration: unknown key `colour` in {file}, expected one of `host`, "
            )),
            "{e}"
        );
        let e = error("[http]\nbind = \"not an address\"\n");
        assert!(e.contains("`http.bind`"), "{e}");
        assert!(e.ends_with(&format!(" in {file}")), "{e}");
    }

    #[test]
    fn command_line_beats_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("p.toml");
        std::fs::write(
            &path,
            "host = \"fromfile\"\n[sampler]\ninterval = \"30s\"\n",
        )
        .unwrap();
        let s = Settings::load(
            Some(&path),
            &Overrides {
                host: Some("fromflag".into()),
                interval: Some("1s".into()),
                data_dir: Some(dir.path().to_owned()),
                ..Overrides::default()
            },
        )
        .unwrap();
        assert_eq!(s.host, "fromflag");
        assert_eq!(s.sampler.interval, Duration::from_secs(1));
        assert!(s.to_toml().contains("host = \"fromflag\""));
    }

    #[test]
    fn the_shipped_example_config_is_valid() {
        let example = Path::new(env!("CARGO_MANIFEST_DIR")).join("../configs/publisher.toml");
        let s = Settings::load(Some(&example), &Overrides::default()).unwrap();
        assert_eq!(s.host, "tower");
        assert_eq!(s.http.bind.to_string(), "10.8.0.1:9000");
        assert_eq!(s.broker.listen.to_string(), "10.8.0.1:1883");
        assert_eq!(s.broker.credentials(), Some(("pi", "change-me")));
        let printed = s.to_toml();
        assert!(printed.contains("password = \"<redacted>\""), "{printed}");
        assert!(!printed.contains("change-me"));
    }

    #[test]
    fn missing_file_is_an_error() {
        let e = Settings::load(
            Some(Path::new("/nonexistent/p.toml")),
            &Overrides::default(),
        );
        assert!(e.is_err());
    }
}
