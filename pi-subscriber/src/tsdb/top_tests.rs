//! The process lists in the history: nearest sample in the raw tier, the minute's peaks after,
//! pruned with their tiers, gone with a rollback or a forgotten host, first to go for size.

use broker::{Cpu, Memory, ProcessTop, Processes, Snapshot};

use super::parts::Kind;
use super::rollup::{DAY_MS, HOUR_MS, MINUTE_MS};
use super::*;

const T0: i64 = 1_700_006_400_000; // a minute boundary

fn retention() -> Retention {
    Retention {
        raw_ms: 48 * HOUR_MS,
        minute_ms: 14 * DAY_MS,
        hour_ms: 730 * DAY_MS,
    }
}

fn proc(pid: u32, name: &str, cpu: f64, rss: u64) -> ProcessTop {
    ProcessTop {
        pid,
        name: name.into(),
        user: Some("root".into()),
        cpu_percent: Some(cpu),
        rss_bytes: rss,
    }
}

/// Sample `seq` (15 s apart from T0): host CPU `cpu` %, `used` MB of 4096 used; the top CPU
/// process is `cpu-<seq>` and the top memory one `mem-<seq>`.
fn snap(seq: u64, cpu: f64, used: u64) -> Snapshot {
    Snapshot {
        host: "tower".into(),
        seq,
        ts_ms: T0 + 15_000 * seq as i64,
        boot_id: Some("b".into()),
        cpu: Some(Cpu {
            usage_percent: Some(cpu),
            ..Cpu::default()
        }),
        memory: Some(Memory {
            total_mb: 4096,
            available_mb: 4096 - used,
            ..Memory::default()
        }),
        processes: Some(Processes {
            count: 100 + seq as u32,
            top_cpu: vec![
                proc(1000 + seq as u32, &format!("cpu-{seq}"), cpu, 1 << 20),
                proc(1, "systemd", 0.07, 12_288),
            ],
            top_rss: vec![proc(
                2000 + seq as u32,
                &format!("mem-{seq}"),
                0.5,
                used << 20,
            )],
        }),
        ..Snapshot::default()
    }
}

/// Eight samples over two minutes. Minute 0: CPU 10, 90, 30, 20 and memory 100, 200, 400,
/// 300 MB; minute 1: CPU 50, 50, 40, 10 and memory 500, 500, 100, 100.
fn filled(db: &mut Tsdb) {
    let cpu = [10.0, 90.0, 30.0, 20.0, 50.0, 50.0, 40.0, 10.0];
    let used = [100, 200, 400, 300, 500, 500, 100, 100];
    for seq in 0..8u64 {
        let s = snap(seq, cpu[seq as usize], used[seq as usize]);
        db.ingest(&s, true, s.ts_ms).unwrap();
    }
    db.commit().unwrap();
}

fn names(list: &Option<TopList>) -> (i64, String) {
    let l = list.as_ref().expect("a list");
    (l.ts_ms, l.processes[0].name.clone())
}

/// Rows of `table`; `"top"`: the raw rows carrying lists; `"top_minute"`: the minute peaks
/// over their days' tables (`parts.rs`).
fn count(db: &Tsdb, table: &str) -> i64 {
    let sql = match table {
        "top" => {
            let rows = db.all_raw_for_test().into_iter();
            return rows.filter(|r| r.top.is_some()).count() as i64;
        }
        "top_minute" => return db.peak_minutes_for_test(""),
        "raw" => return db.all_raw_for_test().len() as i64,
        t => format!("SELECT COUNT(*) FROM {t}"),
    };
    db.conn.query_row(&sql, [], |r| r.get(0)).unwrap()
}

#[test]
fn the_raw_tier_answers_with_the_nearest_sample_exactly() {
    let mut db = Tsdb::open_in_memory(retention(), 500, T0).unwrap();
    filled(&mut db);
    let now = T0 + 120_000;
    // 40 s is nearer sample 3 (45 s) than sample 2 (30 s).
    let a = db
        .top_at("tower", T0 + 40_000, 0, 30_000, now)
        .unwrap()
        .unwrap();
    assert_eq!(a.tier, Tier::Raw);
    let s3 = snap(3, 20.0, 300).processes.unwrap();
    assert_eq!(a.top_cpu.as_ref().unwrap().processes, s3.top_cpu);
    assert_eq!(a.top_rss.as_ref().unwrap().processes, s3.top_rss);
    assert_eq!(names(&a.top_cpu), (T0 + 45_000, "cpu-3".into()));
    // Nothing within 10 s of 3 min, so the minute tier answers: no minute row there either.
    assert_eq!(
        db.top_at("tower", T0 + 180_000, 0, 10_000, now).unwrap(),
        None
    );
    assert_eq!(db.top_at("nas", T0, 0, 30_000, now).unwrap(), None);
}

