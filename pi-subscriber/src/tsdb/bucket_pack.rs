//! The bucket rows' compact encodings (issue 22): version 1 stores every field of every
//! bucket as its change from the bucket before; version 2 ([`encode_buckets`]) only the fields
//! that changed, and a run of equal or empty buckets as one byte. Both are read.

use super::codec::{get_varint, put_varint};
use super::pack::{get_gauge, put_gauge, stored, unzigzag, zigzag, MAGIC};
use super::rollup::{Bucket, Tier};

pub(super) const BUCKETS_V1: u8 = 2;
pub(super) const BUCKETS_V2: u8 = 3;

/// A bucket as the row stores it: `f32` fields, a count of at least one, a time within the
/// row or after its start.
fn normal(b: &Bucket, row_start_ms: i64) -> Bucket {
    Bucket {
        min: stored(b.min),
        max: stored(b.max),
        sum: stored(b.sum),
        count: b.count.max(1),
        last: stored(b.last),
        last_ms: row_start_ms.saturating_add(b.last_ms.saturating_sub(row_start_ms).max(0)),
    }
}

/// Packs a row of buckets (version 2). Each bucket is predicted by the bucket before it (the
/// row's first by a bucket of one 0 at the row's start), and a tag byte says what differs:
///
/// - `0b00mmmmmm` (`m` ≠ 0): the fields whose bit is set in `m` follow, each as its change
///   from the prediction, in this order: count (a varint), min, max, sum, last (as gauges),
///   the time of `last` within its slot (a zigzag varint);
/// - `0b01nnnnnn`: `n + 1` buckets equal to the prediction (the time within the slot too);
/// - `0b10nnnnnn`: `n + 1` empty slots.
///
/// A series that stands still (a load, a total, a counter at a steady rate) costs a byte a
/// row, where version 1 spent six a bucket; a field that changes costs what it did.
pub fn encode_buckets(buckets: &[Option<Bucket>], row_start_ms: i64, bucket_ms: i64) -> Vec<u8> {
    let mut w = Runs {
        out: Vec::with_capacity(buckets.len() * 6 + 3),
        open: None,
    };
    w.out.extend_from_slice(&MAGIC);
    w.out.push(BUCKETS_V2);
    let mut prev = Bucket::of(0.0, row_start_ms);
    let mut prev_in = 0i64;
    for (slot, b) in buckets.iter().enumerate() {
        let Some(b) = b else {
            w.add(RUN_EMPTY);
            continue;
        };
        let b = normal(b, row_start_ms);
        let within = within_slot(b.last_ms, row_start_ms, slot, bucket_ms);
        let differs = |f: f64, p: f64| f.to_bits() != p.to_bits();
        let mask = [
            (b.count != prev.count, F_COUNT),
            (differs(b.min, prev.min), F_MIN),
            (differs(b.max, prev.max), F_MAX),
            (differs(b.sum, prev.sum), F_SUM),
            (differs(b.last, prev.last), F_LAST),
            (within != prev_in, F_WITHIN),
        ]
        .iter()
        .filter(|(changed, _)| *changed)
        .fold(0, |mask, (_, bit)| mask | bit);
        if mask == 0 {
            w.add(RUN_EQUAL);
            continue;
        }
        w.close();
        let out = &mut w.out;
        out.push(mask);
        if mask & F_COUNT != 0 {
            put_varint(out, u64::from(b.count));
        }
        for (bit, f, p) in [
            (F_MIN, b.min, prev.min),
            (F_MAX, b.max, prev.max),
            (F_SUM, b.sum, prev.sum),
            (F_LAST, b.last, prev.last),
        ] {
            if mask & bit != 0 {
                put_gauge(out, f, p);
            }
        }
        if mask & F_WITHIN != 0 {
            put_varint(out, zigzag(within.wrapping_sub(prev_in)));
        }
        prev = b;
        prev_in = within;
    }
    w.close();
    w.out
}

const F_COUNT: u8 = 1;
const F_MIN: u8 = 2;
const F_MAX: u8 = 4;
const F_SUM: u8 = 8;
const F_LAST: u8 = 16;
const F_WITHIN: u8 = 32;
const RUN_EQUAL: u8 = 0x40;
const RUN_EMPTY: u8 = 0x80;
const CLASS: u8 = 0xc0;
const RUN_MAX: u8 = 64;

/// The time of `last_ms` from the start of its slot.
fn within_slot(last_ms: i64, row_start_ms: i64, slot: usize, bucket_ms: i64) -> i64 {
    last_ms
        .wrapping_sub(row_start_ms)
        .wrapping_sub((slot as i64).wrapping_mul(bucket_ms))
}

/// The encoder's output and the run of equal or empty buckets not yet written.
struct Runs {
    out: Vec<u8>,
    open: Option<(u8, u8)>,
}

