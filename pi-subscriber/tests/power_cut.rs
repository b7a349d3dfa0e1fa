//! A power cut on the Pi (issue 22): the history is committed every `history.commit_interval`
//! (5 min by default), so a Pi killed between two commits loses the samples since the last
//! one from its disk. Built `publisher` and `pi-subscriber`: the Pi is killed (SIGKILL) with
//! samples stored but not committed, its database is checked to lack them, and after the
//! restart the next live sample shows the gap and the backfill brings every one of them
//! back from the publisher's ring: none missing, none said to be lost.
#![allow(clippy::unwrap_used, clippy::expect_used)]

#[path = "../../publisher/tests/common/mod.rs"]
mod common;
mod support;

use std::collections::BTreeSet;
use std::path::Path;

use common::Publisher;
use support::netns::seqs;
use support::{seqs_on_disk, Subscriber};

fn start(data: &Path, p: &Publisher, commit: &str) -> Subscriber {
    Subscriber::start(
        data,
        p.mqtt_port,
        &p.url("/latest"),
        &["--max-age", "5"],
        &[
            ("PI_SUBSCRIBER_POLL__INTERVAL", "200ms"),
            ("PI_SUBSCRIBER_HISTORY__COMMIT_INTERVAL", commit),
        ],
    )
}

fn stored(h: &serde_json::Value) -> u64 {
    h["ingest"]["stored_mqtt_total"].as_u64().unwrap_or(0)
}

/// The seqs the Pi's history holds for the publisher's host.
fn history(s: &Subscriber) -> BTreeSet<u64> {
    let (status, body) = s.get("/history?host=testhost");
    assert_eq!(status, 200, "{body}");
    seqs(&serde_json::from_str(&body).unwrap())
}

/// After a restart: nothing said to be lost, no seq missing from `first` to the newest, and
/// every sample `served` before the cut back.
fn every_sample_back(
    s: &Subscriber,
    health: &serde_json::Value,
    first: u64,
    served: &BTreeSet<u64>,
) {
    assert_eq!(health["history"]["samples_lost_total"], 0, "{health}");
    let have = history(s);
    let newest = *have.last().unwrap();
    let missing: Vec<_> = (first..=newest).filter(|q| !have.contains(q)).collect();
    assert!(missing.is_empty(), "missing on the Pi: {missing:?}");
    assert!(
        served.iter().all(|s| have.contains(s)),
        "a sample served before the cut is gone"
    );
}

#[test]
fn a_power_cut_between_commits_loses_nothing_the_ring_still_holds() {
    let (pdir, sdir) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let p = Publisher::start(pdir.path(), &["--interval", "200ms"]);

    // A first run that commits every second and stops cleanly: the host is known on disk.
    let s = start(sdir.path(), &p, "1s");
    s.wait_for("/health", |h| stored(h) >= 5);
    s.stop();
    let committed = seqs_on_disk(sdir.path());
    assert!(committed.len() >= 5, "{committed:?}");

    // The default cadence: samples are stored (and served) but not committed when the power
    // goes.
    let s = start(sdir.path(), &p, "5m");
    s.wait_for("/health", |h| stored(h) >= 15);
    let served = history(&s);
    s.kill();
    let survived = seqs_on_disk(sdir.path());
    let gone: Vec<_> = served.difference(&survived).collect();
    assert!(gone.len() >= 10, "the cut lost nothing: {gone:?}");
    assert!(survived.is_superset(&committed));

    // Back on: the next live sample shows the gap, the backfill fills it.
    let s = start(sdir.path(), &p, "1s");
    let health = s.wait_for("/health", |h| {
        h["history"]["holes_open"] == 0
            && h["history"]["holes_filled_total"].as_u64() >= Some(1)
            && h["ingest"]["stored_backfill_total"].as_u64() >= Some(10)
    });
    let first = *history(&s).first().unwrap();
    every_sample_back(&s, &health, first, &served);
}

