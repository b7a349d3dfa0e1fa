//! Alerts across restarts of the Pi, with the built `publisher` and `pi-subscriber` and a
//! webhook receiver: nothing repeated, nothing lost, nothing made up.
#![allow(clippy::unwrap_used, clippy::expect_used)]

#[path = "support/alerts.rs"]
mod alerts;
#[path = "../../publisher/tests/common/mod.rs"]
mod common;
mod support;

use std::time::Duration;

use alerts::{config, subscriber, webhook, Hook, BUSY};
use common::{free_port, Publisher};
use serde_json::Value;

#[test]
fn a_pi_restarted_while_the_server_is_down_tells_no_lie() {
    let hook = Hook::start();
    let (pdir, sdir) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let (http, mqtt) = (free_port(), free_port());
    let cfg = config(sdir.path(), &webhook(&hook.url));
    let p = Publisher::on_ports(pdir.path(), "200ms", http, mqtt);
    let s = subscriber(sdir.path(), &cfg, http, mqtt);
    hook.wait("busy", "firing", Duration::from_secs(15));
    drop(p);
    hook.wait("host_down", "firing", Duration::from_secs(8));
    let down = s.json("/alerts");
    s.stop();

    // Restarted while the server is still down: the host is restored from the history and
    // judged from when it was last heard, not fresh from the restart.
    let s = subscriber(sdir.path(), &cfg, http, mqtt);
    let since = |a: &Value| {
        a["alerts"]
            .as_array()
            .and_then(|a| a.iter().find(|a| a["rule"] == "host_down"))
            .map(|a| (a["state"].clone(), a["since_ms"].clone()))
    };
    // Past `max_age` (2 s) twice over.
    std::thread::sleep(Duration::from_secs(5));
    assert_eq!(
        hook.seen(),
        [
            ("busy".to_string(), "firing".to_string()),
            ("host_down".to_string(), "firing".to_string())
        ]
    );
    assert_eq!(since(&s.json("/alerts")), since(&down));
    // `/health` answers 503 while the host is stale.
    let (_, health) = s.get("/health");
    let health: Value = serde_json::from_str(&health).unwrap();
    assert_eq!(health["alerts"]["firing"], 2, "{health}");

    // The server is back: one `back up`, and the user rule (true all along) is not told again.
    let _p = Publisher::on_ports(pdir.path(), "200ms", http, mqtt);
    hook.wait("host_down", "resolved", Duration::from_secs(15));
    s.wait_for("/alerts", |a| {
        a["alerts"]
            .as_array()
            .is_some_and(|a| a.len() == 1 && a[0]["rule"] == "busy" && a[0]["state"] == "firing")
    });
    assert_eq!(
        hook.seen(),
        [
            ("busy".to_string(), "firing".to_string()),
            ("host_down".to_string(), "firing".to_string()),
            ("host_down".to_string(), "resolved".to_string())
        ]
    );
}

#[test]
fn a_restarted_pi_does_not_notify_a_firing_alert_again() {
    let hook = Hook::start();
    let (pdir, sdir) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let (http, mqtt) = (free_port(), free_port());
    let cfg = config(sdir.path(), &webhook(&hook.url));
    let _p = Publisher::on_ports(pdir.path(), "200ms", http, mqtt);
    let s = subscriber(sdir.path(), &cfg, http, mqtt);
    hook.wait("busy", "firing", Duration::from_secs(15));
    s.stop();
    let saved: Value =
        serde_json::from_slice(&std::fs::read(sdir.path().join("alerts.json")).unwrap()).unwrap();
    assert_eq!(saved["alerts"][0]["phase"], "firing");
    let s = subscriber(sdir.path(), &cfg, http, mqtt);
    let before = s.wait_for("/health", |h| {
        h["ingest"]["stored_mqtt_total"].as_u64() >= Some(5)
    });
    assert_eq!(before["alerts"]["firing"], 1);
    std::thread::sleep(Duration::from_secs(1));
    assert_eq!(hook.seen(), [("busy".to_string(), "firing".to_string())]);
}

