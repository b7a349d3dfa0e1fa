//! `command`: runs a program (no shell) with the notice's JSON on stdin; a non-zero exit or
//! the timeout is a failed attempt. The program runs in a process group of its own: on the
//! timeout (or when the Pi stops mid-run) the whole group is killed, so a pipeline such as
//! `sh -c "jq … | mail"` leaves nothing behind. A program that exits on time may leave a
//! background child running (sendmail may deliver that way).

use std::process::Stdio;

use rustix::process::{kill_process_group, Pid, Signal};
use tokio::io::AsyncWriteExt;

use super::Ctx;
use crate::alerts::engine::Notice;

/// Kills the process group it names when dropped, unless disarmed.
struct Group(Option<Pid>);

impl Group {
    /// Kills the group now. Called before the leader is reaped, so its pid (the group's id)
    /// cannot have been reused.
    fn kill(&mut self) {
        if let Some(pgid) = self.0.take() {
            let _ = kill_process_group(pgid, Signal::KILL);
        }
    }
}

impl Drop for Group {
    fn drop(&mut self) {
        self.kill();
    }
}

pub async fn send(ctx: &Ctx<'_>, n: &Notice) -> Result<(), String> {
    let argv = &ctx.notifier.command;
    let Some((program, args)) = argv.split_first() else {
        return Err("empty command".into());
    };
    let body = super::webhook::body(n).to_string();
    let mut child = tokio::process::Command::new(program)
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .process_group(0)
        .kill_on_drop(true)
        .spawn()
        .map_err(|e| format!("cannot run {program:?}: {e}"))?;
    // Declared after `child`, so dropped (the group killed) before the child is.
    let mut group = Group(
        child
            .id()
            .and_then(|id| i32::try_from(id).ok())
            .and_then(Pid::from_raw),
    );
    let run = async {
        if let Some(mut stdin) = child.stdin.take() {
            // A program that ignores stdin closes it early: not an error.
            let _ = stdin.write_all(body.as_bytes()).await;
        }
        child.wait().await
    };
    match tokio::time::timeout(ctx.notifier.timeout, run).await {
        Ok(Ok(status)) => {
            // Exited on time: what it left running is its own business.
            group.0 = None;
            if status.success() {
                Ok(())
            } else {
                Err(format!("{program:?} exited with {status}"))
            }
        }
        Ok(Err(e)) => Err(format!("{program:?}: {e}")),
        Err(_) => {
            // The leader is not reaped yet: its pid is still the group's.
            group.kill();
            let _ = child.wait().await;
            Err(format!("{program:?} timed out (killed)"))
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::{Duration, Instant};

    use super::*;
    use crate::alerts::config::{Notifier, NotifierKind, Severity};

    /// Dead: no such process, or a zombie (nobody may reap an orphan in a container).
    fn gone(pid: &str) -> bool {
        match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
            Err(_) => true,
            Ok(stat) => stat
                .rsplit_once(") ")
                .is_some_and(|(_, rest)| rest.starts_with('Z') || rest.starts_with('X')),
        }
    }

    #[tokio::test]
    async fn a_timeout_kills_the_programs_children_too() {
        let dir = tempfile::tempdir().unwrap();
        let pidfile = dir.path().join("child.pid");
        // The shell waits for a child that would outlive the timeout by far.
        let script = format!("sleep 300 & echo $! > {}; wait", pidfile.display());
        let notifier = Notifier {
            kind: NotifierKind::Command,
            url: None,
            command: vec!["sh".into(), "-c".into(), script],
            min_severity: Severity::Info,
            timeout: Duration::from_millis(500),
        };
        let client = reqwest::Client::new();
        let ctx = Ctx {
            client: &client,
            notifier: &notifier,
            mqtt: None,
            repeat_interval: Duration::from_secs(3600),
        };
        let notice = Notice {
            status: "firing".into(),
            host: "tower".into(),
            rule: "cpu_temp".into(),
            label: String::new(),
            severity: Severity::Critical,
            value: Some(90.0),
            threshold: Some(85.0),
            since_ms: 0,
            ts_ms: 0,
            event: false,
            repeat: false,
            message: "tower: cpu_temp is 90.0 (threshold 85.0)".into(),
        };
        let err = send(&ctx, &notice).await.unwrap_err();
        assert_eq!(err, "\"sh\" timed out (killed)");
        let pid = std::fs::read_to_string(&pidfile).unwrap();
        let pid = pid.trim();
        assert!(!pid.is_empty());
        let deadline = Instant::now() + Duration::from_secs(5);
        while !gone(pid) {
            if Instant::now() > deadline {
                // Leave nothing behind, whatever the outcome.
                let _ = std::process::Command::new("kill")
                    .args(["-9", pid])
                    .status();
                panic!("the command's child {pid} outlived the timeout");
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}
