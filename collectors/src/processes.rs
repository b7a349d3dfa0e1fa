//! The top processes: each sample, the `top` processes by CPU and by resident memory, from
//! `/proc/<pid>/stat` (comm, utime + stime, starttime, rss; proc(5)). CPU % is the process's
//! `utime + stime` increase since the previous sample over the time between them, per core as
//! `top` shows it (a process on two full cores reads 200 %); a pid reused by another process
//! (another `starttime`) starts over. Only the chosen few are looked at further (their owner,
//! from the `/proc/<pid>` directory, and its name from the passwd file). Each `stat` file stays
//! open between samples and is re-read with `pread` (up to 4096 of them, half the soft file
//! limit, which is raised towards the hard one), so a long-lived process costs one system call
//! a sample, and nothing is allocated per process. `<proc>` itself stays open too and is listed
//! from its start ([`crate::proc_dir`]) when a task may have been created since its last
//! listing: [`ProcessCollector::read_counted`] is given the fork count of `<proc>/stat` read
//! before it, and while that count stands still the pids listed last, less those whose `stat`
//! is gone (`ENOENT`, `ESRCH`: exited), are exactly the processes there are. The owners of the
//! chosen few are looked up relative to it, once per process when it is in both lists. A
//! kernel thread's `stat` is not read again while its `schedstat` shows it has not run since
//! ([`crate::kthreads`]).

use std::collections::HashMap;
use std::os::fd::OwnedFd;
use std::path::PathBuf;

use rustix::fs::AtFlags;
use std::time::SystemTime;

use broker::{ProcessTop, Processes};

use super::{CollectError, Roots};
use crate::kthreads::KernelThreads;
use crate::proc_dir::{open_under, PidEntry, ProcDir};
use crate::proc_stat::{number, parse_stat_bytes, StatRef};
pub use crate::proc_stat::{parse_passwd, parse_stat, ProcStat};

/// Processes looked at per sample at most (a fork bomb does not make a sample unbounded).
pub const MAX_PROCESSES: usize = 65_536;
/// A stat line's read buffer (they are under 400 bytes).
const STAT_BUF: usize = 1024;
/// `top` at most.
pub const MAX_TOP: usize = 32;

/// `stat` files kept open between samples at most (each is one file descriptor).
const MAX_HELD: usize = 4096;

/// One process of a sample: its `comm` is `names[name]`.
#[derive(Debug, Clone)]
struct Entry {
    pid: u32,
    name: std::ops::Range<usize>,
    rss_pages: u64,
    cpu: Option<f64>,
}

/// What spans samples: each pid's ticks at the previous one, and when it was; the `stat`
/// files of the processes seen, kept open and re-read with `pread` (one system call a
/// process instead of three).
#[derive(Debug)]
pub struct ProcessCollector {
    top: usize,
    passwd: PathBuf,
    users: Option<HashMap<u32, String>>,
    ticks_per_s: f64,
    page_bytes: u64,
    previous: HashMap<u32, (u64, u64)>,
    seen: HashMap<u32, (u64, u64)>,
    previous_at: Option<SystemTime>,
    buf: Vec<u8>,
    /// Open `stat` files by pid, of the `/proc` in `held_root`.
    held: HashMap<u32, OwnedFd>,
    kept: HashMap<u32, OwnedFd>,
    held_root: PathBuf,
    max_held: usize,
    entries: Vec<Entry>,
    names: Vec<u8>,
    /// `<proc>`, open between samples, and the pids it listed.
    dir: ProcDir,
    /// The fork count read before `dir` was listed (`None`: listed without one).
    listed_forks: Option<u64>,
    /// Pids whose `stat` was gone this sample.
    gone: Vec<u32>,
    /// Kernel threads' `schedstat`s: a `stat` not read when its thread did not run.
    kthreads: KernelThreads,
}

/// Why a `stat` gave no line.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Unread {
    /// `ENOENT` or `ESRCH`: the process exited (its pid is free, so not listed again).
    Exited,
    /// Anything else (too long, out of file descriptors): tried again next sample.
    Failed,
}

