//! The raw tier's day files: what comes back, what a crash at each step of a commit leaves,
//! and what a damaged file costs.
use std::collections::BTreeMap;
use std::path::Path;

use super::*;

fn rec(key: i64, host: i64, seq: u64) -> RawRecord {
    RawRecord {
        key,
        host,
        seq,
        boot: 7,
        data: vec![seq as u8; 100 + (seq % 7) as usize],
        top: seq.is_multiple_of(2).then(|| vec![0xab; 40]),
    }
}

fn frame_len(r: &RawRecord) -> u64 {
    let mut out = Vec::new();
    encode(r, &mut out);
    out.len() as u64
}

fn all(log: &RawLog, day: i64) -> Vec<RawRecord> {
    log.range(day, i64::MIN, i64::MAX, None).collect()
}

/// One committed transaction: records `seqs` of host 1 on day 5 (key = seq * 256).
fn commit(log: &mut RawLog, seqs: std::ops::Range<u64>) -> BTreeMap<i64, u64> {
    for s in seqs {
        assert!(log.append(5, &rec(s as i64 * 256, 1, s)).unwrap());
    }
    let lens = log.sync().unwrap();
    log.committed();
    lens
}

fn file_len(dir: &Path, day: i64) -> u64 {
    std::fs::metadata(dir.join(format!("{day}.raw")))
        .unwrap()
        .len()
}

#[test]
fn records_come_back_exactly_by_key_range_and_host_and_after_a_reopen() {
    let dir = tempfile::tempdir().unwrap();
    let (mut log, rec0) = RawLog::open(dir.path(), &BTreeMap::new()).unwrap();
    assert_eq!(rec0, Recovery::default());
    // Appended out of key order (a backfill behind live samples), two hosts, two days.
    let recs = [
        rec(300, 1, 3),
        rec(100, 1, 1),
        rec(200, 2, 9),
        rec(400, 2, 10),
    ];
    for r in &recs {
        assert!(log.append(5, r).unwrap());
    }
    assert!(log.append(6, &rec(900, 1, 4)).unwrap());
    assert!(
        !log.append(5, &rec(100, 3, 1)).unwrap(),
        "a key held already"
    );
    // Read before any write (from the buffer), then after the sync (from the file).
    let want = vec![
        recs[1].clone(),
        recs[2].clone(),
        recs[0].clone(),
        recs[3].clone(),
    ];
    assert_eq!(all(&log, 5), want);
    let lens = log.sync().unwrap();
    log.committed();
    let five: u64 = 8 + recs.iter().map(frame_len).sum::<u64>();
    assert_eq!(
        lens,
        BTreeMap::from([(5, five), (6, 8 + frame_len(&rec(900, 1, 4)))])
    );
    assert_eq!(log.bytes_written, five + lens[&6], "each byte written once");
    assert_eq!(all(&log, 5), want);
    let host2: Vec<u64> = log.range(5, 150, 400, Some(2)).map(|r| r.seq).collect();
    assert_eq!(host2, vec![9, 10]);
    let keys: Vec<_> = log.keys(5, 100, 300).collect();
    assert_eq!(keys, vec![(100, 1), (200, 2), (300, 1)]);
    drop(log);
    let (log, rec1) = RawLog::open(dir.path(), &lens).unwrap();
    assert_eq!(rec1, Recovery::default());
    assert_eq!(all(&log, 5), want);
    assert_eq!(log.days().collect::<Vec<_>>(), vec![5, 6]);
}

#[test]
fn a_crash_after_the_sync_and_before_the_commit_cuts_the_uncommitted_records() {
    let dir = tempfile::tempdir().unwrap();
    let (mut log, _) = RawLog::open(dir.path(), &BTreeMap::new()).unwrap();
    let lens = commit(&mut log, 1..21);
    // The next transaction's records are synced, a new day too; its commit never happens.
    for s in 21..41 {
        log.append(5, &rec(s as i64 * 256, 1, s)).unwrap();
    }
    log.append(6, &rec(1, 1, 99)).unwrap();
    log.sync().unwrap();
    let extra = file_len(dir.path(), 5) - lens[&5] + file_len(dir.path(), 6);
    drop(log);
    let (log, rec) = RawLog::open(dir.path(), &lens).unwrap();
    assert_eq!(
        rec,
        Recovery {
            uncommitted_bytes: extra,
            ..Recovery::default()
        }
    );
    assert_eq!(file_len(dir.path(), 5), lens[&5]);
    assert!(
        !dir.path().join("6.raw").exists(),
        "a day never committed is gone"
    );
    let seqs: Vec<u64> = all(&log, 5).iter().map(|r| r.seq).collect();
    assert_eq!(seqs, (1..21).collect::<Vec<_>>());
}

