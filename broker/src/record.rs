//! The on-disk record format of the local logs on both sides (the publisher's ring and event
//! log, the subscriber's history): one line per record, `<crc32 of json, 8 hex digits> <json>\n`.
//!
//! A line is only valid with its newline and a matching checksum, so a write torn by `kill -9`
//! or a full disk is recognised on the next start and cut off, never misread.

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
}
