//! The sampling loop: every interval, run the collectors off the async workers, stamp the
//! reading with host, seq and the time its counters were read, append it to the ring and
//! make it the latest snapshot.
//!
//! A seq belongs to a stored snapshot: one that cannot be stored (a full disk) is dropped,
//! neither served on `/latest` nor published, and its seq goes to the next sample. So the
//! seqs a subscriber sees are exactly those in the ring, contiguous, and `/history` can
//! always fill a gap; during the outage `/health` turns stale and names the error.

use std::sync::Arc;
use std::time::Duration;

use daemon_kit::clock::unix_ms;

use broker::{Snapshot, SNAPSHOT_VERSION};
use serde::Serialize;
use tokio::sync::watch;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use crate::collectors::{CollectorErrors, Collectors};
use crate::events::EventLog;
use crate::shared_ring::SharedRing;
use daemon_kit::stats::Stats;

/// The newest snapshot, shared with the HTTP handlers (and whoever else publishes it).
pub type Latest = watch::Receiver<Option<Arc<Snapshot>>>;

/// Counters for `/health`.
#[derive(Debug, Default, Clone, Serialize)]
pub struct SamplerStats {
    /// Samples stored in the ring (and so served and published).
    pub samples_total: u64,
    /// Samples dropped because the ring could not store them.
    pub ring_write_errors: u64,
    /// The newest of those errors, naming the file; `null` once a sample is stored again.
    pub last_ring_error: Option<String>,
    pub collector_errors: CollectorErrors,
    /// When the newest stored sample was taken, on the monotonic clock (not serialized).
    #[serde(skip)]
    pub last_sample_at: Option<Instant>,
}

#[derive(Debug)]
pub struct Sampler {
    pub host: String,
    pub interval: Duration,
    pub collectors: Option<Collectors>,
    pub ring: SharedRing,
    pub latest: watch::Sender<Option<Arc<Snapshot>>>,
    pub stats: Stats<SamplerStats>,
    /// The seq the next snapshot gets: one past the ring's newest, so it survives restarts;
    /// it only moves on when a snapshot is stored.
    pub next_seq: u64,
    /// Compacted now and then so a busy job schedule cannot fill the disk.
    pub events: EventLog,
    pub keep_events: usize,
    /// Failed systemd units (`None`: `[units] enabled = false`).
    pub units: Option<crate::units::UnitsReader>,
}

impl Sampler {
    /// Samples until `shutdown` is cancelled. The first sample comes after at most a second
    /// (so `/latest` has real values right away, with CPU % over that second), then one every
    /// `interval` on a fixed schedule that does not drift with the time a sample takes.
    /// After a stall (suspend, an overloaded machine), missed ticks are skipped, not replayed.
    pub async fn run(mut self, shutdown: CancellationToken) {
        self.prime().await;
        let first = Instant::now() + self.interval.min(Duration::from_secs(1));
        // One wakeup a tick (a timerfd), where tokio's timer wheel made three.
        let mut ticker = daemon_kit::tick::Ticker::new(first, self.interval);
        let mut ticks: u64 = 0;
        loop {
            tokio::select! {
                _ = shutdown.cancelled() => break,
                _ = ticker.tick() => {}
            }
            self.sample_once().await;
            ticks += 1;
            if ticks % 240 == 1 {
                self.compact_events().await;
            }
        }
        tracing::info!(next_seq = self.next_seq, "sampler stopped");
    }

    /// Reads `/proc/stat` once so that the first snapshot has a CPU %.
    pub async fn prime(&mut self) {
        if let Some(mut collectors) = self.collectors.take() {
            self.collectors = tokio::task::spawn_blocking(move || {
                collectors.prime();
                collectors
            })
            .await
            .ok();
        }
    }

