//! `statvfs` with a timeout: a hung network mount must never stall a sample.
//!
//! Calls run on a few long-lived helper threads. A call that does not answer within the
//! timeout leaves its thread busy with that mount: the mount is reported `null` and is not
//! asked again (no new thread per sample for it) until the late answer comes back, after
//! which it is probed as usual. At most [`MAX_THREADS`] helper threads exist; when all are
//! stuck on hung mounts, the remaining mounts are reported `null` too.

use std::fmt;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError, Sender};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Helper threads at most: one that works plus up to seven stuck on hung mounts.
pub const MAX_THREADS: usize = 8;

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

/// What one probe gave.
#[derive(Debug)]
pub enum Outcome {
    Answered(FsStats),
    Failed(io::Error),
    /// No answer within the timeout; the call is still running.
    TimedOut,
    /// An earlier call on this mount has still not answered: not asked again.
    StillHung,
    /// Every helper thread is stuck on a hung mount (or none could be started).
    NoThread,
}

struct Job {
    id: u64,
    path: PathBuf,
}

struct Reply {
    worker: usize,
    job: u64,
    result: io::Result<FsStats>,
}

#[derive(Debug)]
struct Worker {
    jobs: Sender<Job>,
    /// The call this thread is in, if any: (job id, mount).
    busy: Option<(u64, PathBuf)>,
}

impl fmt::Debug for Job {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Job({}, {})", self.id, self.path.display())
    }
}

/// `statvfs` calls with a timeout each, on reused helper threads.
#[derive(Debug)]
pub struct TimedProber {
    prober: Arc<dyn Prober>,
    timeout: Duration,
    workers: Vec<Worker>,
    replies_tx: Sender<Reply>,
    /// Behind a lock only so that the collectors are `Sync` (the sampler holds them across
    /// an await); `probe` takes `&mut self`, so it is never contended.
    replies: Mutex<Receiver<Reply>>,
    next_job: u64,
}

impl fmt::Debug for Reply {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Reply({}, {})", self.worker, self.job)
    }
}

impl TimedProber {
    pub fn new(prober: Arc<dyn Prober>, timeout: Duration) -> Self {
        let (replies_tx, replies) = mpsc::channel();
        Self {
            prober,
            timeout,
            workers: Vec::new(),
            replies_tx,
            replies: Mutex::new(replies),
            next_job: 0,
        }
    }

    /// Helper threads started so far (never more than [`MAX_THREADS`]).
    pub fn threads(&self) -> usize {
        self.workers.len()
    }

    /// Mounts whose call has not answered yet.
    pub fn hung(&self) -> Vec<PathBuf> {
        self.workers
            .iter()
            .filter_map(|w| w.busy.as_ref())
            .filter(|(job, _)| *job != u64::MAX)
            .map(|(_, p)| p.clone())
            .collect()
    }

    /// `statvfs(path)`, waiting at most the timeout.
    pub fn probe(&mut self, path: &Path) -> Outcome {
        // Late answers free their threads and their mounts.
        while let Some(reply) = self.try_receive() {
            self.finish(&reply);
        }
        if self
            .workers
            .iter()
            .any(|w| w.busy.as_ref().is_some_and(|(_, p)| p == path))
        {
            return Outcome::StillHung;
        }
        let Some(worker) = self.idle_worker() else {
            return Outcome::NoThread;
        };
        let id = self.next_job;
        self.next_job += 1;
        let job = Job {
            id,
            path: path.to_owned(),
        };
        if self.workers[worker].jobs.send(job).is_err() {
            // The thread is gone (it panicked): its slot stays taken, never to be used again.
            self.workers[worker].busy = Some((u64::MAX, PathBuf::new()));
            return Outcome::NoThread;
        }
        self.workers[worker].busy = Some((id, path.to_owned()));
        let deadline = Instant::now() + self.timeout;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            let received = self
                .replies
                .get_mut()
                .map_err(|_| RecvTimeoutError::Disconnected)
                .and_then(|r| r.recv_timeout(left));
            match received {
                Ok(reply) => {
                    self.finish(&reply);
                    if reply.job == id {
                        return match reply.result {
                            Ok(stats) => Outcome::Answered(stats),
                            Err(e) => Outcome::Failed(e),
                        };
                    }
                }
                Err(RecvTimeoutError::Timeout) => return Outcome::TimedOut,
                // We hold a sender ourselves, so this cannot happen.
                Err(RecvTimeoutError::Disconnected) => return Outcome::NoThread,
            }
        }
    }

    /// A reply already there, without waiting.
    fn try_receive(&mut self) -> Option<Reply> {
        self.replies.get_mut().ok()?.try_recv().ok()
    }

    fn finish(&mut self, reply: &Reply) {
        if let Some(w) = self.workers.get_mut(reply.worker) {
            if w.busy.as_ref().is_some_and(|(job, _)| *job == reply.job) {
                w.busy = None;
            }
        }
    }

    /// An idle thread, started if needed and allowed.
    fn idle_worker(&mut self) -> Option<usize> {
        if let Some(i) = self.workers.iter().position(|w| w.busy.is_none()) {
            return Some(i);
        }
        if self.workers.len() >= MAX_THREADS {
            return None;
        }
        let index = self.workers.len();
        let (jobs, queue) = mpsc::channel::<Job>();
        let replies = self.replies_tx.clone();
        let prober = Arc::clone(&self.prober);
        let spawned = std::thread::Builder::new()
            .name(format!("statvfs-{index}"))
            .spawn(move || {
                while let Ok(job) = queue.recv() {
                    let result = prober.statvfs(&job.path);
                    let reply = Reply {
                        worker: index,
                        job: job.id,
                        result,
                    };
                    if replies.send(reply).is_err() {
                        break;
                    }
                }
            });
        if let Err(e) = spawned {
            tracing::warn!(error = %e, "cannot start a statvfs thread");
            return None;
        }
        self.workers.push(Worker { jobs, busy: None });
        Some(index)
    }
}
