//! The store across restarts, with an injected clock: open rows rebuilt from the raw tier,
//! the hosts known at start, a clock stepped back, samples dated ahead, a long Pi outage.
#![allow(clippy::unwrap_used)]

use super::rollup::{DAY_MS, HOUR_MS, MINUTE_MS};
use super::tests::{open, q, snap, two_minutes, T0};
use super::*;

#[test]
fn open_rows_are_rebuilt_after_a_crash_and_closed_rows_are_written_once() {
    let dir = tempfile::tempdir().unwrap();
    let mut db = open(dir.path(), T0);
    two_minutes(&mut db);
    drop(db); // kill -9: the open rows were only in memory
    let now = T0 + 3 * DAY_MS;
    let mut db = open(dir.path(), T0 + 130_000);
    let query = q("cpu_usage_percent", None, T0, T0 + 119_999, None, Agg::Avg);
    let before = db.query(&query, now).unwrap().1;
    assert_eq!(
        before[0].points,
        [(T0, Some(25.0)), (T0 + MINUTE_MS, Some(65.0))]
    );
    // Closing the row writes it; a restart then does not count it twice.
    db.maintain(T0 + 2 * HOUR_MS).unwrap();
    drop(db);
    let db = open(dir.path(), T0 + 2 * HOUR_MS);
    assert_eq!(db.query(&query, now).unwrap().1, before);
}

#[test]
fn flat_rows_and_known_hosts() {
    let dir = tempfile::tempdir().unwrap();
    let mut db = open(dir.path(), T0);
    two_minutes(&mut db);
    let rows = db.flat_rows("tower", T0 + 15_000, T0 + 30_000).unwrap();
    assert_eq!(rows.len(), 2);
    assert_eq!((rows[0].seq, rows[0].ts_ms), (101, T0 + 15_000));
    assert_eq!(rows[0].values["cpu_usage_percent"], 20.0);
    assert_eq!(
        rows[0].values["disk_read_bytes_rate"], 512.0,
        "the neighbour before `from` counts"
    );
    assert!(!rows[0].values.contains_key("network_rx_bytes_rate"));
    assert!(db.flat_rows("nobody", 0, i64::MAX).unwrap().is_empty());
    let known = db.known_hosts(T0 + 60_000).unwrap();
    assert_eq!(known.len(), 1);
    assert_eq!(known[0].name, "tower");
    assert_eq!(known[0].samples, 8);
    assert_eq!(
        known[0].newest_ts_ms,
        Some(T0 + 60_000),
        "clamped to the Pi's clock (issue 18 A3)"
    );
    assert_eq!(
        known[0].reference.map(|r| r.0),
        Some(104),
        "samples beyond the horizon are not references"
    );
}

#[test]
fn a_rebuild_after_a_clock_stepped_back_gives_the_rates_live_ingest_gave() {
    let dir = tempfile::tempdir().unwrap();
    let mut db = open(dir.path(), T0);
    // Four samples, then the server clock steps back an hour for four more; reads grow
    // by 15, 30, 45, … sectors a sample.
    let mut sectors = 0;
    for i in 0..8u64 {
        let ts = if i < 4 {
            T0 + 15_000 * i as i64
        } else {
            T0 - HOUR_MS + 15_000 * i as i64
        };
        sectors += 15 * i;
        db.ingest(&snap(1 + i, ts, 50.0, sectors), true, T0 + 120_000)
            .unwrap();
    }
    db.commit().unwrap();
    let now = T0 + 130_000;
    let query = q(
        "disk_read_bytes_rate",
        Some("sda"),
        T0 - HOUR_MS,
        T0 + 119_999,
        Some(60_000),
        Agg::Max,
    );
    let live = db.query(&query, now).unwrap().1;
    let known: Vec<_> = live[0].points.iter().filter(|p| p.1.is_some()).collect();
    // Live: rates at seq 2-4 (max 45 sectors/15 s = 1536 B/s) and seq 6-8 (7 × 15 × 512 / 15).
    assert_eq!(
        known,
        [
            &(T0 - HOUR_MS + MINUTE_MS, Some(3584.0)),
            &(T0, Some(1536.0))
        ]
    );
    drop(db); // kill -9
    let db = open(dir.path(), now);
    assert_eq!(db.query(&query, now).unwrap().1, live);
}