#[test]
fn a_pending_alert_survives_a_restart_of_the_pi_and_fires_on_time() {
    let hook = Hook::start();
    let (pdir, sdir) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let (http, mqtt) = (free_port(), free_port());
    let path = sdir.path().join("pi.toml");
    let slow = BUSY.replace("for = \"0s\"", "for = \"6s\"");
    std::fs::write(&path, format!("[alerts]\n{slow}\n{}", webhook(&hook.url))).unwrap();
    let _p = Publisher::on_ports(pdir.path(), "200ms", http, mqtt);
    let s = subscriber(sdir.path(), &path, http, mqtt);
    let pending = s.wait_for("/alerts", |a| a["alerts"][0]["state"] == "pending");
    let since = pending["alerts"][0]["pending_since_ms"].as_i64().unwrap();
    // Half of `for` passes before the restart: a timer that started over would fire ~9 s in.
    std::thread::sleep(Duration::from_secs(3));
    s.stop();
    let s = subscriber(sdir.path(), &path, http, mqtt);
    hook.wait("busy", "firing", Duration::from_secs(20));
    let fired = s.json("/alerts")["alerts"][0]["since_ms"].as_i64().unwrap();
    // The timer kept its start across the restart: firing 6 s after the first pending
    // sample (plus a tick and a sample), not 6 s after the restart.
    assert_eq!(
        s.json("/alerts")["alerts"][0]["pending_since_ms"].as_i64(),
        Some(since)
    );
    assert!(
        (since + 6_000..since + 9_000).contains(&fired),
        "fired {} ms after pending began",
        fired - since
    );
    assert_eq!(hook.seen(), [("busy".to_string(), "firing".to_string())]);
}

/// `alerts.json` as written: when it was saved (`clock_ms`) and when the host was last heard.
fn on_disk(dir: &std::path::Path) -> Option<(i64, i64)> {
    let saved: Value =
        serde_json::from_slice(&std::fs::read(dir.join("alerts.json")).ok()?).ok()?;
    Some((
        saved["clock_ms"].as_i64()?,
        saved["heard"]["testhost"].as_i64()?,
    ))
}

