//! Rates from two consecutive samples of one host: a pure function, no I/O, no clock.
//!
//! A rate is only computed within one series: the later sample must have a higher `seq`, a
//! later timestamp, the same `boot_id`, and a counter that did not go down. A reboot, a
//! counter wrap or a publisher whose ring was reset starts a new series: the rate is `None`
//! (shown as `null`), never negative and never the huge number a naive subtraction gives.

use broker::Snapshot;

use crate::registry::{Kind, Rate, Value, METRICS};

/// The counters a rate is computed from, with what identifies their series.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Point {
    pub seq: u64,
    pub ts_ms: i64,
    /// A hash of the boot id (0 when unknown): a change means the counters restarted.
    pub boot: u64,
}

/// Seconds between two points of one series, or `None` when they are not one series.
pub fn elapsed_s(earlier: &Point, later: &Point) -> Option<f64> {
    if later.seq <= earlier.seq || later.ts_ms <= earlier.ts_ms {
        return None;
    }
    if earlier.boot != 0 && later.boot != 0 && earlier.boot != later.boot {
        return None;
    }
    Some(later.ts_ms.saturating_sub(earlier.ts_ms) as f64 / 1000.0)
}

/// Per-second increase of a cumulative counter; `None` when it went down (reset or wrap).
pub fn counter_rate(earlier: u64, later: u64, elapsed_s: f64) -> Option<f64> {
    if later < earlier || elapsed_s <= 0.0 {
        return None;
    }
    Some((later - earlier) as f64 / elapsed_s)
}

/// A stable 64-bit hash of a boot id (FNV-1a), so rows can carry it in 8 bytes.
pub fn boot_hash(boot_id: Option<&str>) -> u64 {
    let Some(id) = boot_id else { return 0 };
    let mut h: u64 = 0xcbf29ce484222325;
    for b in id.bytes() {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x100000001b3);
    }
    h.max(1)
}

/// A fingerprint of a set of device or interface names (FNV-1a over the sorted names), so a
/// history row can tell which devices its totals sum; 0 for an empty or unknown set.
pub fn name_set_hash<'a>(names: impl IntoIterator<Item = &'a String>) -> u32 {
    let mut h: u32 = 0x811c9dc5;
    let mut any = false;
    for name in names {
        any = true;
        for b in name.bytes().chain([0xff]) {
            h ^= u32::from(b);
            h = h.wrapping_mul(0x01000193);
        }
    }
    if any {
        h.max(1)
    } else {
        0
    }
}

