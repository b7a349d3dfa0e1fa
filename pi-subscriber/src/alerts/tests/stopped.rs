//! Alerts on series that stop (an unmounted filesystem, a removed disk): a pending one never
//! fires, a firing one expires once, said in its notice, instead of reminding forever.

use std::collections::BTreeMap;

use broker::{Disk, DiskDevice, Filesystem, Snapshot};

use super::*;

/// A sample of `tower` at `t` s with these mounts (used %) and disks (sectors read so far).
fn at(t: i64, mounts: &[(&str, u64)], disks: &[(&str, u64)]) -> Snapshot {
    let filesystems = mounts
        .iter()
        .map(|(m, used)| {
            let fs = Filesystem {
                device: "sdb1".into(),
                fstype: "ext4".into(),
                size_bytes: 100,
                used_bytes: *used,
                avail_bytes: 100 - used,
                files: 10,
                files_free: 5,
            };
            ((*m).to_owned(), Some(fs))
        })
        .collect();
    let devices: BTreeMap<String, DiskDevice> = disks
        .iter()
        .map(|(d, read)| {
            let dev = DiskDevice {
                read_sectors: *read,
                write_sectors: 0,
                ..Default::default()
            };
            ((*d).to_owned(), dev)
        })
        .collect();
    Snapshot {
        host: "tower".into(),
        boot_id: Some("b1".into()),
        seq: t as u64,
        ts_ms: t * 1000,
        filesystems: Some(filesystems),
        disk: Some(Disk {
            read_sectors: devices.values().map(|d| d.read_sectors).sum(),
            write_sectors: 0,
            devices,
        }),
        ..Snapshot::default()
    }
}

/// One sample a second (each after the one before it) and a tick half a second later, from
/// `from` to `to` s; every notice on the way.
fn run(e: &mut Engine, from: i64, to: i64, make: &dyn Fn(i64) -> Snapshot) -> Vec<Notice> {
    let mut out = Vec::new();
    let mut prev = make(from - 1);
    for t in from..=to {
        let cur = make(t);
        out.extend(e.sample(&cur, crate::rates::between(&prev, &cur).as_ref(), t * 1000));
        out.extend(e.tick(&hosts(t * 1000), t * 1000 + 500));
        prev = cur;
    }
    out
}

fn messages(ns: &[Notice]) -> Vec<(String, i64, String)> {
    ns.iter()
        .map(|n| (n.status.clone(), n.ts_ms, n.message.clone()))
        .collect()
}

#[test]
fn a_pending_alert_whose_filesystem_was_unmounted_never_fires() {
    let mut e = engine_with(&AlertSettings::default(), 0);
    // 90 % used: pending, `for` is 5 min.
    assert!(run(&mut e, 0, 10, &|t| at(
        t,
        &[("/", 10), ("/mnt/usb", 90)],
        &[]
    ))
    .is_empty());
    assert_eq!(e.alerts().count(), 1);
    // Unmounted at 11 s; the host goes on reporting `/`.
    let after = run(&mut e, 11, 400, &|t| at(t, &[("/", 10)], &[]));
    assert_eq!(messages(&after), [], "never fires");
    assert_eq!(e.alerts().count(), 0, "and is gone");
    assert!(e.recent().is_empty());
}

#[test]
fn a_series_missing_from_one_sample_keeps_its_timer() {
    // Guard: a hung mount's null or a lost sample is not a stop.
    let mut e = engine_with(&AlertSettings::default(), 0);
    let usb = |t: i64| {
        let missing = t == 100 || (200..230).contains(&t);
        let mounts: &[(&str, u64)] = if missing {
            &[("/", 10)]
        } else {
            &[("/", 10), ("/mnt/usb", 90)]
        };
        at(t, mounts, &[])
    };
    let fired = run(&mut e, 0, 310, &usb);
    assert_eq!(
        messages(&fired),
        [(
            "firing".into(),
            300_000,
            "tower: filesystem_used /mnt/usb is 90.0 (threshold 85.0)".into()
        )]
    );
}

