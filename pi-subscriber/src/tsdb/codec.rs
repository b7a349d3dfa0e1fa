//! How values are packed into SQLite blobs: one raw sample of a host (every series' value
//! at one instant) per row, and one row of buckets (60 minutes or 24 hours) per series.
//! Packing is what keeps a tower-sized host's two years under 100 MB: one SQLite row per
//! point would cost ~50 bytes of row and index overhead for 4–8 bytes of value.
//!
//! Decoding is total: a truncated or corrupt blob yields what could be read and `None` for
//! the rest, never a panic.

use super::rollup::Bucket;
use crate::registry::Value;

pub(super) fn put_varint(out: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        out.push((v as u8) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

pub(super) fn get_varint(bytes: &[u8], at: &mut usize) -> Option<u64> {
    let mut v: u64 = 0;
    for shift in (0..64).step_by(7) {
        let b = *bytes.get(*at)?;
        *at += 1;
        v |= u64::from(b & 0x7f).checked_shl(shift)?;
        if b < 0x80 {
            return Some(v);
        }
    }
    None
}

fn get_f32(bytes: &[u8], at: &mut usize) -> Option<f32> {
    let raw: [u8; 4] = bytes.get(*at..*at + 4)?.try_into().ok()?;
    *at += 4;
    Some(f32::from_le_bytes(raw))
}

const GAUGE: u64 = 0;
const COUNTER: u64 = 1;

/// Packs one sample: `(series id, value)` pairs.
pub fn encode_sample(values: &[(u32, Value)]) -> Vec<u8> {
    let mut out = Vec::with_capacity(values.len() * 7);
    for (series, value) in values {
        match value {
            Value::Gauge(g) => {
                put_varint(&mut out, u64::from(*series) << 1 | GAUGE);
                out.extend_from_slice(&(*g as f32).to_le_bytes());
            }
            Value::Counter(c) => {
                put_varint(&mut out, u64::from(*series) << 1 | COUNTER);
                put_varint(&mut out, *c);
            }
        }
    }
    out
}

/// Unpacks a sample; stops at the first byte that does not parse.
pub fn decode_sample(bytes: &[u8]) -> Vec<(u32, Value)> {
    let mut out = Vec::new();
    let mut at = 0;
    while at < bytes.len() {
        let Some(head) = get_varint(bytes, &mut at) else {
            break;
        };
        let Ok(series) = u32::try_from(head >> 1) else {
            break;
        };
        let value = if head & 1 == GAUGE {
            get_f32(bytes, &mut at).map(|g| Value::Gauge(f64::from(g)))
        } else {
            get_varint(bytes, &mut at).map(Value::Counter)
        };
        match value {
            Some(v) => out.push((series, v)),
            None => break,
        }
    }
    out
}

/// The value of one series in a packed sample, without unpacking the others' values.
pub fn find_in_sample(bytes: &[u8], want: u32) -> Option<Value> {
    decode_sample(bytes)
        .into_iter()
        .find(|(s, _)| *s == want)
        .map(|(_, v)| v)
}

/// Packs a row of `slots` buckets starting at `row_start_ms`; an empty slot is one zero byte.
pub fn encode_buckets(buckets: &[Option<Bucket>], row_start_ms: i64) -> Vec<u8> {
    let mut out = Vec::with_capacity(buckets.len() * 20);
    for b in buckets {
        match b {
            None => out.push(0),
            Some(b) => {
                put_varint(&mut out, u64::from(b.count.max(1)));
                for v in [b.min, b.max, b.sum, b.last] {
                    out.extend_from_slice(&(v as f32).to_le_bytes());
                }
                let offset = b.last_ms.saturating_sub(row_start_ms).max(0) as u64;
                put_varint(&mut out, offset);
            }
        }
    }
    out
}

/// Unpacks a row of `slots` buckets; slots past a corrupt byte are empty.
pub fn decode_buckets(bytes: &[u8], slots: usize, row_start_ms: i64) -> Vec<Option<Bucket>> {
    let mut out = vec![None; slots];
    let mut at = 0;
    for slot in out.iter_mut() {
        let Some(count) = get_varint(bytes, &mut at) else {
            break;
        };
        if count == 0 {
            continue;
        }
        let read = |at: &mut usize| -> Option<Bucket> {
            let min = f64::from(get_f32(bytes, at)?);
            let max = f64::from(get_f32(bytes, at)?);
            let sum = f64::from(get_f32(bytes, at)?);
            let last = f64::from(get_f32(bytes, at)?);
            let offset = i64::try_from(get_varint(bytes, at)?).ok()?;
            Some(Bucket {
                min,
                max,
                sum,
                count: u32::try_from(count).unwrap_or(u32::MAX),
                last,
                last_ms: row_start_ms.saturating_add(offset),
            })
        };
        match read(&mut at) {
            Some(b) => *slot = Some(b),
            None => break,
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn samples_round_trip_and_corruption_stops_cleanly() {
        let values = vec![
            (0, Value::Gauge(45.25)),
            (7, Value::Counter(513_713_216_512)),
            (300, Value::Counter(0)),
            (u32::MAX >> 1, Value::Gauge(-3.5)),
        ];
        let bytes = encode_sample(&values);
        assert_eq!(decode_sample(&bytes), values);
        assert_eq!(
            find_in_sample(&bytes, 7),
            Some(Value::Counter(513_713_216_512))
        );
        assert_eq!(find_in_sample(&bytes, 8), None);
        // Cut anywhere: a prefix of the values, never a panic.
        for cut in 0..bytes.len() {
            let got = decode_sample(&bytes[..cut]);
            assert_eq!(got[..], values[..got.len()]);
        }
        assert!(decode_sample(&[0xff; 20]).is_empty());
    }

    #[test]
    fn bucket_rows_round_trip() {
        let start = 1_700_000_000_000;
        let mut b = Bucket::of(2.0, start + 1_000);
        b.add(6.0, start + 61_000);
        let row = vec![None, Some(b), None];
        let bytes = encode_buckets(&row, start);
        assert_eq!(decode_buckets(&bytes, 3, start), row);
        assert_eq!(decode_buckets(&bytes[..5], 3, start), vec![None; 3]);
        assert_eq!(decode_buckets(&[], 2, start), vec![None, None]);
    }
}
