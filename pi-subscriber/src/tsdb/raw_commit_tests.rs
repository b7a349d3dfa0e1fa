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

/// Copies the database and its day files as they are on disk: what a power cut leaves.
fn cut(dir: &std::path::Path) -> tempfile::TempDir {
    fn copy(from: &std::path::Path, to: &std::path::Path) {
        std::fs::create_dir_all(to).unwrap();
        for e in std::fs::read_dir(from).unwrap() {
            let e = e.unwrap();
            let target = to.join(e.file_name());
            match e.file_type().unwrap().is_dir() {
                true => copy(&e.path(), &target),
                false => drop(std::fs::copy(e.path(), target).unwrap()),
            }
        }
    }
    let to = tempfile::tempdir().unwrap();
    copy(dir, to.path());
    to
}

#[test]
fn a_commit_of_samples_alone_writes_nothing_to_sqlite_and_a_cut_costs_at_most_its_tail() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("h.sqlite");
    let mut db = Tsdb::open(&path, retention(), 500, T0).unwrap();
    // The first commit stores the host, its series and the day's length.
    minutes(&mut db, 0..10);
    let day = T0 / DAY_MS;
    let file = day_file(&path, day);
    let watcher = rusqlite::Connection::open(&path).unwrap();
    let version = |c: &rusqlite::Connection| -> i64 {
        c.query_row("PRAGMA data_version", [], |r| r.get(0))
            .unwrap()
    };
    let (v0, stored) = (version(&watcher), sqlite_state(&path).1 as u64);
    assert_eq!(stored, std::fs::metadata(&file).unwrap().len());
    let commits = db.stats.commits_total;
    // Commits of samples alone: SQLite is not written; the file takes whole pages only.
    for n in 1..=6u64 {
        minutes(&mut db, 5 + 5 * n..10 + 5 * n);
    }
    assert_eq!(db.stats.commits_total, commits + 6);
    assert_eq!(version(&watcher), v0, "SQLite was written");
    assert_eq!(sqlite_state(&path).1 as u64, stored);
    let committed = db.raw_log.borrow().committed_len(day).unwrap();
    let on_disk = std::fs::metadata(&file).unwrap().len();
    assert_eq!(on_disk, stored.max(committed / 4096 * 4096));
    assert!(on_disk > stored, "{on_disk} bytes: a whole page at least");
    // A power cut now: what a seal on the card closes comes back, as a prefix of the
    // samples; the rest is the tail the Pi backfills (less than a page and a commit).
    let copy = cut(dir.path());
    let db_cut = Tsdb::open(&copy.path().join("h.sqlite"), retention(), 500, T0).unwrap();
    let back: Vec<u64> = db_cut.all_raw_for_test().iter().map(|r| r.seq).collect();
    let k = back.len() as u64;
    assert_eq!(back, (0..k).collect::<Vec<u64>>());
    assert!((10..40).contains(&k), "{k} samples came back");
    // A clean stop writes the tail: every sample comes back.
    drop(db);
    let db = Tsdb::open(&path, retention(), 500, T0 + 40 * MINUTE_MS).unwrap();
    assert_eq!(raw_rows(&db), 40);
    let host = db.hosts["tower"].id;
    assert_eq!(
        db.newest_raw(host).unwrap(),
        Some((T0 + 39 * MINUTE_MS, 39))
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
    let sealed = db.raw_log.borrow().committed_len(T0 / DAY_MS).unwrap();
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

/// A card that lost committed bytes of a day's file (here: the file cut short): the day ends
/// at its last readable record, `/health` counts the bytes, and each host's gap up to its
/// next sample (a later day) becomes a hole, saved by the next commit, for the backfill.
#[test]
fn committed_samples_the_card_lost_become_a_hole_and_are_counted() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("h.sqlite");
    // Samples a minute apart across midnight: seq 0..=19 on T0's day, 20..=29 the next.
    let start = T0 + DAY_MS - 20 * MINUTE_MS;
    let mut db = Tsdb::open(&path, retention(), 500, start).unwrap();
    for seq in 0..30u64 {
        let ts_ms = start + seq as i64 * MINUTE_MS;
        db.ingest(&snap(seq, ts_ms), true, ts_ms).unwrap();
    }
    db.commit().unwrap();
    drop(db);
    let file = day_file(&path, T0 / DAY_MS);
    let committed = std::fs::metadata(&file).unwrap().len();
    // The card lost the file's last 300 bytes (the last samples of the day).
    std::fs::OpenOptions::new()
        .write(true)
        .open(&file)
        .unwrap()
        .set_len(committed - 300)
        .unwrap();
    let now = start + 31 * MINUTE_MS;
    let mut db = Tsdb::open(&path, retention(), 500, now).unwrap();
    let good = std::fs::metadata(&file).unwrap().len();
    assert!(good <= committed - 300);
    assert_eq!(db.stats.raw_lost_bytes, committed - good);
    let seqs: Vec<u64> = db.all_raw_for_test().iter().map(|r| r.seq).collect();
    let k = *seqs.iter().take_while(|s| **s < 20).last().unwrap();
    assert!(k < 19, "{seqs:?}");
    assert_eq!(seqs, (0..=k).chain(20..30).collect::<Vec<u64>>());
    // The next commit saves the hole: from the last readable sample to the next day's first.
    db.ingest(&snap(30, now), true, now).unwrap();
    db.commit().unwrap();
    let holes = db.due_holes(now + 60_000, 8).unwrap();
    let got: Vec<_> = holes
        .iter()
        .map(|h| {
            (
                h.host.as_str(),
                h.after_seq,
                h.before_seq,
                h.after_ts_ms,
                h.before_ts_ms,
            )
        })
        .collect();
    let at = |seq: u64| start + seq as i64 * MINUTE_MS;
    assert_eq!(got, [("tower", k, 20, at(k), at(20))]);
}
