//! The entries of a `/proc`, for the top processes: the directory stays open between samples
//! and is listed again from its start (`lseek` to 0, as `rewinddir` does; procfs lists the
//! processes of that moment) with `getdents64` into a buffer kept too. A few hundred
//! processes take one call and the empty one that ends the list, where opening the directory
//! each sample took seven system calls (`open`, `fcntl`, `openat`, four `getdents64` into a
//! growing buffer, two `close`s).

use std::mem::MaybeUninit;
use std::os::fd::OwnedFd;
use std::path::{Path, PathBuf};

use rustix::fs::{Mode, OFlags, RawDir, SeekFrom};
use rustix::io::Errno;

/// The `getdents64` buffer: a `/proc` entry takes 24–32 bytes, so ~500 of them a call.
const DIRENT_BUF: usize = 16 * 1024;
/// A listed name's bytes kept (a pid has at most 10 digits).
pub(crate) const NAME_MAX: usize = 16;

/// `<name>/<leaf>` under the directory `dir` (a process's file under `/proc`), opened
/// read-only to be read again with `pread`. The path is built on the stack; `EINVAL` when
/// `name` and `leaf` do not fit it (a listed pid's name always does).
pub(crate) fn open_under(dir: &OwnedFd, name: &[u8], leaf: &[u8]) -> Result<OwnedFd, Errno> {
    let mut rel = [0u8; 32];
    let end = name
        .len()
        .checked_add(1 + leaf.len())
        .filter(|l| *l <= rel.len())
        .ok_or(Errno::INVAL)?;
    rel[..name.len()].copy_from_slice(name);
    rel[name.len()] = b'/';
    rel[name.len() + 1..end].copy_from_slice(leaf);
    let rel = std::str::from_utf8(&rel[..end]).map_err(|_| Errno::INVAL)?;
    rustix::fs::openat(dir, rel, OFlags::RDONLY | OFlags::CLOEXEC, Mode::empty())
}

/// One numeric entry: its pid and its name as listed.
#[derive(Debug, Clone, Copy)]
pub(crate) struct PidEntry {
    pub pid: u32,
    name: [u8; NAME_MAX],
    len: u8,
}

impl PidEntry {
    pub fn name(&self) -> &[u8] {
        &self.name[..usize::from(self.len)]
    }
}

/// `<proc>` held open, and what its last listing found.
#[derive(Debug, Default)]
pub(crate) struct ProcDir {
    root: PathBuf,
    fd: Option<OwnedFd>,
    /// A listing failed part-way: open the directory afresh next time.
    reopen: bool,
    buf: Vec<MaybeUninit<u8>>,
    /// The numeric entries of the last listing, in directory order, less those
    /// [`ProcDir::forget`] removed since.
    pub pids: Vec<PidEntry>,
    /// The last listing reached the end of the directory (no error, not cut at `max`).
    complete: bool,
    /// The directory held is a procfs (not a fixture tree).
    procfs: bool,
}

impl ProcDir {
    /// Lists `root` again: its first `max` entries (numeric or not, as a `readdir` loop with a
    /// limit would) into [`ProcDir::pids`]. `Err` only when `root` cannot be opened; an error
    /// part-way ends the list there, as `readdir` does.
    pub fn list(
        &mut self,
        root: &Path,
        max: usize,
        number: impl Fn(&[u8]) -> Option<u32>,
    ) -> Result<(), Errno> {
        self.pids.clear();
        self.complete = false;
        if self.root != root || self.reopen {
            self.fd = None;
            self.reopen = false;
            root.clone_into(&mut self.root);
        }
        let rewound = self
            .fd
            .as_ref()
            .is_some_and(|fd| rustix::fs::seek(fd, SeekFrom::Start(0)).is_ok());
        if !rewound {
            self.fd = None;
            let fd = rustix::fs::open(
                root,
                OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC,
                Mode::empty(),
            )?;
            self.procfs =
                rustix::fs::fstatfs(&fd).is_ok_and(|s| s.f_type == rustix::fs::PROC_SUPER_MAGIC);
            self.fd = Some(fd);
        }
        let Some(fd) = self.fd.as_ref() else {
            return Err(Errno::BADF);
        };
        if self.buf.len() < DIRENT_BUF {
            self.buf.resize(DIRENT_BUF, MaybeUninit::uninit());
        }
        let mut dir = RawDir::new(fd, &mut self.buf);
        for _ in 0..max {
            match dir.next() {
                None => {
                    self.complete = true;
                    break;
                }
                Some(Err(_)) => {
                    self.reopen = true;
                    break;
                }
                Some(Ok(entry)) => {
                    let file = entry.file_name().to_bytes();
                    let Some(pid) = number(file) else { continue };
                    let len = file.len().min(NAME_MAX);
                    let mut name = [0u8; NAME_MAX];
                    name[..len].copy_from_slice(&file[..len]);
                    self.pids.push(PidEntry {
                        pid,
                        name,
                        len: len as u8,
                    });
                }
            }
        }
        Ok(())
    }

    /// Whether [`ProcDir::pids`] holds every numeric entry of `root` at its last listing.
    pub fn complete(&self, root: &Path) -> bool {
        self.complete && self.root == root && self.fd.is_some()
    }

    /// Whether the directory held is a procfs, where a `stat` file held open fails once its
    /// process has exited (a fixture's file can still be read after it was removed).
    pub fn procfs(&self) -> bool {
        self.procfs
    }

    /// Removes the pids in `gone` (sorted here) from [`ProcDir::pids`]: processes that exited.
    pub fn forget(&mut self, gone: &mut [u32]) {
        if gone.is_empty() {
            return;
        }
        gone.sort_unstable();
        self.pids.retain(|e| gone.binary_search(&e.pid).is_err());
    }

    /// The directory listed last (`None` before the first listing or after a failed open).
    pub fn fd(&self) -> Option<&OwnedFd> {
        self.fd.as_ref()
    }

    /// The directory held open, if any (for tests).
    #[cfg(test)]
    pub fn held_fd(&self) -> Option<std::os::fd::RawFd> {
        use std::os::fd::AsRawFd;
        self.fd.as_ref().map(AsRawFd::as_raw_fd)
    }
}
