//! Giving back the pages start-up needed and idle work does not (issue 22).
//!
//! The kernel maps a binary's code and read-only data in 64 kB windows as they are first
//! touched, and keeps them mapped. Start-up touches much that a running daemon never runs
//! again (argument and config parsing, the ring's recovery, the broker's set-up, the first
//! discovery of sensors and mounts, and the dynamic loader's relocation tables), so those
//! pages stay in the process's resident set for good. [`trim_resident_set`] unmaps them once
//! start-up is over: a page the daemon still uses is mapped again from the page cache the
//! next time it is touched (a minor fault, no disk read), so what stays resident is what it
//! runs.
//!
//! Only mappings of a file that hold none of the process's own data are trimmed: no write
//! permission, private, and no anonymous (copied-on-write) page. A relocated read-only
//! segment (RELRO) has anonymous pages and is left alone: dropping them would bring back the
//! file's unrelocated bytes.

use std::io;

/// What [`trim_resident_set`] gave back.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Trimmed {
    /// Mappings unmapped (and mapped again on demand).
    pub mappings: usize,
    /// Their resident size just before, in bytes.
    pub resident_bytes: u64,
    /// Whether `malloc_trim` gave heap pages back (never where the C library has none).
    pub heap_released: bool,
}

/// A mapping [`clean_file_mappings`] found: `[start, end)` and its resident kB.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CleanMapping {
    pub start: usize,
    pub end: usize,
    pub resident_kb: u64,
}

/// The mappings of `/proc/self/smaps` text that may be dropped and read again: the
/// executable's (`exe`) or a shared library's, private, not writable, no anonymous page,
/// something resident. Only those: they stay mapped while the process runs (a library
/// loaded at start is never unloaded, and the daemons `dlclose` nothing), so the range
/// advised cannot have become another mapping meanwhile. Anything it cannot parse is
/// skipped, never guessed.
pub fn clean_file_mappings(smaps: &str, exe: &str) -> Vec<CleanMapping> {
    let mut found = Vec::new();
    let mut current: Option<(CleanMapping, bool)> = None;
    let mut anonymous_kb: Option<u64> = None;
    let mut finish = |current: Option<(CleanMapping, bool)>, anonymous_kb: Option<u64>| {
        if let Some((mapping, eligible)) = current {
            if eligible && anonymous_kb == Some(0) && mapping.resident_kb > 0 {
                found.push(mapping);
            }
        }
    };
    for line in smaps.lines() {
        if let Some(header) = parse_header(line, exe) {
            finish(current.take(), anonymous_kb.take());
            current = Some(header);
            continue;
        }
        let Some((key, rest)) = line.split_once(':') else {
            continue;
        };
        let kb = || {
            rest.trim()
                .strip_suffix("kB")
                .and_then(|n| n.trim().parse::<u64>().ok())
        };
        match key {
            "Rss" => {
                if let (Some((mapping, _)), Some(kb)) = (current.as_mut(), kb()) {
                    mapping.resident_kb = kb;
                }
            }
            "Anonymous" => anonymous_kb = kb(),
            _ => {}
        }
    }
    finish(current, anonymous_kb);
    found
}

/// A header line `start-end perms offset dev inode [path]`: the mapping, and whether its
/// permissions and path make it a candidate.
fn parse_header(line: &str, exe: &str) -> Option<(CleanMapping, bool)> {
    let mut fields = line.split_ascii_whitespace();
    let (start, end) = fields.next()?.split_once('-')?;
    let start = usize::from_str_radix(start, 16).ok()?;
    let end = usize::from_str_radix(end, 16).ok()?;
    let perms = fields.next()?.as_bytes();
    let (_offset, _dev, _inode) = (fields.next()?, fields.next()?, fields.next()?);
    let path = fields.next().unwrap_or("");
    if perms.len() != 4 || end <= start {
        return None;
    }
    let file_name = path.rsplit('/').next().unwrap_or("");
    let code = path == exe || file_name.ends_with(".so") || file_name.contains(".so.");
    let eligible =
        perms[0] == b'r' && perms[1] == b'-' && perms[3] == b'p' && path.starts_with('/') && code;
    let mapping = CleanMapping {
        start,
        end,
        resident_kb: 0,
    };
    Some((mapping, eligible))
}

/// Unmaps the clean file mappings of this process (see the module) and gives the heap's free
/// pages back. Call it once start-up is over, off the async threads (it reads smaps).
pub fn trim_resident_set() -> io::Result<Trimmed> {
    let exe = std::fs::read_link("/proc/self/exe")?;
    let smaps = std::fs::read_to_string("/proc/self/smaps")?;
    let mut trimmed = Trimmed::default();
    for mapping in clean_file_mappings(&smaps, &exe.to_string_lossy()) {
        if advise_dontneed(mapping.start, mapping.end - mapping.start).is_ok() {
            trimmed.mappings += 1;
            trimmed.resident_bytes += mapping.resident_kb * 1024;
        }
    }
    trimmed.heap_released = malloc_trim();
    Ok(trimmed)
}

/// Waits for `start_up_over` (unless `shutdown` comes first), then trims on a blocking thread
/// and logs what was given back. A daemon spawns it once at start.
pub async fn trim_when(
    start_up_over: impl std::future::Future<Output = ()>,
    shutdown: tokio_util::sync::CancellationToken,
) {
    tokio::select! {
        () = shutdown.cancelled() => return,
        () = start_up_over => {}
    }
    match tokio::task::spawn_blocking(trim_resident_set).await {
        Ok(Ok(trimmed)) => tracing::info!(
            mappings = trimmed.mappings,
            resident_kb = trimmed.resident_bytes / 1024,
            heap_released = trimmed.heap_released,
            "start-up pages given back"
        ),
        Ok(Err(error)) => {
            tracing::warn!(%error, "cannot read /proc/self/smaps to give back start-up pages")
        }
        Err(_) => {}
    }
}

#[allow(unsafe_code)]
fn advise_dontneed(start: usize, len: usize) -> io::Result<()> {
    // SAFETY: the range is a whole mapping of this process, read from smaps, that is a
    // private, read-only mapping of a file holding no anonymous page: its contents are the
    // file's, which MADV_DONTNEED maps again on the next touch. It is the executable's or a
    // library's, which stay mapped while the process runs (see `clean_file_mappings`).
    let rc = unsafe { libc::madvise(start as *mut libc::c_void, len, libc::MADV_DONTNEED) };
    if rc == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

#[cfg(target_env = "gnu")]
#[allow(unsafe_code)]
fn malloc_trim() -> bool {
    // SAFETY: malloc_trim(3) takes no pointer and is thread-safe.
    unsafe { libc::malloc_trim(0) == 1 }
}

#[cfg(not(target_env = "gnu"))]
fn malloc_trim() -> bool {
    false
}

#[cfg(test)]
#[path = "trim_tests.rs"]
mod tests;
