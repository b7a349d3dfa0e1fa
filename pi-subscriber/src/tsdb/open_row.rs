//! An open bucket row in memory (issue 22): only the buckets that hold values, each field in
//! as few bytes as keep it exact.
//!
//! Dense, a row was 60 (minute tier) or 24 (hour tier) `Option<Bucket>` of 56 bytes each,
//! ~4.7 KB a series whether the hour or the day had just begun or not. Here a bucket takes
//! 10 to 47 bytes and an empty slot none. Nothing is rounded: a bucket read back is bit for
//! bit the one a dense row would hold (the values are `f64` until the row is written, where
//! `pack.rs` stores them as `f32`).

use super::rollup::{Bucket, Tier};

/// The buckets of one open row, newest slot first: samples come in time order, so the bucket
/// a value goes to is almost always the first one.
///
/// A bucket is a 3-byte header and its fields:
/// - header: its slot; the kinds of min, max, sum and last (`f32` when that is exact, `f64`,
///   or for the last three, the same bits as min: nothing stored); the widths of the count
///   and of the time of last;
/// - min, max, sum, last, as their kinds say;
/// - the count in 1, 2 or 4 bytes;
/// - the time of last as its offset from the slot's start in 2 or 4 bytes, or whole (8
///   bytes) when it is not in the slot.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(super) struct OpenRow {
    bytes: Box<[u8]>,
}

const F32: u8 = 0;
const F64: u8 = 1;
const SAME: u8 = 2;

const HEADER: usize = 3;
/// The longest bucket: header, four `f64`, a 4-byte count, a whole time.
const MAX_ENTRY: usize = HEADER + 4 * 8 + 4 + 8;

impl OpenRow {
    /// Adds `value` at `ts_ms` to bucket `slot` of the `tier` row starting at `start_ms`, as
    /// [`Bucket::add`] would; a slot beyond the row's is ignored.
    pub fn add(&mut self, tier: Tier, start_ms: i64, slot: usize, value: f64, ts_ms: i64) {
        let Some(slot8) = u8::try_from(slot).ok().filter(|_| slot < tier.slots()) else {
            return;
        };
        let at = self.find(slot8);
        let found = self
            .bytes
            .get(at..)
            .filter(|rest| rest.first() == Some(&slot8))
            .and_then(|rest| Some((decode(rest, tier, start_ms)?, entry_len(rest)?)));
        let (bucket, old_len) = match found {
            Some((mut b, len)) => {
                b.add(value, ts_ms);
                (b, len)
            }
            None => (Bucket::of(value, ts_ms), 0),
        };
        let mut buf = [0u8; MAX_ENTRY];
        let len = encode(slot8, &bucket, slot_start(tier, start_ms, slot), &mut buf);
        let new = &buf[..len];
        if len == old_len {
            self.bytes[at..at + len].copy_from_slice(new);
        } else {
            let mut bytes = Vec::with_capacity(self.bytes.len() - old_len + len);
            bytes.extend_from_slice(&self.bytes[..at]);
            bytes.extend_from_slice(new);
            bytes.extend_from_slice(&self.bytes[at + old_len..]);
            self.bytes = bytes.into_boxed_slice();
        }
    }

    /// The buckets that hold values, newest slot first, with their slots.
    pub fn buckets(&self, tier: Tier, start_ms: i64) -> impl Iterator<Item = (usize, Bucket)> + '_ {
        let mut at = 0;
        std::iter::from_fn(move || {
            let rest = self.bytes.get(at..)?;
            let len = entry_len(rest)?;
            let b = decode(rest, tier, start_ms)?;
            let slot = usize::from(rest[0]);
            at += len;
            Some((slot, b))
        })
    }

    /// The row as a dense one: a cell per slot.
    #[cfg(test)]
    pub fn to_dense(&self, tier: Tier, start_ms: i64) -> Vec<Option<Bucket>> {
        let mut row = vec![None; tier.slots()];
        for (slot, b) in self.buckets(tier, start_ms) {
            if let Some(cell) = row.get_mut(slot) {
                *cell = Some(b);
            }
        }
        row
    }

    /// Bytes the buckets take (the allocation, without the 16-byte handle).
    #[cfg(test)]
    pub fn heap_bytes(&self) -> usize {
        self.bytes.len()
    }

    /// The offset of `slot`'s bucket, or of where it goes: the first bucket whose slot is not
    /// after it.
    fn find(&self, slot: u8) -> usize {
        let mut at = 0;
        while let Some((s, len)) = self.entry_at(at) {
            if s <= slot {
                break;
            }
            at += len;
        }
        at
    }

    /// The slot and length of the bucket at `at`.
    fn entry_at(&self, at: usize) -> Option<(u8, usize)> {
        let rest = self.bytes.get(at..)?;
        Some((*rest.first()?, entry_len(rest)?))
    }
}

