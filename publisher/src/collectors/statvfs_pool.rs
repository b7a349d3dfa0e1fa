//! `statvfs` with a timeout: a hung network mount must never stall a sample.
//!
//! The mounts of one sample go as one batch to a long-lived helper thread, which answers
//! them in order (two thread wake-ups per sample, not two per mount). When no answer comes
//! for the timeout, the mount the thread is stuck on is reported `null`, the thread stays
//! with it, and the rest of the batch goes to another thread. A stuck mount is not asked
//! again (no new thread per sample for it) until its late answer comes back, after which it
//! is probed as usual. At most [`MAX_THREADS`] helper threads exist; when all are stuck on
//! hung mounts, the remaining mounts are reported `null` too.

use std::fmt;
use std::io;
use std::path::PathBuf;
use std::sync::mpsc::{self, Receiver, RecvTimeoutError, Sender};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use super::statvfs::{FsStats, Prober};

/// Helper threads at most: one that works plus up to seven stuck on hung mounts.
pub const MAX_THREADS: usize = 8;

/// What one mount's probe gave.
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

/// What a thread has done of its batch so far; shared with the thread.
#[derive(Debug, Default)]
struct Progress {
    job: u64,
    results: Vec<io::Result<FsStats>>,
    /// Set when the batch timed out: the thread stops after the call it is in.
    abandoned: bool,
}

struct Job {
    id: u64,
    paths: Vec<PathBuf>,
}

/// "Thread `worker` finished (or gave up) batch `job`."
#[derive(Debug, Clone, Copy)]
struct Done {
    worker: usize,
    job: u64,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Busy {
    /// Finishing a batch that was answered in full.
    Finishing(u64),
    /// Stuck in `statvfs` on this mount.
    Hung(u64, PathBuf),
}

impl Busy {
    fn job(&self) -> u64 {
        match self {
            Busy::Finishing(j) | Busy::Hung(j, _) => *j,
        }
    }
}

struct Worker {
    jobs: Sender<Job>,
    progress: Arc<Mutex<Progress>>,
    busy: Option<Busy>,
}

impl fmt::Debug for Worker {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Worker({:?})", self.busy)
    }
}

fn lock(p: &Mutex<Progress>) -> MutexGuard<'_, Progress> {
    // The thread never panics while holding it; a poisoned lock still holds valid data.
    p.lock().unwrap_or_else(|e| e.into_inner())
}

/// `statvfs` calls with a timeout, on reused helper threads.
#[derive(Debug)]
pub struct TimedProber {
    prober: Arc<dyn Prober>,
    timeout: Duration,
    workers: Vec<Worker>,
    done_tx: Sender<Done>,
    /// Behind a lock only so that the collectors are `Sync` (the sampler holds them across
    /// an await); `probe_all` takes `&mut self`, so it is never contended.
    done: Mutex<Receiver<Done>>,
    next_job: u64,
}

impl TimedProber {
    pub fn new(prober: Arc<dyn Prober>, timeout: Duration) -> Self {
        let (done_tx, done) = mpsc::channel();
        Self {
            prober,
            timeout,
            workers: Vec::new(),
            done_tx,
            done: Mutex::new(done),
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
            .filter_map(|w| match &w.busy {
                Some(Busy::Hung(_, p)) => Some(p.clone()),
                _ => None,
            })
            .collect()
    }

    /// `statvfs` of every path, one outcome each, in order.
    pub fn probe_all(&mut self, paths: &[PathBuf]) -> Vec<Outcome> {
        // Late answers free their threads and their mounts.
        while let Some(done) = self.try_done() {
            self.finish(done);
        }
        let hung = self.hung();
        let mut outcomes: Vec<Option<Outcome>> = paths
            .iter()
            .map(|p| hung.contains(p).then_some(Outcome::StillHung))
            .collect();
        let mut pending: Vec<usize> = (0..paths.len())
            .filter(|i| outcomes[*i].is_none())
            .collect();
        while !pending.is_empty() {
            let Some(w) = self.idle_worker() else { break };
            let answered = self.run_batch(w, paths, &pending);
            for (i, outcome) in answered {
                outcomes[i] = Some(outcome);
            }
            pending.retain(|i| outcomes[*i].is_none());
        }
        outcomes
            .into_iter()
            .map(|o| o.unwrap_or(Outcome::NoThread))
            .collect()
    }

    /// Sends `pending` to worker `w` and waits while it makes progress. Returns what it
    /// answered and, if it got stuck, that mount as timed out.
    fn run_batch(
        &mut self,
        w: usize,
        paths: &[PathBuf],
        pending: &[usize],
    ) -> Vec<(usize, Outcome)> {
        let id = self.next_job;
        self.next_job += 1;
        *lock(&self.workers[w].progress) = Progress {
            job: id,
            ..Progress::default()
        };
        let job = Job {
            id,
            paths: pending.iter().map(|i| paths[*i].clone()).collect(),
        };
        if self.workers[w].jobs.send(job).is_err() {
            // The thread is gone (it panicked): its slot stays taken, never to be used again.
            self.workers[w].busy = Some(Busy::Hung(u64::MAX, PathBuf::new()));
            return Vec::new();
        }
        self.workers[w].busy = Some(Busy::Finishing(id));
        let mut seen = 0;
        let finished = loop {
            if self.wait_done(id) {
                break true;
            }
            // No news for a whole timeout: stuck, unless a call answered meanwhile.
            let progress = lock(&self.workers[w].progress).results.len();
            if progress == seen {
                break false;
            }
            seen = progress;
        };
        let mut progress = lock(&self.workers[w].progress);
        progress.abandoned = true;
        let results = std::mem::take(&mut progress.results);
        drop(progress);
        let stuck = results.len();
        let mut out: Vec<(usize, Outcome)> = pending
            .iter()
            .zip(results)
            .map(|(i, r)| (*i, r.map_or_else(Outcome::Failed, Outcome::Answered)))
            .collect();
        if finished {
            self.workers[w].busy = None;
        } else if let Some(i) = pending.get(stuck) {
            self.workers[w].busy = Some(Busy::Hung(id, paths[*i].clone()));
            out.push((*i, Outcome::TimedOut));
        }
        out
    }

    /// Waits up to the timeout for batch `id` to be done, handling other threads' late
    /// answers meanwhile.
    fn wait_done(&mut self, id: u64) -> bool {
        let deadline = Instant::now() + self.timeout;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            let received = match self.done.get_mut() {
                Ok(r) => r.recv_timeout(left),
                Err(_) => Err(RecvTimeoutError::Disconnected),
            };
            match received {
                Ok(done) => {
                    self.finish(done);
                    if done.job == id {
                        return true;
                    }
                }
                Err(_) => return false,
            }
        }
    }

