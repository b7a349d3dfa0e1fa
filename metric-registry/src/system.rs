//! The system's state beyond numbers: its failed systemd units. Names are the API: never
//! rename one.

use super::{ha_problem_listing, prom, Kind, LabelKey, Metric, Scale, Value};

/// In registry order (see [`super::METRICS`]), after the power flags.
pub(super) const SYSTEM: [Metric; 2] = [
    Metric {
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
    },
    // How many processes run; the top lists themselves never become series (one per pid
    // would be unbounded): they travel with the snapshot (`/metrics`) only.
    Metric {
        name: "process_count",
        unit: "",
        kind: Kind::Gauge,
        label: None,
        title: "Processes",
        prom: prom("processes", "Processes running", None, Scale::Same, None),
        ha: None,
        alert: None,
        chart: None,
        extract: |s, sink| {
            if let Some(p) = &s.processes {
                sink("", Value::Gauge(f64::from(p.count)));
            }
        },
    },
];
