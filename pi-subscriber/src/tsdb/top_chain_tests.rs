//! The process lists stored as their change from the sample before (`top_chain.rs`): read
//! back exactly through a real database file, after a cut inside an hour, and never a panic
//! on damaged bytes.

use broker::{Cpu, Memory, ProcessTop, Processes, Snapshot};

use super::rollup::HOUR_MS;
use super::top_chain::MAGIC;
use super::top_codec::tests::p as proc;
use super::top_codec::{decode_list, decode_list_after, encode_list, encode_list_after};
use super::*;

const T0: i64 = 1_700_006_400_000; // an hour boundary

fn retention() -> Retention {
    Retention {
        raw_ms: 48 * HOUR_MS,
        minute_ms: 14 * 24 * HOUR_MS,
        hour_ms: 730 * 24 * HOUR_MS,
    }
}

/// A busy server's lists at `seq`: the same few processes in a changing order, their CPU
/// and RSS moving (by whole pages, and now and then by a byte count that is not), a new
/// process every seventh sample, a name longer than a stored name may be.
fn lists(seq: u64) -> Processes {
    let long = "a-process-name-longer-than-the-history-keeps-".repeat(8);
    let mut all = [
        proc(
            812,
            "postgres",
            Some("postgres"),
            Some((seq % 97) as f64 * 1.25),
            (300 + seq % 5) << 20,
        ),
        proc(
            77,
            "ffmpeg",
            Some("www-data"),
            Some(190.0 - (seq % 13) as f64),
            491_520_000 + 4096 * seq,
        ),
        proc(
            1,
            "systemd",
            None,
            Some(0.07),
            12_288 + u64::from(seq.is_multiple_of(11)),
        ),
        proc(4242, &long, Some("root"), None, 8 << 20),
        proc(
            9000 + (seq / 7) as u32,
            "cc1plus",
            Some("build"),
            Some(99.5),
            (seq * 4099) % (1 << 30),
        ),
    ];
    all.rotate_left((seq % 5) as usize);
    Processes {
        count: 400,
        top_cpu: all[..3].to_vec(),
        top_rss: all[2..].to_vec(),
    }
}

fn snap(seq: u64) -> Snapshot {
    Snapshot {
        host: "tower".into(),
        seq,
        ts_ms: T0 + 15_000 * (seq as i64 - 1),
        boot_id: Some("b".into()),
        cpu: Some(Cpu {
            usage_percent: Some((seq % 100) as f64),
            ..Cpu::default()
        }),
        memory: Some(Memory {
            total_mb: 4096,
            available_mb: 4096 - seq % 1000,
            ..Memory::default()
        }),
        processes: Some(lists(seq)),
        ..Snapshot::default()
    }
}

/// What the whole encoding gives back for `list` (a long name cut, CPU in hundredths).
fn as_stored(list: &[ProcessTop]) -> Vec<ProcessTop> {
    decode_list(&encode_list(list)).unwrap()
}

fn two_hours(dir: &std::path::Path) -> Tsdb {
    let mut db = Tsdb::open(&dir.join("h.sqlite"), retention(), 500, T0).unwrap();
    for seq in 1..=480 {
        let s = snap(seq);
        db.ingest(&s, true, s.ts_ms).unwrap();
    }
    db.commit().unwrap();
    db
}

/// Each sample's lists as `top_at` answers them exactly at its time, for seqs `seqs`.
fn assert_exact(db: &Tsdb, seqs: impl Iterator<Item = u64>) {
    let now = T0 + 2 * HOUR_MS;
    for seq in seqs {
        let s = snap(seq);
        let a = db.top_at("tower", s.ts_ms, 0, 0, now).unwrap().unwrap();
        let want = lists(seq);
        assert_eq!(
            a.top_cpu.unwrap().processes,
            as_stored(&want.top_cpu),
            "seq {seq}"
        );
        assert_eq!(
            a.top_rss.unwrap().processes,
            as_stored(&want.top_rss),
            "seq {seq}"
        );
    }
}

fn tops(db: &Tsdb) -> Vec<Vec<u8>> {
    let rows = db.all_raw_for_test().into_iter();
    rows.map(|r| r.top.expect("lists")).collect()
}

