//! What the Pi's Home Assistant state JSON must hold, computed from its `/metrics` (rounded
//! as the Pi rounds: percentages to 0.01, temperatures to 0.1, rates to 1 B/s).

use std::collections::BTreeMap;

use pi_subscriber::sanitize::mount_key;
use serde_json::Value;

pub fn round(v: &Value, decimals: i32) -> Value {
    let f = 10f64.powi(decimals);
    let r = (v.as_f64().unwrap() * f).round() / f;
    if decimals == 0 {
        Value::from(r as i64)
    } else {
        serde_json::json!(r)
    }
}

/// What the state JSON must hold, from the Pi's `/metrics`.
pub fn expected_state(m: &Value) -> BTreeMap<String, Value> {
    let mut want = BTreeMap::new();
    let mut put = |k: &str, v: &Value, d: i32| {
        if !v.is_null() {
            want.insert(k.to_owned(), round(v, d));
        }
    };
    put("cpu_usage_percent", &m["cpu"]["usage_percent"], 2);
    put("load_1m", &m["cpu"]["load_1m"], 2);
    put("load_5m", &m["cpu"]["load_5m"], 2);
    put("load_15m", &m["cpu"]["load_15m"], 2);
    put("cpu_temp_c", &m["thermal"]["cpu_temp_c"], 1);
    put("disk_read_bytes_rate", &m["disk"]["read_bytes_rate"], 0);
    put("disk_write_bytes_rate", &m["disk"]["write_bytes_rate"], 0);
    put("network_rx_bytes_rate", &m["network"]["rx_bytes_rate"], 0);
    put("network_tx_bytes_rate", &m["network"]["tx_bytes_rate"], 0);
    put(
        "disk_busy_percent",
        &m["rates"]["disk_busy_percent"]["value"],
        1,
    );
    put("disk_await_ms", &m["rates"]["disk_await_ms"]["value"], 2);
    let (avail, total) = (&m["memory"]["available_mb"], &m["memory"]["total_mb"]);
    let used =
        100.0 * (total.as_f64().unwrap() - avail.as_f64().unwrap()) / total.as_f64().unwrap();
    put("memory_used_percent", &serde_json::json!(used), 2);
    for (mount, fs) in m["filesystems"].as_object().into_iter().flatten() {
        if fs.is_null() {
            continue;
        }
        let (u, a) = (
            fs["used_bytes"].as_f64().unwrap(),
            fs["avail_bytes"].as_f64().unwrap(),
        );
        if u + a > 0.0 {
            let key = format!("filesystem_used_percent_{}", mount_key(mount));
            put(&key, &serde_json::json!(100.0 * u / (u + a)), 2);
        }
    }
    want
}
