//! The one judgment of every `[[jobs.expect]]`, refreshed by a task the handle owns (as
//! mini-redis's `Db` owns its purge task): the alert engine, `/jobs/expected` and the
//! dashboard read it. The watch remembers each expectation's newest run in
//! `data_dir/jobs-expected.json`: the Pi keeps job events in memory and fetches them again
//! from the servers after a restart, so a Pi restarted while a server is down would
//! otherwise forget that a job ran (and judge its missed run anew, or not at all).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use broker::JobEvent;
use tokio_util::sync::CancellationToken;

use super::{judge, runs, Expectation, Run, Status};

/// How often the expectations are judged.
pub const JUDGE_EVERY: Duration = Duration::from_secs(2);
/// The file of each expectation's newest run, under the data directory.
pub const FILE: &str = "jobs-expected.json";
/// Larger than this is not a file this watch wrote: ignored.
const MAX_FILE: u64 = 1 << 20;

#[derive(Debug, Clone, Default)]
pub struct JobWatch {
    expectations: Arc<Vec<Expectation>>,
    state: Arc<Mutex<Judged>>,
    /// When the Pi began watching (a job that never ran is missed only after it).
    since_ms: i64,
    /// Where the newest runs are kept (`None`: in memory only).
    file: Option<PathBuf>,
}

/// The newest judgment, and each expectation's newest run ever seen (by its key).
#[derive(Debug, Default)]
struct Judged {
    statuses: Vec<Status>,
    newest: BTreeMap<String, Run>,
}

/// An expectation's key in the file: its name and host.
fn key(e: &Expectation) -> String {
    format!("{}\u{0}{}", e.name, e.host.as_deref().unwrap_or(""))
}

impl JobWatch {
    /// A watch over `expectations` from `since_ms` on, remembering runs in `dir` (when given).
    pub fn new(expectations: Vec<Expectation>, since_ms: i64, dir: Option<&Path>) -> JobWatch {
        let file = dir.map(|d| d.join(FILE));
        let newest = file.as_deref().map(load).unwrap_or_default();
        JobWatch {
            expectations: Arc::new(expectations),
            state: Arc::new(Mutex::new(Judged {
                statuses: Vec::new(),
                newest,
            })),
            since_ms,
            file,
        }
    }

    pub fn is_empty(&self) -> bool {
        self.expectations.is_empty()
    }

    /// The newest judgment, one status per expectation in config order.
    pub fn statuses(&self) -> Vec<Status> {
        self.state
            .lock()
            .map(|s| s.statuses.clone())
            .unwrap_or_default()
    }

    /// Judges every expectation over the job events kept (the store's) and the newest run
    /// remembered, at `now_ms`; the file's new contents when a newer run was seen.
    pub fn judge(&self, events: &[JobEvent], now_ms: i64) -> Option<String> {
        if self.is_empty() {
            return None;
        }
        let Ok(mut state) = self.state.lock() else {
            return None;
        };
        let mut changed = false;
        let mut statuses = Vec::with_capacity(self.expectations.len());
        for e in self.expectations.iter() {
            let mut runs = runs(events, &e.name, e.host.as_deref());
            let k = key(e);
            let known = state.newest.get(&k).cloned();
            match (known, runs.last().cloned()) {
                (Some(known), last)
                    if last.as_ref().is_none_or(|l| l.start_ms < known.start_ms) =>
                {
                    runs.push(known);
                }
                // The same run, less complete than remembered (its end no longer among the
                // events kept): an end seen once stays seen.
                (Some(known), Some(last))
                    if known.run_id == last.run_id
                        && known.host == last.host
                        && last.end_ms.is_none()
                        && known.end_ms.is_some() =>
                {
                    if let Some(l) = runs.last_mut() {
                        *l = known;
                    }
                }
                (known, Some(last)) if known.as_ref() != Some(&last) => {
                    state.newest.insert(k, last);
                    changed = true;
                }
                _ => {}
            }
            statuses.push(judge(e, &runs, now_ms, self.since_ms));
        }
        state.statuses = statuses;
        if !changed || self.file.is_none() {
            return None;
        }
        serde_json::to_string(&state.newest).ok()
    }

    /// Judges every [`JUDGE_EVERY`] until `shutdown`, over what `events` returns then (the
    /// store's job events; `None`: skipped this time), saving the newest runs when they move.
    pub fn spawn(
        &self,
        events: impl Fn() -> Option<Vec<JobEvent>> + Send + 'static,
        shutdown: CancellationToken,
    ) -> Option<tokio::task::JoinHandle<()>> {
        if self.is_empty() {
            return None;
        }
        let watch = self.clone();
        Some(tokio::spawn(async move {
            let mut tick = tokio::time::interval(JUDGE_EVERY);
            loop {
                tokio::select! {
                    _ = shutdown.cancelled() => break,
                    _ = tick.tick() => {
                        let Some(events) = events() else { continue };
                        let now = crate::clock::unix_ms_now();
                        let (Some(text), Some(path)) = (watch.judge(&events, now), watch.file.clone()) else {
                            continue;
                        };
                        let _ = tokio::task::spawn_blocking(move || save(&path, &text)).await;
                    }
                }
            }
        }))
    }
}

/// The newest runs in `path`; none when it is missing, too large or not this watch's JSON.
fn load(path: &Path) -> BTreeMap<String, Run> {
    let small = std::fs::metadata(path).is_ok_and(|m| m.len() <= MAX_FILE);
    let text = if small {
        std::fs::read_to_string(path).unwrap_or_default()
    } else {
        String::new()
    };
    serde_json::from_str(&text).unwrap_or_else(|e| {
        if !text.is_empty() {
            tracing::warn!(file = %path.display(), error = %e, "ignoring the expected jobs' runs");
        }
        BTreeMap::new()
    })
}

/// Writes `text` to `path` whole (a temporary file, synced, renamed over it).
fn save(path: &Path, text: &str) {
    let tmp = path.with_extension("json.tmp");
    let done = std::fs::write(&tmp, text)
        .and_then(|()| std::fs::File::open(&tmp)?.sync_all())
        .and_then(|()| std::fs::rename(&tmp, path));
    if let Err(error) = done {
        tracing::warn!(file = %path.display(), %error, "cannot save the expected jobs' runs");
    }
}
