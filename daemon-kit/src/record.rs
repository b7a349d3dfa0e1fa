//! The on-disk record format of the local logs on both sides (the publisher's ring and event
//! log, the subscriber's history): one line per record, `<crc32 of json, 8 hex digits> <json>\n`.
//!
//! A line is only valid with its newline and a matching checksum, so a write torn by `kill -9`
//! or a full disk is recognised on the next start and cut off, never misread.

use std::fs::{File, OpenOptions};
use std::io::{self, Read};
use std::path::Path;

/// A log opened by [`open_append`].
#[derive(Debug)]
pub struct Appender {
    /// Open for appending, positioned after the last complete line.
    pub file: File,
    /// Complete lines in the file.
    pub lines: usize,
    /// Bytes of a torn last line that were cut off.
    pub cut_bytes: u64,
}

/// Opens (or creates) a log for appending, first cutting a torn last line, one without its
/// newline (a write cut short by a power loss, `kill -9` or a full disk), so the next record
/// starts on a line of its own instead of being glued to the torn one and lost with it.
/// Streams the file once (no whole-file buffer).
pub fn open_append(path: &Path) -> io::Result<Appender> {
    let mut file = OpenOptions::new()
        .read(true)
        .append(true)
        .create(true)
        .open(path)?;
    let (mut len, mut complete, mut lines) = (0u64, 0u64, 0usize);
    let mut buf = [0u8; 16 * 1024];
    loop {
        let n = file.read(&mut buf)?;
        if n == 0 {
            break;
        }
        for (i, &b) in buf[..n].iter().enumerate() {
            if b == b'\n' {
                lines += 1;
                complete = len + i as u64 + 1;
            }
        }
        len += n as u64;
    }
    let cut_bytes = len - complete;
    if cut_bytes > 0 {
        file.set_len(complete)?;
        file.sync_data()?;
    }
    Ok(Appender {
        file,
        lines,
        cut_bytes,
    })
}

/// Encodes one record line.
pub fn encode(json: &[u8]) -> Vec<u8> {
    let mut line = Vec::with_capacity(json.len() + 10);
    line.extend_from_slice(format!("{:08x} ", crc32fast::hash(json)).as_bytes());
    line.extend_from_slice(json);
    line.push(b'\n');
    line
}

/// Decodes one line without its newline; `None` when it is torn or corrupt.
pub fn decode(line: &[u8]) -> Option<&[u8]> {
    if line.len() < 9 || line[8] != b' ' {
        return None;
    }
    let crc = u32::from_str_radix(std::str::from_utf8(&line[..8]).ok()?, 16).ok()?;
    let json = &line[9..];
    (crc32fast::hash(json) == crc).then_some(json)
}

/// What [`scan`] found in a file.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Scan<'a> {
    /// Each valid record: the offset of its line and its JSON.
    pub records: Vec<(u64, &'a [u8])>,
    /// Length of the file up to the end of the last valid record; anything after it is a
    /// torn tail to cut off.
    pub valid_len: u64,
    /// Complete lines before `valid_len` that failed their checksum (disk corruption): they
    /// are skipped, and the records after them are kept.
    pub corrupt: usize,
}

/// Splits a file's bytes into records.
pub fn scan(bytes: &[u8]) -> Scan<'_> {
    let mut scan = Scan::default();
    let mut bad_since_valid = 0;
    let mut offset = 0usize;
    while offset < bytes.len() {
        let Some(newline) = bytes[offset..].iter().position(|&b| b == b'\n') else {
            break;
        };
        match decode(&bytes[offset..offset + newline]) {
            Some(json) => {
                scan.records.push((offset as u64, json));
                scan.corrupt += bad_since_valid;
                bad_since_valid = 0;
                scan.valid_len = (offset + newline + 1) as u64;
            }
            None => bad_since_valid += 1,
        }
        offset += newline + 1;
    }
    scan
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_torn_tails() {
        let mut file = encode(br#"{"seq":1}"#);
        file.extend(encode(br#"{"seq":2}"#));
        let full = file.len() as u64;
        let found = scan(&file);
        assert_eq!(found.records.len(), 2);
        assert_eq!(found.records[1].1, br#"{"seq":2}"#);
        assert_eq!(found.valid_len, full);
        assert_eq!(found.corrupt, 0);
        // Every cut inside the second record keeps exactly the first.
        let first_len = encode(br#"{"seq":1}"#).len();
        for cut in first_len..file.len() {
            let found = scan(&file[..cut]);
            assert_eq!(found.records.len(), 1, "cut at {cut}");
            assert_eq!(found.valid_len, first_len as u64);
        }
    }

    #[test]
    fn flipped_byte_is_detected() {
        let mut line = encode(br#"{"seq":12}"#);
        line[12] ^= 0x01;
        assert_eq!(decode(&line[..line.len() - 1]), None);
        assert_eq!(decode(b"zzzzzzzz {}"), None);
        assert_eq!(decode(b""), None);
    }

    #[test]
    fn corrupt_middle_line_is_skipped_not_the_rest() {
        let mut file = encode(br#"{"seq":1}"#);
        let mut bad = encode(br#"{"seq":2}"#);
        bad[10] ^= 0x02;
        file.extend(bad);
        file.extend(encode(br#"{"seq":3}"#));
        let found = scan(&file);
        assert_eq!(found.records.len(), 2);
        assert_eq!(found.records[1].1, br#"{"seq":3}"#);
        assert_eq!(found.corrupt, 1);
        assert_eq!(found.valid_len, file.len() as u64);
    }

    #[test]
    fn open_append_cuts_a_torn_tail() {
        use std::io::Write;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("x.log");
        std::fs::write(
            &path,
            [encode(b"1"), encode(b"2"), b"0badc0de [".to_vec()].concat(),
        )
        .unwrap();
        let mut a = open_append(&path).unwrap();
        assert_eq!((a.lines, a.cut_bytes), (2, 10));
        a.file.write_all(&encode(b"3")).unwrap();
        let bytes = std::fs::read(&path).unwrap();
        let jsons: Vec<&[u8]> = scan(&bytes).records.iter().map(|r| r.1).collect();
        assert_eq!(jsons, [&b"1"[..], b"2", b"3"]);
        let fresh = open_append(&dir.path().join("new.log")).unwrap();
        assert_eq!((fresh.lines, fresh.cut_bytes), (0, 0));
    }
}
