//! Memory from `/proc/meminfo`, in MiB (kB / 1024 rounded down, the seed's units).

use broker::Memory;

use super::held::{Extent, HeldFile};
use super::{parse_u64, read_parsed, CollectError, ParseError, Roots};

/// Parses the `Key:   value kB` lines that the snapshot needs.
///
/// Kernels before 3.14 have no `MemAvailable`; there it is estimated as
/// `MemFree + Buffers + Cached`, which is what `free` showed on those kernels.
pub fn parse_meminfo(text: &str) -> Result<Memory, ParseError> {
    let mut total = None;
    let mut available = None;
    let mut free = None;
    let mut buffers = None;
    let mut cached = None;
    let mut swap_total = None;
    let mut swap_free = None;
    for (index, line) in text.lines().enumerate() {
        let Some((key, rest)) = line.split_once(':') else {
            continue;
        };
        let slot = match key {
            "MemTotal" => &mut total,
            "MemAvailable" => &mut available,
            "MemFree" => &mut free,
            "Buffers" => &mut buffers,
            "Cached" => &mut cached,
            "SwapTotal" => &mut swap_total,
            "SwapFree" => &mut swap_free,
            _ => continue,
        };
        let number = rest.split_ascii_whitespace().next().unwrap_or("");
        let kb = parse_u64(number).map_err(|e| ParseError::Line {
            line: index + 1,
            reason: format!("{key}: {e}"),
        })?;
        *slot = Some(kb);
    }
    let total = total.ok_or(ParseError::Missing("MemTotal"))?;
    let available = match available {
        Some(kb) => kb,
        None => {
            free.ok_or(ParseError::Missing("MemAvailable or MemFree"))?
                + buffers.unwrap_or(0)
                + cached.unwrap_or(0)
        }
    };
    let swap_total = swap_total.unwrap_or(0);
    let swap_used = swap_total.saturating_sub(swap_free.unwrap_or(swap_total));
    Ok(Memory {
        total_mb: total / 1024,
        available_mb: available / 1024,
        swap_used_mb: swap_used / 1024,
        swap_total_mb: swap_total / 1024,
    })
}

/// Reads `<proc>/meminfo`.
pub fn read(roots: &Roots) -> Result<Memory, CollectError> {
    read_parsed(&roots.proc.join("meminfo"), parse_meminfo)
}

/// `<proc>/meminfo` kept open and re-read with `pread` ([`HeldFile`]).
#[derive(Debug)]
pub struct MemReader {
    file: HeldFile,
}

impl MemReader {
    pub fn new(roots: &Roots) -> Self {
        Self {
            file: HeldFile::proc(roots.proc.join("meminfo"), Extent::Whole),
        }
    }

    pub fn read(&mut self) -> Result<Memory, CollectError> {
        self.file.parse(parse_meminfo)
    }

    /// Closes the file: the next read opens the path again.
    pub fn reopen(&mut self) {
        self.file.close();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn megabytes_round_down() {
        let m = parse_meminfo(
            "MemTotal:       16384000 kB\nMemFree:  1 kB\nMemAvailable:    8390655 kB\nSwapTotal: 2097152 kB\nSwapFree: 1048575 kB\n",
        )
        .unwrap();
        assert_eq!(
            m,
            Memory {
                total_mb: 16000,
                available_mb: 8193,
                swap_used_mb: 1024,
                swap_total_mb: 2048
            }
        );
    }

    #[test]
    fn old_kernel_without_memavailable_is_estimated() {
        let m =
            parse_meminfo("MemTotal: 2048 kB\nMemFree: 1024 kB\nBuffers: 512 kB\nCached: 512 kB\n")
                .unwrap();
        assert_eq!(m.available_mb, 2);
        assert_eq!(m.swap_used_mb, 0);
    }

    #[test]
    fn truncated_meminfo_is_an_error() {
        assert_eq!(parse_meminfo(""), Err(ParseError::Missing("MemTotal")));
        // Cut in the middle of the second line.
        assert_eq!(
            parse_meminfo("MemTotal:       16384000 kB\nMemAv"),
            Err(ParseError::Missing("MemAvailable or MemFree"))
        );
        assert!(matches!(
            parse_meminfo("MemTotal:"),
            Err(ParseError::Line { line: 1, .. })
        ));
    }
}
