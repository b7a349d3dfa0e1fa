//! What the store refuses before a sample reaches the history: snapshots the MQTT task could
//! not queue for the ingest thread ([`crate::ingest_queue`]).

use super::SharedStore;

impl SharedStore {
    /// Counts a snapshot the MQTT task dropped because the ingest queue was full.
    pub fn count_queue_full(&self) {
        if let Ok(mut state) = self.lock() {
            state.stats.queue_full_total += 1;
        }
    }
}
