//! `statvfs`: the real call and a fixed table for fixtures and benchmarks. The timeout around
//! it is in [`super::statvfs_pool`].

use std::fmt;
use std::io;
use std::path::{Path, PathBuf};

/// The `statvfs` fields `df` uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct FsStats {
    /// Fragment size: the unit of the block counts (`f_frsize`).
    pub frsize: u64,
    pub blocks: u64,
    pub bfree: u64,
    pub bavail: u64,
    pub files: u64,
    pub ffree: u64,
}

/// Something that answers `statvfs`: the kernel, or a fixture in tests.
pub trait Prober: Send + Sync + fmt::Debug + 'static {
    fn statvfs(&self, path: &Path) -> io::Result<FsStats>;
}

/// The real `statvfs(2)`.
#[derive(Debug, Clone, Copy, Default)]
pub struct Statvfs;

impl Prober for Statvfs {
    fn statvfs(&self, path: &Path) -> io::Result<FsStats> {
        let s = rustix::fs::statvfs(path)?;
        Ok(FsStats {
            // Linux before 2.6 left f_frsize 0; f_bsize is the unit then.
            frsize: if s.f_frsize > 0 {
                s.f_frsize
            } else {
                s.f_bsize
            },
            blocks: s.f_blocks,
            bfree: s.f_bfree,
            bavail: s.f_bavail,
            files: s.f_files,
            ffree: s.f_ffree,
        })
    }
}

/// Fixed answers, for fixture trees and benchmarks: a table of lines `<mount point> frsize
/// blocks bfree bavail files ffree` (`#` starts a comment; the mount point may hold spaces).
/// A mount point not in the table fails with `ENOENT`.
#[derive(Debug, Clone, Default)]
pub struct FixedStatvfs {
    table: std::collections::HashMap<PathBuf, FsStats>,
}

impl FixedStatvfs {
    pub fn parse(text: &str) -> Result<Self, super::ParseError> {
        let mut table = std::collections::HashMap::new();
        for (index, line) in text.lines().enumerate() {
            if line.trim().is_empty() || line.starts_with('#') {
                continue;
            }
            let fields: Vec<&str> = line.split(' ').collect();
            let Some(split) = fields.len().checked_sub(6).filter(|n| *n > 0) else {
                return Err(super::ParseError::Line {
                    line: index + 1,
                    reason: "expected a mount point and 6 numbers".into(),
                });
            };
            let n = fields[split..]
                .iter()
                .map(|f| super::parse_u64(f))
                .collect::<Result<Vec<u64>, _>>()?;
            let stats = FsStats {
                frsize: n[0],
                blocks: n[1],
                bfree: n[2],
                bavail: n[3],
                files: n[4],
                ffree: n[5],
            };
            table.insert(PathBuf::from(fields[..split].join(" ")), stats);
        }
        Ok(Self { table })
    }
}

impl Prober for FixedStatvfs {
    fn statvfs(&self, path: &Path) -> io::Result<FsStats> {
        self.table
            .get(path)
            .copied()
            .ok_or_else(|| io::Error::from(io::ErrorKind::NotFound))
    }
}
