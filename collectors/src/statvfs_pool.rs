//! `statvfs` with a timeout: a hung network mount must never stall a sample. (Local types,
//! [`super::statvfs::DIRECT_FS_TYPES`], are asked on the sampling thread, not here.)
//! The other mounts of one sample go as one batch to a long-lived helper thread, which
//! answers them in order (two thread wake-ups per sample, not per mount). The whole batch has
//! one deadline, the timeout, however many mounts it holds: at the deadline, the mount the
//! thread is on is reported `null` (timed out) and the thread stays with it, and the mounts
//! not reached yet are reported `null` too (deferred) and go first in the next sample, so
//! N slow-but-answering mounts cost one timeout per sample, not N. A mount whose thread is
//! stuck on it is not asked again (no new thread per sample for it) until its late answer
//! comes back, after which it is probed as usual. At most [`MAX_THREADS`] helper threads
//! exist; when all are stuck on hung mounts, the remaining mounts are reported `null` too.

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
    /// Not reached before the sample's deadline: asked first in the next sample.
    Deferred,
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
    /// The mounts deferred by the last sample's deadline.
    deferred: Vec<PathBuf>,
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
            deferred: Vec::new(),
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

    /// `statvfs` of every path, one outcome each, in order, within one timeout in all.
    pub fn probe_all(&mut self, paths: &[PathBuf]) -> Vec<Outcome> {
        let deadline = Instant::now() + self.timeout;
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
        // Those the last deadline cut off first, so that every mount gets its turn.
        pending.sort_by_key(|i| !self.deferred.contains(&paths[*i]));
        while !pending.is_empty() && Instant::now() < deadline {
            let Some(w) = self.idle_worker() else { break };
            let answered = self.run_batch(w, paths, &pending, deadline);
            for (i, outcome) in answered {
                outcomes[i] = Some(outcome);
            }
            pending.retain(|i| outcomes[*i].is_none());
        }
        let late = Instant::now() >= deadline;
        self.deferred = if late {
            pending.iter().map(|i| paths[*i].clone()).collect()
        } else {
            Vec::new()
        };
        outcomes
            .into_iter()
            .map(|o| match o {
                Some(o) => o,
                None if late => Outcome::Deferred,
                None => Outcome::NoThread,
            })
            .collect()
    }

    /// Sends `pending` to worker `w` and waits for it until `deadline`. Returns what it
    /// answered and, if it had not finished, the mount it is on as timed out.
    fn run_batch(
        &mut self,
        w: usize,
        paths: &[PathBuf],
        pending: &[usize],
        deadline: Instant,
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
        let finished = self.wait_done(id, deadline);
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

    /// Waits until `deadline` for batch `id` to be done, handling other threads' late
    /// answers meanwhile.
    fn wait_done(&mut self, id: u64, deadline: Instant) -> bool {
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
        // One deadline per sample: each sample leaves one more thread on a hung mount, and
        // reports the mounts it did not reach as deferred.
        for sample in 0..MAX_THREADS {
            let outcomes = pool.probe_all(&paths);
            assert!(matches!(outcomes[sample], Outcome::TimedOut), "{sample}");
            assert!(outcomes[..sample]
                .iter()
                .all(|o| matches!(o, Outcome::StillHung)));
            assert!(outcomes[sample + 1..]
                .iter()
                .all(|o| matches!(o, Outcome::Deferred)));
            assert_eq!(pool.threads(), sample + 1);
        }
        assert_eq!(pool.hung(), paths[..MAX_THREADS]);

        let next = pool.probe_all(&paths);
        assert!(next[..MAX_THREADS]
            .iter()
            .all(|o| matches!(o, Outcome::StillHung)));
        assert!(next[MAX_THREADS..]
            .iter()
            .all(|o| matches!(o, Outcome::NoThread)));
        assert_eq!(pool.threads(), MAX_THREADS);

        *prober.released.lock().unwrap() = true;
        prober.wake.notify_all();
    }

    /// Answers every path, each after 600 ms: slow, never hung.
    #[derive(Debug)]
    struct Slow;

    impl Prober for Slow {
        fn statvfs(&self, _: &Path) -> io::Result<FsStats> {
            std::thread::sleep(Duration::from_millis(600));
            Ok(FsStats::default())
        }
    }

    fn kinds(outcomes: &[Outcome]) -> Vec<&'static str> {
        outcomes
            .iter()
            .map(|o| match o {
                Outcome::Answered(_) => "answered",
                Outcome::TimedOut => "timeout",
                Outcome::StillHung | Outcome::NoThread | Outcome::Deferred => "skipped",
                Outcome::Failed(_) => "failed",
            })
            .collect()
    }

    #[test]
    fn slow_mounts_share_one_deadline_per_sample_and_the_skipped_go_first_next_time() {
        // 5 mounts of 600 ms each with a 1 s timeout: one sample waits about 1 s, not 3 s.
        let mut pool = TimedProber::new(Arc::new(Slow), Duration::from_secs(1));
        let paths: Vec<PathBuf> = (0..5).map(|i| PathBuf::from(format!("/m{i}"))).collect();
        assert_eq!(
            kinds(&pool.probe_all(&paths)),
            ["answered", "timeout", "skipped", "skipped", "skipped"]
        );
        // /m1 still in its call; /m2../m4 were skipped for the deadline and go first.
        assert_eq!(
            kinds(&pool.probe_all(&paths)),
            ["skipped", "skipped", "answered", "timeout", "skipped"]
        );
    }
}
