//! The engine with an injected clock: no sleeps.

use broker::{JobEnd, Snapshot, Thermal};

use super::config::{AlertSettings, Severity, UserRule};
use super::engine::{Engine, Notice, Phase};
use super::rules::RuleSet;

const MAX_AGE: i64 = 45_000;
const REPEAT: i64 = 4 * 3600 * 1000;

fn engine_with(settings: &AlertSettings, now: i64) -> Engine {
    Engine::new(
        RuleSet::from_settings(settings),
        MAX_AGE,
        REPEAT,
        Default::default(),
        now,
    )
}

fn temp(v: f64) -> Snapshot {
    Snapshot {
        host: "tower".into(),
        boot_id: Some("b1".into()),
        thermal: Thermal {
            cpu_temp_c: Some(v),
            ..Thermal::default()
        },
        ..Snapshot::default()
    }
}

fn brief(ns: &[Notice]) -> Vec<(String, String, Severity)> {
    ns.iter()
        .map(|n| (n.rule.clone(), n.status.clone(), n.severity))
        .collect()
}

fn t(rule: &str, status: &str, s: Severity) -> (String, String, Severity) {
    (rule.into(), status.into(), s)
}

fn hosts(last: i64) -> Vec<(String, Option<i64>)> {
    vec![("tower".into(), Some(last))]
}

#[test]
fn pending_fires_after_for_and_resolves_below_clear_once() {
    let mut e = engine_with(&AlertSettings::default(), 0);
    assert!(e.sample(&temp(72.0), None, 1_000).is_empty(), "pending");
    assert_eq!(e.alerts().next().unwrap().phase, Phase::Pending);
    assert!(e.sample(&temp(72.0), None, 60_999).is_empty());
    assert_eq!(
        brief(&e.sample(&temp(72.0), None, 61_000)),
        [t("cpu_temp", "firing", Severity::Warning)]
    );
    assert!(e.sample(&temp(73.0), None, 62_000).is_empty(), "told once");
    assert_eq!(
        brief(&e.sample(&temp(86.0), None, 63_000)),
        [t("cpu_temp", "firing", Severity::Critical)],
        "escalation is told"
    );
    // Inside the band (65..70): nothing, however it flaps.
    for (i, v) in [69.0, 66.0, 69.9, 65.5].into_iter().enumerate() {
        assert!(e.sample(&temp(v), None, 64_000 + i as i64).is_empty());
    }
    assert_eq!(
        brief(&e.sample(&temp(64.0), None, 70_000)),
        [t("cpu_temp", "resolved", Severity::Critical)]
    );
    assert!(e.sample(&temp(60.0), None, 71_000).is_empty());
    assert_eq!(e.alerts().count(), 0);
    assert_eq!(e.recent().len(), 3);
}

#[test]
fn no_resolved_without_firing() {
    let mut e = engine_with(&AlertSettings::default(), 0);
    assert!(e.sample(&temp(75.0), None, 0).is_empty());
    assert!(e.sample(&temp(50.0), None, 30_000).is_empty());
    assert_eq!(e.alerts().count(), 0);
    assert!(e.recent().is_empty());
}

#[test]
fn host_down_fires_once_after_max_age_and_resolves_on_the_next_sample() {
    let mut e = engine_with(&AlertSettings::default(), 0);
    e.sample(&temp(40.0), None, 1_000);
    assert!(e.tick(&hosts(1_000), 46_000).is_empty(), "exactly max_age");
    assert_eq!(
        brief(&e.tick(&hosts(1_000), 46_001)),
        [t("host_down", "firing", Severity::Critical)]
    );
    for now in [47_000, 60_000, 3_600_000] {
        assert!(e.tick(&hosts(1_000), now).is_empty());
    }
    assert_eq!(
        brief(&e.sample(&temp(40.0), None, 3_700_000)),
        [t("host_down", "resolved", Severity::Critical)]
    );
    assert!(e.tick(&hosts(3_700_000), 3_700_500).is_empty());
}

#[test]
fn a_host_not_heard_since_start_up_gets_max_age_before_it_is_down() {
    let mut e = engine_with(&AlertSettings::default(), 100_000);
    let never = vec![("tower".to_string(), None)];
    assert!(e.tick(&never, 145_000).is_empty());
    assert_eq!(e.tick(&never, 145_001).len(), 1);
}

#[test]
fn while_stale_metric_rules_neither_fire_nor_resolve_nor_remind() {
    let mut e = engine_with(&AlertSettings::default(), 0);
    e.sample(&temp(75.0), None, 0);
    // Stale before `for` elapses: the pending alert waits, unknown.
    let fired = e.tick(&hosts(0), 100_000);
    assert_eq!(
        brief(&fired),
        [t("host_down", "firing", Severity::Critical)]
    );
    assert!(e.is_stale("tower"));
    assert!(e.tick(&hosts(0), REPEAT / 2).is_empty());
    let cpu = e.alerts().find(|a| a.rule == "cpu_temp").unwrap();
    assert_eq!(cpu.phase, Phase::Pending);
}

