//! Commits of samples alone (most of them) seal the raw tier's day files and write nothing
//! to SQLite; a cut after them keeps them, a cut inside a transaction that changed SQLite
//! takes that transaction's records with it (`raw_log/mod.rs`).

use super::raw_parts_tests::{day_file, minutes, raw_rows, snap, T0};
use super::rollup::{DAY_MS, MINUTE_MS};
use super::tests::retention;
use super::*;

/// What another connection sees change: SQLite's `data_version` moves with every commit
/// that wrote a page, and the day's stored length.
fn sqlite_state(path: &std::path::Path) -> (i64, i64) {
    let conn = rusqlite::Connection::open(path).unwrap();
    let len = conn
        .query_row(
            "SELECT value FROM meta WHERE key = ?1",
            [format!("raw_log:{}", T0 / DAY_MS)],
            |r| r.get(0),
        )
        .unwrap();
    (
        conn.query_row("PRAGMA data_version", [], |r| r.get(0))
            .unwrap(),
        len,
    )
}

#[test]
fn a_commit_of_samples_alone_writes_nothing_to_sqlite_and_survives_a_cut() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("h.sqlite");
    let mut db = Tsdb::open(&path, retention(), 500, T0).unwrap();
    // The first commit stores the host, its series and the day's length.
    minutes(&mut db, 0..10);
    let file = day_file(&path, T0 / DAY_MS);
    let watcher = rusqlite::Connection::open(&path).unwrap();
    let version = |c: &rusqlite::Connection| -> i64 {
        c.query_row("PRAGMA data_version", [], |r| r.get(0))
            .unwrap()
    };
    let (v0, stored) = (version(&watcher), sqlite_state(&path).1);
    assert_eq!(stored as u64, std::fs::metadata(&file).unwrap().len());
    let commits = db.stats.commits_total;
    // Two more commits of samples alone: the file grows, SQLite is not written.
    minutes(&mut db, 10..15);
    minutes(&mut db, 15..20);
    assert_eq!(db.stats.commits_total, commits + 2);
    assert_eq!(version(&watcher), v0, "SQLite was written");
    assert_eq!(sqlite_state(&path).1, stored);
    let sealed = std::fs::metadata(&file).unwrap().len();
    assert!(sealed > stored as u64);
    // A cut with samples synced and not committed: they go, the sealed commits stay.
    for seq in 20..23u64 {
        let ts_ms = T0 + seq as i64 * MINUTE_MS;
        db.ingest(&snap(seq, ts_ms), true, ts_ms).unwrap();
    }
    db.raw_log.borrow_mut().sync().unwrap();
    drop(db);
    let db = Tsdb::open(&path, retention(), 500, T0 + 30 * MINUTE_MS).unwrap();
    assert_eq!(std::fs::metadata(&file).unwrap().len(), sealed);
    assert_eq!(raw_rows(&db), 20);
    let host = db.hosts["tower"].id;
    assert_eq!(
        db.newest_raw(host).unwrap(),
        Some((T0 + 19 * MINUTE_MS, 19))
    );
}

#[test]
fn a_cut_inside_a_transaction_that_changed_sqlite_keeps_the_sealed_commits_before_it() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("h.sqlite");
    let mut db = Tsdb::open(&path, retention(), 500, T0).unwrap();
    minutes(&mut db, 0..10);
    minutes(&mut db, 10..15);
    let file = day_file(&path, T0 / DAY_MS);
    let sealed = std::fs::metadata(&file).unwrap().len();
    // A new host is a row in SQLite: its transaction stores the lengths, not a seal. Cut
    // after the files' sync, before the commit.
    let ts_ms = T0 + 15 * MINUTE_MS;
    db.ingest(&snap(15, ts_ms), true, ts_ms).unwrap();
    let mut nas = snap(0, ts_ms);
    nas.host = "nas".into();
    db.ingest(&nas, true, ts_ms).unwrap();
    db.raw_log.borrow_mut().sync().unwrap();
    assert!(std::fs::metadata(&file).unwrap().len() > sealed);
    drop(db);
    let db = Tsdb::open(&path, retention(), 500, ts_ms).unwrap();
    assert_eq!(std::fs::metadata(&file).unwrap().len(), sealed);
    assert!(!db.hosts.contains_key("nas"));
    let seqs: Vec<u64> = db.all_raw_for_test().iter().map(|r| r.seq).collect();
    assert_eq!(seqs, (0..15).collect::<Vec<u64>>());
}
