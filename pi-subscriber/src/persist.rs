//! History on disk: one append-only file per host (`<data_dir>/history/<host>.log`, one
//! [`broker::record`] line per row), compacted by writing the kept rows to a temporary file
//! and renaming it over the log. A torn last line (power cut) fails its checksum and is
//! skipped on load; a rename is atomic, so the file is always one or the other.
//!
//! Writes happen on one thread of their own, fed by a bounded channel that the ingest paths
//! never wait on; appended rows are synced once a second ([`SYNC_EVERY`]), so a power cut
//! loses at most the last second of rows (and whatever was still queued), and a torn last
//! line is cut before the next append.

use std::collections::{BTreeMap, HashMap};
use std::fs::{self, File};
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError, SyncSender, TrySendError};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use broker::record;

use crate::store::{Row, SharedStore};

/// Rows waiting for the disk at most.
const QUEUE: usize = 8192;

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

/// Every host's rows, for tests and tools.
pub fn load_all(dir: &Path) -> BTreeMap<String, Vec<Row>> {
    let mut out = BTreeMap::new();
    load(dir, |host, rows| {
        out.insert(host.to_owned(), rows);
    });
    out
}

enum Message {
    Row(String, Row),
    /// Close and delete a host's file (the host was forgotten).
    Forget(String),
}

/// The sending side, held by the ingest paths.
#[derive(Clone)]
pub struct Persister {
    tx: Option<SyncSender<Message>>,
}

impl std::fmt::Debug for Persister {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Persister").finish_non_exhaustive()
    }
}

impl Persister {
    /// A persister that stores nothing (tests, benchmarks).
    pub fn disabled() -> Self {
        Self { tx: None }
    }

    /// Deletes a forgotten host's file, after the rows queued before. Waits for room in the
    /// queue: a forgotten host's file must not outlive it.
    pub fn forget(&self, host: &str) {
        if let Some(tx) = &self.tx {
            let _ = tx.send(Message::Forget(host.to_owned()));
        }
    }

    /// Queues a row; `false` when the queue is full (the row stays in memory only).
    pub fn save(&self, host: &str, row: Row) -> bool {
        match &self.tx {
            None => true,
            Some(tx) => match tx.try_send(Message::Row(host.to_owned(), row)) {
                Ok(()) => true,
                Err(TrySendError::Full(_)) | Err(TrySendError::Disconnected(_)) => false,
            },
        }
    }
}

/// Starts the writer thread. It ends, after flushing and syncing, when every [`Persister`]
/// clone is dropped.
pub fn start(
    dir: PathBuf,
    store: SharedStore,
    capacity: usize,
) -> io::Result<(Persister, JoinHandle<()>)> {
    fs::create_dir_all(&dir)?;
    let (tx, rx) = mpsc::sync_channel(QUEUE);
    let handle = std::thread::Builder::new()
        .name("history-writer".into())
        .spawn(move || writer(dir, rx, store, capacity))?;
    Ok((Persister { tx: Some(tx) }, handle))
}

struct HostFile {
    file: File,
    lines: usize,
    /// Written since the last sync.
    dirty: bool,
}

/// How often appended rows are synced to the disk: a power cut loses at most this much
/// (plus what is still queued), and an SD card sees one flush a second, not one per row.
pub const SYNC_EVERY: Duration = Duration::from_secs(1);

fn writer(dir: PathBuf, rx: Receiver<Message>, store: SharedStore, capacity: usize) {
    let mut files: HashMap<String, HostFile> = HashMap::new();
    let mut last_sync = Instant::now();
    loop {
        let first = match rx.recv_timeout(SYNC_EVERY) {
            Ok(m) => Some(m),
            Err(RecvTimeoutError::Timeout) => None,
            Err(RecvTimeoutError::Disconnected) => break,
        };
        for message in first.into_iter().chain(rx.try_iter()) {
            let (host, row) = match message {
                Message::Row(host, row) => (host, row),
                Message::Forget(host) => {
                    files.remove(&host);
                    let path = host_path(&dir, &host);
                    match fs::remove_file(&path) {
                        Ok(()) => {
                            tracing::info!(%host, file = %path.display(), "history file removed")
                        }
                        Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                        Err(error) => {
                            tracing::warn!(%host, file = %path.display(), %error, "cannot remove history file")
                        }
                    }
                    continue;
                }
            };
            if let Err(error) = append(&dir, &mut files, &host, &row) {
                tracing::warn!(%host, file = %host_path(&dir, &host).display(), %error, "cannot append to history file");
                files.remove(&host);
                continue;
            }
            if files.get(&host).is_some_and(|f| f.lines > 2 * capacity) {
                if let Err(error) = compact(&dir, &host, &store) {
                    tracing::warn!(%host, file = %host_path(&dir, &host).display(), %error, "cannot compact history file");
                }
                files.remove(&host);
            }
        }
        if last_sync.elapsed() >= SYNC_EVERY {
            sync(&dir, &mut files);
            last_sync = Instant::now();
        }
    }
    sync(&dir, &mut files);
}

fn sync(dir: &Path, files: &mut HashMap<String, HostFile>) {
    for (host, f) in files.iter_mut().filter(|(_, f)| f.dirty) {
        match f.file.sync_data() {
            Ok(()) => f.dirty = false,
            Err(error) => {
                tracing::warn!(%host, file = %host_path(dir, host).display(), %error, "cannot sync history file")
            }
        }
    }
}

