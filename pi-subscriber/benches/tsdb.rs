//! The history store (issue 10 targets in parentheses), for a tower-sized host (42 series):
//! 1. ingest, one commit per snapshot as the daemon does at 15 s (≥ 5 000 snapshots/s);
//! 2. bytes written per host per day (what wears an SD card): one day at 15 s, counted after
//!    14 days and 2 hours of warm-up (`BENCH_WARM_H`, hours) so every hour prunes, with the
//!    writer's commits every `history.commit_interval` (5 min; `BENCH_COMMIT_S` to change it)
//!    and maintenance with each, counted by the kernel (`wchar` in /proc/self/io: every byte
//!    SQLite hands to `write`; `BENCH_PROCESSES=1` with the top-process lists,
//!    `TSDB_BENCH_ONLY=written` for this figure alone (`=ingest` for the first, `=query` for
//!    the third, `=rss` for the third and fourth), `BENCH_HOSTS=1` or `10` for one of its
//!    two lines, `BENCH_KEEP_DIR` keeps the database);
//! 3. a host at full default retention (2 years): bytes on disk, and query times: 24 h raw,
//!    14 d at 1 min (< 50 ms), 1 y at 1 h (< 100 ms), 2 y at 1 d;
//! 4. the RSS of the release `pi-subscriber` on 10 such hosts (< 16 MB).
//!
//! Run: `cargo bench -p pi-subscriber --bench tsdb` (several minutes on a 2-core VM; the
//! 10-host database copies the first host's bucket rows under new ids).
//! Full retention is generated sparsely where the tiers cannot tell: one sample an hour
//! before 14 days, one a minute before 48 h, every 15 s after, so every bucket row the
//! tiers keep exists as at full rate.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::path::Path;
use std::time::{Duration, Instant};

use pi_subscriber::registry;
use pi_subscriber::tsdb::{Agg, Retention, SeriesQuery, Tsdb};

const MIN_MS: i64 = 60_000;
const HOUR_MS: i64 = 3_600_000;
const DAY_MS: i64 = 86_400_000;

fn retention() -> Retention {
    Retention {
        raw_ms: 2 * DAY_MS,
        minute_ms: 14 * DAY_MS,
        hour_ms: 730 * DAY_MS,
    }
}

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64
}

/// The writer's cadence: `BENCH_COMMIT_S`, else `history.commit_interval`'s default.
fn commit_every_ms() -> i64 {
    std::env::var("BENCH_COMMIT_S")
        .ok()
        .and_then(|v| v.parse::<i64>().ok())
        .unwrap_or(300)
        * 1000
}

/// Ingests `host`'s samples at `times` as the daemon's writer would (see [`feed_hosts`]).
fn feed(db: &mut Tsdb, host: &str, times: impl Iterator<Item = i64>, seq: &mut u64) {
    feed_hosts(db, &[host.to_owned()], times, seq);
}

fn ingest_rate() {
    let dir = tempfile::tempdir().unwrap();
    let start_ms = now_ms() - DAY_MS;
    let mut db = Tsdb::open(&dir.path().join("h.sqlite"), retention(), 500, start_ms).unwrap();
    let n = 20_000;
    let mut seq = 0;
    let start = Instant::now();
    for i in 0..n {
        seq += 1;
        let ts = start_ms + i * 15_000;
        db.ingest(&common::at("tower", seq, ts), true, ts).unwrap();
        db.commit().unwrap();
    }
    let s = start.elapsed().as_secs_f64();
    println!(
        "ingest: {n} tower snapshots, one commit each: {s:.2} s = {:.0} snapshots/s ({:.1} µs each)",
        n as f64 / s,
        s * 1e6 / n as f64
    );
}

