//! `docs/metrics.md`, generated from [`METRICS`](super::METRICS) so that the reference cannot
//! drift from the registry. A column is one line of [`COLUMNS`]: a field added to
//! [`Metric`] shows in the document with one more line there.

use super::{Kind, Metric, METRICS};

/// A column of the document: its heading and how one metric fills it.
type Column = (&'static str, fn(&Metric) -> String);

const COLUMNS: &[Column] = &[
    ("Metric", |m| format!("`{}`", m.name)),
    ("Title", |m| m.title.to_owned()),
    ("Unit", |m| or_dash(m.unit)),
    ("Kind", |m| kind(m.kind)),
    ("Label", |m| or_dash(m.label.map_or("", |l| l.as_str()))),
    ("Prometheus", |m| {
        m.prom.map_or("—".to_owned(), |p| {
            let per = p
                .per_device
                .map_or(String::new(), |l| format!(" per `{l}`"));
            let unit = match p.unit {
                Some(super::PromUnit::Bytes) => "_bytes",
                Some(super::PromUnit::Seconds) => "_seconds",
                Some(super::PromUnit::Celsius) => "_celsius",
                Some(super::PromUnit::Ratio) => "_ratio",
                None => "",
            };
            let total = if m.kind.is_counter() { "_total" } else { "" };
            format!("`server_analytics_{}{unit}{total}`{per}", p.name)
        })
    }),
    ("Home Assistant", |m| {
        m.ha.map_or("—".to_owned(), |h| {
            let class = h.device_class.map_or(String::new(), |c| format!(" `{c}`"));
            let scope = if m.label == Some(super::LabelKey::Mount) {
                "per mount"
            } else {
                "host-wide"
            };
            format!("sensor{class}, {scope}")
        })
    }),
    ("Dashboard", |m| {
        m.chart.map_or("—".to_owned(), |c| {
            let place = match c.place {
                super::ChartPlace::Main => "main grid",
                super::ChartPlace::Devices => "per device",
                super::ChartPlace::Both => "main grid and per device",
            };
            format!("{} ({}), {place}", c.title, c.line)
        })
    }),
];

fn or_dash(text: &str) -> String {
    if text.is_empty() {
        "—".to_owned()
    } else {
        format!("`{text}`")
    }
}

fn kind(kind: Kind) -> String {
    match kind {
        Kind::Gauge => "gauge".into(),
        Kind::Counter(super::Rate::PerSecond) => "counter (served as a rate)".into(),
        Kind::Counter(super::Rate::BusyPercent) => {
            "counter of busy ms (served as % of the interval; total: the busiest)".into()
        }
        Kind::Counter(super::Rate::PerEvent(per)) => {
            format!("counter (served per event of `{per}`; total: sum over sum)")
        }
    }
}

/// A table cell: `|` and line breaks would break the row.
fn cell(text: &str) -> String {
    text.replace('|', "\\|").replace('\n', " ")
}

/// The metric reference, `docs/metrics.md`, one row per registry entry in registry order.
pub fn markdown() -> String {
    let mut doc = String::from(
        "# Metrics\n\
         \n\
         <!-- Generated from METRICS in metric-registry/src/lib.rs; do not edit. Regenerate with\n     \
         UPDATE_DOCS=1 cargo test -p metric-registry metrics_doc -->\n\
         \n\
         Every number the Pi keeps, as its registry declares it: the name is what `/series` and\n\
         alert rules take, and `GET /series/metrics` serves the same table.\n\
         A **gauge** is a value at an instant; a **counter** is stored and served as its\n\
         per-second rate between seq-adjacent samples of one boot (its unit is the rate's). A\n\
         metric with a **label** has one series per device, interface, core, sensor or mount;\n\
         one without is host-wide.\n\
         \n",
    );
    let row = |cells: Vec<String>| format!("| {} |\n", cells.join(" | "));
    doc.push_str(&row(COLUMNS.iter().map(|(h, _)| (*h).to_owned()).collect()));
    doc.push_str(&row(COLUMNS.iter().map(|_| "---".to_owned()).collect()));
    for metric in METRICS {
        doc.push_str(&row(COLUMNS
            .iter()
            .map(|(_, f)| cell(&f(metric)))
            .collect()));
    }
    doc
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;

    /// Where the document lives, from the workspace root.
    const PATH: &str = "docs/metrics.md";

    #[test]
    fn metrics_doc_is_what_the_registry_generates() {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("..").join(PATH);
        let generated = markdown();
        if std::env::var_os("UPDATE_DOCS").is_some() {
            std::fs::write(&path, &generated).unwrap();
        }
        let on_disk = std::fs::read_to_string(&path).unwrap_or_default();
        let first_difference = on_disk
            .lines()
            .zip(generated.lines())
            .position(|(a, b)| a != b)
            .unwrap_or_else(|| on_disk.lines().count().min(generated.lines().count()));
        assert!(
            on_disk == generated,
            "{PATH} differs from what the registry generates (from line {}); regenerate it \
             with `UPDATE_DOCS=1 cargo test -p metric-registry metrics_doc` and commit it",
            first_difference + 1
        );
    }

    #[test]
    fn metrics_doc_has_one_row_per_metric_with_every_column() {
        let doc = markdown();
        let rows: Vec<&str> = doc.lines().filter(|l| l.starts_with("| `")).collect();
        assert_eq!(rows.len(), METRICS.len());
        assert!(
            doc.contains("\n| `disk_read_bytes_rate` | Disk read | `bytes/s` | counter (served as a rate) | `device` | `server_analytics_disk_read_bytes_total` per `device` | sensor `data_rate`, host-wide | Disk (Read), main grid and per device |\n"),
            "{doc}"
        );
        assert!(
            doc.contains("\n| `load_1m` | Load (1 min) | — | gauge | — | `server_analytics_load1` | sensor, host-wide | Load average (1 min), main grid |\n"),
            "{doc}"
        );
        assert_eq!(
            cell("a|b\nc"),
            "a\\|b c",
            "a cell cannot end its row or the table"
        );
    }
}
