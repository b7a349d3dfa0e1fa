//! The compact encodings (issue 22): what keeps the Pi's writes to its SD card small.
//!
//! - A raw sample that directly follows the host's previous one is stored as its difference
//!   from it ([`encode_delta`]): a counter as the zigzag varint of its increase, a gauge as
//!   the change of its value in hundredths when that is exact, else as the XOR of its `f32`
//!   bits; an unchanged value is one byte. A typical tower-sized sample packs into ~100 bytes
//!   instead of ~290; its top-process lists are stored against the sample before the same
//!   way (`top_chain.rs`).
//! - A bucket row ([`encode_buckets`]) stores each bucket's fields as their change from the
//!   bucket before, the same way.
//!
//! Both start with [`MAGIC`], two bytes the older encodings never begin with (a varint
//! written with a needless continuation byte), then a version byte; rows written before
//! keep their old encoding and are read as before. Decoding is total: what does not parse
//! yields what was read so far, never a panic. The values that come back are exactly those
//! the older encodings would have given (gauges and bucket fields are `f32`).

use super::codec::{get_varint, put_varint};
use crate::registry::Value;

/// The first two bytes of every compact encoding.
pub const MAGIC: [u8; 2] = [0x80, 0x00];
const DELTA_V1: u8 = 1;

pub(super) fn zigzag(v: i64) -> u64 {
    ((v << 1) ^ (v >> 63)) as u64
}

pub(super) fn unzigzag(v: u64) -> i64 {
    ((v >> 1) as i64) ^ -((v & 1) as i64)
}

/// A gauge as it is stored: rounded to `f32`.
pub fn stored(g: f64) -> f64 {
    f64::from(g as f32)
}

fn hundredths(g: f64) -> Option<i64> {
    let k = (g * 100.0).round();
    if !k.is_finite() || k.abs() > 1e15 {
        return None;
    }
    let k = k as i64;
    (stored(k as f64 / 100.0).to_bits() == stored(g).to_bits()).then_some(k)
}

/// Appends gauge `g` as its change from `base` (both as stored): the shorter of the change in
/// hundredths (tag 0) and the XOR of the `f32` bits (tag 1).
pub(super) fn put_gauge(out: &mut Vec<u8>, g: f64, base: f64) {
    let base = stored(base);
    let xor = u64::from((g as f32).to_bits() ^ (base as f32).to_bits()) << 1 | 1;
    let dec = match (hundredths(g), hundredths(base)) {
        (Some(k), Some(b)) => k
            .checked_sub(b)
            .map(zigzag)
            .and_then(|z| z.checked_shl(1).filter(|s| s >> 1 == z)),
        _ => None,
    };
    match dec {
        Some(d) if varint_len(d) <= varint_len(xor) => put_varint(out, d),
        _ => put_varint(out, xor),
    }
}

pub(super) fn get_gauge(bytes: &[u8], at: &mut usize, base: f64) -> Option<f64> {
    let base = stored(base);
    let v = get_varint(bytes, at)?;
    if v & 1 == 1 {
        let bits = u32::try_from(v >> 1).ok()? ^ (base as f32).to_bits();
        return Some(f64::from(f32::from_bits(bits)));
    }
    let k = hundredths(base)?.checked_add(unzigzag(v >> 1))?;
    Some(stored(k as f64 / 100.0))
}

fn varint_len(v: u64) -> usize {
    (64 - v.leading_zeros() as usize).max(1).div_ceil(7)
}

/// What a raw row's blob holds.
pub enum Packed<'a> {
    /// Every value ([`super::codec::decode_sample`]).
    Full(&'a [u8]),
    /// The change from the host's sample `back_ms` earlier with the seq before.
    Delta { back_ms: i64, body: &'a [u8] },
    /// A compact encoding this version does not know.
    Unknown,
}

pub fn packed(bytes: &[u8]) -> Packed<'_> {
    let Some(rest) = bytes.strip_prefix(&MAGIC[..]) else {
        return Packed::Full(bytes);
    };
    match rest.split_first() {
        Some((&DELTA_V1, rest)) => {
            let mut at = 0;
            match get_varint(rest, &mut at).and_then(|b| i64::try_from(b).ok()) {
                Some(back_ms) => Packed::Delta {
                    back_ms,
                    body: &rest[at..],
                },
                None => Packed::Unknown,
            }
        }
        _ => Packed::Unknown,
    }
}

/// Packs `values` as their change from `base`, the sample `back_ms` earlier; `None` when the
/// two do not hold the same series of the same kinds in the same order.
pub fn encode_delta(
    values: &[(u32, Value)],
    base: &[(u32, Value)],
    back_ms: i64,
) -> Option<Vec<u8>> {
    if values.len() != base.len() || back_ms <= 0 {
        return None;
    }
    let mut out = Vec::with_capacity(values.len() * 2 + 8);
    out.extend_from_slice(&MAGIC);
    out.push(DELTA_V1);
    put_varint(&mut out, back_ms as u64);
    for ((id, v), (bid, b)) in values.iter().zip(base) {
        if id != bid {
            return None;
        }
        match (v, b) {
            (Value::Gauge(g), Value::Gauge(bg)) => put_gauge(&mut out, *g, *bg),
            (Value::Counter(c), Value::Counter(bc)) => {
                put_varint(&mut out, zigzag(c.wrapping_sub(*bc) as i64))
            }
            _ => return None,
        }
    }
    Some(out)
}

/// Unpacks a delta body against its base's values; stops at the first byte that does not
/// parse.
pub fn decode_delta(body: &[u8], base: &[(u32, Value)]) -> Vec<(u32, Value)> {
    let mut out = Vec::with_capacity(base.len());
    let mut at = 0;
    for (id, b) in base {
        let v = match b {
            Value::Gauge(bg) => get_gauge(body, &mut at, *bg).map(Value::Gauge),
            Value::Counter(bc) => get_varint(body, &mut at)
                .map(|d| Value::Counter(bc.wrapping_add(unzigzag(d) as u64))),
        };
        match v {
            Some(v) => out.push((*id, v)),
            None => break,
        }
    }
    out
}

pub use super::bucket_pack::{decode_buckets, encode_buckets, unpack_buckets};

#[cfg(test)]
#[path = "pack_tests.rs"]
mod tests;