#[test]
fn a_rollback_forgets_the_transactions_records_and_the_next_one_carries_on() {
    let dir = tempfile::tempdir().unwrap();
    let (mut log, _) = RawLog::open(dir.path(), &BTreeMap::new()).unwrap();
    let lens = commit(&mut log, 1..4);
    for s in 4..8 {
        log.append(5, &rec(s as i64 * 256, 1, s)).unwrap();
    }
    log.append(6, &rec(1, 1, 99)).unwrap();
    log.sync().unwrap();
    log.rollback().unwrap();
    assert_eq!(file_len(dir.path(), 5), lens[&5]);
    assert!(!dir.path().join("6.raw").exists());
    assert_eq!(log.days().collect::<Vec<_>>(), vec![5]);
    // A sample of the rolled-back transaction comes again (a backfill) and is stored.
    let lens = commit(&mut log, 4..6);
    drop(log);
    let (log, rec) = RawLog::open(dir.path(), &lens).unwrap();
    assert_eq!(rec, Recovery::default());
    let seqs: Vec<u64> = all(&log, 5).iter().map(|r| r.seq).collect();
    assert_eq!(seqs, vec![1, 2, 3, 4, 5]);
}

#[test]
fn a_committed_record_the_disk_lost_or_damaged_ends_its_day_there_and_is_reported() {
    let dir = tempfile::tempdir().unwrap();
    let (mut log, _) = RawLog::open(dir.path(), &BTreeMap::new()).unwrap();
    let lens = commit(&mut log, 1..11);
    drop(log);
    let path = dir.path().join("5.raw");
    let third = 8
        + (1..3)
            .map(|s| frame_len(&rec(s * 256, 1, s as u64)))
            .sum::<u64>();
    // A byte flipped in the third record's body.
    let mut bytes = std::fs::read(&path).unwrap();
    bytes[third as usize + 12] ^= 0x40;
    std::fs::write(&path, &bytes).unwrap();
    let (mut log, rec) = RawLog::open(dir.path(), &lens).unwrap();
    assert_eq!(
        rec,
        Recovery {
            lost_bytes: lens[&5] - third,
            damaged_days: vec![5],
            ..Recovery::default()
        }
    );
    assert_eq!(file_len(dir.path(), 5), third);
    let seqs: Vec<u64> = all(&log, 5).iter().map(|r| r.seq).collect();
    assert_eq!(seqs, vec![1, 2]);
    // The day goes on from its last good record.
    let lens = commit(&mut log, 3..5);
    drop(log);
    let (log, rec) = RawLog::open(dir.path(), &lens).unwrap();
    assert_eq!(rec, Recovery::default());
    assert_eq!(all(&log, 5).len(), 4);
}

#[test]
fn a_short_or_missing_file_and_hostile_lengths_are_losses_not_panics() {
    let dir = tempfile::tempdir().unwrap();
    let (mut log, _) = RawLog::open(dir.path(), &BTreeMap::new()).unwrap();
    let mut lens = commit(&mut log, 1..6);
    drop(log);
    let path = dir.path().join("5.raw");
    // The file cut in the middle of its last record (a write the device lost).
    let cut = lens[&5] - 5;
    std::fs::File::options()
        .write(true)
        .open(&path)
        .unwrap()
        .set_len(cut)
        .unwrap();
    let last = frame_len(&rec(5 * 256, 1, 5));
    let (log, rec4) = RawLog::open(dir.path(), &lens).unwrap();
    assert_eq!((rec4.lost_bytes, rec4.damaged_days), (last, vec![5]));
    assert_eq!(all(&log, 5).len(), 4);
    drop(log);
    // A length field of 4 GiB, then a file of garbage without a header.
    let good = lens[&5] - last;
    let mut bytes = std::fs::read(&path).unwrap();
    bytes.extend_from_slice(&[0xff; 64]);
    std::fs::write(&path, &bytes).unwrap();
    lens.insert(5, good + 64);
    let (log, rec) = RawLog::open(dir.path(), &lens).unwrap();
    assert_eq!(rec.lost_bytes, 64);
    assert_eq!(all(&log, 5).len(), 4);
    drop(log);
    std::fs::write(&path, [0x5a; 300]).unwrap();
    lens.insert(5, 300);
    lens.insert(9, 1000);
    let (mut log, rec) = RawLog::open(dir.path(), &lens).unwrap();
    assert_eq!(
        rec,
        Recovery {
            lost_bytes: 1300,
            damaged_days: vec![5, 9],
            ..Recovery::default()
        }
    );
    assert!(all(&log, 5).is_empty());
    // A day cut to nothing takes records again, behind a header.
    let lens = commit(&mut log, 7..8);
    drop(log);
    let (log, rec) = RawLog::open(dir.path(), &lens).unwrap();
    assert_eq!(rec, Recovery::default());
    assert_eq!(all(&log, 5), vec![self::rec(7 * 256, 1, 7)]);
}