fn host_path(dir: &Path, host: &str) -> PathBuf {
    dir.join(format!("{host}.log"))
}

fn append(
    dir: &Path,
    files: &mut HashMap<String, HostFile>,
    host: &str,
    row: &Row,
) -> io::Result<()> {
    if !files.contains_key(host) {
        let path = host_path(dir, host);
        let opened = record::open_append(&path)?;
        if opened.cut_bytes > 0 {
            tracing::warn!(file = %path.display(), bytes = opened.cut_bytes, "cut a torn last line off the history file");
        }
        files.insert(
            host.to_owned(),
            HostFile {
                file: opened.file,
                lines: opened.lines,
                dirty: false,
            },
        );
    }
    let Some(f) = files.get_mut(host) else {
        return Ok(());
    };
    let line = record::encode(row.to_array().to_string().as_bytes());
    f.file.write_all(&line)?;
    f.lines += 1;
    f.dirty = true;
    Ok(())
}

/// Rewrites a host's file with the rows the store holds now.
fn compact(dir: &Path, host: &str, store: &SharedStore) -> io::Result<()> {
    let rows: Vec<Row> = match store.lock() {
        Ok(s) => s
            .hosts
            .get(host)
            .map(|h| h.rows.iter().copied().collect())
            .unwrap_or_default(),
        Err(_) => return Ok(()),
    };
    write_rows(dir, host, &rows)
}

/// Writes `rows` as `host`'s whole file, atomically.
pub fn write_rows(dir: &Path, host: &str, rows: &[Row]) -> io::Result<()> {
    let path = host_path(dir, host);
    let tmp = dir.join(format!("{host}.log.tmp"));
    let mut out = Vec::with_capacity(rows.len() * 120);
    for row in rows {
        out.extend(record::encode(row.to_array().to_string().as_bytes()));
    }
    let mut file = File::create(&tmp)?;
    file.write_all(&out)?;
    file.sync_all()?;
    fs::rename(&tmp, &path)?;
    File::open(dir)?.sync_all()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::Store;

    fn row(seq: u64) -> Row {
        Row::of(&broker::Snapshot {
            seq,
            ts_ms: seq as i64 * 15_000,
            ..broker::Snapshot::default()
        })
    }

    #[test]
    fn rows_survive_a_restart_and_the_file_is_compacted() {
        let dir = tempfile::tempdir().unwrap();
        let store = SharedStore::new(Store::new(5, 10));
        let (persister, handle) = start(dir.path().to_owned(), store.clone(), 5).unwrap();
        for seq in 1..=12 {
            let r = row(seq);
            let mut s = store.lock().unwrap();
            let state = s.hosts.entry("tower".into()).or_default();
            state.rows.push_back(r);
            while state.rows.len() > 5 {
                state.rows.pop_front();
            }
            drop(s);
            assert!(persister.save("tower", r));
        }
        drop(persister);
        handle.join().unwrap();
        let loaded = load_all(dir.path());
        let mut seqs: Vec<u64> = loaded["tower"].iter().map(|r| r.seq).collect();
        // Compacted at 11 lines to the ≥ 5 rows the store held then, the rest appended; a row
        // both in the compacted file and appended after is deduplicated on restore.
        assert!(seqs.len() <= 10, "compacted: {seqs:?}");
        seqs.sort_unstable();
        seqs.dedup();
        assert_eq!(*seqs.last().unwrap(), 12);
        assert!(seqs.len() >= 5);
        assert!(seqs.windows(2).all(|w| w[1] == w[0] + 1), "{seqs:?}");
        assert!(!dir.path().join("tower.log.tmp").exists());
    }

    /// Issue 9 B11: a row appended after a torn last line must not be glued to it and lost.
    #[test]
    fn a_torn_tail_is_cut_before_appending() {
        let dir = tempfile::tempdir().unwrap();
        write_rows(dir.path(), "pi", &[row(1), row(2)]).unwrap();
        let path = dir.path().join("pi.log");
        let mut f = fs::OpenOptions::new().append(true).open(&path).unwrap();
        f.write_all(b"0badc0de [1,2,").unwrap();
        drop(f);
        let store = SharedStore::new(Store::new(100, 10));
        let (persister, handle) = start(dir.path().to_owned(), store, 100).unwrap();
        assert!(persister.save("pi", row(3)));
        drop(persister);
        handle.join().unwrap();
        let seqs: Vec<u64> = load_all(dir.path())["pi"].iter().map(|r| r.seq).collect();
        assert_eq!(seqs, [1, 2, 3]);
        assert!(fs::read(&path).unwrap().ends_with(b"\n"));
    }

    #[test]
    fn torn_tail_and_stray_files_are_skipped() {
        let dir = tempfile::tempdir().unwrap();
        write_rows(dir.path(), "pi", &[row(1), row(2)]).unwrap();
        let mut f = fs::OpenOptions::new()
            .append(true)
            .open(dir.path().join("pi.log"))
            .unwrap();
        f.write_all(b"0badc0de [1,2,").unwrap();
        fs::write(dir.path().join("not a host!.log"), "x").unwrap();
        fs::write(dir.path().join("readme.txt"), "x").unwrap();
        let loaded = load_all(dir.path());
        assert_eq!(loaded.len(), 1);
        assert_eq!(loaded["pi"].len(), 2);
    }
}
