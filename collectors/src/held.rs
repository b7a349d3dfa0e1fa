//! Files kept open between samples and re-read from their start with `pread`, into a buffer
//! that is reused: one system call a sample for a file the kernel formats in one go, instead
//! of `open` + `statx` + two `read`s + `close` and a fresh `String` each time.
//!
//! procfs and sysfs regenerate a file's text when it is read from offset 0 (`seq_file`
//! resets its iterator there), so the same descriptor gives fresh figures every sample. When a
//! device goes away its sysfs attributes answer `ENODEV`; a read that fails therefore closes
//! the file and opens the path again once. A file on any other filesystem (a fixture tree,
//! `--proc-root` on a copy) can be replaced under its name, so before each read its path is
//! checked to still name the file held (one `stat`, never for procfs or sysfs). Discovery (which sensors, which mounts) is the callers' business: see
//! [`RescanClock`].

use std::fs::File;
use std::io;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use super::{CollectError, ParseError};

/// How the kernel hands a file over, which decides when a read is the last one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Extent {
    /// Formatted whole by one `show` (`single_open`: `stat`, `meminfo`, `loadavg`, `uptime`;
    /// `sys/kernel/*`; every sysfs attribute): a read shorter than the buffer is the end.
    Whole,
    /// A `seq_file` of records (`diskstats`, `net/dev`, `mountinfo`): the kernel stops a read
    /// at a page's worth of records, so only a read of 0 bytes is the end.
    Records,
}

/// What happens to a file longer than its limit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Overflow {
    /// The read fails, naming the file.
    Fail,
    /// The first `limit` bytes are used (mountinfo: a host with tens of thousands of mounts).
    Truncate,
}

/// One file kept open, with its read buffer.
#[derive(Debug)]
pub(crate) struct HeldFile {
    path: PathBuf,
    file: Option<File>,
    /// Always initialized up to its length; the text is `buf[..len]`.
    buf: Vec<u8>,
    len: usize,
    extent: Extent,
    limit: usize,
    overflow: Overflow,
    /// The open file's (device, inode) when it is not on procfs or sysfs (which never replace
    /// a file under its name): what its path must still name.
    plain: Option<(u64, u64)>,
}

/// sysfs's `f_type` (`SYSFS_MAGIC` in linux/magic.h).
const SYSFS_MAGIC: rustix::fs::FsWord = 0x6265_6572;

/// The (device, inode) of `file` unless the kernel generates it (procfs, sysfs).
fn plain(file: &File) -> Option<(u64, u64)> {
    use std::os::unix::fs::MetadataExt;
    let generated = rustix::fs::fstatfs(file)
        .is_ok_and(|s| s.f_type == rustix::fs::PROC_SUPER_MAGIC || s.f_type == SYSFS_MAGIC);
    if generated {
        return None;
    }
    // Unknown: checked every read, so a replaced file is never missed.
    Some(file.metadata().map_or((0, 0), |m| (m.dev(), m.ino())))
}

/// Whether `path` no longer names the file `(dev, ino)` (removed, or another renamed over it).
fn replaced(path: &Path, (dev, ino): (u64, u64)) -> bool {
    use std::os::unix::fs::MetadataExt;
    std::fs::metadata(path).map_or(true, |m| m.ino() != ino || m.dev() != dev)
}

impl HeldFile {
    pub fn new(path: PathBuf, extent: Extent, initial: usize, limit: usize) -> Self {
        Self {
            path,
            file: None,
            buf: vec![0; initial.clamp(16, limit.max(16))],
            len: 0,
            extent,
            limit,
            overflow: Overflow::Fail,
            plain: None,
        }
    }

    /// A `/proc` file of up to 4 MiB (a `stat` of thousands of CPUs is a few hundred KiB).
    pub fn proc(path: PathBuf, extent: Extent) -> Self {
        Self::new(path, extent, 4096, 4 << 20)
    }

    /// A sysfs attribute: at most a page by the sysfs rules; 64 KiB allowed.
    pub fn attribute(path: PathBuf) -> Self {
        Self::new(path, Extent::Whole, 64, 64 << 10)
    }

