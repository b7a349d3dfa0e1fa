//! The raw tier a file a day (`raw_log/`): a day goes whole once all of it is past the tier's
//! 48 h, its file unlinked, nothing written for it; the tables of a database from before are
//! read beside the files and pruned as they were.

use broker::{Cpu, ProcessTop, Processes, Snapshot};

use super::parts::Kind;
use super::rollup::{DAY_MS, HOUR_MS, MINUTE_MS};
use super::tests::retention;
use super::*;

pub(super) const T0: i64 = 1_700_006_400_000; // a day's start (2023-11-15 00:00 UTC)

pub(super) fn snap(seq: u64, ts_ms: i64) -> Snapshot {
    Snapshot {
        host: "tower".into(),
        seq,
        ts_ms,
        boot_id: Some("b".into()),
        cpu: Some(Cpu {
            usage_percent: Some(seq as f64 % 97.0),
            ..Cpu::default()
        }),
        processes: Some(Processes {
            count: 100,
            top_cpu: (0..5)
                .map(|i| ProcessTop {
                    pid: 100 + i + (seq as u32 % 50),
                    name: format!("worker-{i}-{}", seq % 50),
                    user: None,
                    cpu_percent: Some(seq as f64 % 13.0),
                    rss_bytes: 4096 * (seq + u64::from(i)),
                })
                .collect(),
            top_rss: vec![],
        }),
        ..Snapshot::default()
    }
}

/// A sample a minute over T0's day, committed every 20 minutes.
fn a_day(db: &mut Tsdb) {
    minutes(db, 0..1440);
}

/// Sample `seq` at minute `seq` from T0, committed every 20 minutes.
pub(super) fn minutes(db: &mut Tsdb, seqs: std::ops::Range<u64>) {
    for seq in seqs {
        let ts_ms = T0 + seq as i64 * MINUTE_MS;
        db.ingest(&snap(seq, ts_ms), true, ts_ms).unwrap();
        if seq % 20 == 19 {
            db.commit().unwrap();
        }
    }
    db.commit().unwrap();
}

pub(super) fn raw_rows(db: &Tsdb) -> i64 {
    db.all_raw_for_test().len() as i64
}

/// The file of a raw day beside the database at `path`.
pub(super) fn day_file(path: &std::path::Path, day: i64) -> std::path::PathBuf {
    let mut dir = path.as_os_str().to_owned();
    dir.push(".raw");
    std::path::PathBuf::from(dir).join(format!("{day}.raw"))
}

#[test]
fn the_raw_tier_goes_a_day_at_a_time_and_its_pages_are_not_written() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("h.sqlite");
    let mut db = Tsdb::open(&path, retention(), 500, T0).unwrap();
    a_day(&mut db);
    // The tail the last sealed commits left buffered (`RawLog::write_whole_pages`), written.
    db.flush().unwrap();
    assert_eq!(db.raw_days_for_test(), [T0 / DAY_MS]);
    let file = day_file(&path, T0 / DAY_MS);
    let size = std::fs::metadata(&file).unwrap().len();
    assert!(size > 100_000, "{size} bytes");
    let before = db.raw_log.borrow().bytes_written;
    // Every hour from the first past the raw tier's 48 h to the day's last: the rows stay
    // (their minutes' peaks kept as the horizon passes them), and not a byte of the file is
    // written.
    for h in 49..=71 {
        db.maintain(T0 + h * HOUR_MS).unwrap();
        assert_eq!(raw_rows(&db), 1440, "{h} h");
    }
    assert_eq!(db.raw_log.borrow().bytes_written, before);
    assert_eq!(std::fs::metadata(&file).unwrap().len(), size);
    // The whole day past it: gone, its file unlinked once the transaction committed.
    db.maintain(T0 + 72 * HOUR_MS).unwrap();
    assert_eq!(raw_rows(&db), 0);
    assert_eq!(db.raw_days_for_test(), Vec::<i64>::new());
    db.commit().unwrap();
    assert!(!file.exists());
    assert_eq!(db.raw_log.borrow().bytes_written, before);
    // Every minute's peaks were kept, each once.
    assert_eq!(db.peak_minutes_for_test(""), 1440);
    // In a row an hour (`top_hour.rs`).
    assert_eq!(db.rows_of(Kind::Top, ""), 24);
}

