//! Collectors: one per file, each a pure parser over text plus a thin reader under [`Roots`].
//!
//! Every collector has the same shape: `parse_*(&str) -> Result<_, ParseError>` does the work
//! and is tested against fixture files; `read(&Roots, …) -> Result<_, CollectError>` only reads
//! the files. [`Collectors::sample`] runs them all for one snapshot; one that fails is logged
//! once, counted, and leaves its section `null` while the others go on.
//!
//! Between samples each collector keeps its files open and re-reads them with `pread`
//! ([`held`]), and what is discovered by walking directories (hwmon chips, thermal zones, a
//! Pi's power files, the mounts) is kept until it changes: a failed read, a changed mount
//! table, or [`RESCAN_EVERY`].

pub mod cpu;
pub mod disk;
pub mod filesystem;
pub mod filter;
mod held;
pub mod host;
mod kthreads;
pub mod load;
pub mod memory;
pub mod mountinfo;
pub mod network;
pub mod power;
mod proc_dir;
mod proc_stat;
pub mod processes;
mod reading;
pub mod statvfs;
pub mod statvfs_pool;
pub mod thermal;
pub mod thermal_held;
pub mod units;

use std::collections::{BTreeMap, BTreeSet};
use std::io;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant, SystemTime};

use serde::Serialize;

pub use filesystem::FilesystemCollector;
pub use filter::NameFilter;
pub use network::InterfaceFilter;
pub use reading::Reading;
pub use thermal::ChipFilter;
pub use thermal_held::ThermalCollector;

/// How often hwmon chips, thermal zones and a Pi's power files are looked for again when
/// nothing failed (a chip that appears makes no read fail).
pub const RESCAN_EVERY: Duration = Duration::from_secs(300);

/// Where `/proc` and `/sys` are. Tests and benchmarks point these at fixture trees
/// (like node_exporter's `--path.procfs`); this is the only place the real paths appear.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Roots {
    pub proc: PathBuf,
    pub sys: PathBuf,
}

impl Default for Roots {
    fn default() -> Self {
        Self {
            proc: PathBuf::from("/proc"),
            sys: PathBuf::from("/sys"),
        }
    }
}

impl Roots {
    pub fn new(proc: impl Into<PathBuf>, sys: impl Into<PathBuf>) -> Self {
        Self {
            proc: proc.into(),
            sys: sys.into(),
        }
    }

    /// Roots of a fixture machine laid out as `<dir>/proc` and `<dir>/sys`.
    pub fn under(dir: impl AsRef<Path>) -> Self {
        let dir = dir.as_ref();
        Self::new(dir.join("proc"), dir.join("sys"))
    }
}

/// A text that is not in the format the kernel documents.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ParseError {
    #[error("line {line}: {reason}")]
    Line { line: usize, reason: String },
    #[error("no {0} found")]
    Missing(&'static str),
    #[error("{0:?} is not a number")]
    NotANumber(String),
}

/// A collector's failure, with the file it concerns.
#[derive(Debug, thiserror::Error)]
pub enum CollectError {
    #[error("cannot read {}: {source}", path.display())]
    Read { path: PathBuf, source: io::Error },
    #[error("cannot parse {}: {source}", path.display())]
    Parse { path: PathBuf, source: ParseError },
}

/// Reads a whole (small) file, naming it in the error.
pub(crate) fn read_text(path: &Path) -> Result<String, CollectError> {
    std::fs::read_to_string(path).map_err(|source| CollectError::Read {
        path: path.to_owned(),
        source,
    })
}

/// Reads and parses one file, naming it in either error.
pub(crate) fn read_parsed<T>(
    path: &Path,
    parse: impl FnOnce(&str) -> Result<T, ParseError>,
) -> Result<T, CollectError> {
    let text = read_text(path)?;
    parse(&text).map_err(|source| CollectError::Parse {
        path: path.to_owned(),
        source,
    })
}

/// Parses one unsigned counter field.
pub(crate) fn parse_u64(field: &str) -> Result<u64, ParseError> {
    field
        .parse()
        .map_err(|_| ParseError::NotANumber(field.to_owned()))
}

/// Rounds a percentage or a rate to two decimals, as the seed printed them.
pub(crate) fn round2(x: f64) -> f64 {
    (x * 100.0).round() / 100.0
}