    pub fn truncating(mut self) -> Self {
        self.overflow = Overflow::Truncate;
        self
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The open file, if any (for `poll` and `fstatfs`).
    pub fn file(&self) -> Option<&File> {
        self.file.as_ref()
    }

    /// Closes the file: the next read opens the path again.
    pub fn close(&mut self) {
        self.file = None;
    }

    /// The file's whole content, read from its start. A file held from an earlier sample
    /// whose read fails is opened again once by its path.
    pub fn read_bytes(&mut self) -> Result<&[u8], CollectError> {
        if let Some(id) = self.plain.filter(|_| self.file.is_some()) {
            if replaced(&self.path, id) {
                self.file = None;
            }
        }
        if self.file.is_some() && self.fill().is_err() {
            self.file = None;
        }
        if self.file.is_none() {
            let opened = File::open(&self.path).map_err(|source| self.error(source))?;
            self.plain = plain(&opened);
            self.file = Some(opened);
            if let Err(source) = self.fill() {
                // Kept open: a device that answers EIO now may answer next time.
                return Err(self.error(source));
            }
        }
        Ok(&self.buf[..self.len])
    }

    /// Reads the file and parses its text, naming the file in either error.
    pub fn parse<T>(
        &mut self,
        parse: impl FnOnce(&str) -> Result<T, ParseError>,
    ) -> Result<T, CollectError> {
        let parsed = parse(self.read()?);
        parsed.map_err(|source| CollectError::Parse {
            path: self.path.clone(),
            source,
        })
    }

    /// [`Self::read_bytes`] as text; not UTF-8 is a read error, as `read_to_string` had it.
    pub fn read(&mut self) -> Result<&str, CollectError> {
        self.read_bytes()?;
        match std::str::from_utf8(&self.buf[..self.len]) {
            Ok(text) => Ok(text),
            Err(_) => Err(CollectError::Read {
                path: self.path.clone(),
                source: io::Error::new(
                    io::ErrorKind::InvalidData,
                    "stream did not contain valid UTF-8",
                ),
            }),
        }
    }

    fn error(&self, source: io::Error) -> CollectError {
        CollectError::Read {
            path: self.path.clone(),
            source,
        }
    }

    /// Reads the open file from offset 0 into the buffer, growing it up to the limit.
    fn fill(&mut self) -> io::Result<()> {
        let Some(file) = self.file.as_ref() else {
            return Err(io::Error::from(io::ErrorKind::NotFound));
        };
        self.len = 0;
        loop {
            if self.len == self.buf.len() {
                if self.buf.len() >= self.limit {
                    return match self.overflow {
                        Overflow::Truncate => Ok(()),
                        Overflow::Fail => Err(io::Error::other(format!(
                            "larger than {} bytes",
                            self.limit
                        ))),
                    };
                }
                let grown = (self.buf.len() * 2).min(self.limit);
                self.buf.resize(grown, 0);
            }
            let space = self.buf.len() - self.len;
            let n = match file.read_at(&mut self.buf[self.len..], self.len as u64) {
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(e),
            };
            self.len += n;
            if n == 0 || (self.extent == Extent::Whole && n < space) {
                return Ok(());
            }
        }
    }
}

/// When discovery runs again: every `every` (new hwmon chips, a Pi's power files), and at
/// once when a collector asks for it (a sensor that read before fails now).
#[derive(Debug, Clone)]
pub(crate) struct RescanClock {
    every: Duration,
    last: Option<Instant>,
}

impl RescanClock {
    pub fn new(every: Duration) -> Self {
        Self { every, last: None }
    }

    pub fn set_every(&mut self, every: Duration) {
        self.every = every;
    }

    /// Whether discovery is due at `now` (never run, asked for, or `every` has passed).
    pub fn due(&self, now: Instant) -> bool {
        self.last
            .is_none_or(|last| now.saturating_duration_since(last) >= self.every)
    }

    pub fn done(&mut self, now: Instant) {
        self.last = Some(now);
    }

    /// The next [`Self::due`] answers yes.
    pub fn expire(&mut self) {
        self.last = None;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rereads_grows_and_opens_a_replaced_file_again() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("f");
        std::fs::write(&path, "first\n").unwrap();
        let mut f = HeldFile::new(path.clone(), Extent::Records, 16, 1024);
        assert_eq!(f.read().unwrap(), "first\n");
        // Rewritten in place (same inode): the held file sees it.
        let long = "x".repeat(100);
        std::fs::write(&path, &long).unwrap();
        assert_eq!(f.read().unwrap(), long);
        // Replaced by another file (not procfs or sysfs): the next read opens the new one.
        std::fs::write(dir.path().join("g"), "second\n").unwrap();
        std::fs::rename(dir.path().join("g"), &path).unwrap();
        assert_eq!(f.read().unwrap(), "second\n");
        // Removed: the read fails, naming the file.
        std::fs::remove_file(&path).unwrap();
        assert!(f.read().unwrap_err().to_string().contains("/f"));
    }

    #[test]
    fn limits_missing_files_and_bad_text_name_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("big");
        std::fs::write(&path, vec![b'a'; 100]).unwrap();
        let mut f = HeldFile::new(path.clone(), Extent::Whole, 16, 64);
        let e = f.read().unwrap_err().to_string();
        assert!(
            e.contains("big") && e.contains("larger than 64 bytes"),
            "{e}"
        );
        let mut t = HeldFile::new(path.clone(), Extent::Whole, 16, 64).truncating();
        assert_eq!(t.read().unwrap().len(), 64);
        std::fs::write(&path, [0xff, 0xfe]).unwrap();
        assert!(f.read().unwrap_err().to_string().contains("UTF-8"));
        let mut gone = HeldFile::attribute(dir.path().join("nothing"));
        assert!(gone.read().unwrap_err().to_string().contains("nothing"));
    }

    #[test]
    fn rescan_clock() {
        let t0 = Instant::now();
        let mut c = RescanClock::new(Duration::from_secs(300));
        assert!(c.due(t0));
        c.done(t0);
        assert!(!c.due(t0 + Duration::from_secs(299)));
        assert!(c.due(t0 + Duration::from_secs(300)));
        c.expire();
        assert!(c.due(t0));
    }
}
