//! The raw tier's files (issue 22, target 3): one append-only file a UTC day, `<day>.raw`,
//! every host's samples of that day as framed records, each byte written once.
//!
//! In SQLite, one host's 1.2 MB of raw rows a day cost ~6.6 MB of writes: every row twice
//! (WAL, checkpoint) and at every 5-minute commit the B-tree's right edge, its parent and the
//! freelist again. Here they cost 1.4 MB (`write_bytes` 2.6: a page partly written at one sync
//! is written again at the next; `cargo bench -p pi-subscriber --bench raw_log`). One file a
//! day for every host, not one a host: ten hosts' syncs share their last page (`write_bytes`
//! 1.5 MB a host).
//!
//! **Commit protocol.** The log is durable *before* the SQLite transaction that depends on
//! it, and SQLite holds the commit record:
//! 1. [`RawLog::append`] buffers records (a large buffer goes to the file early, still
//!    uncommitted);
//! 2. [`RawLog::sync`] writes what is buffered, `fdatasync`s each day written (and the
//!    directory when a file is new), and returns every day's length;
//! 3. the caller stores those lengths in its transaction and commits it, then calls
//!    [`RawLog::committed`]; if the transaction failed, [`RawLog::rollback`] cuts the files
//!    back.
//!
//! **A commit that changes nothing else in SQLite** (most of them: samples alone between the
//! hourly work) does not store lengths: [`RawLog::seal`] ends each changed day with a seal
//! record, [`RawLog::sync`] makes it durable, and the (empty) SQLite transaction writes
//! nothing. A length row rewritten at every 5-minute commit cost one host ~1.3 MB of WAL
//! and checkpoint writes a day; a seal costs 9 bytes in a page the sync writes anyway.
//! Only a day whose length SQLite already holds is sealed, so a forgotten day's file left
//! behind by a cut is never read back ([`RawLog::can_seal`]).
//!
//! [`RawLog::open`] takes the lengths the last committed transaction stored, and each day's
//! records on to its last seal. Bytes past both were written by a transaction that never
//! committed: cut. A record inside them that fails its CRC (storage that lost a synced write)
//! ends that day there: reported, never misread.
//!
//! Every change is an append: a row stored again whole is a later record of its key
//! ([`RawLog::replace`]), deleted rows a hide record ([`RawLog::hide`]: a key range, of one
//! host or all), so a day's file is only ever written at its end, and dropped whole
//! ([`RawLog::drop_day`]). A record is framed with its length and CRC (`record.rs`); the
//! index in memory is a sorted `Vec` of 16-byte entries a record (`index.rs`).

use std::collections::BTreeMap;
use std::io;
use std::path::{Path, PathBuf};

mod commit;
mod day;
mod index;
mod record;

use day::{day_mut, Day};
use index::{entry, Entry};
#[cfg(test)]
use record::frame;
pub use record::{
    decode, encode, encode_hide, encode_seal, Hide, RawRecord, Record, HEADER, MAX_BODY,
};

/// Buffered records beyond this go to the file before [`RawLog::sync`] (uncommitted still).
const SPILL: usize = 1024 * 1024;
/// What the kernel writes at a time: a sealed commit writes whole ones.
const PAGE: u64 = 4096;

/// A file of the log, named.
#[derive(Debug, thiserror::Error)]
#[error("raw log {path}: {source}")]
pub struct RawLogError {
    pub path: PathBuf,
    #[source]
    pub source: io::Error,
}

/// The store's functions answer `rusqlite::Result`: a day file's error travels in it, named.
impl From<RawLogError> for rusqlite::Error {
    fn from(e: RawLogError) -> rusqlite::Error {
        rusqlite::Error::ToSqlConversionFailure(Box::new(e))
    }
}

/// What [`RawLog::open`] cut or found missing.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Recovery {
    /// Bytes past the committed lengths (a transaction that never committed), cut.
    pub uncommitted_bytes: u64,
    /// Committed bytes that were missing or failed their CRC, cut: samples lost.
    pub lost_bytes: u64,
    /// Days whose committed file was missing, or was cut short.
    pub damaged_days: Vec<i64>,
}

/// The raw tier's day files under one directory, and their indexes in memory.
#[derive(Debug)]
pub struct RawLog {
    /// `None`: a log kept in memory.
    dir: Option<PathBuf>,
    days: BTreeMap<i64, Day>,
    /// Days forgotten in the open transaction: unlinked once it commits, back if it fails.
    doomed: Vec<(i64, Day)>,
    /// Bytes handed to `write` since open (each record's once).
    pub bytes_written: u64,
}

