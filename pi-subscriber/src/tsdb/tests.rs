//! The store with an injected clock: exact rollups, tiers, late samples and backfill, bounds.

use broker::{Cpu, Disk, DiskDevice, Snapshot};

use super::rollup::{DAY_MS, HOUR_MS, MINUTE_MS};
use super::*;
use crate::registry::metric;

pub(super) const T0: i64 = 1_700_006_400_000; // an hour boundary (2023-11-15 00:00 UTC)

pub(super) fn retention() -> Retention {
    Retention {
        raw_ms: 48 * HOUR_MS,
        minute_ms: 14 * DAY_MS,
        hour_ms: 730 * DAY_MS,
    }
}

pub(super) fn snap(seq: u64, ts_ms: i64, cpu: f64, sda_sectors: u64) -> Snapshot {
    Snapshot {
        host: "tower".into(),
        seq,
        ts_ms,
        boot_id: Some("boot-a".into()),
        cpu: Some(Cpu {
            usage_percent: Some(cpu),
            ..Cpu::default()
        }),
        disk: Some(Disk {
            read_sectors: sda_sectors,
            write_sectors: 0,
            devices: [(
                "sda".to_string(),
                DiskDevice {
                    read_sectors: sda_sectors,
                    write_sectors: 0,
                    ..Default::default()
                },
            )]
            .into(),
        }),
        ..Snapshot::default()
    }
}

pub(super) fn open(dir: &std::path::Path, now: i64) -> Tsdb {
    Tsdb::open(&dir.join("history.sqlite"), retention(), 500, now).unwrap()
}

pub(super) fn q<'a>(
    name: &str,
    label: Option<&'a str>,
    from: i64,
    to: i64,
    step: Option<i64>,
    agg: Agg,
) -> SeriesQuery<'a> {
    SeriesQuery {
        host: "tower",
        metric: metric(name).unwrap(),
        label,
        from_ms: from,
        to_ms: to,
        step_ms: step,
        agg,
    }
}

/// Eight samples 15 s apart over two minutes: cpu 10, 20, …, 80; sda reads 512 bytes/s.
pub(super) fn two_minutes(db: &mut Tsdb) {
    for i in 0..8u64 {
        let ts = T0 + 15_000 * i as i64;
        db.ingest(&snap(100 + i, ts, 10.0 * (i + 1) as f64, 15 * i), true, ts)
            .unwrap();
    }
    db.commit().unwrap();
}

#[test]
fn minute_buckets_hold_the_exact_min_avg_max_of_their_raw_samples() {
    let dir = tempfile::tempdir().unwrap();
    let mut db = open(dir.path(), T0);
    two_minutes(&mut db);
    let now = T0 + 3 * DAY_MS; // beyond raw: the minute tier answers
    let from = T0;
    for (agg, want) in [
        (Agg::Min, [10.0, 50.0]),
        (Agg::Max, [40.0, 80.0]),
        (Agg::Avg, [25.0, 65.0]),
        (Agg::Last, [40.0, 80.0]),
    ] {
        let (tier, series) = db
            .query(
                &q("cpu_usage_percent", None, from, T0 + 119_999, None, agg),
                now,
            )
            .unwrap();
        assert_eq!(tier, Tier::Minute);
        assert_eq!(series.len(), 1);
        assert_eq!(
            series[0].points,
            [(T0, Some(want[0])), (T0 + MINUTE_MS, Some(want[1]))],
            "{agg:?}"
        );
    }
    // The counter's rate: 15 sectors per 15 s = 512 bytes/s, in both the total and sda.
    let (_, series) = db
        .query(
            &q(
                "disk_read_bytes_rate",
                None,
                from,
                T0 + 119_999,
                None,
                Agg::Avg,
            ),
            now,
        )
        .unwrap();
    assert_eq!(series.len(), 2);
    assert_eq!(series[0].labels.len(), 0, "the total first");
    assert_eq!(series[1].labels["device"], "sda");
    for s in &series {
        assert_eq!(s.points, [(T0, Some(512.0)), (T0 + MINUTE_MS, Some(512.0))]);
    }
}

#[test]
fn raw_tier_serves_samples_and_seq_neighbour_rates() {
    let dir = tempfile::tempdir().unwrap();
    let mut db = open(dir.path(), T0);
    two_minutes(&mut db);
    let now = T0 + HOUR_MS;
    let (tier, series) = db
        .query(
            &q(
                "disk_read_bytes_rate",
                Some("sda"),
                T0,
                T0 + 60_000,
                None,
                Agg::Avg,
            ),
            now,
        )
        .unwrap();
    assert_eq!(tier, Tier::Raw);
    assert_eq!(
        series[0].points,
        [
            (T0, None),
            (T0 + 15_000, Some(512.0)),
            (T0 + 30_000, Some(512.0)),
            (T0 + 45_000, Some(512.0)),
            (T0 + 60_000, Some(512.0))
        ]
    );
    // A step coarser than raw aggregates further.
    let (_, series) = db
        .query(
            &q(
                "cpu_usage_percent",
                None,
                T0,
                T0 + 119_999,
                Some(60_000),
                Agg::Max,
            ),
            now,
        )
        .unwrap();
    assert_eq!(
        series[0].points,
        [(T0, Some(40.0)), (T0 + MINUTE_MS, Some(80.0))]
    );
}

