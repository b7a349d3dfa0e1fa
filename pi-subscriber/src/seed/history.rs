//! `/history`'s rows: the raw tier's flat rows ([`FlatRow`]) with the seed's field names, in
//! the seed's order, rounded as the seed rounded them; and the seed's names that are not
//! registry metrics (`disk_*_sectors_rate`), which Grafana's targets also take.

use serde::ser::{SerializeMap, SerializeSeq};
use serde::{Serialize, Serializer};

use broker::SECTOR_BYTES;

use crate::registry::{self, Metric};
use crate::tsdb::FlatRow;

/// One `/history` field after `time`, `host` and `seq`: the registry metric it shows (its
/// host-wide total), the factor from the registry's unit to the field's and that unit (`""`:
/// the registry's), and the decimals it is rounded to (values come back from `f32` storage:
/// 45.23 reads 45.2299995…).
pub struct Column {
    pub field: &'static str,
    pub metric: &'static str,
    pub factor: f64,
    pub unit: &'static str,
    pub decimals: i32,
}

const fn column(field: &'static str, decimals: i32) -> Column {
    Column {
        field,
        metric: field,
        factor: 1.0,
        unit: "",
        decimals,
    }
}

/// A field in sectors/s of a registry metric in bytes/s.
const fn sectors(field: &'static str, metric: &'static str) -> Column {
    Column {
        field,
        metric,
        factor: 1.0 / SECTOR_BYTES as f64,
        unit: "sectors/s",
        decimals: 3,
    }
}

/// The seed's `/history` fields, in order.
pub const COLUMNS: [Column; 15] = [
    column("cpu_usage_percent", 2),
    column("load_1m", 2),
    column("load_5m", 2),
    column("load_15m", 2),
    column("memory_available_mb", 0),
    column("memory_total_mb", 0),
    column("memory_used_percent", 3),
    column("swap_used_mb", 0),
    column("cpu_temp_c", 3),
    sectors("disk_read_sectors_rate", "disk_read_bytes_rate"),
    sectors("disk_write_sectors_rate", "disk_write_bytes_rate"),
    column("disk_read_bytes_rate", 3),
    column("disk_write_bytes_rate", 3),
    column("network_rx_bytes_rate", 3),
    column("network_tx_bytes_rate", 3),
];

/// A seed name that is not a registry metric: the metric it shows and the factor to its
/// unit (`disk_read_sectors_rate`: `disk_read_bytes_rate` ÷ 512).
pub fn alias(name: &str) -> Option<(&'static Metric, f64)> {
    let c = COLUMNS
        .iter()
        .find(|c| c.field == name && c.field != c.metric)?;
    Some((registry::metric(c.metric)?, c.factor))
}

/// The seed's names that are not registry metrics, with a title for a metric list.
pub fn aliases() -> impl Iterator<Item = (&'static str, String)> {
    COLUMNS
        .iter()
        .filter(|c| c.field != c.metric)
        .filter_map(|c| {
            let m = registry::metric(c.metric)?;
            Some((c.field, format!("{} ({})", m.title, c.unit)))
        })
}

fn round(x: f64, decimals: i32) -> f64 {
    let scale = 10f64.powi(decimals);
    (x * scale).round() / scale
}

/// The value of `field` in `row`, as `/history` serves it.
pub fn value(row: &FlatRow, field: &str) -> Option<f64> {
    let c = COLUMNS.iter().find(|c| c.field == field)?;
    row.values
        .get(c.metric)
        .map(|v| round(*v * c.factor, c.decimals))
}

/// A host's rows as `/history` serves them: an array of objects, every key always present,
/// `null` where there is no value, time in epoch milliseconds.
pub struct Rows {
    pub host: String,
    pub rows: Vec<FlatRow>,
}

struct Row<'a>(&'a str, &'a FlatRow);

impl Serialize for Rows {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut seq = serializer.serialize_seq(Some(self.rows.len()))?;
        for row in &self.rows {
            seq.serialize_element(&Row(&self.host, row))?;
        }
        seq.end()
    }
}

impl Serialize for Row<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let Row(host, row) = *self;
        let mut map = serializer.serialize_map(Some(3 + COLUMNS.len()))?;
        map.serialize_entry("time", &row.ts_ms)?;
        map.serialize_entry("host", host)?;
        map.serialize_entry("seq", &row.seq)?;
        for c in &COLUMNS {
            map.serialize_entry(c.field, &value(row, c.field))?;
        }
        map.end()
    }
}
