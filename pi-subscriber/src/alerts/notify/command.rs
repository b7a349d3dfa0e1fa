//! `command`: runs a program (no shell) with the notice's JSON on stdin; a non-zero exit or
//! the timeout (the child is killed) is a failed attempt.

use std::process::Stdio;

use tokio::io::AsyncWriteExt;

use super::Ctx;
use crate::alerts::engine::Notice;

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
        .kill_on_drop(true)
        .spawn()
        .map_err(|e| format!("cannot run {program:?}: {e}"))?;
    let run = async {
        if let Some(mut stdin) = child.stdin.take() {
            // A program that ignores stdin closes it early: not an error.
            let _ = stdin.write_all(body.as_bytes()).await;
        }
        child.wait().await
    };
    match tokio::time::timeout(ctx.notifier.timeout, run).await {
        Ok(Ok(status)) if status.success() => Ok(()),
        Ok(Ok(status)) => Err(format!("{program:?} exited with {status}")),
        Ok(Err(e)) => Err(format!("{program:?}: {e}")),
        Err(_) => Err(format!("{program:?} timed out (killed)")),
    }
}