/// Issue 18 A3: wide snapshots dated days ahead never reach memory at start-up: they are not
/// stored beyond the bound, rows already on disk beyond it are not rebuilt and are pruned,
/// and what a restart believes of the host is clamped to the Pi's clock.
#[test]
fn samples_dated_in_the_future_never_reach_memory_at_start() {
    let dir = tempfile::tempdir().unwrap();
    let wide = |seq: u64, ts_ms: i64| {
        let mut s = snap(seq, ts_ms, 5.0, seq);
        s.thermal.sensors = (0..100).map(|i| (format!("s{i}"), 40.0)).collect();
        s
    };
    let mut db = open(dir.path(), T0);
    db.ingest(&wide(1, T0), true, T0).unwrap();
    db.commit().unwrap();
    let present = db.open.len();
    // An older version stored them (the bound was only on the buckets): write them raw.
    for i in 0..40u64 {
        let ts = T0 + 3 * DAY_MS + i as i64 * HOUR_MS;
        let s = Sample {
            ts_ms: ts,
            seq: 2 + i,
            boot: 1,
            values: db.ingest_values_for_test(&wide(2 + i, ts)),
        };
        db.insert_raw_for_test(&s);
    }
    db.commit().unwrap();
    // Ingest refuses them now.
    let report = db.ingest(&wide(100, T0 + 3 * DAY_MS), true, T0).unwrap();
    assert!(!report.duplicate);
    assert_eq!(db.stats.future_dropped_total, 1);
    drop(db);
    let mut db = open(dir.path(), T0 + 60_000);
    assert_eq!(db.open.len(), present, "no open row for a day ahead");
    let known = db.known_hosts(T0 + 60_000 + 120_000).unwrap();
    assert_eq!(known[0].newest_ts_ms, Some(T0), "clamped to the Pi's clock");
    db.maintain(T0 + 60_000).unwrap();
    assert!(
        db.flat_rows("tower", T0 + DAY_MS, i64::MAX)
            .unwrap()
            .is_empty(),
        "rows dated beyond the bound are pruned"
    );
    assert_eq!(db.flat_rows("tower", 0, i64::MAX).unwrap().len(), 1);
}

/// Issue 18 A4: after a Pi outage of over a day, the hour row still open when it stopped is
/// rebuilt from all of its samples (the raw tier still holds them until the first prune),
/// then closed with them.
#[test]
fn a_long_pi_outage_keeps_the_open_buckets() {
    let dir = tempfile::tempdir().unwrap();
    let mut db = open(dir.path(), T0);
    two_minutes(&mut db);
    db.maintain(T0 + 2 * HOUR_MS).unwrap(); // minute rows of T0's hour written; its day open
    drop(db);
    let back = T0 + 50 * HOUR_MS; // the Pi was off for two days
    let mut db = open(dir.path(), back);
    db.maintain(back).unwrap();
    let later = T0 + 20 * DAY_MS; // past the minute tier: the hour tier answers
    let (tier, s) = db
        .query(
            &q(
                "cpu_usage_percent",
                None,
                T0,
                T0 + HOUR_MS - 1,
                None,
                Agg::Avg,
            ),
            later,
        )
        .unwrap();
    assert_eq!(tier, Tier::Hour);
    assert_eq!(s[0].points, [(T0, Some(45.0))]);
}

#[test]
fn a_host_stored_for_the_first_time_asks_for_a_commit_until_one_holds_it() {
    let dir = tempfile::tempdir().unwrap();
    let mut db = open(dir.path(), T0);
    let at = |i: u64| T0 + 15_000 * i as i64;
    assert!(!db.holds_a_new_host());
    db.ingest(&snap(1, at(1), 10.0, 0), true, at(1)).unwrap();
    assert!(db.holds_a_new_host());
    db.ingest(&snap(2, at(2), 20.0, 8), true, at(2)).unwrap();
    assert!(db.holds_a_new_host());
    db.commit().unwrap();
    assert!(!db.holds_a_new_host());
    // A known host waits for `commit_interval`, after a restart too.
    db.ingest(&snap(3, at(3), 30.0, 16), true, at(3)).unwrap();
    assert!(!db.holds_a_new_host());
    db.commit().unwrap();
    drop(db);
    let mut db = open(dir.path(), at(4));
    db.ingest(&snap(4, at(4), 40.0, 24), true, at(4)).unwrap();
    assert!(!db.holds_a_new_host());
}
