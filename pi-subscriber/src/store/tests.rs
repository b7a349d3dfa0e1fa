//! The store through its handle, on an in-memory history and injected clocks.

use std::collections::BTreeMap;
use std::time::Duration;

use broker::{Cpu, Disk, JobEvent, Snapshot};
use tokio::time::Instant;

use super::*;
use crate::tsdb::{Retention, Tsdb};

fn retention() -> Retention {
    Retention {
        raw_ms: 48 * 3_600_000,
        minute_ms: 14 * 86_400_000,
        hour_ms: 730 * 86_400_000,
    }
}

/// A store with an in-memory history, for tests here and elsewhere in the crate.
pub(crate) fn handle(max_hosts: usize) -> SharedStore {
    let tsdb = Tsdb::open_in_memory(retention(), 500, 0).unwrap();
    SharedStore::new(Store::new(max_hosts), tsdb)
}

fn handle_at(path: &std::path::Path, max_hosts: usize, now_ms: i64) -> SharedStore {
    let tsdb = Tsdb::open(path, retention(), 500, now_ms).unwrap();
    SharedStore::new(Store::new(max_hosts), tsdb)
}

fn snap(host: &str, seq: u64, ts_s: i64, read: u64) -> Snapshot {
    Snapshot {
        v: 1,
        host: host.into(),
        seq,
        ts: ts_s,
        ts_ms: ts_s * 1000,
        boot_id: Some("b1".into()),
        cpu: Some(Cpu {
            usage_percent: Some(45.23),
            ..Cpu::default()
        }),
        disk: Some(Disk {
            read_sectors: read,
            write_sectors: read,
            ..Disk::default()
        }),
        ..Snapshot::default()
    }
}

/// `/history`'s `disk_read_sectors_rate` of a row.
fn sectors(row: &crate::tsdb::FlatRow) -> Option<f64> {
    crate::seed::history::value(row, "disk_read_sectors_rate")
}

fn ingest(store: &SharedStore, s: Snapshot, source: Source) -> Outcome {
    let now_ms = s.ts_ms;
    store.ingest(s, source, Instant::now(), now_ms)
}

#[tokio::test]
async fn dedupes_finds_gaps_and_backfills_in_order() {
    let store = handle(10);
    assert!(matches!(
        ingest(&store, snap("t", 1, 100, 0), Source::Mqtt),
        Outcome::Stored { gap: None, .. }
    ));
    assert_eq!(
        ingest(&store, snap("t", 1, 100, 0), Source::Http),
        Outcome::Duplicate
    );
    let Outcome::Stored { gap, .. } = ingest(&store, snap("t", 4, 145, 450), Source::Mqtt) else {
        panic!()
    };
    assert_eq!(
        gap,
        Some(Gap {
            host: "t".into(),
            after_seq: 1,
            before_seq: 4,
            after_ts_ms: 100_000,
            before_ts_ms: 145_000,
        })
    );
    for (seq, ts) in [(3, 130), (2, 115)] {
        assert!(matches!(
            ingest(
                &store,
                snap("t", seq, ts, (ts - 100) as u64 * 10),
                Source::Backfill
            ),
            Outcome::Stored { gap: None, .. }
        ));
    }
    let rows = store.history("t", 0, i64::MAX).unwrap();
    assert_eq!(rows.iter().map(|r| r.seq).collect::<Vec<_>>(), [1, 2, 3, 4]);
    assert_eq!(sectors(&rows[0]), None, "first row has no predecessor");
    assert_eq!(sectors(&rows[1]), Some(10.0));
    assert_eq!(sectors(&rows[3]), Some(10.0), "recomputed around backfill");
    assert_eq!(
        crate::seed::history::value(&rows[3], "cpu_usage_percent"),
        Some(45.23)
    );
    assert_eq!(store.lock().unwrap().stats.stored_backfill_total, 2);
    assert_eq!(store.lock().unwrap().stats.duplicates_total, 1);
    assert_eq!(
        store.lock().unwrap().hosts["t"]
            .latest
            .as_ref()
            .unwrap()
            .seq,
        4,
        "backfill never replaces latest"
    );
}