#[test]
fn decoding_is_total_and_a_dropped_day_is_unlinked() {
    for n in 0..40 {
        let mut out = Vec::new();
        encode(&rec(12_345, 3, 77), &mut out);
        assert!(decode(&out[8..8 + n.min(out.len() - 8)]).is_none() || n >= out.len() - 8);
        assert!(frame(&out[..n.min(out.len())]).is_none() || n >= out.len());
    }
    assert_eq!(decode(&[0x80; 20]), None);
    let dir = tempfile::tempdir().unwrap();
    let (mut log, _) = RawLog::open(dir.path(), &BTreeMap::new()).unwrap();
    commit(&mut log, 1..3);
    log.drop_day(5).unwrap();
    log.drop_day(5).unwrap();
    assert!(!dir.path().join("5.raw").exists());
    assert_eq!(log.days().count(), 0);
}

#[test]
fn a_large_transaction_spills_early_and_reads_back_across_the_chunk_boundary() {
    let dir = tempfile::tempdir().unwrap();
    let (mut log, _) = RawLog::open(dir.path(), &BTreeMap::new()).unwrap();
    // ~1.4 MB: past the spill threshold and many scan chunks.
    let big = |s: u64| RawRecord {
        data: vec![(s % 251) as u8; 1000 + (s % 13) as usize],
        ..rec(s as i64, 2, s)
    };
    for s in 0..1400 {
        log.append(5, &big(s)).unwrap();
    }
    assert!(
        file_len(dir.path(), 5) > 1024 * 1024,
        "spilled before the sync"
    );
    let lens = log.sync().unwrap();
    log.committed();
    drop(log);
    let (log, rec) = RawLog::open(dir.path(), &lens).unwrap();
    assert_eq!(rec, Recovery::default());
    let back = all(&log, 5);
    assert_eq!(back.len(), 1400);
    assert!(back.iter().zip(0..).all(|(r, s)| *r == big(s)));
}

#[test]
fn a_record_beyond_the_formats_bounds_is_refused_naming_the_file_and_nothing_is_written() {
    let dir = tempfile::tempdir().unwrap();
    let (mut log, _) = RawLog::open(dir.path(), &BTreeMap::new()).unwrap();
    let lens = commit(&mut log, 1..3);
    let wide_host = RawRecord {
        host: 70_000,
        ..rec(9 * 256, 1, 9)
    };
    let huge = RawRecord {
        data: vec![1; MAX_BODY],
        ..rec(10 * 256, 1, 10)
    };
    for bad in [wide_host, huge] {
        let e = log.append(5, &bad).unwrap_err();
        assert!(e.to_string().contains("5.raw"), "{e}");
        assert!(e.to_string().contains(&format!("key {}", bad.key)), "{e}");
    }
    assert_eq!(log.sync().unwrap(), lens, "nothing buffered");
    assert_eq!(all(&log, 5).len(), 2);
}

