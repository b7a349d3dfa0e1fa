//! A database from before issue 22's raw layout (issue 22): the built `pi-subscriber` stops,
//! its history is turned back into each older layout the raw tier had (a `WITHOUT ROWID`
//! table keyed by host, then a rowid table with a unique index led by host, then one led by
//! time), and the built binary started on it moves the rows at open: it serves the same
//! samples with the same values, keeps storing, and the database ends in today's layout (a
//! rowid table with no index, each row under its time's key).
#![allow(clippy::unwrap_used, clippy::expect_used)]

#[path = "../../publisher/tests/common/mod.rs"]
mod common;
mod support;

use std::collections::BTreeMap;
use std::path::Path;

use common::Publisher;
use support::{history_db, Subscriber};

fn start(data: &Path, p: &Publisher) -> Subscriber {
    Subscriber::start(
        data,
        p.mqtt_port,
        &p.url("/latest"),
        &["--max-age", "5"],
        &[("PI_SUBSCRIBER_HISTORY__COMMIT_INTERVAL", "1s")],
    )
}

fn stored(h: &serde_json::Value) -> u64 {
    h["ingest"]["stored_mqtt_total"].as_u64().unwrap_or(0)
        + h["ingest"]["stored_http_total"].as_u64().unwrap_or(0)
}

/// Every sample the Pi serves for the publisher's host, by seq (the whole row as served).
fn served(s: &Subscriber) -> BTreeMap<u64, serde_json::Value> {
    let (status, body) = s.get("/history?host=testhost");
    assert_eq!(status, 200, "{body}");
    let rows: serde_json::Value = serde_json::from_str(&body).unwrap();
    rows.as_array()
        .unwrap()
        .iter()
        .map(|r| (r["seq"].as_u64().unwrap(), r.clone()))
        .collect()
}

/// The raw table's layout: its columns (with their place in the primary key) and kind, its
/// indexes' columns, and how many rows are not under their time's key (ts × 256 + slot).
fn layout(data: &Path) -> (String, Vec<String>, i64) {
    let conn = rusqlite::Connection::open(history_db(data)).unwrap();
    let sql: String = conn
        .query_row(
            "SELECT sql FROM sqlite_schema WHERE type = 'table' AND name = 'raw'",
            [],
            |r| r.get(0),
        )
        .unwrap();
    // Its columns, primary key and kind, whatever the statement's spacing.
    let columns: String = conn
        .query_row(
            "SELECT group_concat(name || ':' || pk, ', ') FROM pragma_table_info('raw')",
            [],
            |r| r.get(0),
        )
        .unwrap();
    let kind = if sql.contains("WITHOUT ROWID") {
        "WITHOUT ROWID"
    } else {
        "rowid"
    };
    let table = format!("{columns} {kind}");
    let mut stmt = conn
        .prepare(
            "SELECT l.name || ' (' || (SELECT group_concat(name, ', ') FROM pragma_index_info(l.name)) || ')'
             FROM pragma_index_list('raw') l WHERE l.origin = 'c' ORDER BY l.name",
        )
        .unwrap();
    let indexes = stmt
        .query_map([], |r| r.get(0))
        .unwrap()
        .collect::<rusqlite::Result<_>>()
        .unwrap();
    let off_key = if kind == "rowid" {
        conn.query_row(
            "SELECT COUNT(*) FROM raw WHERE rowid / 256 != ts",
            [],
            |r| r.get(0),
        )
        .unwrap()
    } else {
        -1
    };
    (table, indexes, off_key)
}

/// Runs `sql` on the history in `data`, its raw rows first put back where a database from
/// before the raw tier's day tables held them: all in `raw`, with no view over it.
fn rewrite(data: &Path, sql: &str) {
    let conn = rusqlite::Connection::open(history_db(data)).unwrap();
    let days: Vec<String> = conn
        .prepare("SELECT name FROM sqlite_schema WHERE type = 'table' AND name GLOB 'raw_d*'")
        .unwrap()
        .query_map([], |r| r.get(0))
        .unwrap()
        .map(|r| r.unwrap())
        .collect();
    // The day files' rows first into the table of their day, as before them.
    let records = support::raw_records_on_disk(data);
    conn.execute_batch("BEGIN; DROP VIEW IF EXISTS raw_rows;")
        .unwrap();
    for r in &records {
        conn.execute(
            "INSERT INTO raw (key, host, ts, seq, boot, data, top) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
            rusqlite::params![r.key, r.host, r.key.div_euclid(256), r.seq as i64, r.boot as i64, r.data, r.top],
        )
        .unwrap();
    }
    conn.execute_batch("DELETE FROM meta WHERE key GLOB 'raw_log:*'; COMMIT;")
        .unwrap();
    let mut files = history_db(data).into_os_string();
    files.push(".raw");
    let _ = std::fs::remove_dir_all(&files);
    let mut back = String::from("BEGIN; DROP VIEW IF EXISTS raw_rows;");
    for day in &days {
        back += &format!(
            "INSERT INTO raw (key, host, ts, seq, boot, data, top)
                SELECT key, host, ts, seq, boot, data, top FROM \"{day}\";
             DROP TABLE \"{day}\";"
        );
    }
    conn.execute_batch(&(back + "COMMIT;")).unwrap();
    conn.execute_batch(sql).unwrap();
}

