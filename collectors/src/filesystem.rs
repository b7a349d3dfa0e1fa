//! Mounted filesystems from `<proc>/self/mountinfo` and `statvfs`, with `df`'s figures.
//!
//! One entry per mount point; the same device once (a bind mount repeats its device: the
//! shortest mount point is kept, as `df` does); pseudo and container filesystems skipped by
//! node_exporter's default lists, and so is one with no blocks at all. `statvfs` of a local
//! filesystem runs on the sampling thread ([`super::statvfs::DIRECT_FS_TYPES`]); that of any
//! other (a network or FUSE mount, an unknown type, a mount below one of those) on helper
//! threads, so that one that hangs (a dead NFS server) is reported `null` without stalling
//! the sample ([`super::statvfs_pool`]).

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use broker::Filesystem;

use super::filter::NameFilter;
use super::statvfs::{direct_mounts, FsStats, Prober, Statvfs};
use super::statvfs_pool::{Outcome, TimedProber};
use super::{CollectError, Roots};

pub use super::mountinfo::{
    parse_mountinfo, read_mountinfo, Mount, MountWatch, MAX_MOUNTINFO_BYTES,
};

/// node_exporter's `--collector.filesystem.fs-types-exclude`, one name per entry.
pub const DEFAULT_EXCLUDE_FS_TYPES: [&str; 25] = [
    "autofs",
    "binfmt_misc",
    "bpf",
    "cgroup",
    "cgroup2",
    "configfs",
    "debugfs",
    "devpts",
    "devtmpfs",
    "fusectl",
    "hugetlbfs",
    "iso9660",
    "mqueue",
    "nsfs",
    "overlay",
    "proc",
    "procfs",
    "pstore",
    "rpc_pipefs",
    "securityfs",
    "selinuxfs",
    "squashfs",
    "erofs",
    "sysfs",
    "tracefs",
];

/// node_exporter's `--collector.filesystem.mount-points-exclude`
/// (`^/(dev|proc|run/credentials/.+|sys|var/lib/docker/.+|var/lib/containers/storage/.+)($|/)`)
/// as globs.
pub const DEFAULT_EXCLUDE_MOUNT_POINTS: [&str; 9] = [
    "/dev",
    "/dev/*",
    "/proc",
    "/proc/*",
    "/run/credentials/*",
    "/sys",
    "/sys/*",
    "/var/lib/docker/*",
    "/var/lib/containers/storage/*",
];

/// Which mounts are reported.
#[derive(Debug, Clone)]
pub struct Selection {
    pub mount_points: NameFilter,
    pub fs_types: NameFilter,
    pub devices: NameFilter,
    /// Entries at most per snapshot (the first ones by mount point are kept).
    pub max_mounts: usize,
}

impl Default for Selection {
    fn default() -> Self {
        Self {
            mount_points: NameFilter::excluding(&DEFAULT_EXCLUDE_MOUNT_POINTS),
            fs_types: NameFilter::excluding(&DEFAULT_EXCLUDE_FS_TYPES),
            devices: NameFilter::default(),
            max_mounts: 64,
        }
    }
}

impl Selection {
    /// The default selection without its excluded mount points (`/run`, `/proc`, …): every
    /// mount point whose type and device the defaults keep.
    pub fn every_mount_point() -> Self {
        Self {
            mount_points: NameFilter::default(),
            ..Self::default()
        }
    }
}

/// The device name shown: the source without `/dev/`.
fn device_name(source: &str) -> &str {
    source.strip_prefix("/dev/").unwrap_or(source)
}