#[test]
fn repeat_interval_reminds_an_alert_still_firing() {
    let mut s = AlertSettings::default();
    s.builtin.cpu_temp.for_ = std::time::Duration::ZERO;
    let mut e = engine_with(&s, 0);
    assert_eq!(e.sample(&temp(75.0), None, 0).len(), 1);
    assert!(e.tick(&hosts(REPEAT - 1), REPEAT - 1).is_empty());
    let again = e.tick(&hosts(REPEAT), REPEAT);
    assert_eq!(again.len(), 1);
    assert!(again[0].repeat);
    assert!(e.tick(&hosts(REPEAT + 1), REPEAT + 1).is_empty());
}

#[test]
fn a_restart_neither_repeats_nor_loses_and_pending_resumes() {
    let mut e = engine_with(&AlertSettings::default(), 0);
    e.sample(&temp(72.0), None, 0);
    let saved = e.saved();
    // Restarted 30 s later: the pending timer started at 0 still fires at 60 s.
    let mut e = Engine::new(
        RuleSet::from_settings(&AlertSettings::default()),
        MAX_AGE,
        REPEAT,
        saved,
        30_000,
    );
    assert!(e.sample(&temp(72.0), None, 59_000).is_empty());
    assert_eq!(e.tick(&hosts(59_000), 60_000).len(), 1);
    let saved = e.saved();
    let mut e = Engine::new(
        RuleSet::from_settings(&AlertSettings::default()),
        MAX_AGE,
        REPEAT,
        saved,
        61_000,
    );
    assert!(e.sample(&temp(72.0), None, 62_000).is_empty(), "not again");
    assert_eq!(e.sample(&temp(60.0), None, 63_000).len(), 1, "resolved");
}

#[test]
fn reboot_and_failed_jobs_are_one_shot_events() {
    let mut e = engine_with(&AlertSettings::default(), 0);
    assert!(
        e.sample(&temp(40.0), None, 0).is_empty(),
        "first boot_id known"
    );
    let mut rebooted = temp(40.0);
    rebooted.boot_id = Some("b2".into());
    assert_eq!(
        brief(&e.sample(&rebooted, None, 1_000)),
        [t("reboot", "firing", Severity::Warning)]
    );
    assert!(e.sample(&rebooted, None, 2_000).is_empty());
    let end = JobEnd {
        run_id: "r1".into(),
        name: "nightly".into(),
        host: "tower".into(),
        end_ts_ms: 3_000,
        exit_code: Some(1),
        ..JobEnd::default()
    };
    let n = e.job_end(&end, 3_000);
    assert_eq!(n[0].message, "tower: job nightly failed (exit code 1)");
    assert!(e.job_end(&end, 3_500).is_empty(), "the same run once");
    let ok = JobEnd {
        run_id: "r2".into(),
        exit_code: Some(0),
        ..end
    };
    assert!(e.job_end(&ok, 4_000).is_empty());
}

#[test]
fn user_rules_fire_with_their_severity_on_their_hosts_only() {
    let mut s = AlertSettings::default();
    s.rule.push(UserRule {
        name: "busy".into(),
        metric: "cpu_temp_c".into(),
        above: Some(-1.0),
        below: None,
        clear: None,
        for_: std::time::Duration::ZERO,
        severity: Severity::Info,
        hosts: vec!["tower".into()],
        label: None,
    });
    let mut e = engine_with(&s, 0);
    assert_eq!(
        brief(&e.sample(&temp(20.0), None, 0)),
        [t("busy", "firing", Severity::Info)]
    );
    let mut other = temp(20.0);
    other.host = "pi".into();
    assert!(e.sample(&other, None, 0).is_empty());
}

#[test]
fn forgotten_hosts_lose_their_alerts_silently() {
    let mut e = engine_with(&AlertSettings::default(), 0);
    e.sample(&temp(75.0), None, 0);
    assert!(e.tick(&[], 1_000).is_empty());
    assert_eq!(e.alerts().count(), 0);
}

fn load(text: &str) -> Result<crate::config::Settings, String> {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("s.toml");
    std::fs::write(&path, text).unwrap();
    crate::config::Settings::load(Some(&path), &Default::default()).map_err(|e| e.to_string())
}