fn unread(e: rustix::io::Errno) -> Unread {
    if e == rustix::io::Errno::NOENT || e == rustix::io::Errno::SRCH {
        Unread::Exited
    } else {
        Unread::Failed
    }
}

/// How many `stat` files may stay open: [`MAX_HELD`], and at most half the file descriptors
/// the process may open (after raising its soft limit towards the hard one, as a daemon
/// that needs more should).
fn held_budget() -> usize {
    use rustix::process::{getrlimit, setrlimit, Resource};
    let mut limit = getrlimit(Resource::Nofile);
    if let (Some(cur), Some(max)) = (limit.current, limit.maximum) {
        let want = (2 * MAX_HELD as u64 + 1024).min(max);
        if want > cur {
            limit.current = Some(want);
            if setrlimit(Resource::Nofile, limit).is_err() {
                limit.current = Some(cur);
            }
        }
    }
    limit
        .current
        .map_or(MAX_HELD, |c| usize::try_from(c / 2).unwrap_or(MAX_HELD))
        .min(MAX_HELD)
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
            seen: HashMap::new(),
            previous_at: None,
            buf: vec![0; STAT_BUF],
            held: HashMap::new(),
            kept: HashMap::new(),
            held_root: PathBuf::new(),
            max_held: held_budget(),
            entries: Vec::new(),
            names: Vec::new(),
            dir: ProcDir::default(),
            listed_forks: None,
            gone: Vec::new(),
            kthreads: KernelThreads::default(),
        }
    }

    /// Reads `<pid>/stat` into the buffer: `pread` on the file kept open since an earlier
    /// sample (a process that exited answers with an error: its file is closed), else opened
    /// relative to the `<proc>` directory and kept when the budget allows. Returns the length.
    fn stat(&mut self, proc: &OwnedFd, pid: u32, name: &[u8]) -> Result<usize, Unread> {
        if let Some(fd) = self.held.remove(&pid) {
            if let Ok(n) = rustix::io::pread(&fd, &mut self.buf[..], 0) {
                if n > 0 && n < STAT_BUF {
                    self.kept.insert(pid, fd);
                    return Ok(n);
                }
            }
        }
        let fd = open_under(proc, name, b"stat").map_err(unread)?;
        // One read: a stat line is a few hundred bytes (procfs hands it over whole).
        let n = rustix::io::read(&fd, &mut self.buf[..]).map_err(unread)?;
        if n == 0 || n >= STAT_BUF {
            return Err(Unread::Failed);
        }
        if self.kept.len() < self.max_held {
            self.kept.insert(pid, fd);
        }
        Ok(n)
    }

    /// One sample: every process's stat, the top lists; `Err` only when `<proc>` cannot be
    /// listed (a process that exits meanwhile is skipped). `<proc>` is listed every time.
    pub fn read(&mut self, roots: &Roots, now: SystemTime) -> Result<Processes, CollectError> {
        self.read_counted(roots, now, None)
    }

    /// [`ProcessCollector::read`], with `forks`, the fork count of `<proc>/stat`
    /// ([`crate::cpu::StatSample::forks`]) read before this call: when it is the count read
    /// before the last complete listing of the same `<proc>`, no process or thread has been
    /// created since (the kernel counts a fork after the new task is listable), so the pids
    /// of that listing that still have a `stat` are the exact set and `<proc>` is not listed.
    /// `None` (no count, or a malformed one) lists, as [`ProcessCollector::read`] does.
    pub fn read_counted(
        &mut self,
        roots: &Roots,
        now: SystemTime,
        forks: Option<u64>,
    ) -> Result<Processes, CollectError> {
        let err = |e: rustix::io::Errno| CollectError::Read {
            path: roots.proc.clone(),
            source: e.into(),
        };
        if self.held_root != roots.proc {
            self.held.clear();
            self.held_root.clone_from(&roots.proc);
        }
        // Out of `self` while its entries are read (put back below, whatever happens).
        let mut dir = std::mem::take(&mut self.dir);
        self.gone.clear();
        let unchanged = forks.is_some() && forks == self.listed_forks && dir.complete(&roots.proc);
        let listed = if unchanged {
            if !dir.procfs() {
                // A fixture's `stat` held open still reads after its directory was removed:
                // open each again, so that a process gone is seen gone.
                self.held.clear();
            }
            Ok(())
        } else {
            let listed = dir.list(&roots.proc, MAX_PROCESSES, |name| {
                number(name).and_then(|p| u32::try_from(p).ok())
            });
            self.listed_forks = forks;
            listed
        };
        let result = match (listed, dir.fd()) {
            (Ok(()), Some(proc)) => Ok(self.read_listed(proc, &dir.pids, dir.procfs(), now)),
            (Err(e), _) => Err(err(e)),
            (Ok(()), None) => Err(err(rustix::io::Errno::BADF)),
        };
        dir.forget(&mut self.gone);
        self.dir = dir;
        result
    }

    /// [`ProcessCollector::read`] once `<proc>` is listed: each listed pid's `stat`, the lists.
    fn read_listed(
        &mut self,
        proc: &OwnedFd,
        pids: &[PidEntry],
        procfs: bool,
        now: SystemTime,
    ) -> Processes {
        let elapsed_s = self
            .previous_at
            .and_then(|t| now.duration_since(t).ok())
            .map(|d| d.as_secs_f64())
            .filter(|s| *s > 0.0);
        self.seen.clear();
        self.kept.clear();
        self.entries.clear();
        self.names.clear();
        self.kthreads.begin();
        for listed in pids {
            let pid = listed.pid;
            if let Some(still) = self.kthreads.unchanged(proc, listed.name(), pid, procfs) {
                // Its `stat` stays open for the sample it runs again.
                if let Some(fd) = self.held.remove(&pid) {
                    self.kept.insert(pid, fd);
                }
                let stat = StatRef {
                    pid,
                    comm: still.comm,
                    ticks: still.ticks,
                    starttime: still.starttime,
                    rss_pages: 0,
                    kernel_thread: true,
                };
                let cpu = cpu_percent(self.previous.get(&pid), elapsed_s, self.ticks_per_s, &stat);
                self.seen.insert(pid, (stat.starttime, stat.ticks));
                push_entry(&mut self.entries, &mut self.names, &stat, cpu);
                continue;
            }
            let n = match self.stat(proc, pid, listed.name()) {
                Ok(n) => n,
                Err(Unread::Exited) => {
                    self.gone.push(pid);
                    continue;
                }
                Err(Unread::Failed) => continue,
            };
            let Some(stat) = parse_stat_bytes(&self.buf[..n]).filter(|s| s.pid == pid) else {
                continue;
            };
            self.kthreads.read(proc, listed.name(), &stat);
            let cpu = cpu_percent(self.previous.get(&pid), elapsed_s, self.ticks_per_s, &stat);
            self.seen.insert(pid, (stat.starttime, stat.ticks));
            push_entry(&mut self.entries, &mut self.names, &stat, cpu);
        }
        self.kthreads.end();
        // What was not seen again has exited: its file closes with the old map.
        std::mem::swap(&mut self.held, &mut self.kept);
        self.kept.clear();
        std::mem::swap(&mut self.previous, &mut self.seen);
        self.previous_at = Some(now);
        let count = self.entries.len() as u32;
        let e = &self.entries;
        let by_cpu = |a: &usize, b: &usize| {
            let (x, y) = (e[*a].cpu.unwrap_or(0.0), e[*b].cpu.unwrap_or(0.0));
            y.total_cmp(&x).then(e[*a].pid.cmp(&e[*b].pid))
        };
        let by_rss = |a: &usize, b: &usize| {
            e[*b]
                .rss_pages
                .cmp(&e[*a].rss_pages)
                .then(e[*a].pid.cmp(&e[*b].pid))
        };
        let top_cpu = top_k(
            (0..e.len()).filter(|i| e[*i].cpu.is_some()).collect(),
            self.top,
            by_cpu,
        );
        let top_rss = top_k((0..e.len()).collect(), self.top, by_rss);
        // Each chosen process's owner once, though it may be in both lists.
        let mut owners: Vec<(usize, Option<u32>)> = Vec::with_capacity(2 * self.top);
        let mut owner = |i: usize| match owners.iter().find(|(j, _)| *j == i) {
            Some((_, uid)) => *uid,
            None => {
                let uid = rustix::fs::statat(proc, e[i].pid.to_string(), AtFlags::empty())
                    .ok()
                    .map(|s| s.st_uid);
                owners.push((i, uid));
                uid
            }
        };
        let top_cpu: Vec<(usize, Option<u32>)> =
            top_cpu.into_iter().map(|i| (i, owner(i))).collect();
        let top_rss: Vec<(usize, Option<u32>)> =
            top_rss.into_iter().map(|i| (i, owner(i))).collect();
        Processes {
            count,
            top_cpu: top_cpu
                .into_iter()
                .map(|(i, uid)| self.top_entry(i, uid))
                .collect(),
            top_rss: top_rss
                .into_iter()
                .map(|(i, uid)| self.top_entry(i, uid))
                .collect(),
        }
    }

    /// `stat` reads saved since start: kernel threads that had not run since their last one.
    pub fn stat_reads_saved(&self) -> u64 {
        self.kthreads.skipped()
    }

    fn top_entry(&mut self, i: usize, uid: Option<u32>) -> ProcessTop {
        let e = self.entries[i].clone();
        let users = self.users.get_or_insert_with(|| {
            std::fs::read_to_string(&self.passwd)
                .map(|t| parse_passwd(&t))
                .unwrap_or_default()
        });
        let user = uid.map(|u| users.get(&u).cloned().unwrap_or_else(|| u.to_string()));
        ProcessTop {
            pid: e.pid,
            name: String::from_utf8_lossy(&self.names[e.name]).into_owned(),
            user,
            cpu_percent: e.cpu.map(|c| (c * 100.0).round() / 100.0),
            rss_bytes: e.rss_pages.saturating_mul(self.page_bytes),
        }
    }
}

