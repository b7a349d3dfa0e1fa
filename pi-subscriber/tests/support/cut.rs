//! A power cut inside a one-time move at open (a table moved to a newer layout, in one
//! transaction): copies of a data directory, each given to the built binary and killed after
//! a delay found by halving, until one is cut inside the move.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use std::path::Path;
use std::time::Duration;

use super::history_db;

/// Copies every file of `from` into `to`, and its directories (the raw tier's day files).
pub fn copy_dir(from: &Path, to: &Path) {
    for e in std::fs::read_dir(from).unwrap() {
        let p = e.unwrap().path();
        let dest = to.join(p.file_name().unwrap());
        if p.is_file() {
            std::fs::copy(&p, dest).unwrap();
        } else if p.is_dir() {
            std::fs::create_dir_all(&dest).unwrap();
            copy_dir(&p, &dest);
        }
    }
}

/// A copy of `data` whose Pi was killed inside the move: `older` (the layout before the move)
/// still holds and the WAL has a frame (the move's uncommitted pages). Too late, the move is
/// committed (`older` is false); too soon, no frame was written yet (32 bytes are the WAL's
/// header alone).
pub fn cut_inside_the_move(data: &Path, older: impl Fn(&Path) -> bool) -> tempfile::TempDir {
    let (mut soon, mut late) = (Duration::ZERO, Duration::from_secs(4));
    for _ in 0..12 {
        let at = (soon + late) / 2;
        let dir = tempfile::tempdir().unwrap();
        copy_dir(data, dir.path());
        let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_pi-subscriber"))
            .args(["--no-mqtt", "--bind", "127.0.0.1:0", "--data-dir"])
            .arg(dir.path())
            .env("PI_SUBSCRIBER_SELF__ENABLED", "false")
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap();
        std::thread::sleep(at);
        let _ = child.kill();
        let _ = child.wait();
        let wal = std::fs::metadata(history_db(dir.path()).with_extension("sqlite-wal"))
            .map(|m| m.len())
            .unwrap_or(0);
        match (older(dir.path()), wal > 32) {
            (true, true) => return dir,
            (true, false) => soon = at,
            (false, _) => late = at,
        }
    }
    panic!("no cut landed inside the move");
}
