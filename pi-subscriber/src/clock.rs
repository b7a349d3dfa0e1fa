//! The Pi's wall clock: daemon-kit's one clock helper, in Unix milliseconds.

pub use daemon_kit::clock::unix_ms_now;
