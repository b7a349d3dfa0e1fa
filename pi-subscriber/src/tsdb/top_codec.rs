//! One top-process list packed for the history: a count, then per process its pid, name,
//! user, CPU % in hundredths (as the publisher rounds it) and RSS, as varints and short
//! strings. About 20 bytes a process. Decoding a damaged row gives `None`, never a panic
//! and never more than [`MAX_LIST`] processes.
//!
//! [`encode_list_after`] packs a list against the lists of the sample before (issue 22): a
//! process that was in them (same pid, name and user) is one byte naming it, then its CPU
//! and its RSS's change in 4 KiB pages; about 5 bytes a process instead of 20.

use broker::ProcessTop;

use super::codec::{get_varint, put_varint};
use super::pack::{unzigzag, zigzag};
use crate::validate::names::{MAX_PROCESS_BYTES, MAX_TOP_PROCESSES};

/// Processes a stored list holds at most (what validation lets in).
const MAX_LIST: usize = MAX_TOP_PROCESSES;
/// The user byte of a process without one.
const NO_USER: u8 = 0xff;

pub(super) fn encode_list(list: &[ProcessTop]) -> Vec<u8> {
    let list = &list[..list.len().min(MAX_LIST)];
    let mut out = Vec::with_capacity(1 + list.len() * 24);
    out.push(list.len() as u8);
    for p in list {
        put_process(&mut out, p);
    }
    out
}

fn put_process(out: &mut Vec<u8>, p: &ProcessTop) {
    put_varint(out, u64::from(p.pid));
    put_text(out, Some(&p.name));
    put_text(out, p.user.as_deref());
    put_varint(out, cpu_code(p));
    put_varint(out, p.rss_bytes);
}

fn get_process(bytes: &[u8], at: &mut usize) -> Option<ProcessTop> {
    let pid = u32::try_from(get_varint(bytes, at)?).ok()?;
    let name = get_text(bytes, at)??;
    let user = get_text(bytes, at)?;
    let cpu = get_varint(bytes, at)?;
    let rss_bytes = get_varint(bytes, at)?;
    Some(ProcessTop {
        pid,
        name,
        user,
        cpu_percent: cpu_of(cpu),
        rss_bytes,
    })
}

/// CPU % as stored: hundredths + 1, 0 when the process does not say.
fn cpu_code(p: &ProcessTop) -> u64 {
    p.cpu_percent
        .filter(|c| c.is_finite() && *c >= 0.0)
        .map_or(0, |c| {
            (c * 100.0).round().min(u64::MAX as f64 / 2.0) as u64 + 1
        })
}

fn cpu_of(code: u64) -> Option<f64> {
    code.checked_sub(1).map(|c| c as f64 / 100.0)
}

/// The tag of a process stored whole in a list packed against another.
const WHOLE: u8 = 0xff;
/// RSS changes are stored in pages of this many bytes (the kernel counts RSS in pages).
const PAGE: i64 = 4096;

/// `list` packed against `base` (the lists of the sample before, one after the other): see
/// the module's doc. [`decode_list_after`] with the same `base` gives `list` back exactly.
pub(super) fn encode_list_after(list: &[ProcessTop], base: &[&ProcessTop]) -> Vec<u8> {
    let list = &list[..list.len().min(MAX_LIST)];
    let mut out = Vec::with_capacity(1 + list.len() * 6);
    out.push(list.len() as u8);
    for p in list {
        let same = base
            .iter()
            .take(usize::from(WHOLE))
            .position(|b| b.pid == p.pid && b.name == p.name && b.user == p.user);
        let change = same.and_then(|i| {
            let d = p.rss_bytes.wrapping_sub(base[i].rss_bytes) as i64;
            (d % PAGE == 0).then_some((i, zigzag(d / PAGE)))
        });
        match change {
            Some((i, pages)) => {
                out.push(i as u8);
                put_varint(&mut out, cpu_code(p));
                put_varint(&mut out, pages);
            }
            None => {
                out.push(WHOLE);
                put_process(&mut out, p);
            }
        }
    }
    out
}