#[test]
fn lists_stored_against_the_sample_before_read_back_exactly_and_small() {
    let dir = tempfile::tempdir().unwrap();
    let db = two_hours(dir.path());
    assert_exact(&db, 1..=480);
    let tops = tops(&db);
    let after: Vec<&Vec<u8>> = tops.iter().filter(|t| t.starts_with(&MAGIC)).collect();
    // Whole: the first of each hour and each 65th (chains of at most 64).
    assert_eq!((tops.len(), after.len()), (480, 472));
    let whole: usize = tops
        .iter()
        .filter(|t| !t.starts_with(&MAGIC))
        .map(|t| t.len())
        .sum();
    let packed: usize = after.iter().map(|t| t.len()).sum();
    // Two lists of three: 253 bytes whole (one long name); 64 against the sample before, of
    // which 14 are the header and ~20 the process whose RSS moved by bytes, not pages.
    let (whole, packed) = (whole / 8, packed / after.len());
    assert_eq!((whole, packed), (253, 64));
}

#[test]
fn a_disk_bound_cut_inside_an_hour_leaves_every_later_list_readable() {
    let dir = tempfile::tempdir().unwrap();
    let db = two_hours(dir.path());
    let host = db.hosts["tower"].id;
    let cut = T0 + 20 * 60_000 + 7_000;
    assert_eq!(db.cut_raw_for_test(host, cut), 81);
    assert_exact(&db, 82..=480);
}

#[test]
fn a_broken_chain_reads_as_no_lists_never_as_wrong_ones() {
    let dir = tempfile::tempdir().unwrap();
    let db = two_hours(dir.path());
    // A damaged database: a row in the middle of a chain is gone without a rekey.
    db.delete_raw_for_test(|r| r.seq == 10);
    let now = T0 + 2 * HOUR_MS;
    let at = |seq: u64| {
        db.top_at("tower", snap(seq).ts_ms, 0, 0, now)
            .unwrap()
            .unwrap()
    };
    assert_eq!(at(11).top_cpu, None);
    assert_eq!(at(30).top_rss, None);
    assert_exact(&db, 1..=9);
    assert_exact(&db, 241..=480);
}

#[test]
fn damaged_packed_lists_decode_to_none_without_panicking() {
    let base_owned = [
        proc(812, "postgres", Some("postgres"), Some(1.0), 300 << 20),
        proc(1, "systemd", None, None, 12_288),
    ];
    let base: Vec<&ProcessTop> = base_owned.iter().collect();
    let list = vec![
        proc(1, "systemd", None, Some(0.5), 12_288 + 8192),
        proc(
            812,
            "postgres",
            Some("postgres"),
            Some(3.0),
            (300 << 20) - 4096,
        ),
        proc(5, "new", Some("root"), Some(2.0), 77),
    ];
    let bytes = encode_list_after(&list, &base);
    // 1 + (1 + 1 + 1) + (1 + 2 + 1) + whole (1 + 1 + 4 + 5 + 2 + 1).
    assert_eq!(bytes.len(), 22);
    let mut at = 0;
    assert_eq!(
        decode_list_after(&bytes, &mut at, &base),
        Some(list.clone())
    );
    assert_eq!(at, bytes.len());
    for cut in 0..bytes.len() {
        let mut at = 0;
        assert_eq!(
            decode_list_after(&bytes[..cut], &mut at, &base),
            None,
            "cut at {cut}"
        );
    }
    // A tag naming a process the base does not have.
    let mut at = 0;
    assert_eq!(decode_list_after(&[1, 7, 1, 0], &mut at, &base), None);
    let mut at = 0;
    assert_eq!(
        decode_list_after(&[33], &mut at, &base),
        None,
        "more than 32"
    );
    for a in [0u8, 1, 2, 0x7f, 0x80, 0xfe, 0xff] {
        for b in [0u8, 1, 0x80, 0xff] {
            for c in [0u8, 1, 0xff] {
                let _ = decode_list_after(&[a, b, c], &mut 0, &base);
                let _ = decode_list_after(&[1, a, b, c], &mut 0, &[]);
            }
        }
    }
}