impl Runs {
    fn add(&mut self, class: u8) {
        match &mut self.open {
            Some((c, n)) if *c == class && *n < RUN_MAX => *n += 1,
            _ => {
                self.close();
                self.open = Some((class, 1));
            }
        }
    }

    fn close(&mut self) {
        if let Some((class, n)) = self.open.take() {
            self.out.push(class | (n - 1));
        }
    }
}

/// Unpacks a compact bucket row (`bytes` after [`MAGIC`]) of either version; `None` when it
/// is not one. What does not parse ends the row: the slots after it are empty.
pub fn decode_buckets(
    bytes: &[u8],
    slots: usize,
    row_start_ms: i64,
    bucket_ms: i64,
) -> Option<Vec<Option<Bucket>>> {
    let rest = bytes.strip_prefix(&MAGIC[..])?;
    let (&version, body) = rest.split_first()?;
    let mut out = vec![None; slots];
    match version {
        BUCKETS_V1 => decode_v1(body, &mut out, row_start_ms, bucket_ms),
        BUCKETS_V2 => decode_v2(body, &mut out, row_start_ms, bucket_ms),
        _ => {}
    }
    Some(out)
}

fn decode_v2(body: &[u8], out: &mut [Option<Bucket>], row_start_ms: i64, bucket_ms: i64) {
    let mut at = 0;
    let mut slot = 0;
    let mut prev = Bucket::of(0.0, row_start_ms);
    let mut prev_in = 0i64;
    let time = |slot: usize, within: i64| {
        row_start_ms
            .checked_add((slot as i64).checked_mul(bucket_ms)?)?
            .checked_add(within)
    };
    while slot < out.len() {
        let Some(&tag) = body.get(at) else {
            return;
        };
        at += 1;
        let n = usize::from(tag & !CLASS) + 1;
        match tag & CLASS {
            RUN_EMPTY => slot += n,
            RUN_EQUAL => {
                for _ in 0..n.min(out.len() - slot) {
                    let Some(last_ms) = time(slot, prev_in) else {
                        return;
                    };
                    out[slot] = Some(Bucket { last_ms, ..prev });
                    slot += 1;
                }
            }
            0 if tag != 0 => {
                let mut read = || -> Option<Bucket> {
                    let mut b = prev;
                    if tag & F_COUNT != 0 {
                        b.count = u32::try_from(get_varint(body, &mut at)?).unwrap_or(u32::MAX);
                    }
                    for (bit, field) in [
                        (F_MIN, &mut b.min),
                        (F_MAX, &mut b.max),
                        (F_SUM, &mut b.sum),
                        (F_LAST, &mut b.last),
                    ] {
                        if tag & bit != 0 {
                            *field = get_gauge(body, &mut at, *field)?;
                        }
                    }
                    if tag & F_WITHIN != 0 {
                        prev_in = prev_in.wrapping_add(unzigzag(get_varint(body, &mut at)?));
                    }
                    b.last_ms = time(slot, prev_in)?;
                    Some(b)
                };
                let Some(b) = read() else {
                    return;
                };
                prev = b;
                out[slot] = Some(b);
                slot += 1;
            }
            _ => return,
        }
    }
}

fn decode_v1(body: &[u8], out: &mut [Option<Bucket>], row_start_ms: i64, bucket_ms: i64) {
    let mut at = 0;
    let mut prev = Bucket::of(0.0, row_start_ms);
    let mut prev_in = 0i64;
    for (slot, cell) in out.iter_mut().enumerate() {
        let Some(count) = get_varint(body, &mut at) else {
            break;
        };
        if count == 0 {
            continue;
        }
        let mut read = || -> Option<Bucket> {
            let min = get_gauge(body, &mut at, prev.min)?;
            let max = get_gauge(body, &mut at, prev.max)?;
            let sum = get_gauge(body, &mut at, prev.sum)?;
            let last = get_gauge(body, &mut at, prev.last)?;
            let within = prev_in.wrapping_add(unzigzag(get_varint(body, &mut at)?));
            let last_ms = row_start_ms
                .checked_add((slot as i64).checked_mul(bucket_ms)?)?
                .checked_add(within)?;
            prev_in = within;
            Some(Bucket {
                min,
                max,
                sum,
                count: u32::try_from(count).unwrap_or(u32::MAX),
                last,
                last_ms,
            })
        };
        match read() {
            Some(b) => {
                prev = b;
                *cell = Some(b);
            }
            None => break,
        }
    }
}

/// A bucket row of `tier` in either encoding.
pub fn unpack_buckets(bytes: &[u8], tier: Tier, row_start_ms: i64) -> Vec<Option<Bucket>> {
    decode_buckets(bytes, tier.slots(), row_start_ms, tier.bucket_ms())
        .unwrap_or_else(|| super::codec::decode_buckets(bytes, tier.slots(), row_start_ms))
}

#[cfg(test)]
#[path = "bucket_pack_tests.rs"]
mod tests;