/// The one rate rule (every surface reads its result): what `later`'s counters say against
/// `earlier`, its seq predecessor `dt_s` seconds before. `key` tells, for a value's key, its
/// metric (registry index) and label (`""`: the metric's host-wide total); the metric's
/// [`Rate`] says how an increase is served.
///
/// - A device's (interface's, …) increase: its counter's, when it is in both samples; none
///   when the counter went down (a reset or a wrap), so never negative.
/// - A total's increase: the sum over the devices present in both samples, so a disk that
///   appears, vanishes or is re-included changes no total; none when one of them reset or
///   none is in both. From the total's own counter when either sample has no devices for
///   the metric, or when the metric's bit is set in `whole` (a device of it has no series:
///   the sum would silently be partial).
/// - [`Rate::PerSecond`]: the increase over `dt_s`. [`Rate::BusyPercent`]: milliseconds
///   busy over `dt_s` as a %, at most 100; its total is the busiest device's (none when the
///   total would come from its own counter, a sum of busy times). [`Rate::PerEvent`]: the
///   increase over the named metric's increase of the same label (0 when that is 0).
pub fn counter_rates<'a, K: Copy + PartialEq>(
    earlier: &[(K, Value)],
    later: &[(K, Value)],
    dt_s: f64,
    key: impl Fn(K) -> Option<(usize, &'a str)>,
    whole: u64,
) -> Vec<(K, f64)> {
    #[derive(Clone, Copy, Default)]
    struct Sum {
        increase: f64,
        busiest: Option<f64>,
        both: usize,
        reset: bool,
        in_earlier: bool,
        in_later: bool,
    }
    let counter = |values: &[(K, Value)], k: K| {
        values.iter().find_map(|(e, v)| match v {
            Value::Counter(c) if *e == k => Some(*c),
            _ => None,
        })
    };
    let mut sums: Vec<Sum> = vec![Sum::default(); METRICS.len()];
    for (k, _) in earlier
        .iter()
        .filter(|(_, v)| matches!(v, Value::Counter(_)))
    {
        if let Some((m, label)) = key(*k) {
            if let (false, Some(s)) = (label.is_empty(), sums.get_mut(m)) {
                s.in_earlier = true;
            }
        }
    }
    // Each counter's increase: `None` when not in `earlier`, `Some(None)` when it went down.
    let mut increases: Vec<(K, usize, &'a str, Option<Option<f64>>)> = Vec::new();
    for (k, v) in later {
        let (Value::Counter(now), Some((m, label))) = (v, key(*k)) else {
            continue;
        };
        let increase = counter(earlier, *k)
            .map(|was| (*now >= was && dt_s > 0.0).then(|| (*now - was) as f64));
        increases.push((*k, m, label, increase));
        if label.is_empty() {
            continue;
        }
        if let Some(s) = sums.get_mut(m) {
            s.in_later = true;
            if let Some(d) = increase {
                s.both += 1;
                match d {
                    Some(d) => {
                        s.increase += d;
                        let busy = busy_percent(d, dt_s);
                        s.busiest = Some(s.busiest.map_or(busy, |b: f64| b.max(busy)));
                    }
                    None => s.reset = true,
                }
            }
        }
    }
    // Totals' increases by the sum rule (and whether they came from their own counter).
    let total_increase = |m: usize, own: Option<Option<f64>>| -> (Option<f64>, bool) {
        let s = sums.get(m).copied().unwrap_or_default();
        let whole = whole & 1u64.checked_shl(m as u32).unwrap_or(0) != 0;
        if whole || !(s.in_earlier && s.in_later) {
            (own.flatten(), true)
        } else {
            ((s.both > 0 && !s.reset).then_some(s.increase), false)
        }
    };
    let increase_of = |m: usize, label: &str| -> Option<f64> {
        let (_, _, _, own) = increases
            .iter()
            .find(|(_, x, l, _)| *x == m && *l == label)?;
        if label.is_empty() {
            total_increase(m, *own).0
        } else {
            own.flatten()
        }
    };
    let mut out = Vec::new();
    for (k, m, label, own) in increases.iter().copied() {
        let Some(Kind::Counter(rate)) = METRICS.get(m).map(|x| x.kind) else {
            continue;
        };
        let (increase, from_own) = if label.is_empty() {
            total_increase(m, own)
        } else {
            (own.flatten(), false)
        };
        let value = match rate {
            Rate::PerSecond => increase.map(|d| d / dt_s),
            Rate::BusyPercent if label.is_empty() => (!from_own)
                .then(|| sums.get(m).and_then(|s| s.busiest))
                .flatten(),
            Rate::BusyPercent => increase.map(|d| busy_percent(d, dt_s)),
            Rate::PerEvent(per) => {
                let events = crate::registry::index_of(per).and_then(|p| increase_of(p, label));
                match (increase, events) {
                    (Some(d), Some(n)) if n > 0.0 => Some(d / n),
                    (Some(_), Some(_)) => Some(0.0),
                    _ => None,
                }
            }
        };
        if let Some(v) = value {
            out.push((k, v));
        }
    }
    out
}

/// Milliseconds busy over `dt_s` seconds, as a % (at most 100: the kernel's accounting may
/// run a little ahead of the wall clock, as `iostat` also caps it).
fn busy_percent(busy_ms: f64, dt_s: f64) -> f64 {
    (busy_ms / (dt_s * 10.0)).min(100.0)
}

/// The rates of one sample's counters, by metric (registry index) and label (`""` for the
/// total), as the rate rule gave them at ingest: what `/metrics`, Home Assistant and the
/// alert rules read. A counter absent here has no rate for that sample (`null`).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Derived(pub Vec<(usize, String, f64)>);

impl Derived {
    /// The rate of `metric`'s series `label` (`""`: the host-wide total).
    pub fn get(&self, metric: &str, label: &str) -> Option<f64> {
        self.by_index(crate::registry::index_of(metric)?, label)
    }

    pub fn by_index(&self, metric: usize, label: &str) -> Option<f64> {
        self.0
            .iter()
            .find(|(m, l, _)| *m == metric && l == label)
            .map(|(_, _, r)| *r)
    }

    /// The host-wide rate of a registry counter.
    pub fn total(&self, metric: &str) -> Option<f64> {
        self.get(metric, "")
    }
}

/// The rates of `later` against `earlier` by the one rate rule, straight from two snapshots
/// (every device counted): `None` unless `later` is `earlier`'s seq successor in one boot,
/// later in time. The store computes the same through its series at ingest.
pub fn between(earlier: &Snapshot, later: &Snapshot) -> Option<Derived> {
    let (a, b) = (point_of(earlier), point_of(later));
    let adjacent = a.seq.checked_add(1) == Some(b.seq)
        && (a.boot == b.boot || a.boot == 0 || b.boot == 0)
        && b.ts_ms > a.ts_ms;
    if !adjacent {
        return None;
    }
    let values = |s: &Snapshot| -> Vec<((usize, String), Value)> {
        METRICS
            .iter()
            .enumerate()
            .flat_map(|(m, metric)| {
                metric
                    .values(s)
                    .into_iter()
                    .map(move |(label, v)| ((m, label), v))
            })
            .collect()
    };
    let (e, l) = (values(earlier), values(later));
    let mut keys: Vec<(usize, String)> = l.iter().map(|(k, _)| k.clone()).collect();
    keys.extend(
        e.iter()
            .map(|(k, _)| k.clone())
            .filter(|k| !l.iter().any(|(x, _)| x == k)),
    );
    let index = |values: &[((usize, String), Value)]| -> Vec<(usize, Value)> {
        values
            .iter()
            .filter_map(|(k, v)| Some((keys.iter().position(|x| x == k)?, *v)))
            .collect()
    };
    let dt = (b.ts_ms - a.ts_ms) as f64 / 1000.0;
    let rates = counter_rates(
        &index(&e),
        &index(&l),
        dt,
        |i| keys.get(i).map(|(m, label)| (*m, label.as_str())),
        0,
    );
    Some(Derived(
        rates
            .into_iter()
            .filter_map(|(i, r)| keys.get(i).map(|(m, label)| (*m, label.clone(), r)))
            .collect(),
    ))
}

pub fn point_of(s: &Snapshot) -> Point {
    Point {
        seq: s.seq,
        ts_ms: s.ts_ms,
        boot: boot_hash(s.boot_id.as_deref()),
    }
}

#[cfg(test)]
#[path = "rates_tests.rs"]
mod tests;
