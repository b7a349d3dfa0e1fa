//! `<proc>/self/mountinfo`: parsed (proc(5)), and watched between samples.
//!
//! The mount table changes seldom, and reading it is most of what the filesystem collector
//! cost (the kernel formats every mount, dozens on a desktop). [`MountWatch`] keeps the file
//! open and re-reads it only when it changed: on procfs the kernel flags a change of the
//! mount namespace with `POLLPRI` on the open file (proc(5), "/proc/pid/mountinfo"), so one
//! `poll` with no timeout answers; a fixture tree's plain file is compared by its `statx`
//! fingerprint (device, inode, size, modification and change times) instead.

use std::os::unix::fs::MetadataExt;
use std::path::Path;

use rustix::event::{poll, PollFd, PollFlags, Timespec};

use super::held::{Extent, HeldFile};
use super::{CollectError, ParseError, Roots};

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

/// Reads `<proc>/self/mountinfo`, at most [`MAX_MOUNTINFO_BYTES`].
pub fn read_mountinfo(roots: &Roots) -> Result<Vec<Mount>, CollectError> {
    MountWatch::new(roots).read()
}

/// A plain file's identity and last change, to tell that it changed without reading it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Fingerprint {
    dev: u64,
    ino: u64,
    size: u64,
    mtime: (i64, i64),
    ctime: (i64, i64),
}

impl Fingerprint {
    fn of(path: &Path) -> Option<Self> {
        let m = std::fs::metadata(path).ok()?;
        Some(Self {
            dev: m.dev(),
            ino: m.ino(),
            size: m.size(),
            mtime: (m.mtime(), m.mtime_nsec()),
            ctime: (m.ctime(), m.ctime_nsec()),
        })
    }
}

/// `<proc>/self/mountinfo` kept open, with what tells that it changed since it was read.
#[derive(Debug)]
pub struct MountWatch {
    file: HeldFile,
    /// The open file is procfs's, which answers `poll` with `POLLPRI` after a change.
    pollable: bool,
    /// A plain file's fingerprint when it was last read.
    fingerprint: Option<Fingerprint>,
    /// Whether the last read succeeded (otherwise the next [`Self::changed`] says yes).
    current: bool,
}

impl MountWatch {
    pub fn new(roots: &Roots) -> Self {
        Self {
            file: HeldFile::new(
                roots.proc.join("self/mountinfo"),
                Extent::Records,
                4096,
                MAX_MOUNTINFO_BYTES as usize,
            )
            .truncating(),
            pollable: false,
            fingerprint: None,
            current: false,
        }
    }

    pub fn path(&self) -> &Path {
        self.file.path()
    }

    /// Whether the mount table may have changed since the last [`Self::read`]: one `poll` on
    /// procfs, one `statx` of the path otherwise. Yes when in doubt.
    pub fn changed(&mut self) -> bool {
        if !self.current {
            return true;
        }
        if self.pollable {
            let Some(file) = self.file.file() else {
                return true;
            };
            let mut fds = [PollFd::new(file, PollFlags::PRI)];
            let now = Timespec {
                tv_sec: 0,
                tv_nsec: 0,
            };
            return match poll(&mut fds, Some(&now)) {
                Ok(_) => fds[0]
                    .revents()
                    .intersects(PollFlags::PRI | PollFlags::ERR | PollFlags::NVAL),
                Err(_) => true,
            };
        }
        Fingerprint::of(self.path()) != self.fingerprint
    }

    /// Reads and parses the file from its start (a plain file is opened again by its path,
    /// in case it was replaced).
    pub fn read(&mut self) -> Result<Vec<Mount>, CollectError> {
        self.current = false;
        if !self.pollable {
            self.fingerprint = Fingerprint::of(self.path());
            self.file.close();
        }
        let bytes = self.file.read_bytes()?;
        let text = String::from_utf8_lossy(bytes);
        let mounts = parse_mountinfo(&text).map_err(|source| CollectError::Parse {
            path: self.file.path().to_owned(),
            source,
        })?;
        self.pollable = self.file.file().is_some_and(|f| {
            rustix::fs::fstatfs(f).is_ok_and(|s| s.f_type == rustix::fs::PROC_SUPER_MAGIC)
        });
        self.current = true;
        Ok(mounts)
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    pub(crate) fn mount(dev: &str, point: &str, fstype: &str, source: &str) -> Mount {
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
}
