//! Pruning goes an hour at a time in the raw tier and a day at a time in the minute tier and
//! its peaks, so the commits between two hours delete nothing. In WAL mode SQLite writes every
//! page a `DELETE` touches (the pages it frees too): a prune at every commit rewrote the first
//! leaf and interior pages of the tables it cut 288 times a day, and a day's minute rows
//! deleted cost as many page writes as they held (`bench tsdb`, docs/benchmarks.md).

use broker::{Cpu, ProcessTop, Processes, Snapshot};

use super::parts::Kind;
use super::rollup::{Bucket, DAY_MS, HOUR_MS, MINUTE_MS};
use super::tests::retention;
use super::*;

const T0: i64 = 1_700_006_400_000; // an hour boundary

/// A sample a minute from T0 for two hours, each with a CPU use and a top-process list.
fn two_hours(db: &mut Tsdb) {
    for seq in 0..120u64 {
        let ts_ms = T0 + seq as i64 * MINUTE_MS;
        let s = Snapshot {
            host: "tower".into(),
            seq,
            ts_ms,
            boot_id: Some("b".into()),
            cpu: Some(Cpu {
                usage_percent: Some(seq as f64 % 100.0),
                ..Cpu::default()
            }),
            processes: Some(Processes {
                count: 100,
                top_cpu: vec![ProcessTop {
                    pid: 1,
                    name: "init".into(),
                    user: None,
                    cpu_percent: Some(0.5),
                    rss_bytes: 4096,
                }],
                top_rss: vec![],
            }),
            ..Snapshot::default()
        };
        db.ingest(&s, true, ts_ms).unwrap();
    }
    db.commit().unwrap();
}

/// The minute peaks and the minute rows of the hour at T0, after `maintain(now)`.
fn first_hour(db: &mut Tsdb, now: i64) -> (i64, i64) {
    db.maintain(now).unwrap();
    let end = T0 + HOUR_MS;
    (
        db.peak_minutes_for_test(&format!("WHERE start < {end}")),
        db.rows_of(Kind::Minute, &format!("WHERE start < {end}")),
    )
}

#[test]
fn the_minute_tier_and_its_peaks_go_a_day_at_a_time() {
    let mut db = Tsdb::open_in_memory(retention(), 500, T0).unwrap();
    two_hours(&mut db);
    // Past the raw tier: the first hour's peaks are kept, 60 minutes, and its minute rows
    // (two half-hour rows a series), in the tables of T0's day.
    let (peaks, rows) = first_hour(&mut db, T0 + 50 * HOUR_MS);
    assert_eq!(peaks, 60);
    assert!(rows >= 2, "{rows}");
    let day = T0 / DAY_MS;
    assert_eq!(db.days_of(Kind::Top), [day]);
    assert_eq!(db.days_of(Kind::Minute), [day]);
    // The minute tier's horizon inside T0's day, or past its first hours: the day's rows all
    // stay until the whole day is past the horizon.
    for past in [10 * MINUTE_MS, 2 * HOUR_MS + MINUTE_MS, 23 * HOUR_MS] {
        let now = T0 + 14 * DAY_MS + past;
        assert_eq!(first_hour(&mut db, now), (peaks, rows), "{past} ms");
    }
    // The day past the horizon: its peaks go whole; its rows (which hold buckets up to an
    // hour after their start) whole too, an hour later.
    assert_eq!(first_hour(&mut db, T0 + 15 * DAY_MS), (0, rows));
    assert_eq!(db.days_of(Kind::Top), Vec::<i64>::new());
    assert_eq!(first_hour(&mut db, T0 + 15 * DAY_MS + HOUR_MS), (0, 0));
    assert_eq!(db.days_of(Kind::Minute), Vec::<i64>::new());
}

/// A day's table is dropped, not its rows deleted: a `DELETE` in WAL mode writes every page
/// it empties, so pruning a day of minute rows cost as many page writes as the day held.
#[test]
fn a_day_of_the_minute_tier_goes_without_writing_its_pages() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("h.sqlite");
    let mut db = Tsdb::open(&path, retention(), 500, T0).unwrap();
    two_hours(&mut db);
    db.maintain(T0 + 50 * HOUR_MS).unwrap();
    // A day's worth of minute rows: 400 series × 24 hours, each ~150 bytes a half.
    let row: Vec<Option<Bucket>> = (0..60)
        .map(|i| {
            Some(Bucket {
                min: i as f64,
                max: i as f64 * 2.5,
                sum: i as f64 * 7.25,
                count: 4,
                last: i as f64 / 3.0,
                last_ms: T0 + i * MINUTE_MS,
            })
        })
        .collect();
    db.begin().unwrap();
    for series in 1000..1400u32 {
        for h in 0..24 {
            db.write_minute_row(series, T0 + h * HOUR_MS, &row).unwrap();
        }
    }
    db.commit().unwrap();
    let pages: i64 = db
        .conn
        .query_row(
            &format!(
                "SELECT COUNT(*) FROM dbstat WHERE name = 'minute_d{}'",
                T0 / DAY_MS
            ),
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert!(pages > 1000, "{pages} pages");
    db.wal_pages_for_test(&path);
    db.maintain(T0 + 15 * DAY_MS + HOUR_MS).unwrap();
    assert_eq!(db.days_of(Kind::Minute), Vec::<i64>::new());
    let written = db.wal_pages_for_test(&path).len();
    assert!(written < 20, "{written} pages written to prune {pages}");
}

/// A day's table made in a transaction that is rolled back is gone with it, and made again by
/// the next write of that day (the days are read again from the schema).
#[test]
fn a_days_table_made_in_a_rolled_back_transaction_is_made_again() {
    let mut db = Tsdb::open_in_memory(retention(), 500, T0).unwrap();
    let row = vec![
        Some(Bucket {
            min: 1.0,
            max: 2.0,
            sum: 3.0,
            count: 2,
            last: 2.0,
            last_ms: T0,
        });
        60
    ];
    db.begin().unwrap();
    db.write_minute_row(7, T0, &row).unwrap();
    assert_eq!(db.days_of(Kind::Minute), [T0 / DAY_MS]);
    db.roll_back();
    assert_eq!(db.days_of(Kind::Minute), Vec::<i64>::new());
    db.begin().unwrap();
    db.write_minute_row(7, T0, &row).unwrap();
    db.commit().unwrap();
    assert_eq!(db.minute_row(7, T0).unwrap().unwrap()[0], row[0]);
}

/// The days' tables are found again when the database is opened again, and read.
#[test]
fn the_days_tables_are_found_again_at_open() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("h.sqlite");
    let mut db = Tsdb::open(&path, retention(), 500, T0).unwrap();
    two_hours(&mut db);
    db.maintain(T0 + 50 * HOUR_MS).unwrap();
    let (peaks, rows) = first_hour(&mut db, T0 + 50 * HOUR_MS);
    let answer = db.top_in("tower", T0, T0 + HOUR_MS).unwrap();
    drop(db);
    let mut db = Tsdb::open(&path, retention(), 500, T0 + 50 * HOUR_MS).unwrap();
    assert_eq!(db.days_of(Kind::Minute), [T0 / DAY_MS]);
    assert_eq!(db.days_of(Kind::Top), [T0 / DAY_MS]);
    assert_eq!(first_hour(&mut db, T0 + 50 * HOUR_MS), (peaks, rows));
    assert_eq!(db.top_in("tower", T0, T0 + HOUR_MS).unwrap(), answer);
    assert!(answer.is_some());
    assert_eq!(db.newest_minute_row().unwrap(), Some(T0 + HOUR_MS));
}
