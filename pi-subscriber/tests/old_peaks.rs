//! A database from before issue 22's fifth pass, whose minute peaks (`top_minute`) are keyed
//! by host first: the built `pi-subscriber` moves them under the key led by time at open, in
//! one transaction. A power cut inside that move leaves the older table whole (the move's
//! pages in the WAL, uncommitted), and the next start moves it and serves the same lists.
#![allow(clippy::unwrap_used, clippy::expect_used)]

#[path = "../../publisher/tests/common/mod.rs"]
mod common;
mod support;

use std::collections::BTreeMap;
use std::path::Path;

use common::Publisher;
use rusqlite::{params, Connection};
use support::{history_db, Subscriber};

/// Days of synthetic peaks and processes in each list: enough (~10 MB) that the move spills
/// SQLite's page cache into the WAL before it commits, so a cut inside it is seen. One host:
/// the Pi forgets a host with no samples (`history.forget_after`), and its peaks with it.
const DAYS: i64 = 12;
const PROCESSES: i64 = 20;
const MINUTE_MS: i64 = 60_000;

/// The peaks' table, keyed by host first, as before the fifth pass.
const HOST_FIRST: &str = "BEGIN;
    ALTER TABLE top_minute RENAME TO top_minute_new;
    CREATE TABLE top_minute (
        host INTEGER NOT NULL, start INTEGER NOT NULL,
        cpu_peak REAL NOT NULL, cpu_ts INTEGER NOT NULL, cpu BLOB NOT NULL,
        mem_peak REAL NOT NULL, mem_ts INTEGER NOT NULL, mem BLOB NOT NULL,
        PRIMARY KEY (host, start)) WITHOUT ROWID;
    INSERT INTO top_minute SELECT * FROM top_minute_new ORDER BY host, start;
    DROP TABLE top_minute_new; COMMIT;";

type Row = (f64, i64, Vec<u8>, f64, i64, Vec<u8>);

/// Whether the peaks are keyed by host first, and every row by (host, start).
fn peaks(data: &Path) -> (bool, BTreeMap<(i64, i64), Row>) {
    let conn = Connection::open(history_db(data)).unwrap();
    let sql: String = conn
        .query_row(
            "SELECT sql FROM sqlite_schema WHERE type = 'table' AND name = 'top_minute'",
            [],
            |r| r.get(0),
        )
        .unwrap();
    let mut stmt = conn
        .prepare("SELECT host, start, cpu_peak, cpu_ts, cpu, mem_peak, mem_ts, mem FROM top_minute")
        .unwrap();
    let rows = stmt
        .query_map([], |r| {
            Ok((
                (r.get(0)?, r.get(1)?),
                (
                    r.get(2)?,
                    r.get(3)?,
                    r.get(4)?,
                    r.get(5)?,
                    r.get(6)?,
                    r.get(7)?,
                ),
            ))
        })
        .unwrap()
        .collect::<rusqlite::Result<_>>()
        .unwrap();
    (sql.contains("PRIMARY KEY (host, start)"), rows)
}

/// Minute `n`'s list of `PROCESSES` processes, packed as `tsdb/top_codec.rs` packs one (every number
/// under 128, one varint byte): pid, name, no user, CPU % in hundredths + 1, RSS.
fn list(n: i64, salt: i64) -> Vec<u8> {
    let mut out = vec![PROCESSES as u8];
    for i in 0..PROCESSES {
        let name = format!("job{:05}", (n * 5 + i + salt) % 100_000);
        out.push((1 + (n + i + salt) % 120) as u8);
        out.push(name.len() as u8);
        out.extend_from_slice(name.as_bytes());
        out.push(0xff);
        out.push((1 + (n * 3 + i + salt) % 100) as u8);
        out.push(((n + 7 * i + salt) % 128) as u8);
    }
    out
}

/// The publisher's host with a peak every minute for `DAYS` days, from a day and a half back
/// (older than the raw tier, within the minute tier's 14 days).
fn add_peaks(data: &Path, host: i64, now_ms: i64) -> Vec<i64> {
    let mut conn = Connection::open(history_db(data)).unwrap();
    let tx = conn.transaction().unwrap();
    let newest = (now_ms - 36 * 3_600_000) / MINUTE_MS * MINUTE_MS;
    {
        let mut ins = tx
            .prepare("INSERT INTO top_minute VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)")
            .unwrap();
        for n in 0..DAYS * 1440 {
            let start = newest - n * MINUTE_MS;
            ins.execute(params![
                host,
                start,
                ((n * 37) % 1000) as f64 / 10.0,
                start + (n % 4) * 15_000,
                list(n, host),
                ((n * 53) % 1000) as f64 / 10.0,
                start + ((n + 1) % 4) * 15_000,
                list(n, host + 1),
            ])
            .unwrap();
        }
    }
    tx.commit().unwrap();
    (0..DAYS * 1440)
        .step_by(997)
        .map(|n| newest - n * MINUTE_MS)
        .collect()
}

