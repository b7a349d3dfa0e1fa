//! Seals: commits that stored nothing in SQLite, what a reopen keeps of them, and what a cut
//! after them keeps.
use std::collections::BTreeMap;

use super::*;

fn rec(key: i64, seq: u64) -> RawRecord {
    RawRecord {
        key,
        host: 1,
        seq,
        boot: 7,
        data: vec![seq as u8; 90],
        top: None,
    }
}

fn append(log: &mut RawLog, seqs: std::ops::Range<u64>) {
    for s in seqs {
        assert!(log.append(5, &rec(s as i64 * 256, s)).unwrap());
    }
}

/// A sealed commit: the records end with a seal, synced; no length goes anywhere.
fn sealed_commit(log: &mut RawLog, seqs: std::ops::Range<u64>) {
    append(log, seqs);
    assert!(log.can_seal());
    log.seal();
    log.sync().unwrap();
    log.committed();
}

fn seqs(log: &RawLog) -> Vec<u64> {
    log.range(5, i64::MIN, i64::MAX, None)
        .map(|r| r.seq)
        .collect()
}

fn file_len(dir: &std::path::Path) -> u64 {
    std::fs::metadata(dir.join("5.raw")).unwrap().len()
}

#[test]
fn sealed_commits_come_back_past_the_stored_length_and_an_unsealed_tail_is_cut() {
    let dir = tempfile::tempdir().unwrap();
    let (mut log, _) = RawLog::open(dir.path(), &BTreeMap::new()).unwrap();
    // The day's first commit stores its length (a new file cannot be sealed: SQLite must
    // know the day first).
    append(&mut log, 0..3);
    assert!(!log.can_seal(), "a day SQLite holds no length for");
    let stored = log.sync().unwrap();
    log.committed();
    assert!(log.can_seal());
    // Two commits by seal, then a transaction whose records were synced but whose SQLite
    // part never committed (no seal): a cut here.
    sealed_commit(&mut log, 3..5);
    sealed_commit(&mut log, 5..8);
    let sealed_len = file_len(dir.path());
    append(&mut log, 8..10);
    log.hide(
        5,
        &Hide {
            from: 0,
            to: 256,
            host: None,
        },
    )
    .unwrap();
    log.sync().unwrap();
    assert!(file_len(dir.path()) > sealed_len);
    drop(log);
    let (log, recovery) = RawLog::open(dir.path(), &stored).unwrap();
    assert_eq!(
        seqs(&log),
        (0..8).collect::<Vec<u64>>(),
        "the uncommitted hide too is gone"
    );
    assert_eq!(file_len(dir.path()), sealed_len);
    assert_eq!(recovery.lost_bytes, 0);
    assert!(recovery.uncommitted_bytes > 0);
    assert_eq!(recovery.damaged_days, Vec::<i64>::new());
}

#[test]
fn a_day_sqlite_never_stored_is_not_kept_by_its_seals_and_a_forgetting_one_cannot_seal() {
    let dir = tempfile::tempdir().unwrap();
    let (mut log, _) = RawLog::open(dir.path(), &BTreeMap::new()).unwrap();
    append(&mut log, 0..2);
    log.sync().unwrap();
    log.committed();
    // The day's file is sealed by hand (a forgotten day's file a cut left behind looks so).
    sealed_commit(&mut log, 2..4);
    drop(log);
    let (log, recovery) = RawLog::open(dir.path(), &BTreeMap::new()).unwrap();
    assert_eq!(log.days().count(), 0);
    assert!(recovery.uncommitted_bytes > 0);
    assert!(!dir.path().join("5.raw").exists());
    // Forgetting a day needs SQLite to forget its length: no seal.
    let (mut log, _) = RawLog::open(dir.path(), &BTreeMap::new()).unwrap();
    append(&mut log, 0..2);
    log.sync().unwrap();
    log.committed();
    log.forget_day(5);
    assert!(!log.can_seal());
}

