//! Reading the raw tier: a host's samples over a range, each paired with the sample before it
//! in seq (the only one a counter's rate may be taken against), for `/history` and `/series`;
//! and where a series of them has a gap.

use std::collections::HashMap;

use super::chain::Chain;
use super::db::{Sample, Tsdb, NEIGHBOUR_WINDOW_MS};
use super::raw_scan::Walk;

/// Raw samples of one host, ascending by time, with an index by seq.
pub(super) struct RawWindow {
    samples: Vec<Sample>,
    by_seq: HashMap<u64, Vec<usize>>,
    from_ms: i64,
}

impl RawWindow {
    /// The samples at or after the range's start, each with its seq predecessor when that
    /// one is in the window and follows on (same boot, earlier time).
    pub(super) fn each(&self) -> impl Iterator<Item = (&Sample, Option<&Sample>)> {
        self.samples
            .iter()
            .filter(|s| s.ts_ms >= self.from_ms)
            .map(|s| (s, self.previous(s)))
    }

    fn previous(&self, s: &Sample) -> Option<&Sample> {
        s.seq
            .checked_sub(1)
            .and_then(|p| self.by_seq.get(&p))
            .and_then(|c| c.iter().map(|&i| &self.samples[i]).find(|p| s.follows(p)))
    }

    /// The host's sampling interval in the window: the median time between a sample and its
    /// seq predecessor ([`DEFAULT_INTERVAL_MS`] when no two samples follow on).
    pub(super) fn interval_ms(&self) -> i64 {
        let mut steps: Vec<i64> = self
            .samples
            .iter()
            .filter_map(|s| Some(s.ts_ms - self.previous(s)?.ts_ms))
            .collect();
        if steps.is_empty() {
            return DEFAULT_INTERVAL_MS;
        }
        let middle = steps.len() / 2;
        *steps.select_nth_unstable(middle).1
    }
}

/// The sampling interval assumed of a host until two of its samples follow on.
pub(super) const DEFAULT_INTERVAL_MS: i64 = 15_000;

/// Where a series whose point before is `last` and whose next point is `next` has a gap: the
/// time of the `null` that marks it, one sampling interval after `last` (at most halfway to
/// `next`). A gap is a seq jump, a new boot, or more than twice the interval between the two
/// (a publisher that stalled, or a device missing from the samples between).
pub(super) fn gap_at(last: &Sample, next: &Sample, interval_ms: i64) -> Option<i64> {
    let apart = next.ts_ms.saturating_sub(last.ts_ms);
    let gap = !next.follows(last) || apart > interval_ms.saturating_mul(2);
    (gap && apart >= 2).then(|| last.ts_ms + interval_ms.clamp(1, apart / 2))
}

impl Tsdb {
    /// The raw samples of host `host` with `from_ms - margin_ms <= ts <= to_ms` (the margin
    /// holds the neighbours of the first ones), keeping the values of the series `keep`
    /// accepts.
    pub(super) fn raw_window(
        &self,
        host: i64,
        from_ms: i64,
        to_ms: i64,
        margin_ms: i64,
        keep: impl Fn(u32) -> bool,
    ) -> rusqlite::Result<RawWindow> {
        let from = from_ms.saturating_sub(margin_ms);
        let mut samples = Vec::new();
        let mut chain = Chain::default();
        self.walk_raw(Walk::host(host, from, to_ms).with_data(), |r| {
            if !(from..=to_ms).contains(&r.ts) {
                return Ok(true);
            }
            #[cfg(test)]
            super::limits::decoded::add(1);
            let mut values = self.unpack(host, r.ts, r.seq, r.data(), &mut chain)?;
            values.retain(|(id, _)| keep(*id));
            samples.push(Sample {
                ts_ms: r.ts,
                seq: r.seq,
                boot: r.boot,
                values,
            });
            Ok(true)
        })?;
        let mut by_seq: HashMap<u64, Vec<usize>> = HashMap::new();
        for (i, s) in samples.iter().enumerate() {
            by_seq.entry(s.seq).or_default().push(i);
        }
        Ok(RawWindow {
            samples,
            by_seq,
            from_ms,
        })
    }
}

impl Tsdb {
    /// The raw sample one seq before (`dir` −1) or after (+1) `sample`, in the same series.
    pub(super) fn neighbour(
        &self,
        host: i64,
        sample: &Sample,
        dir: i64,
    ) -> rusqlite::Result<Option<Sample>> {
        let Some(want) = sample.seq.checked_add_signed(dir) else {
            return Ok(None);
        };
        let (lo, hi) = if dir < 0 {
            (
                sample.ts_ms.saturating_sub(NEIGHBOUR_WINDOW_MS),
                sample.ts_ms - 1,
            )
        } else {
            (
                sample.ts_ms + 1,
                sample.ts_ms.saturating_add(NEIGHBOUR_WINDOW_MS),
            )
        };
        // Walked from `sample` outwards, nearest first, so the walk stops at the neighbour:
        // the window holds every host's rows (an hour of ten hosts at 1 s is 36 000), which an
        // unordered walk read whole at every backfilled sample.
        let walk = Walk::host(host, lo, hi).with_data();
        let walk = if dir < 0 { walk.newest_first() } else { walk };
        let mut chain = Chain::default();
        let mut found = None;
        self.walk_raw(walk, |row| {
            if row.seq != want || !(lo..=hi).contains(&row.ts) {
                return Ok(true);
            }
            let other = Sample {
                ts_ms: row.ts,
                seq: want,
                boot: row.boot,
                values: self.unpack(host, row.ts, want, row.data(), &mut chain)?,
            };
            let ok = if dir < 0 {
                sample.follows(&other)
            } else {
                other.follows(sample)
            };
            if ok {
                found = Some(other);
            }
            Ok(!ok)
        })?;
        Ok(found)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample(seq: u64, boot: u64, ts_ms: i64) -> Sample {
        Sample {
            ts_ms,
            seq,
            boot,
            values: Vec::new(),
        }
    }

    #[test]
    fn a_gap_is_a_seq_jump_a_new_boot_or_twice_the_interval() {
        let s = |seq, ts| sample(seq, 7, ts);
        assert_eq!(gap_at(&s(1, 0), &s(2, 15_000), 15_000), None);
        assert_eq!(
            gap_at(&s(1, 0), &s(2, 30_000), 15_000),
            None,
            "twice: jitter"
        );
        assert_eq!(gap_at(&s(1, 0), &s(2, 30_001), 15_000), Some(15_000));
        assert_eq!(
            gap_at(&s(1, 0), &s(3, 30_000), 15_000),
            Some(15_000),
            "seq jump"
        );
        assert_eq!(
            gap_at(&s(1, 0), &s(3, 20_000), 15_000),
            Some(10_000),
            "halfway at most"
        );
        assert_eq!(
            gap_at(&s(1, 0), &sample(2, 8, 15_000), 15_000),
            Some(7_500),
            "new boot"
        );
        assert_eq!(
            gap_at(&s(1, 0), &s(3, 1), 15_000),
            None,
            "no room for a null"
        );
        assert_eq!(gap_at(&s(1, 0), &s(3, 2), 15_000), Some(1));
        assert_eq!(gap_at(&s(1, 0), &s(2, 600_000), 60_000), Some(60_000));
    }
}
