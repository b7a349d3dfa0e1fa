//! What the publisher's benchmarks share: CPU time (user + system) from getrusage.
#![allow(unsafe_code, dead_code)]

use std::time::Duration;

/// CPU time of `who` (`libc::RUSAGE_SELF` or `libc::RUSAGE_CHILDREN`).
pub fn cpu_time_of(who: libc::c_int) -> Duration {
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: getrusage writes into the struct we own.
    unsafe { libc::getrusage(who, &mut usage) };
    let tv = |t: libc::timeval| Duration::new(t.tv_sec as u64, t.tv_usec as u32 * 1000);
    tv(usage.ru_utime) + tv(usage.ru_stime)
}

/// This process's CPU time.
pub fn cpu_time() -> Duration {
    cpu_time_of(libc::RUSAGE_SELF)
}
