//! The tiered history store: every series of every host in one SQLite database (WAL, batched
//! commits) and the raw tier's day files, in three tiers bounded by age (see "History and retention" in the spec):
//!
//! - `raw`: one record per host and sample, every series' value packed in a blob
//!   ([`codec::encode_sample`]), in append-only day files beside the database (`raw_log/`,
//!   synced before each commit, which stores their lengths); counters are kept as counters,
//!   rates are derived between seq-adjacent samples of one boot when read.
//! - `minute` / `hour`: one row per series and hour (60 one-minute buckets) or day (24 one-hour
//!   buckets) of min/max/sum/count/last of the gauge or of the counter's rate.
//! - `top` / `top_minute`: the top-process lists, per sample and per minute's peak (`top.rs`).
//! - `rw_cursor` / `rw_late`: remote write's place in the raw tier, per remote and host (`rw.rs`).
//!
//! Buckets are filled in memory while their row is open and written once when it closes (a
//! minute row a few minutes after its hour, an hour row after its day), so a sample costs one
//! packed row write, not one per series. What was open when the process died is rebuilt from
//! the raw tier at start-up (which is why `raw` must keep more than a day). A sample older
//! than an open row (a long backfill) is merged into its written row in place.
//!
//! Blocking: call it from a thread of its own or `spawn_blocking`, never on the async
//! workers.

mod bucket_pack;
mod buckets;
mod chain;
pub mod codec;
mod db;
mod derive;
mod flat;
pub mod holes;
mod limits;
mod minute;
mod open;
mod open_row;
pub mod pack;
mod parts;
mod query;
mod raw;
mod raw_damage;
mod raw_drop;
mod raw_key;
pub mod raw_log;
mod raw_scan;
pub mod rollup;
mod rw;
mod rw_walk;
mod size;
mod top;
mod top_chain;
mod top_codec;
mod top_hour;
mod tx;

pub use db::{IngestReport, Sample, Tsdb, TsdbStats};
pub use flat::{FlatRow, KnownHost};
pub use holes::{Attempt, Fate, Hole, HoleStats, Lost};
pub use limits::MAX_HISTORY_ROWS;
pub use query::{QueryError, SeriesPoints, SeriesQuery, MAX_POINTS};
pub use rollup::{Agg, Bucket, Retention, Tier};
pub use rw::{RwMark, RwSample};
pub use size::DiskStats;
pub use top::{TopAnswer, TopList};

use std::path::PathBuf;

/// A database error, naming the file.
#[derive(Debug, thiserror::Error)]
#[error("history database {path}: {source}")]
pub struct TsdbError {
    pub path: PathBuf,
    #[source]
    pub source: rusqlite::Error,
}

#[cfg(test)]
mod chain_tests;
#[cfg(test)]
mod full_tests;
#[cfg(test)]
mod prune_tests;
#[cfg(test)]
mod raw_commit_tests;
#[cfg(test)]
mod raw_parts_tests;
#[cfg(test)]
mod restart_tests;
#[cfg(test)]
mod rw_tests;
#[cfg(test)]
mod test_support;
#[cfg(test)]
mod tests;
#[cfg(test)]
mod top_chain_tests;
#[cfg(test)]
mod top_tests;
