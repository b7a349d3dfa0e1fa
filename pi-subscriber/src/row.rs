//! One sample of a host in the history: the compact [`Row`] kept in memory and on disk, and
//! the flat [`HistoryRow`] served by `/history`, with rates derived from the seq-adjacent row.

use broker::Snapshot;
use serde::Serialize;

use crate::rates::{self, Point};

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

    pub fn point(&self) -> Point {
        Point {
            seq: self.seq,
            ts_ms: self.ts_ms,
            boot: self.boot,
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

/// A flat history row for `/history` (Grafana Infinity / JSON API): every key always present,
/// `null` where there is no value, time in epoch milliseconds.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct HistoryRow {
    pub time: i64,
    pub host: String,
    pub seq: u64,
    pub cpu_usage_percent: Option<f64>,
    pub load_1m: Option<f64>,
    pub load_5m: Option<f64>,
    pub load_15m: Option<f64>,
    pub memory_available_mb: Option<f64>,
    pub memory_total_mb: Option<f64>,
    pub memory_used_percent: Option<f64>,
    pub swap_used_mb: Option<f64>,
    pub cpu_temp_c: Option<f64>,
    pub disk_read_sectors_rate: Option<f64>,
    pub disk_write_sectors_rate: Option<f64>,
    pub disk_read_bytes_rate: Option<f64>,
    pub disk_write_bytes_rate: Option<f64>,
    pub network_rx_bytes_rate: Option<f64>,
    pub network_tx_bytes_rate: Option<f64>,
}

/// `f32` back to a tidy `f64` (45.23f32 reads 45.2299995… otherwise).
fn tidy(x: f32, decimals: i32) -> Option<f64> {
    if x.is_nan() {
        return None;
    }
    let scale = 10f64.powi(decimals);
    Some((f64::from(x) * scale).round() / scale)
}

fn round3(x: f64) -> f64 {
    (x * 1000.0).round() / 1000.0
}

impl HistoryRow {
    pub(crate) fn of(host: &str, row: &Row, previous: Option<&Row>) -> HistoryRow {
        let pair = |a: u64, b: u64| (a != NO_COUNTER && b != NO_COUNTER).then_some((a, b));
        // A total is only comparable with one summed over the same devices (0: not known).
        let same_set = |a: u32, b: u32| a == 0 || b == 0 || a == b;
        let dt = previous.and_then(|p| rates::elapsed_s(&p.point(), &row.point()));
        let (disk, net) = match (previous, dt) {
            (Some(p), Some(dt)) => {
                let disk = match (
                    pair(p.disk_read, row.disk_read),
                    pair(p.disk_write, row.disk_write),
                ) {
                    (Some(r), Some(w)) if same_set(p.disk_set, row.disk_set) => {
                        rates::disk_rates(r, w, dt)
                    }
                    _ => rates::DiskRates::default(),
                };
                let net = match (pair(p.net_rx, row.net_rx), pair(p.net_tx, row.net_tx)) {
                    (Some(r), Some(t)) if same_set(p.net_set, row.net_set) => {
                        rates::net_rates(r, t, dt)
                    }
                    _ => rates::NetRates::default(),
                };
                (disk, net)
            }
            _ => Default::default(),
        };
        let used = (!row.mem_total.is_nan() && !row.mem_available.is_nan() && row.mem_total > 0.0)
            .then(|| {
                round3(
                    100.0 * f64::from(row.mem_total - row.mem_available) / f64::from(row.mem_total),
                )
            });
        HistoryRow {
            time: row.ts_ms,
            host: host.to_owned(),
            seq: row.seq,
            cpu_usage_percent: tidy(row.cpu, 2),
            load_1m: tidy(row.load1, 2),
            load_5m: tidy(row.load5, 2),
            load_15m: tidy(row.load15, 2),
            memory_available_mb: tidy(row.mem_available, 0),
            memory_total_mb: tidy(row.mem_total, 0),
            memory_used_percent: used,
            swap_used_mb: tidy(row.swap_used, 0),
            cpu_temp_c: tidy(row.temp, 3),
            disk_read_sectors_rate: disk.read_sectors_rate.map(round3),
            disk_write_sectors_rate: disk.write_sectors_rate.map(round3),
            disk_read_bytes_rate: disk.read_bytes_rate.map(round3),
            disk_write_bytes_rate: disk.write_bytes_rate.map(round3),
            network_rx_bytes_rate: net.rx_bytes_rate.map(round3),
            network_tx_bytes_rate: net.tx_bytes_rate.map(round3),
        }
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
