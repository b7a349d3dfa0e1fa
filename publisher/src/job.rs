//! `publisher job [--name NAME] -- CMD ARGS…`: runs a batch job and records it.
//!
//! The command gets its arguments untouched (no shell, no word splitting) and the terminal's
//! stdin; its stdout and stderr are passed through as they come and the last few KiB are kept
//! for the `job_end` event. Events go straight to the event log, so they are stored whether or
//! not the daemon runs. The wrapper exits with the command's code (128 + N when signal N
//! killed it, 127 when it could not be started), so it can stand in for the command in cron.

use std::collections::VecDeque;
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use broker::{JobEnd, JobEvent, JobStart};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::process::Command;
use tokio::signal::unix::{signal, SignalKind};

use crate::config::Settings;
use crate::events::EventLog;
use daemon_kit::clock::unix_ms_now;

/// The last `capacity` bytes of a stream.
#[derive(Debug)]
pub struct Tail {
    capacity: usize,
    bytes: VecDeque<u8>,
}

impl Tail {
    pub fn new(capacity: usize) -> Self {
        Self {
            capacity,
            bytes: VecDeque::with_capacity(capacity.min(64 * 1024)),
        }
    }

    pub fn push(&mut self, chunk: &[u8]) {
        let chunk = &chunk[chunk.len().saturating_sub(self.capacity)..];
        let overflow = (self.bytes.len() + chunk.len()).saturating_sub(self.capacity);
        self.bytes.drain(..overflow);
        self.bytes.extend(chunk);
    }

    /// The kept bytes as text; a UTF-8 sequence cut at the start becomes U+FFFD.
    pub fn text(&self) -> String {
        let (a, b) = self.bytes.as_slices();
        String::from_utf8_lossy(&[a, b].concat()).into_owned()
    }
}

/// Copies `from` to `to` as it comes, keeping the tail.
async fn pass_through(
    mut from: impl AsyncRead + Unpin,
    mut to: impl AsyncWrite + Unpin,
    tail: Arc<Mutex<Tail>>,
) {
    let mut buf = [0u8; 8192];
    loop {
        match from.read(&mut buf).await {
            Ok(0) | Err(_) => break,
            Ok(n) => {
                if let Ok(mut t) = tail.lock() {
                    t.push(&buf[..n]);
                }
                // Our own stdout closed (e.g. piped to `head`): keep draining the child.
                let _ = to.write_all(&buf[..n]).await;
                let _ = to.flush().await;
            }
        }
    }
}

/// Records a failure to store an event on stderr without failing the job.
fn record(log: &EventLog, event: &JobEvent) {
    if let Err(error) = log.append(event) {
        eprintln!("publisher job: cannot record {}: {error}", event.run_id());
    }
}

/// Runs the job and returns the exit code to leave with.
pub async fn run_job(settings: &Settings, name: Option<String>, command: Vec<String>) -> i32 {
    let log = EventLog::new(&settings.data_dir);
    let Some(program) = command.first().cloned() else {
        eprintln!(
            "publisher job: no command given (usage: publisher job [--name NAME] -- CMD ARGS…)"
        );
        return 2;
    };
    let name = name.unwrap_or_else(|| {
        std::path::Path::new(&program)
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_else(|| program.clone())
    });
    let run_id = uuid::Uuid::new_v4().simple().to_string();
    let start_ts_ms = unix_ms_now();
    let started = Instant::now();
    record(
        &log,
        &JobEvent::JobStart(JobStart {
            v: 1,
            run_id: run_id.clone(),
            name: name.clone(),
            host: settings.host.clone(),
            start_ts_ms,
            command: settings.jobs.record_command.apply(&command),
        }),
    );

    let tail_bytes = if settings.jobs.record_output {
        settings.jobs.output_tail_bytes
    } else {
        0
    };
    let tail = Arc::new(Mutex::new(Tail::new(tail_bytes)));
    let spawned = Command::new(&program)
        .args(&command[1..])
        .stdin(Stdio::inherit())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn();
    let (exit_code, signal_no, error, wrapper_code) = match spawned {
        Err(e) => {
            eprintln!("publisher job: cannot run {program:?}: {e}");
            let code = if e.kind() == std::io::ErrorKind::PermissionDenied {
                126
            } else {
                127
            };
            (None, None, Some(e.to_string()), code)
        }
        Ok(mut child) => {
            let out = child
                .stdout
                .take()
                .map(|o| tokio::spawn(pass_through(o, tokio::io::stdout(), Arc::clone(&tail))));
            let err = child
                .stderr
                .take()
                .map(|e| tokio::spawn(pass_through(e, tokio::io::stderr(), Arc::clone(&tail))));
            let status = wait_forwarding_signals(&mut child).await;
            // A background process the job left behind may hold the pipes open: give the
            // output 2 s to drain, then record the end anyway.
            for task in [out, err].into_iter().flatten() {
                let abort = task.abort_handle();
                if tokio::time::timeout(Duration::from_secs(2), task)
                    .await
                    .is_err()
                {
                    abort.abort();
                }
            }
            match status {
                Ok(status) => {
                    use std::os::unix::process::ExitStatusExt;
                    match (status.code(), status.signal()) {
                        (Some(code), _) => (Some(code), None, None, code),
                        (None, Some(sig)) => (None, Some(sig), None, 128 + sig),
                        (None, None) => (None, None, Some("unknown exit status".into()), 1),
                    }
                }
                Err(e) => (None, None, Some(e.to_string()), 1),
            }
        }
    };
    let end_ts_ms = unix_ms_now();
    let output_tail = tail.lock().map(|t| t.text()).unwrap_or_default();
    record(
        &log,
        &JobEvent::JobEnd(JobEnd {
            v: 1,
            run_id,
            name,
            host: settings.host.clone(),
            start_ts_ms,
            end_ts_ms,
            duration_s: started.elapsed().as_secs_f64(),
            exit_code,
            signal: signal_no,
            error,
            output_tail,
        }),
    );
    wrapper_code
}

/// Waits for the child, passing SIGTERM and SIGHUP on to it (a service manager stopping the
/// wrapper means the job). SIGINT is not forwarded: Ctrl-C already reaches the child, which
/// shares the terminal's process group; the wrapper just outlives it to record the end.
async fn wait_forwarding_signals(
    child: &mut tokio::process::Child,
) -> std::io::Result<std::process::ExitStatus> {
    let mut term = signal(SignalKind::terminate())?;
    let mut hup = signal(SignalKind::hangup())?;
    let mut int = signal(SignalKind::interrupt())?;
    loop {
        let forward = tokio::select! {
            status = child.wait() => return status,
            _ = term.recv() => libc::SIGTERM,
            _ = hup.recv() => libc::SIGHUP,
            _ = int.recv() => continue,
        };
        if let Some(pid) = child.id() {
            // SAFETY: kill(2) with a pid we spawned and have not reaped yet, and a valid signal.
            #[allow(unsafe_code)]
            unsafe {
                libc::kill(pid as libc::pid_t, forward);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tail_keeps_the_last_bytes() {
        let mut t = Tail::new(5);
        t.push(b"abc");
        assert_eq!(t.text(), "abc");
        t.push(b"defg");
        assert_eq!(t.text(), "cdefg");
        t.push(b"0123456789");
        assert_eq!(t.text(), "56789");
        let mut t = Tail::new(3);
        t.push("xé".as_bytes()); // 3 bytes: x, 0xC3, 0xA9
        t.push(b"!");
        assert_eq!(t.text(), "é!");
        t.push(b"!");
        assert_eq!(t.text(), "\u{FFFD}!!");
    }
}