#[test]
fn a_sealed_commit_in_memory_and_its_rollback_hold_like_any_other() {
    let mut log = RawLog::in_memory();
    append(&mut log, 0..2);
    log.sync().unwrap();
    log.committed();
    sealed_commit(&mut log, 2..4);
    append(&mut log, 4..6);
    log.rollback().unwrap();
    assert_eq!(seqs(&log), vec![0, 1, 2, 3]);
    // A seal reads as nothing: no sample, no hide.
    let mut out = Vec::new();
    encode_seal(&mut out);
    assert_eq!(record::frame(&out).and_then(decode), Some(Record::Seal));
    assert_eq!(decode(&[2, 0]), None, "a seal carries nothing");
}

fn frame_len(seq: u64) -> u64 {
    let mut out = Vec::new();
    encode(&rec(seq as i64 * 256, seq), &mut out);
    out.len() as u64
}

/// A sealed commit written as [`RawLog::write_whole_pages`] does it.
fn paged_commit(log: &mut RawLog, seqs: std::ops::Range<u64>) {
    append(log, seqs);
    assert!(log.can_seal());
    log.seal();
    log.write_whole_pages().unwrap();
    log.committed();
}

/// Copies `from`'s files as they are on disk: what a power cut leaves.
fn cut(from: &std::path::Path) -> tempfile::TempDir {
    let to = tempfile::tempdir().unwrap();
    for e in std::fs::read_dir(from).unwrap() {
        let e = e.unwrap();
        std::fs::copy(e.path(), to.path().join(e.file_name())).unwrap();
    }
    to
}

#[test]
fn sealed_commits_write_whole_pages_and_a_cut_keeps_what_a_written_seal_closes() {
    let dir = tempfile::tempdir().unwrap();
    let (mut log, _) = RawLog::open(dir.path(), &BTreeMap::new()).unwrap();
    append(&mut log, 0..3);
    let stored = log.sync().unwrap();
    log.committed();
    let sum = |r: std::ops::Range<u64>| r.map(frame_len).sum::<u64>();
    let seal = {
        let mut out = Vec::new();
        encode_seal(&mut out);
        out.len() as u64
    };
    let l0 = HEADER.len() as u64 + sum(0..3);
    assert_eq!(stored[&5], l0);
    // Two sealed commits: the file holds their whole pages; the rest is buffered and read
    // from there, the record across the page's end too.
    paged_commit(&mut log, 3..60);
    paged_commit(&mut log, 60..100);
    let seal_a = l0 + sum(3..60) + seal;
    let seal_b = seal_a + sum(60..100) + seal;
    let whole = seal_b / 4096 * 4096;
    assert_eq!((seal_a, seal_b, whole), (6404, 10693, 8192));
    assert_eq!(file_len(dir.path()), whole);
    assert_eq!(log.committed_len(5), Some(seal_b));
    assert_eq!(seqs(&log), (0..100).collect::<Vec<u64>>());
    // A power cut now: the first commit's seal is on the card, the second's is not.
    let copy = cut(dir.path());
    let (cut_log, recovery) = RawLog::open(copy.path(), &stored).unwrap();
    assert_eq!(seqs(&cut_log), (0..60).collect::<Vec<u64>>());
    assert_eq!(file_len(copy.path()), seal_a);
    assert_eq!(recovery.uncommitted_bytes, whole - seal_a);
    assert_eq!(recovery.lost_bytes, 0);
    // A failed transaction after them: its records go, the buffered tail stays.
    append(&mut log, 100..105);
    log.rollback().unwrap();
    assert_eq!(seqs(&log), (0..100).collect::<Vec<u64>>());
    assert_eq!(file_len(dir.path()), whole);
    // A clean stop writes the committed tail: all of it back.
    drop(log);
    assert_eq!(file_len(dir.path()), seal_b);
    let (log, recovery) = RawLog::open(dir.path(), &stored).unwrap();
    assert_eq!(seqs(&log), (0..100).collect::<Vec<u64>>());
    assert_eq!(recovery, Recovery::default());
}