    /// Takes, stores and publishes one snapshot; `None` when none was stored.
    ///
    /// The counters are read, the snapshot built and stored on one blocking thread, while the
    /// failed units come from D-Bus (async) here: one hop there and back a sample, where a
    /// hop to read and another to store woke this thread and a blocking one twice each.
    pub async fn sample_once(&mut self) -> Option<Arc<Snapshot>> {
        let mut collectors = self.collectors.take()?;
        let ring = self.ring.clone();
        let header = Snapshot {
            v: SNAPSHOT_VERSION,
            host: self.host.clone(),
            seq: self.next_seq,
            interval_s: self.interval.as_secs_f64(),
            ..Snapshot::default()
        };
        let (units_tx, units_rx) = tokio::sync::oneshot::channel();
        let task = tokio::task::spawn_blocking(move || {
            let mut reading = collectors.sample();
            reading.failed_units = units_rx.blocking_recv().ok().flatten();
            // The time the counters were read, not now: the filesystem collector after them
            // can take up to its timeout.
            let ts_ms = unix_ms(reading.read_at);
            let snapshot = Arc::new(reading.into_snapshot(Snapshot {
                ts: ts_ms.div_euclid(1000),
                ts_ms,
                ..header
            }));
            // A panic here is a bug; the sampler goes on, as when this was a task of its own.
            let written =
                std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| ring.append(&snapshot)))
                    .unwrap_or_else(|_| Err("the ring append panicked".to_owned()));
            (collectors, snapshot, written)
        });
        let units = match &mut self.units {
            Some(units) => units.read().await,
            None => None,
        };
        // The task is waiting for it, or will take it when it gets there.
        let _ = units_tx.send(units);
        let (collectors, snapshot, written) = match task.await {
            Ok(done) => done,
            Err(error) => {
                // Only a bug could get here: the collectors return errors, they do not panic.
                tracing::error!(%error, "sampling task failed; sampling stops");
                return None;
            }
        };

        let mut collector_errors = collectors.errors().clone();
        if let Some(u) = self.units.as_ref().filter(|u| u.errors > 0) {
            collector_errors.insert(crate::collectors::CollectorName::Units, u.errors);
        }
        self.collectors = Some(collectors);
        self.stats.update(|stats| {
            stats.collector_errors = collector_errors;
            match &written {
                Ok(()) => {
                    stats.samples_total += 1;
                    stats.last_sample_at = Some(Instant::now());
                    stats.last_ring_error = None;
                }
                Err(error) => {
                    stats.ring_write_errors += 1;
                    stats.last_ring_error = Some(error.clone());
                }
            }
        });
        if let Err(error) = written {
            // Logged every time: a full disk is worth hearing about until it is fixed.
            tracing::error!(seq = snapshot.seq, %error, "cannot store snapshot in the ring; it is dropped and its seq goes to the next sample");
            return None;
        }
        self.next_seq += 1;
        self.latest.send_replace(Some(Arc::clone(&snapshot)));
        Some(snapshot)
    }

    async fn compact_events(&self) {
        let events = self.events.clone();
        let keep = self.keep_events;
        match tokio::task::spawn_blocking(move || events.compact(keep)).await {
            Ok(Ok(true)) => tracing::info!(keep, "event log compacted"),
            Ok(Ok(false)) => {}
            Ok(Err(error)) => tracing::warn!(%error, "cannot compact the event log"),
            Err(error) => tracing::warn!(%error, "event log compaction task failed"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;
    use std::sync::Mutex;
    use std::time::SystemTime;

    use crate::collectors::filesystem::Selection;
    use crate::collectors::statvfs::{FsStats, Prober};
    use crate::collectors::{FilesystemCollector, Roots};
    use crate::ring::Ring;

    /// A `statvfs` that takes 300 ms, noting when it was first called.
    #[derive(Debug, Default)]
    struct Slow {
        first_call: Mutex<Option<SystemTime>>,
    }

    impl Prober for Slow {
        fn statvfs(&self, _: &Path) -> std::io::Result<FsStats> {
            self.first_call
                .lock()
                .unwrap()
                .get_or_insert_with(SystemTime::now);
            std::thread::sleep(Duration::from_millis(300));
            Ok(FsStats {
                frsize: 4096,
                blocks: 100,
                ..FsStats::default()
            })
        }
    }

    #[tokio::test]
    async fn a_sample_is_dated_when_its_counters_were_read_not_after_a_slow_statvfs() {
        let dir = tempfile::tempdir().unwrap();
        let slow = Arc::new(Slow::default());
        let roots = Roots::under(Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/rpi4"));
        let collectors = Collectors::new(roots, crate::collectors::network::default_filter())
            .with_filesystems(Some(FilesystemCollector::new(
                Selection::default(),
                slow.clone(),
                Duration::from_secs(5),
            )));
        let (ring, _) = Ring::open(&dir.path().join("ring"), 10, false).unwrap();
        let (latest, _rx) = watch::channel(None);
        let mut sampler = Sampler {
            host: "h".into(),
            interval: Duration::from_secs(15),
            collectors: Some(collectors),
            ring: SharedRing::new(ring),
            latest,
            stats: Stats::default(),
            next_seq: 1,
            events: EventLog::new(dir.path()),
            keep_events: 10,
            units: None,
        };
        let snapshot = sampler.sample_once().await.unwrap();
        let probed = slow.first_call.lock().unwrap().expect("statvfs was called");
        assert!(snapshot.filesystems.as_ref().is_some_and(|f| !f.is_empty()));
        assert!(
            snapshot.ts_ms <= unix_ms(probed),
            "ts_ms {} is after the first statvfs at {}",
            snapshot.ts_ms,
            unix_ms(probed)
        );
    }
}
