//! Buckets and tiers: pure functions, time passed in.
//!
//! A bucket keeps min, max, sum, count and last of the values that fell in it (a gauge's
//! values, or a counter's per-second rates), so that a coarser bucket is exactly the merge of
//! finer ones and the average is `sum / count` of the raw values, never an average of averages.

use serde::Serialize;

/// The summary of the values in one time bucket.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Bucket {
    pub min: f64,
    pub max: f64,
    pub sum: f64,
    pub count: u32,
    /// The value with the latest time, and that time (ms), so merges keep the real last.
    pub last: f64,
    pub last_ms: i64,
}

impl Bucket {
    pub fn of(value: f64, ts_ms: i64) -> Bucket {
        Bucket {
            min: value,
            max: value,
            sum: value,
            count: 1,
            last: value,
            last_ms: ts_ms,
        }
    }

    pub fn add(&mut self, value: f64, ts_ms: i64) {
        self.merge(&Bucket::of(value, ts_ms));
    }

    pub fn merge(&mut self, other: &Bucket) {
        self.min = self.min.min(other.min);
        self.max = self.max.max(other.max);
        self.sum += other.sum;
        self.count = self.count.saturating_add(other.count);
        if other.last_ms >= self.last_ms {
            self.last = other.last;
            self.last_ms = other.last_ms;
        }
    }

    pub fn avg(&self) -> f64 {
        self.sum / f64::from(self.count.max(1))
    }

    pub fn get(&self, agg: Agg) -> f64 {
        match agg {
            Agg::Avg => self.avg(),
            Agg::Min => self.min,
            Agg::Max => self.max,
            Agg::Last => self.last,
        }
    }
}

/// Which summary a query asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Agg {
    #[default]
    Avg,
    Min,
    Max,
    Last,
}

/// The tiers, finest first.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
pub enum Tier {
    #[serde(rename = "raw")]
    Raw,
    #[serde(rename = "1m")]
    Minute,
    #[serde(rename = "1h")]
    Hour,
}

pub const MINUTE_MS: i64 = 60_000;
pub const HOUR_MS: i64 = 3_600_000;
pub const DAY_MS: i64 = 86_400_000;

impl Tier {
    /// Width of one bucket (raw: none).
    pub fn bucket_ms(self) -> i64 {
        match self {
            Tier::Raw => 0,
            Tier::Minute => MINUTE_MS,
            Tier::Hour => HOUR_MS,
        }
    }

    /// Width of one stored row of buckets: 60 minutes in an hour row, 24 hours in a day row.
    pub fn row_ms(self) -> i64 {
        match self {
            Tier::Raw => 0,
            Tier::Minute => HOUR_MS,
            Tier::Hour => DAY_MS,
        }
    }

    /// Buckets in one stored row.
    pub fn slots(self) -> usize {
        match self {
            Tier::Raw => 0,
            Tier::Minute => 60,
            Tier::Hour => 24,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Tier::Raw => "raw",
            Tier::Minute => "1m",
            Tier::Hour => "1h",
        }
    }
}

/// How long each tier keeps its data.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Retention {
    pub raw_ms: i64,
    pub minute_ms: i64,
    pub hour_ms: i64,
}

impl Retention {
    /// The finest tier whose retention still covers `from_ms` at `now_ms`.
    pub fn tier_for(&self, from_ms: i64, now_ms: i64) -> Tier {
        let age = now_ms.saturating_sub(from_ms);
        if age <= self.raw_ms {
            Tier::Raw
        } else if age <= self.minute_ms {
            Tier::Minute
        } else {
            Tier::Hour
        }
    }

    /// The oldest time each tier keeps at `now_ms`.
    pub fn horizon(&self, tier: Tier, now_ms: i64) -> i64 {
        now_ms.saturating_sub(match tier {
            Tier::Raw => self.raw_ms,
            Tier::Minute => self.minute_ms,
            Tier::Hour => self.hour_ms,
        })
    }
}

/// Start of the `width_ms` bucket holding `ts_ms` (floor, also for times before 1970).
pub fn floor(ts_ms: i64, width_ms: i64) -> i64 {
    ts_ms
        .div_euclid(width_ms.max(1))
        .saturating_mul(width_ms.max(1))
}

/// Re-buckets `(start_ms, bucket)` pairs (ascending) into `step_ms` buckets aligned on
/// multiples of `step_ms`, merging what falls together.
pub fn coarsen(points: &[(i64, Bucket)], step_ms: i64) -> Vec<(i64, Bucket)> {
    let mut out: Vec<(i64, Bucket)> = Vec::new();
    for (ts, b) in points {
        let start = floor(*ts, step_ms);
        match out.last_mut() {
            Some((s, acc)) if *s == start => acc.merge(b),
            _ => out.push((start, *b)),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_bucket_is_exactly_its_raw_values() {
        let values = [(3.0, 10), (1.0, 20), (8.0, 30), (4.0, 40)];
        let mut b = Bucket::of(values[0].0, values[0].1);
        for (v, t) in &values[1..] {
            b.add(*v, *t);
        }
        assert_eq!((b.min, b.max, b.count, b.last), (1.0, 8.0, 4, 4.0));
        assert_eq!(b.avg(), 4.0);
        assert!(b.min <= b.avg() && b.avg() <= b.max);
        // Merging two halves gives the same bucket, whatever the order.
        let (mut left, mut right) = (Bucket::of(3.0, 10), Bucket::of(8.0, 30));
        left.add(1.0, 20);
        right.add(4.0, 40);
        let mut rl = right;
        rl.merge(&left);
        left.merge(&right);
        assert_eq!(left, b);
        assert_eq!(rl, b);
    }

    #[test]
    fn the_finest_tier_that_covers_from_is_chosen() {
        let r = Retention {
            raw_ms: 48 * HOUR_MS,
            minute_ms: 14 * DAY_MS,
            hour_ms: 730 * DAY_MS,
        };
        let now = 100 * DAY_MS;
        assert_eq!(r.tier_for(now - HOUR_MS, now), Tier::Raw);
        assert_eq!(r.tier_for(now - 48 * HOUR_MS, now), Tier::Raw);
        assert_eq!(r.tier_for(now - 48 * HOUR_MS - 1, now), Tier::Minute);
        assert_eq!(r.tier_for(now - 14 * DAY_MS, now), Tier::Minute);
        assert_eq!(r.tier_for(now - 15 * DAY_MS, now), Tier::Hour);
        assert_eq!(r.tier_for(i64::MIN, now), Tier::Hour);
        assert_eq!(r.horizon(Tier::Minute, now), 86 * DAY_MS);
    }

    #[test]
    fn coarsening_merges_aligned_buckets() {
        let pts: Vec<(i64, Bucket)> = (0..6)
            .map(|i| (i * MINUTE_MS, Bucket::of(i as f64, i * MINUTE_MS)))
            .collect();
        let five = coarsen(&pts, 5 * MINUTE_MS);
        assert_eq!(five.len(), 2);
        assert_eq!(five[0].0, 0);
        assert_eq!(
            (five[0].1.min, five[0].1.max, five[0].1.avg()),
            (0.0, 4.0, 2.0)
        );
        assert_eq!((five[1].0, five[1].1.count), (5 * MINUTE_MS, 1));
        assert_eq!(floor(-1, 1000), -1000);
        assert_eq!(floor(1999, 1000), 1000);
    }
}
