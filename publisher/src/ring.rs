//! The file-backed ring of recent snapshots.
//!
//! Snapshots are appended to segment files (`<first seq>.ring`) in the [`daemon_kit::record`]
//! line format and `fdatasync`ed; when the oldest segment is no longer needed to keep
//! `capacity` snapshots it is deleted. Only an index (seq → file offset) is kept in memory,
//! so 24 h of samples costs ~150 KB of RAM, not the ~5 MB of the snapshots themselves.
//!
//! Crash safety: every append is one `write` of one line. A torn line (`kill -9`, power loss,
//! full disk) fails its checksum and is cut off by [`Ring::open`]; a failed append is cut off
//! at once. No state is ever kept only in a half-written file.

use std::collections::VecDeque;
use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

use broker::Snapshot;
use serde::Deserialize;
use serde_json::value::RawValue;

use daemon_kit::record;

const SEGMENT_SUFFIX: &str = "ring";

#[derive(Debug, thiserror::Error)]
pub enum RingError {
    #[error("ring directory {}: {source}", path.display())]
    Dir { path: PathBuf, source: io::Error },
    #[error("ring segment {}: {source}", path.display())]
    Io { path: PathBuf, source: io::Error },
    #[error("cannot serialize snapshot {seq}: {source}")]
    Serialize { seq: u64, source: serde_json::Error },
    #[error("snapshot seq {seq} is not after the ring's newest seq {newest}")]
    OutOfOrder { seq: u64, newest: u64 },
}

/// What [`Ring::open`] found and mended.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Recovery {
    pub records: usize,
    pub segments: usize,
    /// Bytes of torn or corrupt records cut off the ends of segments.
    pub truncated_bytes: u64,
    /// Complete records inside segments that failed their checksum and were skipped.
    pub corrupt_records: usize,
}

#[derive(Debug, Clone, Copy)]
struct Entry {
    seq: u64,
    offset: u64,
    /// Length of the whole line, newline included.
    len: u32,
}

#[derive(Debug)]
struct Segment {
    path: PathBuf,
    entries: Vec<Entry>,
    /// Valid length of the file: where the next record goes.
    len: u64,
}

/// Only the `seq` of a stored snapshot is needed to index it.
#[derive(Deserialize)]
struct SeqOnly {
    seq: u64,
}

#[derive(Debug)]
pub struct Ring {
    dir: PathBuf,
    /// How many snapshots are kept at least.
    capacity: usize,
    /// Records per segment file: an eighth of the capacity, so at most 12.5 % extra on disk.
    segment_records: usize,
    segments: VecDeque<Segment>,
    /// The open newest segment, for appends.
    writer: Option<File>,
    /// `fdatasync` after every append (the default): a snapshot that was served survives a
    /// power cut. Tests turn it off for speed.
    fsync: bool,
    /// Set when a failed append could not be cut off; the cut is retried before the next one.
    pending_truncate: Option<u64>,
}