#[test]
fn replacements_and_hides_are_appends_that_hold_after_a_reopen_and_undo_with_a_rollback() {
    let dir = tempfile::tempdir().unwrap();
    let (mut log, _) = RawLog::open(dir.path(), &BTreeMap::new()).unwrap();
    // Host 1's seqs 1..=6 and host 2's 7 on day 5.
    commit(&mut log, 1..7);
    log.append(5, &rec(7 * 256 + 1, 2, 7)).unwrap();
    // Seq 2 stored again whole (a chain's base went), seqs up to 3 of host 1 deleted (the
    // disk bound), every row of host 2 forgotten.
    let whole = RawRecord {
        data: vec![0xee; 9],
        ..rec(2 * 256, 1, 2)
    };
    log.replace(5, &whole).unwrap();
    let first = Hide {
        from: i64::MIN,
        to: 256,
        host: Some(1),
    };
    log.hide(5, &first).unwrap();
    log.hide(
        5,
        &Hide {
            from: i64::MIN,
            to: i64::MAX,
            host: Some(2),
        },
    )
    .unwrap();
    log.hide(9, &first).unwrap();
    let seqs = |log: &RawLog| all(log, 5).iter().map(|r| r.seq).collect::<Vec<_>>();
    assert_eq!(seqs(&log), vec![2, 3, 4, 5, 6]);
    assert_eq!(all(&log, 5)[0], whole);
    // Not committed: a rollback brings back what the transaction hid and replaced.
    log.sync().unwrap();
    log.rollback().unwrap();
    assert_eq!(seqs(&log), vec![1, 2, 3, 4, 5, 6]);
    assert_eq!(all(&log, 5)[1], rec(2 * 256, 1, 2));
    // Again, committed this time: the same after a reopen, and a row of a hidden key can be
    // stored again after the hide.
    log.append(5, &rec(7 * 256 + 1, 2, 7)).unwrap();
    log.replace(5, &whole).unwrap();
    log.hide(5, &first).unwrap();
    log.append(5, &rec(256, 1, 1)).unwrap();
    log.hide(
        5,
        &Hide {
            from: 7 * 256,
            to: 7 * 256 + 1,
            host: Some(2),
        },
    )
    .unwrap();
    let lens = log.sync().unwrap();
    log.committed();
    assert_eq!(
        log.days().collect::<Vec<_>>(),
        vec![5],
        "a hide makes no day"
    );
    let before = all(&log, 5);
    assert_eq!(
        before.iter().map(|r| r.seq).collect::<Vec<_>>(),
        vec![1, 2, 3, 4, 5, 6]
    );
    assert_eq!(before[1], whole);
    drop(log);
    let (log, found) = RawLog::open(dir.path(), &lens).unwrap();
    assert_eq!(found, Recovery::default());
    assert_eq!(all(&log, 5), before);
}

#[test]
fn a_hide_decodes_exactly_and_a_damaged_one_not_at_all() {
    let h = Hide {
        from: -5,
        to: i64::MAX,
        host: Some(0),
    };
    let mut out = Vec::new();
    encode_hide(&h, &mut out);
    assert_eq!(decode(&out[8..]), Some(Record::Hide(h)));
    for cut in 8..out.len() {
        assert_eq!(decode(&out[8..cut]), None, "cut at {cut}");
    }
    let mut longer = out[8..].to_vec();
    longer.push(0);
    assert_eq!(decode(&longer), None, "trailing bytes");
    assert_eq!(decode(&[7, 0, 0, 0]), None, "unknown kind");
}

#[test]
fn a_log_in_memory_keeps_commits_and_rollbacks_without_a_file() {
    let mut log = RawLog::in_memory();
    let lens = commit(&mut log, 1..4);
    assert_eq!(
        lens[&5],
        8 + (1..4)
            .map(|s| frame_len(&rec(s * 256, 1, s as u64)))
            .sum::<u64>()
    );
    log.append(5, &rec(4 * 256, 1, 4)).unwrap();
    log.hide(
        5,
        &Hide {
            from: 0,
            to: 256,
            host: None,
        },
    )
    .unwrap();
    log.append(6, &rec(1, 1, 9)).unwrap();
    let seqs = |log: &RawLog| all(log, 5).iter().map(|r| r.seq).collect::<Vec<_>>();
    assert_eq!(seqs(&log), vec![2, 3, 4]);
    log.rollback().unwrap();
    assert_eq!(seqs(&log), vec![1, 2, 3]);
    assert_eq!(log.days().collect::<Vec<_>>(), vec![5]);
    commit(&mut log, 4..6);
    assert_eq!(seqs(&log), vec![1, 2, 3, 4, 5]);
    assert_eq!(log.bytes_written, 0, "nothing written");
    log.drop_day(5).unwrap();
    assert_eq!(log.days().count(), 0);
}
