//! Pruning goes an hour at a time in every tier, so the commits between two hours delete
//! nothing. In WAL mode SQLite writes every page a `DELETE` touches (the pages it frees too),
//! so a prune at every commit rewrote the first leaf and interior pages of the tables it cut
//! 288 times a day (`bench tsdb`, docs/benchmarks.md).

use broker::{Cpu, ProcessTop, Processes, Snapshot};

use super::rollup::{DAY_MS, HOUR_MS, MINUTE_MS};
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

fn count(db: &Tsdb, sql: &str) -> i64 {
    db.conn.query_row(sql, [], |r| r.get(0)).unwrap()
}

/// The minute peaks and the minute rows of the hour at T0, after `maintain(now)`.
fn first_hour(db: &mut Tsdb, now: i64) -> (i64, i64) {
    db.maintain(now).unwrap();
    let end = T0 + HOUR_MS;
    (
        count(
            db,
            &format!("SELECT COUNT(*) FROM top_minute WHERE start < {end}"),
        ),
        count(
            db,
            &format!("SELECT COUNT(*) FROM minute WHERE start < {end}"),
        ),
    )
}

#[test]
fn the_minute_tier_and_its_peaks_go_an_hour_at_a_time() {
    let mut db = Tsdb::open_in_memory(retention(), 500, T0).unwrap();
    two_hours(&mut db);
    // Past the raw tier: the first hour's peaks are kept, 60 minutes, and its minute rows
    // (two half-hour rows a series).
    let (peaks, rows) = first_hour(&mut db, T0 + 50 * HOUR_MS);
    assert_eq!(peaks, 60);
    assert!(rows >= 2, "{rows}");
    // 14 days and 10, then 50 minutes after T0: the minute tier's horizon is inside the first
    // hour, whose rows all stay until the hour after it is past the horizon too.
    for past in [10, 50] {
        let now = T0 + 14 * DAY_MS + past * MINUTE_MS;
        assert_eq!(first_hour(&mut db, now), (peaks, rows), "{past} min");
    }
    // An hour past the horizon: the peaks go whole; the rows (which hold buckets up to an
    // hour after their start) whole too, an hour later.
    assert_eq!(first_hour(&mut db, T0 + 14 * DAY_MS + HOUR_MS), (0, rows));
    let now = T0 + 14 * DAY_MS + HOUR_MS + 40 * MINUTE_MS;
    assert_eq!(first_hour(&mut db, now), (0, rows));
    assert_eq!(
        first_hour(&mut db, T0 + 14 * DAY_MS + 2 * HOUR_MS + MINUTE_MS),
        (0, 0)
    );
}