#[tokio::test]
async fn history_is_filtered_by_time() {
    let store = handle(10);
    for seq in 1..=25 {
        ingest(
            &store,
            snap("t", seq, 100 + 15 * seq as i64, 0),
            Source::Mqtt,
        );
    }
    assert_eq!(store.lock().unwrap().hosts["t"].samples, 25);
    let rows = store
        .history("t", 115_000 + 15_000 * 17, 115_000 + 15_000 * 19)
        .unwrap();
    assert_eq!(rows.iter().map(|r| r.seq).collect::<Vec<_>>(), [18, 19, 20]);
    assert!(store.history("nobody", 0, i64::MAX).unwrap().is_empty());
}

#[tokio::test]
async fn reboot_and_reset_series_are_not_gaps() {
    let store = handle(10);
    ingest(&store, snap("t", 10, 100, 5000), Source::Mqtt);
    // seq goes on across the reboot (the ring is on disk): contiguous, no gap.
    let mut rebooted = snap("t", 11, 115, 3);
    rebooted.boot_id = Some("b2".into());
    assert!(matches!(
        ingest(&store, rebooted, Source::Mqtt),
        Outcome::Stored { gap: None, .. }
    ));
    // The publisher lost its ring: seq starts again at 1, later in time.
    assert!(matches!(
        ingest(&store, snap("t", 1, 130, 9), Source::Mqtt),
        Outcome::Stored { gap: None, .. }
    ));
    let rows = store.history("t", 0, i64::MAX).unwrap();
    assert_eq!(sectors(&rows[1]), None, "no rate across a reboot");
    assert_eq!(sectors(&rows[2]), None, "no rate when seq went back");
    assert!(rows.iter().all(|r| sectors(r).is_none_or(|x| x >= 0.0)));
}

#[tokio::test]
async fn hosts_are_bounded_and_events_deduplicated() {
    let store = handle(2);
    ingest(&store, snap("a", 1, 100, 0), Source::Mqtt);
    ingest(&store, snap("b", 1, 100, 0), Source::Mqtt);
    assert_eq!(
        ingest(&store, snap("c", 1, 100, 0), Source::Mqtt),
        Outcome::TooManyHosts
    );
    let e = JobEvent::JobStart(broker::JobStart {
        run_id: "r".into(),
        ..Default::default()
    });
    assert!(store.lock().unwrap().add_event(e.clone()));
    assert!(!store.lock().unwrap().add_event(e));
    assert_eq!(store.lock().unwrap().events.len(), 1);
}

/// Issue 9 A3: job events are bounded in bytes as well as in count.
#[test]
fn job_events_are_bounded_in_bytes() {
    let mut state = Store::new(1);
    let end = |i: i64| {
        JobEvent::JobEnd(broker::JobEnd {
            run_id: format!("r{i:04}"),
            name: "backup".into(),
            host: "tower".into(),
            end_ts_ms: i,
            output_tail: "x".repeat(4096),
            ..Default::default()
        })
    };
    let each = crate::validate::names::event_bytes(&end(0));
    for i in 0..1000 {
        assert!(state.add_event(end(i)));
    }
    assert_eq!(state.events.len(), state.max_event_bytes / each);
    assert_eq!(state.events.back().map(JobEvent::run_id), Some("r0999"));
    assert_eq!(state.stats.events_total, 1000);
}

#[tokio::test]
async fn one_snapshot_from_the_future_does_not_freeze_the_host() {
    let store = handle(10);
    ingest(&store, snap("t", 1, 100, 0), Source::Mqtt);
    // A clock years ahead for one sample...
    ingest(&store, snap("t", 2, 4_000_000_000, 10), Source::Mqtt);
    // ...and the next ones are still the newest, by seq.
    let Outcome::Stored { gap, .. } = ingest(&store, snap("t", 3, 130, 20), Source::Mqtt) else {
        panic!()
    };
    assert_eq!(gap, None);
    assert_eq!(
        store.lock().unwrap().hosts["t"]
            .latest
            .as_ref()
            .unwrap()
            .seq,
        3
    );
    assert_eq!(
        ingest(&store, snap("t", 3, 130, 20), Source::Http),
        Outcome::Duplicate
    );
    let rows = store.history("t", 0, i64::MAX).unwrap();
    assert_eq!(
        rows.iter().map(|r| r.seq).collect::<Vec<_>>(),
        [1, 3, 2],
        "time order"
    );
    // Absurd seqs do not overflow.
    let big = snap("t", u64::MAX, 145, 30);
    assert!(matches!(
        ingest(&store, big, Source::Mqtt),
        Outcome::Stored { .. }
    ));
}

