//! Payload types: one JSON snapshot per sample, and job events.
//!
//! The seed's field names and meanings are kept so panels built on the original keep working;
//! everything else is added beside them. There is deliberately no `deny_unknown_fields` here:
//! an older Pi must accept a newer server's snapshot. `v` says which version a payload is.
//! Every field has a serde default, so a payload that lacks a section still parses and the
//! section reads as "missing" (`null`), never as `0`.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// Version of the snapshot schema written by this crate.
pub const SNAPSHOT_VERSION: u32 = 1;

/// Bytes in one `/proc/diskstats` sector. The kernel always counts 512-byte sectors there,
/// whatever the device's logical block size (Documentation/admin-guide/iostats.rst).
pub const SECTOR_BYTES: u64 = 512;

/// One sample of one host.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
#[serde(default)]
pub struct Snapshot {
    /// Schema version ([`SNAPSHOT_VERSION`]).
    pub v: u32,
    /// Host id (`[A-Za-z0-9_-]+`), also the MQTT topic level.
    pub host: String,
    /// Increases by one per sample and survives publisher restarts; lets the Pi find gaps.
    pub seq: u64,
    /// Sample time, Unix seconds (the seed's field).
    pub ts: i64,
    /// Sample time, Unix milliseconds.
    pub ts_ms: i64,
    /// The sampling interval the publisher runs at, in seconds.
    pub interval_s: f64,
    /// Kernel boot id: a new value means counters restarted from zero.
    pub boot_id: Option<String>,
    /// Seconds since boot.
    pub uptime_s: Option<f64>,
    pub cpu: Option<Cpu>,
    pub memory: Option<Memory>,
    pub thermal: Thermal,
    pub disk: Option<Disk>,
    pub network: Option<Network>,
    /// Mounted filesystems by mount point (added in v1; absent from older publishers). An
    /// entry is `null` while its `statvfs` timed out or failed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub filesystems: Option<BTreeMap<String, Option<Filesystem>>>,
    /// The top processes by CPU and by memory; absent where not collected.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub processes: Option<Processes>,
    /// The system's failed systemd units; `null` where there is no systemd (or its D-Bus API
    /// is out of reach), absent from publishers older than the field.
    #[serde(default)]
    pub failed_units: Option<Vec<FailedUnit>>,
    /// A Raspberry Pi's power and throttling state; absent on other machines (and from
    /// publishers older than the field).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub power: Option<Power>,
}

/// The processes that used the most CPU since the previous sample, and the most memory.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
#[serde(default)]
pub struct Processes {
    /// Processes running.
    pub count: u32,
    /// Named as the spec names them; the aliases read publishers built before the rename.
    #[serde(alias = "by_cpu")]
    pub top_cpu: Vec<ProcessTop>,
    #[serde(alias = "by_memory")]
    pub top_rss: Vec<ProcessTop>,
}

/// One process of a top list.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
#[serde(default)]
pub struct ProcessTop {
    pub pid: u32,
    /// `comm` (at most 15 bytes from the kernel).
    pub name: String,
    /// Its owner's name (the uid when it has none).
    pub user: Option<String>,
    /// Since the previous sample, per core as `top` shows it (`null` on the first sample).
    pub cpu_percent: Option<f64>,
    pub rss_bytes: u64,
}

/// A systemd unit in the `failed` state.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(default)]
pub struct FailedUnit {
    /// `backup.service`.
    pub name: String,
    /// When it entered the state (`StateChangeTimestamp`, Unix ms).
    pub since_ms: Option<i64>,
    /// Why (`Result` of a service, a timer, …: `exit-code`, `signal`, `timeout`, …).
    pub result: Option<String>,
}

/// A Raspberry Pi's power supply and throttling, as its kernel exposes them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(default)]
pub struct Power {
    /// The `rpi_volt` hwmon chip's `in0_lcrit_alarm`: the supply is below its threshold now.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub under_voltage_alarm: Option<bool>,
    /// The firmware's `get_throttled` bits (as `vcgencmd get_throttled`): 0 under-voltage,
    /// 1 ARM frequency capped, 2 throttled, 3 soft temperature limit, now; 16–19 the same
    /// since boot.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub throttled: Option<u32>,
}

impl Power {
    pub const UNDER_VOLTAGE: u32 = 1 << 0;
    pub const FREQ_CAPPED: u32 = 1 << 1;
    pub const THROTTLED: u32 = 1 << 2;
    pub const SOFT_TEMP_LIMIT: u32 = 1 << 3;
    /// A "now" bit's "since boot" twin.
    pub const SINCE_BOOT: u32 = 16;
}