/// Under `history.max_disk` the raw days the cut passes whole are dropped with their rows
/// counted, not deleted row by row first (which wrote every page of the day, then freed it).
#[test]
fn the_disk_bound_drops_a_whole_raw_day_without_writing_its_pages() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("h.sqlite");
    let mut db = Tsdb::open(&path, retention(), 500, T0).unwrap();
    a_day(&mut db);
    // The next day's first six hours.
    minutes(&mut db, 1440..1800);
    assert_eq!(db.raw_days_for_test(), [T0 / DAY_MS, T0 / DAY_MS + 1]);
    let size = |day: i64| std::fs::metadata(day_file(&path, day)).unwrap().len();
    let (first, next) = (size(T0 / DAY_MS), size(T0 / DAY_MS + 1));
    let before = db.raw_log.borrow().bytes_written;
    // A bound under what is in use without the first day: all of it goes, and some of the next.
    let used = db.used_bytes().unwrap();
    db.bound_disk(used - first - next / 2).unwrap();
    assert_eq!(db.raw_days_for_test(), [T0 / DAY_MS + 1]);
    assert!(!day_file(&path, T0 / DAY_MS).exists());
    let left = raw_rows(&db);
    assert!(left > 0 && left < 360, "{left} rows left");
    assert_eq!(
        db.stats.disk.pruned_raw_rows_total,
        1800 - left as u64,
        "every row that went is counted"
    );
    // The first day's rows were not rewritten: what went to the next day's file is its hide
    // records and the rows stored whole again (a chain's base went), a few hundred bytes.
    let written = db.raw_log.borrow().bytes_written - before;
    assert!(
        written < 4096 && written < first / 50,
        "{written} bytes written"
    );
}

/// A raw day's table made in a transaction that is rolled back is gone with it (and the view
/// over the tier with it); the next sample of that day makes both again.
#[test]
fn a_raw_days_table_made_in_a_rolled_back_transaction_is_made_again() {
    let mut db = Tsdb::open_in_memory(retention(), 500, T0).unwrap();
    db.ingest(&snap(1, T0 - MINUTE_MS), true, T0).unwrap();
    db.commit().unwrap();
    assert_eq!(db.raw_days_for_test(), [T0 / DAY_MS - 1]);
    db.ingest(&snap(2, T0), true, T0).unwrap();
    assert_eq!(db.raw_days_for_test(), [T0 / DAY_MS - 1, T0 / DAY_MS]);
    db.roll_back();
    assert_eq!(db.raw_days_for_test(), [T0 / DAY_MS - 1]);
    assert_eq!(raw_rows(&db), 1);
    db.ingest(&snap(2, T0), false, T0).unwrap();
    db.commit().unwrap();
    assert_eq!(db.raw_days_for_test(), [T0 / DAY_MS - 1, T0 / DAY_MS]);
    assert_eq!(raw_rows(&db), 2);
    assert_eq!(db.newest_raw(db.hosts["tower"].id).unwrap(), Some((T0, 2)));
}

/// The days' tables are found again at open, and the view over them read.
#[test]
fn the_raw_days_tables_are_found_again_at_open() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("h.sqlite");
    let mut db = Tsdb::open(&path, retention(), 500, T0).unwrap();
    for (seq, ts) in [(1, T0 - MINUTE_MS), (2, T0), (3, T0 + DAY_MS)] {
        db.ingest(&snap(seq, ts), true, ts).unwrap();
    }
    db.commit().unwrap();
    drop(db);
    let db = Tsdb::open(&path, retention(), 500, T0 + DAY_MS).unwrap();
    let day = T0 / DAY_MS;
    assert_eq!(db.raw_days_for_test(), [day - 1, day, day + 1]);
    assert_eq!(raw_rows(&db), 3);
    assert_eq!(
        db.newest_raw(db.hosts["tower"].id).unwrap(),
        Some((T0 + DAY_MS, 3))
    );
}

