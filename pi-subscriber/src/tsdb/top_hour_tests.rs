use broker::ProcessTop;

use super::super::top_codec::tests::p;
use super::*;

const H: i64 = 1_700_006_400_000; // an hour's start

/// A tower's lists at minute `m`: the same five processes by CPU and by memory, their CPU
/// and RSS moving, one newcomer every ten minutes.
fn tower(m: i64) -> (Peak, Peak) {
    let cpu: Vec<ProcessTop> = (0..5u32)
        .map(|i| {
            let pid = if i == 4 && m % 10 == 0 {
                9000 + m as u32
            } else {
                100 + i
            };
            p(
                pid,
                &format!("worker-{i}"),
                Some("www-data"),
                Some(f64::from(i) + (m % 7) as f64 * 0.25),
                4096 * (1000 + m as u64 + u64::from(i)),
            )
        })
        .collect();
    let mem: Vec<ProcessTop> = (0..5u32)
        .map(|i| {
            p(
                200 + i,
                &format!("db-{i}"),
                None,
                None,
                1 << 30 | (4096 * m as u64),
            )
        })
        .collect();
    let minute = H + m * MINUTE_MS;
    (
        Peak {
            value: 40.5 + m as f64,
            ts: minute + 15_000,
            list: cpu,
        },
        Peak {
            value: -1.0,
            ts: minute + 59_999,
            list: mem,
        },
    )
}

fn hour_of(minutes: impl Iterator<Item = i64>) -> Hour {
    let mut hour = Hour::new();
    for m in minutes {
        let (c, mm) = tower(m);
        merge(&mut hour, H + m * MINUTE_MS, c, mm);
    }
    hour
}

#[test]
fn an_hour_reads_back_exactly_and_costs_a_fraction_of_the_rows_of_before() {
    let hour = hour_of(0..60);
    let row = encode(H, &hour);
    assert_eq!(decode(H, &row), Some(hour.clone()));
    // Against a row a minute of before: two whole lists, four columns, a key (~32 bytes).
    let before: usize = hour
        .values()
        .map(|(c, m)| {
            super::super::top_codec::encode_list(&c.list).len()
                + super::super::top_codec::encode_list(&m.list).len()
                + 32
        })
        .sum();
    assert_eq!((row.len(), before), (3411, 13676));
    // Some minutes only, gaps between them, and one list empty.
    let mut sparse = hour_of([0, 1, 5, 59].into_iter());
    sparse.get_mut(&(H + 5 * MINUTE_MS)).unwrap().1.list.clear();
    assert_eq!(decode(H, &encode(H, &sparse)), Some(sparse));
    assert_eq!(decode(H, &encode(H, &Hour::new())), Some(Hour::new()));
}

#[test]
fn minutes_outside_the_hour_are_left_out_and_peaks_only_rise() {
    let mut hour = hour_of(0..2);
    let (c, m) = tower(60); // the next hour's first minute
    merge(&mut hour, H + 60 * MINUTE_MS, c, m);
    assert_eq!(decode(H, &encode(H, &hour)).unwrap().len(), 2);
    // A lower CPU peak leaves the minute as it was; a higher memory one takes its place; a
    // tie keeps the first.
    let mut hour = hour_of(0..1);
    let (mut c, mut m) = tower(0);
    c.value -= 1.0;
    c.list.clear();
    m.value = 10.0;
    m.list.truncate(1);
    merge(&mut hour, H, c, m.clone());
    assert_eq!(hour[&H].0, tower(0).0);
    assert_eq!(hour[&H].1, m);
    let (mut tie, _) = tower(0);
    tie.list.clear();
    merge(&mut hour, H, tie, m.clone());
    assert_eq!(hour[&H].0, tower(0).0);
}

#[test]
fn a_damaged_row_reads_as_none_never_a_panic() {
    let row = encode(H, &hour_of(0..60));
    // Every cut short, and a byte too many.
    for len in 0..row.len() {
        assert_eq!(decode(H, &row[..len]), None, "cut at {len}");
    }
    let mut long = row.clone();
    long.push(0);
    assert_eq!(decode(H, &long), None);
    // A minute's list of before is not an hour's row.
    assert!(!is_hour_row(&super::super::top_codec::encode_list(
        &tower(0).0.list
    )));
    // More than 60 minutes, minutes out of order, a minute past the hour, a time past the
    // minute: each refused.
    let mut bad = MAGIC.to_vec();
    bad.push(61);
    assert_eq!(decode(H, &bad), None);
    for (first, second) in [(5u8, 5u8), (5, 3), (60, 61)] {
        let mut two = hour_of([0, 1].into_iter());
        let row = encode(H, &two);
        let mut b = row.clone();
        // The first minute's index is the byte after the count; find the second's by
        // re-encoding with the first minute alone.
        let one_len = encode(H, &{
            two.remove(&(H + MINUTE_MS));
            two.clone()
        })
        .len();
        b[3] = first;
        b[one_len] = second;
        assert_eq!(decode(H, &b), None, "minutes {first}, {second}");
    }
    // Random bytes after the magic: never a panic.
    let mut seed = 0x2545_f491_4f6c_dd1du64;
    for _ in 0..2000 {
        let mut b = MAGIC.to_vec();
        for _ in 0..(seed % 64) {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            b.push(seed as u8);
        }
        let _ = decode(H, &b);
    }
}