#[test]
fn a_counter_reset_never_gives_a_negative_rate() {
    let dir = tempfile::tempdir().unwrap();
    let mut db = open(dir.path(), T0);
    for (i, sectors) in [1000u64, 1015, 3, 18].into_iter().enumerate() {
        let ts = T0 + 15_000 * i as i64;
        db.ingest(&snap(1 + i as u64, ts, 1.0, sectors), true, ts)
            .unwrap();
    }
    let (_, series) = db
        .query(
            &q(
                "disk_read_bytes_rate",
                Some(""),
                T0,
                T0 + 60_000,
                None,
                Agg::Min,
            ),
            T0 + 60_000,
        )
        .unwrap();
    let rates: Vec<Option<f64>> = series[0].points.iter().map(|p| p.1).collect();
    assert_eq!(rates, [None, Some(512.0), None, Some(512.0)]);
}

#[test]
fn a_late_sample_is_merged_into_its_written_row_and_an_old_backfill_lands_in_buckets() {
    let dir = tempfile::tempdir().unwrap();
    let mut db = open(dir.path(), T0);
    two_minutes(&mut db);
    db.maintain(T0 + 2 * HOUR_MS).unwrap();
    // Backfill of a sample in the closed first minute (seq 99, before seq 100).
    db.ingest(&snap(99, T0 + 5_000, 90.0, 0), false, T0 + 2 * HOUR_MS)
        .unwrap();
    db.commit().unwrap();
    let (_, s) = db
        .query(
            &q("cpu_usage_percent", None, T0, T0 + 59_999, None, Agg::Max),
            T0 + 3 * DAY_MS,
        )
        .unwrap();
    assert_eq!(s[0].points, [(T0, Some(90.0))]);
    // Three days later a backfill from the first day (older than raw) still counts.
    let now = T0 + 3 * DAY_MS;
    db.ingest(&snap(50, T0 + 20 * MINUTE_MS, 33.0, 0), false, now)
        .unwrap();
    db.maintain(now).unwrap();
    let (tier, s) = db
        .query(
            &q(
                "cpu_usage_percent",
                None,
                T0 + 20 * MINUTE_MS,
                T0 + 20 * MINUTE_MS,
                None,
                Agg::Avg,
            ),
            now,
        )
        .unwrap();
    assert_eq!(tier, Tier::Minute);
    assert_eq!(s[0].points, [(T0 + 20 * MINUTE_MS, Some(33.0))]);
}

#[test]
fn series_per_host_are_bounded() {
    let dir = tempfile::tempdir().unwrap();
    let mut db = Tsdb::open(&dir.path().join("h.sqlite"), retention(), 3, T0).unwrap();
    let report = db.ingest(&snap(1, T0, 5.0, 1), true, T0).unwrap();
    // cpu_usage_percent, disk_read total, disk_read sda: 3; the write series are dropped.
    assert_eq!(report.series_dropped, 2);
    assert_eq!(db.stats.series_total, 3);
}

#[test]
fn forty_days_answer_at_one_hour_and_one_minute() {
    let dir = tempfile::tempdir().unwrap();
    let start = T0;
    let mut db = open(dir.path(), start);
    // One sample every 5 minutes for 40 days; cpu = the hour of day.
    let step = 5 * MINUTE_MS;
    let n = 40 * DAY_MS / step;
    for i in 0..n {
        let ts = start + i * step;
        let hour = ((ts / HOUR_MS) % 24) as f64;
        db.ingest(&snap(1 + i as u64, ts, hour, i as u64 * 300), true, ts)
            .unwrap();
        if i % 288 == 0 {
            db.maintain(ts).unwrap();
        }
    }
    let now = start + n * step;
    db.maintain(now).unwrap();
    // A year-long range comes from the hour tier: 40 days of one bucket an hour.
    let (tier, s) = db
        .query(
            &q(
                "cpu_usage_percent",
                None,
                now - 39 * DAY_MS,
                now,
                None,
                Agg::Avg,
            ),
            now,
        )
        .unwrap();
    assert_eq!(tier, Tier::Hour);
    let values: Vec<f64> = s[0].points.iter().filter_map(|p| p.1).collect();
    assert_eq!(values.len(), 39 * 24);
    assert!(s[0]
        .points
        .iter()
        .filter_map(|(t, v)| Some(((t / HOUR_MS) % 24) as f64 - (*v)?))
        .all(|d| d == 0.0));
    // The last 13 days at one minute: a bucket every 5 minutes, nulls between.
    let (tier, s) = db
        .query(
            &q(
                "disk_read_bytes_rate",
                Some(""),
                now - 13 * DAY_MS,
                now,
                None,
                Agg::Avg,
            ),
            now,
        )
        .unwrap();
    assert_eq!(tier, Tier::Minute);
    let filled: Vec<f64> = s[0].points.iter().filter_map(|p| p.1).collect();
    assert_eq!(filled.len() as i64, 13 * DAY_MS / step);
    assert!(filled.iter().all(|r| *r == 512.0), "300 sectors per 300 s");
}

