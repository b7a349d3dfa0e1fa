//! The store's own tasks, as mini-redis's `Db` owns its purge task: the history writer
//! (commit every `history.commit_interval`, with the disk bound, closing bucket rows and
//! pruning) and
//! forgetting hosts silent for `history.forget_after`. [`Maintenance`] stops them: the
//! forgetting at once, the writer after one last commit; dropping it stops both.

use std::time::Duration;

use tokio_util::sync::CancellationToken;

use super::{HistoryError, SharedStore};
use crate::clock::unix_ms_now;
use crate::config::Settings;

/// The store's running tasks.
#[derive(Debug)]
pub struct Maintenance {
    writer: Option<tokio::task::JoinHandle<()>>,
    forget: Option<tokio::task::JoinHandle<()>>,
    stop: CancellationToken,
    stop_writer: CancellationToken,
}

impl SharedStore {
    /// Starts the store's own tasks (on the current tokio runtime).
    pub fn start_maintenance(&self, settings: &Settings) -> Maintenance {
        let stop = CancellationToken::new();
        let stop_writer = CancellationToken::new();
        Maintenance {
            writer: Some(history_writer(
                self.clone(),
                settings.history.max_disk,
                settings.history.commit_interval,
                stop_writer.clone(),
            )),
            forget: Some(tokio::spawn(forget_silent_hosts(
                self.clone(),
                settings.history.forget_after,
                stop.clone(),
            ))),
            stop,
            stop_writer,
        }
    }
}

impl Maintenance {
    /// Stops forgetting hosts, then lets the writer commit what is left and end.
    pub async fn finish(mut self) -> Result<(), tokio::task::JoinError> {
        self.stop.cancel();
        if let Some(forget) = self.forget.take() {
            let _ = forget.await;
        }
        self.stop_writer.cancel();
        match self.writer.take() {
            Some(writer) => writer.await,
            None => Ok(()),
        }
    }
}

impl Drop for Maintenance {
    fn drop(&mut self) {
        self.stop.cancel();
        self.stop_writer.cancel();
    }
}

/// Forgets the hosts silent for `forget_after`, checking a few times per `forget_after` (at
/// most once a minute).
async fn forget_silent_hosts(
    store: SharedStore,
    forget_after: Duration,
    shutdown: CancellationToken,
) {
    let period = (forget_after / 3).clamp(Duration::from_millis(500), Duration::from_secs(60));
    let mut tick = tokio::time::interval(period);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = tick.tick() => {}
        }
        let now_ms = unix_ms_now();
        let s = store.clone();
        let silent =
            match tokio::task::spawn_blocking(move || s.silent_hosts(now_ms, forget_after)).await {
                Ok(Ok(silent)) => silent,
                Ok(Err(HistoryError::Poisoned(_))) => return,
                Ok(Err(error)) => {
                    tracing::warn!(%error, "cannot list the silent hosts");
                    continue;
                }
                Err(error) => {
                    tracing::warn!(%error, "listing the silent hosts failed");
                    continue;
                }
            };
        for host in silent {
            let store = store.clone();
            let forgot =
                tokio::task::spawn_blocking(move || store.forget(&host).map(|_| host)).await;
            match forgot {
                Ok(Ok(host)) => {
                    tracing::info!(%host, after = ?forget_after, "host silent for history.forget_after: forgotten")
                }
                Ok(Err(error)) => tracing::warn!(%error, "cannot forget a silent host"),
                Err(error) => tracing::warn!(%error, "forgetting a silent host failed"),
            }
        }
    }
}

/// Every `commit_interval` (`history.commit_interval`; a power cut loses at most that), off
/// the async workers: closes bucket rows and prunes (at most once a minute), keeps the
/// history within `max_disk` bytes (oldest rows first), and commits; once more at shutdown.
/// Each step commits what is open, so nothing reaches the disk in between: what wears an SD
/// card is the number of commits as much as the bytes.
fn history_writer(
    store: SharedStore,
    max_disk: u64,
    commit_interval: Duration,
    shutdown: CancellationToken,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(Duration::from_secs(1));
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut last_maintain: Option<tokio::time::Instant> = None;
        let mut last_commit: Option<tokio::time::Instant> = None;
        loop {
            let stop = tokio::select! {
                _ = shutdown.cancelled() => true,
                _ = tick.tick() => false,
            };
            let now = tokio::time::Instant::now();
            if !stop && last_commit.is_some_and(|t| now - t < commit_interval) {
                // Between commits, `/health` still shows the counters of the second. A host
                // seen for the first time is committed at once: a Pi cut before its first
                // commit would not know the host after the restart (and say nothing of it).
                let s = store.clone();
                let new_host = tokio::task::spawn_blocking(move || {
                    s.refresh_stats()?;
                    s.history_holds_a_new_host()
                })
                .await;
                match new_host {
                    Ok(Ok(true)) => {}
                    Ok(Ok(false)) => continue,
                    Ok(Err(error)) => {
                        tracing::warn!(%error, "cannot read the history's counters");
                        continue;
                    }
                    Err(error) => {
                        tracing::warn!(%error, "history writer task failed");
                        continue;
                    }
                }
            }
            last_commit = Some(now);
            let maintain = last_maintain.is_none_or(|t| now - t >= Duration::from_secs(60));
            if maintain {
                last_maintain = Some(now);
            }
            let s = store.clone();
            let done = tokio::task::spawn_blocking(move || {
                // Each step runs whatever the one before did (a full disk fails them all,
                // and the commit still copies the counters that say so to `/health`).
                let maintained = match maintain {
                    true => s.maintain(unix_ms_now()),
                    false => Ok(()),
                };
                let bounded = s.bound_disk(max_disk);
                let committed = s.commit();
                // A clean stop leaves nothing buffered: the next start finds every sample.
                let flushed = match stop {
                    true => s.flush_history(),
                    false => Ok(()),
                };
                maintained.and(bounded).and(committed).and(flushed)
            })
            .await;
            match done {
                Ok(Ok(())) => {}
                Ok(Err(error)) => tracing::warn!(%error, "cannot write the history"),
                Err(error) => tracing::warn!(%error, "history writer task failed"),
            }
            if stop {
                return;
            }
        }
    })
}