/// Rows dated ahead of what the Pi accepts once its clock stepped back go: whole days'
/// tables dropped, the day at the edge cut by key.
#[test]
fn raw_rows_ahead_of_a_clock_stepped_back_go() {
    let mut db = Tsdb::open_in_memory(retention(), 500, T0).unwrap();
    let now = T0 + 30 * HOUR_MS;
    for (seq, ts) in [(1, T0 + 29 * HOUR_MS), (2, now + 20 * HOUR_MS)] {
        db.ingest(&snap(seq, ts), true, now).unwrap();
    }
    // A row the Pi took with its clock ahead, in the day after.
    db.ingest(&snap(3, T0 + 47 * HOUR_MS), false, T0 + 40 * HOUR_MS)
        .unwrap();
    db.commit().unwrap();
    let day = T0 / DAY_MS;
    assert_eq!(db.raw_days_for_test(), [day + 1, day + 2]);
    // The clock back at T0 + 20 h: it accepts up to T0 + 44 h.
    db.maintain(T0 + 20 * HOUR_MS).unwrap();
    assert_eq!(db.raw_days_for_test(), [day + 1]);
    assert_eq!(raw_rows(&db), 1);
}

/// Every read of the raw tier ordered by key merges its tables' rows, each read in key order
/// from its B-tree, and none is sorted whole (SQLite merges a `UNION ALL` only when the key
/// is among the columns read: a read without it sorted a day of every host's rows in memory).
/// The statements are the walks' (`raw_scan.rs`) and any taken from the sources, so a new one
/// is checked too.
#[test]
fn ordered_reads_of_the_raw_tier_merge_its_tables_and_sort_nothing() {
    let mut db = Tsdb::open_in_memory(retention(), 500, T0).unwrap();
    for (seq, ts) in [(1, T0 - MINUTE_MS), (2, T0), (3, T0 + DAY_MS)] {
        db.ingest(&snap(seq, ts), true, T0).unwrap();
    }
    db.commit().unwrap();
    // The tables of a database from before, one a day (new rows go to the day files).
    for ts in [T0 - MINUTE_MS, T0, T0 + DAY_MS] {
        db.parts
            .borrow_mut()
            .table_for(&db.conn, Kind::Raw, ts)
            .unwrap();
    }
    assert_eq!(db.days_of(Kind::Raw).len(), 3);
    let sources = [
        include_str!("buckets.rs"),
        include_str!("chain.rs"),
        include_str!("flat.rs"),
        include_str!("holes.rs"),
        include_str!("limits.rs"),
        include_str!("raw.rs"),
        include_str!("raw_key.rs"),
        include_str!("rw_walk.rs"),
        include_str!("size.rs"),
        include_str!("top.rs"),
        include_str!("top_chain.rs"),
    ];
    let mut checked = 0;
    // String literals: every other piece between quotes.
    let literals = sources
        .iter()
        .flat_map(|s| s.split('"').skip(1).step_by(2))
        .filter(|sql| sql.contains("FROM raw_rows") && sql.contains("ORDER BY key"));
    let walks = super::raw_scan::Walk::statements()
        .iter()
        .map(String::as_str);
    {
        for sql in walks.chain(literals) {
            let sql = sql.replace("{bytes}", "length(data)");
            let mut stmt = db
                .conn
                .prepare(&format!("EXPLAIN QUERY PLAN {sql}"))
                .unwrap();
            let nulls = vec![rusqlite::types::Null; stmt.parameter_count()];
            let plan: Vec<String> = stmt
                .query_map(rusqlite::params_from_iter(nulls), |r| r.get::<_, String>(3))
                .unwrap()
                .map(|r| r.unwrap())
                .collect();
            assert!(plan.iter().any(|p| p.contains("MERGE")), "{sql}: {plan:?}");
            assert!(
                !plan.iter().any(|p| p.contains("TEMP B-TREE")),
                "{sql}: {plan:?}"
            );
            checked += 1;
        }
    }
    assert!(checked >= 16, "{checked} statements");
}