#[test]
fn a_disk_that_appears_changes_no_total_rate() {
    let dir = tempfile::tempdir().unwrap();
    let mut db = open(dir.path(), T0);
    let mut a = snap(1, T0, 1.0, 1000);
    let mut b = snap(2, T0 + 15_000, 1.0, 1015);
    let c = |s: &mut Snapshot, sdb: u64| {
        let d = s.disk.as_mut().unwrap();
        d.devices.insert(
            "sdb".into(),
            DiskDevice {
                read_sectors: sdb,
                write_sectors: 0,
                ..Default::default()
            },
        );
        d.read_sectors += sdb;
    };
    c(&mut b, 9_000_000);
    let mut later = snap(3, T0 + 30_000, 1.0, 1030);
    c(&mut later, 9_000_015);
    a.boot_id = Some("boot-a".into());
    for s in [&a, &b, &later] {
        db.ingest(s, true, s.ts_ms).unwrap();
    }
    let (_, s) = db
        .query(
            &q(
                "disk_read_bytes_rate",
                Some(""),
                T0,
                T0 + 30_000,
                None,
                Agg::Avg,
            ),
            T0 + 30_000,
        )
        .unwrap();
    assert_eq!(
        s[0].points,
        [
            (T0, None),
            (T0 + 15_000, Some(512.0)),
            (T0 + 30_000, Some(1024.0))
        ]
    );
}

#[test]
fn the_series_budget_bounds_every_host_together() {
    let dir = tempfile::tempdir().unwrap();
    let mut db = open(dir.path(), T0);
    db.set_series_budget(4);
    // tower: cpu, disk read (total, sda), disk write (total, sda) = 5 series; 4 fit.
    db.ingest(&snap(1, T0, 10.0, 0), true, T0).unwrap();
    assert_eq!(
        (db.stats.series_total, db.stats.series_dropped_total),
        (4, 1)
    );
    let mut other = snap(1, T0, 10.0, 0);
    other.host = "ghost".into();
    db.ingest(&other, true, T0).unwrap();
    assert_eq!(
        (db.stats.series_total, db.stats.series_dropped_total),
        (4, 6)
    );
    // Forgetting a host frees its share.
    db.forget("tower").unwrap();
    db.ingest(&other, true, T0 + 15_000).unwrap();
    assert_eq!(db.stats.series_total, 4);
    assert!(db.stats.series_dropped_total >= 7);
}

/// Issue 18 A6: when the series budget drops a device, the host-wide rate comes from the total
/// counter, never from the partial sum of the devices that got a series; across a restart too.
#[test]
fn a_device_dropped_by_the_series_budget_leaves_the_total_true() {
    let dir = tempfile::tempdir().unwrap();
    let two_disks = |seq: u64, ts: i64, sda: u64, sdb: u64| {
        let mut s = snap(seq, ts, 5.0, sda);
        let disk = s.disk.as_mut().unwrap();
        disk.devices.insert(
            "sdb".into(),
            DiskDevice {
                read_sectors: sdb,
                write_sectors: 0,
                ..Default::default()
            },
        );
        disk.read_sectors = sda + sdb;
        s
    };
    let path = dir.path().join("h.sqlite");
    // cpu, the disk_read total and sda get a series; sdb (and the rest) are over the budget.
    let mut db = Tsdb::open(&path, retention(), 3, T0).unwrap();
    db.ingest(&two_disks(1, T0, 0, 0), true, T0).unwrap();
    db.ingest(&two_disks(2, T0 + 15_000, 15, 30), true, T0 + 15_000)
        .unwrap();
    db.commit().unwrap();
    let rows = db.flat_rows("tower", T0, T0 + 15_000).unwrap();
    // sda 15 sectors + sdb 30 sectors in 15 s: 45 × 512 / 15 = 1536 B/s, not sda's 512.
    assert_eq!(rows[1].values["disk_read_bytes_rate"], 1536.0);
    drop(db);
    let mut db = Tsdb::open(&path, retention(), 3, T0 + 15_000).unwrap();
    db.ingest(&two_disks(3, T0 + 30_000, 30, 60), true, T0 + 30_000)
        .unwrap();
    let rows = db.flat_rows("tower", T0 + 30_000, T0 + 30_000).unwrap();
    assert_eq!(
        rows[0].values["disk_read_bytes_rate"], 1536.0,
        "after a restart"
    );
}
