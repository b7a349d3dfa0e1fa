//! `unit_failed`: one alert per failed systemd unit, on the first sample that lists it,
//! resolved on the first that no longer does.

use broker::{FailedUnit, Snapshot};

use super::super::config::AlertSettings;
use super::super::engine::Engine;
use super::super::rules::RuleSet;

fn with(units: Option<&[&str]>) -> Snapshot {
    Snapshot {
        host: "tower".into(),
        boot_id: Some("b1".into()),
        failed_units: units.map(|u| {
            u.iter()
                .map(|n| FailedUnit {
                    name: (*n).into(),
                    since_ms: Some(1_000),
                    result: Some("exit-code".into()),
                })
                .collect()
        }),
        ..Snapshot::default()
    }
}

fn seen(ns: &[super::super::engine::Notice]) -> Vec<(String, String, String)> {
    ns.iter()
        .map(|n| (n.rule.clone(), n.label.clone(), n.status.clone()))
        .collect()
}

fn f(label: &str, status: &str) -> (String, String, String) {
    ("unit_failed".into(), label.into(), status.into())
}

#[test]
fn each_failed_unit_fires_at_once_and_resolves_when_it_is_no_longer_listed() {
    let mut e = Engine::new(
        RuleSet::from_settings(&AlertSettings::default()),
        45_000,
        0,
        Default::default(),
        0,
    );
    assert!(e.sample(&with(Some(&[])), None, 1_000).is_empty());
    assert_eq!(
        seen(&e.sample(&with(Some(&["backup.service", "nas.mount"])), None, 2_000)),
        [f("backup.service", "firing"), f("nas.mount", "firing")],
        "one per unit, none for their count"
    );
    let n = e.sample(&with(Some(&["nas.mount"])), None, 3_000);
    assert_eq!(seen(&n), [f("backup.service", "resolved")]);
    assert_eq!(
        n[0].message,
        "tower: unit_failed backup.service resolved (0.0)"
    );
    // No systemd in a sample (null): nothing is said about the units (they expire later,
    // as any series that stops).
    assert!(e.sample(&with(None), None, 4_000).is_empty());
    assert_eq!(
        seen(&e.sample(&with(Some(&[])), None, 5_000)),
        [f("nas.mount", "resolved")]
    );
}
