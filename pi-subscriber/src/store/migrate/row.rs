//! The compact [`Row`] of the history files of earlier versions, read once to import them.

use broker::Snapshot;

use crate::rates;

/// Missing counter in a [`Row`].
const NO_COUNTER: u64 = u64::MAX;

/// One sample in the history, compact (96 bytes): gauges as `f32` (NaN when missing),
/// cumulative counters as `u64` (`u64::MAX` when missing), and a fingerprint of the set of
/// disks and of interfaces summed into the totals. Rates are derived from the seq-adjacent row
/// when asked for, so inserting a backfilled row never leaves a stale rate behind.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Row {
    pub ts_ms: i64,
    pub seq: u64,
    pub boot: u64,
    pub cpu: f32,
    pub load1: f32,
    pub load5: f32,
    pub load15: f32,
    pub mem_available: f32,
    pub mem_total: f32,
    pub swap_used: f32,
    pub temp: f32,
    pub disk_read: u64,
    pub disk_write: u64,
    pub net_rx: u64,
    pub net_tx: u64,
    /// [`rates::name_set_hash`] of the disks summed in `disk_read`/`disk_write` (0: unknown).
    pub disk_set: u32,
    /// The same for the interfaces summed in `net_rx`/`net_tx`.
    pub net_set: u32,
}

fn gauge(x: Option<f64>) -> f32 {
    x.map_or(f32::NAN, |v| v as f32)
}

impl Row {
    pub fn of(s: &Snapshot) -> Row {
        let cpu = s.cpu.as_ref();
        let mem = s.memory.as_ref();
        Row {
            ts_ms: s.ts_ms,
            seq: s.seq,
            boot: rates::boot_hash(s.boot_id.as_deref()),
            cpu: gauge(cpu.and_then(|c| c.usage_percent)),
            load1: gauge(cpu.and_then(|c| c.load_1m)),
            load5: gauge(cpu.and_then(|c| c.load_5m)),
            load15: gauge(cpu.and_then(|c| c.load_15m)),
            mem_available: gauge(mem.map(|m| m.available_mb as f64)),
            mem_total: gauge(mem.map(|m| m.total_mb as f64)),
            swap_used: gauge(mem.map(|m| m.swap_used_mb as f64)),
            temp: gauge(s.thermal.cpu_temp_c),
            disk_read: s.disk.as_ref().map_or(NO_COUNTER, |d| d.read_sectors),
            disk_write: s.disk.as_ref().map_or(NO_COUNTER, |d| d.write_sectors),
            net_rx: s.network.as_ref().map_or(NO_COUNTER, |n| n.rx_bytes),
            net_tx: s.network.as_ref().map_or(NO_COUNTER, |n| n.tx_bytes),
            disk_set: s
                .disk
                .as_ref()
                .map_or(0, |d| rates::name_set_hash(d.devices.keys())),
            net_set: s
                .network
                .as_ref()
                .map_or(0, |n| rates::name_set_hash(n.interfaces.keys())),
        }
    }

    /// The snapshot this row was made from, as far as the row kept it (totals only; the
    /// boot id is known by its hash), to import it into the history database.
    pub fn to_snapshot(&self, host: &str) -> Snapshot {
        let g = |x: f32| (!x.is_nan()).then_some(f64::from(x));
        let c = |x: u64| (x != NO_COUNTER).then_some(x);
        let mb = |x: f32| g(x).map(|v| v.max(0.0) as u64);
        Snapshot {
            v: broker::SNAPSHOT_VERSION,
            host: host.to_owned(),
            seq: self.seq,
            ts: self.ts_ms.div_euclid(1000),
            ts_ms: self.ts_ms,
            boot_id: (self.boot != 0).then(|| format!("imported-{:016x}", self.boot)),
            cpu: Some(broker::Cpu {
                usage_percent: g(self.cpu),
                load_1m: g(self.load1),
                load_5m: g(self.load5),
                load_15m: g(self.load15),
                ..broker::Cpu::default()
            }),
            memory: mb(self.mem_total).map(|total_mb| broker::Memory {
                available_mb: mb(self.mem_available).unwrap_or(0),
                total_mb,
                swap_used_mb: mb(self.swap_used).unwrap_or(0),
                swap_total_mb: 0,
            }),
            thermal: broker::Thermal {
                cpu_temp_c: g(self.temp),
                ..broker::Thermal::default()
            },
            disk: c(self.disk_read)
                .zip(c(self.disk_write))
                .map(|(r, w)| broker::Disk {
                    read_sectors: r,
                    write_sectors: w,
                    ..broker::Disk::default()
                }),
            network: c(self.net_rx)
                .zip(c(self.net_tx))
                .map(|(r, t)| broker::Network {
                    rx_bytes: r,
                    tx_bytes: t,
                    ..broker::Network::default()
                }),
            ..Snapshot::default()
        }
    }