/// CPU usage and load. Each field is `null` when its source could not be read.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
#[serde(default)]
pub struct Cpu {
    /// Busy share of all CPUs since the previous sample, 0..=100.
    pub usage_percent: Option<f64>,
    pub load_1m: Option<f64>,
    pub load_5m: Option<f64>,
    pub load_15m: Option<f64>,
    /// Number of CPUs listed in /proc/stat.
    pub cores: Option<u32>,
    /// Busy share of each CPU since the previous sample; `null` for a CPU that was offline.
    pub per_core_percent: Vec<Option<f64>>,
}

/// Memory in MiB (kB / 1024, rounded down), the seed's units.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
#[serde(default)]
pub struct Memory {
    pub available_mb: u64,
    pub total_mb: u64,
    pub swap_used_mb: u64,
    pub swap_total_mb: u64,
}

/// Temperatures in °C with decimals.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
#[serde(default)]
pub struct Thermal {
    /// The CPU's temperature, `null` on a machine without a CPU sensor.
    pub cpu_temp_c: Option<f64>,
    /// Every temperature found: thermal zones by type, hwmon sensors as `chip/label`.
    pub sensors: BTreeMap<String, f64>,
}

/// Cumulative sector counters of whole devices (partitions, loop, ram, zram, dm-, md excluded).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
#[serde(default)]
pub struct Disk {
    /// Sum over `devices`, 512-byte sectors.
    pub read_sectors: u64,
    pub write_sectors: u64,
    pub devices: BTreeMap<String, DiskDevice>,
}

/// One whole device's counters (`/proc/diskstats`, Documentation/admin-guide/iostats.rst).
/// The I/O counters are absent (not 0) in a snapshot from a publisher that predates them, so
/// the Pi says nothing about a disk's busy time rather than something false.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(default)]
pub struct DiskDevice {
    pub read_sectors: u64,
    pub write_sectors: u64,
    /// Reads plus writes completed (diskstats fields 4 + 8).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ios: Option<u64>,
    /// Milliseconds spent on those reads and writes, queueing included (fields 7 + 11).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub io_wait_ms: Option<u64>,
    /// Milliseconds the device had I/O in flight (field 13; `iostat`'s `%util` numerator).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub io_time_ms: Option<u64>,
}

/// Cumulative byte counters of the counted interfaces.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
#[serde(default)]
pub struct Network {
    /// Sum over `interfaces`.
    pub rx_bytes: u64,
    pub tx_bytes: u64,
    pub interfaces: BTreeMap<String, NetworkInterface>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(default)]
pub struct NetworkInterface {
    pub rx_bytes: u64,
    pub tx_bytes: u64,
}

/// One mounted filesystem, with the figures `df` shows: `used` counts the blocks the root
/// reserve holds back, `avail` is what an unprivileged user may still write, so
/// `used + avail` can be less than `size` and used % is `used / (used + avail)`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(default)]
pub struct Filesystem {
    /// The mount source, without a leading `/dev/` (`nvme0n1p2`, `tmpfs`, `nas:/export`).
    pub device: String,
    pub fstype: String,
    /// `f_blocks × f_frsize`.
    pub size_bytes: u64,
    /// `(f_blocks − f_bfree) × f_frsize`.
    pub used_bytes: u64,
    /// `f_bavail × f_frsize`.
    pub avail_bytes: u64,
    /// Inodes: `f_files` and `f_ffree`.
    pub files: u64,
    pub files_free: u64,
}

/// A batch job event, recorded by `publisher job` and served/published by the daemon.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum JobEvent {
    JobStart(JobStart),
    JobEnd(JobEnd),
}

impl JobEnd {
    /// A non-zero exit code, a signal, or a command that could not start.
    pub fn failed(&self) -> bool {
        self.exit_code != Some(0) || self.signal.is_some() || self.error.is_some()
    }
}

impl JobEvent {
    /// Unique id of the run both events belong to.
    pub fn run_id(&self) -> &str {
        match self {
            JobEvent::JobStart(e) => &e.run_id,
            JobEvent::JobEnd(e) => &e.run_id,
        }
    }

    pub fn name(&self) -> &str {
        match self {
            JobEvent::JobStart(e) => &e.name,
            JobEvent::JobEnd(e) => &e.name,
        }
    }

    pub fn host(&self) -> &str {
        match self {
            JobEvent::JobStart(e) => &e.host,
            JobEvent::JobEnd(e) => &e.host,
        }
    }

