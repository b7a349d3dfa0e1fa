//! Issue 22: `alerts.json` is written when something an operator would miss changes, and the
//! checkpoint of `heard` follows `history.commit_interval` (5 min by default), not the minute.
//! A power cut then loses at most that much of `heard`, which only delays a `host_down`.

use super::*;
use crate::alerts::engine::Saved;

/// `history.commit_interval`'s default.
const COMMIT: i64 = 300_000;
/// The host's sampling interval (its `max_age` is 3 × that: [`MAX_AGE`]).
const EVERY: i64 = 15_000;

/// The engine as the daemon makes it: the heard checkpoint at the history's commit interval.
fn daemon_engine(now: i64) -> Engine {
    engine_with(&AlertSettings::default(), now).with_checkpoint(COMMIT)
}

/// What the daemon's loop does between two ticks: a sample when one is due, a tick with the
/// store's last receipt, and a save when the state is dirty. Returns the saves' times (and
/// the last state written, as `alerts.json` would hold it).
fn run(e: &mut Engine, from: i64, to: i64, on_disk: &mut Saved) -> Vec<i64> {
    let mut saves = Vec::new();
    for now in (from..to).step_by(1_000) {
        if now % EVERY == 0 {
            assert!(
                brief(&e.sample(&temp(40.0), None, now)).is_empty(),
                "at {now}"
            );
        }
        let heard = now - now % EVERY;
        assert!(
            brief(&e.tick(&hosts(heard), now + 500)).is_empty(),
            "at {now}"
        );
        if e.is_dirty() {
            assert!(e.take_dirty());
            *on_disk = e.saved();
            saves.push(now + 500);
        }
    }
    saves
}

#[test]
fn a_host_heard_every_15_s_for_10_minutes_is_saved_once_per_commit_interval() {
    let mut e = daemon_engine(0);
    let mut on_disk = Saved::default();
    let saves = run(&mut e, 0, 600_000, &mut on_disk);
    // The first boot_id, then `heard` once per commit interval: not every minute.
    assert_eq!(saves, [500, 300_500], "{} saves", saves.len());
    assert_eq!(on_disk.heard.get("tower"), Some(&300_000));
}

#[test]
fn a_change_an_operator_would_miss_is_saved_at_once() {
    let mut e = daemon_engine(0);
    let mut on_disk = Saved::default();
    run(&mut e, 0, 100_000, &mut on_disk);
    // An alert that goes pending is saved on the sample that starts it.
    e.sample(&temp(72.0), None, 100_000);
    assert!(e.take_dirty());
    // A new boot is too.
    let mut rebooted = temp(72.0);
    rebooted.boot_id = Some("b2".into());
    e.sample(&rebooted, None, 115_000);
    assert!(e.take_dirty());
    // And a host forgotten, even with no alert left to drop.
    let mut e = daemon_engine(0);
    e.sample(&temp(40.0), None, 0);
    assert!(e.take_dirty());
    e.tick(&[], 1_000);
    assert!(e.take_dirty(), "its boot_id went");
    assert!(e.saved().boots.is_empty());
}

/// When `host_down` first fires after a restart from `saved` at `start`, ticking every second
/// with the host silent; `None` within `limit`.
fn first_down(saved: Saved, start: i64, limit: i64) -> Option<i64> {
    let mut e = Engine::new(
        RuleSet::from_settings(&AlertSettings::default()),
        MAX_AGE,
        REPEAT,
        saved,
        start,
    )
    .with_checkpoint(COMMIT);
    let restored = vec![("tower".to_owned(), None)];
    (start..start + limit).step_by(500).find(|&now| {
        let out = e.tick(&restored, now);
        assert!(out.iter().all(|n| n.rule == "host_down"), "{out:?}");
        !out.is_empty()
    })
}

#[test]
fn a_power_cut_within_the_checkpoint_delays_host_down_and_never_makes_one_up() {
    // The host is heard every 15 s throughout; the power goes at any second between two
    // checkpoints, and the Pi is back 30 s later.
    for cut in (301_000..600_000).step_by(7_000) {
        let mut e = daemon_engine(0);
        let mut on_disk = Saved::default();
        run(&mut e, 0, cut, &mut on_disk);
        assert_eq!(on_disk.clock_ms, Some(300_500), "cut at {cut}");
        // Had nothing been lost: the state as of the cut.
        let fresh = e.saved();
        let start = cut + 30_000;
        let stale = first_down(on_disk.clone(), start, 3_600_000);
        let exact = first_down(fresh, start, 3_600_000);
        let (Some(stale), Some(exact)) = (stale, exact) else {
            panic!("cut at {cut}: a host silent since the restart is down ({stale:?}, {exact:?})");
        };
        // Never sooner than with nothing lost (the silence counted from before the cut is
        // the one at the checkpoint: 0.5 s here, under one sampling interval for any live
        // host, whatever the checkpoint's length), and no later than `max_age` of listening.
        assert!(stale >= exact, "cut at {cut}: {stale} < {exact}");
        assert!(stale <= start + MAX_AGE + 500, "cut at {cut}: {stale}");
        // A host heard again within `max_age` of the restart: no `down`, no `back up`.
        let mut e = Engine::new(
            RuleSet::from_settings(&AlertSettings::default()),
            MAX_AGE,
            REPEAT,
            on_disk,
            start,
        );
        let restored = vec![("tower".to_owned(), None)];
        for now in (start..start + 40_000).step_by(500) {
            assert_eq!(brief(&e.tick(&restored, now)), [], "cut at {cut}, at {now}");
        }
        assert_eq!(brief(&e.sample(&temp(40.0), None, start + 40_000)), []);
        assert_eq!(brief(&e.tick(&hosts(start + 40_000), start + 40_500)), []);
    }
}
