//! Holes with an injected clock: recorded, retried with backoff, narrowed, filled, lost;
//! surviving a restart.

use broker::Snapshot;

use super::*;
use crate::tsdb::{Retention, Tsdb};

const T0: i64 = 1_700_006_400_000;
const DAY: i64 = 86_400_000;

fn open(dir: &std::path::Path, now: i64) -> Tsdb {
    let retention = Retention {
        raw_ms: 2 * DAY,
        minute_ms: 14 * DAY,
        hour_ms: 730 * DAY,
    };
    Tsdb::open(&dir.join("history.sqlite"), retention, 500, now).unwrap()
}

fn snap(seq: u64) -> Snapshot {
    Snapshot {
        host: "tower".into(),
        seq,
        ts_ms: T0 + 15_000 * seq as i64,
        boot_id: Some("b".into()),
        ..Snapshot::default()
    }
}

fn hole(after: u64, before: u64, tries: u32) -> Hole {
    Hole {
        host: "tower".into(),
        after_seq: after,
        before_seq: before,
        after_ts_ms: T0 + 15_000 * after as i64,
        before_ts_ms: T0 + 15_000 * before as i64,
        tries,
    }
}

/// Seqs 1 and 10 stored, 2..=9 missing; a hole recorded at `T0 + 150 s`.
fn with_hole(dir: &std::path::Path) -> (Tsdb, i64) {
    let now = T0 + 150_000;
    let mut db = open(dir, now);
    for seq in [1, 10] {
        db.ingest(&snap(seq), true, now).unwrap();
    }
    db.add_hole(&hole(1, 10, 0), now).unwrap();
    db.commit().unwrap();
    (db, now)
}

#[test]
fn a_failed_attempt_is_retried_with_backoff_and_survives_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let (mut db, now) = with_hole(dir.path());
    assert_eq!(db.stats.holes.holes_open, 1);
    assert_eq!(db.due_holes(now, 8).unwrap(), [hole(1, 10, 0)]);
    // The publisher's HTTP is down.
    assert_eq!(
        db.settle_hole(&hole(1, 10, 0), &Attempt::Failed, now)
            .unwrap(),
        Fate::Retry(now + 2_000)
    );
    db.commit().unwrap();
    assert!(db.due_holes(now + 1_999, 8).unwrap().is_empty());
    assert_eq!(db.due_holes(now + 2_000, 8).unwrap(), [hole(1, 10, 1)]);
    // Three samples arrive by a partial backfill, then the Pi restarts.
    for seq in [2, 3, 5] {
        db.ingest(&snap(seq), false, now).unwrap();
    }
    assert_eq!(
        db.settle_hole(&hole(1, 10, 1), &Attempt::Failed, now + 2_000)
            .unwrap(),
        Fate::Retry(now + 2_000 + 4_000)
    );
    db.commit().unwrap();
    drop(db);
    let mut db = open(dir.path(), now + 60_000);
    assert_eq!(db.stats.holes.holes_open, 1);
    // Narrowed to the first seq still missing (3 was the last of a run from 1).
    let due = db.due_holes(now + 60_000, 8).unwrap();
    assert_eq!(due, [hole(3, 10, 2)]);
    for seq in [4, 6, 7, 8, 9] {
        db.ingest(&snap(seq), false, now + 60_000).unwrap();
    }
    assert_eq!(
        db.settle_hole(
            &due[0],
            &Attempt::Answered { newest_seq: None },
            now + 60_000
        )
        .unwrap(),
        Fate::Filled
    );
    assert_eq!(db.stats.holes.holes_open, 0);
    assert_eq!(db.stats.holes.holes_filled_total, 1);
    assert_eq!(db.stats.holes.holes_retried_total, 0, "counted since start");
    assert!(db.lost("tower", 0, i64::MAX).unwrap().is_empty());
}