    /// When the event happened (start time for `job_start`, end time for `job_end`), Unix ms.
    pub fn ts_ms(&self) -> i64 {
        match self {
            JobEvent::JobStart(e) => e.start_ts_ms,
            JobEvent::JobEnd(e) => e.end_ts_ms,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
#[serde(default)]
pub struct JobStart {
    pub v: u32,
    pub run_id: String,
    pub name: String,
    pub host: String,
    pub start_ts_ms: i64,
    /// The command and its arguments exactly as run.
    pub command: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
#[serde(default)]
pub struct JobEnd {
    pub v: u32,
    pub run_id: String,
    pub name: String,
    pub host: String,
    pub start_ts_ms: i64,
    pub end_ts_ms: i64,
    pub duration_s: f64,
    /// The exit code, `null` when the command was killed by a signal or could not start.
    pub exit_code: Option<i32>,
    /// The signal that killed the command, if one did.
    pub signal: Option<i32>,
    /// Why the command could not be started, if it could not.
    pub error: Option<String>,
    /// The last few KiB of the command's combined stdout and stderr (lossy UTF-8).
    pub output_tail: String,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seed_shaped_payload_parses_and_missing_sections_are_none() {
        let seed = r#"{"host":"tower","ts":1705180800,
            "cpu":{"usage_percent":45.23,"load_1m":1.25,"load_5m":1.1,"load_15m":0.9,"cores":8},
            "memory":{"available_mb":8192,"total_mb":16384,"swap_used_mb":0},
            "disk":{"read_sectors":123,"write_sectors":456},
            "network":{"rx_bytes":789,"tx_bytes":1011},
            "some_future_field":{"x":1}}"#;
        let s: Snapshot = serde_json::from_str(seed).unwrap();
        assert_eq!(s.host, "tower");
        assert_eq!(s.cpu.as_ref().unwrap().usage_percent, Some(45.23));
        assert_eq!(s.cpu.as_ref().unwrap().cores, Some(8));
        assert_eq!(s.memory.as_ref().unwrap().total_mb, 16384);
        assert_eq!(s.disk.as_ref().unwrap().write_sectors, 456);
        assert_eq!(s.network.as_ref().unwrap().tx_bytes, 1011);
        assert_eq!(s.thermal.cpu_temp_c, None);
        assert_eq!(s.boot_id, None);
    }

    #[test]
    fn missing_values_serialize_as_null_not_zero() {
        let s = Snapshot {
            v: SNAPSHOT_VERSION,
            host: "ci".into(),
            ..Snapshot::default()
        };
        let json: serde_json::Value = serde_json::to_value(&s).unwrap();
        assert!(json["thermal"]["cpu_temp_c"].is_null());
        assert!(json["cpu"].is_null());
        assert!(json["disk"].is_null());
        assert_eq!(json["v"], 1);
        assert!(json.get("filesystems").is_none(), "absent, not null");
    }

    #[test]
    fn filesystems_round_trip_and_a_timed_out_mount_is_null() {
        let text = r#"{"host":"tower","seq":1,"ts":1,"filesystems":{"/":{"device":"nvme0n1p2",
            "fstype":"ext4","size_bytes":502384893952,"used_bytes":201234567168,
            "avail_bytes":275540320256,"files":31260672,"files_free":30123456},"/mnt/nfs":null}}"#;
        let s: Snapshot = serde_json::from_str(text).unwrap();
        let fs = s.filesystems.as_ref().unwrap();
        assert_eq!(fs["/"].as_ref().unwrap().used_bytes, 201234567168);
        assert_eq!(fs["/"].as_ref().unwrap().device, "nvme0n1p2");
        assert_eq!(fs["/mnt/nfs"], None);
        let json = serde_json::to_value(&s).unwrap();
        assert!(json["filesystems"]["/mnt/nfs"].is_null());
        assert_eq!(json["filesystems"]["/"]["files_free"], 30123456);
    }

    #[test]
    fn job_events_are_tagged_by_type() {
        let e = JobEvent::JobEnd(JobEnd {
            run_id: "r1".into(),
            name: "simA".into(),
            exit_code: Some(3),
            ..JobEnd::default()
        });
        let json = serde_json::to_value(&e).unwrap();
        assert_eq!(json["type"], "job_end");
        assert_eq!(json["exit_code"], 3);
        assert!(json["signal"].is_null());
        let back: JobEvent = serde_json::from_value(json).unwrap();
        assert_eq!(back, e);
        assert_eq!(back.run_id(), "r1");
    }
}