pub(super) fn err(path: &Path) -> impl FnOnce(io::Error) -> RawLogError + '_ {
    move |source| RawLogError {
        path: path.to_path_buf(),
        source,
    }
}

impl RawLog {
    /// Opens the log under `dir` (made if missing) at the lengths the last committed
    /// transaction stored, by day. A file of a day not named there is an uncommitted one: gone.
    pub fn open(
        dir: &Path,
        committed: &BTreeMap<i64, u64>,
    ) -> Result<(RawLog, Recovery), RawLogError> {
        std::fs::create_dir_all(dir).map_err(err(dir))?;
        let mut rec = Recovery::default();
        let mut days = BTreeMap::new();
        for entry in std::fs::read_dir(dir).map_err(err(dir))? {
            let path = entry.map_err(err(dir))?.path();
            let day = path
                .file_name()
                .and_then(|n| n.to_str())
                .and_then(|n| n.strip_suffix(".raw"))
                .and_then(|d| d.parse::<i64>().ok());
            match day {
                Some(day) if committed.contains_key(&day) => {
                    let d = Day::open(path.clone(), committed[&day], &mut rec, day)
                        .map_err(err(&path))?;
                    days.insert(day, d);
                }
                Some(_) => {
                    rec.uncommitted_bytes += path.metadata().map_or(0, |m| m.len());
                    std::fs::remove_file(&path).map_err(err(&path))?;
                }
                None => {}
            }
        }
        for (&day, &len) in committed {
            if !days.contains_key(&day) && len > 0 {
                rec.lost_bytes += len;
                rec.damaged_days.push(day);
            }
        }
        rec.damaged_days.sort_unstable();
        let log = RawLog {
            dir: Some(dir.to_path_buf()),
            days,
            doomed: Vec::new(),
            bytes_written: 0,
        };
        Ok((log, rec))
    }

    /// A log kept in memory only (a history that is not persisted, tests): the same records,
    /// commits and rollbacks, no file.
    pub fn in_memory() -> RawLog {
        RawLog {
            dir: None,
            days: BTreeMap::new(),
            doomed: Vec::new(),
            bytes_written: 0,
        }
    }

    /// Adds `rec` to its day; `Ok(false)` if a record of that key is there already.
    pub fn append(&mut self, day: i64, rec: &RawRecord) -> Result<bool, RawLogError> {
        if self
            .days
            .get(&day)
            .is_some_and(|d| d.index.contains(rec.key))
        {
            return Ok(false);
        }
        self.push(day, rec).map(|_| true)
    }

    /// Adds `rec` to its day in place of any record of its key (a row stored again, whole).
    pub fn replace(&mut self, day: i64, rec: &RawRecord) -> Result<(), RawLogError> {
        self.push(day, rec)
    }

    /// Hides the samples of `day` that `h` covers (deleted rows): how many. A day not held
    /// has none; a hide that covers none is not written.
    pub fn hide(&mut self, day: i64, h: &Hide) -> Result<usize, RawLogError> {
        let Some(d) = self.days.get_mut(&day) else {
            return Ok(0);
        };
        let gone = d.index.hide(h);
        if gone == 0 {
            return Ok(0);
        }
        encode_hide(h, &mut d.pending);
        if d.pending.len() >= SPILL {
            d.spill(&mut self.bytes_written).map_err(err(&d.path))?;
        }
        Ok(gone)
    }

    /// Forgets `day` whole in the open transaction: its records, how many. Its file goes
    /// once the transaction commits ([`RawLog::committed`]); a rollback brings it back.
    pub fn forget_day(&mut self, day: i64) -> usize {
        match self.days.remove(&day) {
            Some(d) => {
                let n = d.index.len();
                self.doomed.push((day, d));
                n
            }
            None => 0,
        }
    }

    /// The bytes of `day` the last commit holds (written, or still buffered after a sealed
    /// commit).
    pub fn committed_len(&self, day: i64) -> Option<u64> {
        self.days.get(&day).map(|d| d.committed)
    }

    /// Whether `day` holds a record of `key`.
    pub fn holds(&self, day: i64, key: i64) -> bool {
        self.days.get(&day).is_some_and(|d| d.index.contains(key))
    }

