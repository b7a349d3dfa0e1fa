//! Filling the holes that are due: each from the publisher that serves its host, page by
//! page from `/history`, then settled (filled, retried later, or lost).

use serde::Deserialize;
use serde_json::value::RawValue;

use super::{base_url, seq_of, Poller};
use crate::store::{Outcome, Source};
use crate::tsdb::{Attempt, Fate, Hole};

/// Most snapshots asked for in one `/history` request.
const PAGE: u64 = 1000;

#[derive(Deserialize)]
struct HistoryPage {
    host: String,
    newest_seq: Option<u64>,
    snapshots: Vec<Box<RawValue>>,
}

impl Poller {
    /// Attempts every hole that is due (a few at a time), and settles each: filled, retried
    /// later with backoff, or recorded as lost.
    pub(super) async fn fill_holes(&mut self) {
        let store = self.ingestor.store.clone();
        let now = crate::clock::unix_ms_now();
        let due = match tokio::task::spawn_blocking(move || store.due_holes(now, 8)).await {
            Ok(Ok(due)) => due,
            Ok(Err(error)) => {
                tracing::warn!(%error, "cannot read the holes to backfill");
                return;
            }
            Err(_) => return,
        };
        for hole in due {
            tracing::debug!(host = %hole.host, after = hole.after_seq, before = hole.before_seq, tries = hole.tries, "backfilling a hole");
            let attempt = self.backfill(&hole).await;
            let store = self.ingestor.store.clone();
            let h = hole.clone();
            let settled = tokio::task::spawn_blocking(move || {
                store.settle_hole(&h, &attempt, crate::clock::unix_ms_now())
            })
            .await;
            match settled {
                Ok(Ok(Fate::Filled)) => {
                    tracing::info!(host = %hole.host, after = hole.after_seq, before = hole.before_seq, "hole filled")
                }
                Ok(Ok(Fate::Retry(at))) => {
                    tracing::debug!(host = %hole.host, after = hole.after_seq, before = hole.before_seq, retry_at_ms = at, "hole still open: retrying later")
                }
                Ok(Ok(Fate::Lost(n))) => {
                    tracing::warn!(host = %hole.host, after = hole.after_seq, before = hole.before_seq, lost = n, "samples lost for good: no longer in the publisher's ring")
                }
                Ok(Err(error)) => tracing::warn!(host = %hole.host, %error, "cannot settle a hole"),
                Err(_) => {}
            }
        }
    }

    /// Fetches the snapshots between `hole.after_seq` and `hole.before_seq` from the publisher
    /// that serves the host, page by page. `Answered` once a publisher of that host answered
    /// every page (what it did not send, it no longer has); `Failed` otherwise.
    async fn backfill(&mut self, hole: &Hole) -> Attempt {
        let bases: Vec<String> = match self.bases.get(&hole.host) {
            Some(base) => vec![base.clone()],
            None => self
                .settings
                .endpoints
                .iter()
                .map(|e| base_url(e))
                .collect(),
        };
        let mut failure: Option<(String, String)> = None;
        for base in bases {
            let mut since = hole.after_seq;
            let mut stored = 0u64;
            let mut fetched = 0u64;
            let mut answered = true;
            let mut newest_seq = None;
            while since.saturating_add(1) < hole.before_seq {
                if fetched >= self.max_backfill {
                    tracing::warn!(host = %hole.host, after = hole.after_seq, before = hole.before_seq, fetched, "hole larger than history.capacity: backfill stopped there");
                    break;
                }
                let limit = (hole.before_seq - since - 1)
                    .min(PAGE)
                    .min(self.max_backfill - fetched);
                let url = format!("{base}/history?since_seq={since}&limit={limit}");
                let page: HistoryPage = match self
                    .get(&url, self.page_limit())
                    .await
                    .map(|b| serde_json::from_slice(&b))
                {
                    Ok(Ok(page)) => page,
                    Ok(Err(error)) => {
                        tracing::debug!(%url, %error, "backfill answer is not a history page");
                        failure = Some((url, format!("not a history page: {error}")));
                        answered = false;
                        break;
                    }
                    Err(error) => {
                        tracing::debug!(%url, %error, "backfill request failed");
                        failure = Some((url, error.to_string()));
                        answered = false;
                        break;
                    }
                };
                if page.host != hole.host {
                    answered = false;
                    break; // another publisher's history
                }
                self.bases.insert(hole.host.clone(), base.clone());
                newest_seq = page.newest_seq;
                fetched = fetched.saturating_add(page.snapshots.len() as u64);
                let mut last = since;
                for raw in &page.snapshots {
                    if let Ok(outcome) = self
                        .ingestor
                        .store_blocking(
                            raw.get().as_bytes().to_vec(),
                            Some(hole.host.clone()),
                            Source::Backfill,
                        )
                        .await
                    {
                        if matches!(outcome, Outcome::Stored { .. }) {
                            stored += 1;
                        }
                    }
                    if let Some(seq) = seq_of(raw.get()) {
                        last = last.max(seq);
                    }
                }
                if page.snapshots.is_empty()
                    || last <= since
                    || page.newest_seq.is_some_and(|n| n <= last)
                {
                    break;
                }
                since = last;
            }
            if answered && self.bases.get(&hole.host) == Some(&base) {
                tracing::info!(host = %hole.host, stored, "backfill pass done");
                self.failing.clear(&hole.host);
                return Attempt::Answered { newest_seq };
            }
        }
        let (url, error) = failure.unwrap_or_default();
        match self.failing.allow(&hole.host, crate::clock::unix_ms_now()) {
            Some(held_back) => tracing::warn!(
                host = %hole.host, %url, %error, held_back,
                "no publisher could backfill the hole (yet); retrying (next warning for this host in 5 min at the earliest)"
            ),
            None => {
                tracing::debug!(host = %hole.host, %url, %error, "no publisher could backfill the hole (yet)")
            }
        }
        Attempt::Failed
    }
}