#[test]
fn what_the_ring_no_longer_holds_is_recorded_as_lost() {
    let dir = tempfile::tempdir().unwrap();
    let (mut db, now) = with_hole(dir.path());
    // The publisher answered: its ring starts at 7 (2..=6 are gone).
    for seq in [7, 8, 9] {
        db.ingest(&snap(seq), false, now).unwrap();
    }
    assert_eq!(
        db.settle_hole(
            &hole(1, 10, 0),
            &Attempt::Answered { newest_seq: None },
            now
        )
        .unwrap(),
        Fate::Lost(5)
    );
    db.commit().unwrap();
    let lost = db.lost("tower", 0, i64::MAX).unwrap();
    assert_eq!(
        lost,
        [Lost {
            from_ms: T0 + 15_000,
            to_ms: T0 + 150_000,
            samples: 5
        }]
    );
    assert!(db.lost("tower", 0, T0).unwrap().is_empty(), "by range");
    assert_eq!(db.stats.holes.samples_lost_total, 5);
    drop(db);
    let db = open(dir.path(), now);
    assert_eq!(db.stats.holes.samples_lost_total, 5, "persisted");
    assert_eq!(db.stats.holes.holes_open, 0);
}

#[test]
fn a_hole_past_any_ring_gives_up_and_holes_are_bounded_per_host() {
    let dir = tempfile::tempdir().unwrap();
    let (mut db, now) = with_hole(dir.path());
    let late = now + GIVE_UP_MS + 1;
    assert_eq!(
        db.settle_hole(&hole(1, 10, 5), &Attempt::Failed, late)
            .unwrap(),
        Fate::Lost(8)
    );
    // A flood of seq jumps: holes stay bounded, the last ones merged into the newest.
    for i in 0..(MAX_HOLES_PER_HOST as u64 + 10) {
        let after = 100 + 10 * i;
        db.add_hole(&hole(after, after + 5, 0), late).unwrap();
    }
    assert_eq!(db.stats.holes.holes_open, MAX_HOLES_PER_HOST as u64);
    let due = db.due_holes(late, 1000).unwrap();
    let newest = due.iter().max_by_key(|h| h.after_seq).unwrap();
    assert_eq!(newest.after_seq, 100 + 10 * (MAX_HOLES_PER_HOST as u64 - 1));
    assert_eq!(
        newest.before_seq,
        100 + 10 * (MAX_HOLES_PER_HOST as u64 + 9) + 5
    );
    // Forgetting the host takes its holes and losses.
    assert!(db.forget("tower").unwrap());
    assert!(db.due_holes(late, 1000).unwrap().is_empty());
}

/// A spoofed seq near 2^64 reveals a "hole" the publisher never had: only what its ring
/// lacks up to its newest seq is lost, and no count overflows.
#[test]
fn seqs_past_the_publishers_newest_are_never_counted_lost() {
    let dir = tempfile::tempdir().unwrap();
    let (mut db, now) = with_hole(dir.path());
    for seq in 2..=9 {
        db.ingest(&snap(seq), false, now).unwrap();
    }
    let spoof = Hole {
        before_seq: u64::MAX,
        before_ts_ms: T0 + 160_000,
        ..hole(10, 11, 0)
    };
    db.add_hole(&spoof, now).unwrap();
    let answered = Attempt::Answered {
        newest_seq: Some(12),
    };
    // 11 and 12 existed and are gone; nothing past 12 ever existed.
    assert_eq!(
        db.settle_hole(&spoof, &answered, now).unwrap(),
        Fate::Lost(2)
    );
    assert_eq!(
        db.settle_hole(&hole(1, 10, 0), &answered, now).unwrap(),
        Fate::Filled
    );
    let huge = Hole {
        after_seq: 0,
        ..spoof.clone()
    };
    db.add_hole(&huge, now).unwrap();
    let unknown = Attempt::Answered { newest_seq: None };
    assert!(matches!(
        db.settle_hole(&huge, &unknown, now).unwrap(),
        Fate::Lost(_)
    ));
    db.add_hole(&huge, now).unwrap();
    db.settle_hole(&huge, &unknown, now).unwrap();
    db.commit().unwrap();
    assert!(db.stats.holes.samples_lost_total > 2);
    let lost = db.lost("tower", 0, i64::MAX).unwrap();
    assert!(
        lost.iter().all(|l| l.samples <= 1_000_000_000_000),
        "{lost:?}"
    );
}