    /// The bytes of the records held, over every day: what the tier takes on disk but for
    /// hidden records, whose bytes stay until their day goes (at most a day later).
    pub fn bytes(&self) -> u64 {
        let live = |d: &Day| d.index.0.iter().map(|e| u64::from(e.len)).sum::<u64>();
        self.days
            .values()
            .map(|d| HEADER.len() as u64 + live(d))
            .sum()
    }

    fn push(&mut self, day: i64, rec: &RawRecord) -> Result<(), RawLogError> {
        // A day forgotten in this transaction takes records again: the same file, emptied by
        // a hide (making it anew would empty the file a rollback must bring back).
        if let Some(at) = self.doomed.iter().position(|(d, _)| *d == day) {
            let (_, d) = self.doomed.swap_remove(at);
            self.days.insert(day, d);
            let all = Hide {
                from: i64::MIN,
                to: i64::MAX,
                host: None,
            };
            self.hide(day, &all)?;
        }
        let d = day_mut(&mut self.days, self.dir.as_deref(), day)?;
        let at = d.written + d.pending.len() as u64;
        let mark = d.pending.len();
        encode(rec, &mut d.pending);
        let e =
            entry(rec, at, d.pending.len() - mark).filter(|e| usize::from(e.len) <= MAX_BODY + 8);
        let Some(e) = e else {
            let what = format!(
                "record of key {} (host id {}, {} bytes at {at}) beyond the format's bounds",
                rec.key,
                rec.host,
                d.pending.len() - mark
            );
            d.pending.truncate(mark);
            return Err(err(&d.path)(io::Error::new(
                io::ErrorKind::InvalidInput,
                what,
            )));
        };
        d.index.put(e);
        if d.pending.len() >= SPILL {
            d.spill(&mut self.bytes_written).map_err(err(&d.path))?;
        }
        Ok(())
    }

    /// Removes a day's file (once the transaction that forgets its length has committed).
    pub fn drop_day(&mut self, day: i64) -> Result<(), RawLogError> {
        if let Some(d) = self.days.remove(&day).filter(|d| d.file.is_some()) {
            match std::fs::remove_file(&d.path) {
                Err(e) if e.kind() != io::ErrorKind::NotFound => return Err(err(&d.path)(e)),
                _ => {}
            }
        }
        Ok(())
    }

    /// The days held.
    pub fn days(&self) -> impl Iterator<Item = i64> + '_ {
        self.days.keys().copied()
    }

    /// The records of `day` with keys in `from..=to`, in key order, of `host` alone if named.
    /// A record that no longer reads back (the disk failed under it) is skipped.
    pub fn range(
        &self,
        day: i64,
        from: i64,
        to: i64,
        host: Option<i64>,
    ) -> impl Iterator<Item = RawRecord> + '_ {
        self.days.get(&day).into_iter().flat_map(move |d| {
            d.index
                .range(from, to)
                .iter()
                .filter(move |e| host.is_none_or(|h| h == i64::from(e.host)))
                .filter_map(move |e| d.read(e))
        })
    }

    /// The records of every day with keys in `from..=to`, of `host` alone if named, in key
    /// order (newest first if `desc`): a day's keys all lie within the day, so the days in
    /// order are the keys in order.
    pub fn walk(
        &self,
        from: i64,
        to: i64,
        host: Option<i64>,
        desc: bool,
    ) -> impl Iterator<Item = RawRecord> + '_ {
        let days: Box<dyn Iterator<Item = &Day>> = if desc {
            Box::new(self.days.values().rev())
        } else {
            Box::new(self.days.values())
        };
        days.flat_map(move |d| {
            let slice = d.index.range(from, to);
            let entries: Box<dyn Iterator<Item = &Entry>> = if desc {
                Box::new(slice.iter().rev())
            } else {
                Box::new(slice.iter())
            };
            entries
                .filter(move |e| host.is_none_or(|h| h == i64::from(e.host)))
                .filter_map(move |e| d.read(e))
        })
    }

    /// The `(key, host)` of `day`'s records in `from..=to`, without reading them.
    pub fn keys(&self, day: i64, from: i64, to: i64) -> impl Iterator<Item = (i64, i64)> + '_ {
        self.days.get(&day).into_iter().flat_map(move |d| {
            d.index
                .range(from, to)
                .iter()
                .map(|e| (e.key, i64::from(e.host)))
        })
    }
}

#[cfg(test)]
mod seal_tests;
#[cfg(test)]
mod tests;
