//! A fixed-schedule ticker that wakes its thread once a tick.
//!
//! tokio's timer wheel parks its thread until the slot a timer is in comes up, then files the
//! timer one level finer: a 15 s tick wakes the runtime's thread three times (its 4.096 s slot,
//! its 64 ms slot, its 1 ms slot; issue 22). A periodic `timerfd` (`CLOCK_MONOTONIC`, as
//! tokio's clock) wakes it once, at the tick. Missed ticks are skipped, the next one keeps to
//! the schedule (the kernel counts the expirations; tokio's `MissedTickBehavior::Skip`). Where
//! no `timerfd` can be made, or tokio's clock is paused (tests with `start_paused`: a timerfd
//! would not see that clock jump), tokio's `interval` does the same with its wakeups.

use std::io;
use std::os::fd::OwnedFd;
use std::time::Duration;

use rustix::time::{
    timerfd_create, timerfd_settime, Itimerspec, TimerfdClockId, TimerfdFlags, TimerfdTimerFlags,
    Timespec,
};
use tokio::io::unix::AsyncFd;
use tokio::time::{Instant, MissedTickBehavior};

/// Ticks at `first`, then every `period` after it.
#[derive(Debug)]
pub struct Ticker(Inner);

#[derive(Debug)]
enum Inner {
    Timerfd(AsyncFd<OwnedFd>),
    Tokio(tokio::time::Interval),
}

fn timespec(d: Duration) -> Timespec {
    Timespec {
        tv_sec: i64::try_from(d.as_secs()).unwrap_or(i64::MAX),
        tv_nsec: i64::from(d.subsec_nanos()),
    }
}

fn timerfd(first: Instant, period: Duration) -> io::Result<AsyncFd<OwnedFd>> {
    let fd = timerfd_create(
        TimerfdClockId::Monotonic,
        TimerfdFlags::NONBLOCK | TimerfdFlags::CLOEXEC,
    )?;
    // Relative to now; a zero value would disarm the timer.
    let value = first
        .saturating_duration_since(Instant::now())
        .max(Duration::from_nanos(1));
    let spec = Itimerspec {
        it_interval: timespec(period),
        it_value: timespec(value),
    };
    timerfd_settime(&fd, TimerfdTimerFlags::empty(), &spec)?;
    register(fd)
}

#[allow(unsafe_code)]
fn register(fd: OwnedFd) -> io::Result<AsyncFd<OwnedFd>> {
    // SAFETY: `AsyncFd::register_with_interest` asks that the descriptor stay open, and
    // `as_raw_fd` return the same one, for the life of the `AsyncFd`: it owns the `OwnedFd`,
    // which closes it only when dropped, and nothing else reaches it.
    unsafe { AsyncFd::register_with_interest(fd, tokio::io::Interest::READABLE) }
        .map_err(io::Error::from)
}

/// Whether tokio's clock stands still (`tokio::time::pause`, test builds only): it did not
/// move while the system's monotonic clock did.
fn tokio_clock_paused() -> bool {
    let before = Instant::now();
    let std_before = std::time::Instant::now();
    // A few nanoseconds: until the system's clock has moved at all.
    while std::time::Instant::now() == std_before {
        std::hint::spin_loop();
    }
    Instant::now() == before
}

impl Ticker {
    /// Must be called within a tokio runtime with I/O and time enabled. `period` must not be
    /// zero.
    pub fn new(first: Instant, period: Duration) -> Self {
        let fd = if tokio_clock_paused() {
            Err(io::Error::other("tokio's clock is paused"))
        } else {
            timerfd(first, period)
        };
        match fd {
            Ok(fd) => Self(Inner::Timerfd(fd)),
            Err(error) => {
                tracing::debug!(%error, "no timerfd; ticking with tokio's timer");
                let mut interval = tokio::time::interval_at(first, period);
                interval.set_missed_tick_behavior(MissedTickBehavior::Skip);
                Self(Inner::Tokio(interval))
            }
        }
    }

    /// Whether this ticker wakes its thread once a tick (a `timerfd`).
    pub fn is_timerfd(&self) -> bool {
        matches!(self.0, Inner::Timerfd(_))
    }

    /// Completes at the next tick: how many ticks have passed since the last call (more than
    /// one after a stall, when the missed ones were skipped).
    pub async fn tick(&mut self) -> u64 {
        match &mut self.0 {
            Inner::Tokio(interval) => {
                interval.tick().await;
                1
            }
            Inner::Timerfd(fd) => loop {
                let Ok(mut ready) = fd.readable().await else {
                    // The reactor is gone (runtime shutting down): no more ticks.
                    return std::future::pending().await;
                };
                let mut buf = [0u8; 8];
                match ready.try_io(|fd| Ok(rustix::io::read(fd.get_ref(), &mut buf)?)) {
                    Ok(Ok(8)) => return u64::from_ne_bytes(buf).max(1),
                    // Short reads do not happen on a timerfd; `EAGAIN` clears readiness.
                    Ok(_) | Err(_) => continue,
                }
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn on_a_paused_clock_it_follows_tokio() {
        let start = Instant::now();
        let mut t = Ticker::new(start + Duration::from_secs(1), Duration::from_secs(15));
        assert!(!t.is_timerfd());
        t.tick().await;
        t.tick().await;
        assert_eq!(start.elapsed(), Duration::from_secs(16));
    }

    #[tokio::test]
    async fn ticks_on_schedule_and_skips_what_it_missed() {
        let start = Instant::now();
        let mut t = Ticker::new(start + Duration::from_millis(30), Duration::from_millis(50));
        assert!(t.is_timerfd(), "a timerfd on Linux");
        assert_eq!(t.tick().await, 1);
        let first = start.elapsed();
        assert!(first >= Duration::from_millis(30), "{first:?}");
        assert_eq!(t.tick().await, 1);
        let second = start.elapsed();
        assert!(second >= Duration::from_millis(80), "{second:?}");
        // A stall over three periods: one tick reports them, the next keeps to the schedule.
        std::thread::sleep(Duration::from_millis(160));
        assert!(t.tick().await >= 3);
        assert_eq!(t.tick().await, 1);
    }
}