#[test]
fn each_minute_keeps_the_lists_of_its_cpu_and_memory_peaks() {
    let mut db = Tsdb::open_in_memory(retention(), 500, T0).unwrap();
    filled(&mut db);
    // No row of another table per sample: the lists ride in the raw rows, the minute peaks
    // are written when those go.
    assert_eq!(count(&db, "top"), 8);
    assert_eq!(count(&db, "top_minute"), 0);
    let now = T0 + 120_000;
    // A one-minute step reads the minute's peaks: CPU 90 at 15 s, memory 400 MB at 30 s.
    let a = db
        .top_at("tower", T0 + 20_000, MINUTE_MS, 30_000, now)
        .unwrap()
        .unwrap();
    assert_eq!(a.tier, Tier::Minute);
    assert_eq!(names(&a.top_cpu), (T0 + 15_000, "cpu-1".into()));
    assert_eq!(names(&a.top_rss), (T0 + 30_000, "mem-2".into()));
    // Minute 1: a tie (50, 50; 500, 500) keeps the first.
    let a = db
        .top_at("tower", T0 + 60_000, MINUTE_MS, 30_000, now)
        .unwrap()
        .unwrap();
    assert_eq!(names(&a.top_cpu), (T0 + 60_000, "cpu-4".into()));
    assert_eq!(names(&a.top_rss), (T0 + 60_000, "mem-4".into()));
    // Over both minutes: the highest of each.
    let a = db.top_in("tower", T0, T0 + 120_000).unwrap().unwrap();
    assert_eq!(names(&a.top_cpu), (T0 + 15_000, "cpu-1".into()));
    assert_eq!(names(&a.top_rss), (T0 + 60_000, "mem-4".into()));
    // A sample that arrives late with a higher peak takes its minute over.
    let late = snap(9, 95.0, 50);
    let late = Snapshot {
        seq: 100,
        ts_ms: T0 + 5_000,
        ..late
    };
    db.ingest(&late, false, now).unwrap();
    db.commit().unwrap();
    let a = db.top_in("tower", T0, T0 + 60_000).unwrap().unwrap();
    assert_eq!(names(&a.top_cpu), (T0 + 5_000, "cpu-9".into()));
    assert_eq!(names(&a.top_rss), (T0 + 30_000, "mem-2".into()));
}

#[test]
fn lists_are_pruned_with_their_tiers_and_the_minute_peaks_answer_after_48_hours() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("h.sqlite");
    let mut db = Tsdb::open(&path, retention(), 500, T0).unwrap();
    filled(&mut db);
    // Past the raw tier's 48 h the minutes' peaks are kept; the raw rows (and their lists)
    // stay until their whole day is past it (`parts.rs`), and are not kept twice.
    db.maintain(T0 + 49 * HOUR_MS).unwrap();
    assert_eq!((count(&db, "top"), count(&db, "top_minute")), (8, 2));
    db.maintain(T0 + 50 * HOUR_MS).unwrap();
    assert_eq!((count(&db, "top"), count(&db, "top_minute")), (8, 2));
    // T0 starts a day: all of it is past the raw tier's 48 h 72 h after T0.
    let later = T0 + 72 * HOUR_MS;
    db.maintain(later).unwrap();
    assert_eq!((count(&db, "top"), count(&db, "top_minute")), (0, 2));
    let a = db
        .top_at("tower", T0 + 20_000, 0, 30_000, later)
        .unwrap()
        .unwrap();
    assert_eq!(a.tier, Tier::Minute);
    assert_eq!(names(&a.top_cpu), (T0 + 15_000, "cpu-1".into()));
    drop(db);
    // Across a restart too, and gone with the minute tier.
    let mut db = Tsdb::open(&path, retention(), 500, later).unwrap();
    assert!(db.top_in("tower", T0, T0 + 60_000).unwrap().is_some());
    db.maintain(T0 + 15 * DAY_MS).unwrap();
    assert_eq!(count(&db, "top_minute"), 0);
}

#[test]
fn a_rollback_takes_the_lists_with_their_samples_and_forget_deletes_them() {
    let mut db = Tsdb::open_in_memory(retention(), 500, T0).unwrap();
    filled(&mut db);
    let s = snap(8, 99.0, 999);
    db.ingest(&s, true, s.ts_ms).unwrap();
    assert_eq!(count(&db, "top"), 9);
    db.roll_back();
    assert_eq!((count(&db, "top"), count(&db, "raw")), (8, 8));
    let a = db.top_in("tower", T0, T0 + 180_000).unwrap().unwrap();
    assert_eq!(
        names(&a.top_cpu),
        (T0 + 15_000, "cpu-1".into()),
        "not the rolled-back 99 %"
    );
    // The sample came back (a backfill): its lists are there again.
    db.ingest(&s, false, s.ts_ms).unwrap();
    db.commit().unwrap();
    assert_eq!(
        names(
            &db.top_in("tower", T0, T0 + 180_000)
                .unwrap()
                .unwrap()
                .top_cpu
        )
        .1,
        "cpu-8"
    );
    assert!(db.forget("tower").unwrap());
    assert_eq!((count(&db, "top"), count(&db, "top_minute")), (0, 0));
}

