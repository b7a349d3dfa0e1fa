//! A day's records by key, in memory, and the scan that builds it from the day's file.

use std::fs::File;
use std::io;
use std::os::unix::fs::FileExt;

use super::record::{decode, frame, Hide, RawRecord, Record, HEADER, MAX_BODY};

/// Where a record lies: 16 bytes a record in memory (`bench raw_log` measures the index;
/// the seq and the rest are read from the record).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Entry {
    pub(super) key: i64,
    pub(super) offset: u32,
    pub(super) host: u16,
    pub(super) len: u16,
}

/// A day's records by key: a sorted `Vec` (live samples come in key order and are pushed; a
/// backfill's are placed by a binary search).
#[derive(Debug, Default)]
pub(super) struct Index(pub(super) Vec<Entry>);

impl Index {
    fn find(&self, key: i64) -> Result<usize, usize> {
        self.0.binary_search_by_key(&key, |e| e.key)
    }

    pub(super) fn len(&self) -> usize {
        self.0.len()
    }

    pub(super) fn contains(&self, key: i64) -> bool {
        self.find(key).is_ok()
    }

    /// Adds `e`, or puts it in place of the entry of its key: whether the key is new.
    pub(super) fn put(&mut self, e: Entry) -> bool {
        if self.0.last().is_none_or(|l| l.key < e.key) {
            self.0.push(e);
            return true;
        }
        match self.find(e.key) {
            Ok(at) => {
                self.0[at] = e;
                false
            }
            Err(at) => {
                self.0.insert(at, e);
                true
            }
        }
    }

    /// Drops the entries `h` covers: how many.
    pub(super) fn hide(&mut self, h: &Hide) -> usize {
        let lo = self.0.partition_point(|e| e.key < h.from);
        let hi = self.0.partition_point(|e| e.key <= h.to).max(lo);
        let kept: Vec<Entry> = self
            .0
            .drain(lo..hi)
            .filter(|e| !h.covers(e.key, i64::from(e.host)))
            .collect();
        let gone = hi - lo - kept.len();
        self.0.splice(lo..lo, kept);
        gone
    }

    pub(super) fn range(&self, from: i64, to: i64) -> &[Entry] {
        let lo = self.0.partition_point(|e| e.key < from);
        let hi = self.0.partition_point(|e| e.key <= to);
        self.0.get(lo..hi.max(lo)).unwrap_or(&[])
    }
}

/// The index entry of a record framed at `offset`, `len` bytes; `None` when the index's
/// fields cannot hold it (a day over 4 GiB, a host id over 65 535).
pub(super) fn entry(r: &RawRecord, offset: u64, len: usize) -> Option<Entry> {
    Some(Entry {
        key: r.key,
        offset: u32::try_from(offset).ok()?,
        host: u16::try_from(r.host).ok()?,
        len: u16::try_from(len).ok()?,
    })
}

/// What a scan found: the index, the end of the last good record (0 without a header), and
/// the end of the last seal among them (0: none).
#[derive(Debug, Default)]
pub(super) struct Scanned {
    pub(super) index: Index,
    pub(super) good: u64,
    pub(super) sealed: u64,
}

/// Indexes the records in the first `limit` bytes of `file`, read a chunk at a time.
pub(super) fn scan(file: &File, limit: u64) -> io::Result<Scanned> {
    let mut found = scan_with(|buf, at| file.read_exact_at(buf, at), limit)?;
    // A closed day's index grows no more: no doubling's slack held for it.
    found.index.0.shrink_to_fit();
    Ok(found)
}

pub(super) fn scan_with(
    read_at: impl Fn(&mut [u8], u64) -> io::Result<()>,
    limit: u64,
) -> io::Result<Scanned> {
    let mut index = Index::default();
    let mut sealed = 0;
    let mut head = [0u8; HEADER.len()];
    if limit < HEADER.len() as u64 || read_at(&mut head, 0).is_err() || &head != HEADER {
        return Ok(Scanned::default());
    }

    let mut chunk = vec![0u8; 2 * MAX_BODY];
    let mut base = HEADER.len() as u64;
    loop {
        let want = usize::try_from((limit - base).min(chunk.len() as u64)).unwrap_or(0);
        let buf = &mut chunk[..want];
        read_at(buf, base)?;
        let mut at = 0usize;
        while let Some(body) = buf.get(at..).and_then(frame) {
            let len = body.len() + 8;
            match decode(body) {
                Some(Record::Sample(r)) => match entry(&r, base + at as u64, len) {
                    Some(e) => {
                        index.put(e);
                    }
                    None => {
                        return Ok(Scanned {
                            index,
                            good: base + at as u64,
                            sealed,
                        })
                    }
                },
                Some(Record::Hide(h)) => {
                    index.hide(&h);
                }
                Some(Record::Seal) => sealed = base + (at + len) as u64,
                None => {
                    return Ok(Scanned {
                        index,
                        good: base + at as u64,
                        sealed,
                    })
                }
            }
            at += len;
        }
        // A record cut by the chunk's end is read again from its start; one cut by `limit`
        // (or that fails) ends the scan.
        if at == 0 || base + (want as u64) >= limit {
            return Ok(Scanned {
                index,
                good: base + at as u64,
                sealed,
            });
        }
        base += at as u64;
    }
}