fn slot_start(tier: Tier, start_ms: i64, slot: usize) -> i64 {
    start_ms.saturating_add((slot as i64).saturating_mul(tier.bucket_ms()))
}

fn is_f32(v: f64) -> bool {
    f64::from(v as f32).to_bits() == v.to_bits()
}

fn kind(v: f64, min: f64) -> u8 {
    if v.to_bits() == min.to_bits() {
        SAME
    } else if is_f32(v) {
        F32
    } else {
        F64
    }
}

fn value_len(kind: u8) -> usize {
    match kind {
        F32 => 4,
        F64 => 8,
        _ => 0,
    }
}

fn count_len(code: u8) -> usize {
    match code {
        0 => 1,
        1 => 2,
        _ => 4,
    }
}

fn time_len(code: u8) -> usize {
    match code {
        0 => 2,
        1 => 4,
        _ => 8,
    }
}

/// The length of the bucket `bytes` begins with, from its header.
fn entry_len(bytes: &[u8]) -> Option<usize> {
    let kinds = *bytes.get(1)?;
    let widths = *bytes.get(2)?;
    let len = HEADER
        + value_len(kinds & 1)
        + value_len((kinds >> 1) & 3)
        + value_len((kinds >> 3) & 3)
        + value_len((kinds >> 5) & 3)
        + count_len(widths & 3)
        + time_len((widths >> 2) & 3);
    (len <= bytes.len()).then_some(len)
}

/// Writes bucket `b` of `slot` (starting at `slot_start_ms`) into `out`; returns its length.
fn encode(slot: u8, b: &Bucket, slot_start_ms: i64, out: &mut [u8; MAX_ENTRY]) -> usize {
    let min_kind = if is_f32(b.min) { F32 } else { F64 };
    let (max_kind, sum_kind, last_kind) =
        (kind(b.max, b.min), kind(b.sum, b.min), kind(b.last, b.min));
    let count_code = if b.count <= 0xFF {
        0
    } else if b.count <= 0xFFFF {
        1
    } else {
        2
    };
    let offset = b.last_ms.checked_sub(slot_start_ms);
    let (time_code, time) = match offset {
        Some(o) if (0..=0xFFFF).contains(&o) => (0, o),
        Some(o) if (0..=0xFFFF_FFFF).contains(&o) => (1, o),
        _ => (2, b.last_ms),
    };
    out[0] = slot;
    out[1] = min_kind | max_kind << 1 | sum_kind << 3 | last_kind << 5;
    out[2] = count_code | time_code << 2;
    let mut at = HEADER;
    let mut put = |bytes: &[u8]| {
        out[at..at + bytes.len()].copy_from_slice(bytes);
        at += bytes.len();
    };
    for (v, k) in [
        (b.min, min_kind),
        (b.max, max_kind),
        (b.sum, sum_kind),
        (b.last, last_kind),
    ] {
        match k {
            F32 => put(&(v as f32).to_le_bytes()),
            F64 => put(&v.to_le_bytes()),
            _ => {}
        }
    }
    put(&b.count.to_le_bytes()[..count_len(count_code)]);
    put(&time.to_le_bytes()[..time_len(time_code)]);
    at
}

/// The bucket `bytes` begins with, of the `tier` row starting at `start_ms`.
fn decode(bytes: &[u8], tier: Tier, start_ms: i64) -> Option<Bucket> {
    let len = entry_len(bytes)?;
    let (slot, kinds, widths) = (bytes[0], bytes[1], bytes[2]);
    let mut at = HEADER;
    let mut take = |n: usize| -> Option<[u8; 8]> {
        let mut le = [0u8; 8];
        le[..n].copy_from_slice(bytes.get(at..at + n)?);
        at += n;
        Some(le)
    };
    let mut value = |kind: u8, min: f64| -> Option<f64> {
        Some(match kind {
            F32 => {
                let le = take(4)?;
                f64::from(f32::from_le_bytes([le[0], le[1], le[2], le[3]]))
            }
            F64 => f64::from_le_bytes(take(8)?),
            _ => min,
        })
    };
    let min = value(kinds & 1, 0.0)?;
    let max = value((kinds >> 1) & 3, min)?;
    let sum = value((kinds >> 3) & 3, min)?;
    let last = value((kinds >> 5) & 3, min)?;
    let count_code = widths & 3;
    let time_code = (widths >> 2) & 3;
    let le = take(count_len(count_code))?;
    let count = u32::from_le_bytes([le[0], le[1], le[2], le[3]]);
    let time = i64::from_le_bytes(take(time_len(time_code))?);
    let last_ms = if time_code == 2 {
        time
    } else {
        slot_start(tier, start_ms, usize::from(slot)).wrapping_add(time)
    };
    debug_assert_eq!(at, len);
    Some(Bucket {
        min,
        max,
        sum,
        count,
        last,
        last_ms,
    })
}

#[cfg(test)]
#[path = "open_row_tests.rs"]
mod tests;
