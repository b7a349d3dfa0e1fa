//! The job event log: `events.log` in the data directory, one [`daemon_kit::record`] line per event.
//!
//! `publisher job` appends to it directly, so events are stored whether or not the daemon is
//! running; the daemon reads it to serve `/events` (and to publish them). Writers and the
//! compaction that bounds the file take `events.lock` with `flock`, so concurrent jobs and the
//! daemon never interleave or lose a line; readers take it shared through a read-only
//! descriptor. Files a job run as root creates here go to the data directory's owner
//! ([`crate::owner`]), so `sudo publisher job` cannot lock the user's daemon out.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

use broker::JobEvent;

use daemon_kit::record;

use crate::owner;

#[derive(Debug, thiserror::Error)]
pub enum EventLogError {
    #[error("event log {}: {source}", path.display())]
    Io { path: PathBuf, source: io::Error },
    #[error(
        "event log {}: not writable here, it belongs to uid {uid} (left by `sudo publisher job` \
         of an older version?); give it to the daemon's user with chown",
        path.display()
    )]
    Foreign { path: PathBuf, uid: u32 },
    #[error("cannot serialize event: {0}")]
    Serialize(#[from] serde_json::Error),
}

/// What reading the log found.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct EventRead {
    /// Oldest first.
    pub events: Vec<JobEvent>,
    /// Lines that were torn, corrupt, or not an event this version understands.
    pub skipped: usize,
}

#[derive(Debug, Clone)]
pub struct EventLog {
    dir: PathBuf,
}

impl EventLog {
    pub fn new(data_dir: &Path) -> Self {
        Self {
            dir: data_dir.to_owned(),
        }
    }

    pub fn path(&self) -> PathBuf {
        self.dir.join("events.log")
    }