#[test]
fn the_config_shape_of_the_spec_loads_and_mistakes_name_their_key() {
    let s = load(
        r#"
[alerts]
repeat_interval = "4h"
[alerts.builtin]
cpu_temp = { warning = 70.0, critical = 85.0, for = "1m" }
host_down = false
memory_used = { enabled = false, warning = 90.0 }

[[alerts.rule]]
name = "busy"
metric = "cpu_usage_percent"
above = 90.0
clear = 80.0
for = "10m"
severity = "warning"

[[alerts.notify]]
kind = "webhook"
url = "http://127.0.0.1:8080/hook"
min_severity = "info"
"#,
    )
    .unwrap();
    assert!(!s.alerts.builtin.host_down);
    assert_eq!(s.alerts.rule[0].for_, std::time::Duration::from_secs(600));
    let rules = RuleSet::from_settings(&s.alerts);
    let names: Vec<_> = rules.thresholds.iter().map(|r| r.name.as_str()).collect();
    assert_eq!(
        names,
        [
            "cpu_temp",
            "filesystem_used",
            "under_voltage",
            "unit_failed",
            "busy"
        ]
    );

    // ntfy.sh and chat webhooks are https (rustls, the system's roots).
    let https =
        load("[[alerts.notify]]\nkind = \"ntfy\"\nurl = \"https://ntfy.sh/my-topic\"\n").unwrap();
    assert_eq!(
        https.alerts.notify[0].url.as_deref(),
        Some("https://ntfy.sh/my-topic")
    );

    let e = |t: &str| load(t).unwrap_err();
    let unknown = e("[[alerts.rule]]\nname = \"x\"\nmetric = \"cpu_usage\"\nabove = 1.0\n");
    assert!(
        unknown.contains("alerts.rule.metric") && unknown.contains("\"cpu_usage\""),
        "{unknown}"
    );
    assert!(
        e("[[alerts.rule]]\nname = \"x\"\nmetric = \"load_1m\"\n").contains("alerts.rule.above")
    );
    assert!(
        e("[[alerts.rule]]\nname = \"x\"\nmetric = \"load_1m\"\nabove = 2.0\nclear = 3.0\n")
            .contains("alerts.rule.clear")
    );
    assert!(
        e("[[alerts.rule]]\nname = \"host_down\"\nmetric = \"load_1m\"\nabove = 2.0\n")
            .contains("alerts.rule.name")
    );
    let ftp = e("[[alerts.notify]]\nkind = \"ntfy\"\nurl = \"ftp://ntfy.sh/x\"\n");
    assert!(
        ftp.contains("alerts.notify.url") && ftp.contains("not an http:// or https:// URL"),
        "{ftp}"
    );
    assert!(e("[[alerts.notify]]\nkind = \"command\"\n").contains("alerts.notify.command"));
    assert!(e("[[alerts.notify]]\nkind = \"pager\"\nurl = \"http://x\"\n").contains("pager"));
}

mod checkpoint;
mod restart;
mod stopped;
mod units;

/// Issue 19 item 2: a disk that appears in the second sample makes no alert. The rule reads
/// the rate the store computed at ingest (51 200 B/s, from the disk present in both), not a
/// diff of the raw totals (5 × 10^10 B/s once the new disk's counter joins the total).
#[tokio::test]
async fn a_new_disk_fires_no_rate_rule() {
    use broker::{Disk, DiskDevice};
    let mut s = AlertSettings::default();
    s.rule.push(UserRule {
        name: "reads".into(),
        metric: "disk_read_bytes_rate".into(),
        above: Some(1e6),
        below: None,
        clear: None,
        for_: std::time::Duration::ZERO,
        severity: Severity::Warning,
        hosts: vec![],
        label: Some(String::new()),
    });
    let store = crate::store::tests::handle(4);
    let disk = |devices: &[(&str, u64)]| Disk {
        read_sectors: devices.iter().map(|d| d.1).sum(),
        write_sectors: 0,
        devices: devices
            .iter()
            .map(|(n, r)| {
                let d = DiskDevice {
                    read_sectors: *r,
                    write_sectors: 0,
                    ..Default::default()
                };
                (n.to_string(), d)
            })
            .collect(),
    };
    let t0 = 1_700_000_000_000;
    let mut e = engine_with(&s, t0);
    let mut notices = Vec::new();
    for (seq, devices) in [
        (1, vec![("sda", 0)]),
        (2, vec![("sda", 1500), ("sdb", 1_500_000_000)]),
    ] {
        let snap = Snapshot {
            host: "tower".into(),
            seq,
            ts_ms: t0 + 15_000 * seq as i64,
            boot_id: Some("b".into()),
            disk: Some(disk(&devices)),
            ..Snapshot::default()
        };
        let now = snap.ts_ms;
        store.ingest(
            snap,
            crate::store::Source::Mqtt,
            tokio::time::Instant::now(),
            now,
        );
        let latest = store.latest("tower").unwrap().unwrap();
        notices.extend(e.sample(&latest.latest, latest.rates.as_deref(), now));
    }
    let latest = store.latest("tower").unwrap().unwrap();
    assert_eq!(
        latest.rates.unwrap().total("disk_read_bytes_rate"),
        Some(51_200.0)
    );
    assert!(brief(&notices).is_empty(), "{:?}", brief(&notices));
}
