//! Checks every payload before it is stored: a bad one is rejected with a reason and counted,
//! never stored and never a panic. The bounds and the name rule are in [`names`].

pub mod names;

use broker::{JobEvent, Snapshot};
use serde::Serialize;

/// 2200-01-01 in Unix ms: a snapshot time beyond it is not a clock error but garbage.
pub const MAX_TS_MS: i64 = 7_258_118_400_000;

/// Why a payload was refused; counted per reason in `/health`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, thiserror::Error)]
#[serde(rename_all = "snake_case")]
pub enum Rejection {
    #[error("payload larger than the limit")]
    TooLarge,
    #[error("payload is not JSON")]
    NotJson,
    #[error("JSON with wrong types or missing fields")]
    WrongTypes,
    #[error("host id missing, longer than 64 bytes or not [A-Za-z0-9_-]+")]
    BadHost,
    #[error("host in the payload does not match the topic")]
    HostMismatch,
    #[error("a number is not finite or out of range")]
    BadNumber,
    /// A device, interface, sensor or job name (or an id) that is empty or holds a control
    /// character.
    #[error("a name is empty or holds a control character")]
    BadName,
    /// A name longer than 128 bytes, or an id (`boot_id`, `run_id`) longer than 64.
    #[error("a name or id is too long")]
    TooLong,
    /// More than 128 devices, interfaces or sensors, or more than 512 cores.
    #[error("a map or list has too many entries")]
    TooManyEntries,
    /// A job event dated more than a day ahead of the Pi's clock or over 400 days behind it.
    #[error("a time far from the Pi's clock")]
    BadTime,
    /// A snapshot from a broker or a publisher naming the host the Pi stores its own machine
    /// under (`[self]`): one host, one source.
    #[error("the Pi's own host ([self]) named by a publisher")]
    OwnHost,
}

/// How far ahead of the Pi's clock a job event may be dated (the history's bound too).
pub const EVENT_AHEAD_MS: i64 = 86_400_000;
/// How far behind it (a yearly job's last run, reconciled from `/events`).
pub const EVENT_BEHIND_MS: i64 = 400 * 86_400_000;

/// A job event's time is within a window around the Pi's clock.
pub fn event_time(event: &JobEvent, now_ms: i64) -> Result<(), Rejection> {
    let ts = event.ts_ms();
    if ts > now_ms.saturating_add(EVENT_AHEAD_MS) || ts < now_ms.saturating_sub(EVENT_BEHIND_MS) {
        return Err(Rejection::BadTime);
    }
    Ok(())
}

fn classify(e: &serde_json::Error) -> Rejection {
    match e.classify() {
        serde_json::error::Category::Data => Rejection::WrongTypes,
        _ => Rejection::NotJson,
    }
}

fn check_host(host: &str, topic_host: Option<&str>) -> Result<(), Rejection> {
    broker::validate_host_id(host).map_err(|_| Rejection::BadHost)?;
    match topic_host {
        Some(t) if t != host => Err(Rejection::HostMismatch),
        _ => Ok(()),
    }
}

/// Every float in the snapshot is finite, and percentages and temperatures are physical.
fn numbers_ok(s: &Snapshot) -> bool {
    let finite = |x: Option<f64>| x.is_none_or(f64::is_finite);
    let percent = |x: Option<f64>| x.is_none_or(|v| v.is_finite() && (0.0..=100.0).contains(&v));
    if !s.interval_s.is_finite() || !finite(s.uptime_s) {
        return false;
    }
    if let Some(cpu) = &s.cpu {
        if !percent(cpu.usage_percent)
            || !cpu.per_core_percent.iter().all(|c| percent(*c))
            || ![cpu.load_1m, cpu.load_5m, cpu.load_15m]
                .into_iter()
                .all(finite)
        {
            return false;
        }
    }
    let temp_ok = |t: f64| t.is_finite() && (-100.0..=250.0).contains(&t);
    s.thermal.cpu_temp_c.is_none_or(temp_ok) && s.thermal.sensors.values().all(|t| temp_ok(*t))
}

