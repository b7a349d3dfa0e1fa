//! `open_row.rs`: exact values, sizes, sparse against dense rows, hostile adds.

use super::super::buckets::merge_slot;
use super::*;

const T0: i64 = 1_764_547_200_000; // 2025-12-01 00:00 UTC

fn bits(b: &Option<Bucket>) -> Option<[u64; 6]> {
    b.map(|b| {
        [
            b.min.to_bits(),
            b.max.to_bits(),
            b.sum.to_bits(),
            u64::from(b.count),
            b.last.to_bits(),
            b.last_ms as u64,
        ]
    })
}

/// Adds the same values to a dense row and an open row; they must hold the same bits.
fn same_as_dense(tier: Tier, start: i64, adds: &[(usize, f64, i64)]) -> OpenRow {
    let mut dense = vec![None; tier.slots()];
    let mut row = OpenRow::default();
    for &(slot, v, ts) in adds {
        merge_slot(&mut dense, slot, v, ts);
        row.add(tier, start, slot, v, ts);
        let got = row.to_dense(tier, start);
        assert_eq!(
            got.iter().map(bits).collect::<Vec<_>>(),
            dense.iter().map(bits).collect::<Vec<_>>(),
            "after adding {v} at {ts} to slot {slot}"
        );
    }
    row
}

#[test]
fn buckets_come_back_exactly() {
    let start = T0 + 3 * 3_600_000;
    let row = same_as_dense(
        Tier::Minute,
        start,
        &[
            (0, 37.4, start + 1_000),
            (0, 41.0, start + 16_000),
            (0, 12.5, start + 31_000),
            (2, 1.0 / 3.0, start + 120_000),
            (59, 52.5, start + 3_599_999),
            (59, 52.5, start + 3_599_000),
        ],
    );
    let b: Vec<_> = row.buckets(Tier::Minute, start).collect();
    assert_eq!(
        b.iter().map(|(s, _)| *s).collect::<Vec<_>>(),
        vec![59, 2, 0]
    );
    let (_, first) = b[2];
    assert_eq!((first.min, first.max, first.count), (12.5, 41.0, 3));
    assert_eq!(first.sum.to_bits(), (37.4f64 + 41.0 + 12.5).to_bits());
    assert_eq!((first.last, first.last_ms), (12.5, start + 31_000));
    let (_, newest) = b[0];
    assert_eq!((newest.sum, newest.count), (105.0, 2));
    assert_eq!((newest.last, newest.last_ms), (52.5, start + 3_599_999));
    assert_eq!(b[1].1.min.to_bits(), (1.0f64 / 3.0).to_bits());
}

#[test]
fn exact_values_take_few_bytes() {
    // An hour of one-minute buckets of four whole-degree samples: 14 bytes a bucket
    // (header 3, min 4, sum 4, count 1, time in the slot 2), where the dense row took
    // 60 × 56.
    let start = T0;
    let mut row = OpenRow::default();
    for i in 0..240 {
        let ts = start + i * 15_000;
        row.add(Tier::Minute, start, (i / 4) as usize, 45.0, ts);
    }
    assert_eq!(row.heap_bytes(), 60 * 14);
    // The least: one value `f32` holds (header, min, count, time).
    let mut row = OpenRow::default();
    row.add(Tier::Minute, start, 7, 40.0, start + 7 * 60_000 + 15_000);
    assert_eq!(row.heap_bytes(), 10);
    // A value `f32` cannot hold takes eight bytes (max, sum and last, its bits, none);
    // a second one makes max, sum and last differ from min.
    let mut row = OpenRow::default();
    row.add(Tier::Minute, start, 0, 37.4, start);
    assert_eq!(row.heap_bytes(), HEADER + 8 + 1 + 2);
    row.add(Tier::Minute, start, 0, 37.5, start + 15_000);
    assert_eq!(row.heap_bytes(), HEADER + 8 + 4 + 8 + 4 + 1 + 2);
    // An hour row: the time in the slot needs four bytes after 65.5 s.
    let mut row = OpenRow::default();
    row.add(Tier::Hour, start, 5, 2.0, start + 5 * 3_600_000 + 3_599_000);
    assert_eq!(row.heap_bytes(), HEADER + 4 + 1 + 4);
    assert_eq!(OpenRow::default().heap_bytes(), 0);
}

/// A small deterministic generator (xorshift64*), so the test needs no crate.
struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

#[test]
fn sparse_and_dense_rows_agree_on_random_adds() {
    let mut rng = Rng(0x9E37_79B9_7F4A_7C15);
    for tier in [Tier::Minute, Tier::Hour] {
        for round in 0..20 {
            let start = T0 + round * tier.row_ms();
            let adds: Vec<(usize, f64, i64)> = (0..400)
                .map(|_| {
                    let slot = rng.below(tier.slots() as u64) as usize;
                    let ts = start
                        + slot as i64 * tier.bucket_ms()
                        + rng.below(tier.bucket_ms() as u64) as i64;
                    let v = match rng.below(5) {
                        0 => rng.below(100) as f64,
                        1 => rng.below(1000) as f64 / 10.0,
                        2 => f64::from_bits(rng.next()),
                        3 => (rng.below(1 << 40) as f64) * 1e9,
                        _ => rng.below(8) as f64 * 0.5,
                    };
                    (slot, v, ts)
                })
                .collect();
            same_as_dense(tier, start, &adds);
        }
    }
}

#[test]
fn hostile_values_times_and_slots_never_panic_and_stay_exact() {
    let values = [
        f64::NAN,
        -f64::NAN,
        f64::from_bits(0x7FF0_0000_0000_0001),
        f64::INFINITY,
        f64::NEG_INFINITY,
        0.0,
        -0.0,
        f64::MIN_POSITIVE / 4.0,
        f64::MAX,
        f64::MIN,
        f64::from(f32::MAX),
        1e300,
    ];
    let times = [i64::MIN, i64::MAX, 0, -1, T0, T0 + 59_999, T0 + 60_000];
    for tier in [Tier::Minute, Tier::Hour] {
        for start in [T0, i64::MIN, i64::MAX, -tier.row_ms(), 0] {
            let mut adds = Vec::new();
            for (i, v) in values.iter().enumerate() {
                for (j, ts) in times.iter().enumerate() {
                    adds.push(((i + j) % tier.slots(), *v, *ts));
                }
            }
            same_as_dense(tier, start, &adds);
            let mut row = OpenRow::default();
            for slot in [tier.slots(), 255, 256, usize::MAX] {
                row.add(tier, start, slot, 1.0, start);
            }
            assert_eq!(row, OpenRow::default(), "slots beyond the row are ignored");
        }
    }
}

#[test]
fn counts_beyond_two_bytes_are_kept() {
    let mut row = OpenRow::default();
    for i in 0..70_000i64 {
        row.add(Tier::Hour, T0, 0, (i % 3) as f64, T0 + i);
    }
    let (slot, b) = row.buckets(Tier::Hour, T0).next().unwrap();
    assert_eq!((slot, b.count, b.min, b.max), (0, 70_000, 0.0, 2.0));
    assert_eq!((b.last, b.last_ms), (0.0, T0 + 69_999));
    assert_eq!(b.sum, 69_999.0);
}