/// Ingests the samples of `hosts` at `times` together (each time, every host) as the
/// daemon's writer would: every `BENCH_COMMIT_S` seconds of sample time (300, its default),
/// maintenance (when a minute has passed) and a commit.
fn feed_hosts(db: &mut Tsdb, hosts: &[String], times: impl Iterator<Item = i64>, seq: &mut u64) {
    let mut last_maintain = i64::MIN;
    let mut last_commit = i64::MIN;
    let every = commit_every_ms();
    for ts in times {
        *seq += 1;
        for host in hosts {
            db.ingest(&common::at(host, *seq, ts), true, ts).unwrap();
        }
        if ts.saturating_sub(last_commit) >= every {
            if ts.saturating_sub(last_maintain) >= MIN_MS {
                db.maintain(ts).unwrap();
                last_maintain = ts;
            }
            db.commit().unwrap();
            last_commit = ts;
        }
    }
}

/// Copies every committed page of the WAL at `path` into the database (another connection,
/// as `sqlite3 history.sqlite` would; the store's stays open).
fn checkpoint(path: &Path) {
    rusqlite::Connection::open(path)
        .unwrap()
        .execute_batch("PRAGMA wal_checkpoint(PASSIVE);")
        .unwrap();
}

/// The bytes written for one day of `n` hosts in one database, per host.
fn written_per_day_of(n: usize) {
    let dir = tempfile::tempdir().unwrap();
    let path = match std::env::var("BENCH_KEEP_DIR") {
        Ok(d) => std::path::PathBuf::from(d).join(format!("h{n}.sqlite")),
        Err(_) => dir.path().join("h.sqlite"),
    };
    let hosts: Vec<String> = (0..n).map(|i| format!("tower{i}")).collect();
    let warm: i64 = std::env::var("BENCH_WARM_H")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(14 * 24 + 2)
        * 240;
    let start_ms = now_ms() - DAY_MS - warm * 15_000;
    let mut db = Tsdb::open(&path, retention(), 500 * n, start_ms).unwrap();
    let mut seq = 0;
    // Warm-up, not counted: 14 days and 2 hours by default (`BENCH_WARM_H`), so the raw and
    // minute tiers are full and the measured day is their steady state (each hour's raw rows,
    // minute rows and minute peaks pruned, the peaks written, freed pages reused), not a
    // database growing from empty, which writes no prune at all.
    feed_hosts(
        &mut db,
        &hosts,
        (0..warm).map(|i| start_ms + i * 15_000),
        &mut seq,
    );
    // The WAL's pages reach the database at a checkpoint (every 1 000 pages): one before the
    // day and one at its end, counted, so the day's figure holds its own checkpoints and not
    // the warm-up's, whatever the checkpoints' spacing.
    checkpoint(&path);
    let before = common::io();
    let day = (warm..warm + 5760).map(|i| start_ms + i * 15_000);
    feed_hosts(&mut db, &hosts, day, &mut seq);
    db.commit().unwrap();
    checkpoint(&path);
    let after = common::io();
    let per_host = |bytes: u64| bytes as f64 / n as f64 / 1e6;
    println!(
        "written, {n} host(s) in one database: {:.1} MB per host per day (wchar; write_bytes {:.1} MB; 5760 snapshots at 15 s, a commit every {} s)",
        per_host(after.0 - before.0),
        per_host(after.1 - before.1),
        commit_every_ms() / 1000
    );
}

/// The bytes written a day per host: one host alone (every commit's fixed cost on one host),
/// and ten in one database as a Pi watching ten servers holds them.
/// `BENCH_HOSTS=1` or `=10` runs one of the two.
fn written_per_day() {
    let only = std::env::var("BENCH_HOSTS").ok();
    for n in [1, 10] {
        if only.as_deref().is_none_or(|o| o == n.to_string()) {
            written_per_day_of(n);
        }
    }
}

/// One host at full default retention, ending at `end_ms`.
fn fill_two_years(db: &mut Tsdb, host: &str, end_ms: i64) {
    let mut seq = 0;
    let hourly = (end_ms - 730 * DAY_MS..end_ms - 14 * DAY_MS).step_by(HOUR_MS as usize);
    let minutely = (end_ms - 14 * DAY_MS..end_ms - 2 * DAY_MS).step_by(MIN_MS as usize);
    let raw = (end_ms - 2 * DAY_MS..end_ms).step_by(15_000);
    feed(db, host, hourly.chain(minutely).chain(raw), &mut seq);
    db.maintain(end_ms).unwrap();
}

