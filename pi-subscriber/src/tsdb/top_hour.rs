//! A host's minute peaks of one hour in one row (issue 22, target 3): the 60 minutes' lists
//! one after the other, each packed against the lists of the minute before
//! ([`encode_list_after`]: a process still there is ~5 bytes, not ~20).
//!
//! A row of a minute (the layout of before, still read) cost its key, four columns and two
//! whole lists, ~280 bytes a minute on a tower; an hour's row ~90 bytes a minute
//! (`tsdb/top_hour.rs` tests). In the minute peaks' day tables (`parts.rs`) the row's key is
//! the hour's start, its `cpu` column holds the row below, `mem` is empty, and `cpu_peak` and
//! `mem_peak` are the hour's highest.
//!
//! Layout: [`MAGIC`], the number of minutes (varint), then per minute in time order: its
//! minute of the hour (varint), for CPU then memory the peak (`f32`) and the sample's time
//! within the minute (varint ms), then the CPU list and the memory list, both packed against
//! the previous minute's two lists. Decoding is total: a damaged row reads as none.

use std::collections::BTreeMap;

use broker::ProcessTop;

use rusqlite::{params, OptionalExtension};

use super::codec::{get_varint, put_varint};
use super::db::Tsdb;
use super::rollup::{HOUR_MS, MINUTE_MS};
use super::top_codec::{decode_list_after, encode_list_after};

/// The first bytes of an hour's row. A minute's row of before starts its `cpu` column with
/// the list's length, at most 32 (what validation lets in): never this.
pub(super) const MAGIC: [u8; 2] = [0xf1, 0x01];

/// What one minute's peak was chosen by (CPU use in %, memory used in MB, -1 when the sample
/// did not say), the sample's time and its list.
#[derive(Debug, Clone, PartialEq)]
pub(super) struct Peak {
    pub value: f64,
    pub ts: i64,
    pub list: Vec<ProcessTop>,
}

impl Peak {
    /// Whether `other` takes this one's place: strictly higher (ties keep the first).
    fn beaten_by(&self, other: &Peak) -> bool {
        other.value > self.value
    }
}

/// An hour's peaks: by minute start, the CPU peak and the memory peak.
pub(super) type Hour = BTreeMap<i64, (Peak, Peak)>;

/// Merges `minute`'s peaks into `hour`: each rises, never falls.
pub(super) fn merge(hour: &mut Hour, minute: i64, cpu: Peak, mem: Peak) {
    match hour.get_mut(&minute) {
        Some((c, m)) => {
            if c.beaten_by(&cpu) {
                *c = cpu;
            }
            if m.beaten_by(&mem) {
                *m = mem;
            }
        }
        None => {
            hour.insert(minute, (cpu, mem));
        }
    }
}

/// Whether a stored `cpu` column is an hour's row.
pub(super) fn is_hour_row(bytes: &[u8]) -> bool {
    bytes.starts_with(&MAGIC)
}

/// The row of the hour starting at `start`; minutes outside it are left out.
pub(super) fn encode(start: i64, hour: &Hour) -> Vec<u8> {
    let inside: Vec<_> = hour
        .iter()
        .filter(|(m, _)| (start..start.saturating_add(HOUR_MS)).contains(*m))
        .collect();
    let mut out = Vec::with_capacity(8 + 100 * inside.len());
    out.extend_from_slice(&MAGIC);
    put_varint(&mut out, inside.len() as u64);
    let mut base: Vec<ProcessTop> = Vec::new();
    for (&minute, (cpu, mem)) in inside {
        put_varint(&mut out, ((minute - start) / MINUTE_MS) as u64);
        for p in [cpu, mem] {
            out.extend_from_slice(&(p.value as f32).to_le_bytes());
            put_varint(
                &mut out,
                p.ts.saturating_sub(minute).clamp(0, MINUTE_MS - 1) as u64,
            );
        }
        let refs: Vec<&ProcessTop> = base.iter().collect();
        out.extend_from_slice(&encode_list_after(&cpu.list, &refs));
        out.extend_from_slice(&encode_list_after(&mem.list, &refs));
        base = cpu.list.iter().chain(&mem.list).cloned().collect();
    }
    out
}

/// The hour starting at `start` from its row; `None` for one that does not parse whole.
pub(super) fn decode(start: i64, bytes: &[u8]) -> Option<Hour> {
    let mut at = MAGIC.len();
    if !is_hour_row(bytes) {
        return None;
    }
    let n = get_varint(bytes, &mut at)?;
    if n > 60 {
        return None;
    }
    let mut hour = Hour::new();
    let mut base: Vec<ProcessTop> = Vec::new();
    let mut next_minute = 0;
    for _ in 0..n {
        let m = get_varint(bytes, &mut at)?;
        if m < next_minute || m >= 60 {
            return None;
        }
        next_minute = m + 1;
        let minute = start.checked_add(m as i64 * MINUTE_MS)?;
        let mut peak = || -> Option<(f64, i64)> {
            let v = f32::from_le_bytes(bytes.get(at..at.checked_add(4)?)?.try_into().ok()?);
            at += 4;
            let off = get_varint(bytes, &mut at)?;
            (off < MINUTE_MS as u64).then_some((f64::from(v), minute + off as i64))
        };
        let (cpu_value, cpu_ts) = peak()?;
        let (mem_value, mem_ts) = peak()?;
        let refs: Vec<&ProcessTop> = base.iter().collect();
        let cpu = decode_list_after(bytes, &mut at, &refs)?;
        let mem = decode_list_after(bytes, &mut at, &refs)?;
        base = cpu.iter().chain(&mem).cloned().collect();
        let p = |value, ts, list| Peak { value, ts, list };
        hour.insert(
            minute,
            (p(cpu_value, cpu_ts, cpu), p(mem_value, mem_ts, mem)),
        );
    }
    (at == bytes.len()).then_some(hour)
}

impl Tsdb {
    /// What `table` holds of `host`'s hour starting at `start`: its hour's row, or the row of
    /// before of the hour's first minute (a database from before), or nothing.
    pub(super) fn peaks_row(&self, table: &str, host: i64, start: i64) -> rusqlite::Result<Hour> {
        let row = self
            .conn
            .prepare_cached(&format!(
                "SELECT cpu_peak, cpu_ts, cpu, mem_peak, mem_ts, mem FROM {table}
                 WHERE host = ?1 AND start = ?2"
            ))?
            .query_row(params![host, start], |r| {
                Ok((
                    (r.get(0)?, r.get(1)?, r.get::<_, Vec<u8>>(2)?),
                    (r.get(3)?, r.get(4)?, r.get::<_, Vec<u8>>(5)?),
                ))
            })
            .optional()?;
        let Some((cpu, mem)) = row else {
            return Ok(Hour::new());
        };
        if is_hour_row(&cpu.2) {
            return Ok(decode(start, &cpu.2).unwrap_or_default());
        }
        let mut hour = Hour::new();
        if let (Some(c), Some(m)) = (
            super::top::as_peak(Some(cpu)),
            super::top::as_peak(Some(mem)),
        ) {
            merge(&mut hour, start, c, m);
        }
        Ok(hour)
    }
}

#[cfg(test)]
#[path = "top_hour_tests.rs"]
mod tests;
