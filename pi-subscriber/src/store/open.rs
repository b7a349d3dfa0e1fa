//! Opening the store from the settings: the history database (or one in memory), the history
//! files of earlier versions imported once, and the hosts the history knows restored.
//! Blocking: call it from `spawn_blocking`.

use std::path::PathBuf;

use super::{SharedStore, Store};
use crate::config::Settings;
use crate::tsdb::{Tsdb, TsdbError};

/// Why the store could not be opened, naming the directory or database.
#[derive(Debug, thiserror::Error)]
pub enum OpenError {
    #[error("cannot create the data directory {path}: {source}")]
    DataDir {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error(transparent)]
    Db(#[from] TsdbError),
    #[error(transparent)]
    History(#[from] super::HistoryError),
}

impl SharedStore {
    /// Opens the store `settings` describe, at `now_ms` on the Pi's clock.
    pub fn open(settings: &Settings, now_ms: i64) -> Result<SharedStore, OpenError> {
        let state = Store::new(settings.history.max_hosts)
            .with_health(settings.health.max_age, settings.health.max_clock_skew)
            .with_max_samples_per_s(settings.history.max_samples_per_s);
        let retention = settings.retention();
        let max_series = settings.history.max_series_per_host;
        if !settings.history.persist {
            let mut tsdb = Tsdb::open_in_memory(retention, max_series, now_ms)?;
            tsdb.set_series_budget(settings.history.max_series);
            return Ok(SharedStore::new(state, tsdb));
        }
        std::fs::create_dir_all(&settings.data_dir).map_err(|source| OpenError::DataDir {
            path: settings.data_dir.clone(),
            source,
        })?;
        let path = settings.data_dir.join("history.sqlite");
        let mut tsdb = Tsdb::open(&path, retention, max_series, now_ms)?;
        tsdb.set_series_budget(settings.history.max_series);
        // A power cut costs at most what came since the last commit (README, "Power cuts").
        tsdb.sync_every_commit()?;
        let store = SharedStore::new(state, tsdb);
        let imported = super::migrate::import(
            &super::migrate::history_dir(&settings.data_dir),
            &store,
            now_ms,
        );
        if imported > 0 {
            tracing::info!(
                rows = imported,
                "history files of an earlier version imported"
            );
        }
        let skew = settings.health.max_clock_skew;
        let horizon = now_ms.saturating_add(skew.as_millis() as i64);
        let hosts = store.restore_hosts(horizon)?;
        tracing::info!(hosts, db = %path.display(), "history opened");
        Ok(store)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The daemon's history on disk syncs every commit, so a power cut costs at most what
    /// came since the last one (README, "Power cuts"); WAL mode's default syncs only at
    /// checkpoints.
    #[test]
    fn the_history_on_disk_syncs_every_commit() {
        let dir = tempfile::tempdir().unwrap();
        let settings = Settings {
            data_dir: dir.path().to_owned(),
            ..Settings::default()
        };
        let store = SharedStore::open(&settings, 1_700_000_000_000).unwrap();
        assert!(store.tsdb().unwrap().syncs_every_commit());
        let db = Tsdb::open(
            &dir.path().join("other.sqlite"),
            settings.retention(),
            500,
            0,
        )
        .unwrap();
        assert!(!db.syncs_every_commit(), "SQLite's WAL default");
    }
}
