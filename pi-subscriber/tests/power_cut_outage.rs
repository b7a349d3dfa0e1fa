//! A power cut on the Pi during an outage of the publisher's HTTP: one failure inside the
//! other, with real parts (the built `publisher` and `pi-subscriber`, a real mosquitto, and a
//! real link cut: a network namespace, a veth pair, iptables) when run as root. The Pi holds
//! samples stored but not committed; the publisher's HTTP is cut; the Pi is killed (SIGKILL)
//! and restarted while HTTP is still cut, so the backfill of the hole its first live sample
//! reveals fails (and is retried, and fails again). Once HTTP is back every seq is on the Pi,
//! none is counted lost, and `/health` says so — also after one more (clean) restart.
#![allow(clippy::unwrap_used, clippy::expect_used)]

#[path = "../../publisher/tests/common/mod.rs"]
mod common;
mod support;

use std::collections::BTreeSet;
use std::path::Path;
use std::time::{Duration, Instant};

use common::Client;
use support::netns::{publisher_range, seqs, Guard, Netns, Outage};
use support::{history_db, seqs_on_disk};

/// The Pi inside the namespace (subscribed to the broker there, polling the publisher here),
/// committing its history every `commit`.
fn start_pi(net: &Netns, data: &Path, endpoint: &str, commit: &str) -> (Guard, Client) {
    net.pi_there_with_env(
        data,
        endpoint,
        &["--max-age", "3"],
        // Without the Pi's own host: first stored in the second run, it would be committed
        // at once (a new host is) and take the publisher's samples with it before the cut.
        &[
            ("PI_SUBSCRIBER_HISTORY__COMMIT_INTERVAL", commit),
            ("PI_SUBSCRIBER_SELF__ENABLED", "false"),
        ],
    )
}

fn count(h: &serde_json::Value, group: &str, name: &str) -> u64 {
    h[group][name].as_u64().unwrap_or(0)
}

/// The seqs a Pi's history holds for the publisher's host.
fn history(s: &Client) -> BTreeSet<u64> {
    seqs(&s.json("/history?host=testhost"))
}

/// The holes the database file in `data` holds (committed): `(after_seq, before_seq, tries)`.
fn holes_on_disk(data: &Path) -> Vec<(u64, u64, u32)> {
    let db = rusqlite::Connection::open(history_db(data)).unwrap();
    let mut stmt = db
        .prepare("SELECT after_seq, before_seq, tries FROM holes ORDER BY after_seq")
        .unwrap();
    let rows = stmt
        .query_map([], |r| {
            Ok((
                r.get::<_, i64>(0)?,
                r.get::<_, i64>(1)?,
                r.get::<_, i64>(2)?,
            ))
        })
        .unwrap();
    rows.map(|r| {
        let (a, b, t) = r.unwrap();
        (a as u64, b as u64, t as u32)
    })
    .collect()
}

/// The log lines the Pi wrote since the last call.
fn log_lines(s: &Client) -> Vec<String> {
    s.log.try_iter().collect()
}

