//! Loopback ports for servers a test must start on a port it names in advance (a restarted
//! daemon found again, a mosquitto or Prometheus that cannot report a port 0 it was given).
//!
//! A port from `bind(":0")`, closed again, is a port in the kernel's ephemeral range: the very
//! range from which every outgoing connection (a Pi's MQTT client, a poller, an HTTP test
//! client) and every other test's `bind(":0")` draw their local port. Between the close and the
//! daemon's own bind, another test running beside it can take it, and the daemon fails with
//! "Address already in use". So the ports handed out here lie *below* the ephemeral range, where
//! the kernel never hands out a port by itself; each is checked free by binding it, and none is
//! handed out twice by one test process. Std only: included by `#[path]` from other packages.
#![allow(dead_code)]

use std::collections::HashSet;
use std::hash::{BuildHasher, RandomState};
use std::net::TcpListener;
use std::sync::Mutex;

/// Ports already handed out by this test process (its tests run as threads side by side).
static HANDED_OUT: Mutex<Option<HashSet<u16>>> = Mutex::new(None);

/// The lowest port the kernel hands out by itself (`ip_local_port_range`), 32768 when unknown.
fn ephemeral_low() -> u16 {
    std::fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range")
        .ok()
        .and_then(|s| s.split_whitespace().next()?.parse().ok())
        .unwrap_or(32768)
}

/// The range this module draws from: from 10000 up to just below the ephemeral range (or,
/// were that range to start too low to leave room, the top of the port space above it).
pub fn port_range() -> (u16, u16) {
    let low = ephemeral_low();
    if low > 12000 {
        (10000, low - 1)
    } else {
        (61000, 65535)
    }
}

/// A loopback port free right now, outside the ephemeral range, never handed out before by
/// this process.
pub fn free_port() -> u16 {
    let (low, high) = port_range();
    let span = u64::from(high - low) + 1;
    let seed = RandomState::new();
    let mut handed_out = HANDED_OUT.lock().unwrap_or_else(|e| e.into_inner());
    let handed_out = handed_out.get_or_insert_with(HashSet::new);
    for attempt in 0u64..100_000 {
        let offset = seed.hash_one(attempt) % span;
        let port = low + u16::try_from(offset).unwrap_or(0);
        if handed_out.contains(&port) || TcpListener::bind(("127.0.0.1", port)).is_err() {
            continue;
        }
        handed_out.insert(port);
        return port;
    }
    panic!("no free loopback port between {low} and {high}");
}

/// `N` distinct free ports (see [`free_port`]).
pub fn free_ports<const N: usize>() -> [u16; N] {
    std::array::from_fn(|_| free_port())
}
