//! Issue 20 item 2, the degraded case: where the system bus cannot be reached (no systemd, a
//! container, a user service that cannot see it), `failed_units` is `null`, the log says so
//! once, and the bus is not asked again every sample. (The live case, a unit that fails and
//! is reset, runs under a real systemd in `systemd.rs`.)
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::time::Duration;

use common::Publisher;

#[test]
fn without_a_system_bus_failed_units_is_null_and_said_once() {
    let dir = tempfile::tempdir().unwrap();
    let p = Publisher::start_with_env(
        dir.path(),
        &["--interval", "200ms"],
        &[(
            "DBUS_SYSTEM_BUS_ADDRESS",
            "unix:path=/nonexistent/system_bus_socket",
        )],
    );
    let latest = p.wait_for("/latest", |s| s["seq"].as_u64() >= Some(6));
    assert!(latest["failed_units"].is_null(), "{latest}");
    assert!(
        latest.as_object().unwrap().contains_key("failed_units"),
        "null, not absent"
    );
    let health = p.json("/health");
    assert_eq!(
        health["collector_errors"]["units"], 1,
        "one try per minute, not per sample"
    );
    let said = std::iter::from_fn(|| p.log.recv_timeout(Duration::from_millis(200)).ok())
        .filter(|l| l.contains("failed systemd units are not reported"))
        .count();
    assert_eq!(said, 1);
}
