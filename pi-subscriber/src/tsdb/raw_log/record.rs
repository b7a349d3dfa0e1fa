//! A record on disk: `u32` body length, `u32` CRC-32 of the body (both little-endian), then
//! the body, whose first byte is its kind:
//! - a sample (0): varints key (zigzag), host, seq, boot and the data's length, the data, a
//!   byte saying whether top lists follow, and the top lists to the end;
//! - a hide (1): varints from and to (zigzag) and host (0: every host, else its id + 1). It
//!   hides the samples before it in the file with keys in `from..=to` (of that host): every
//!   change to a day is an append (a later sample of the same key replaces the earlier one);
//! - a seal (2), nothing more: the records before it were committed by a commit that stored
//!   nothing in SQLite (`RawLog::seal`), so they count as committed past the length SQLite
//!   holds for the day.
//!
//! Decoding is total.

use super::super::codec::{get_varint, put_varint};
use super::super::pack::{unzigzag, zigzag};

/// The first bytes of every day's file.
pub const HEADER: &[u8; 8] = b"SARAWv1\n";
/// The largest record body read or written (a raw row is a few hundred bytes), so a whole
/// record's length fits the index's `u16`.
pub const MAX_BODY: usize = u16::MAX as usize - 8;
/// One raw row: the sample's key (`raw_key.rs`), host id, seq, boot, packed values and top
/// lists, as the `raw` tables hold it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RawRecord {
    pub key: i64,
    pub host: i64,
    pub seq: u64,
    pub boot: u64,
    pub data: Vec<u8>,
    pub top: Option<Vec<u8>>,
}

/// Samples of a day to hide (deleted rows): keys `from..=to`, of `host` or every host.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Hide {
    pub from: i64,
    pub to: i64,
    pub host: Option<i64>,
}

impl Hide {
    pub fn covers(&self, key: i64, host: i64) -> bool {
        (self.from..=self.to).contains(&key) && self.host.is_none_or(|h| h == host)
    }
}

/// A record as read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Record {
    Sample(RawRecord),
    Hide(Hide),
    Seal,
}

const SAMPLE: u8 = 0;
const HIDE: u8 = 1;
const SEAL: u8 = 2;

fn put_frame(body: &[u8], out: &mut Vec<u8>) {
    out.extend_from_slice(&(body.len() as u32).to_le_bytes());
    out.extend_from_slice(&crc32fast::hash(body).to_le_bytes());
    out.extend_from_slice(body);
}

/// Frames a hide onto `out`.
pub fn encode_hide(h: &Hide, out: &mut Vec<u8>) {
    let mut body = vec![HIDE];
    put_varint(&mut body, zigzag(h.from));
    put_varint(&mut body, zigzag(h.to));
    put_varint(&mut body, h.host.map_or(0, |h| (h as u64).wrapping_add(1)));
    put_frame(&body, out);
}

/// Frames a seal onto `out`.
pub fn encode_seal(out: &mut Vec<u8>) {
    put_frame(&[SEAL], out);
}

/// Frames `rec` onto `out`.
pub fn encode(rec: &RawRecord, out: &mut Vec<u8>) {
    let mut body = Vec::with_capacity(rec.data.len() + rec.top.as_ref().map_or(0, Vec::len) + 24);
    body.push(SAMPLE);
    put_varint(&mut body, zigzag(rec.key));
    put_varint(&mut body, rec.host as u64);
    put_varint(&mut body, rec.seq);
    put_varint(&mut body, rec.boot);
    put_varint(&mut body, rec.data.len() as u64);
    body.extend_from_slice(&rec.data);
    match &rec.top {
        Some(top) => {
            body.push(1);
            body.extend_from_slice(top);
        }
        None => body.push(0),
    }
    put_frame(&body, out);
}

/// The body of the record at the start of `bytes`, if whole and its CRC matches.
pub(super) fn frame(bytes: &[u8]) -> Option<&[u8]> {
    let len = u32::from_le_bytes(bytes.get(..4)?.try_into().ok()?) as usize;
    let crc = u32::from_le_bytes(bytes.get(4..8)?.try_into().ok()?);
    let body = bytes.get(8..8usize.checked_add(len).filter(|_| len <= MAX_BODY)?)?;
    (crc32fast::hash(body) == crc).then_some(body)
}

/// A record's body; `None` for one that does not parse.
pub fn decode(body: &[u8]) -> Option<Record> {
    match *body.first()? {
        SAMPLE => decode_sample(&body[1..]).map(Record::Sample),
        HIDE => {
            let mut at = 1;
            let from = unzigzag(get_varint(body, &mut at)?);
            let to = unzigzag(get_varint(body, &mut at)?);
            let host = match get_varint(body, &mut at)? {
                0 => None,
                h => Some(i64::try_from(h - 1).ok()?),
            };
            (at == body.len()).then_some(Record::Hide(Hide { from, to, host }))
        }
        SEAL => (body.len() == 1).then_some(Record::Seal),
        _ => None,
    }
}

/// A sample's body after its kind byte.
fn decode_sample(body: &[u8]) -> Option<RawRecord> {
    let mut at = 0;
    let key = unzigzag(get_varint(body, &mut at)?);
    let host = i64::try_from(get_varint(body, &mut at)?).ok()?;
    let seq = get_varint(body, &mut at)?;
    let boot = get_varint(body, &mut at)?;
    let len = usize::try_from(get_varint(body, &mut at)?).ok()?;
    let data = body.get(at..at.checked_add(len)?)?.to_vec();
    at += len;
    let top = match body.get(at)? {
        0 => None,
        1 => Some(body.get(at + 1..)?.to_vec()),
        _ => return None,
    };
    Some(RawRecord {
        key,
        host,
        seq,
        boot,
        data,
        top,
    })
}