#[tokio::test]
async fn status_only_hosts_give_way_to_real_ones() {
    let store = handle(2);
    store
        .lock()
        .unwrap()
        .set_status("ghost", "offline", 100_000);
    ingest(&store, snap("a", 1, 100, 0), Source::Mqtt);
    assert!(matches!(
        ingest(&store, snap("b", 1, 100, 0), Source::Mqtt),
        Outcome::Stored { .. }
    ));
    assert!(!store.lock().unwrap().hosts.contains_key("ghost"));
}

#[tokio::test]
async fn a_far_off_server_clock_is_kept_but_flagged() {
    let store = handle(10);
    let s = snap("t", 1, 1_700_000_000, 0);
    // The Pi's clock says 10 minutes later than the server's.
    let outcome = store.ingest(s, Source::Mqtt, Instant::now(), 1_700_000_600_000);
    assert!(matches!(outcome, Outcome::Stored { .. }));
    assert_eq!(store.lock().unwrap().stats.clock_skewed_total, 1);
    assert_eq!(store.lock().unwrap().hosts["t"].clock_skew_s, Some(-600.0));
    store.ingest(
        snap("t", 2, 1_700_000_615, 0),
        Source::Mqtt,
        Instant::now(),
        1_700_000_615_500,
    );
    assert_eq!(
        store.lock().unwrap().hosts["t"].clock_skew_s,
        None,
        "back in step"
    );
}

fn with_devices(mut s: Snapshot, disks: &[(&str, u64)]) -> Snapshot {
    let devices: BTreeMap<String, broker::DiskDevice> = disks
        .iter()
        .map(|(n, v)| {
            let d = broker::DiskDevice {
                read_sectors: *v,
                write_sectors: *v,
                ..Default::default()
            };
            ((*n).to_owned(), d)
        })
        .collect();
    let total = disks.iter().map(|(_, v)| v).sum();
    s.disk = Some(Disk {
        read_sectors: total,
        write_sectors: total,
        devices,
    });
    s
}

/// Issue 9 A1: `mosquitto_pub … '{"host":"tower","seq":18446744073709551614,"ts":7258118399}'`.
#[tokio::test]
async fn a_spoofed_newest_gives_way_to_the_next_real_sample() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("history.sqlite");
    let now = 1_700_000_000;
    let store = handle_at(&path, 10, now * 1000);
    ingest(&store, snap("tower", 10, now, 0), Source::Mqtt);
    let mut fake = snap("tower", 18_446_744_073_709_551_614, 7_258_118_399, 0);
    fake.boot_id = None;
    store.ingest(fake, Source::Mqtt, Instant::now(), now * 1000 + 5_000);
    let real = snap("tower", 11, now + 15, 150);
    store.ingest(real, Source::Mqtt, Instant::now(), (now + 15) * 1000);
    assert_eq!(
        store.lock().unwrap().hosts["tower"]
            .latest
            .as_ref()
            .unwrap()
            .seq,
        11
    );
    store.commit().unwrap();
    drop(store);

    // The same after a restart that brought the fake back from disk.
    let restarted = handle_at(&path, 10, (now + 30) * 1000);
    assert_eq!(restarted.restore_hosts((now + 30 + 120) * 1000).unwrap(), 1);
    let Outcome::Stored { gap, .. } = restarted.ingest(
        snap("tower", 13, now + 45, 450),
        Source::Mqtt,
        Instant::now(),
        (now + 45) * 1000,
    ) else {
        panic!("not stored")
    };
    assert_eq!(
        restarted.lock().unwrap().hosts["tower"]
            .latest
            .as_ref()
            .unwrap()
            .seq,
        13
    );
    assert_eq!(
        gap.map(|g| (g.after_seq, g.before_seq)),
        Some((11, 13)),
        "the gap is measured from the last real sample, not from the fake"
    );
}

