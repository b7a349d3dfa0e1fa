use super::*;
use crate::tsdb::codec;

fn bucket_row(seed: u64) -> Vec<Option<Bucket>> {
    let start = 1_700_000_000_000;
    (0..60u64)
        .map(|i| {
            (i % 7 != 3).then(|| {
                let t = start + i as i64 * 60_000 + 14_000 + (seed * i) as i64 % 900;
                let mut b = Bucket::of(((seed + i) % 100) as f64 / 10.0, t - 45_000);
                b.add(66_666.67 + i as f64, t - 30_000);
                b.add(f64::from(i as u32) * 1.5, t);
                b
            })
        })
        .map(|b| {
            b.map(|mut b| {
                b.last_ms = b.last_ms.max(1_700_000_000_000);
                b
            })
        })
        .collect()
}

#[test]
fn bucket_rows_give_back_exactly_what_the_old_encoding_would() {
    let start = 1_700_000_000_000;
    for seed in [1, 7, 123] {
        let row = bucket_row(seed);
        let old = codec::decode_buckets(&codec::encode_buckets(&row, start), 60, start);
        let bytes = encode_buckets(&row, start, 60_000);
        let new = decode_buckets(&bytes, 60, start, 60_000).unwrap();
        assert_eq!(new, old);
        assert!(bytes.len() < codec::encode_buckets(&row, start).len());
        // Cut anywhere: the buckets before the cut, empty slots after, never a panic.
        for cut in 0..bytes.len() {
            let got = decode_buckets(&bytes[..cut], 60, start, 60_000).unwrap_or_default();
            for (g, o) in got.iter().zip(&old) {
                assert!(g.is_none() || g == o);
            }
        }
    }
    // A time before the row's start is kept at its start, as the old encoding did.
    let mut early = vec![None; 3];
    early[1] = Some(Bucket::of(2.0, start - 5));
    let old = codec::decode_buckets(&codec::encode_buckets(&early, start), 3, start);
    let new = decode_buckets(&encode_buckets(&early, start, 60_000), 3, start, 60_000).unwrap();
    assert_eq!(new, old);
    assert_eq!(
        decode_buckets(&[0x80, 0x00, 77, 1, 2], 2, start, 60_000),
        Some(vec![None, None])
    );
    assert_eq!(decode_buckets(&[1, 2], 2, start, 60_000), None);
}

/// A `load_1m` hour row (24 one-hour buckets) written by version 1, as `bench tsdb` left it:
/// a load that stood at 1.42, from 148 samples in its first hour to 240 an hour.
const V1_LOAD_HOUR: &str = "80000200000000009401B804B804E09005B804DC85B703F0010000A098030000F0010000000000F0010000000000F0010000000000F0010000000000F0010000000000F0010000000000F0010000000000F0010000000000F0010000000000F0010000000000F0010000000000F0010000000000F0010000000000F0010000000000F0010000000000F0010000000000F0010000000000";

fn unhex(s: &str) -> Vec<u8> {
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
        .collect()
}

#[test]
fn version_1_rows_still_read_and_version_2_gives_them_back_in_a_tenth() {
    let start = 1_796_515_200_000;
    let v1 = unhex(V1_LOAD_HOUR);
    let row = decode_buckets(&v1, 24, start, 3_600_000).unwrap();
    let load = stored(1.42);
    assert_eq!(row[..5], [None; 5]);
    let first = row[5].unwrap();
    assert_eq!(
        (first.count, first.min, first.max, first.last),
        (148, load, load, load)
    );
    assert_eq!(first.sum, stored(148.0 * 1.42));
    for b in &row[6..] {
        let b = b.unwrap();
        assert_eq!((b.count, b.min, b.max, b.last), (240, load, load, load));
        assert_eq!(b.sum, stored(240.0 * 1.42));
    }
    let v2 = encode_buckets(&row, start, 3_600_000);
    assert_eq!(decode_buckets(&v2, 24, start, 3_600_000).unwrap(), row);
    assert!(
        v2.len() * 5 < v1.len(),
        "{} bytes against {}",
        v2.len(),
        v1.len()
    );
}

