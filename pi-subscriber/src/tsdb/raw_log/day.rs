//! One day's file: its lengths, what is buffered for it, and its index.

use std::collections::BTreeMap;
use std::fs::{File, OpenOptions};
use std::io;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

use super::index::{scan, Entry, Index};
use super::record::{decode, frame, RawRecord, Record, HEADER};
use super::{err, RawLogError, Recovery};

#[derive(Debug)]
pub(super) struct Day {
    /// `None` in a log kept in memory ([`super::RawLog::in_memory`]): every record stays in
    /// `pending`.
    pub(super) file: Option<File>,
    pub(super) path: PathBuf,
    /// Bytes in the file (written, maybe not yet committed).
    pub(super) written: u64,
    /// Bytes the last committed transaction stored.
    pub(super) committed: u64,
    /// Records appended and not yet written, from offset `written`.
    pub(super) pending: Vec<u8>,
    /// Whether the file was made since the last sync (its directory entry needs one too).
    pub(super) new: bool,
    /// Every record's place, by key.
    pub(super) index: Index,
}

pub(super) fn day_path(dir: &Path, day: i64) -> PathBuf {
    dir.join(format!("{day}.raw"))
}

/// `day` of `days`, its file made (empty but for its header, uncommitted) if new.
pub(super) fn day_mut<'a>(
    days: &'a mut BTreeMap<i64, Day>,
    dir: Option<&Path>,
    day: i64,
) -> Result<&'a mut Day, RawLogError> {
    Ok(match days.entry(day) {
        std::collections::btree_map::Entry::Occupied(o) => o.into_mut(),
        std::collections::btree_map::Entry::Vacant(v) => {
            let (path, file) = match dir {
                Some(dir) => {
                    let path = day_path(dir, day);
                    let file = OpenOptions::new()
                        .read(true)
                        .write(true)
                        .create(true)
                        .truncate(true)
                        .open(&path)
                        .map_err(err(&path))?;
                    (path, Some(file))
                }
                None => (PathBuf::from(format!("(memory)/{day}.raw")), None),
            };
            v.insert(Day {
                file,
                path,
                written: 0,
                committed: 0,
                pending: HEADER.to_vec(),
                new: true,
                index: Index::default(),
            })
        }
    })
}

impl Day {
    /// Opens `<day>.raw` and indexes what was committed: its first `committed` bytes (the
    /// length SQLite stored) and on to the last seal past them (commits that stored nothing
    /// in SQLite); cuts what lies past that and past the first record that fails.
    pub(super) fn open(
        path: PathBuf,
        committed: u64,
        rec: &mut Recovery,
        day: i64,
    ) -> io::Result<Day> {
        let file = OpenOptions::new().read(true).write(true).open(&path)?;
        let len = file.metadata()?.len();
        let mut found = scan(&file, len)?;
        let end = committed.max(found.sealed);
        if found.good < committed {
            rec.lost_bytes += committed - found.good;
            rec.damaged_days.push(day);
        }
        rec.uncommitted_bytes += len.saturating_sub(end);
        let good = found.good.min(end);
        if good < found.good {
            // Records past the last commit were indexed (and their hides applied): again,
            // up to it alone.
            found = scan(&file, good)?;
        }
        if len != good {
            file.set_len(good)?;
            file.sync_data()?;
        }
        Ok(Day {
            file: Some(file),
            path,
            written: good,
            committed: good,
            // A file cut to nothing starts again with its header.
            pending: if good == 0 {
                HEADER.to_vec()
            } else {
                Vec::new()
            },
            new: false,
            index: found.index,
        })
    }

    pub(super) fn spill(&mut self, bytes_written: &mut u64) -> io::Result<()> {
        self.write_head(self.pending.len(), bytes_written)
    }

    /// Bytes held: written to the file, and buffered.
    pub(super) fn len(&self) -> u64 {
        self.written + self.pending.len() as u64
    }

    /// Reads `buf.len()` bytes at `at`: from the file below `written`, from the buffer above
    /// it (a record may lie across the two: a sealed commit writes whole pages only).
    pub(super) fn read_at(&self, buf: &mut [u8], at: u64) -> io::Result<()> {
        let eof = || io::Error::from(io::ErrorKind::UnexpectedEof);
        let in_file = usize::try_from(self.written.saturating_sub(at))
            .unwrap_or(usize::MAX)
            .min(buf.len());
        let (head, tail) = buf.split_at_mut(in_file);
        if !head.is_empty() {
            self.file
                .as_ref()
                .ok_or_else(eof)?
                .read_exact_at(head, at)?;
        }
        if !tail.is_empty() {
            let from = usize::try_from((at + in_file as u64) - self.written).map_err(|_| eof())?;
            let end = from.checked_add(tail.len()).ok_or_else(eof)?;
            tail.copy_from_slice(self.pending.get(from..end).ok_or_else(eof)?);
        }
        Ok(())
    }

    pub(super) fn read(&self, e: &Entry) -> Option<RawRecord> {
        let mut buf = vec![0u8; usize::from(e.len)];
        self.read_at(&mut buf, u64::from(e.offset)).ok()?;
        match frame(&buf).and_then(decode)? {
            Record::Sample(r) => Some(r),
            Record::Hide(_) | Record::Seal => None,
        }
    }

    /// Writes the buffer's first `n` bytes (at most all of it) to the file.
    pub(super) fn write_head(&mut self, n: usize, bytes_written: &mut u64) -> io::Result<()> {
        let n = n.min(self.pending.len());
        let Some(file) = self.file.as_ref().filter(|_| n > 0) else {
            return Ok(());
        };
        file.write_all_at(&self.pending[..n], self.written)?;
        self.written += n as u64;
        *bytes_written += n as u64;
        self.pending.drain(..n);
        Ok(())
    }
}
