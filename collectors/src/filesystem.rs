//! Mounted filesystems from `<proc>/self/mountinfo` and `statvfs`, with `df`'s figures.
//!
//! One entry per mount point; the same device once (a bind mount repeats its device: the
//! shortest mount point is kept, as `df` does); pseudo and container filesystems skipped by
//! node_exporter's default lists, and so is one with no blocks at all; a `statvfs` that hangs (a dead NFS server) is reported
//! `null` without stalling the sample ([`super::statvfs_pool`]).

use std::collections::{BTreeMap, HashMap};
use std::io::Read;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use broker::Filesystem;

use super::filter::NameFilter;
use super::statvfs::{FsStats, Prober, Statvfs};
use super::statvfs_pool::{Outcome, TimedProber};
use super::{CollectError, ParseError, Roots};

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

/// Mountinfo beyond this is not read: a host with tens of thousands of mounts.
pub const MAX_MOUNTINFO_BYTES: u64 = 8 << 20;

/// One line of mountinfo (proc(5)), the fields used here.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mount {
    /// `major:minor` of the device.
    pub dev: String,
    pub mount_point: String,
    pub fstype: String,
    /// The mount source, as the kernel wrote it.
    pub source: String,
}

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

/// Undoes mountinfo's octal escapes (`\040` space, `\011` tab, `\012` newline, `\134` `\`).
fn unescape(field: &str) -> Option<String> {
    if !field.contains('\\') {
        return Some(field.to_owned());
    }
    let bytes = field.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let octal = bytes.get(i + 1..i + 4).and_then(|d| {
            let d = std::str::from_utf8(d).ok()?;
            u8::from_str_radix(d, 8).ok()
        });
        match (bytes[i], octal) {
            (b'\\', Some(b)) => {
                out.push(b);
                i += 4;
            }
            (b, _) => {
                out.push(b);
                i += 1;
            }
        }
    }
    String::from_utf8(out).ok()
}

/// Parses mountinfo: `id parent major:minor root mount_point options [optional…] - fstype
/// source super_options`. A mount point that is not UTF-8 once unescaped is skipped.
pub fn parse_mountinfo(text: &str) -> Result<Vec<Mount>, ParseError> {
    let mut mounts = Vec::new();
    for (index, line) in text.lines().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        let bad = |reason: &str| ParseError::Line {
            line: index + 1,
            reason: reason.to_owned(),
        };
        let (left, right) = line
            .split_once(" - ")
            .ok_or_else(|| bad("no ' - ' separator"))?;
        let left: Vec<&str> = left.split(' ').collect();
        let mut right = right.split(' ');
        if left.len() < 6 {
            return Err(bad("fewer than 6 fields before ' - '"));
        }
        let (Some(fstype), Some(source)) = (right.next(), right.next()) else {
            return Err(bad("no filesystem type and source after ' - '"));
        };
        if !left[2].contains(':') {
            return Err(bad("device is not major:minor"));
        }
        let (Some(mount_point), Some(source)) = (unescape(left[4]), unescape(source)) else {
            continue;
        };
        mounts.push(Mount {
            dev: left[2].to_owned(),
            mount_point,
            fstype: fstype.to_owned(),
            source,
        });
    }
    Ok(mounts)
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

