//! The provisioned Grafana dashboard's PromQL twin (`configs/grafana/dashboards/
//! server-analytics-promql.json`), generated from the registry: one panel per main-grid chart,
//! one query per line, for a user who points Grafana at the store remote write feeds
//! (Prometheus, VictoriaMetrics, Mimir). A gauge is its family (turned back into the chart's
//! unit); a counter's rate is `rate()` of its family, summed over devices as the Pi sums them
//! (the busiest device for a busy %, a sum over a sum per event). A line without a family is
//! derived from families in [`DERIVED`].

use serde_json::{json, Value};

use super::{Kind, Metric, Rate, Scale, METRICS};

/// Lines with no family of their own, as PromQL over families that exist.
const DERIVED: [(&str, &str); 1] = [(
    "memory_used_percent",
    "100 * (1 - server_analytics_memory_available_bytes{host=\"$host\"} / server_analytics_memory_total_bytes{host=\"$host\"})",
)];

/// From a family's base unit back into the registry's.
fn back(scale: Scale) -> String {
    match scale {
        Scale::Same => String::new(),
        Scale::Per(k) => format!(" * {k}"),
        Scale::Times(k) => format!(" / {k}"),
    }
}

/// The PromQL of one line (`$host` and `$__rate_interval` left to Grafana).
pub fn expr(m: &Metric) -> Option<String> {
    if let Some((_, e)) = DERIVED.iter().find(|(n, _)| *n == m.name) {
        return Some((*e).to_owned());
    }
    let p = m.prom?;
    let name = m.series_name()?;
    let sel = format!("{name}{{host=\"$host\"}}");
    Some(match m.kind {
        Kind::Gauge => format!("{sel}{}", back(p.scale)),
        Kind::Counter(Rate::PerSecond) => {
            format!(
                "sum by (host) (rate({sel}[$__rate_interval])){}",
                back(p.scale)
            )
        }
        Kind::Counter(Rate::BusyPercent) => {
            format!("100 * max by (host) (rate({sel}[$__rate_interval]))")
        }
        Kind::Counter(Rate::PerEvent(per)) => {
            let d = super::metric(per)?.series_name()?;
            format!(
                "1000 * sum by (host) (rate({sel}[$__rate_interval])) / sum by (host) (rate({d}{{host=\"$host\"}}[$__rate_interval]))"
            )
        }
    })
}

/// Grafana's unit for a registry unit.
fn grafana_unit(unit: &str) -> &'static str {
    match unit {
        "%" => "percent",
        "bytes/s" => "Bps",
        "°C" => "celsius",
        "ms" => "ms",
        "s" => "s",
        "bytes" => "bytes",
        _ => "none",
    }
}

/// The dashboard, as the shipped file holds it.
pub fn dashboard() -> Value {
    let ds = json!({"type": "prometheus", "uid": "${datasource}"});
    let mut panels = Vec::new();
    let mut seen: Vec<&str> = Vec::new();
    for m in METRICS.iter() {
        let Some(c) = m.chart else { continue };
        if seen.contains(&c.id)
            || !matches!(c.place, super::ChartPlace::Main | super::ChartPlace::Both)
        {
            continue;
        }
        seen.push(c.id);
        let lines: Vec<&Metric> = METRICS
            .iter()
            .filter(|l| l.chart.is_some_and(|lc| lc.id == c.id))
            .collect();
        let targets: Vec<Value> = lines
            .iter()
            .enumerate()
            .filter_map(|(i, l)| {
                Some(json!({
                    "refId": ((b'A' + i as u8) as char).to_string(),
                    "datasource": ds,
                    "expr": expr(l)?,
                    "legendFormat": l.chart?.line,
                }))
            })
            .collect();
        let n = panels.len();
        let mut defaults = json!({"unit": grafana_unit(m.unit), "custom": {"spanNulls": false, "lineWidth": 1, "fillOpacity": 10}});
        if matches!(c.range, super::ChartRange::Percent) {
            defaults["min"] = json!(0);
            defaults["max"] = json!(100);
        }
        panels.push(json!({
            "id": n + 1,
            "type": "timeseries",
            "title": c.title,
            "datasource": ds,
            "gridPos": {"x": (n % 2) * 12, "y": (n / 2) * 8, "w": 12, "h": 8},
            "targets": targets,
            "fieldConfig": {"defaults": defaults, "overrides": []},
            "options": {"legend": {"displayMode": "list", "placement": "bottom"}, "tooltip": {"mode": "multi"}},
        }));
    }
    json!({
        "uid": "server-analytics-promql",
        "title": "Server Analytics (Prometheus)",
        "tags": ["server-analytics"],
        "timezone": "browser",
        "schemaVersion": 39,
        "version": 1,
        "editable": true,
        "refresh": "30s",
        "time": {"from": "now-6h", "to": "now"},
        "templating": {"list": [
            {"name": "datasource", "label": "Data source", "type": "datasource", "query": "prometheus",
             "current": {}, "hide": 0},
            {"name": "host", "label": "Host", "type": "query", "datasource": ds,
             "query": {"query": "label_values({job=\"server-analytics\"}, host)", "refId": "hosts"},
             "definition": "label_values({job=\"server-analytics\"}, host)",
             "refresh": 2, "includeAll": false, "multi": false, "current": {}, "options": []}
        ]},
        "annotations": {"list": []},
        "panels": panels,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;

    const PATH: &str = "configs/grafana/dashboards/server-analytics-promql.json";

    #[test]
    fn the_shipped_promql_dashboard_is_what_the_registry_generates() {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("..").join(PATH);
        let generated = format!("{:#}\n", dashboard());
        if std::env::var_os("UPDATE_DOCS").is_some() {
            std::fs::write(&path, &generated).unwrap();
        }
        let on_disk = std::fs::read_to_string(&path).unwrap_or_default();
        assert!(
            on_disk == generated,
            "{PATH} is stale: regenerate it with `UPDATE_DOCS=1 cargo test -p metric-registry` and commit it"
        );
    }

    #[test]
    fn every_main_grid_line_has_a_query() {
        for m in METRICS {
            if m.chart.is_some_and(|c| {
                matches!(
                    c.place,
                    super::super::ChartPlace::Main | super::super::ChartPlace::Both
                )
            }) {
                assert!(
                    expr(m).is_some(),
                    "{}: no family and no derived PromQL",
                    m.name
                );
            }
        }
        assert_eq!(
            expr(super::super::metric("network_rx_bytes_rate").unwrap()).unwrap(),
            "sum by (host) (rate(server_analytics_network_receive_bytes_total{host=\"$host\"}[$__rate_interval]))"
        );
        assert_eq!(
            expr(super::super::metric("cpu_usage_percent").unwrap()).unwrap(),
            "server_analytics_cpu_usage_ratio{host=\"$host\"} * 100"
        );
    }
}
