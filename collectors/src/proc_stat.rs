//! `/proc/<pid>/stat` (proc(5)): the fields the top-process lists use, parsed without
//! allocating; and the passwd file's user names.

use std::collections::HashMap;

/// The `flags` bit of a kernel thread (`include/linux/sched.h`).
const PF_KTHREAD: u64 = 0x0020_0000;

/// One `/proc/<pid>/stat`, the fields used.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProcStat {
    pub pid: u32,
    pub comm: String,
    /// utime + stime, clock ticks.
    pub ticks: u64,
    pub starttime: u64,
    /// Resident pages.
    pub rss_pages: u64,
}

/// One `stat` line's fields, borrowed from the buffer it was read into.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct StatRef<'a> {
    pub pid: u32,
    pub comm: &'a [u8],
    pub ticks: u64,
    pub starttime: u64,
    pub rss_pages: u64,
    /// `PF_KTHREAD` in its flags: a kernel thread (one thread, no memory of its own).
    pub kernel_thread: bool,
}

/// The `i`th space-separated field of `rest` as a number (no allocation).
fn fields(rest: &[u8]) -> impl Iterator<Item = &[u8]> {
    rest.split(|b| *b == b' ' || *b == b'\n')
        .filter(|f| !f.is_empty())
}

pub(crate) fn number(f: &[u8]) -> Option<u64> {
    if f.is_empty() || f.len() > 20 {
        return None;
    }
    f.iter().try_fold(0u64, |n, b| {
        b.is_ascii_digit()
            .then(|| n.checked_mul(10)?.checked_add(u64::from(b - b'0')))
            .flatten()
    })
}

/// Parses one `stat` line without allocating. `comm` may hold spaces and parentheses: it
/// runs from the first `(` to the last `)`.
pub(crate) fn parse_stat_bytes(text: &[u8]) -> Option<StatRef<'_>> {
    let open = text.iter().position(|b| *b == b'(')?;
    let close = text.iter().rposition(|b| *b == b')')?;
    let pid = u32::try_from(number(text[..open].trim_ascii())?).ok()?;
    let comm = text.get(open + 1..close)?;
    // After comm: state (0), ppid (1), … flags (6), … utime (11), stime (12), … starttime
    // (19), vsize (20), rss (21).
    let mut f = fields(text.get(close + 1..)?);
    let mut nth = |skip: usize| f.nth(skip).and_then(number);
    let flags = nth(6)?;
    let utime = nth(4)?;
    let stime = nth(0)?;
    let starttime = nth(6)?;
    let rss_pages = nth(1)?;
    Some(StatRef {
        pid,
        comm,
        ticks: utime.saturating_add(stime),
        starttime,
        rss_pages,
        kernel_thread: flags & PF_KTHREAD != 0,
    })
}

/// Parses one `stat` line. `comm` may hold spaces and parentheses: it runs from the first
/// `(` to the last `)`.
pub fn parse_stat(text: &str) -> Option<ProcStat> {
    let s = parse_stat_bytes(text.as_bytes())?;
    Some(ProcStat {
        pid: s.pid,
        comm: String::from_utf8_lossy(s.comm).into_owned(),
        ticks: s.ticks,
        starttime: s.starttime,
        rss_pages: s.rss_pages,
    })
}

/// The passwd file's uid → name.
pub fn parse_passwd(text: &str) -> HashMap<u32, String> {
    text.lines()
        .filter_map(|l| {
            let mut f = l.split(':');
            let name = f.next()?;
            let uid = f.nth(1)?.parse().ok()?;
            Some((uid, name.to_owned()))
        })
        .collect()
}