    fn try_done(&mut self) -> Option<Done> {
        self.done.get_mut().ok()?.try_recv().ok()
    }

    fn finish(&mut self, done: Done) {
        if let Some(w) = self.workers.get_mut(done.worker) {
            if w.busy.as_ref().is_some_and(|b| b.job() == done.job) {
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
        let progress = Arc::new(Mutex::new(Progress::default()));
        let shared = Arc::clone(&progress);
        let done = self.done_tx.clone();
        let prober = Arc::clone(&self.prober);
        let spawned = std::thread::Builder::new()
            .name(format!("statvfs-{index}"))
            .spawn(move || {
                while let Ok(job) = queue.recv() {
                    for path in &job.paths {
                        let result = prober.statvfs(path);
                        let mut p = lock(&shared);
                        if p.job != job.id || p.abandoned {
                            break;
                        }
                        p.results.push(result);
                    }
                    let sent = done.send(Done {
                        worker: index,
                        job: job.id,
                    });
                    if sent.is_err() {
                        break;
                    }
                }
            });
        if let Err(e) = spawned {
            tracing::warn!(error = %e, "cannot start a statvfs thread");
            return None;
        }
        self.workers.push(Worker {
            jobs,
            progress,
            busy: None,
        });
        Some(index)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;
    use std::sync::Condvar;

    /// Hangs on every path until released.
    #[derive(Debug, Default)]
    struct AllHang {
        released: Mutex<bool>,
        wake: Condvar,
    }

    impl Prober for AllHang {
        fn statvfs(&self, _: &Path) -> io::Result<FsStats> {
            let mut r = self.released.lock().unwrap();
            while !*r {
                r = self.wake.wait(r).unwrap();
            }
            Ok(FsStats::default())
        }
    }

    #[test]
    fn at_most_max_threads_then_the_rest_is_null_without_waiting() {
        let prober = Arc::new(AllHang::default());
        let mut pool = TimedProber::new(prober.clone(), Duration::from_millis(20));
        let paths: Vec<PathBuf> = (0..10).map(|i| PathBuf::from(format!("/m{i}"))).collect();
        let first = pool.probe_all(&paths);
        let kinds: Vec<&str> = first
            .iter()
            .map(|o| match o {
                Outcome::TimedOut => "timeout",
                Outcome::NoThread => "nothread",
                _ => "other",
            })
            .collect();
        assert_eq!(kinds[..MAX_THREADS], ["timeout"; MAX_THREADS]);
        assert_eq!(kinds[MAX_THREADS..], ["nothread", "nothread"]);
        assert_eq!(pool.threads(), MAX_THREADS);
        assert_eq!(pool.hung(), paths[..MAX_THREADS]);

        let second = pool.probe_all(&paths);
        assert!(second[..MAX_THREADS]
            .iter()
            .all(|o| matches!(o, Outcome::StillHung)));
        assert!(matches!(second[MAX_THREADS], Outcome::NoThread));
        assert_eq!(pool.threads(), MAX_THREADS);

        *prober.released.lock().unwrap() = true;
        prober.wake.notify_all();
    }
}
