use super::*;
use crate::tsdb::codec;

fn tower_like(seq: u64) -> Vec<(u32, Value)> {
    let mut v = vec![
        (1, Value::Gauge(((seq * 37) % 1000) as f64 / 10.0)),
        (2, Value::Gauge(1.42)),
        (3, Value::Gauge(20952.0)),
        (4, Value::Counter(248_141_916 + seq * 1000)),
        (5, Value::Counter(184_515_514_814 + seq * 1_000_000)),
        (6, Value::Gauge(66_666.666_7 + seq as f64 / 3.0)),
        (7, Value::Gauge(f64::NAN)),
        (8, Value::Gauge(-0.0)),
        (9, Value::Counter(u64::MAX - seq)),
        (10, Value::Gauge(1e300)),
    ];
    for c in 0..12 {
        v.push((
            20 + c,
            Value::Gauge(((seq * 7 + c as u64 * 13) % 1000) as f64 / 10.0),
        ));
    }
    v
}

/// What the full encoding gives back (gauges rounded to `f32`): the delta must give the same.
fn as_full(values: &[(u32, Value)]) -> Vec<(u32, Value)> {
    codec::decode_sample(&codec::encode_sample(values))
}

fn same(a: &[(u32, Value)], b: &[(u32, Value)]) -> bool {
    a.len() == b.len()
        && a.iter().zip(b).all(|((i, x), (j, y))| {
            i == j
                && match (x, y) {
                    (Value::Gauge(x), Value::Gauge(y)) => x.to_bits() == y.to_bits(),
                    (x, y) => x == y,
                }
        })
}

#[test]
fn a_delta_gives_back_exactly_what_the_full_row_would() {
    let mut base = as_full(&tower_like(1));
    for seq in 2..200 {
        let now = tower_like(seq);
        let bytes = encode_delta(&now, &base, 15_000).unwrap();
        let Packed::Delta { back_ms, body } = packed(&bytes) else {
            panic!("not a delta");
        };
        assert_eq!(back_ms, 15_000);
        let got = decode_delta(body, &base);
        assert!(same(&got, &as_full(&now)), "seq {seq}: {got:?}");
        base = got;
    }
}

#[test]
fn a_delta_is_small_and_an_unchanged_value_is_one_byte() {
    let base = as_full(&tower_like(1));
    let now = tower_like(2);
    let delta = encode_delta(&now, &base, 15_000).unwrap();
    let full = codec::encode_sample(&now);
    assert!(
        delta.len() * 2 < full.len(),
        "{} vs {}",
        delta.len(),
        full.len()
    );
    let same_again = encode_delta(&base, &base, 15_000).unwrap();
    assert_eq!(
        same_again.len(),
        2 + 1 + 2 + base.len(),
        "magic, version, 15 000 ms, a byte a value"
    );
}

#[test]
fn no_delta_between_different_series_or_kinds() {
    let base = tower_like(1);
    assert!(encode_delta(&base[1..], &base, 15_000).is_none());
    let mut other = base.clone();
    other[0].0 = 99;
    assert!(encode_delta(&other, &base, 15_000).is_none());
    other = base.clone();
    other[1].1 = Value::Counter(1);
    assert!(encode_delta(&other, &base, 15_000).is_none());
    assert!(encode_delta(&base, &base, 0).is_none());
}

#[test]
fn old_rows_read_as_full_and_damage_stops_cleanly() {
    let full = codec::encode_sample(&tower_like(3));
    assert!(matches!(packed(&full), Packed::Full(_)));
    assert!(matches!(packed(&[0x80, 0x00, 9, 1]), Packed::Unknown));
    assert!(matches!(packed(&[0x80, 0x00]), Packed::Unknown));
    let base = as_full(&tower_like(1));
    let bytes = encode_delta(&tower_like(2), &base, 15_000).unwrap();
    let Packed::Delta { body, .. } = packed(&bytes) else {
        panic!("not a delta");
    };
    let whole = decode_delta(body, &base);
    for cut in 0..body.len() {
        let got = decode_delta(&body[..cut], &base);
        assert!(same(&got, &whole[..got.len()]));
    }
    assert!(decode_delta(&[0xff; 40], &base).len() < base.len());
}