impl Ring {
    /// Opens (or creates) the ring in `dir`, recovering from whatever a crash left there.
    pub fn open(dir: &Path, capacity: usize, fsync: bool) -> Result<(Ring, Recovery), RingError> {
        let capacity = capacity.max(1);
        fs::create_dir_all(dir).map_err(|source| RingError::Dir {
            path: dir.to_owned(),
            source,
        })?;
        let mut paths: Vec<(u64, PathBuf)> = fs::read_dir(dir)
            .map_err(|source| RingError::Dir {
                path: dir.to_owned(),
                source,
            })?
            .filter_map(|e| e.ok())
            .filter_map(|e| {
                let path = e.path();
                let first: u64 = path
                    .file_name()?
                    .to_str()?
                    .strip_suffix(&format!(".{SEGMENT_SUFFIX}"))?
                    .parse()
                    .ok()?;
                Some((first, path))
            })
            .collect();
        paths.sort();

        let mut recovery = Recovery::default();
        let mut segments = VecDeque::new();
        let mut newest = None::<u64>;
        for (_, path) in paths {
            let bytes = fs::read(&path).map_err(|source| RingError::Io {
                path: path.clone(),
                source,
            })?;
            let found = record::scan(&bytes);
            let mut valid = found.valid_len;
            recovery.corrupt_records += found.corrupt;
            let mut entries = Vec::with_capacity(found.records.len());
            for (offset, json) in found.records {
                let seq = match serde_json::from_slice::<SeqOnly>(json) {
                    Ok(s) if newest.is_none_or(|n| s.seq > n) => s.seq,
                    _ => {
                        // Not a snapshot, or out of order: nothing after it is trusted.
                        valid = offset;
                        break;
                    }
                };
                newest = Some(seq);
                entries.push(Entry {
                    seq,
                    offset,
                    len: (json.len() + 10) as u32,
                });
            }
            if valid < bytes.len() as u64 {
                tracing::warn!(
                    segment = %path.display(),
                    cut_bytes = bytes.len() as u64 - valid,
                    "ring segment had a torn or corrupt tail; cutting it off"
                );
                recovery.truncated_bytes += bytes.len() as u64 - valid;
                let file = OpenOptions::new()
                    .write(true)
                    .open(&path)
                    .map_err(|source| RingError::Io {
                        path: path.clone(),
                        source,
                    })?;
                file.set_len(valid)
                    .and_then(|_| file.sync_all())
                    .map_err(|source| RingError::Io {
                        path: path.clone(),
                        source,
                    })?;
            }
            if entries.is_empty() {
                // Nothing readable: an empty segment from a crash right after creating it.
                let _ = fs::remove_file(&path);
                continue;
            }
            recovery.records += entries.len();
            recovery.segments += 1;
            segments.push_back(Segment {
                path,
                entries,
                len: valid,
            });
        }
        let ring = Ring {
            dir: dir.to_owned(),
            capacity,
            segment_records: (capacity / 8).max(16),
            segments,
            writer: None,
            fsync,
            pending_truncate: None,
        };
        Ok((ring, recovery))
    }

    pub fn capacity(&self) -> usize {
        self.capacity
    }

    /// Number of snapshots stored (at least `capacity` once full, at most an eighth more).
    pub fn len(&self) -> usize {
        self.segments.iter().map(|s| s.entries.len()).sum()
    }

    pub fn is_empty(&self) -> bool {
        self.segments.is_empty()
    }

    pub fn oldest_seq(&self) -> Option<u64> {
        self.segments
            .iter()
            .find_map(|s| s.entries.first())
            .map(|e| e.seq)
    }

    /// The newest stored seq. The last segment can be empty (a full disk refused the first
    /// append after a rotation), so it looks past empty ones.
    pub fn newest_seq(&self) -> Option<u64> {
        self.segments
            .iter()
            .rev()
            .find_map(|s| s.entries.last())
            .map(|e| e.seq)
    }

    /// Appends one snapshot. Its `seq` must be above every stored one.
    pub fn append(&mut self, snapshot: &Snapshot) -> Result<(), RingError> {
        if let Some(newest) = self.newest_seq() {
            if snapshot.seq <= newest {
                return Err(RingError::OutOfOrder {
                    seq: snapshot.seq,
                    newest,
                });
            }
        }
        let json = serde_json::to_vec(snapshot).map_err(|source| RingError::Serialize {
            seq: snapshot.seq,
            source,
        })?;
        let line = record::encode(&json);

        // A new segment when the last is full; an empty last one (its first append failed) is
        // reused rather than followed by another.
        let start_new = self
            .segments
            .back()
            .is_none_or(|s| s.entries.len() >= self.segment_records);
        if start_new {
            self.start_segment(snapshot.seq)?;
        }
        let (path, offset) = match self.segments.back() {
            Some(s) => (s.path.clone(), s.len),
            None => return Ok(()), // start_segment always pushes one
        };
        let io_err = |source| RingError::Io {
            path: path.clone(),
            source,
        };
        let writer = match &mut self.writer {
            Some(w) => w,
            None => self.writer.insert(
                OpenOptions::new()
                    .append(true)
                    .open(&path)
                    .map_err(io_err)?,
            ),
        };
        if let Some(len) = self.pending_truncate {
            writer.set_len(len).map_err(io_err)?;
            self.pending_truncate = None;
        }
        let written = writer.write_all(&line).and_then(|_| {
            if self.fsync {
                writer.sync_data()
            } else {
                Ok(())
            }
        });
        if let Err(source) = written {
            // Cut off whatever part of the line reached the file (a full disk writes some).
            if writer.set_len(offset).is_err() {
                self.pending_truncate = Some(offset);
            }
            return Err(io_err(source));
        }
        if let Some(segment) = self.segments.back_mut() {
            segment.entries.push(Entry {
                seq: snapshot.seq,
                offset,
                len: line.len() as u32,
            });
            segment.len += line.len() as u64;
        }
        self.prune();
        Ok(())
    }

