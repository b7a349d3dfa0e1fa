//! The top processes: each sample, the `top` processes by CPU and by resident memory, from
//! `/proc/<pid>/stat` (comm, utime + stime, starttime, rss; proc(5)). CPU % is the process's
//! `utime + stime` increase since the previous sample over the time between them, per core as
//! `top` shows it (a process on two full cores reads 200 %); a pid reused by another process
//! (another `starttime`) starts over. Only the chosen few are looked at further (their owner,
//! from the `/proc/<pid>` directory, and its name from the passwd file), so a machine with
//! thousands of processes costs one small read per process.

use std::collections::HashMap;
use std::fs::File;
use std::io::Read;
use std::os::fd::OwnedFd;
use std::os::unix::fs::MetadataExt;
use std::path::PathBuf;

use rustix::fs::{Mode, OFlags};
use std::time::SystemTime;

use broker::{ProcessTop, Processes};

use super::{CollectError, Roots};

/// Processes looked at per sample at most (a fork bomb does not make a sample unbounded).
pub const MAX_PROCESSES: usize = 65_536;
/// A stat line's read buffer (they are under 400 bytes).
const STAT_BUF: usize = 1024;
/// `top` at most.
pub const MAX_TOP: usize = 32;

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

/// Parses one `stat` line. `comm` may hold spaces and parentheses: it runs from the first
/// `(` to the last `)`.
pub fn parse_stat(text: &str) -> Option<ProcStat> {
    let open = text.find('(')?;
    let close = text.rfind(')')?;
    let pid = text[..open].trim().parse().ok()?;
    let comm = text.get(open + 1..close)?.to_owned();
    let rest: Vec<&str> = text.get(close + 1..)?.split_ascii_whitespace().collect();
    let field = |i: usize| rest.get(i).and_then(|f| f.parse::<u64>().ok());
    Some(ProcStat {
        pid,
        comm,
        ticks: field(11)?.saturating_add(field(12)?),
        starttime: field(19)?,
        rss_pages: field(21)?,
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

/// What spans samples: each pid's ticks at the previous one, and when it was.
#[derive(Debug)]
pub struct ProcessCollector {
    top: usize,
    passwd: PathBuf,
    users: Option<HashMap<u32, String>>,
    ticks_per_s: f64,
    page_bytes: u64,
    previous: HashMap<u32, (u64, u64)>,
    previous_at: Option<SystemTime>,
    buf: Vec<u8>,
}

impl ProcessCollector {
    /// `top` by CPU and by memory (1..=[`MAX_TOP`]); user names from `passwd`.
    pub fn new(top: usize, passwd: impl Into<PathBuf>) -> Self {
        Self {
            top: top.clamp(1, MAX_TOP),
            passwd: passwd.into(),
            users: None,
            ticks_per_s: rustix::param::clock_ticks_per_second() as f64,
            page_bytes: rustix::param::page_size() as u64,
            previous: HashMap::new(),
            previous_at: None,
            buf: Vec::with_capacity(512),
        }
    }

    /// `<pid>/stat` opened relative to the `<proc>` directory (no path walk from `/`), read
    /// into the reused buffer.
    fn stat(&mut self, proc: &OwnedFd, rel: &str) -> Option<ProcStat> {
        let fd =
            rustix::fs::openat(proc, rel, OFlags::RDONLY | OFlags::CLOEXEC, Mode::empty()).ok()?;
        // One read: a stat line is a few hundred bytes (procfs hands it over whole); only a
        // longer one (a very long comm cannot be: 15 bytes) would take a second.
        self.buf.resize(STAT_BUF, 0);
        let n = rustix::io::read(&fd, &mut self.buf[..]).ok()?;
        if n == STAT_BUF {
            let mut f = File::from(fd);
            self.buf.truncate(n);
            f.read_to_end(&mut self.buf).ok()?;
        } else {
            self.buf.truncate(n);
        }
        parse_stat(std::str::from_utf8(&self.buf).ok()?)
    }

    /// One sample: every process's stat, the top lists; `Err` only when `<proc>` cannot be
    /// listed (a process that exits meanwhile is skipped).
    pub fn read(&mut self, roots: &Roots, now: SystemTime) -> Result<Processes, CollectError> {
        let dir = std::fs::read_dir(&roots.proc).map_err(|source| CollectError::Read {
            path: roots.proc.clone(),
            source,
        })?;
        let elapsed_s = self
            .previous_at
            .and_then(|t| now.duration_since(t).ok())
            .map(|d| d.as_secs_f64())
            .filter(|s| *s > 0.0);
        let mut all: Vec<(ProcStat, Option<f64>)> = Vec::new();
        let mut seen: HashMap<u32, (u64, u64)> = HashMap::with_capacity(self.previous.len());
        let proc = rustix::fs::open(
            &roots.proc,
            OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC,
            Mode::empty(),
        )
        .map_err(|e| CollectError::Read {
            path: roots.proc.clone(),
            source: e.into(),
        })?;
        let mut rel = String::with_capacity(16);
        for entry in dir.flatten().take(MAX_PROCESSES) {
            let name = entry.file_name();
            let Some(pid) = name.to_str().and_then(|n| n.parse::<u32>().ok()) else {
                continue;
            };
            rel.clear();
            rel.push_str(name.to_str().unwrap_or_default());
            rel.push_str("/stat");
            let stat = self.stat(&proc, &rel);
            let Some(stat) = stat.filter(|s| s.pid == pid) else {
                continue;
            };
            let cpu = match (self.previous.get(&pid), elapsed_s) {
                (Some((start, ticks)), Some(dt)) if *start == stat.starttime => {
                    Some(stat.ticks.saturating_sub(*ticks) as f64 / self.ticks_per_s / dt * 100.0)
                }
                _ => None,
            };
            seen.insert(pid, (stat.starttime, stat.ticks));
            all.push((stat, cpu));
        }
        self.previous = seen;
        self.previous_at = Some(now);
        let count = all.len() as u32;
        let mut top_cpu: Vec<usize> = (0..all.len()).filter(|i| all[*i].1.is_some()).collect();
        top_cpu.sort_by(|a, b| {
            let (x, y) = (all[*a].1.unwrap_or(0.0), all[*b].1.unwrap_or(0.0));
            y.total_cmp(&x).then(all[*a].0.pid.cmp(&all[*b].0.pid))
        });
        top_cpu.truncate(self.top);
        let mut top_rss: Vec<usize> = (0..all.len()).collect();
        top_rss.sort_by(|a, b| {
            all[*b]
                .0
                .rss_pages
                .cmp(&all[*a].0.rss_pages)
                .then(all[*a].0.pid.cmp(&all[*b].0.pid))
        });
        top_rss.truncate(self.top);
        let mut top = |i: usize| self.top_entry(roots, &all[i].0, all[i].1);
        let top_cpu = top_cpu.into_iter().map(&mut top).collect();
        let top_rss = top_rss.into_iter().map(&mut top).collect();
        Ok(Processes {
            count,
            top_cpu,
            top_rss,
        })
    }

    fn top_entry(&mut self, roots: &Roots, s: &ProcStat, cpu: Option<f64>) -> ProcessTop {
        let uid = std::fs::metadata(roots.proc.join(s.pid.to_string()))
            .ok()
            .map(|m| m.uid());
        let users = self.users.get_or_insert_with(|| {
            std::fs::read_to_string(&self.passwd)
                .map(|t| parse_passwd(&t))
                .unwrap_or_default()
        });
        let user = uid.map(|u| users.get(&u).cloned().unwrap_or_else(|| u.to_string()));
        ProcessTop {
            pid: s.pid,
            name: s.comm.clone(),
            user,
            cpu_percent: cpu.map(|c| (c * 100.0).round() / 100.0),
            rss_bytes: s.rss_pages.saturating_mul(self.page_bytes),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stat_lines_with_awkward_names() {
        let line = "4242 (tmux: server (1)) S 1 4242 4242 0 -1 4194560 2000 0 3 0 150 50 0 0 20 0 1 0 123456 12345678 2500 18446744073709551615";
        assert_eq!(
            parse_stat(line),
            Some(ProcStat {
                pid: 4242,
                comm: "tmux: server (1)".into(),
                ticks: 200,
                starttime: 123456,
                rss_pages: 2500,
            })
        );
        assert_eq!(parse_stat("12 (kworker/0:1) I"), None, "truncated");
        assert_eq!(parse_stat(""), None);
    }

    #[test]
    fn passwd_names() {
        let users = parse_passwd("root:x:0:0:root:/root:/bin/bash\nwww-data:x:33:33::/var/www:/usr/sbin/nologin\nbroken\n");
        assert_eq!(users.get(&33).map(String::as_str), Some("www-data"));
        assert_eq!(users.len(), 2);
    }
}