fn timed(db: &Tsdb, label: &str, metric: &str, from_ms: i64, step_s: Option<i64>, now: i64) {
    let q = SeriesQuery {
        host: "host0",
        metric: registry::metric(metric).unwrap(),
        label: Some(""),
        from_ms,
        to_ms: now,
        step_ms: step_s.map(|s| s * 1000),
        agg: Agg::Max,
    };
    let start = Instant::now();
    let runs = 20;
    let mut points = 0;
    for _ in 0..runs {
        let (_, series) = db.query(&q, now).unwrap();
        points = series.iter().map(|s| s.points.len()).sum::<usize>();
    }
    println!(
        "query {label} of {metric}: {:.2} ms ({points} points)",
        start.elapsed().as_secs_f64() * 1e3 / runs as f64
    );
}

fn full_retention() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("history.sqlite");
    let now = now_ms();
    let start = Instant::now();
    {
        let mut db = Tsdb::open(&path, retention(), 500, now).unwrap();
        fill_two_years(&mut db, "host0", now);
        println!(
            "fill: 2 years of one host in {:.0} s",
            start.elapsed().as_secs_f64()
        );
        db.commit().unwrap();
    }
    let conn = rusqlite::Connection::open(&path).unwrap();
    conn.execute_batch("PRAGMA wal_checkpoint(TRUNCATE);")
        .unwrap();
    let file = common::dir_bytes(dir.path());
    conn.execute_batch("VACUUM;").unwrap();
    let table = |t: &str| -> i64 {
        conn.query_row(&format!("SELECT count(*) FROM {t}"), [], |r| r.get(0))
            .unwrap()
    };
    let minute: i64 = minute_tables(&conn).iter().map(|t| table(t)).sum();
    println!(
        "rows: raw in the tables of before {}, minute {}, hour {}, series {}",
        table("raw_rows"),
        minute,
        table("hour"),
        table("series")
    );
    drop(conn);
    // The fill deleted what aged out of each tier: the file keeps those pages free for
    // reuse, as a long-running Pi's would; VACUUM shows what is live.
    println!(
        "disk: {:.1} MB per host at full default retention (2 years), {:.1} MB live",
        file as f64 / 1e6,
        common::dir_bytes(dir.path()) as f64 / 1e6
    );
    let db = Tsdb::open(&path, retention(), 500, now).unwrap();
    timed(
        &db,
        "24 h raw",
        "disk_read_bytes_rate",
        now - DAY_MS,
        None,
        now,
    );
    timed(
        &db,
        "14 d at 1 min",
        "cpu_usage_percent",
        now - 14 * DAY_MS + HOUR_MS,
        Some(60),
        now,
    );
    timed(
        &db,
        "1 y at 1 h",
        "cpu_usage_percent",
        now - 365 * DAY_MS,
        Some(3600),
        now,
    );
    timed(
        &db,
        "2 y at 1 d",
        "network_rx_bytes_rate",
        now - 729 * DAY_MS,
        Some(86_400),
        now,
    );
    dir
}

/// The minute tier's tables: the table of before and one a day (`tsdb/parts.rs`).
fn minute_tables(conn: &rusqlite::Connection) -> Vec<String> {
    let mut stmt = conn
        .prepare(
            "SELECT '\"' || name || '\"' FROM sqlite_schema WHERE type = 'table'
             AND (name = 'minute' OR name GLOB 'minute_d*')",
        )
        .unwrap();
    let names = stmt.query_map([], |r| r.get(0)).unwrap();
    names.map(Result::unwrap).collect()
}