    fn io_err(path: &Path) -> impl FnOnce(io::Error) -> EventLogError + '_ {
        move |source| EventLogError::Io {
            path: path.to_owned(),
            source,
        }
    }

    /// A write that failed: `Permission denied` on a file someone else owns says whose it is.
    fn write_err(path: &Path, source: io::Error) -> EventLogError {
        if source.kind() == io::ErrorKind::PermissionDenied {
            if let Ok(meta) = fs::metadata(path) {
                return EventLogError::Foreign {
                    path: path.to_owned(),
                    uid: meta.uid(),
                };
            }
        }
        EventLogError::Io {
            path: path.to_owned(),
            source,
        }
    }

    /// Takes the log's lock (exclusive for writers); released when the file is dropped.
    /// `flock` needs no write access, so the lock file is opened read-only and any user who
    /// can read it can lock it. `None`: a reader found no lock file, so nothing was ever
    /// written and there is nothing to wait for.
    fn lock(&self, exclusive: bool) -> Result<Option<File>, EventLogError> {
        let path = self.dir.join("events.lock");
        let file = match OpenOptions::new()
            .read(true)
            .custom_flags(libc::O_NOFOLLOW)
            .open(&path)
        {
            Ok(file) => file,
            Err(e) if e.kind() == io::ErrorKind::NotFound && !exclusive => return Ok(None),
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                owner::create_dir_all(&self.dir).map_err(Self::io_err(&self.dir))?;
                owner::open_or_create(&self.dir, &path, OpenOptions::new().write(true))
                    .map_err(|e| Self::write_err(&path, e))?
            }
            Err(source) => return Err(EventLogError::Io { path, source }),
        };
        if exclusive {
            file.lock().map_err(Self::io_err(&path))?;
        } else {
            file.lock_shared().map_err(Self::io_err(&path))?;
        }
        Ok(Some(file))
    }

    /// Appends one event durably.
    pub fn append(&self, event: &JobEvent) -> Result<(), EventLogError> {
        let line = record::encode(&serde_json::to_vec(event)?);
        let _lock = self.lock(true)?;
        let path = self.path();
        let mut file = owner::open_or_create(
            &self.dir,
            &path,
            OpenOptions::new().append(true).read(true).mode(0o600),
        )
        .map_err(|e| Self::write_err(&path, e))?;
        let before = cut_torn_tail(&file, &path).map_err(Self::io_err(&path))?;
        if let Err(source) = file.write_all(&line).and_then(|_| file.sync_data()) {
            // Leave no torn line behind (a full disk writes part of it).
            let _ = file.set_len(before);
            return Err(EventLogError::Io { path, source });
        }
        Ok(())
    }

    /// Reads every stored event, oldest first.
    pub fn read(&self) -> Result<EventRead, EventLogError> {
        let path = self.path();
        let bytes = {
            let _lock = self.lock(false)?;
            match fs::read(&path) {
                Ok(bytes) => bytes,
                Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(EventRead::default()),
                Err(source) => return Err(EventLogError::Io { path, source }),
            }
        };
        let found = record::scan(&bytes);
        let mut read = EventRead {
            skipped: found.corrupt,
            ..EventRead::default()
        };
        if found.valid_len < bytes.len() as u64 {
            read.skipped += 1;
        }
        for (_, json) in found.records {
            match serde_json::from_slice(json) {
                Ok(event) => read.events.push(event),
                Err(_) => read.skipped += 1,
            }
        }
        Ok(read)
    }

    /// Keeps only the newest `keep` events once the log holds more than twice that, by
    /// writing them to a temporary file and renaming it over the log.
    pub fn compact(&self, keep: usize) -> Result<bool, EventLogError> {
        let _lock = self.lock(true)?;
        let path = self.path();
        let bytes = match fs::read(&path) {
            Ok(bytes) => bytes,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(false),
            Err(source) => return Err(EventLogError::Io { path, source }),
        };
        let found = record::scan(&bytes);
        if found.records.len() <= keep.saturating_mul(2) {
            return Ok(false);
        }
        let tmp = self.dir.join("events.log.tmp");
        let mut out = Vec::new();
        for (_, json) in &found.records[found.records.len() - keep..] {
            out.extend(record::encode(json));
        }
        let write = || -> io::Result<()> {
            // A leftover of a compaction that crashed is replaced, never appended to.
            match fs::remove_file(&tmp) {
                Err(e) if e.kind() != io::ErrorKind::NotFound => return Err(e),
                _ => {}
            }
            let mut file =
                owner::open_or_create(&self.dir, &tmp, OpenOptions::new().write(true).mode(0o600))?;
            file.write_all(&out)?;
            file.sync_all()?;
            fs::rename(&tmp, &path)?;
            File::open(&self.dir)?.sync_all()
        };
        write().map_err(Self::io_err(&path))?;
        Ok(true)
    }
}

/// Cuts a torn last line off the log (a writer killed mid-append, a power cut that left
/// zeros), as the ring does at open, so the next record starts on a line of its own instead
/// of being glued to the torn bytes and lost with them. Only a file that does not end in a
/// newline is scanned. Returns the clean length. Call it under the exclusive lock.
fn cut_torn_tail(file: &File, path: &Path) -> io::Result<u64> {
    use std::os::unix::fs::FileExt;
    let len = file.metadata()?.len();
    let mut last = [0u8; 1];
    if len == 0 || (file.read_exact_at(&mut last, len - 1).is_ok() && last[0] == b'\n') {
        return Ok(len);
    }
    let mut bytes = Vec::new();
    io::Read::read_to_end(&mut &*file, &mut bytes)?;
    let valid = record::scan(&bytes).valid_len;
    tracing::warn!(
        log = %path.display(),
        cut_bytes = len - valid,
        "event log had a torn last line; cutting it off"
    );
    file.set_len(valid)?;
    Ok(valid)
}

#[cfg(test)]
mod tests {
    use super::*;
    use broker::{JobEnd, JobStart};
    use std::os::unix::fs::PermissionsExt;

    fn start(run: &str) -> JobEvent {
        JobEvent::JobStart(JobStart {
            v: 1,
            run_id: run.into(),
            name: "simA".into(),
            host: "tower".into(),
            start_ts_ms: 1,
            command: vec!["sh".into(), "-c".into(), "echo 'a b'".into()],
        })
    }