/// Reads `<proc>/self/mountinfo`, at most [`MAX_MOUNTINFO_BYTES`].
pub fn read_mountinfo(roots: &Roots) -> Result<Vec<Mount>, CollectError> {
    let path = roots.proc.join("self/mountinfo");
    let read = |path: &Path| -> std::io::Result<String> {
        let mut bytes = Vec::new();
        std::fs::File::open(path)?
            .take(MAX_MOUNTINFO_BYTES)
            .read_to_end(&mut bytes)?;
        Ok(String::from_utf8_lossy(&bytes).into_owned())
    };
    let text = read(&path).map_err(|source| CollectError::Read {
        path: path.clone(),
        source,
    })?;
    parse_mountinfo(&text).map_err(|source| CollectError::Parse { path, source })
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

/// The filesystem collector: the selection and the `statvfs` helper threads.
#[derive(Debug)]
pub struct FilesystemCollector {
    selection: Selection,
    prober: TimedProber,
    failures: ProbeFailures,
}

impl FilesystemCollector {
    pub fn new(selection: Selection, prober: Arc<dyn Prober>, timeout: Duration) -> Self {
        Self {
            selection,
            prober: TimedProber::new(prober, timeout),
            failures: ProbeFailures::default(),
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

    /// `statvfs` helper threads started so far.
    pub fn threads(&self) -> usize {
        self.prober.threads()
    }

    /// The snapshot's `filesystems` section.
    pub fn read(
        &mut self,
        roots: &Roots,
    ) -> Result<BTreeMap<String, Option<Filesystem>>, CollectError> {
        let mounts = select(read_mountinfo(roots)?, &self.selection);
        let paths: Vec<PathBuf> = mounts
            .iter()
            .map(|m| PathBuf::from(&m.mount_point))
            .collect();
        let outcomes = self.prober.probe_all(&paths);
        let mut out = BTreeMap::new();
        for (m, outcome) in mounts.into_iter().zip(outcomes) {
            let value = match outcome {
                // No blocks at all (a FUSE portal, autofs before mounting): `df` leaves it
                // out too.
                Outcome::Answered(stats) if stats.blocks == 0 => continue,
                Outcome::Answered(stats) => Some(figures(&m, &stats)),
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
            out.insert(m.mount_point, value);
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mount(dev: &str, point: &str, fstype: &str, source: &str) -> Mount {
        Mount {
            dev: dev.into(),
            mount_point: point.into(),
            fstype: fstype.into(),
            source: source.into(),
        }
    }

    #[test]
    fn escapes_and_optional_fields() {
        let text = "56 29 8:33 / /media/alex/My\\040Passport rw,relatime shared:37 master:2 - exfat /dev/sdc1 rw\n\
                    57 29 0:60 / /mnt/a\\134b rw - nfs4 nas:/export\\040x rw\n";
        assert_eq!(
            parse_mountinfo(text).unwrap(),
            [
                mount("8:33", "/media/alex/My Passport", "exfat", "/dev/sdc1"),
                mount("0:60", "/mnt/a\\b", "nfs4", "nas:/export x"),
            ]
        );
    }

    #[test]
    fn a_line_without_separator_is_an_error() {
        assert_eq!(
            parse_mountinfo("22 27 0:21 / /proc rw,relatime proc proc rw\n"),
            Err(ParseError::Line {
                line: 1,
                reason: "no ' - ' separator".into()
            })
        );
        assert!(parse_mountinfo("1 2 3 / /x rw - ext4 /dev/a rw\n").is_err());
        assert!(parse_mountinfo("1 2 3:4 / /x rw - ext4\n").is_err());
    }

    #[test]
    fn a_device_once_under_its_shortest_mount_point_and_the_last_mount_over_a_point() {
        let mounts = vec![
            mount("9:0", "/srv/storage", "ext4", "/dev/md0"),
            mount("9:0", "/data", "ext4", "/dev/md0"),
            mount("9:0", "/var/www/data", "ext4", "/dev/md0"),
            mount("0:40", "/mnt/x", "tmpfs", "tmpfs"),
            mount("0:41", "/mnt/x", "ext4", "/dev/sdb1"),
            mount(
                "0:42",
                "/var/lib/docker/overlay2/a/merged",
                "xfs",
                "/dev/sdz",
            ),
            mount("0:43", "/snap/core/1", "squashfs", "/dev/loop0"),
        ];
        let kept = select(mounts, &Selection::default());
        assert_eq!(
            kept,
            [
                mount("9:0", "/data", "ext4", "/dev/md0"),
                mount("0:41", "/mnt/x", "ext4", "/dev/sdb1"),
            ]
        );
    }

    #[test]
    fn filters_and_the_cap() {
        let mounts: Vec<Mount> = (0..10)
            .map(|i| {
                mount(
                    &format!("0:{i}"),
                    &format!("/m{i}"),
                    "ext4",
                    &format!("/dev/sd{i}"),
                )
            })
            .collect();
        let mut sel = Selection {
            max_mounts: 3,
            ..Selection::default()
        };
        let points: Vec<String> = select(mounts.clone(), &sel)
            .into_iter()
            .map(|m| m.mount_point)
            .collect();
        assert_eq!(points, ["/m0", "/m1", "/m2"]);
        sel.max_mounts = 64;
        sel.devices = NameFilter::new(&["sd[5-6]".into()], &[]).unwrap();
        assert_eq!(select(mounts.clone(), &sel).len(), 2);
        sel.devices = NameFilter::default();
        sel.fs_types = NameFilter::new(&[], &["ext*".into()]).unwrap();
        assert!(select(mounts, &sel).is_empty());
    }

    #[test]
    fn figures_as_df_computes_them() {
        let m = mount("253:0", "/", "ext4", "/dev/mapper/cryptroot");
        let s = FsStats {
            frsize: 4096,
            blocks: 100,
            bfree: 30,
            bavail: 25,
            files: 64,
            ffree: 60,
        };
        assert_eq!(
            figures(&m, &s),
            Filesystem {
                device: "mapper/cryptroot".into(),
                fstype: "ext4".into(),
                size_bytes: 409_600,
                used_bytes: 286_720,
                avail_bytes: 102_400,
                files: 64,
                files_free: 60,
            }
        );
        // A filesystem that reports more free than total blocks never underflows.
        let odd = FsStats { bfree: 200, ..s };
        assert_eq!(figures(&m, &odd).used_bytes, 0);
    }
}