/// Parses and checks a snapshot. `topic_host` is the host level of the MQTT topic it came on.
pub fn snapshot(
    payload: &[u8],
    topic_host: Option<&str>,
    max_bytes: usize,
) -> Result<Snapshot, Rejection> {
    if payload.len() > max_bytes {
        return Err(Rejection::TooLarge);
    }
    let mut s: Snapshot = serde_json::from_slice(payload).map_err(|e| classify(&e))?;
    check_host(&s.host, topic_host)?;
    if s.seq == 0 || (s.ts == 0 && s.ts_ms == 0) {
        return Err(Rejection::WrongTypes);
    }
    // The seed's snapshots carry only `ts` (seconds).
    if s.ts_ms == 0 {
        s.ts_ms = s.ts.saturating_mul(1000);
    }
    // Far-off clocks are kept and flagged; times no clock could show are refused.
    if !(0..=MAX_TS_MS).contains(&s.ts_ms) {
        return Err(Rejection::BadNumber);
    }
    if !numbers_ok(&s) {
        return Err(Rejection::BadNumber);
    }
    names::check_snapshot(&s)?;
    Ok(s)
}

/// Parses and checks a job event.
pub fn event(
    payload: &[u8],
    topic_host: Option<&str>,
    max_bytes: usize,
) -> Result<JobEvent, Rejection> {
    if payload.len() > max_bytes {
        return Err(Rejection::TooLarge);
    }
    let mut e: JobEvent = serde_json::from_slice(payload).map_err(|e| classify(&e))?;
    check_host(e.host(), topic_host)?;
    if e.run_id().is_empty() {
        return Err(Rejection::WrongTypes);
    }
    names::check_event(&mut e)?;
    Ok(e)
}

#[cfg(test)]
mod tests {
    use super::*;