#[test]
fn a_series_that_stands_still_costs_one_byte_a_row() {
    let start = 1_700_000_000_000;
    let b = |i: i64| {
        let mut b = Bucket::of(1.5, start + i * 60_000 + 5_000);
        for k in 1..4 {
            b.add(1.5, start + i * 60_000 + 5_000 + k * 15_000);
        }
        Some(b)
    };
    let steady: Vec<_> = (0..30).map(b).collect();
    let bytes = encode_buckets(&steady, start, 60_000);
    // Magic, version, the first bucket (all six fields), then one run of 29.
    assert_eq!(bytes[bytes.len() - 1], RUN_EQUAL | 28);
    assert!(bytes.len() <= 3 + 1 + 12 + 1, "{bytes:?}");
    assert_eq!(decode_buckets(&bytes, 30, start, 60_000).unwrap(), steady);
    // Runs longer than a tag holds, of both kinds, and a row that ends in a run.
    let mut long: Vec<_> = (0..200).map(b).collect();
    for cell in &mut long[70..150] {
        *cell = None;
    }
    let bytes = encode_buckets(&long, start, 60_000);
    assert_eq!(decode_buckets(&bytes, 200, start, 60_000).unwrap(), long);
    assert!(bytes.len() < 40, "{} bytes", bytes.len());
}

#[test]
fn hostile_version_2_rows_decode_without_panicking() {
    let start = 1_700_000_000_000;
    let mut x = 0x9e37_79b9_7f4a_7c15u64;
    for len in 0..400 {
        let mut bytes = vec![0x80, 0x00, BUCKETS_V2];
        for _ in 0..len % 50 {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            bytes.push(x as u8);
        }
        let got = decode_buckets(&bytes, 60, start, 60_000).unwrap();
        assert_eq!(got.len(), 60);
        // Near the ends of time, too.
        let _ = decode_buckets(&bytes, 60, i64::MAX - 10, i64::MAX / 2);
        let _ = decode_buckets(&bytes, 60, i64::MIN, 60_000);
    }
    // A reserved tag or an empty mask ends the row.
    assert_eq!(
        decode_buckets(&[0x80, 0x00, BUCKETS_V2, 0xc5, RUN_EQUAL], 2, start, 60_000),
        Some(vec![None, None])
    );
    assert_eq!(
        decode_buckets(&[0x80, 0x00, BUCKETS_V2, 0x00, RUN_EQUAL], 2, start, 60_000),
        Some(vec![None, None])
    );
}

#[test]
fn each_field_changing_alone_reads_back_exactly() {
    let start = 1_700_000_000_000;
    let mut x = 0x2545_f491_4f6c_dd1du64;
    let mut b = Bucket::of(20.0, start + 5_000);
    let mut row = Vec::new();
    for slot in 0..60i64 {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        let v = (x >> 40) as f64 / 1000.0;
        match x % 8 {
            0 => b.count += 1,
            1 => b.min = v.min(b.min),
            2 => b.max = v.max(b.max),
            3 => b.sum += v,
            4 => b.last = f64::NAN,
            5 => b.last = v,
            _ => {}
        }
        b.last_ms = start + slot * 60_000 + if x.is_multiple_of(3) { 5_000 } else { 44_000 };
        row.push((!x.is_multiple_of(11)).then_some(b));
    }
    let old = codec::decode_buckets(&codec::encode_buckets(&row, start), 60, start);
    let new = decode_buckets(&encode_buckets(&row, start, 60_000), 60, start, 60_000).unwrap();
    for (n, o) in new.iter().zip(&old) {
        match (n, o) {
            (Some(n), Some(o)) => {
                assert_eq!((n.count, n.last_ms), (o.count, o.last_ms));
                for (a, b) in [
                    (n.min, o.min),
                    (n.max, o.max),
                    (n.sum, o.sum),
                    (n.last, o.last),
                ] {
                    assert_eq!(a.to_bits(), b.to_bits());
                }
            }
            _ => assert_eq!(n.is_none(), o.is_none()),
        }
    }
}