/// Issue 9 B7: seq continues across a publisher reboot; the gap before the first sample of
/// the new boot is filled.
#[tokio::test]
async fn a_gap_across_a_reboot_is_backfilled() {
    let store = handle(10);
    ingest(&store, snap("t", 10, 100, 5000), Source::Mqtt);
    let mut rebooted = snap("t", 500, 7600, 3);
    rebooted.boot_id = Some("b2".into());
    let Outcome::Stored { gap, .. } = ingest(&store, rebooted, Source::Mqtt) else {
        panic!("not stored")
    };
    assert_eq!(gap.map(|g| (g.after_seq, g.before_seq)), Some((10, 500)));
}

/// Issue 9 B9: a server clock stepped back an hour interleaves one boot's rows by time;
/// rates pair seq neighbours, never rows that are merely adjacent in time.
#[tokio::test]
async fn history_rates_pair_seq_neighbours_not_time_neighbours() {
    let store = handle(10);
    // seq 1..=4 every 15 s, reading 15 sectors/s; then the clock steps back 52 s, so seq
    // 5..=8 interleave with 1..=4 by time: 1, 5, 2, 6, 3, 7, 4, 8.
    for seq in 1..=8u64 {
        let step_back = if seq >= 5 { 52 } else { 0 };
        let ts = 1000 + 15 * seq as i64 - step_back;
        ingest(&store, snap("t", seq, ts, 225 * seq), Source::Mqtt);
    }
    let rows = store.history("t", 0, i64::MAX).unwrap();
    let by_seq = |n: u64| rows.iter().find(|r| r.seq == n).unwrap();
    for seq in [2, 3, 4, 6, 7, 8] {
        assert_eq!(sectors(by_seq(seq)), Some(15.0), "seq {seq}");
    }
    assert_eq!(
        sectors(by_seq(5)),
        None,
        "time went back between seq 4 and 5"
    );
    assert_eq!(sectors(by_seq(1)), None);
}

/// Issue 9 B10: a disk that appears between two samples adds its whole counter to the
/// total; the total rate must not spike.
#[tokio::test]
async fn a_device_that_appears_makes_no_total_spike() {
    let store = handle(10);
    let a = with_devices(snap("t", 1, 100, 0), &[("sda", 1000)]);
    let b = with_devices(snap("t", 2, 115, 0), &[("sda", 1150), ("sdb", 9_000_000)]);
    let c = with_devices(snap("t", 3, 130, 0), &[("sda", 1300), ("sdb", 9_000_150)]);
    for s in [a, b, c] {
        ingest(&store, s, Source::Mqtt);
    }
    let rows = store.history("t", 0, i64::MAX).unwrap();
    assert_eq!(
        sectors(&rows[1]),
        Some(10.0),
        "sda only: sdb is not in both samples"
    );
    assert_eq!(sectors(&rows[2]), Some(20.0));
    let hs = &store.lock().unwrap().hosts["t"];
    // /metrics reads the rates computed at ingest: the same number, by the same rule.
    let r = hs.rates.as_ref().unwrap();
    assert_eq!(r.total("disk_read_bytes_rate"), Some(20.0 * 512.0));
}