/// The mounts to report: filtered, a mount point once (the last mount over it is the one
/// visible), a device once (its shortest mount point, the first on a tie), sorted by mount
/// point and cut at `max_mounts`.
pub fn select(mounts: Vec<Mount>, selection: &Selection) -> Vec<Mount> {
    let mut by_point: BTreeMap<String, Mount> = BTreeMap::new();
    for m in mounts {
        if selection.mount_points.counts(&m.mount_point)
            && selection.fs_types.counts(&m.fstype)
            && selection.devices.counts(device_name(&m.source))
        {
            by_point.insert(m.mount_point.clone(), m);
        }
    }
    let mut by_dev: HashMap<String, Mount> = HashMap::new();
    // BTreeMap order: on equal lengths, the first mount point in byte order wins.
    for m in by_point.into_values() {
        match by_dev.get(&m.dev) {
            Some(kept) if kept.mount_point.len() <= m.mount_point.len() => {}
            _ => {
                by_dev.insert(m.dev.clone(), m);
            }
        }
    }
    let mut kept: Vec<Mount> = by_dev.into_values().collect();
    kept.sort_by(|a, b| a.mount_point.cmp(&b.mount_point));
    kept.truncate(selection.max_mounts);
    kept
}

/// `df`'s figures from `statvfs`: size = blocks × frsize, used = (blocks − bfree) × frsize,
/// avail = bavail × frsize.
pub fn figures(mount: &Mount, s: &FsStats) -> Filesystem {
    Filesystem {
        device: device_name(&mount.source).to_owned(),
        fstype: mount.fstype.clone(),
        size_bytes: s.blocks.saturating_mul(s.frsize),
        used_bytes: s.blocks.saturating_sub(s.bfree).saturating_mul(s.frsize),
        avail_bytes: s.bavail.saturating_mul(s.frsize),
        files: s.files,
        files_free: s.ffree,
    }
}

/// Counts of `statvfs` calls that gave no figures, for `/health`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ProbeFailures {
    pub timed_out: u64,
    pub failed: u64,
    /// Not asked: an earlier call is still hung, every helper thread is, or the sample's
    /// deadline had passed.
    pub skipped: u64,
}

/// The mounts selected from mountinfo, and how each is asked.
#[derive(Debug)]
struct Selected {
    mounts: Vec<Mount>,
    /// Per mount: asked on the sampling thread (else on the helper threads).
    direct: Vec<bool>,
    /// The mount points of those asked on the helper threads, in order.
    protected: Vec<PathBuf>,
    /// Per protected mount: until when it is not asked, having answered no blocks (it is not
    /// reported then: a FUSE portal, an autofs point before mounting). Asked again after
    /// [`REST`] or when the mount table changes (this is rebuilt then).
    rest_until: Vec<Option<Instant>>,
}

/// How long a protected mount that answered no blocks is left unasked: each ask is a
/// hand-off to a helper thread, the one the tower fixture's sample still had for its
/// document portal (issue 22).
const REST: Duration = Duration::from_secs(300);

/// The filesystem collector: the selection, the mounts it kept (read again only when
/// mountinfo changed, [`MountWatch`]), the prober and its helper threads.
#[derive(Debug)]
pub struct FilesystemCollector {
    selection: Selection,
    direct: Arc<dyn Prober>,
    prober: TimedProber,
    failures: ProbeFailures,
    watch: Option<MountWatch>,
    /// As of the last read of mountinfo.
    selected: Option<Selected>,
    mountinfo_reads: u64,
}

impl FilesystemCollector {
    pub fn new(selection: Selection, prober: Arc<dyn Prober>, timeout: Duration) -> Self {
        Self {
            selection,
            direct: Arc::clone(&prober),
            prober: TimedProber::new(prober, timeout),
            failures: ProbeFailures::default(),
            watch: None,
            selected: None,
            mountinfo_reads: 0,
        }
    }

    /// The defaults, with the real `statvfs` and a 1 s timeout.
    pub fn system() -> Self {
        Self::new(
            Selection::default(),
            Arc::new(Statvfs),
            Duration::from_secs(1),
        )
    }

    pub fn failures(&self) -> ProbeFailures {
        self.failures
    }

    /// Times mountinfo was read and parsed (it is only when it changed).
    pub fn mountinfo_reads(&self) -> u64 {
        self.mountinfo_reads
    }

