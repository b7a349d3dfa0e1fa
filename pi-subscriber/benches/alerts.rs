//! What rule evaluation costs per stored sample: the alert engine with the built-in rules and
//! ten user rules (two on counter rates, per interface/device), over realistic tower-sized
//! snapshots of 10 hosts, plus the once-a-second tick.
//!
//! Run: `cargo bench -p pi-subscriber --bench alerts`
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::{Duration, Instant};

mod common;

use pi_subscriber::alerts::config::{AlertSettings, Severity, UserRule};
use pi_subscriber::alerts::engine::Engine;
use pi_subscriber::alerts::rules::RuleSet;

fn rule(name: &str, metric: &str, above: f64) -> UserRule {
    UserRule {
        name: name.into(),
        metric: metric.into(),
        above: Some(above),
        below: None,
        clear: None,
        for_: Duration::from_secs(60),
        severity: Severity::Warning,
        hosts: Vec::new(),
        label: None,
    }
}

fn main() {
    let mut settings = AlertSettings::default();
    for (i, (m, t)) in [
        ("cpu_usage_percent", 90.0),
        ("load_1m", 8.0),
        ("load_5m", 6.0),
        ("swap_used_mb", 1024.0),
        ("memory_available_mb", 1e12),
        ("cpu_core_usage_percent", 99.0),
        ("sensor_temp_c", 90.0),
        ("uptime_s", 1e12),
        ("network_rx_bytes_rate", 1e8),
        ("disk_write_bytes_rate", 1e8),
    ]
    .into_iter()
    .enumerate()
    {
        settings.rule.push(rule(&format!("r{i}"), m, t));
    }
    let rules = RuleSet::from_settings(&settings);
    let n_rules = rules.thresholds.len();
    let mut engine = Engine::new(rules, 45_000, 4 * 3600 * 1000, Default::default(), 0);
    let hosts = 10u64;
    let n: u64 = 100_000;
    let samples: Vec<_> = (1..=n / hosts + 1)
        .flat_map(|seq| {
            (0..hosts)
                .map(move |h| common::snapshot(&format!("host{h}"), seq, n, 1_900_000_000_000))
        })
        .collect();
    // The rates come with the sample, as the store computes them at ingest.
    let rates: Vec<_> = (0..samples.len())
        .map(|i| {
            i.checked_sub(hosts as usize)
                .and_then(|p| pi_subscriber::rates::between(&samples[p], &samples[i]))
        })
        .collect();
    let mut notices = 0usize;
    let start = Instant::now();
    for (s, r) in samples.iter().zip(&rates) {
        notices += engine.sample(s, r.as_ref(), s.ts_ms).len();
    }
    let per_sample = start.elapsed() / samples.len() as u32;
    let known: Vec<_> = (0..hosts)
        .map(|h| (format!("host{h}"), Some(1_900_000_000_000)))
        .collect();
    let ticks = 10_000u32;
    let start = Instant::now();
    for t in 0..ticks {
        notices += engine.tick(&known, 1_900_000_000_000 + i64::from(t)).len();
    }
    let per_tick = start.elapsed() / ticks;
    println!(
        "alerts: {n_rules} threshold rules (+host_down, job_failed, reboot), {hosts} hosts: {per_sample:?} per sample, {per_tick:?} per tick ({notices} notices)"
    );
}
