//! A full disk under the history (issue 18 A5): a real filesystem that fills (a small tmpfs,
//! root only) and later frees. A failed commit blocks nothing after it, and loses nothing
//! that a backfill can bring back: what it rolled back becomes a hole.

use std::path::Path;
use std::process::Command;

use broker::{Cpu, Snapshot};

use crate::registry::metric;
use crate::tsdb::rollup::{DAY_MS, HOUR_MS};
use crate::tsdb::{Agg, Retention, SeriesQuery, Tsdb};

const T0: i64 = 1_700_006_400_000;

fn snap(seq: u64) -> Snapshot {
    Snapshot {
        host: "tower".into(),
        seq,
        ts_ms: T0 + 15_000 * seq as i64,
        boot_id: Some("b".into()),
        cpu: Some(Cpu {
            usage_percent: Some(seq as f64),
            ..Cpu::default()
        }),
        ..Snapshot::default()
    }
}

/// A tmpfs of `kib` KiB at a new directory; unmounted when dropped.
struct Tmpfs(tempfile::TempDir);

impl Tmpfs {
    fn mount(kib: u64) -> Option<Tmpfs> {
        let dir = tempfile::tempdir().ok()?;
        let ok = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={kib}k"), "tmpfs"])
            .arg(dir.path())
            .status()
            .is_ok_and(|s| s.success());
        ok.then_some(Tmpfs(dir))
    }

    fn path(&self) -> &Path {
        self.0.path()
    }

    /// Writes a file until the filesystem is full.
    fn fill(&self) {
        use std::io::Write;
        let mut f = std::fs::File::create(self.path().join("filler")).unwrap();
        let block = vec![0u8; 4096];
        while f.write_all(&block).is_ok() {}
        let _ = f.sync_all();
    }

    fn free(&self) {
        std::fs::remove_file(self.path().join("filler")).unwrap();
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(self.0.path()).status();
    }
}

fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
}

#[test]
fn a_failed_commit_blocks_nothing_and_loses_nothing_a_backfill_can_bring_back() {
    if !is_root() {
        eprintln!("SKIPPED: mounting a small tmpfs needs root");
        return;
    }
    let Some(fs) = Tmpfs::mount(1024) else {
        eprintln!("SKIPPED: cannot mount a tmpfs here");
        return;
    };
    let retention = Retention {
        raw_ms: 2 * DAY_MS,
        minute_ms: 14 * DAY_MS,
        hour_ms: 730 * DAY_MS,
    };
    let now = |seq: u64| T0 + 15_000 * seq as i64;
    let mut db = Tsdb::open(&fs.path().join("history.sqlite"), retention, 500, T0).unwrap();
    for seq in 1..=10 {
        db.ingest(&snap(seq), true, now(seq)).unwrap();
        db.commit().unwrap();
    }
    fs.fill();
    // Samples 11..=400 while the disk is full: whatever fails (an insert, the commit), the
    // store must not wedge. (A commit of samples alone writes the day's file only, in whole
    // pages, the first into its last page, already allocated: a few pages' worth must fail.)
    let mut failures = 0;
    for seq in 11..=400 {
        failures += usize::from(db.ingest(&snap(seq), true, now(seq)).is_err());
        failures += usize::from(db.commit().is_err());
    }
    assert!(
        failures > 0,
        "the disk was full: something must have failed"
    );
    fs.free();
    for seq in 401..=410 {
        db.ingest(&snap(seq), true, now(seq)).unwrap();
        db.commit()
            .expect("the disk is free again: commits succeed");
    }
    // What was rolled back is a hole for the backfill (the publisher's ring still has it).
    let holes = db.due_holes(now(410) + 60_000, 8).unwrap();
    assert!(!holes.is_empty(), "the lost samples are a hole");
    let covered = |seq: u64| {
        holes
            .iter()
            .any(|h| h.after_seq < seq && seq < h.before_seq)
    };
    let rows = db.flat_rows("tower", 0, i64::MAX).unwrap();
    let stored: Vec<u64> = rows.iter().map(|r| r.seq).collect();
    for seq in 11..=400 {
        assert!(
            stored.contains(&seq) || covered(seq),
            "seq {seq} is neither stored nor in a hole: {stored:?} {holes:?}"
        );
    }
    // The backfill brings them back; the minute buckets then hold every sample once.
    for seq in 11..=400 {
        db.ingest(&snap(seq), false, now(410)).unwrap();
    }
    db.commit().unwrap();
    let rows = db.flat_rows("tower", 0, i64::MAX).unwrap();
    assert_eq!(
        rows.iter().map(|r| r.seq).collect::<Vec<_>>(),
        (1..=410).collect::<Vec<_>>()
    );
    db.maintain(T0 + 2 * HOUR_MS).unwrap();
    let q = SeriesQuery {
        host: "tower",
        metric: metric("cpu_usage_percent").unwrap(),
        label: None,
        from_ms: T0,
        to_ms: T0 + 3_600_000 - 1,
        step_ms: Some(HOUR_MS),
        agg: Agg::Avg,
    };
    let (_, s) = db.query(&q, T0 + 20 * DAY_MS).unwrap();
    // cpu = seq, and the hour from T0 holds seq 1..=239: the average is 120, each sample
    // counted once.
    assert_eq!(s[0].points, [(T0, Some(120.0))]);
}