    #[test]
    fn append_read_and_torn_tail() {
        let dir = tempfile::tempdir().unwrap();
        let log = EventLog::new(dir.path());
        assert_eq!(log.read().unwrap(), EventRead::default());
        log.append(&start("r1")).unwrap();
        log.append(&JobEvent::JobEnd(JobEnd {
            run_id: "r1".into(),
            exit_code: Some(3),
            ..JobEnd::default()
        }))
        .unwrap();
        let read = log.read().unwrap();
        assert_eq!(read.events.len(), 2);
        assert_eq!(read.events[0], start("r1"));
        assert_eq!(read.skipped, 0);
        // Commands and output tails are the owner's business only.
        let mode = fs::metadata(log.path()).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
        // A torn line at the end (a job killed mid-write) is skipped, not fatal.
        let mut f = OpenOptions::new().append(true).open(log.path()).unwrap();
        f.write_all(b"1234abcd {\"type\":\"job_st").unwrap();
        let read = log.read().unwrap();
        assert_eq!(read.events.len(), 2);
        assert_eq!(read.skipped, 1);
    }

    #[test]
    fn append_after_a_torn_tail_cuts_it_and_keeps_the_new_event() {
        let dir = tempfile::tempdir().unwrap();
        let log = EventLog::new(dir.path());
        log.append(&start("r1")).unwrap();
        log.append(&start("r2")).unwrap();
        let clean = fs::metadata(log.path()).unwrap().len();
        // A job killed (or a power cut) in the middle of its append: a line with no newline.
        let torn = record::encode(&serde_json::to_vec(&start("torn")).unwrap());
        let mut f = OpenOptions::new().append(true).open(log.path()).unwrap();
        f.write_all(&torn[..torn.len() / 2]).unwrap();
        drop(f);
        log.append(&start("r3")).unwrap();
        let read = log.read().unwrap();
        let ids: Vec<_> = read.events.iter().map(|e| e.run_id().to_owned()).collect();
        assert_eq!(ids, ["r1", "r2", "r3"]);
        assert_eq!(read.skipped, 0);
        let line = record::encode(&serde_json::to_vec(&start("r3")).unwrap());
        assert_eq!(
            fs::metadata(log.path()).unwrap().len(),
            clean + line.len() as u64,
            "the torn bytes are gone"
        );
        // A tail of zeros (what some filesystems leave after a power cut) is cut too.
        let mut f = OpenOptions::new().append(true).open(log.path()).unwrap();
        f.write_all(&[0u8; 100]).unwrap();
        drop(f);
        log.append(&start("r4")).unwrap();
        assert_eq!(log.read().unwrap().events.len(), 4);
    }

    #[test]
    fn concurrent_writers_never_interleave() {
        let dir = tempfile::tempdir().unwrap();
        let threads: Vec<_> = (0..8)
            .map(|t| {
                let log = EventLog::new(dir.path());
                std::thread::spawn(move || {
                    for i in 0..25 {
                        log.append(&start(&format!("{t}-{i}"))).unwrap();
                    }
                })
            })
            .collect();
        for t in threads {
            t.join().unwrap();
        }
        let read = EventLog::new(dir.path()).read().unwrap();
        assert_eq!(read.events.len(), 200);
        assert_eq!(read.skipped, 0);
    }

    #[test]
    fn compaction_keeps_the_newest() {
        let dir = tempfile::tempdir().unwrap();
        let log = EventLog::new(dir.path());
        for i in 0..10 {
            log.append(&start(&i.to_string())).unwrap();
        }
        assert!(!log.compact(5).unwrap(), "10 ≤ 2 × 5: nothing to do");
        log.append(&start("10")).unwrap();
        assert!(log.compact(5).unwrap());
        let read = log.read().unwrap();
        let ids: Vec<_> = read.events.iter().map(|e| e.run_id().to_owned()).collect();
        assert_eq!(ids, ["6", "7", "8", "9", "10"]);
        assert!(!dir.path().join("events.log.tmp").exists());
    }
}
