//! Rows of one host to `[value, epoch_ms]` points of one metric, downsampled to the asked
//! bucket, with explicit `null`s for gaps. Pure.

use crate::store::HistoryRow;

use super::metric_value;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Agg {
    Avg,
    Max,
}

/// `[value, epoch_ms]` points of `metric`, ascending. When the rows are denser than
/// `bucket_ms`, they are averaged (or maxed) into buckets stamped at their start; an empty
/// bucket or a missing value between points is an explicit `null`, so Grafana draws a gap
/// rather than a line across an outage.
pub fn datapoints(
    rows: &[HistoryRow],
    metric: &str,
    from_ms: i64,
    bucket_ms: i64,
    agg: Agg,
    native_ms: i64,
) -> Vec<(Option<f64>, i64)> {
    if bucket_ms <= native_ms {
        let mut out = Vec::with_capacity(rows.len());
        let mut previous: Option<i64> = None;
        for row in rows {
            if let Some(p) = previous {
                if row.time - p > 2 * native_ms {
                    out.push((None, p + native_ms));
                }
            }
            out.push((metric_value(row, metric), row.time));
            previous = Some(row.time);
        }
        return out;
    }
    let bucket_of = |t: i64| from_ms + (t - from_ms).div_euclid(bucket_ms) * bucket_ms;
    let mut out: Vec<(Option<f64>, i64)> = Vec::new();
    let mut i = 0;
    while i < rows.len() {
        let start = bucket_of(rows[i].time);
        if let Some(&(_, last)) = out.last() {
            let mut t = last + bucket_ms;
            while t < start {
                out.push((None, t));
                t += bucket_ms;
            }
        }
        let (mut sum, mut count, mut max) = (0.0, 0u32, f64::NEG_INFINITY);
        while i < rows.len() && bucket_of(rows[i].time) == start {
            if let Some(v) = metric_value(&rows[i], metric) {
                sum += v;
                count += 1;
                max = max.max(v);
            }
            i += 1;
        }
        let value = (count > 0).then(|| match agg {
            Agg::Avg => ((sum / f64::from(count)) * 1000.0).round() / 1000.0,
            Agg::Max => max,
        });
        out.push((value, start));
    }
    out
}

/// Native interval of a host's rows, from the median spacing (15 s normally).
pub fn native_interval_ms(rows: &[HistoryRow]) -> i64 {
    let mut gaps: Vec<i64> = rows
        .windows(2)
        .map(|w| w[1].time - w[0].time)
        .filter(|g| *g > 0)
        .collect();
    if gaps.is_empty() {
        return 15_000;
    }
    gaps.sort_unstable();
    gaps[gaps.len() / 2]
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(time: i64, cpu: Option<f64>) -> HistoryRow {
        HistoryRow {
            time,
            host: "t".into(),
            seq: 0,
            cpu_usage_percent: cpu,
            load_1m: None,
            load_5m: None,
            load_15m: None,
            memory_available_mb: None,
            memory_total_mb: None,
            memory_used_percent: None,
            swap_used_mb: None,
            cpu_temp_c: None,
            disk_read_sectors_rate: None,
            disk_write_sectors_rate: None,
            disk_read_bytes_rate: None,
            disk_write_bytes_rate: None,
            network_rx_bytes_rate: None,
            network_tx_bytes_rate: None,
        }
    }

    #[test]
    fn raw_points_with_nulls_for_gaps() {
        let rows = [
            row(0, Some(1.0)),
            row(15_000, None),
            row(30_000, Some(3.0)),
            row(90_000, Some(4.0)),
        ];
        let p = datapoints(&rows, "cpu_usage_percent", 0, 15_000, Agg::Avg, 15_000);
        assert_eq!(
            p,
            vec![
                (Some(1.0), 0),
                (None, 15_000),
                (Some(3.0), 30_000),
                (None, 45_000),
                (Some(4.0), 90_000)
            ]
        );
    }

    #[test]
    fn downsampling_averages_or_keeps_the_max_and_fills_empty_buckets() {
        let rows: Vec<_> = (0..8)
            .map(|i| row(i * 15_000, Some(i as f64)))
            .chain([row(180_000, Some(100.0))])
            .collect();
        let avg = datapoints(&rows, "cpu_usage_percent", 0, 60_000, Agg::Avg, 15_000);
        assert_eq!(
            avg,
            vec![
                (Some(1.5), 0),
                (Some(5.5), 60_000),
                (None, 120_000),
                (Some(100.0), 180_000)
            ]
        );
        let max = datapoints(&rows, "cpu_usage_percent", 0, 60_000, Agg::Max, 15_000);
        assert_eq!(max[0], (Some(3.0), 0));
        assert_eq!(max[1], (Some(7.0), 60_000));
    }
}
