//! `statvfs`: the real call, a fixed table for fixtures and benchmarks, and which mounts may
//! be asked directly. The timeout around the others is in [`super::statvfs_pool`].

use std::fmt;
use std::io;
use std::path::{Path, PathBuf};

use super::mountinfo::Mount;

/// The `statvfs` fields `df` uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct FsStats {
    /// Fragment size: the unit of the block counts (`f_frsize`).
    pub frsize: u64,
    pub blocks: u64,
    pub bfree: u64,
    pub bavail: u64,
    pub files: u64,
    pub ffree: u64,
}

/// Something that answers `statvfs`: the kernel, or a fixture in tests.
pub trait Prober: Send + Sync + fmt::Debug + 'static {
    fn statvfs(&self, path: &Path) -> io::Result<FsStats>;

    /// Whether a call for a mount of type `fstype` may block for long: those mounts are asked
    /// on the helper threads with their timeout, the others on the sampling thread. Yes unless
    /// the prober knows better: the kernel's and the fixtures' say no for [`DIRECT_FS_TYPES`].
    fn may_hang(&self, fstype: &str) -> bool {
        let _ = fstype;
        true
    }
}

/// The real `statvfs(2)`.
#[derive(Debug, Clone, Copy, Default)]
pub struct Statvfs;

impl Prober for Statvfs {
    fn statvfs(&self, path: &Path) -> io::Result<FsStats> {
        let s = rustix::fs::statvfs(path)?;
        Ok(FsStats {
            // Linux before 2.6 left f_frsize 0; f_bsize is the unit then.
            frsize: if s.f_frsize > 0 {
                s.f_frsize
            } else {
                s.f_bsize
            },
            blocks: s.f_blocks,
            bfree: s.f_bfree,
            bavail: s.f_bavail,
            files: s.f_files,
            ffree: s.f_ffree,
        })
    }

    fn may_hang(&self, fstype: &str) -> bool {
        !DIRECT_FS_TYPES.contains(&fstype)
    }
}

/// Filesystem types whose `statfs` the kernel answers without waiting on anything that can
/// stay away (a server, a user-space daemon, a cluster lock): `statvfs` of such a mount runs
/// directly on the sampling thread; every other type, unknown ones included, goes to the
/// helper threads with their timeout ([`super::statvfs_pool`]). Type by type (Linux):
///
/// - `ext2`, `ext3`, `ext4`, `xfs`, `btrfs`, `f2fs`, `jfs`, `reiserfs`, `nilfs2`, `hfs`,
///   `hfsplus`: the counts are kept in memory by the mounted superblock (per-CPU counters,
///   space info); a project quota on the mount's root is read from the same local device.
/// - `vfat`, `msdos`, `exfat`, `ntfs`, `ntfs3`: in memory too, after at most one count of the
///   allocation map from the local device (vfat's first `statfs` after mounting).
/// - `zfs`: the dataset's space accounting is in memory (`dmu_objset_space`); the call waits
///   only on the dataset's teardown lock (a `zfs rollback` or `receive` of that dataset, which
///   ends), and reads the pool only for a project quota on the mount's root.
/// - `tmpfs`, `ramfs`, `devtmpfs`, `hugetlbfs`, and the kernel's pseudo filesystems (`proc`,
///   `sysfs`, `devpts`, `cgroup`, `cgroup2`, `mqueue`, `debugfs`, `tracefs`, `securityfs`,
///   `pstore`, `bpf`, `configfs`, `binfmt_misc`, `fusectl`): memory only (`simple_statfs` or alike). Listed so that a
///   mount below them (`/run/…`, `/sys/…`) is not protected for their sake.
/// - `squashfs`, `erofs`, `iso9660`: read-only images whose counts are in the superblock,
///   read once at mount.
///
/// Protected, on purpose: `nfs`, `nfs4`, `cifs`, `smb3`, `9p`, `ceph`, `afs`, `virtiofs`
/// (a server answers); `fuse`, `fuseblk` and every `fuse.*` (`sshfs`, `rclone`, ntfs-3g, the
/// desktop's document portal: a daemon answers, and a stuck one blocks the caller);
/// `gfs2`, `ocfs2` (block devices, but `statfs` takes cluster locks over the network);
/// `overlay` and `ecryptfs` (their `statfs` is that of a layer below, whose type mountinfo
/// does not give: a lower directory may be on NFS); `udf` (may read the medium's free-space
/// map at every call, and an optical drive retries for minutes); `autofs` (a path through it
/// may wait for the automount daemon); and any type not named here.
pub const DIRECT_FS_TYPES: [&str; 38] = [
    "ext2",
    "ext3",
    "ext4",
    "xfs",
    "btrfs",
    "f2fs",
    "jfs",
    "reiserfs",
    "nilfs2",
    "hfs",
    "hfsplus",
    "vfat",
    "msdos",
    "exfat",
    "ntfs",
    "ntfs3",
    "zfs",
    "tmpfs",
    "ramfs",
    "devtmpfs",
    "hugetlbfs",
    "proc",
    "sysfs",
    "devpts",
    "cgroup",
    "cgroup2",
    "mqueue",
    "debugfs",
    "tracefs",
    "securityfs",
    "pstore",
    "bpf",
    "configfs",
    "squashfs",
    "erofs",
    "iso9660",
    "binfmt_misc",
    "fusectl",
];