/// A list packed by [`encode_list_after`] from its bytes at `at`, against `base`.
pub(super) fn decode_list_after(
    bytes: &[u8],
    at: &mut usize,
    base: &[&ProcessTop],
) -> Option<Vec<ProcessTop>> {
    let n = usize::from(*bytes.get(*at)?);
    if n > MAX_LIST {
        return None;
    }
    *at += 1;
    let mut list = Vec::with_capacity(n);
    for _ in 0..n {
        let tag = *bytes.get(*at)?;
        *at += 1;
        if tag == WHOLE {
            list.push(get_process(bytes, at)?);
            continue;
        }
        let b = base.get(usize::from(tag))?;
        let cpu = get_varint(bytes, at)?;
        let pages = unzigzag(get_varint(bytes, at)?);
        list.push(ProcessTop {
            pid: b.pid,
            name: b.name.clone(),
            user: b.user.clone(),
            cpu_percent: cpu_of(cpu),
            rss_bytes: b.rss_bytes.wrapping_add(pages.wrapping_mul(PAGE) as u64),
        });
    }
    Some(list)
}

fn put_text(out: &mut Vec<u8>, text: Option<&str>) {
    match text {
        Some(t) => {
            // Validated names are short; a longer one is cut at a character boundary.
            let mut end = t.len().min(MAX_PROCESS_BYTES);
            while !t.is_char_boundary(end) {
                end -= 1;
            }
            out.push(end as u8);
            out.extend_from_slice(&t.as_bytes()[..end]);
        }
        None => out.push(NO_USER),
    }
}

fn get_text(bytes: &[u8], at: &mut usize) -> Option<Option<String>> {
    let len = *bytes.get(*at)?;
    *at += 1;
    if len == NO_USER {
        return Some(None);
    }
    let end = at.checked_add(usize::from(len))?;
    let text = std::str::from_utf8(bytes.get(*at..end)?).ok()?;
    *at = end;
    Some(Some(text.to_owned()))
}

pub(super) fn decode_list(bytes: &[u8]) -> Option<Vec<ProcessTop>> {
    let n = usize::from(*bytes.first()?);
    if n > MAX_LIST {
        return None;
    }
    let mut at = 1;
    let mut list = Vec::with_capacity(n);
    for _ in 0..n {
        list.push(get_process(bytes, &mut at)?);
    }
    (at == bytes.len()).then_some(list)
}

#[cfg(test)]
pub(super) mod tests {
    use super::*;

    pub(in super::super) fn p(
        pid: u32,
        name: &str,
        user: Option<&str>,
        cpu: Option<f64>,
        rss: u64,
    ) -> ProcessTop {
        ProcessTop {
            pid,
            name: name.into(),
            user: user.map(Into::into),
            cpu_percent: cpu,
            rss_bytes: rss,
        }
    }

    #[test]
    fn lists_round_trip_exactly() {
        let list = vec![
            p(777, "ffmpeg", Some("root"), Some(190.0), 491_520_000),
            p(4_194_303, "kworker/u8:2-ev", None, Some(0.07), 0),
            p(1, "systemd", Some("65293"), None, 12_288),
            p(42, "é名", Some("ü"), Some(12.34), u64::MAX),
        ];
        let bytes = encode_list(&list);
        assert_eq!(decode_list(&bytes).as_ref(), Some(&list));
        assert_eq!(decode_list(&encode_list(&[])), Some(vec![]));
        // About 20 bytes a process: 1 + (2 + 7 + 5 + 3 + 5) for the first.
        assert_eq!(encode_list(&list[..1]).len(), 23);
    }

    #[test]
    fn damaged_rows_decode_to_none_without_panicking() {
        let bytes = encode_list(&[p(777, "ffmpeg", Some("root"), Some(1.5), 4096)]);
        for cut in 0..bytes.len() {
            assert_eq!(decode_list(&bytes[..cut]), None, "cut at {cut}");
        }
        let mut longer = bytes.clone();
        longer.push(0);
        assert_eq!(decode_list(&longer), None, "trailing bytes");
        assert_eq!(decode_list(&[33]), None, "more than 32 processes");
        let mut bad_utf8 = bytes.clone();
        bad_utf8[4] = 0xff;
        assert_eq!(decode_list(&bad_utf8), None);
        // Every byte string of length ≤ 3 over a few values: no panic.
        for a in [0u8, 1, 2, 0x7f, 0x80, 0xff] {
            for b in [0u8, 1, 0x80, 0xff] {
                for c in [0u8, 1, 0xff] {
                    let _ = decode_list(&[a, b, c]);
                }
            }
        }
    }
}