/// A process's CPU % since the sample before (`previous`: its starttime and ticks then), per
/// core; `None` for a process new since, or a pid reused (another starttime).
fn cpu_percent(
    previous: Option<&(u64, u64)>,
    elapsed_s: Option<f64>,
    ticks_per_s: f64,
    stat: &StatRef<'_>,
) -> Option<f64> {
    match (previous, elapsed_s) {
        (Some((start, ticks)), Some(dt)) if *start == stat.starttime => {
            Some(stat.ticks.saturating_sub(*ticks) as f64 / ticks_per_s / dt * 100.0)
        }
        _ => None,
    }
}

/// Adds a process to the sample: its `comm` (64 bytes at most) to `names`.
fn push_entry(entries: &mut Vec<Entry>, names: &mut Vec<u8>, stat: &StatRef<'_>, cpu: Option<f64>) {
    let at = names.len();
    let comm = &stat.comm[..stat.comm.len().min(64)];
    names.extend_from_slice(comm);
    entries.push(Entry {
        pid: stat.pid,
        name: at..at + comm.len(),
        rss_pages: stat.rss_pages,
        cpu,
    });
}

/// The first `k` of `items` in `order`, sorted (a partial selection, not a full sort).
fn top_k(
    mut items: Vec<usize>,
    k: usize,
    order: impl Fn(&usize, &usize) -> std::cmp::Ordering,
) -> Vec<usize> {
    if items.len() > k {
        items.select_nth_unstable_by(k, &order);
        items.truncate(k);
    }
    items.sort_by(order);
    items
}

#[cfg(test)]
#[path = "processes_tests.rs"]
mod tests;