/// Adds `hosts - 1` hosts like host0: its hour and minute rows older than the raw tier are
/// copied under new ids in SQL; the last 48 h are ingested (raw rows pack series ids).
fn clone_hosts(path: &Path, hosts: usize, end_ms: i64) {
    let conn = rusqlite::Connection::open(path).unwrap();
    let max_series: i64 = conn
        .query_row("SELECT max(id) FROM series", [], |r| r.get(0))
        .unwrap();
    let cut = end_ms - 2 * DAY_MS;
    let minute: String = minute_tables(&conn)
        .iter()
        .map(|t| {
            format!(
                "INSERT INTO {t} (id, series, start, data)
                   SELECT (id >> 32 << 32) | (series + {{off}}), series + {{off}}, start, data FROM {t}
                   WHERE series <= {{max_series}} AND start < {{cut}};"
            )
        })
        .collect();
    for h in 1..hosts as i64 {
        let off = h * (max_series + 1);
        let minute = minute
            .replace("{off}", &off.to_string())
            .replace("{max_series}", &max_series.to_string())
            .replace("{cut}", &cut.to_string());
        conn.execute_batch(&format!(
            "BEGIN;
             INSERT INTO hosts (id, name) VALUES ({h} + 1000, 'host{h}');
             INSERT INTO series (id, host, metric, label)
               SELECT id + {off}, {h} + 1000, metric, label FROM series WHERE id <= {max_series};
             {minute}
             INSERT INTO hour (series, start, data)
               SELECT series + {off}, start, data FROM hour WHERE series <= {max_series} AND start < {cut};
             COMMIT;"
        ))
        .unwrap();
    }
    drop(conn);
    let mut db = Tsdb::open(path, retention(), 500, end_ms).unwrap();
    // On the Pi's clock at `end_ms`, maintained once at the end: maintained at each sample's
    // own time (two days back), the writer took host0's newest day, already on disk, for
    // samples from the future (until 2026-12-07).
    let names: Vec<String> = (1..hosts).map(|h| format!("host{h}")).collect();
    let mut seq = 1_000_000;
    for ts in (end_ms - 2 * DAY_MS..end_ms).step_by(15_000) {
        seq += 1;
        for host in &names {
            db.ingest(&common::at(host, seq, ts), true, end_ms).unwrap();
        }
        if (ts / 15_000) % 20 == 0 {
            db.commit().unwrap();
        }
    }
    db.maintain(end_ms).unwrap();
    drop(db);
    let conn = rusqlite::Connection::open(path).unwrap();
    conn.execute_batch("PRAGMA wal_checkpoint(TRUNCATE);")
        .unwrap();
}

fn rss_of_ten_hosts(dir: &Path) {
    let start = Instant::now();
    clone_hosts(&dir.join("history.sqlite"), 10, now_ms());
    println!(
        "fill: 9 more hosts in {:.0} s",
        start.elapsed().as_secs_f64()
    );
    {
        // host0's raw tier read among ten hosts' rows (the index leads with time).
        let now = now_ms();
        let db = Tsdb::open(&dir.join("history.sqlite"), retention(), 500, now).unwrap();
        timed(
            &db,
            "24 h raw, 10 hosts in the database,",
            "disk_read_bytes_rate",
            now - DAY_MS,
            None,
            now,
        );
    }
    let (rss, hwm) = common::rss_of_subscriber_on(dir, Duration::from_secs(8));
    println!(
        "memory: pi-subscriber on 10 hosts × 2 years ({:.0} MB of history): VmRSS {rss}, VmHWM {hwm}",
        common::dir_bytes(dir) as f64 / 1e6,
    );
}

fn main() {
    // `TSDB_BENCH_ONLY=written`: the write cost alone (seconds, not the 2-year fill).
    match std::env::var("TSDB_BENCH_ONLY").as_deref() {
        Ok("written") => return written_per_day(),
        Ok("ingest") => return ingest_rate(),
        Ok("query") => {
            full_retention();
            return;
        }
        Ok("rss") => {
            let dir = full_retention();
            return rss_of_ten_hosts(dir.path());
        }
        _ => {}
    }
    ingest_rate();
    written_per_day();
    let dir = full_retention();
    rss_of_ten_hosts(dir.path());
    if std::env::var_os("TSDB_BENCH_KEEP").is_some() {
        println!("kept {}", dir.keep().display());
    }
}