/// The names of the collectors, as counted in [`CollectorErrors`] and logged.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum CollectorName {
    Cpu,
    Load,
    Memory,
    Thermal,
    Disk,
    Network,
    Uptime,
    BootId,
    /// `<proc>/self/mountinfo` could not be read.
    Filesystems,
    /// A `statvfs` that failed or timed out (its mount is `null` in that sample).
    Statvfs,
    /// A Raspberry Pi's `rpi_volt` alarm or `get_throttled` could not be read.
    Power,
    /// `<proc>` could not be listed for the top processes.
    Processes,
    /// systemd's D-Bus API did not answer (`failed_units` is `null`).
    Units,
}

/// Failure counts per collector, for `/health`.
pub type CollectorErrors = BTreeMap<CollectorName, u64>;

/// All collectors, with the state that spans samples (the previous CPU times, the files
/// kept open, what was discovered).
#[derive(Debug)]
pub struct Collectors {
    roots: Roots,
    stat: cpu::StatReader,
    load: load::LoadReader,
    memory: memory::MemReader,
    disk: disk::DiskReader,
    network: network::NetDevReader,
    host: host::HostReader,
    thermal: ThermalCollector,
    power: power::PowerCollector,
    /// `None` when `filesystems.enabled` is off.
    filesystems: Option<FilesystemCollector>,
    /// `None` when `processes.enabled` is off (the default of [`Collectors::new`]).
    processes: Option<processes::ProcessCollector>,
    /// `/proc/stat` of the previous sample: CPU % is a difference of two readings.
    previous_stat: Option<cpu::StatSample>,
    /// The reading before that, whose core list is reused.
    spare_stat: cpu::StatSample,
    /// When the `/proc` files above are opened again (a file replaced: never on procfs).
    reopen: held::RescanClock,
    errors: CollectorErrors,
    /// Collectors whose last run failed, so a persistent failure is logged once, not every 15 s.
    failing: BTreeSet<CollectorName>,
}

impl Collectors {
    pub fn new(roots: Roots, interfaces: InterfaceFilter) -> Self {
        Self {
            stat: cpu::StatReader::new(&roots),
            load: load::LoadReader::new(&roots),
            memory: memory::MemReader::new(&roots),
            disk: disk::DiskReader::new(&roots),
            network: network::NetDevReader::new(&roots, interfaces),
            host: host::HostReader::new(&roots),
            thermal: ThermalCollector::new(&roots, ChipFilter::default()),
            power: power::PowerCollector::new(&roots),
            roots,
            filesystems: Some(FilesystemCollector::system()),
            processes: None,
            previous_stat: None,
            spare_stat: cpu::StatSample::default(),
            reopen: held::RescanClock::new(RESCAN_EVERY),
            errors: CollectorErrors::new(),
            failing: BTreeSet::new(),
        }
    }

    /// Leaves the hwmon chips `chips` excludes unread (`thermal.exclude_chips`).
    pub fn with_chip_filter(mut self, chips: ChipFilter) -> Self {
        self.thermal = ThermalCollector::new(&self.roots, chips);
        self
    }

    /// How often sensors and power files are looked for again when nothing failed
    /// (default [`RESCAN_EVERY`]).
    pub fn with_rescan_every(mut self, every: Duration) -> Self {
        self.thermal.set_rescan_every(every);
        self.power.set_rescan_every(every);
        self.reopen.set_every(every);
        self
    }

    /// The next sample looks for sensors and power files again and opens every file anew.
    pub fn rescan(&mut self) {
        self.thermal.rescan();
        self.power.rescan();
        self.reopen.expire();
    }

    /// Closes the held `/proc` files when [`RESCAN_EVERY`] has passed or a rescan was asked.
    fn reopen_if_due(&mut self, now: Instant) {
        if self.reopen.due(now) {
            self.stat.reopen();
            self.load.reopen();
            self.memory.reopen();
            self.disk.reopen();
            self.network.reopen();
            self.host.reopen();
            self.reopen.done(now);
        }
    }

    pub fn thermal(&self) -> &ThermalCollector {
        &self.thermal
    }

    /// Replaces the filesystem collector (its selection, timeout or `statvfs`); `None`
    /// leaves the section out of snapshots.
    pub fn with_filesystems(mut self, filesystems: Option<FilesystemCollector>) -> Self {
        self.filesystems = filesystems;
        self
    }

