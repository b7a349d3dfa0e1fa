//! Headless Chromium (Debian package `chromium`) for the dashboard tests: the page after it
//! settled (`--dump-dom`), its console problems, and its `data-*` attributes.

use std::path::Path;
use std::process::{Command, Output, Stdio};

/// Whether Chromium is installed; a test without it says why it skips.
pub fn available() -> bool {
    if Path::new("/usr/bin/chromium").exists() {
        return true;
    }
    eprintln!(
        "skipped: no /usr/bin/chromium (Debian package chromium; scripts/test.sh installs it)"
    );
    false
}

/// The flags this closed network needs (no background traffic, no sandbox as root).
pub const FLAGS: [&str; 8] = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-quic",
    "--no-first-run",
];

/// Headless Chromium with the flags this closed network needs, logging the page's console
/// to stderr.
pub fn chromium(profile: &Path, args: &[&str], url: &str) -> Output {
    Command::new("chromium")
        .args(FLAGS)
        .args(["--enable-logging=stderr", "--v=0"])
        .arg(format!("--user-data-dir={}", profile.display()))
        .args(args)
        .arg(url)
        .stdin(Stdio::null())
        .output()
        .expect("chromium (Debian package chromium)")
}

/// The page's own console lines (Chromium prefixes them with `CONSOLE`), and failed loads.
pub fn page_problems(stderr: &str) -> Vec<String> {
    stderr
        .lines()
        .filter(|l| {
            (l.contains("CONSOLE")
                && (l.contains("ERROR") || l.contains("Uncaught") || l.contains("Failed to load")))
                || l.contains("net::ERR_")
        })
        .map(str::to_owned)
        .collect()
}

/// The value of the first `name="…"` attribute in the dump.
pub fn attr(dom: &str, name: &str) -> Option<String> {
    let at = dom.find(&format!("{name}=\""))? + name.len() + 2;
    Some(dom[at..].split('"').next()?.to_owned())
}