    fn start_segment(&mut self, first_seq: u64) -> Result<(), RingError> {
        let path = self.dir.join(format!("{first_seq:020}.{SEGMENT_SUFFIX}"));
        let file = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&path)
            .map_err(|source| RingError::Io {
                path: path.clone(),
                source,
            })?;
        // The file's name must survive a power cut too.
        if self.fsync {
            if let Ok(dir) = File::open(&self.dir) {
                let _ = dir.sync_all();
            }
        }
        self.writer = Some(file);
        self.pending_truncate = None;
        self.segments.push_back(Segment {
            path,
            entries: Vec::new(),
            len: 0,
        });
        Ok(())
    }

    /// Deletes old segments that are not needed to keep `capacity` snapshots.
    fn prune(&mut self) {
        while let Some(oldest) = self.segments.front() {
            if self.segments.len() < 2 || self.len() - oldest.entries.len() < self.capacity {
                break;
            }
            if let Err(error) = fs::remove_file(&oldest.path) {
                tracing::warn!(segment = %oldest.path.display(), %error, "cannot delete old ring segment");
            }
            self.segments.pop_front();
        }
    }

    /// Up to `limit` stored snapshots with `seq > since_seq`, oldest first, as the JSON they
    /// were stored as (checked against their checksums).
    pub fn after(&self, since_seq: u64, limit: usize) -> Result<Vec<Box<RawValue>>, RingError> {
        let mut out = Vec::new();
        for segment in &self.segments {
            if out.len() >= limit {
                break;
            }
            if segment.entries.last().is_none_or(|e| e.seq <= since_seq) {
                continue;
            }
            let start = segment.entries.partition_point(|e| e.seq <= since_seq);
            let wanted =
                &segment.entries[start..segment.entries.len().min(start + limit - out.len())];
            let (Some(first), Some(last)) = (wanted.first(), wanted.last()) else {
                continue;
            };
            let io_err = |source| RingError::Io {
                path: segment.path.clone(),
                source,
            };
            let file = File::open(&segment.path).map_err(io_err)?;
            let span = (last.offset + last.len as u64 - first.offset) as usize;
            let mut buf = vec![0u8; span];
            file.read_exact_at(&mut buf, first.offset).map_err(io_err)?;
            for entry in wanted {
                let at = (entry.offset - first.offset) as usize;
                let line = &buf[at..at + entry.len as usize - 1];
                let Some(json) = record::decode(line) else {
                    tracing::warn!(seq = entry.seq, segment = %segment.path.display(), "ring record fails its checksum; skipped");
                    continue;
                };
                match std::str::from_utf8(json)
                    .ok()
                    .and_then(|s| RawValue::from_string(s.to_owned()).ok())
                {
                    Some(raw) => out.push(raw),
                    None => tracing::warn!(seq = entry.seq, "ring record is not JSON; skipped"),
                }
            }
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn snap(seq: u64) -> Snapshot {
        Snapshot {
            v: 1,
            host: "t".into(),
            seq,
            ts: seq as i64,
            ..Snapshot::default()
        }
    }

    fn seqs(raw: &[Box<RawValue>]) -> Vec<u64> {
        raw.iter()
            .map(|r| serde_json::from_str::<Snapshot>(r.get()).unwrap().seq)
            .collect()
    }

    #[test]
    fn keeps_at_least_capacity_and_deletes_old_segments() {
        let dir = tempfile::tempdir().unwrap();
        let (mut ring, rec) = Ring::open(dir.path(), 40, false).unwrap();
        assert_eq!(rec, Recovery::default());
        for seq in 1..=200 {
            ring.append(&snap(seq)).unwrap();
        }
        assert!(ring.len() >= 40 && ring.len() <= 40 + 16, "{}", ring.len());
        assert_eq!(ring.newest_seq(), Some(200));
        let files = fs::read_dir(dir.path()).unwrap().count();
        assert_eq!(files, ring.segments.len());
        assert!(files <= 4, "{files} segments");
        let got = ring.after(190, 100).unwrap();
        assert_eq!(seqs(&got), (191..=200).collect::<Vec<_>>());
        let got = ring.after(0, 5).unwrap();
        assert_eq!(
            seqs(&got),
            (ring.oldest_seq().unwrap()..).take(5).collect::<Vec<_>>()
        );
        assert!(ring.after(200, 10).unwrap().is_empty());
    }

    #[test]
    fn reopens_with_the_same_contents_and_refuses_old_seqs() {
        let dir = tempfile::tempdir().unwrap();
        {
            let (mut ring, _) = Ring::open(dir.path(), 100, true).unwrap();
            for seq in 5..=50 {
                ring.append(&snap(seq)).unwrap();
            }
        }
        let (mut ring, rec) = Ring::open(dir.path(), 100, true).unwrap();
        assert_eq!(rec.records, 46);
        assert_eq!(rec.truncated_bytes, 0);
        assert_eq!(ring.oldest_seq(), Some(5));
        assert_eq!(ring.newest_seq(), Some(50));
        assert_eq!(seqs(&ring.after(49, 1).unwrap()), vec![50]);
        assert!(matches!(
            ring.append(&snap(50)),
            Err(RingError::OutOfOrder {
                seq: 50,
                newest: 50
            })
        ));
        ring.append(&snap(51)).unwrap();
        assert_eq!(seqs(&ring.after(48, 10).unwrap()), vec![49, 50, 51]);
    }

    #[test]
    fn every_possible_torn_tail_is_recovered() {
        let dir = tempfile::tempdir().unwrap();
        {
            let (mut ring, _) = Ring::open(dir.path(), 100, false).unwrap();
            for seq in 1..=3 {
                ring.append(&snap(seq)).unwrap();
            }
        }
        let path = fs::read_dir(dir.path())
            .unwrap()
            .next()
            .unwrap()
            .unwrap()
            .path();
        let full = fs::read(&path).unwrap();
        let two = full
            .iter()
            .enumerate()
            .filter(|(_, b)| **b == b'\n')
            .nth(1)
            .unwrap()
            .0
            + 1;
        for cut in two..full.len() {
            fs::write(&path, &full[..cut]).unwrap();
            let (mut ring, rec) = Ring::open(dir.path(), 100, false).unwrap();
            assert_eq!(ring.newest_seq(), Some(2), "cut at {cut}");
            assert_eq!(rec.truncated_bytes, (cut - two) as u64);
            assert_eq!(fs::metadata(&path).unwrap().len(), two as u64);
            // The next append lands on a clean line boundary.
            ring.append(&snap(3)).unwrap();
            drop(ring);
            let (ring, _) = Ring::open(dir.path(), 100, false).unwrap();
            assert_eq!(ring.newest_seq(), Some(3));
            fs::write(&path, &full).unwrap();
        }
    }

    #[test]
    fn garbage_files_and_corrupt_middle_records() {
        let dir = tempfile::tempdir().unwrap();
        fs::write(dir.path().join("notes.txt"), "not a segment").unwrap();
        fs::write(dir.path().join("00000000000000000007.ring"), "garbage\n").unwrap();
        let (mut ring, rec) = Ring::open(dir.path(), 10, false).unwrap();
        assert_eq!(rec.records, 0);
        assert_eq!(rec.truncated_bytes, 8);
        assert!(ring.is_empty());
        assert!(!dir.path().join("00000000000000000007.ring").exists());
        ring.append(&snap(1)).unwrap();
        ring.append(&snap(2)).unwrap();
        ring.append(&snap(3)).unwrap();
        // Flip a byte inside record 1: it is skipped, records 2 and 3 after it are kept.
        let path = dir.path().join(format!("{:020}.ring", 1));
        let mut bytes = fs::read(&path).unwrap();
        bytes[20] ^= 0x20;
        fs::write(&path, &bytes).unwrap();
        let (ring, rec) = Ring::open(dir.path(), 10, false).unwrap();
        assert_eq!(rec.corrupt_records, 1);
        assert_eq!(rec.truncated_bytes, 0);
        assert_eq!(seqs(&ring.after(0, 10).unwrap()), vec![2, 3]);
    }
}