#[test]
fn over_max_disk_the_lists_go_with_their_raw_rows_and_the_minute_peaks_stay() {
    let dir = tempfile::tempdir().unwrap();
    let mut db = Tsdb::open(&dir.path().join("h.sqlite"), retention(), 500, T0).unwrap();
    for seq in 0..2000u64 {
        let s = snap(seq, (seq % 100) as f64, 100 + seq % 1000);
        db.ingest(&s, true, s.ts_ms).unwrap();
    }
    db.commit().unwrap();
    let used = db.used_bytes().unwrap();
    db.bound_disk(used - used / 4).unwrap();
    let (raw, top) = (count(&db, "raw"), count(&db, "top"));
    assert!(raw < 2000, "the oldest raw rows went");
    assert_eq!(top, raw, "each raw row keeps its lists");
}

#[test]
fn a_database_from_before_the_lists_gets_their_column() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("h.sqlite");
    let conn = rusqlite::Connection::open(&path).unwrap();
    conn.execute_batch(
        "CREATE TABLE raw (host INTEGER NOT NULL, ts INTEGER NOT NULL, seq INTEGER NOT NULL,
         boot INTEGER NOT NULL, data BLOB NOT NULL, PRIMARY KEY (host, ts, seq)) WITHOUT ROWID;
         INSERT INTO raw VALUES (1, 5, 1, 0, x'');",
    )
    .unwrap();
    drop(conn);
    let mut db = Tsdb::open(&path, retention(), 500, T0).unwrap();
    filled(&mut db);
    assert_eq!((count(&db, "raw"), count(&db, "top")), (9, 8));
}

/// The layout of `top_minute`'s key, as its statement says.
fn peaks_key(db: &Tsdb) -> String {
    let sql: String = db
        .conn
        .query_row(
            "SELECT sql FROM sqlite_schema WHERE name = 'top_minute'",
            [],
            |r| r.get(0),
        )
        .unwrap();
    sql[sql.find("PRIMARY KEY").unwrap()..].to_owned()
}

#[test]
fn minute_peaks_keyed_by_host_first_move_under_the_time_at_open_and_answer_the_same() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("h.sqlite");
    let later = T0 + 49 * HOUR_MS;
    let mut db = Tsdb::open(&path, retention(), 500, T0).unwrap();
    filled(&mut db);
    db.maintain(later).unwrap();
    assert_eq!(peaks_key(&db), "PRIMARY KEY (start, host)) WITHOUT ROWID");
    // Every peak, over the table of before and the days' tables (`parts.rs`).
    let rows = |db: &Tsdb| -> Vec<(i64, i64, f64, Vec<u8>)> {
        let mut sql = String::new();
        for table in db.parts.borrow().tables(Kind::Top) {
            if !sql.is_empty() {
                sql.push_str(" UNION ALL ");
            }
            sql.push_str(&format!(
                "SELECT host, start, cpu_peak, CAST(cpu || mem AS BLOB) FROM {table}"
            ));
        }
        let mut stmt = db.conn.prepare(&format!("{sql} ORDER BY 1, 2")).unwrap();
        let rows = stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)));
        rows.unwrap().collect::<rusqlite::Result<_>>().unwrap()
    };
    let today = rows(&db);
    // Two minutes' peaks, in their hour's row (`top_hour.rs`).
    assert_eq!((today.len(), db.peak_minutes_for_test("")), (1, 2));
    let days = db.days_of(Kind::Top);
    assert_eq!(days.len(), 1);
    let answer = db.top_in("tower", T0, T0 + 120_000).unwrap();
    // The layout before: every peak in `top_minute`, keyed by host first.
    db.conn
        .execute_batch(&format!(
            "BEGIN; DROP TABLE top_minute;
             CREATE TABLE top_minute (
                host INTEGER NOT NULL, start INTEGER NOT NULL,
                cpu_peak REAL NOT NULL, cpu_ts INTEGER NOT NULL, cpu BLOB NOT NULL,
                mem_peak REAL NOT NULL, mem_ts INTEGER NOT NULL, mem BLOB NOT NULL,
                PRIMARY KEY (host, start)) WITHOUT ROWID;
             INSERT INTO top_minute SELECT host, start, cpu_peak, cpu_ts, cpu, mem_peak, mem_ts, mem FROM {t};
             DROP TABLE {t}; COMMIT;",
            t = super::parts::Parts::name(Kind::Top, days[0])
        ))
        .unwrap();
    assert_eq!(peaks_key(&db), "PRIMARY KEY (host, start)) WITHOUT ROWID");
    drop(db);
    let db = Tsdb::open(&path, retention(), 500, later).unwrap();
    assert_eq!(peaks_key(&db), "PRIMARY KEY (start, host)) WITHOUT ROWID");
    assert_eq!(db.days_of(Kind::Top), Vec::<i64>::new());
    assert_eq!(rows(&db), today);
    assert_eq!(db.top_in("tower", T0, T0 + 120_000).unwrap(), answer);
    assert!(answer.is_some());
}
