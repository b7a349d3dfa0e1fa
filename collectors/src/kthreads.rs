//! Kernel threads that did not run: most of a machine's processes are kernel threads (63 of 77
//! on an idle VM) and most of them sleep through a sample (49 of those 63 in 15 s), yet
//! reading a `stat` costs the kernel its whole 52-field line (`do_task_stat`). A kernel thread
//! is one thread, so its `schedstat`'s first field is all of its time on a CPU (ns,
//! `sum_exec_runtime`, from which `stat`'s utime + stime are scaled); while it stands still
//! nothing the lists use has changed (`comm`, utime + stime, starttime; a kernel thread has no
//! memory), and what its `stat` said last time is what it would say now.
//!
//! So each kernel thread's `schedstat` stays open, is read first (`pread`, three numbers), and
//! its `stat` is read only when the time moved, or for the first time, or when `schedstat`
//! cannot be read (a kernel built without `CONFIG_SCHED_INFO` has none: every `stat` is read,
//! as before). The time is read *before* the `stat` it stands for, so a run between the two
//! reads makes the next sample read `stat` again. User processes are never skipped: their
//! `schedstat` is their first thread's alone, and their memory changes without running.

use std::collections::HashMap;
use std::os::fd::OwnedFd;

use crate::proc_dir::open_under;
use crate::proc_stat::{number, StatRef};

/// A `comm` is at most 64 bytes here (the kernel's is 16, a worker's name with its queue's
/// up to 64).
const COMM: usize = 64;

/// What a kernel thread's `stat` said, and its time on a CPU when it was read.
#[derive(Debug)]
struct Still {
    schedstat: OwnedFd,
    /// `None` until a time was read before a `stat`.
    run_ns: Option<u64>,
    ticks: u64,
    starttime: u64,
    comm: [u8; COMM],
    comm_len: u8,
}

/// A kernel thread's `stat`, as it was (see the module's text).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Unchanged<'a> {
    pub comm: &'a [u8],
    pub ticks: u64,
    pub starttime: u64,
}

/// The kernel threads seen last sample, by pid; rebuilt each sample from those seen again.
#[derive(Debug, Default)]
pub(crate) struct KernelThreads {
    last: HashMap<u32, Still>,
    next: HashMap<u32, Still>,
    /// The time read this sample for the pid being looked at, until its `stat` is taken.
    pending: Option<(u32, Still, Option<u64>)>,
    /// `stat` reads saved since start (a kernel thread that stood still).
    skipped: u64,
}

impl KernelThreads {
    /// Starts a sample.
    pub fn begin(&mut self) {
        self.next.clear();
        self.pending = None;
    }

    /// Ends a sample: what was not seen again is gone (its `schedstat` closes).
    pub fn end(&mut self) {
        std::mem::swap(&mut self.last, &mut self.next);
        self.next.clear();
        self.pending = None;
    }

    /// `stat` reads saved so far.
    pub fn skipped(&self) -> u64 {
        self.skipped
    }

    /// Whether `pid` (`name` under `proc`), a kernel thread last sample, has not run since its
    /// `stat` was read: then that `stat`'s fields. Otherwise the time just read is kept for
    /// [`Self::read`] to store with the `stat` the caller reads next. `procfs`: whether `proc`
    /// is the kernel's, whose held `schedstat` fails once its thread is gone; a fixture's file
    /// held open would still read after its directory was replaced, so it is opened again.
    pub fn unchanged(
        &mut self,
        proc: &OwnedFd,
        name: &[u8],
        pid: u32,
        procfs: bool,
    ) -> Option<Unchanged<'_>> {
        let mut still = self.last.remove(&pid)?;
        if !procfs {
            still.schedstat = open_under(proc, name, b"schedstat").ok()?;
        }
        let mut buf = [0u8; 128];
        let now = rustix::io::pread(&still.schedstat, &mut buf, 0)
            .ok()
            .and_then(|n| buf.get(..n))
            .and_then(|t| t.split(|b| *b == b' ').next())
            .and_then(number);
        match now {
            Some(ns) if still.run_ns == Some(ns) => {
                self.skipped += 1;
                self.next.insert(pid, still);
                let kept = self.next.get(&pid)?;
                Some(Unchanged {
                    comm: &kept.comm[..usize::from(kept.comm_len)],
                    ticks: kept.ticks,
                    starttime: kept.starttime,
                })
            }
            // Moved, or unreadable (exited: its `stat` says so next).
            _ => {
                self.pending = Some((pid, still, now));
                None
            }
        }
    }

    /// Records a `stat` just read for `pid`, when it is a kernel thread's: its `schedstat` is
    /// opened (under `proc`, whose entry for the pid is `name`) the first time.
    pub fn read(&mut self, proc: &OwnedFd, name: &[u8], stat: &StatRef<'_>) {
        let pending = self.pending.take().filter(|(p, _, _)| *p == stat.pid);
        if !stat.kernel_thread {
            return;
        }
        let (schedstat, run_ns) = match pending {
            Some((_, still, Some(ns))) => (still.schedstat, Some(ns)),
            // New, or its file unreadable (a pid reused): opened again, and the time read now
            // comes after the `stat`, so it stands for nothing yet.
            _ => match open_under(proc, name, b"schedstat").ok() {
                Some(fd) => (fd, None),
                None => return,
            },
        };
        let mut comm = [0u8; COMM];
        let len = stat.comm.len().min(COMM);
        comm[..len].copy_from_slice(&stat.comm[..len]);
        self.next.insert(
            stat.pid,
            Still {
                schedstat,
                run_ns,
                ticks: stat.ticks,
                starttime: stat.starttime,
                comm,
                comm_len: len as u8,
            },
        );
    }
}

#[cfg(test)]
#[path = "kthreads_tests.rs"]
mod tests;
