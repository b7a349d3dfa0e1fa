//! The history as remote write's queue: cursors, late samples, the hold at a hole, a rollback.

use broker::{Cpu, Snapshot};

use super::rollup::{DAY_MS, HOUR_MS};
use super::*;
use crate::registry::Value;

const T0: i64 = 1_700_006_400_000;

fn retention() -> Retention {
    Retention {
        raw_ms: 48 * HOUR_MS,
        minute_ms: 14 * DAY_MS,
        hour_ms: 730 * DAY_MS,
    }
}

fn snap(host: &str, seq: u64) -> Snapshot {
    Snapshot {
        host: host.into(),
        seq,
        ts_ms: T0 + 15_000 * seq as i64,
        boot_id: Some("b".into()),
        cpu: Some(Cpu {
            usage_percent: Some(seq as f64),
            ..Cpu::default()
        }),
        ..Snapshot::default()
    }
}

fn next(db: &mut Tsdb, max: usize, hold_ms: i64, now: i64) -> (Vec<(String, i64)>, Option<RwMark>) {
    match db.rw_next("r", |_| true, max, hold_ms, now).unwrap() {
        Some((samples, mark)) => (
            samples.into_iter().map(|s| (s.host, s.ts_ms)).collect(),
            Some(mark),
        ),
        None => (Vec::new(), None),
    }
}

fn at(seq: i64) -> i64 {
    T0 + 15_000 * seq
}

fn hole(after: u64, before: u64) -> Hole {
    Hole {
        host: "tower".into(),
        after_seq: after,
        before_seq: before,
        after_ts_ms: at(after as i64),
        before_ts_ms: at(before as i64),
        tries: 0,
    }
}

#[test]
fn a_new_remote_starts_at_the_newest_and_a_new_host_at_its_first() {
    let mut db = Tsdb::open_in_memory(retention(), 500, T0).unwrap();
    for seq in 1..=3 {
        db.ingest(&snap("tower", seq), true, at(seq as i64))
            .unwrap();
    }
    db.commit().unwrap();
    db.rw_register("r").unwrap();
    assert_eq!(
        next(&mut db, 100, 0, at(3)),
        (vec![], None),
        "not 48 h of history"
    );
    db.ingest(&snap("tower", 4), true, at(4)).unwrap();
    db.ingest(&snap("nas", 1), true, at(1)).unwrap();
    let (mut got, mark) = next(&mut db, 100, 0, at(4));
    got.sort();
    assert_eq!(got, vec![("nas".into(), at(1)), ("tower".into(), at(4))]);
    db.rw_ack("r", mark.unwrap()).unwrap();
    assert_eq!(next(&mut db, 100, 0, at(4)).0, vec![]);
    assert_eq!(db.rw_backlog("r", |_| true).unwrap(), (0, 0.0));
}

#[test]
fn a_sample_stored_behind_the_cursor_is_sent_after_the_fact_and_a_hole_holds_the_stream() {
    let mut db = Tsdb::open_in_memory(retention(), 500, T0).unwrap();
    db.rw_register("r").unwrap();
    for seq in [1, 2] {
        db.ingest(&snap("tower", seq), true, at(seq as i64))
            .unwrap();
    }
    let (got, mark) = next(&mut db, 100, 0, at(2));
    assert_eq!(got.len(), 2);
    db.rw_ack("r", mark.unwrap()).unwrap();
    // Seq 5 arrives live: a hole (3, 4) opens. Held while it is young…
    db.ingest(&snap("tower", 5), true, at(5)).unwrap();
    db.add_hole(&hole(2, 5), at(5)).unwrap();
    assert_eq!(
        next(&mut db, 100, 60_000, at(5)).0,
        vec![],
        "held at the hole"
    );
    assert_eq!(db.rw_backlog("r", |_| true).unwrap().0, 1);
    // …the backfill fills it: all three go, in order.
    for seq in [3, 4] {
        db.ingest(&snap("tower", seq), false, at(6)).unwrap();
    }
    let fate = db
        .settle_hole(
            &hole(2, 5),
            &Attempt::Answered {
                newest_seq: Some(5),
            },
            at(6),
        )
        .unwrap();
    assert_eq!(fate, Fate::Filled);
    let (got, mark) = next(&mut db, 100, 60_000, at(6));
    assert_eq!(
        got.iter().map(|g| g.1).collect::<Vec<_>>(),
        vec![at(3), at(4), at(5)]
    );
    db.rw_ack("r", mark.unwrap()).unwrap();
    // Past the hold, the stream goes on; what a late backfill brings is sent after the fact.
    db.ingest(&snap("tower", 8), true, at(8)).unwrap();
    db.add_hole(&hole(5, 8), at(8)).unwrap();
    let (got, mark) = next(&mut db, 100, 60_000, at(8) + 61_000);
    assert_eq!(got, vec![("tower".into(), at(8))]);
    db.rw_ack("r", mark.unwrap()).unwrap();
    db.ingest(&snap("tower", 6), false, at(9)).unwrap();
    let (got, mark) = next(&mut db, 100, 60_000, at(9));
    assert_eq!(got, vec![("tower".into(), at(6))], "late, first");
    db.rw_ack("r", mark.unwrap()).unwrap();
    assert_eq!(next(&mut db, 100, 60_000, at(9) + 61_000).0, vec![]);
}