    /// Adds the top processes (`None`: left out of snapshots).
    pub fn with_processes(mut self, processes: Option<processes::ProcessCollector>) -> Self {
        self.processes = processes;
        self
    }

    pub fn filesystems(&self) -> Option<&FilesystemCollector> {
        self.filesystems.as_ref()
    }

    pub fn roots(&self) -> &Roots {
        &self.roots
    }

    /// Failures so far, per collector.
    pub fn errors(&self) -> &CollectorErrors {
        &self.errors
    }

    /// Reads `/proc/stat` only, so that the first real sample has a CPU % to report.
    pub fn prime(&mut self) {
        let mut stat = cpu::StatSample::default();
        self.previous_stat = self.stat.read_into(&mut stat).is_ok().then_some(stat);
    }

    /// Runs every collector once. Blocking file I/O: call it off the async workers. The
    /// counters are read first, together, and the reading is dated right after them; a slow
    /// `statvfs` or hwmon read afterwards does not move the sample's time.
    pub fn sample(&mut self) -> Reading {
        self.reopen_if_due(Instant::now());
        let mut stat = std::mem::take(&mut self.spare_stat);
        let read = self.stat.read_into(&mut stat);
        let stat_ok = self.check(CollectorName::Cpu, read).is_some();
        let read = self.disk.read();
        let disk = self.check(CollectorName::Disk, read);
        let read = self.network.read();
        let network = self.check(CollectorName::Network, read);
        let read_at = SystemTime::now();
        let now = Instant::now();
        // Read before the top processes: while it stands still, `<proc>` is not listed.
        let forks = if stat_ok { stat.forks } else { None };
        let processes = self
            .processes
            .as_mut()
            .map(|p| p.read_counted(&self.roots, read_at, forks));
        let processes = match processes {
            Some(r) => self.check(CollectorName::Processes, r),
            None => None,
        };
        let read = self.load.read();
        let load = self.check(CollectorName::Load, read);
        let current = stat_ok.then_some(&stat);
        let cpu_section = cpu::summarize(self.previous_stat.as_ref(), current, load);
        if stat_ok {
            if let Some(previous) = self.previous_stat.replace(stat) {
                self.spare_stat = previous;
            }
        } else {
            self.spare_stat = stat;
        }
        let read = self.memory.read();
        let memory = self.check(CollectorName::Memory, read);
        let read = self.thermal.read(now);
        let thermal = self.check(CollectorName::Thermal, read).unwrap_or_default();
        let read = self.host.uptime();
        let uptime_s = self.check(CollectorName::Uptime, read);
        let read = self.host.boot_id();
        let boot_id = self.check(CollectorName::BootId, read);
        let filesystems = self.sample_filesystems();
        let read = self.power.read(now);
        let power = self.check(CollectorName::Power, read).flatten();
        Reading {
            read_at,
            boot_id,
            uptime_s,
            cpu: cpu_section,
            memory,
            thermal,
            disk,
            network,
            filesystems,
            power,
            processes,
            failed_units: None,
        }
    }

    fn sample_filesystems(&mut self) -> Option<BTreeMap<String, Option<broker::Filesystem>>> {
        let fs = self.filesystems.as_mut()?;
        let before = fs.failures();
        let result = fs.read(&self.roots);
        let after = fs.failures();
        let new_failures =
            (after.failed + after.timed_out).saturating_sub(before.failed + before.timed_out);
        if new_failures > 0 {
            *self.errors.entry(CollectorName::Statvfs).or_insert(0) += new_failures;
        }
        self.check(CollectorName::Filesystems, result)
    }

    /// Logs a collector's failure the first time it happens (and when it recovers), counts
    /// every failure, and turns it into `None` so the sample goes on.
    fn check<T>(&mut self, name: CollectorName, result: Result<T, CollectError>) -> Option<T> {
        match result {
            Ok(value) => {
                if self.failing.remove(&name) {
                    tracing::info!(collector = ?name, "collector recovered");
                }
                Some(value)
            }
            Err(error) => {
                *self.errors.entry(name).or_insert(0) += 1;
                if self.failing.insert(name) {
                    tracing::warn!(collector = ?name, %error, "collector failed; its fields are null until it recovers");
                }
                None
            }
        }
    }
}
