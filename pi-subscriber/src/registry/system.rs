//! The system's state beyond numbers: its failed systemd units. Names are the API: never
//! rename one.

use super::{ha_problem_listing, prom, Kind, LabelKey, Metric, Scale, Value};

/// In registry order (see [`super::METRICS`]), after the power flags.
pub(super) const SYSTEM: [Metric; 1] = [Metric {
    name: "unit_failed",
    unit: "",
    kind: Kind::Gauge,
    label: Some(LabelKey::Unit),
    title: "Failed units",
    prom: prom(
        "systemd_unit_failed",
        "1 for each systemd unit in the failed state",
        None,
        Scale::Same,
        Some("unit"),
    ),
    ha: ha_problem_listing("mdi:alert-circle"),
    alert: Some("unit_failed"),
    chart: None,
    // 1 per failed unit, and their count host-wide; nothing where the host has no systemd.
    extract: |s, sink| {
        if let Some(units) = &s.failed_units {
            sink("", Value::Gauge(units.len() as f64));
            for u in units {
                sink(&u.name, Value::Gauge(1.0));
            }
        }
    },
}];