#[test]
fn a_live_host_rewrites_alerts_json_once_per_commit_interval() {
    let hook = Hook::start();
    let (pdir, sdir) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let (http, mqtt) = (free_port(), free_port());
    let cfg = config(sdir.path(), &webhook(&hook.url))
        .to_string_lossy()
        .into_owned();
    let _p = Publisher::on_ports(pdir.path(), "200ms", http, mqtt);
    // The history commits every 3 s here (5 min by default): so does `heard`.
    let _s = support::Subscriber::start(
        sdir.path(),
        Some(mqtt),
        &format!("http://127.0.0.1:{http}/latest"),
        &["--max-age", "2", "--config", &cfg],
        &[
            ("PI_SUBSCRIBER_POLL__INTERVAL", "200ms"),
            ("PI_SUBSCRIBER_HISTORY__COMMIT_INTERVAL", "3s"),
        ],
    );
    hook.wait("busy", "firing", Duration::from_secs(15));
    // Every version of the file over 10 s, read every 50 ms (each save has its own clock).
    let mut seen: Vec<(i64, i64)> = Vec::new();
    let until = std::time::Instant::now() + Duration::from_secs(10);
    while std::time::Instant::now() < until {
        if let Some(v) = on_disk(sdir.path()) {
            if seen.last().is_none_or(|l| l.0 != v.0) {
                seen.push(v);
            }
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    // The host sends 5 samples a second and nothing changes: `heard` moves on the disk with
    // the commit interval (the old checkpoint was a minute), and no more often than that.
    assert!((2..=5).contains(&seen.len()), "{seen:?}");
    for w in seen.windows(2) {
        assert!(
            w[1].0 - w[0].0 >= 2_900,
            "saved {} ms apart: {seen:?}",
            w[1].0 - w[0].0
        );
        assert!(w[1].1 > w[0].1, "heard moved: {seen:?}");
    }
    assert_eq!(hook.seen(), [("busy".to_string(), "firing".to_string())]);
}

/// The alert tests' Pi with the default `commit_interval` (the tests' default is 1 s).
fn committing_every_5_min(
    data: &std::path::Path,
    cfg: &std::path::Path,
    http: u16,
    mqtt: u16,
) -> support::Subscriber {
    support::Subscriber::start(
        data,
        Some(mqtt),
        &format!("http://127.0.0.1:{http}/latest"),
        &["--max-age", "2", "--config", &cfg.to_string_lossy()],
        &[
            ("PI_SUBSCRIBER_POLL__INTERVAL", "200ms"),
            ("PI_SUBSCRIBER_MQTT__KEEP_ALIVE", "5s"),
            ("PI_SUBSCRIBER_HISTORY__COMMIT_INTERVAL", "5m"),
        ],
    )
}

/// A power cut on the Pi between two saves of "last heard" (every `commit_interval`, 5 min
/// here), just after its server went silent: on disk the host was last heard well before it
/// really was. Restarted while the server is still down, the Pi must not bring `host_down`
/// forward (it fires once, no sooner than `max_age` after the server really went), must not
/// tell the firing user rule again, and resolves `host_down` once when the server is back.
#[test]
fn a_pi_cut_between_heard_checkpoints_while_its_server_goes_down_brings_nothing_forward() {
    cut_as_the_server_goes(true);
}

/// The same cut, on a Pi that first heard the server seconds before, under the 5-min commit:
/// it must still know the server after the restart and say that it is down (it said nothing
/// before the history committed a new host at once).
#[test]
fn a_pi_cut_before_it_committed_a_new_server_still_says_the_server_is_down() {
    cut_as_the_server_goes(false);
}

fn cut_as_the_server_goes(known_before: bool) {
    let hook = Hook::start();
    let (pdir, sdir) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let (http, mqtt) = (free_port(), free_port());
    let cfg = config(sdir.path(), &webhook(&hook.url));
    let p = Publisher::on_ports(pdir.path(), "200ms", http, mqtt);
    if known_before {
        // A Pi that has known the host for a while: its history holds it (committed every
        // 1 s here, then stopped cleanly).
        let s = subscriber(sdir.path(), &cfg, http, mqtt);
        hook.wait("busy", "firing", Duration::from_secs(15));
        s.wait_for("/health", |h| {
            h["history"]["commits_total"].as_u64() >= Some(2)
        });
        s.stop();
        assert!(!support::seqs_on_disk(sdir.path()).is_empty());
    }
    // With the default cadence; the host stays live for 6 s: on disk, "last heard" stays
    // where the clean stop (or the busy alert's save) left it.
    let s = committing_every_5_min(sdir.path(), &cfg, http, mqtt);
    if !known_before {
        hook.wait("busy", "firing", Duration::from_secs(15));
    }
    std::thread::sleep(Duration::from_secs(6));
    let stale = on_disk(sdir.path()).expect("alerts.json").1;
    drop(p);
    let gone = std::time::Instant::now();
    let now_ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64;
    assert!(
        now_ms - stale >= 5_000,
        "heard on disk {} ms old",
        now_ms - stale
    );
    s.kill();
    assert_eq!(hook.count("host_down", "firing"), 0, "{:?}", hook.seen());

    let s = committing_every_5_min(sdir.path(), &cfg, http, mqtt);
    hook.wait("host_down", "firing", Duration::from_secs(20));
    // `max_age` is 2 s: judged from the stale save, it would fire as soon as the Pi is up.
    let after = gone.elapsed();
    assert!(
        after >= Duration::from_millis(1_950),
        "host_down fired {after:?} after the host went (max_age 2 s)"
    );
    std::thread::sleep(Duration::from_secs(3));
    assert_eq!(
        hook.seen(),
        [
            ("busy".to_string(), "firing".to_string()),
            ("host_down".to_string(), "firing".to_string())
        ]
    );

    let _p = Publisher::on_ports(pdir.path(), "200ms", http, mqtt);
    hook.wait("host_down", "resolved", Duration::from_secs(15));
    std::thread::sleep(Duration::from_secs(2));
    assert_eq!(
        hook.seen(),
        [
            ("busy".to_string(), "firing".to_string()),
            ("host_down".to_string(), "firing".to_string()),
            ("host_down".to_string(), "resolved".to_string())
        ]
    );
    drop(s);
}
