//! Disk sectors and I/O times from `/proc/diskstats` (Documentation/admin-guide/iostats.rst).
//!
//! Only whole devices are counted: a partition's I/O is already in its disk's line, and
//! loop, ram, zram, dm-, md and the other stacked devices (ZFS zvols `zd*`, network block
//! devices `nbd*`, DRBD `drbd*`, bcache `bcache*`) sit on top of (or beside) real disks, so
//! counting them too would count the same bytes twice. Sectors are 512 bytes ([`broker::SECTOR_BYTES`]).

use std::collections::BTreeMap;

use broker::{Disk, DiskDevice};

use super::held::{Extent, HeldFile};
use super::{parse_u64, read_parsed, CollectError, ParseError, Roots};

/// One line of `/proc/diskstats`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DiskLine {
    pub name: String,
    /// Field 6: sectors read.
    pub read_sectors: u64,
    /// Field 10: sectors written.
    pub write_sectors: u64,
    /// Fields 4 + 8: reads and writes completed.
    pub ios: u64,
    /// Fields 7 + 11: milliseconds spent on them (`iostat`'s `await` numerator).
    pub io_wait_ms: u64,
    /// Field 13: milliseconds with I/O in flight (`node_disk_io_time_seconds_total`).
    pub io_time_ms: u64,
}

/// Parses every line. Lines have 14 (Linux ≥ 2.6.25), 18 (≥ 4.18, discards) or
/// 20 (≥ 5.5, flushes) fields; fields 4 to 13 are in the same place in all of them. The
/// kernel keeps them as `unsigned long` (32 bits on a 32-bit kernel), so they may wrap: the
/// Pi's rate rule treats a counter that went down as a new series.
pub fn parse_diskstats(text: &str) -> Result<Vec<DiskLine>, ParseError> {
    let mut lines = Vec::new();
    for_each_line(text, |name, line| {
        lines.push(DiskLine {
            name: name.to_owned(),
            ..line
        })
    })?;
    Ok(lines)
}

/// Calls `each` with every line's device name and figures (its `name` left empty), without
/// allocating; the first bad line is the error.
fn for_each_line(text: &str, mut each: impl FnMut(&str, DiskLine)) -> Result<(), ParseError> {
    for (index, line) in text.lines().enumerate() {
        let mut fields = [""; 14];
        let mut count = 0usize;
        for word in line.split_ascii_whitespace() {
            if let Some(slot) = fields.get_mut(count) {
                *slot = word;
            }
            count += 1;
        }
        if count == 0 {
            continue;
        }
        let bad = |reason: String| ParseError::Line {
            line: index + 1,
            reason,
        };
        if count < 14 {
            return Err(bad(format!("{count} fields, expected at least 14")));
        }
        let number = |i: usize| parse_u64(fields[i]).map_err(|e| bad(e.to_string()));
        let (read_sectors, write_sectors) = (number(5)?, number(9)?);
        let ios = number(3)?.saturating_add(number(7)?);
        let io_wait_ms = number(6)?.saturating_add(number(10)?);
        let io_time_ms = number(12)?;
        each(
            fields[2],
            DiskLine {
                name: String::new(),
                read_sectors,
                write_sectors,
                ios,
                io_wait_ms,
                io_time_ms,
            },
        );
    }
    Ok(())
}

/// [`parse_diskstats`] and [`summarize`] in one pass: only the whole devices' names are
/// copied.
pub fn parse_summary(text: &str) -> Result<Disk, ParseError> {
    let mut devices = BTreeMap::new();
    for_each_line(text, |name, l| {
        if is_whole_device(name) {
            devices.insert(name.to_owned(), device(&l));
        }
    })?;
    Ok(totals(devices))
}

/// Whether `name` is a whole, real device (not a partition, nor a virtual device layered on
/// others). Decided by the kernel's naming schemes, which are stable.
pub fn is_whole_device(name: &str) -> bool {
    // Stacked or virtual: their I/O is also counted on the disks underneath (or is not disk
    // I/O at all). `zd` (ZFS zvols), `nbd`, `drbd` and `bcache` include their partitions.
    const LAYERED: [&str; 10] = [
        "loop", "ram", "zram", "dm-", "md", "fd", "zd", "nbd", "drbd", "bcache",
    ];
    if LAYERED.iter().any(|p| name.starts_with(p)) {
        return false;
    }
    // sda1, vdb2, hda3, xvda1: letters then a partition number.
    for prefix in ["sd", "hd", "vd", "xvd"] {
        if let Some(rest) = name.strip_prefix(prefix) {
            let letters = rest.trim_end_matches(|c: char| c.is_ascii_digit());
            return letters.len() == rest.len();
        }
    }
    // nvme0n1p2, mmcblk0p1, mmcblk0boot0, mmcblk0rpmb.
    if let Some(rest) = name.strip_prefix("nvme") {
        return !rest.contains('p');
    }
    if let Some(rest) = name.strip_prefix("mmcblk") {
        return rest.chars().all(|c| c.is_ascii_digit());
    }
    true
}

/// Sums the whole devices into the snapshot's `disk` section.
pub fn summarize(lines: &[DiskLine]) -> Disk {
    let devices: BTreeMap<String, DiskDevice> = lines
        .iter()
        .filter(|l| is_whole_device(&l.name))
        .map(|l| (l.name.clone(), device(l)))
        .collect();
    totals(devices)
}

