//! Collectors: one per file, each a pure parser over text plus a thin reader under [`Roots`].
//!
//! Every collector has the same shape: `parse_*(&str) -> Result<_, ParseError>` does the work
//! and is tested against fixture files; `read(&Roots, …) -> Result<_, CollectError>` only reads
//! the files. [`Collectors::sample`] runs them all for one snapshot; one that fails is logged
//! once, counted, and leaves its section `null` while the others go on.

pub mod cpu;
pub mod disk;
pub mod filesystem;
pub mod filter;
pub mod host;
pub mod load;
pub mod memory;
pub mod network;
pub mod power;
pub mod processes;
pub mod statvfs;
pub mod statvfs_pool;
pub mod thermal;
pub mod units;

use std::collections::{BTreeMap, BTreeSet};
use std::io;
use std::path::{Path, PathBuf};
use std::time::SystemTime;

use broker::{Cpu, Snapshot, Thermal};
use serde::Serialize;

pub use filesystem::FilesystemCollector;
pub use filter::NameFilter;
pub use network::InterfaceFilter;
pub use thermal::ChipFilter;

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

/// Everything one sample reads, before it gets its host and seq.
#[derive(Debug, Clone, PartialEq)]
pub struct Reading {
    /// When the counters (CPU times, disk and network bytes) were read: the sample's time,
    /// which rates divide by. Taken before the slower collectors (hwmon, `statvfs`).
    pub read_at: SystemTime,
    pub boot_id: Option<String>,
    pub uptime_s: Option<f64>,
    pub cpu: Option<Cpu>,
    pub memory: Option<broker::Memory>,
    pub thermal: Thermal,
    pub disk: Option<broker::Disk>,
    pub network: Option<broker::Network>,
    pub filesystems: Option<BTreeMap<String, Option<broker::Filesystem>>>,
    pub power: Option<broker::Power>,
    pub processes: Option<broker::Processes>,
    /// Filled by the caller ([`units`], async), not by [`Collectors::sample`].
    pub failed_units: Option<Vec<broker::FailedUnit>>,
}

impl Reading {
    /// Fills a snapshot's measured fields from this reading.
    pub fn into_snapshot(self, mut base: Snapshot) -> Snapshot {
        base.boot_id = self.boot_id;
        base.uptime_s = self.uptime_s;
        base.cpu = self.cpu;
        base.memory = self.memory;
        base.thermal = self.thermal;
        base.disk = self.disk;
        base.network = self.network;
        base.filesystems = self.filesystems;
        base.power = self.power;
        base.processes = self.processes;
        base.failed_units = self.failed_units;
        base
    }
}

/// All collectors, with the state that spans samples (the previous CPU times).
#[derive(Debug)]
pub struct Collectors {
    roots: Roots,
    interfaces: InterfaceFilter,
    chips: ChipFilter,
    /// `None` when `filesystems.enabled` is off.
    filesystems: Option<FilesystemCollector>,
    /// `None` when `processes.enabled` is off (the default of [`Collectors::new`]).
    processes: Option<processes::ProcessCollector>,
    /// `/proc/stat` of the previous sample: CPU % is a difference of two readings.
    previous_stat: Option<cpu::StatSample>,
    errors: CollectorErrors,
    /// Collectors whose last run failed, so a persistent failure is logged once, not every 15 s.
    failing: BTreeSet<CollectorName>,
}

impl Collectors {
    pub fn new(roots: Roots, interfaces: InterfaceFilter) -> Self {
        Self {
            roots,
            interfaces,
            chips: ChipFilter::default(),
            filesystems: Some(FilesystemCollector::system()),
            processes: None,
            previous_stat: None,
            errors: CollectorErrors::new(),
            failing: BTreeSet::new(),
        }
    }

    /// Leaves the hwmon chips `chips` excludes unread (`thermal.exclude_chips`).
    pub fn with_chip_filter(mut self, chips: ChipFilter) -> Self {
        self.chips = chips;
        self
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
        self.previous_stat = cpu::read(&self.roots).ok();
    }

    /// Runs every collector once. Blocking file I/O: call it off the async workers. The
    /// counters are read first, together, and the reading is dated right after them; a slow
    /// `statvfs` or hwmon read afterwards does not move the sample's time.
    pub fn sample(&mut self) -> Reading {
        let stat = self.check(CollectorName::Cpu, cpu::read(&self.roots));
        let disk = self.check(CollectorName::Disk, disk::read(&self.roots));
        let network = self.check(
            CollectorName::Network,
            network::read(&self.roots, &self.interfaces),
        );
        let read_at = SystemTime::now();
        let processes = self
            .processes
            .as_mut()
            .map(|p| p.read(&self.roots, read_at));
        let processes = match processes {
            Some(r) => self.check(CollectorName::Processes, r),
            None => None,
        };
        let load = self.check(CollectorName::Load, load::read(&self.roots));
        let cpu_section = cpu::summarize(self.previous_stat.as_ref(), stat.as_ref(), load);
        if stat.is_some() {
            self.previous_stat = stat;
        }
        let memory = self.check(CollectorName::Memory, memory::read(&self.roots));
        let thermal = self
            .check(
                CollectorName::Thermal,
                thermal::read(&self.roots, &self.chips),
            )
            .unwrap_or_default();
        let uptime_s = self.check(CollectorName::Uptime, host::read_uptime(&self.roots));
        let boot_id = self.check(CollectorName::BootId, host::read_boot_id(&self.roots));
        let filesystems = self.sample_filesystems();
        let power = self
            .check(CollectorName::Power, power::read(&self.roots))
            .flatten();
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