/// A database from before the day tables: its raw rows stay in `raw`, read through the view
/// beside the days' tables, and go an hour at a time as they did; new rows go to their day.
#[test]
fn raw_rows_of_before_are_read_beside_the_days_and_go_an_hour_at_a_time() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("h.sqlite");
    let mut db = Tsdb::open(&path, retention(), 500, T0).unwrap();
    for seq in 0..120u64 {
        let ts = T0 + seq as i64 * MINUTE_MS;
        db.ingest(&snap(seq, ts), true, ts).unwrap();
    }
    db.commit().unwrap();
    let day = T0 / DAY_MS;
    // Their rows in the table `raw`, as a database from before the day files holds them.
    let rows = db.all_raw_for_test();
    drop(db);
    let mut files = path.as_os_str().to_owned();
    files.push(".raw");
    std::fs::remove_dir_all(&files).unwrap();
    let conn = rusqlite::Connection::open(&path).unwrap();
    conn.execute("DELETE FROM meta WHERE key GLOB 'raw_log:*'", [])
        .unwrap();
    for r in &rows {
        conn.execute(
            "INSERT INTO raw (key, host, ts, seq, boot, data, top) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
            rusqlite::params![r.key, r.host, r.ts, r.seq as i64, r.boot as i64, r.data, r.top],
        )
        .unwrap();
    }
    drop(conn);
    let later = T0 + 2 * HOUR_MS;
    let mut db = Tsdb::open(&path, retention(), 500, later).unwrap();
    assert_eq!(db.raw_days_for_test(), Vec::<i64>::new());
    assert_eq!(raw_rows(&db), 120);
    // The next samples go to their day's file; the walk reads both.
    for seq in 120..180u64 {
        let ts = T0 + seq as i64 * MINUTE_MS;
        db.ingest(&snap(seq, ts), true, ts).unwrap();
    }
    db.commit().unwrap();
    assert_eq!(db.raw_days_for_test(), [day]);
    assert_eq!(raw_rows(&db), 180);
    let legacy = |db: &Tsdb| -> i64 {
        db.conn
            .query_row("SELECT COUNT(*) FROM raw", [], |r| r.get(0))
            .unwrap()
    };
    assert_eq!(legacy(&db), 120);
    // In key order across both, and the newest from the day's table.
    let seqs: Vec<i64> = db.all_raw_for_test().iter().map(|r| r.seq as i64).collect();
    assert_eq!(seqs, (0..180).collect::<Vec<i64>>());
    assert_eq!(
        db.newest_raw(db.hosts["tower"].id).unwrap(),
        Some((T0 + 179 * MINUTE_MS, 179))
    );
    // The first hour past the horizon: its rows of before go, the day's table stays.
    db.maintain(T0 + 49 * HOUR_MS).unwrap();
    assert_eq!((legacy(&db), raw_rows(&db)), (60, 120));
    db.maintain(T0 + 72 * HOUR_MS).unwrap();
    assert_eq!((legacy(&db), raw_rows(&db)), (0, 0));
    assert_eq!(db.raw_days_for_test(), Vec::<i64>::new());
}

/// A Pi cut after the day files were synced and before SQLite committed: at the next start
/// the files hold what the last commit stored and no more (the rows of the cut transaction
/// are gone from both, so the host's newest sample is the committed one and the next live
/// sample shows the gap), and the next transaction's rows follow on the same file.
#[test]
fn a_cut_between_the_files_sync_and_the_commit_leaves_what_the_commit_stored() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("h.sqlite");
    let mut db = Tsdb::open(&path, retention(), 500, T0).unwrap();
    minutes(&mut db, 0..10);
    let file = day_file(&path, T0 / DAY_MS);
    let committed = std::fs::metadata(&file).unwrap().len();
    for seq in 10..15u64 {
        let ts_ms = T0 + seq as i64 * MINUTE_MS;
        db.ingest(&snap(seq, ts_ms), true, ts_ms).unwrap();
    }
    db.raw_log.borrow_mut().sync().unwrap();
    assert!(std::fs::metadata(&file).unwrap().len() > committed);
    // The cut: the open transaction is never committed (closing the connection rolls it
    // back, as SQLite does at the next open after a power cut).
    drop(db);
    let now = T0 + 15 * MINUTE_MS;
    let mut db = Tsdb::open(&path, retention(), 500, now).unwrap();
    assert_eq!(std::fs::metadata(&file).unwrap().len(), committed);
    assert_eq!(raw_rows(&db), 10);
    let host = db.hosts["tower"].id;
    assert_eq!(db.newest_raw(host).unwrap(), Some((T0 + 9 * MINUTE_MS, 9)));
    // A backfill brings the lost samples back; they are stored once, after the file's end.
    minutes(&mut db, 10..15);
    assert_eq!(raw_rows(&db), 15);
    drop(db);
    let db = Tsdb::open(&path, retention(), 500, now).unwrap();
    let seqs: Vec<u64> = db.all_raw_for_test().iter().map(|r| r.seq).collect();
    assert_eq!(seqs, (0..15).collect::<Vec<u64>>());
}
