//! The ring as a handle shared by the sampler (appends) and HTTP (pages, its fill for
//! `/health`). Each verb is one short critical section on the file-backed ring: call
//! `append` and `page` from `spawn_blocking`.

use std::sync::{Arc, Mutex};

use broker::Snapshot;
use serde_json::value::RawValue;

use crate::ring::Ring;

#[derive(Debug, Clone)]
pub struct SharedRing {
    ring: Arc<Mutex<Ring>>,
}

/// Snapshots after a seq, with the ring's bounds at the time.
#[derive(Debug)]
pub struct Page {
    pub oldest_seq: Option<u64>,
    pub newest_seq: Option<u64>,
    pub snapshots: Vec<Box<RawValue>>,
}

const POISONED: &str = "ring lock poisoned (a bug, logged above)";

impl SharedRing {
    pub fn new(ring: Ring) -> Self {
        SharedRing {
            ring: Arc::new(Mutex::new(ring)),
        }
    }

    /// Appends one snapshot (blocking: file I/O).
    pub fn append(&self, snapshot: &Snapshot) -> Result<(), String> {
        let mut ring = self.ring.lock().map_err(|_| POISONED.to_owned())?;
        ring.append(snapshot).map_err(|e| e.to_string())
    }

    /// At most `limit` snapshots with seq > `since_seq`, oldest first (blocking: file I/O).
    pub fn page(&self, since_seq: u64, limit: usize) -> Result<Page, String> {
        let ring = self.ring.lock().map_err(|_| POISONED.to_owned())?;
        let snapshots = ring.after(since_seq, limit).map_err(|e| e.to_string())?;
        Ok(Page {
            oldest_seq: ring.oldest_seq(),
            newest_seq: ring.newest_seq(),
            snapshots,
        })
    }

    /// `(len, capacity)`, or `None` while an append holds the ring: a liveness check does
    /// not wait for the disk.
    pub fn fill(&self) -> Option<(usize, usize)> {
        let ring = self.ring.try_lock().ok()?;
        Some((ring.len(), ring.capacity()))
    }
}
