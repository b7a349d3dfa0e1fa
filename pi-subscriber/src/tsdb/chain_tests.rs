//! Raw rows stored as changes (`chain.rs`) and minute rows keyed by hour (`minute.rs`), read
//! back through a real database file.

use broker::{Cpu, Disk, DiskDevice, Snapshot};
use rusqlite::params;

use super::codec;
use super::db::{Sample, Tsdb};
use super::pack::{self, Packed};
use super::rollup::{Bucket, Tier, HOUR_MS};
use super::tests::{retention, T0};

fn snap(seq: u64, ts_ms: i64) -> Snapshot {
    Snapshot {
        host: "tower".into(),
        seq,
        ts_ms,
        boot_id: Some("boot-a".into()),
        cpu: Some(Cpu {
            usage_percent: Some(((seq * 37) % 1000) as f64 / 10.0),
            load_1m: Some(0.01 * (seq % 300) as f64),
            ..Cpu::default()
        }),
        disk: Some(Disk {
            read_sectors: 1_000_000 + seq * seq,
            write_sectors: 7 * seq,
            devices: [(
                "sda".to_string(),
                DiskDevice {
                    read_sectors: seq * seq,
                    write_sectors: 7 * seq,
                    ..Default::default()
                },
            )]
            .into(),
        }),
        ..Snapshot::default()
    }
}

/// Two hours of live samples at 15 s, committed; the database and the host's id.
fn two_hours(dir: &std::path::Path) -> (Tsdb, i64) {
    let mut db = Tsdb::open(&dir.join("h.sqlite"), retention(), 500, T0).unwrap();
    for seq in 1..=480u64 {
        let ts = T0 + (seq as i64 - 1) * 15_000;
        db.ingest(&snap(seq, ts), true, ts).unwrap();
    }
    db.commit().unwrap();
    let id = db.hosts["tower"].id;
    (db, id)
}

fn window(db: &Tsdb, host: i64, from: i64, to: i64) -> Vec<Sample> {
    let w = db.raw_window(host, from, to, 0, |_| true).unwrap();
    w.each().map(|(s, _)| s.clone()).collect()
}

fn kinds(db: &Tsdb) -> (usize, usize) {
    let (mut full, mut delta) = (0, 0);
    for row in db.all_raw_for_test() {
        match pack::packed(row.data()) {
            Packed::Full(_) => full += 1,
            Packed::Delta { .. } => delta += 1,
            Packed::Unknown => panic!("unknown row"),
        }
    }
    (full, delta)
}

#[test]
fn live_samples_chain_within_an_hour_and_read_back_as_stored_whole() {
    let dir = tempfile::tempdir().unwrap();
    let (mut db, host) = two_hours(dir.path());
    // A whole row at each hour's start and after every 64 deltas.
    assert_eq!(kinds(&db), (8, 472));
    let got = window(&db, host, T0, T0 + 2 * HOUR_MS);
    assert_eq!(got.len(), 480);
    for s in &got {
        let values = db.ingest_values_for_test(&snap(s.seq, s.ts_ms));
        let whole = codec::decode_sample(&codec::encode_sample(&values));
        assert_eq!(s.values, whole, "seq {}", s.seq);
    }
    // A window that starts inside a chain walks back to its whole row.
    let mid = window(&db, host, T0 + 40 * 60_000 + 1, T0 + 50 * 60_000);
    let same: Vec<_> = got
        .iter()
        .filter(|s| s.ts_ms > T0 + 40 * 60_000 && s.ts_ms <= T0 + 50 * 60_000)
        .cloned()
        .collect();
    assert_eq!(mid, same);
}