    /// The mounts selected from mountinfo, read again if it changed.
    fn mounts(&mut self, roots: &Roots) -> Result<(), CollectError> {
        let watch = match &mut self.watch {
            Some(w) if w.path().starts_with(&roots.proc) => w,
            _ => {
                self.selected = None;
                self.watch.insert(MountWatch::new(roots))
            }
        };
        if self.selected.is_none() || watch.changed() {
            self.selected = None;
            self.mountinfo_reads += 1;
            let all = watch.read()?;
            let mounts = select(all.clone(), &self.selection);
            let direct = direct_mounts(&all, &mounts, self.direct.as_ref());
            let protected = mounts
                .iter()
                .zip(&direct)
                .filter(|(_, d)| !**d)
                .map(|(m, _)| PathBuf::from(&m.mount_point))
                .collect();
            let rest_until = vec![None; direct.iter().filter(|d| !**d).count()];
            self.selected = Some(Selected {
                mounts,
                direct,
                protected,
                rest_until,
            });
        }
        Ok(())
    }

    /// `statvfs` helper threads started so far (none while every mount is asked directly).
    pub fn threads(&self) -> usize {
        self.prober.threads()
    }

    /// The snapshot's `filesystems` section.
    pub fn read(
        &mut self,
        roots: &Roots,
    ) -> Result<BTreeMap<String, Option<Filesystem>>, CollectError> {
        self.mounts(roots)?;
        let Some(selected) = &mut self.selected else {
            return Ok(BTreeMap::new());
        };
        let now = Instant::now();
        let resting = |r: &Option<Instant>| r.is_some_and(|until| now < until);
        // The local mounts first, on this thread; then the others, with their one deadline.
        let direct: Vec<Option<Outcome>> = selected
            .mounts
            .iter()
            .zip(&selected.direct)
            .map(|(m, direct)| {
                direct.then(|| match self.direct.statvfs(Path::new(&m.mount_point)) {
                    Ok(stats) => Outcome::Answered(stats),
                    Err(error) => Outcome::Failed(error),
                })
            })
            .collect();
        let asked: Vec<PathBuf>;
        let paths = if selected.rest_until.iter().any(resting) {
            asked = (selected.protected.iter().zip(&selected.rest_until))
                .filter(|(_, r)| !resting(r))
                .map(|(p, _)| p.clone())
                .collect();
            &asked
        } else {
            &selected.protected
        };
        let mut protected = if paths.is_empty() {
            Vec::new()
        } else {
            self.prober.probe_all(paths)
        }
        .into_iter();
        let mut out = BTreeMap::new();
        let mut k = 0; // the protected mount's index
        for (m, direct) in selected.mounts.iter().zip(direct) {
            let outcome = match direct {
                Some(outcome) => outcome,
                None => {
                    k += 1;
                    let rest = &mut selected.rest_until[k - 1];
                    if resting(rest) {
                        continue; // it answered no blocks: not reported, as then
                    }
                    let outcome = protected.next().unwrap_or(Outcome::NoThread);
                    if matches!(&outcome, Outcome::Answered(stats) if stats.blocks == 0) {
                        *rest = Some(now + REST);
                    }
                    outcome
                }
            };
            let value = match outcome {
                // No blocks at all (a FUSE portal, autofs before mounting): `df` leaves it
                // out too.
                Outcome::Answered(stats) if stats.blocks == 0 => continue,
                Outcome::Answered(stats) => Some(figures(m, &stats)),
                Outcome::Failed(error) => {
                    self.failures.failed += 1;
                    tracing::debug!(mount = %m.mount_point, %error, "statvfs failed");
                    None
                }
                Outcome::TimedOut => {
                    self.failures.timed_out += 1;
                    tracing::warn!(mount = %m.mount_point, "statvfs timed out; the mount is null until it answers");
                    None
                }
                Outcome::StillHung | Outcome::NoThread | Outcome::Deferred => {
                    self.failures.skipped += 1;
                    None
                }
            };
            out.insert(m.mount_point.clone(), value);
        }
        Ok(out)
    }
}

#[cfg(test)]
#[path = "filesystem_tests.rs"]
mod tests;
