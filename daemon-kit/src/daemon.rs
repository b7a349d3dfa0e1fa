//! What every binary of the project does the same way: logging, the runtime, the shutdown
//! signal and where state lives.

use std::io::IsTerminal;
use std::path::PathBuf;

use tokio_util::sync::CancellationToken;

/// The log filter when `RUST_LOG` is not set. rumqttd logs ordinary client disconnects at
/// ERROR level, so it is silenced unless asked for (`RUST_LOG=info,rumqttd=info`); a broker
/// that cannot listen is reported by our own code.
pub const DEFAULT_LOG_FILTER: &str = "info,rumqttd=off";

/// Logs to stderr through `tracing`, filtered by `RUST_LOG`, in colour only on a terminal.
pub fn init_logging() {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(DEFAULT_LOG_FILTER)),
        )
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .init();
}

/// The daemons' runtime: two workers are plenty for this load, and keep the RSS of a Pi
/// small; blocking file I/O has its own few threads. An idle blocking thread is kept for a
/// minute (tokio's default is 10 s): work that comes every 15 s (a sample) finds it there
/// instead of starting a thread each time (issue 22). A parked thread does not wake.
pub fn runtime() -> std::io::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .max_blocking_threads(4)
        .thread_keep_alive(BLOCKING_KEEP_ALIVE)
        .enable_all()
        .build()
}

/// An idle daemon's runtime (the publisher's): every task on the thread that calls
/// `block_on`, blocking file I/O on up to four threads kept for a minute as in [`runtime`].
/// No worker threads: a timer, a socket or a finished blocking task wakes that one thread,
/// where a worker pool woke a worker, which woke the thread in `block_on` or another worker
/// to share the task (issue 22: fewer wakeups, two fewer thread stacks and malloc arenas).
/// A task that hogs the thread delays the others: the daemons' tasks only wait.
pub fn idle_runtime() -> std::io::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_current_thread()
        .max_blocking_threads(4)
        .thread_keep_alive(BLOCKING_KEEP_ALIVE)
        .enable_all()
        .build()
}

/// One malloc arena for all threads (glibc gives each thread that allocates its own, up to
/// 8 per core, each with its own free lists and slack): the publisher's broker, blocking and
/// helper threads allocate little and seldom, and the Pi's store, opened on a blocking
/// thread, kept that thread's arena apart from the rest (issue 22: ~150 kB less RSS for the
/// publisher, 0.3–0.8 MB for the Pi's daemon on ten hosts). First thing in `main`, before any
/// other thread exists.
pub fn one_malloc_arena() {
    #[cfg(target_env = "gnu")]
    // SAFETY: mallopt(3) with a documented parameter, called before any other thread exists.
    #[allow(unsafe_code)]
    unsafe {
        libc::mallopt(libc::M_ARENA_MAX, 1);
    }
}

/// How long an idle blocking thread of [`runtime`] is kept.
pub const BLOCKING_KEEP_ALIVE: std::time::Duration = std::time::Duration::from_secs(60);

/// Completes on the first SIGINT or SIGTERM.
pub async fn shutdown_signal() {
    use tokio::signal::unix::{signal, SignalKind};
    let (Ok(mut term), Ok(mut int)) = (
        signal(SignalKind::terminate()),
        signal(SignalKind::interrupt()),
    ) else {
        tracing::error!("cannot install signal handlers; stop with SIGKILL");
        return std::future::pending().await;
    };
    tokio::select! {
        _ = term.recv() => tracing::info!("SIGTERM received, shutting down"),
        _ = int.recv() => tracing::info!("SIGINT received, shutting down"),
    }
}

/// A token cancelled on the first SIGINT or SIGTERM; every task watches it.
pub fn shutdown_token() -> CancellationToken {
    let token = CancellationToken::new();
    let cancel = token.clone();
    tokio::spawn(async move {
        shutdown_signal().await;
        cancel.cancel();
    });
    token
}

/// Where a daemon keeps its state: `$STATE_DIRECTORY` (systemd's `StateDirectory=`, first
/// entry), else `$XDG_STATE_HOME/<name>`, else `~/.local/state/<name>`, else `./<name>-data`.
pub fn default_state_dir(name: &str) -> PathBuf {
    let env = |k: &str| {
        std::env::var_os(k)
            .filter(|v| !v.is_empty())
            .map(PathBuf::from)
    };
    if let Some(dir) = env("STATE_DIRECTORY") {
        let first = dir
            .to_string_lossy()
            .split(':')
            .next()
            .unwrap_or("")
            .to_owned();
        return PathBuf::from(first);
    }
    if let Some(state) = env("XDG_STATE_HOME") {
        return state.join(name);
    }
    if let Some(home) = env("HOME") {
        return home.join(".local/state").join(name);
    }
    PathBuf::from(format!("{name}-data"))
}

/// `error` and its causes on one line, `a: b: c`, for a binary's last words. Each cause is
/// said once: one whose text the line already holds is skipped, as with an error whose
/// message ends with its own source (`cannot listen on ADDR: {source}`), which anyhow's
/// `{:#}` would print twice.
pub fn report(error: &(dyn std::error::Error + 'static)) -> String {
    let mut line = error.to_string();
    let mut cause = error.source();
    while let Some(error) = cause {
        let text = error.to_string();
        if !line.contains(&text) {
            line.push_str(": ");
            line.push_str(&text);
        }
        cause = error.source();
    }
    line
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Says its source in its message and returns it as `source()` too, as thiserror does
    /// for `#[error("cannot listen on {addr}: {source}")]`.
    #[derive(Debug, thiserror::Error)]
    #[error("cannot listen on {addr} (broker.listen): {source}")]
    struct Listen {
        addr: &'static str,
        source: std::io::Error,
    }

    /// A context that does not say its source, as anyhow's `.context(…)`.
    #[derive(Debug, thiserror::Error)]
    #[error("{context}")]
    struct Context<E: std::error::Error + 'static> {
        context: &'static str,
        #[source]
        source: E,
    }

    fn in_use() -> std::io::Error {
        std::io::Error::from_raw_os_error(98)
    }

    #[test]
    fn report_says_each_cause_once() {
        let listen = Listen {
            addr: "127.0.0.1:1883",
            source: in_use(),
        };
        let wrapped = Context {
            context: "cannot start the embedded MQTT broker",
            source: listen,
        };
        assert_eq!(
            report(&wrapped),
            "cannot start the embedded MQTT broker: cannot listen on 127.0.0.1:1883 \
             (broker.listen): Address already in use (os error 98)"
        );
        let bare = Context {
            context: "cannot listen on 127.0.0.1:9000 (http.bind)",
            source: in_use(),
        };
        assert_eq!(
            report(&bare),
            "cannot listen on 127.0.0.1:9000 (http.bind): Address already in use (os error 98)"
        );
        assert_eq!(report(&in_use()), "Address already in use (os error 98)");
    }
}