/// What the Pi serves of `testhost`'s lists: each chosen minute alone, and the hour and the
/// day from it.
fn served(s: &Subscriber, minutes: &[i64]) -> Vec<serde_json::Value> {
    let mut out = Vec::new();
    for &m in minutes {
        for uri in [
            format!("/series/top?host=testhost&at={m}&step=60"),
            format!("/series/top?host=testhost&from={m}&to={}", m + 3_600_000),
            format!("/series/top?host=testhost&from={m}&to={}", m + 86_400_000),
        ] {
            let (status, body) = s.get(&uri);
            assert_eq!(status, 200, "{uri}: {body}");
            out.push(serde_json::from_str(&body).unwrap());
        }
    }
    out
}

/// The Pi with MQTT off and no endpoint: it stores nothing new.
/// `None` when `a` and `b` hold the same rows; otherwise how they differ (counts, first key).
fn differ(a: &BTreeMap<(i64, i64), Row>, b: &BTreeMap<(i64, i64), Row>) -> Option<String> {
    let first = a
        .iter()
        .find(|(k, v)| b.get(k) != Some(v))
        .map(|(k, _)| *k)
        .or_else(|| b.keys().find(|k| !a.contains_key(k)).copied());
    first.map(|k| {
        format!(
            "{} rows against {}; first differing (host, start) {k:?}",
            a.len(),
            b.len()
        )
    })
}

fn start_quiet(data: &Path) -> Subscriber {
    Subscriber::start(data, None, "", &[], &[])
}

#[test]
fn a_pi_cut_while_it_moves_older_minute_peaks_moves_them_whole_at_its_next_start() {
    let (pdir, sdir) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    {
        let p = Publisher::start(pdir.path(), &["--interval", "200ms"]);
        let s = Subscriber::start(sdir.path(), p.mqtt_port, &p.url("/latest"), &[], &[]);
        s.wait_for("/health", |h| {
            h["ingest"]["stored_mqtt_total"].as_u64().unwrap_or(0) >= 5
        });
        s.stop();
    }
    let testhost: i64 = Connection::open(history_db(sdir.path()))
        .unwrap()
        .query_row("SELECT id FROM hosts WHERE name = 'testhost'", [], |r| {
            r.get(0)
        })
        .unwrap();
    let minutes = add_peaks(sdir.path(), testhost, pi_subscriber::ingest::unix_ms_now());
    let (host_first, rows) = peaks(sdir.path());
    assert!(!host_first);
    assert_eq!(rows.len() as i64, DAYS * 1440);

    // What a Pi on today's layout serves: minute peaks, each minute's lists exactly as stored.
    let before = {
        let s = start_quiet(sdir.path());
        let answers = served(&s, &minutes);
        s.stop();
        answers
    };
    let first = &before[0];
    assert_eq!(first["tier"], "1m", "{first}");
    let cpu = &first["top_cpu"]["processes"];
    assert_eq!(cpu.as_array().unwrap().len(), PROCESSES as usize, "{first}");
    // The newest minute is n = 0 of `list(n, testhost)`.
    assert_eq!(cpu[0]["pid"], 1 + testhost % 120, "{first}");
    assert_eq!(cpu[0]["name"], format!("job{:05}", testhost), "{first}");
    assert_eq!(cpu[0]["user"], serde_json::Value::Null, "{first}");
    assert_eq!(
        cpu[0]["cpu_percent"],
        (testhost % 100) as f64 / 100.0,
        "{first}"
    );
    assert_eq!(first["top_cpu"]["ts_ms"], minutes[0], "{first}");
    assert_eq!(
        differ(&peaks(sdir.path()).1, &rows),
        None,
        "a quiet Pi changed the peaks"
    );

    let conn = Connection::open(history_db(sdir.path())).unwrap();
    conn.execute_batch(HOST_FIRST).unwrap();
    drop(conn);
    let (host_first, older) = peaks(sdir.path());
    assert!(host_first, "the rewrite did nothing");
    assert_eq!(differ(&older, &rows), None);

    // Cut a copy of it inside the move (`support/cut.rs`).
    let cut = support::cut::cut_inside_the_move(sdir.path(), |d| peaks(d).0);
    let (host_first, at_cut) = peaks(cut.path());
    assert!(host_first);
    assert_eq!(differ(&at_cut, &rows), None, "the cut lost rows");

    let s = start_quiet(cut.path());
    let after = served(&s, &minutes);
    s.stop();
    assert_eq!(after, before);
    let (host_first, moved) = peaks(cut.path());
    assert!(!host_first, "not moved");
    assert_eq!(differ(&moved, &rows), None, "rows lost in the move");
}
