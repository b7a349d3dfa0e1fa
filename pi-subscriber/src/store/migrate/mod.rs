//! History files of earlier versions (`data_dir/history/<host>.log`: one checksummed line per
//! 96- or 88-byte row) are imported into the history database at the first start after an
//! upgrade, then renamed `<host>.log.imported` (a backup; delete it when you like). A torn or
//! corrupt line is skipped.

use std::fs::{self, File};
use std::io;
use std::path::{Path, PathBuf};

use daemon_kit::record;

mod row;

use crate::store::{SharedStore, Source};
pub use row::Row;

pub fn history_dir(data_dir: &Path) -> PathBuf {
    data_dir.join("history")
}

/// Loads every host's rows, one host at a time (so memory peaks at one file, not all of
/// them); hosts whose file cannot be read are skipped with a warning.
pub fn load(dir: &Path, mut each: impl FnMut(&str, Vec<Row>)) {
    let Ok(entries) = fs::read_dir(dir) else {
        return;
    };
    for entry in entries.filter_map(|e| e.ok()) {
        let path = entry.path();
        let Some(host) = path
            .file_name()
            .and_then(|n| n.to_str())
            .and_then(|n| n.strip_suffix(".log"))
            .filter(|h| broker::validate_host_id(h).is_ok())
        else {
            continue;
        };
        match read_rows(&path) {
            Ok((rows, skipped)) => {
                if skipped > 0 {
                    tracing::warn!(file = %path.display(), skipped, "history file had torn or corrupt lines; skipped them");
                }
                each(host, rows);
            }
            Err(error) => {
                tracing::warn!(file = %path.display(), %error, "cannot read history file")
            }
        }
    }
}

/// Reads one history file line by line (no whole-file buffer: start-up memory stays at the
/// rows themselves). Returns the rows and how many lines were skipped.
fn read_rows(path: &Path) -> io::Result<(Vec<Row>, usize)> {
    use std::io::BufRead;
    let mut reader = io::BufReader::with_capacity(64 * 1024, File::open(path)?);
    let mut rows = Vec::new();
    let mut skipped = 0;
    let mut line = Vec::with_capacity(256);
    loop {
        line.clear();
        if reader.read_until(b'\n', &mut line)? == 0 {
            break;
        }
        let complete = line.last() == Some(&b'\n');
        let row = complete
            .then(|| record::decode(&line[..line.len() - 1]))
            .flatten()
            .and_then(Row::from_json);
        match row {
            Some(row) => rows.push(row),
            None => skipped += 1,
        }
    }
    rows.shrink_to_fit();
    Ok((rows, skipped))
}

/// Imports every old history file in `dir` into `store`, oldest row first, as backfill;
/// each file is renamed `.imported` once its rows are in (and committed). Returns the rows
/// imported. Blocking.
pub fn import(dir: &Path, store: &SharedStore, now_ms: i64) -> usize {
    let mut total = 0;
    load(dir, |host, mut rows| {
        rows.sort_by_key(|r| (r.ts_ms, r.seq));
        let n = rows.len();
        for row in rows {
            store.ingest(
                row.to_snapshot(host),
                Source::Backfill,
                tokio::time::Instant::now(),
                now_ms,
            );
        }
        let path = dir.join(format!("{host}.log"));
        let done = dir.join(format!("{host}.log.imported"));
        match store.commit().map(|()| fs::rename(&path, &done)) {
            Ok(Ok(())) => {
                tracing::info!(%host, rows = n, file = %path.display(), backup = %done.display(), "imported the history file of an earlier version")
            }
            Ok(Err(error)) => {
                tracing::warn!(%host, file = %path.display(), %error, "imported, but cannot rename the history file")
            }
            Err(error) => {
                tracing::warn!(%host, file = %path.display(), %error, "cannot import the history file")
            }
        }
        total += n;
    });
    total
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(seq: u64) -> Row {
        Row::of(&broker::Snapshot {
            seq,
            ts_ms: 1_700_000_000_000 + seq as i64 * 15_000,
            boot_id: Some("b".into()),
            cpu: Some(broker::Cpu {
                usage_percent: Some(seq as f64),
                ..broker::Cpu::default()
            }),
            disk: Some(broker::Disk {
                read_sectors: seq * 30,
                write_sectors: 0,
                ..broker::Disk::default()
            }),
            ..broker::Snapshot::default()
        })
    }

    fn line(r: &Row) -> Vec<u8> {
        record::encode(r.to_array().to_string().as_bytes())
    }

    #[tokio::test]
    async fn old_history_files_are_imported_once_and_kept_as_a_backup() {
        let dir = tempfile::tempdir().unwrap();
        let mut bytes: Vec<u8> = (1..=3).flat_map(|s| line(&row(s))).collect();
        bytes.extend_from_slice(b"0badc0de [1,2,"); // a torn tail
        fs::write(dir.path().join("pi.log"), bytes).unwrap();
        fs::write(dir.path().join("not a host!.log"), "x").unwrap();
        let store = crate::store::tests::handle(10);
        let now = 1_700_000_100_000;
        assert_eq!(import(dir.path(), &store, now), 3);
        assert!(dir.path().join("pi.log.imported").exists());
        assert!(!dir.path().join("pi.log").exists());
        let rows = store.history("pi", 0, i64::MAX).unwrap();
        assert_eq!(rows.iter().map(|r| r.seq).collect::<Vec<_>>(), [1, 2, 3]);
        let field = |name: &str| crate::seed::history::value(&rows[1], name);
        assert_eq!(field("cpu_usage_percent"), Some(2.0));
        assert_eq!(
            field("disk_read_sectors_rate"),
            Some(2.0),
            "30 sectors in 15 s"
        );
        assert_eq!(import(dir.path(), &store, now), 0, "once");
    }
}