    /// The persisted form: a JSON array, `null` for missing values.
    pub fn to_array(&self) -> serde_json::Value {
        let g = |x: f32| {
            if x.is_nan() {
                serde_json::Value::Null
            } else {
                serde_json::json!(x)
            }
        };
        let c = |x: u64| {
            if x == NO_COUNTER {
                serde_json::Value::Null
            } else {
                serde_json::json!(x)
            }
        };
        serde_json::json!([
            self.ts_ms,
            self.seq,
            self.boot,
            g(self.cpu),
            g(self.load1),
            g(self.load5),
            g(self.load15),
            g(self.mem_available),
            g(self.mem_total),
            g(self.swap_used),
            g(self.temp),
            c(self.disk_read),
            c(self.disk_write),
            c(self.net_rx),
            c(self.net_tx),
            self.disk_set,
            self.net_set
        ])
    }

    /// Parses the persisted form (straight from bytes: loading a day of ten hosts must not
    /// build 57 600 JSON trees). Rows written before the device-set fingerprints (15 values)
    /// still load, with unknown sets.
    pub fn from_json(json: &[u8]) -> Option<Row> {
        type G = Option<f32>;
        type C = Option<u64>;
        #[derive(serde::Deserialize)]
        struct Now(i64, u64, u64, G, G, G, G, G, G, G, G, C, C, C, C, u32, u32);
        #[derive(serde::Deserialize)]
        struct Before(i64, u64, u64, G, G, G, G, G, G, G, G, C, C, C, C);
        let Now(
            ts_ms,
            seq,
            boot,
            cpu,
            load1,
            load5,
            load15,
            mem_available,
            mem_total,
            swap_used,
            temp,
            dr,
            dw,
            rx,
            tx,
            ds,
            ns,
        ) = match serde_json::from_slice::<Now>(json) {
            Ok(now) => now,
            Err(_) => {
                let Before(a, b, c, d, e, f, g, h, i, j, k, l, m, n, o) =
                    serde_json::from_slice(json).ok()?;
                Now(a, b, c, d, e, f, g, h, i, j, k, l, m, n, o, 0, 0)
            }
        };
        let g = |x: G| x.unwrap_or(f32::NAN);
        let c = |x: C| x.unwrap_or(NO_COUNTER);
        Some(Row {
            ts_ms,
            seq,
            boot,
            cpu: g(cpu),
            load1: g(load1),
            load5: g(load5),
            load15: g(load15),
            mem_available: g(mem_available),
            mem_total: g(mem_total),
            swap_used: g(swap_used),
            temp: g(temp),
            disk_read: c(dr),
            disk_write: c(dw),
            net_rx: c(rx),
            net_tx: c(tx),
            disk_set: ds,
            net_set: ns,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rows_round_trip_through_their_array_form() {
        let s = Snapshot {
            seq: 3,
            ts_ms: 100_000,
            boot_id: Some("b1".into()),
            cpu: Some(broker::Cpu {
                usage_percent: Some(45.23),
                ..broker::Cpu::default()
            }),
            disk: Some(broker::Disk {
                read_sectors: 77,
                write_sectors: 77,
                ..broker::Disk::default()
            }),
            ..Snapshot::default()
        };
        let row = Row::of(&s);
        let back = Row::from_json(row.to_array().to_string().as_bytes()).unwrap();
        assert_eq!(back.seq, 3);
        assert_eq!(back.disk_read, 77);
        assert!(back.temp.is_nan());
        assert_eq!(back.net_rx, NO_COUNTER);
        assert_eq!(back.cpu, row.cpu);
        assert_eq!(Row::from_json(b"[1,2]"), None);
        // The 15-value form written before the device-set fingerprints still loads.
        let old = Row::from_json(
            b"[100000,3,7,45.23,null,null,null,null,null,null,null,77,77,null,null]",
        )
        .unwrap();
        assert_eq!(
            (old.seq, old.boot, old.disk_read, old.disk_set),
            (3, 7, 77, 0)
        );
        assert_eq!(std::mem::size_of::<Row>(), 96);
    }
}