/// Issue 9 A5: silent hosts are forgotten; ghosts cannot lock out a real host.
#[tokio::test]
async fn silent_hosts_are_forgotten_and_stale_ghosts_give_way() {
    let store = handle(2);
    let t0 = 1_700_000_000;
    ingest(&store, snap("ghost1", 1, t0, 0), Source::Mqtt);
    ingest(&store, snap("ghost2", 1, t0 + 10, 0), Source::Mqtt);
    let e = JobEvent::JobStart(broker::JobStart {
        run_id: "r".into(),
        host: "ghost1".into(),
        ..Default::default()
    });
    store.lock().unwrap().add_event(e);
    // Both ghosts are fresh: the real host is refused for now...
    let real = |seq| snap("real", seq, t0 + 20, 0);
    assert_eq!(ingest(&store, real(1), Source::Mqtt), Outcome::TooManyHosts);
    // ...and once they are stale (45 s), the longest silent gives way.
    let Outcome::Stored { evicted, .. } =
        store.ingest(real(2), Source::Mqtt, Instant::now(), (t0 + 50) * 1000)
    else {
        panic!("not stored")
    };
    assert_eq!(evicted.as_deref(), Some("ghost1"));
    assert_eq!(
        store.lock().unwrap().events.len(),
        1,
        "eviction frees the live slot only: its job events stay (issue 18 A2)"
    );
    assert_eq!(store.lock().unwrap().stats.evicted_total, 1);
    let week = Duration::from_secs(7 * 86_400);
    assert!(store
        .lock()
        .unwrap()
        .silent_hosts((t0 + 60) * 1000, week)
        .is_empty());
    let later = (t0 + 10 + 7 * 86_400 + 1) * 1000;
    assert_eq!(store.lock().unwrap().silent_hosts(later, week), ["ghost2"]);
    assert!(store.forget("ghost2").unwrap());
    assert!(!store.forget("ghost2").unwrap());
    assert!(store.forget("ghost1").unwrap(), "its history was kept");
    assert!(
        store.lock().unwrap().events.is_empty(),
        "forgetting takes its events"
    );
    assert_eq!(store.lock().unwrap().stats.forgotten_total, 2);
    assert_eq!(
        store.lock().unwrap().hosts.keys().collect::<Vec<_>>(),
        ["real"]
    );
}

#[test]
fn newest_job_ends_are_one_per_host_the_latest_kept() {
    let store = SharedStore::in_memory(10).unwrap();
    let end = |host: &str, run: &str, exit: i32| {
        JobEvent::JobEnd(broker::JobEnd {
            run_id: run.into(),
            name: "backup".into(),
            host: host.into(),
            exit_code: Some(exit),
            ..broker::JobEnd::default()
        })
    };
    for e in [
        end("tower", "r1", 0),
        end("nas", "r2", 1),
        end("tower", "r3", 2),
    ] {
        assert!(store.add_event(e).unwrap());
    }
    let got: Vec<(String, String, Option<i32>)> = store
        .newest_job_ends()
        .unwrap()
        .into_iter()
        .map(|(h, e)| (h, e.run_id, e.exit_code))
        .collect();
    assert_eq!(
        got,
        [
            ("nas".to_string(), "r2".to_string(), Some(1)),
            ("tower".to_string(), "r3".to_string(), Some(2))
        ]
    );
}

/// Issue 18 A2: a stale host that gives way to new names at `max_hosts` keeps its history
/// (eviction frees the live slot only), and gets it back when it returns.
#[tokio::test]
async fn evicting_a_host_never_deletes_its_history() {
    let store = handle(2);
    let t0 = 1_700_000_000;
    for seq in 1..=5 {
        ingest(
            &store,
            snap("nas", seq, t0 + 15 * seq as i64, 0),
            Source::Mqtt,
        );
    }
    let heard = (t0 + 75) * 1000;
    // The NAS sleeps; two spoofed names arrive once it is stale.
    let at = |s: i64| Instant::now() + Duration::from_secs(s as u64);
    let spoof = |name: &str, s: i64| {
        store.ingest(
            snap(name, 1, t0 + s, 0),
            Source::Mqtt,
            at(s),
            (t0 + s) * 1000,
        )
    };
    assert!(matches!(
        spoof("ghost1", 200),
        Outcome::Stored { evicted: None, .. }
    ));
    let Outcome::Stored { evicted, .. } = spoof("ghost2", 300) else {
        panic!("not stored")
    };
    assert_eq!(evicted.as_deref(), Some("nas"), "the live slot is freed");
    assert_eq!(store.lock().unwrap().stats.evicted_total, 1);
    assert_eq!(store.lock().unwrap().stats.forgotten_total, 0);
    // Its history is still there, all five samples.
    let seqs = |store: &SharedStore| {
        store
            .history("nas", 0, i64::MAX)
            .unwrap()
            .iter()
            .map(|r| r.seq)
            .collect::<Vec<_>>()
    };
    assert_eq!(seqs(&store), [1, 2, 3, 4, 5]);
    // It comes back (a ghost gives way in turn) and carries on where it was.
    let back = store.ingest(
        snap("nas", 6, t0 + 400, 0),
        Source::Mqtt,
        at(400),
        (t0 + 400) * 1000,
    );
    assert!(
        matches!(
            back,
            Outcome::Stored {
                evicted: Some(_),
                ..
            }
        ),
        "{back:?}"
    );
    assert_eq!(seqs(&store), [1, 2, 3, 4, 5, 6]);
    // forget_after still forgets the history of a host evicted and never back.
    let week = Duration::from_secs(7 * 86_400);
    let silent = store
        .silent_hosts(heard + week.as_millis() as i64 + 400_000, week)
        .unwrap();
    assert!(silent.contains(&"ghost1".to_string()), "{silent:?}");
    assert!(store.forget("ghost1").unwrap());
    assert!(store.history("ghost1", 0, i64::MAX).unwrap().is_empty());
}

