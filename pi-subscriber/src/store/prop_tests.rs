//! The one rate rule, over random sample sequences (issue 19 item 2): devices appearing and
//! vanishing, reboots, clock steps back, seq jumps, counter wraps, duplicates and out-of-order
//! arrival, disks whose I/O counters come and go. For every live sample, the rate the store computed at ingest (what `/metrics`,
//! Home Assistant and the alert rules read) equals the raw tier's answer for that sample
//! (what `/series` serves) and the rule applied to the two snapshots directly.

use std::collections::BTreeMap;

use broker::{Disk, DiskDevice, Network, NetworkInterface, Snapshot};
use tokio::time::Instant;

use super::*;
use crate::rates;
use crate::registry::metric;
use crate::tsdb::{Agg, SeriesQuery};

const SEQUENCES: usize = 10_000;
const T0: i64 = 1_900_000_000_000;

/// One random sequence of snapshots of host `h`, in arrival order.
fn sequence(rng: &mut fastrand::Rng) -> Vec<Snapshot> {
    let mut out = Vec::new();
    let (mut seq, mut ts, mut boot) = (rng.u64(1..1000), T0, 0u32);
    let mut counters: BTreeMap<&str, u64> = BTreeMap::new();
    for _ in 0..rng.usize(2..10) {
        match rng.u8(0..20) {
            0 => boot += 1,                // a reboot
            1 => ts -= rng.i64(1..60_000), // the clock steps back
            2 => seq += rng.u64(2..5),     // a seq jump
            _ => {}
        }
        seq += 1;
        ts += 15_000 + rng.i64(-2000..2000);
        let mut devices = BTreeMap::new();
        for name in ["sda", "sdb", "sdc"] {
            if rng.u8(0..4) == 0 {
                continue; // absent from this sample
            }
            let c = counters.entry(name).or_insert(rng.u64(0..1_000_000));
            *c = match rng.u8(0..15) {
                0 => rng.u64(0..100), // a wrap or a reset
                _ => *c + rng.u64(0..10_000),
            };
            let read_sectors = *c;
            // The I/O counters: absent now and then (a publisher before them), each may reset.
            let mut io = |what: &'static str, most: u64| -> Option<u64> {
                let c = counters.entry(what).or_insert(rng.u64(0..1_000_000));
                *c = match rng.u8(0..20) {
                    0 => rng.u64(0..100),
                    _ => *c + rng.u64(0..most),
                };
                (rng.u8(0..10) != 0).then_some(*c)
            };
            let (ios, io_wait_ms, io_time_ms) = match name {
                "sda" => (
                    io("sda.ios", 50),
                    io("sda.wait", 900),
                    io("sda.busy", 16_000),
                ),
                "sdb" => (
                    io("sdb.ios", 50),
                    io("sdb.wait", 900),
                    io("sdb.busy", 16_000),
                ),
                _ => (
                    io("sdc.ios", 3),
                    io("sdc.wait", 900),
                    io("sdc.busy", 16_000),
                ),
            };
            devices.insert(
                name.to_string(),
                DiskDevice {
                    read_sectors,
                    write_sectors: 0,
                    ios,
                    io_wait_ms,
                    io_time_ms,
                },
            );
        }
        let sum = devices.values().map(|d| d.read_sectors).sum();
        let rx = counters.entry("eth0").or_insert(0);
        *rx += rng.u64(0..1_000_000);
        out.push(Snapshot {
            v: 1,
            host: "h".into(),
            seq,
            ts: ts / 1000,
            ts_ms: ts,
            boot_id: Some(format!("boot-{boot}")),
            disk: Some(Disk {
                read_sectors: sum,
                write_sectors: 0,
                devices,
            }),
            network: Some(Network {
                rx_bytes: *rx,
                tx_bytes: 0,
                interfaces: [(
                    "eth0".to_string(),
                    NetworkInterface {
                        rx_bytes: *rx,
                        tx_bytes: 0,
                    },
                )]
                .into(),
            }),
            ..Snapshot::default()
        });
        if rng.u8(0..10) == 0 {
            out.push(out[out.len() - 1].clone()); // delivered twice
        }
    }
    if out.len() > 3 && rng.bool() {
        let i = rng.usize(1..out.len() - 1);
        out.swap(i, i + 1); // out of order
    }
    out
}

/// What the raw tier serves for the sample at `ts_ms` (the one with seq `seq`).
fn served(store: &SharedStore, name: &str, label: Option<&str>, ts_ms: i64) -> Option<f64> {
    let q = SeriesQuery {
        host: "h",
        metric: metric(name).unwrap(),
        label,
        from_ms: ts_ms,
        to_ms: ts_ms,
        step_ms: None,
        agg: Agg::Avg,
    };
    let (_, series) = store.series(&q, ts_ms).unwrap();
    series
        .iter()
        .flat_map(|s| s.points.iter())
        .find(|(t, _)| *t == ts_ms)
        .and_then(|(_, v)| *v)
}

#[test]
fn every_surface_reads_the_same_rate_for_every_sample() {
    let mut rng = fastrand::Rng::with_seed(19);
    let mut compared = 0usize;
    for n in 0..SEQUENCES {
        let store = tests::handle(4);
        let snaps = sequence(&mut rng);
        if std::env::var("PROP_DEBUG").is_ok_and(|v| v == n.to_string()) {
            for s in &snaps {
                eprintln!(
                    "seq {} ts {} boot {:?} disk {:?}",
                    s.seq,
                    s.ts_ms - T0,
                    s.boot_id,
                    s.disk
                );
            }
        }
        let mut stored: Vec<Snapshot> = Vec::new();
        for s in snaps {
            let outcome = store.ingest(s.clone(), Source::Mqtt, Instant::now(), s.ts_ms);
            if !matches!(outcome, Outcome::Stored { .. }) {
                continue;
            }
            stored.push(s.clone());
            let hs = store.host("h").unwrap().unwrap();
            let at_ingest = hs.rates.as_deref();
            // The oracle: the rule over the two snapshots, when the seq predecessor is stored
            // and dated before (several stored samples may share a seq across a clock step:
            // the one the store paired is the latest dated before this one).
            let predecessor = stored
                .iter()
                .filter(|p| p.seq.checked_add(1) == Some(s.seq) && p.ts_ms < s.ts_ms)
                .filter(|p| p.boot_id == s.boot_id)
                .max_by_key(|p| p.ts_ms);
            let oracle = predecessor.and_then(|p| rates::between(p, &s));
            for (name, label) in [
                ("disk_read_bytes_rate", ""),
                ("disk_read_bytes_rate", "sda"),
                ("disk_read_bytes_rate", "sdb"),
                ("disk_busy_percent", ""),
                ("disk_busy_percent", "sda"),
                ("disk_await_ms", ""),
                ("disk_await_ms", "sdc"),
                ("disk_io_ops_rate", ""),
                ("network_rx_bytes_rate", ""),
                ("network_rx_bytes_rate", "eth0"),
            ] {
                let ingest = at_ingest.and_then(|r| r.get(name, label));
                let series = served(&store, name, (!label.is_empty()).then_some(label), s.ts_ms);
                let rule = oracle.as_ref().and_then(|r| r.get(name, label));
                assert_eq!(
                    (ingest, series),
                    (rule, rule),
                    "sequence {n}, seq {} {name} {label:?}: ingest (metrics, HA, alerts) / series / rule",
                    s.seq
                );
                if let Some(v) = ingest {
                    assert!(v >= 0.0, "never negative");
                }
                compared += 1;
            }
        }
    }
    assert!(compared > SEQUENCES * 20, "{compared}");
}