/// Before 2026-12-07: a `WITHOUT ROWID` table keyed by (host, ts, seq).
const WITHOUT_ROWID: &str = "BEGIN;
    ALTER TABLE raw RENAME TO raw_new;
    CREATE TABLE raw (host INTEGER NOT NULL, ts INTEGER NOT NULL, seq INTEGER NOT NULL,
        boot INTEGER NOT NULL, data BLOB NOT NULL, top BLOB,
        PRIMARY KEY (host, ts, seq)) WITHOUT ROWID;
    INSERT INTO raw SELECT host, ts, seq, boot, data, top FROM raw_new;
    DROP TABLE raw_new; COMMIT;";

/// 2026-12-07: a rowid table (row ids 1, 2, …) with the unique index `index`, filled in
/// `order`.
fn indexed(index: &str, order: &str) -> String {
    format!(
        "BEGIN;
        ALTER TABLE raw RENAME TO raw_new;
        CREATE TABLE raw (host INTEGER NOT NULL, ts INTEGER NOT NULL, seq INTEGER NOT NULL,
            boot INTEGER NOT NULL, data BLOB NOT NULL, top BLOB);
        INSERT INTO raw (host, ts, seq, boot, data, top)
            SELECT host, ts, seq, boot, data, top FROM raw_new ORDER BY {order};
        DROP TABLE raw_new; CREATE UNIQUE INDEX {index}; COMMIT;"
    )
}

fn led_by_host() -> String {
    indexed("raw_key ON raw (host, ts, seq)", "host, ts, seq")
}

fn led_by_time() -> String {
    indexed("raw_at ON raw (ts, host, seq)", "ts, host, seq")
}

#[test]
fn the_built_pi_moves_an_older_raw_layout_at_start_and_serves_the_same_samples() {
    let (pdir, sdir) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let p = Publisher::start(pdir.path(), &["--interval", "200ms"]);
    let today = {
        let s = start(sdir.path(), &p);
        s.wait_for("/health", |h| stored(h) >= 10);
        s.stop();
        layout(sdir.path())
    };
    assert!(!today.0.contains("WITHOUT ROWID"), "{today:?}");
    assert_eq!(today.1, Vec::<String>::new());
    assert_eq!(today.2, 0, "rows off their time's key");

    for (older, sql) in [
        ("WITHOUT ROWID", WITHOUT_ROWID.to_owned()),
        ("led by host", led_by_host()),
        ("led by time", led_by_time()),
    ] {
        // What the Pi served from its disk, read by a Pi started on today's layout.
        let s = start(sdir.path(), &p);
        let before = served(&s);
        s.stop();
        assert!(before.len() >= 10, "{older}: {}", before.len());

        rewrite(sdir.path(), &sql);
        assert_ne!(
            layout(sdir.path()),
            today,
            "{older}: the rewrite did nothing"
        );

        let s = start(sdir.path(), &p);
        let after = served(&s);
        for (seq, row) in &before {
            assert_eq!(after.get(seq), Some(row), "{older}: seq {seq}");
        }
        // It keeps storing on the moved table.
        let newest = *after.keys().last().unwrap();
        s.wait_for("/health", |h| stored(h) >= 5);
        let later = served(&s);
        assert!(
            later.keys().last().unwrap() > &newest,
            "{older}: nothing stored after the move"
        );
        s.stop();
        assert_eq!(layout(sdir.path()), today, "{older}");
    }
}

/// The Pi with MQTT off and no endpoint: it stores nothing new.
fn start_quiet(data: &Path) -> Subscriber {
    Subscriber::start(data, None, "", &[], &[])
}

/// A power cut while the Pi moves an older raw layout at start (the one-time move of a large
/// table): the move is one transaction, so the cut leaves the older layout whole (with the
/// move's pages in the WAL, uncommitted), and the next start moves it and serves the same
/// samples with the same values.
#[test]
fn a_pi_cut_while_it_moves_an_older_layout_moves_it_whole_at_its_next_start() {
    let (pdir, sdir) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    {
        let p = Publisher::start(pdir.path(), &["--interval", "200ms"]);
        let s = start(sdir.path(), &p);
        s.wait_for("/health", |h| stored(h) >= 10);
        s.stop();
    }
    let before = {
        let s = start_quiet(sdir.path());
        let rows = served(&s);
        s.stop();
        rows
    };
    assert!(before.len() >= 10, "{}", before.len());
    // Old copies (49 h and more back, new seqs) make the move last a while; the older layout
    // (the index led by time) then holds them all.
    rewrite(
        sdir.path(),
        "WITH RECURSIVE k(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM k WHERE n < 12000)
         INSERT INTO raw (host, ts, seq, boot, data, top)
            SELECT host, ts - 176400000 - n * 15000, seq + 1000000 * n, boot, data, top
            FROM raw, k;",
    );
    rewrite(sdir.path(), &led_by_time());
    let older = layout(sdir.path());
    assert_eq!(older.1, ["raw_at (ts, host, seq)"]);

    // Cut a copy of it inside the move (`support/cut.rs`).
    let cut = support::cut::cut_inside_the_move(sdir.path(), |d| layout(d) == older);

    let s = start_quiet(cut.path());
    let after = served(&s);
    for (seq, row) in &before {
        assert_eq!(after.get(seq), Some(row), "seq {seq}");
    }
    s.stop();
    let today = layout(cut.path());
    assert_eq!((today.1.len(), today.2), (0, 0), "{today:?}");
}