fn job_end(host: &str, run: &str, end_ts_ms: i64) -> JobEvent {
    JobEvent::JobEnd(broker::JobEnd {
        run_id: run.into(),
        name: "backup".into(),
        host: host.into(),
        end_ts_ms,
        ..Default::default()
    })
}

/// Issue 18 A11: job events are evicted by arrival and per host (a flooding host pushes out
/// its own events first, whatever their dates), and the dedupe key includes the host.
#[test]
fn job_events_are_evicted_by_arrival_and_per_host() {
    let mut state = Store::new(4);
    state.max_events = 10;
    let day = 86_400_000;
    let now = 1_700_000_000_000;
    // A real event from yesterday, then a flood dated later than it.
    assert!(state.add_event(job_end("nas", "real", now - day)));
    for i in 0..50 {
        assert!(state.add_event(job_end("flood", &format!("f{i}"), now + i)));
    }
    assert_eq!(state.events.len(), 10);
    let kept: Vec<&str> = state.events.iter().map(JobEvent::run_id).collect();
    assert!(kept.contains(&"real"), "{kept:?}");
    // The flood kept its newest arrivals.
    assert!(kept.contains(&"f49") && !kept.contains(&"f0"), "{kept:?}");
    // The same run id on another host is another event.
    assert!(state.add_event(job_end("tower", "real", now)));
    assert!(!state.add_event(job_end("tower", "real", now)));
    assert!(state.events.iter().any(|e| e.host() == "nas"));
    // Shown oldest first by time.
    let times: Vec<i64> = state.events.iter().map(JobEvent::ts_ms).collect();
    assert!(times.windows(2).all(|w| w[0] <= w[1]), "{times:?}");
}

/// Issue 19 item 4: one staleness judgment per host, on the Pi's monotonic clock, bounded by
/// `health.max_age` when set, else by 3 × the interval the host's snapshots declare.
#[tokio::test]
async fn each_host_is_judged_stale_by_its_own_interval_unless_max_age_is_set() {
    let base = Instant::now();
    let at = |s: u64| base + Duration::from_secs(s);
    let sampled = |host: &str, interval_s: f64| Snapshot {
        interval_s,
        ..snap(host, 1, 100, 0)
    };
    let store = handle(10);
    for (host, interval) in [("fast", 5.0), ("slow", 60.0), ("seed", 0.0)] {
        store.ingest(sampled(host, interval), Source::Mqtt, at(0), 100_000);
    }
    let stale = |host: &str, s: u64| store.host(host).unwrap().unwrap().is_stale(at(s));
    assert!(!stale("fast", 15) && stale("fast", 16), "3 × 5 s");
    assert!(!stale("slow", 180) && stale("slow", 181), "3 × 60 s");
    assert!(!stale("seed", 45) && stale("seed", 46), "no interval: 45 s");
    assert_eq!(
        store.host("slow").unwrap().unwrap().interval,
        Duration::from_secs(60)
    );

    let tsdb = crate::tsdb::Tsdb::open_in_memory(retention(), 500, 0).unwrap();
    let store = SharedStore::new(
        Store::new(10).with_health(Some(Duration::from_secs(90)), Duration::from_secs(120)),
        tsdb,
    );
    store.ingest(sampled("fast", 5.0), Source::Mqtt, at(0), 100_000);
    let stale = |s: u64| store.host("fast").unwrap().unwrap().is_stale(at(s));
    assert!(!stale(90) && stale(91), "health.max_age overrides");
}