fn device(l: &DiskLine) -> DiskDevice {
    DiskDevice {
        read_sectors: l.read_sectors,
        write_sectors: l.write_sectors,
        ios: Some(l.ios),
        io_wait_ms: Some(l.io_wait_ms),
        io_time_ms: Some(l.io_time_ms),
    }
}

fn totals(devices: BTreeMap<String, DiskDevice>) -> Disk {
    Disk {
        read_sectors: devices.values().map(|d| d.read_sectors).sum(),
        write_sectors: devices.values().map(|d| d.write_sectors).sum(),
        devices,
    }
}

/// Reads `<proc>/diskstats`.
pub fn read(roots: &Roots) -> Result<Disk, CollectError> {
    read_parsed(&roots.proc.join("diskstats"), parse_diskstats).map(|l| summarize(&l))
}

/// `<proc>/diskstats` kept open and re-read with `pread` ([`HeldFile`]).
#[derive(Debug)]
pub struct DiskReader {
    file: HeldFile,
}

impl DiskReader {
    pub fn new(roots: &Roots) -> Self {
        Self {
            file: HeldFile::proc(roots.proc.join("diskstats"), Extent::Records),
        }
    }

    pub fn read(&mut self) -> Result<Disk, CollectError> {
        self.file.parse(parse_summary)
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
    fn whole_devices_only() {
        for whole in [
            "sda", "sdaa", "vda", "xvdb", "hda", "nvme0n1", "nvme1n2", "mmcblk0", "sr0", "mmcblk1",
        ] {
            assert!(is_whole_device(whole), "{whole} should count");
        }
        for part in [
            "sda1",
            "sdaa12",
            "vda2",
            "xvdb1",
            "hda3",
            "nvme0n1p1",
            "mmcblk0p2",
            "mmcblk0boot0",
            "mmcblk0rpmb",
            "loop0",
            "ram15",
            "zram0",
            "dm-0",
            "md0",
            "md127",
            "fd0",
            "zd0",
            "zd16p1",
            "nbd0",
            "nbd15p2",
            "drbd0",
            "drbd1",
            "bcache0",
            "bcache1p1",
        ] {
            assert!(!is_whole_device(part), "{part} should not count");
        }
    }

    #[test]
    fn fields_of_14_18_and_20_column_lines() {
        let text = "   8       0 sda 25354637 34367663 1003346126 18492372 28444756 11134226 505697032 63877960 0 9653880 82621804\n\
                    8      1 sda1 250 0 2000 36 0 0 0 0 0 36 36\n\
                    8      16 sdb 326552 841 9657779 84 41822 2895 1972905 5007 0 60730 67070 68851 0 1925173784 11130\n\
                    8      32 sdc 126552 141 1657779 14 11822 1895 172905 1007 0 10730 17070 18851 0 125173784 11130 1555 1944\n\
                    252    0 dm-0 59910002 0 1003337218 46229572 39231014 0 505696880 1158557800 0 11325968 1206301256\n";
        let disk = summarize(&parse_diskstats(text).unwrap());
        assert_eq!(
            parse_summary(text),
            Ok(disk.clone()),
            "the one-pass reader agrees"
        );
        assert_eq!(disk.devices.len(), 3);
        // node_exporter reads the same lines as node_disk_reads_completed_total{device="sda"}
        // 25354637, writes_completed 28444756, read_time_seconds 18492.372, write_time_seconds
        // 63877.96 and io_time_seconds 9653.88.
        assert_eq!(
            disk.devices["sda"],
            DiskDevice {
                read_sectors: 1003346126,
                write_sectors: 505697032,
                ios: Some(25354637 + 28444756),
                io_wait_ms: Some(18492372 + 63877960),
                io_time_ms: Some(9653880),
            }
        );
        // sdb and sdc have the 18- and 20-column layouts (discards, flushes after field 14).
        assert_eq!(
            (disk.devices["sdb"].ios, disk.devices["sdb"].io_wait_ms),
            (Some(326552 + 41822), Some(84 + 5007))
        );
        assert_eq!(disk.devices["sdb"].io_time_ms, Some(60730));
        assert_eq!(disk.devices["sdc"].io_time_ms, Some(10730));
        assert_eq!(disk.devices["sdb"].write_sectors, 1972905);
        assert_eq!(disk.devices["sdc"].read_sectors, 1657779);
        assert_eq!(disk.read_sectors, 1003346126 + 9657779 + 1657779);
        assert_eq!(disk.write_sectors, 505697032 + 1972905 + 172905);
    }

    #[test]
    fn truncated_line_is_an_error_naming_the_line() {
        let text = "8 0 sda 1 2 3 4 5 6 7 8 9 10 11\n8 1 sda1 1 2 3";
        assert_eq!(
            parse_diskstats(text),
            Err(ParseError::Line {
                line: 2,
                reason: "6 fields, expected at least 14".into()
            })
        );
        assert!(matches!(
            parse_diskstats("8 0 sda 1 2 x 4 5 6 7 8 9 10 11\n"),
            Err(ParseError::Line { line: 1, .. })
        ));
        assert_eq!(parse_diskstats(""), Ok(vec![]));
        assert_eq!(parse_summary(text), Err(parse_diskstats(text).unwrap_err()));
    }
}