#[test]
fn a_backfilled_sample_and_a_new_series_are_stored_whole() {
    let dir = tempfile::tempdir().unwrap();
    let mut db = Tsdb::open(&dir.path().join("h.sqlite"), retention(), 500, T0).unwrap();
    db.ingest(&snap(1, T0), true, T0).unwrap();
    db.ingest(&snap(3, T0 + 30_000), true, T0 + 30_000).unwrap(); // a gap: whole
    db.ingest(&snap(2, T0 + 15_000), false, T0 + 30_000)
        .unwrap(); // backfill: whole
    let mut more = snap(4, T0 + 45_000);
    more.disk
        .as_mut()
        .unwrap()
        .devices
        .insert("sdb".into(), DiskDevice::default());
    db.ingest(&more, true, T0 + 45_000).unwrap(); // a new series: whole
    db.ingest(&snap(5, T0 + 60_000), true, T0 + 60_000).unwrap(); // one fewer: whole
    db.ingest(&snap(6, T0 + 75_000), true, T0 + 75_000).unwrap(); // follows: a delta
    assert_eq!(kinds(&db), (5, 1));
}

#[test]
fn a_disk_bound_cut_inside_an_hour_leaves_every_later_row_readable() {
    let dir = tempfile::tempdir().unwrap();
    let (db, host) = two_hours(dir.path());
    let before = window(&db, host, T0, T0 + 2 * HOUR_MS);
    let cut = T0 + 20 * 60_000 + 7_000;
    assert_eq!(db.cut_raw_for_test(host, cut), 81);
    let after = window(&db, host, T0, T0 + 2 * HOUR_MS);
    let want: Vec<_> = before.into_iter().filter(|s| s.ts_ms > cut).collect();
    assert_eq!(after, want);
    assert!(after.iter().all(|s| !s.values.is_empty()));
}

#[test]
fn an_older_minute_table_moves_to_half_hour_rows_keyed_by_time() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("h.sqlite");
    let mut row = vec![None; 60];
    row[3] = Some(Bucket::of(42.5, T0 + 3 * 60_000 + 14_000));
    let mut late = row.clone();
    late[59] = Some(Bucket::of(7.25, T0 + 59 * 60_000 + 1));
    {
        let conn = rusqlite::Connection::open(&path).unwrap();
        conn.execute_batch(
            "CREATE TABLE minute (series INTEGER NOT NULL, start INTEGER NOT NULL,
             data BLOB NOT NULL, PRIMARY KEY (series, start)) WITHOUT ROWID;",
        )
        .unwrap();
        for (series, start) in [(7u32, T0), (7, T0 + HOUR_MS), (9, T0)] {
            conn.execute(
                "INSERT INTO minute VALUES (?1, ?2, ?3)",
                params![series, start, codec::encode_buckets(&row, start)],
            )
            .unwrap();
        }
    }
    let db = Tsdb::open(&path, retention(), 500, T0 + HOUR_MS).unwrap();
    assert_eq!(db.read_row(Tier::Minute, 7, T0).unwrap(), row);
    assert_eq!(db.read_row(Tier::Minute, 9, T0).unwrap(), row);
    assert_eq!(
        db.read_row(Tier::Minute, 9, T0 + HOUR_MS).unwrap(),
        vec![None; 60]
    );
    let ids: Vec<i64> = db
        .conn
        .prepare("SELECT id FROM minute ORDER BY id")
        .unwrap()
        .query_map([], |r| r.get(0))
        .unwrap()
        .map(|r| r.unwrap())
        .collect();
    // Two halves an hour; the second halves hold no bucket, so they are not written.
    let half = T0 / (HOUR_MS / 2);
    assert_eq!(
        ids,
        vec![half << 32 | 7, half << 32 | 9, (half + 2) << 32 | 7]
    );
    assert_eq!(db.newest_minute_row().unwrap(), Some(T0 + HOUR_MS));
    // A row with both halves reads back whole.
    db.write_row(Tier::Minute, 11, T0, &late).unwrap();
    assert_eq!(db.read_row(Tier::Minute, 11, T0).unwrap(), late);
    assert_eq!(db.newest_minute_row().unwrap(), Some(T0 + HOUR_MS));
}