    const GOOD: &str = r#"{"v":1,"host":"tower","seq":5,"ts":1705180800,"ts_ms":1705180800123,"interval_s":15,
        "cpu":{"usage_percent":45.23,"load_1m":1.25,"load_5m":1.1,"load_15m":0.9,"cores":8},
        "thermal":{"cpu_temp_c":65.5,"sensors":{}}}"#;

    #[test]
    fn good_snapshot_passes() {
        let s = snapshot(GOOD.as_bytes(), Some("tower"), 4096).unwrap();
        assert_eq!(s.seq, 5);
        assert_eq!(s.cpu.unwrap().usage_percent, Some(45.23));
    }

    #[test]
    fn each_kind_of_bad_payload_has_its_reason() {
        let check = |p: &str, topic: Option<&str>| snapshot(p.as_bytes(), topic, 4096).unwrap_err();
        assert_eq!(check("not json", None), Rejection::NotJson);
        assert_eq!(check("{\"host\":\"a\"", None), Rejection::NotJson);
        assert_eq!(check("", None), Rejection::NotJson);
        assert_eq!(
            check(r#"{"host":"tower","seq":"five","ts":1}"#, None),
            Rejection::WrongTypes
        );
        assert_eq!(check(r#"[1,2]"#, None), Rejection::WrongTypes);
        assert_eq!(
            check(r#"{"host":"tower","ts":1}"#, None),
            Rejection::WrongTypes,
            "no seq"
        );
        assert_eq!(
            check(
                r#"{"host":"tower","seq":1,"ts":1,"cpu":{"usage_percent":1e999}}"#,
                None
            ),
            Rejection::NotJson
        );
        assert_eq!(
            check(
                r#"{"host":"tower","seq":1,"ts":1,"cpu":{"usage_percent":-3}}"#,
                None
            ),
            Rejection::BadNumber
        );
        assert_eq!(
            check(
                r#"{"host":"tower","seq":1,"ts":1,"thermal":{"cpu_temp_c":9999}}"#,
                None
            ),
            Rejection::BadNumber
        );
        assert_eq!(
            check(r#"{"host":"a/b","seq":1,"ts":1}"#, None),
            Rejection::BadHost
        );
        assert_eq!(check(r#"{"seq":1,"ts":1}"#, None), Rejection::BadHost);
        assert_eq!(check(GOOD, Some("other")), Rejection::HostMismatch);
        assert_eq!(
            snapshot(GOOD.as_bytes(), None, 100).unwrap_err(),
            Rejection::TooLarge
        );
    }

    /// A snapshot of `tower` with `n` disks named by `name(i)`.
    fn with_disks(n: usize, name: impl Fn(usize) -> String) -> Vec<u8> {
        let devices: serde_json::Map<String, serde_json::Value> = (0..n)
            .map(|i| {
                (
                    name(i),
                    serde_json::json!({"read_sectors": 1, "write_sectors": 2}),
                )
            })
            .collect();
        serde_json::to_vec(&serde_json::json!({
            "host": "tower", "seq": 1, "ts": 1705180800,
            "disk": {"read_sectors": 1, "write_sectors": 2, "devices": devices}
        }))
        .unwrap()
    }

    #[test]
    fn names_and_entries_are_bounded() {
        let max = 1 << 20;
        assert!(snapshot(&with_disks(128, |i| format!("sd{i}")), None, max).is_ok());
        assert_eq!(
            snapshot(&with_disks(129, |i| format!("sd{i}")), None, max).unwrap_err(),
            Rejection::TooManyEntries
        );
        assert_eq!(
            snapshot(&with_disks(1, |_| "sda\n} 1\nforged 1".into()), None, max).unwrap_err(),
            Rejection::BadName
        );
        assert_eq!(
            snapshot(&with_disks(1, |_| "sda\r".into()), None, max).unwrap_err(),
            Rejection::BadName
        );
        assert_eq!(
            snapshot(&with_disks(1, |_| "d".repeat(129)), None, max).unwrap_err(),
            Rejection::TooLong
        );
        let hostile = with_disks(2, |i| ["sd\"a", "c\\d"][i].into());
        let s = snapshot(&hostile, None, max).unwrap();
        let names: Vec<&String> = s.disk.as_ref().unwrap().devices.keys().collect();
        assert_eq!(
            names,
            ["c\\d", "sd\"a"],
            "quotes and backslashes are escaped later"
        );
        let check = |p: String| snapshot(p.as_bytes(), None, max).unwrap_err();
        let cores = vec!["1.0"; 513].join(",");
        assert_eq!(
            check(format!(
                r#"{{"host":"t","seq":1,"ts":1,"cpu":{{"per_core_percent":[{cores}]}}}}"#
            )),
            Rejection::TooManyEntries
        );
        let sensors: Vec<String> = (0..129).map(|i| format!(r#""s{i}":40"#)).collect();
        assert_eq!(
            check(format!(
                r#"{{"host":"t","seq":1,"ts":1,"thermal":{{"sensors":{{{}}}}}}}"#,
                sensors.join(",")
            )),
            Rejection::TooManyEntries
        );
        let ifaces = r#"{"eth0\u0000":{"rx_bytes":1,"tx_bytes":1}}"#;
        assert_eq!(
            check(format!(
                r#"{{"host":"t","seq":1,"ts":1,"network":{{"interfaces":{ifaces}}}}}"#
            )),
            Rejection::BadName
        );
        assert_eq!(
            check(format!(
                r#"{{"host":"t","seq":1,"ts":1,"boot_id":"{}"}}"#,
                "b".repeat(65)
            )),
            Rejection::TooLong
        );
        assert_eq!(
            check(format!(r#"{{"host":"{}","seq":1,"ts":1}}"#, "h".repeat(65))),
            Rejection::BadHost
        );
        assert!(snapshot(
            format!(r#"{{"host":"{}","seq":1,"ts":1}}"#, "h".repeat(64)).as_bytes(),
            None,
            max
        )
        .is_ok());
    }

    #[test]
    fn event_text_is_trimmed_and_names_checked() {
        let tail = format!("{}END", "x".repeat(10_000));
        let e = serde_json::json!({"type": "job_end", "run_id": "r", "name": "backup", "host": "tower",
                                   "exit_code": 1, "output_tail": tail, "error": "e".repeat(5000)});
        let JobEvent::JobEnd(end) = event(e.to_string().as_bytes(), None, 1 << 20).unwrap() else {
            panic!("not an end");
        };
        assert_eq!(end.output_tail.len(), names::MAX_OUTPUT_TAIL_BYTES);
        assert!(end.output_tail.starts_with("…x") && end.output_tail.ends_with("xEND"));
        assert_eq!(end.error.unwrap().len(), names::MAX_COMMAND_BYTES);
        let bad = |name: &str, run: &str| {
            let e =
                serde_json::json!({"type": "job_start", "run_id": run, "name": name, "host": "t"});
            event(e.to_string().as_bytes(), None, 1 << 20).unwrap_err()
        };
        assert_eq!(bad("a\nb", "r"), Rejection::BadName);
        assert_eq!(bad(&"n".repeat(129), "r"), Rejection::TooLong);
        assert_eq!(bad("ok", &"r".repeat(65)), Rejection::TooLong);
    }

    #[test]
    fn filesystems_are_capped_in_count_and_name_length() {
        use names::{MAX_FILESYSTEMS, MAX_FILESYSTEM_NAME_BYTES};
        let with = |entries: &str| {
            format!(r#"{{"host":"tower","seq":1,"ts":1,"filesystems":{{{entries}}}}}"#)
        };
        let entry = |i: usize| format!(r#""/m{i}":{{"device":"sda{i}","fstype":"ext4"}}"#);
        let many = |n: usize| (0..n).map(entry).collect::<Vec<_>>().join(",");
        let ok = snapshot(with(&many(MAX_FILESYSTEMS)).as_bytes(), None, 1 << 20).unwrap();
        assert_eq!(ok.filesystems.unwrap().len(), MAX_FILESYSTEMS);
        let check = |p: String| snapshot(p.as_bytes(), None, 1 << 20).unwrap_err();
        assert_eq!(
            check(with(&many(MAX_FILESYSTEMS + 1))),
            Rejection::TooManyEntries
        );
        let long = "x".repeat(MAX_FILESYSTEM_NAME_BYTES + 1);
        assert_eq!(
            check(with(&format!(r#""/{long}":null"#))),
            Rejection::TooLong
        );
        assert_eq!(
            check(with(&format!(r#""/":{{"device":"{long}"}}"#))),
            Rejection::TooLong
        );
        assert_eq!(
            check(with(r#""/mnt/a\nb":null"#)),
            Rejection::BadName,
            "a newline in a mount point would forge a label"
        );
        assert!(snapshot(with(r#""/mnt/nas":null"#).as_bytes(), None, 4096).is_ok());
    }

    #[test]
    fn seed_payload_without_ts_ms_gets_one() {
        let s = snapshot(br#"{"host":"tower","seq":1,"ts":1705180800}"#, None, 4096).unwrap();
        assert_eq!(s.ts_ms, 1705180800000);
    }

    #[test]
    fn events_are_checked_too() {
        let e = br#"{"type":"job_end","run_id":"r","name":"n","host":"tower","exit_code":3}"#;
        assert!(event(e, Some("tower"), 4096).is_ok());
        assert_eq!(
            event(e, Some("x"), 4096).unwrap_err(),
            Rejection::HostMismatch
        );
        assert_eq!(
            event(
                br#"{"type":"job_party","run_id":"r","host":"tower"}"#,
                None,
                4096
            )
            .unwrap_err(),
            Rejection::WrongTypes
        );
        assert_eq!(
            event(br#"{"type":"job_end","host":"tower"}"#, None, 4096).unwrap_err(),
            Rejection::WrongTypes
        );
    }
}