/// Commits of samples alone write the day's file a whole page at a time and keep the rest in
/// memory: a cut (SIGKILL, no clean stop) takes that tail too. What is on the card is a run
/// of samples with no gap inside it, and after the restart the backfill brings the tail back:
/// none missing, none said to be lost.
#[test]
fn a_power_cut_after_commits_of_samples_alone_costs_their_tail_and_the_backfill_refills_it() {
    let (pdir, sdir) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let p = Publisher::start(pdir.path(), &["--interval", "200ms"]);
    let s = start(sdir.path(), &p, "1s");
    // Forty samples: several 4 KiB pages of the day's file, most of them by sealed commits.
    s.wait_for("/health", |h| stored(h) >= 40);
    let served = history(&s);
    s.kill();
    let survived = seqs_on_disk(sdir.path());
    let (first, last) = (*survived.first().unwrap(), *survived.last().unwrap());
    assert_eq!(
        survived,
        (first..=last).collect::<BTreeSet<u64>>(),
        "what the card holds has a gap"
    );
    assert!(survived.is_subset(&served), "{survived:?} {served:?}");
    assert!(
        survived.len() >= 10,
        "whole pages were written: {survived:?}"
    );
    eprintln!(
        "the cut took {} of {} samples served",
        served.len() - survived.len(),
        served.len()
    );

    let s = start(sdir.path(), &p, "1s");
    let health = s.wait_for("/health", |h| {
        h["history"]["holes_open"] == 0 && h["ingest"]["stored_mqtt_total"].as_u64() >= Some(3)
    });
    every_sample_back(&s, &health, first, &served);
}

/// A card that lost committed bytes of the raw tier's day file while the Pi was off (here:
/// the file cut to half the length its last SQLite commit stored): the Pi starts, says how
/// many bytes it lost (`/health`), and what they held comes back from the publisher's ring
/// like any other gap: none missing. (Bytes lost past that length, which later commits
/// sealed, look like a power cut's tail: not counted, refilled the same way.)
#[test]
fn committed_samples_the_card_lost_are_counted_and_backfilled() {
    let (pdir, sdir) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let p = Publisher::start(pdir.path(), &["--interval", "200ms"]);
    let s = start(sdir.path(), &p, "1s");
    s.wait_for("/health", |h| stored(h) >= 40);
    s.stop();
    let before = seqs_on_disk(sdir.path());
    let raw_dir = support::history_db(sdir.path()).with_extension("sqlite.raw");
    let files: Vec<_> = std::fs::read_dir(&raw_dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    assert_eq!(files.len(), 1, "one day's file: {files:?}");
    let stored_len: i64 = rusqlite::Connection::open(support::history_db(sdir.path()))
        .unwrap()
        .query_row(
            "SELECT value FROM meta WHERE key GLOB 'raw_log:*'",
            [],
            |r| r.get(0),
        )
        .unwrap();
    let half = stored_len as u64 / 2;
    std::fs::OpenOptions::new()
        .write(true)
        .open(&files[0])
        .unwrap()
        .set_len(half)
        .unwrap();
    let cut = seqs_on_disk(sdir.path());
    assert!(
        cut.len() < before.len(),
        "{} of {}",
        cut.len(),
        before.len()
    );
    // What an open finds lost, on a copy: the cut, and the record it tore.
    let copy = tempfile::tempdir().unwrap();
    std::fs::copy(&files[0], copy.path().join(files[0].file_name().unwrap())).unwrap();
    let day: i64 = files[0]
        .file_stem()
        .unwrap()
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    let lens = std::collections::BTreeMap::from([(day, stored_len as u64)]);
    let (_, found) = pi_subscriber::tsdb::raw_log::RawLog::open(copy.path(), &lens).unwrap();
    assert!(found.lost_bytes >= stored_len as u64 - half, "{found:?}");
    assert_eq!(found.damaged_days, [day]);

    let s = start(sdir.path(), &p, "1s");
    let health = s.wait_for("/health", |h| {
        h["history"]["holes_open"] == 0
            && h["history"]["holes_filled_total"].as_u64() >= Some(1)
            && h["ingest"]["stored_mqtt_total"].as_u64() >= Some(3)
    });
    assert_eq!(
        health["history"]["raw_lost_bytes"].as_u64(),
        Some(found.lost_bytes),
        "{health}"
    );
    every_sample_back(&s, &health, *before.first().unwrap(), &before);
}
