//! A Raspberry Pi's power supply and throttling, as 0/1 gauges (absent on other machines).
//! Names are the API: never rename one.

use broker::{Power, Snapshot};

use super::{ha_problem, prom, Kind, Metric, Scale, Sink, Value};

/// `f`'s flag as a 0/1 gauge, when the snapshot has a power section and `f` knows.
fn flag(s: &Snapshot, sink: Sink<'_>, f: fn(&Power) -> Option<bool>) {
    if let Some(on) = s.power.as_ref().and_then(f) {
        sink("", Value::Gauge(if on { 1.0 } else { 0.0 }));
    }
}

/// A `get_throttled` bit, "now"; shifted by [`Power::SINCE_BOOT`], "since boot".
fn bit(p: &Power, mask: u32) -> Option<bool> {
    p.throttled.map(|t| t & mask != 0)
}

/// Under-voltage now: the `rpi_volt` alarm or the firmware's bit 0, whichever is known.
fn under_voltage(p: &Power) -> Option<bool> {
    match (p.under_voltage_alarm, bit(p, Power::UNDER_VOLTAGE)) {
        (None, None) => None,
        (a, b) => Some(a.unwrap_or(false) || b.unwrap_or(false)),
    }
}

const fn flag_metric(
    name: &'static str,
    title: &'static str,
    help: &'static str,
    extract: fn(&Snapshot, Sink<'_>),
) -> Metric {
    Metric {
        name,
        unit: "",
        kind: Kind::Gauge,
        label: None,
        title,
        prom: prom(name, help, None, Scale::Same, None),
        ha: None,
        alert: None,
        chart: None,
        extract,
    }
}

/// In registry order (see [`super::METRICS`]), after the per-device metrics.
pub(super) const POWER: [Metric; 6] = [
    Metric {
        ha: ha_problem("mdi:flash-alert"),
        alert: Some("under_voltage"),
        ..flag_metric(
            "power_under_voltage",
            "Under-voltage",
            "1 while a Raspberry Pi's supply is below its threshold (rpi_volt alarm or firmware bit 0)",
            |s, sink| flag(s, sink, under_voltage),
        )
    },
    flag_metric(
        "power_under_voltage_occurred",
        "Under-voltage since boot",
        "1 when a Raspberry Pi's supply fell below its threshold since boot (firmware bit 16)",
        |s, sink| flag(s, sink, |p| bit(p, Power::UNDER_VOLTAGE << Power::SINCE_BOOT)),
    ),
    flag_metric(
        "power_throttled",
        "Throttled",
        "1 while a Raspberry Pi's firmware throttles it (bit 2)",
        |s, sink| flag(s, sink, |p| bit(p, Power::THROTTLED)),
    ),
    flag_metric(
        "power_throttled_occurred",
        "Throttled since boot",
        "1 when a Raspberry Pi's firmware throttled it since boot (bit 18)",
        |s, sink| flag(s, sink, |p| bit(p, Power::THROTTLED << Power::SINCE_BOOT)),
    ),
    flag_metric(
        "power_freq_capped",
        "Frequency capped",
        "1 while a Raspberry Pi's ARM frequency is capped (bit 1)",
        |s, sink| flag(s, sink, |p| bit(p, Power::FREQ_CAPPED)),
    ),
    flag_metric(
        "power_soft_temp_limit",
        "Soft temperature limit",
        "1 while a Raspberry Pi's soft temperature limit is active (bit 3)",
        |s, sink| flag(s, sink, |p| bit(p, Power::SOFT_TEMP_LIMIT)),
    ),
];