#[test]
fn a_firing_alert_on_an_unmounted_filesystem_expires_once_and_never_reminds() {
    let mut s = AlertSettings::default();
    s.builtin.filesystem_used.for_ = std::time::Duration::ZERO;
    let mut e = engine_with(&s, 0);
    let fired = run(&mut e, 0, 5, &|t| {
        at(t, &[("/", 10), ("/mnt/usb", 96)], &[])
    });
    assert_eq!(
        brief(&fired),
        [t("filesystem_used", "firing", Severity::Critical)]
    );
    // Unmounted at 6 s: missing from the samples of 6..=51 s (45 s, `max_age`), expired at 52.
    let gone = run(&mut e, 6, 60, &|t| at(t, &[("/", 10)], &[]));
    assert_eq!(
        messages(&gone),
        [(
            "resolved".into(),
            52_000,
            "tower: filesystem_used /mnt/usb no longer reported: expired (last 96.0)".into()
        )]
    );
    assert_eq!(e.alerts().count(), 0);
    // Hours later: no reminder, nothing.
    let mut later = Vec::new();
    for t in (61..=3 * REPEAT / 1000).step_by(600) {
        later.extend(e.sample(&at(t, &[("/", 10)], &[]), None, t * 1000));
        later.extend(e.tick(&hosts(t * 1000), t * 1000 + 500));
    }
    assert_eq!(messages(&later), []);
}

#[test]
fn a_firing_alert_on_a_removed_disk_expires() {
    let mut s = AlertSettings::default();
    s.rule.push(UserRule {
        name: "reads".into(),
        metric: "disk_read_bytes_rate".into(),
        above: Some(1000.0),
        below: None,
        clear: None,
        for_: std::time::Duration::ZERO,
        severity: Severity::Warning,
        hosts: vec![],
        label: Some("sdb".into()),
    });
    let mut e = engine_with(&s, 0);
    // 8 sectors (4 KiB) a second.
    let fired = run(&mut e, 1, 5, &|t| {
        at(t, &[], &[("sda", 0), ("sdb", 8 * t as u64)])
    });
    assert_eq!(brief(&fired), [t("reads", "firing", Severity::Warning)]);
    let gone = run(&mut e, 6, 120, &|t| at(t, &[], &[("sda", 0)]));
    assert_eq!(
        messages(&gone),
        [(
            "resolved".into(),
            52_000,
            "tower: reads sdb no longer reported: expired (last 4096.0)".into()
        )]
    );
}

#[test]
fn a_stale_host_does_not_expire_its_series_and_a_return_restarts_the_clock() {
    let mut s = AlertSettings::default();
    s.builtin.filesystem_used.for_ = std::time::Duration::ZERO;
    let mut e = engine_with(&s, 0);
    let usb = |t| at(t, &[("/", 10), ("/mnt/usb", 96)], &[]);
    assert_eq!(run(&mut e, 0, 5, &usb).len(), 1);
    // Missing from one sample, then the host is silent for an hour.
    assert!(run(&mut e, 6, 6, &|t| at(t, &[("/", 10)], &[])).is_empty());
    let mut silent = Vec::new();
    for t in 7..3_600 {
        silent.extend(e.tick(&hosts(6_000), t * 1000));
    }
    assert_eq!(
        brief(&silent),
        [t("host_down", "firing", Severity::Critical)]
    );
    // Back with the mount: still firing, told nothing but `host_down` resolved.
    let back = run(&mut e, 3_600, 3_700, &usb);
    assert_eq!(
        brief(&back),
        [t("host_down", "resolved", Severity::Critical)]
    );
    assert_eq!(e.alerts().count(), 1);
    // Silent again, back without it: the host's 45 s without the mount count from its return.
    for t in 3_701..7_200 {
        e.tick(&hosts(3_700_000), t * 1000);
    }
    let gone = run(&mut e, 7_200, 7_300, &|t| at(t, &[("/", 10)], &[]));
    assert_eq!(
        messages(&gone),
        [
            ("resolved".into(), 7_200_000, "tower: back up".into()),
            (
                "resolved".into(),
                7_246_000,
                "tower: filesystem_used /mnt/usb no longer reported: expired (last 96.0)".into()
            )
        ]
    );
}
