//! A restart of the Pi: a restored host is judged from when it was last heard (saved in
//! `alerts.json`, on the Pi's clock), counting only the time the Pi was listening.

use super::*;
use crate::alerts::engine::Saved;

fn restart(saved: Saved, now: i64) -> Engine {
    Engine::new(
        RuleSet::from_settings(&AlertSettings::default()),
        MAX_AGE,
        REPEAT,
        saved,
        now,
    )
}

/// A restored host the Pi has not heard from since its restart.
fn restored() -> Vec<(String, Option<i64>)> {
    vec![("tower".into(), None)]
}

#[test]
fn a_restart_while_the_host_is_down_neither_resolves_nor_fires_again() {
    let mut e = engine_with(&AlertSettings::default(), 0);
    e.sample(&temp(40.0), None, 1_000);
    let down = e.tick(&hosts(1_000), 47_000);
    assert_eq!(brief(&down), [t("host_down", "firing", Severity::Critical)]);
    e.tick(&hosts(1_000), 50_000);
    // The Pi stops at 50 s and is back at 60 s.
    let mut e = restart(e.saved(), 60_000);
    for now in (60_000..400_000).step_by(500) {
        assert_eq!(brief(&e.tick(&restored(), now)), [], "at {now}");
        assert!(e.is_stale("tower"));
    }
    assert_eq!(
        brief(&e.sample(&temp(40.0), None, 400_000)),
        [t("host_down", "resolved", Severity::Critical)]
    );
}

#[test]
fn a_host_silent_before_the_restart_is_down_after_max_age_of_the_pi_listening() {
    let mut e = engine_with(&AlertSettings::default(), 0);
    e.sample(&temp(40.0), None, 1_000);
    e.tick(&hosts(1_000), 21_000);
    // Heard at 1 s, the Pi stops at 21 s (20 s listening) and is back at 100 s: 25 s more.
    let mut e = restart(e.saved(), 100_000);
    assert_eq!(brief(&e.tick(&restored(), 125_000)), []);
    let down = e.tick(&restored(), 125_001);
    assert_eq!(brief(&down), [t("host_down", "firing", Severity::Critical)]);
    assert_eq!(down[0].message, "tower: down, nothing received for 124 s");
}

#[test]
fn a_host_heard_until_a_long_pi_outage_gets_max_age_after_the_restart() {
    // Guard: the Pi's own outage is not the host's.
    let mut e = engine_with(&AlertSettings::default(), 0);
    e.sample(&temp(40.0), None, 1_000);
    e.tick(&hosts(1_000), 2_000);
    let mut e = restart(e.saved(), 3_600_000);
    assert_eq!(brief(&e.tick(&restored(), 3_644_000)), []);
    assert_eq!(brief(&e.sample(&temp(40.0), None, 3_644_500)), []);
    assert_eq!(brief(&e.tick(&hosts(3_644_500), 3_689_500)), []);
}

#[test]
fn when_it_was_last_heard_is_saved_at_most_a_minute_late() {
    let mut e = engine_with(&AlertSettings::default(), 0);
    e.sample(&temp(40.0), None, 0);
    e.tick(&hosts(0), 500);
    assert!(e.take_dirty(), "the first boot_id");
    for s in 1..60 {
        e.sample(&temp(40.0), None, s * 1_000);
        e.tick(&hosts(s * 1_000), s * 1_000 + 500);
        assert!(!e.is_dirty(), "at {s} s");
    }
    e.sample(&temp(40.0), None, 60_000);
    e.tick(&hosts(60_000), 60_500);
    assert!(e.take_dirty());
    let saved = e.saved();
    assert_eq!(saved.heard.get("tower"), Some(&60_000));
    assert_eq!(saved.clock_ms, Some(60_500));
    // A host that is silent changes nothing worth a write.
    for s in 61..300 {
        e.tick(&hosts(60_000), s * 1_000);
    }
    assert!(e.take_dirty(), "host_down fired");
    for s in 300..400 {
        e.tick(&hosts(60_000), s * 1_000);
        assert!(!e.is_dirty(), "at {s} s");
    }
}