/// Puts the raw rows of `db` back in an older layout: the table made by `create` (with its
/// index, if any), filled in `order`.
/// A database from before has no day tables (`parts.rs`) nor the view over them.
fn to_older_layout(db: &Tsdb, create: &str, order: &str) {
    let days: Vec<String> = db.parts.borrow().tables(super::parts::Kind::Raw)[1..].to_vec();
    let drop_days: String = days.iter().map(|t| format!("DROP TABLE {t};")).collect();
    db.conn
        .execute_batch(&format!(
            "CREATE TABLE raw_new AS SELECT host, ts, seq, boot, data, top FROM raw_rows;
             DROP VIEW raw_rows; {drop_days} DROP TABLE raw; {create}
             INSERT INTO raw (host, ts, seq, boot, data, top)
                SELECT host, ts, seq, boot, data, top FROM raw_new ORDER BY {order};
             DROP TABLE raw_new;"
        ))
        .unwrap();
}

/// Opens `db` again and checks the raw tier is in today's layout (no index, each row under
/// its time's key) and reads as `before` did.
fn reopened_in_todays_layout(db: Tsdb, dir: &std::path::Path, id: i64, before: &[Sample]) {
    drop(db);
    let db = Tsdb::open(&dir.join("h.sqlite"), retention(), 500, T0).unwrap();
    let schema: String = db
        .conn
        .query_row(
            "SELECT sql FROM sqlite_schema WHERE name = 'raw'",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert!(!schema.contains("WITHOUT ROWID"), "{schema}");
    assert_eq!(raw_indexes(&db), Vec::<String>::new());
    let off_key: i64 = db
        .conn
        .query_row(
            "SELECT COUNT(*) FROM raw WHERE rowid / 256 != ts",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(off_key, 0);
    assert_eq!(window(&db, id, T0, T0 + 2 * HOUR_MS), before);
}

const OLD_COLUMNS: &str = "host INTEGER NOT NULL, ts INTEGER NOT NULL, seq INTEGER NOT NULL,
    boot INTEGER NOT NULL, data BLOB NOT NULL, top BLOB";

/// The raw table's indexes, each as "name (columns) unique".
fn raw_indexes(db: &Tsdb) -> Vec<String> {
    let mut stmt = db
        .conn
        .prepare(
            "SELECT l.name, (SELECT group_concat(name, ', ') FROM pragma_index_info(l.name)), l.\"unique\"
             FROM pragma_index_list('raw') l ORDER BY l.name",
        )
        .unwrap();
    let rows = stmt
        .query_map([], |r| {
            let unique: bool = r.get(2)?;
            Ok(format!(
                "{} ({}){}",
                r.get::<_, String>(0)?,
                r.get::<_, String>(1)?,
                if unique { " unique" } else { "" }
            ))
        })
        .unwrap();
    rows.collect::<rusqlite::Result<_>>().unwrap()
}

#[test]
fn each_older_raw_layout_moves_under_its_time_keys_and_reads_the_same() {
    // Before issue 22, a `WITHOUT ROWID` table keyed by (host, ts, seq); on 2026-12-07, a
    // rowid table with a unique index led by host, then by time.
    for (create, order) in [
        (
            format!("CREATE TABLE raw ({OLD_COLUMNS}, PRIMARY KEY (host, ts, seq)) WITHOUT ROWID;"),
            "host, ts, seq",
        ),
        (
            format!("CREATE TABLE raw ({OLD_COLUMNS}); CREATE UNIQUE INDEX raw_key ON raw (host, ts, seq);"),
            "host, ts, seq",
        ),
        (
            format!("CREATE TABLE raw ({OLD_COLUMNS}); CREATE UNIQUE INDEX raw_at ON raw (ts, host, seq);"),
            "ts, host, seq",
        ),
    ] {
        let dir = tempfile::tempdir().unwrap();
        let (db, id) = two_hours(dir.path());
        let before = window(&db, id, T0, T0 + 2 * HOUR_MS);
        assert_eq!(before.len(), 480);
        to_older_layout(&db, &create, order);
        assert_ne!(raw_indexes(&db).len() + usize::from(create.contains("WITHOUT")), 0);
        reopened_in_todays_layout(db, dir.path(), id, &before);
    }
}