#[test]
fn a_remote_registered_before_any_host_keeps_every_sample_across_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("h.sqlite");
    let mut db = Tsdb::open(&path, retention(), 500, T0).unwrap();
    db.rw_register("r").unwrap();
    for seq in 1..=3 {
        db.ingest(&snap("tower", seq), true, at(seq as i64))
            .unwrap();
    }
    db.commit().unwrap();
    drop(db);
    // The receiver was down all along; the Pi restarts: nothing is skipped.
    let mut db = Tsdb::open(&path, retention(), 500, at(3)).unwrap();
    db.rw_register("r").unwrap();
    assert_eq!(next(&mut db, 100, 0, at(3)).0.len(), 3);
}

/// tower's sample 1 stored, committed, sent and acknowledged (the acknowledgement not
/// committed).
fn tower_1_sent() -> Tsdb {
    let mut db = Tsdb::open_in_memory(retention(), 500, T0).unwrap();
    db.rw_register("r").unwrap();
    db.ingest(&snap("tower", 1), true, at(1)).unwrap();
    db.commit().unwrap();
    let (_, mark) = next(&mut db, 100, 0, at(1));
    db.rw_ack("r", mark.unwrap()).unwrap();
    db
}

#[test]
fn a_rollback_puts_the_cursor_back_where_the_database_has_it() {
    let mut db = tower_1_sent();
    db.roll_back();
    // The acknowledgement was rolled back: the sample is sent again (at least once).
    assert_eq!(
        next(&mut db, 100, 0, at(1)).0,
        vec![("tower".into(), at(1))]
    );
}

/// The CPU use each sent sample carries (the tests' samples carry their seq there).
fn seqs(db: &mut Tsdb, max: usize) -> Vec<Vec<(String, i64, f64)>> {
    let mut batches = Vec::new();
    while let Some((samples, mark)) = db.rw_next("r", |_| true, max, 0, at(9)).unwrap() {
        batches.push(
            samples
                .into_iter()
                .map(|s| {
                    let cpu = s.values.iter().find_map(|(_, _, v)| match v {
                        Value::Gauge(g) => Some(*g),
                        _ => None,
                    });
                    (s.host, s.ts_ms, cpu.unwrap())
                })
                .collect(),
        );
        db.rw_ack("r", mark).unwrap();
        assert!(batches.len() < 10, "{batches:?}");
    }
    batches
}

#[test]
fn samples_of_one_millisecond_stored_out_of_seq_order_are_all_sent_in_seq_order() {
    let mut db = Tsdb::open_in_memory(retention(), 500, T0).unwrap();
    db.rw_register("r").unwrap();
    // seq 3 comes before seq 2, both dated at(2) (a clock that stood still), then seq 4; a
    // second host between them.
    for (host, seq, ts) in [("tower", 3, at(2)), ("nas", 1, at(2)), ("tower", 2, at(2))] {
        let s = Snapshot {
            ts_ms: ts,
            ..snap(host, seq)
        };
        db.ingest(&s, false, at(4)).unwrap();
    }
    db.ingest(&snap("tower", 4), false, at(4)).unwrap();
    db.commit().unwrap();
    // One sample a batch asked for: a millisecond's rows of a host go together, in seq order,
    // so the cursor passes none of them.
    let sent: Vec<(String, i64, f64)> = seqs(&mut db, 1).into_iter().flatten().collect();
    let tower: Vec<f64> = sent
        .iter()
        .filter(|(h, _, _)| h == "tower")
        .map(|s| s.2)
        .collect();
    assert_eq!(tower, [2.0, 3.0, 4.0], "{sent:?}");
    assert_eq!(sent.len(), 4, "{sent:?}");
}

#[test]
fn a_host_silent_beside_others_is_found_again_and_a_backfill_below_the_walks_is_sent() {
    let mut db = Tsdb::open_in_memory(retention(), 500, T0).unwrap();
    db.rw_register("r").unwrap();
    for seq in 1..=3 {
        for host in ["tower", "nas"] {
            db.ingest(&snap(host, seq), true, at(seq as i64)).unwrap();
        }
    }
    db.commit().unwrap();
    assert_eq!(seqs(&mut db, 100).concat().len(), 6);
    // tower is silent while nas goes on: the walks for tower find nothing up to nas's rows.
    for seq in 4..=6 {
        db.ingest(&snap("nas", seq), true, at(seq as i64)).unwrap();
    }
    db.commit().unwrap();
    assert_eq!(db.rw_backlog("r", |_| true).unwrap().0, 3);
    let sent = seqs(&mut db, 100).concat();
    assert_eq!(sent.len(), 3, "{sent:?}");
    assert!(sent.iter().all(|(h, _, _)| h == "nas"), "{sent:?}");
    assert_eq!(db.rw_backlog("r", |_| true).unwrap(), (0, 0.0));
    // tower's seq 4 is backfilled below where the walks went (after its cursor: not late),
    // then tower is back live at seq 7: both are counted and sent.
    db.ingest(&snap("tower", 4), false, at(7)).unwrap();
    db.ingest(&snap("tower", 7), true, at(7)).unwrap();
    db.commit().unwrap();
    assert_eq!(db.rw_backlog("r", |_| true).unwrap().0, 2);
    let sent = seqs(&mut db, 100).concat();
    assert_eq!(
        sent,
        [("tower".into(), at(4), 4.0), ("tower".into(), at(7), 7.0)]
    );
    assert_eq!(db.rw_backlog("r", |_| true).unwrap(), (0, 0.0));
}

#[test]
fn a_rollback_takes_back_what_the_walks_learnt_with_the_cursors() {
    let mut db = tower_1_sent();
    // Nothing more: the walk learns tower has nothing up to its row.
    assert_eq!(next(&mut db, 100, 0, at(1)).0, vec![]);
    db.roll_back();
    assert_eq!(
        next(&mut db, 100, 0, at(1)).0,
        vec![("tower".into(), at(1))]
    );
}