#[test]
fn a_power_cut_while_the_publishers_http_is_cut_loses_nothing_once_it_is_back() {
    let Some(o) = Outage::start_or_skip() else {
        return;
    };
    let (net, p, http_port, endpoint, sdir) =
        (&o.net, &o.publisher, o.http_port, &o.endpoint, &o.pi_dir);
    p.wait_for("/health", |h| h["mqtt"]["connected"] == true);

    // A first run that commits every second and stops cleanly: the host is known on disk.
    let (mut pi, s) = start_pi(net, sdir.path(), endpoint, "1s");
    s.wait_for("/health", |h| count(h, "ingest", "stored_mqtt_total") >= 5);
    common::send_signal(&pi.0, "TERM");
    assert!(pi.0.wait().unwrap().success());
    let committed = seqs_on_disk(sdir.path());
    assert!(committed.len() >= 5, "{committed:?}");

    // The default cadence: samples are stored (and served) but not committed. Then the
    // publisher's HTTP is cut (MQTT still flows), and the power goes.
    let (pi, s) = start_pi(net, sdir.path(), endpoint, "5m");
    s.wait_for("/health", |h| count(h, "ingest", "stored_mqtt_total") >= 15);
    net.cut_port(http_port);
    let before = count(&s.json("/health"), "ingest", "stored_mqtt_total");
    s.wait_for("/health", |h| {
        count(h, "ingest", "stored_mqtt_total") >= before + 3
    });
    let served = history(&s);
    drop(pi); // SIGKILL
    let survived = seqs_on_disk(sdir.path());
    let gone: BTreeSet<u64> = served.difference(&survived).copied().collect();
    assert!(gone.len() >= 10, "the cut lost nothing: {gone:?}");
    assert!(survived.is_superset(&committed));

    // Back on, HTTP still cut: the first live sample reveals the hole, its backfill fails,
    // is retried, and fails again. The hole stays open; nothing is said to be lost.
    let (mut pi, s) = start_pi(net, sdir.path(), endpoint, "1s");
    let open = s.wait_for_within("/health", Duration::from_secs(40), |h| {
        count(h, "ingest", "stored_mqtt_total") >= 1
            && count(h, "history", "holes_open") >= 1
            && count(h, "history", "holes_retried_total") >= 2
    });
    assert_eq!(open["history"]["samples_lost_total"], 0, "{open}");
    assert_eq!(open["history"]["holes_filled_total"], 0, "{open}");
    assert_eq!(open["ingest"]["stored_backfill_total"], 0, "{open}");
    let log = log_lines(&s);
    assert!(
        log.iter()
            .any(|l| l.contains("no publisher could backfill the hole (yet)")),
        "no failed backfill in the log: {log:#?}"
    );
    // Said once, not at every retry (a Pi whose server stays away for days would otherwise
    // write several lines per hole every 30 s).
    let warned = log
        .iter()
        .filter(|l| l.contains("WARN") && l.contains("no publisher could backfill"))
        .count();
    assert_eq!(
        warned, 1,
        "one warning for the host, not one per retry: {log:#?}"
    );
    // Still missing (the newest of them may have come again live: MQTT's retained message).
    let missing_now: BTreeSet<u64> = gone.difference(&history(&s)).copied().collect();
    assert!(
        missing_now.len() >= 10,
        "missing before the backfill: {missing_now:?}"
    );
    // The hole is committed (every second here) with its failed tries: another power cut now
    // would not forget it. It starts at the newest seq that survived the first cut.
    let deadline = Instant::now() + Duration::from_secs(10);
    let saved = loop {
        let saved = holes_on_disk(sdir.path());
        if saved.iter().any(|h| h.2 >= 2) || Instant::now() > deadline {
            break saved;
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    let newest_survived = *survived.last().unwrap();
    assert!(
        saved
            .iter()
            .any(|&(after, before, tries)| after == newest_survived
                && before > *missing_now.last().unwrap()
                && tries >= 2),
        "the hole after seq {newest_survived}, tried twice, is not on disk: {saved:?}"
    );

    // HTTP back: the hole fills, nothing is said to be lost.
    net.heal();
    let health = s.wait_for_within("/health", Duration::from_secs(60), |h| {
        count(h, "history", "holes_open") == 0
            && count(h, "history", "holes_filled_total") >= 1
            && count(h, "ingest", "stored_backfill_total") >= missing_now.len() as u64
    });
    assert_eq!(health["history"]["samples_lost_total"], 0, "{health}");
    // Every sample the publisher took between the Pi's first and newest is on the Pi.
    let have = history(&s);
    let (want, missing) = publisher_range(p, &have);
    assert!(missing.is_empty(), "missing on the Pi: {missing:?}");
    let lost: Vec<_> = served.difference(&have).collect();
    assert!(lost.is_empty(), "served before the cut, gone: {lost:?}");

    // What the database says after one more restart (clean this time) is as true: no open
    // hole left behind, nothing lost.
    common::send_signal(&pi.0, "TERM");
    assert!(pi.0.wait().unwrap().success());
    let on_disk = seqs_on_disk(sdir.path());
    let unsaved: Vec<_> = want.difference(&on_disk).collect();
    assert!(
        unsaved.is_empty(),
        "not committed at a clean stop: {unsaved:?}"
    );
    let db = rusqlite::Connection::open(history_db(sdir.path())).unwrap();
    for table in ["holes", "lost"] {
        let rows: i64 = db
            .query_row(&format!("SELECT COUNT(*) FROM {table}"), [], |r| r.get(0))
            .unwrap();
        assert_eq!(rows, 0, "rows left in `{table}`");
    }
    drop(db);
    let (pi, s) = start_pi(net, sdir.path(), endpoint, "1s");
    let health = s.wait_for_within("/health", Duration::from_secs(40), |h| {
        count(h, "ingest", "stored_mqtt_total") >= 3 && count(h, "history", "holes_open") == 0
    });
    assert_eq!(health["history"]["samples_lost_total"], 0, "{health}");
    drop(pi);
}