/// Which of `selected` may be asked on the sampling thread, given the whole mount table
/// `all`: a mount of a type that cannot hang, with no mount that may hang on its path, at its
/// mount point (beneath it) or above it. The kernel walks the path before it asks the
/// filesystem, and a lookup in the directory of a dead NFS server waits for the server.
pub fn direct_mounts(all: &[Mount], selected: &[Mount], prober: &dyn Prober) -> Vec<bool> {
    let risky: Vec<&str> = all
        .iter()
        .filter(|m| prober.may_hang(&m.fstype))
        .map(|m| m.mount_point.as_str())
        .collect();
    selected
        .iter()
        .map(|m| !prober.may_hang(&m.fstype) && !risky.iter().any(|r| on_path(r, &m.mount_point)))
        .collect()
}

/// Whether the walk to `point` goes through mount point `mount`.
fn on_path(mount: &str, point: &str) -> bool {
    point
        .strip_prefix(mount)
        .is_some_and(|rest| rest.is_empty() || rest.starts_with('/') || mount.ends_with('/'))
}

/// Fixed answers, for fixture trees and benchmarks: a table of lines `<mount point> frsize
/// blocks bfree bavail files ffree` (`#` starts a comment; the mount point may hold spaces).
/// A mount point not in the table fails with `ENOENT`.
#[derive(Debug, Clone, Default)]
pub struct FixedStatvfs {
    table: std::collections::HashMap<PathBuf, FsStats>,
}

impl FixedStatvfs {
    pub fn parse(text: &str) -> Result<Self, super::ParseError> {
        let mut table = std::collections::HashMap::new();
        for (index, line) in text.lines().enumerate() {
            if line.trim().is_empty() || line.starts_with('#') {
                continue;
            }
            let fields: Vec<&str> = line.split(' ').collect();
            let Some(split) = fields.len().checked_sub(6).filter(|n| *n > 0) else {
                return Err(super::ParseError::Line {
                    line: index + 1,
                    reason: "expected a mount point and 6 numbers".into(),
                });
            };
            let n = fields[split..]
                .iter()
                .map(|f| super::parse_u64(f))
                .collect::<Result<Vec<u64>, _>>()?;
            let stats = FsStats {
                frsize: n[0],
                blocks: n[1],
                bfree: n[2],
                bavail: n[3],
                files: n[4],
                ffree: n[5],
            };
            table.insert(PathBuf::from(fields[..split].join(" ")), stats);
        }
        Ok(Self { table })
    }
}

impl Prober for FixedStatvfs {
    fn statvfs(&self, path: &Path) -> io::Result<FsStats> {
        self.table
            .get(path)
            .copied()
            .ok_or_else(|| io::Error::from(io::ErrorKind::NotFound))
    }

    /// As the kernel's: a fixture stands for a real machine.
    fn may_hang(&self, fstype: &str) -> bool {
        Statvfs.may_hang(fstype)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::mountinfo::tests::mount;

    #[test]
    fn local_types_directly_network_fuse_stacked_and_unknown_ones_not() {
        for t in [
            "ext4", "xfs", "btrfs", "vfat", "exfat", "ntfs3", "zfs", "tmpfs",
        ] {
            assert!(!Statvfs.may_hang(t), "{t}");
        }
        for t in [
            "nfs",
            "nfs4",
            "cifs",
            "smb3",
            "9p",
            "ceph",
            "fuse",
            "fuseblk",
            "fuse.sshfs",
            "fuse.portal",
            "overlay",
            "ecryptfs",
            "udf",
            "gfs2",
            "autofs",
            "davfs",
            "",
            "EXT4",
            "weirdfs",
        ] {
            assert!(Statvfs.may_hang(t), "{t}");
        }
        assert!(!FixedStatvfs::default().may_hang("ext4"));
    }

    #[test]
    fn a_local_mount_on_the_path_of_one_that_may_hang_is_protected() {
        let all = [
            mount("0:20", "/", "ext4", "/dev/sda1"),
            mount("0:40", "/boot/efi", "autofs", "systemd-1"),
            mount("8:1", "/boot/efi", "vfat", "/dev/sda2"),
            mount("0:50", "/mnt/nas", "nfs4", "nas:/x"),
            mount("8:33", "/mnt/nas/cache", "ext4", "/dev/sdc1"),
            mount("8:34", "/mnt/nasty", "ext4", "/dev/sdc2"),
            mount("0:30", "/run", "tmpfs", "tmpfs"),
        ];
        let direct = direct_mounts(&all, &all, &Statvfs);
        assert_eq!(direct, [true, false, false, false, false, true, true]);

        // A root on NFS (a network-booted Pi): every mount walks through it.
        let nfs_root = [
            mount("0:20", "/", "nfs", "server:/pi"),
            mount("0:30", "/run", "tmpfs", "tmpfs"),
        ];
        assert_eq!(
            direct_mounts(&nfs_root, &nfs_root, &Statvfs),
            [false, false]
        );
        // A prober that tells nothing of its types: everything through the helper threads.
        let fixed = FixedStatvfs::default();
        assert_eq!(direct_mounts(&all[..1], &all[..1], &fixed), [true]);
        #[derive(Debug)]
        struct Opaque;
        impl Prober for Opaque {
            fn statvfs(&self, _: &Path) -> io::Result<FsStats> {
                Ok(FsStats::default())
            }
        }
        assert_eq!(direct_mounts(&all[..1], &all[..1], &Opaque), [false]);
    }
}
