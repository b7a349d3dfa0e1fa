//! The built-in dashboard in a real headless Chromium (Debian package `chromium`): it loads
//! with no failed request and no console error, and its charts hold drawn data. A screenshot
//! is kept as a test artefact (`target/tmp/dashboard.png`).
#![allow(clippy::unwrap_used, clippy::expect_used)]

#[path = "../../publisher/tests/common/mod.rs"]
mod common;
mod support;

use std::path::Path;
use std::process::{Command, Output, Stdio};

use common::Publisher;
use support::Subscriber;

/// Headless Chromium with the flags this closed network needs, logging the page's console
/// to stderr.
fn chromium(profile: &Path, args: &[&str], url: &str) -> Output {
    Command::new("chromium")
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--disable-quic",
            "--no-first-run",
            "--enable-logging=stderr",
            "--v=0",
        ])
        .arg(format!("--user-data-dir={}", profile.display()))
        .args(args)
        .arg(url)
        .stdin(Stdio::null())
        .output()
        .expect("chromium (Debian package chromium)")
}

/// The page's own console lines (Chromium prefixes them with `CONSOLE`), and failed loads.
fn page_problems(stderr: &str) -> Vec<String> {
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

fn attr(dom: &str, name: &str) -> Option<String> {
    let at = dom.find(&format!("{name}=\""))? + name.len() + 2;
    Some(dom[at..].split('"').next()?.to_owned())
}

#[test]
fn dashboard_renders_live_data_in_chromium() {
    let pdir = tempfile::tempdir().unwrap();
    let sdir = tempfile::tempdir().unwrap();
    let sys = common::fixture("tower").join("sys");
    let p = Publisher::start(
        pdir.path(),
        &["--interval", "200ms", "--sys-root", sys.to_str().unwrap()],
    );
    let out = common::command(pdir.path())
        .args(["job", "--name", "nightly-backup", "--", "true"])
        .output()
        .unwrap();
    assert!(out.status.success());
    let s = Subscriber::start(sdir.path(), p.mqtt_port, &p.url("/latest"), &[], &[]);
    s.wait_for("/history?host=testhost", |rows| {
        rows.as_array().is_some_and(|r| r.len() >= 10)
    });
    s.wait_for("/events", |e| e.as_array().is_some_and(|a| a.len() >= 2));
    // A second host with known filesystems (the tower fixture's md0, a full root, a hung NFS
    // mount), published as a real client would. Its name sorts after `testhost`, whose history
    // the charts show (the first host with history).
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis();
    let zbox = format!(
        r#"{{"v":1,"host":"zbox","seq":1,"ts":{},"ts_ms":{now},"interval_s":15,"filesystems":{{
        "/":{{"device":"sda2","fstype":"ext4","size_bytes":100,"used_bytes":96,"avail_bytes":4,"files":1,"files_free":1}},
        "/mnt/backup":null,
        "/srv/storage":{{"device":"md0","fstype":"ext4","size_bytes":3999738626048,"used_bytes":2361338626048,
          "avail_bytes":1438412800000,"files":244195328,"files_free":243000000}}}}}}"#,
        now / 1000
    );
    let published = Command::new("mosquitto_pub")
        .args(["-p", &p.mqtt_port.unwrap().to_string()])
        .args([
            "-t",
            "server-analytics/zbox/snapshot",
            "-q",
            "1",
            "-m",
            &zbox,
        ])
        .status()
        .expect("mosquitto_pub (Debian package mosquitto-clients)");
    assert!(published.success());
    let m = s.wait_for("/metrics?host=zbox", |m| m["seq"] == 1);
    assert_eq!(
        m["filesystems"]["/srv/storage"]["used_bytes"],
        2361338626048u64
    );
    assert!(m["filesystems"]["/mnt/backup"].is_null());
    let url = s.url("/");

    let profile = tempfile::tempdir().unwrap();
    let dom_run = chromium(
        profile.path(),
        &["--virtual-time-budget=8000", "--dump-dom"],
        &url,
    );
    let dom = String::from_utf8_lossy(&dom_run.stdout);
    let stderr = String::from_utf8_lossy(&dom_run.stderr);
    assert!(dom_run.status.success(), "chromium failed: {stderr}");
    assert_eq!(
        page_problems(&stderr),
        Vec::<String>::new(),
        "console errors or failed requests"
    );
    assert_eq!(
        attr(&dom, "data-ready").as_deref(),
        Some("1"),
        "charts never rendered:\n{dom}"
    );
    let points: usize = attr(&dom, "data-points").unwrap().parse().unwrap();
    assert!(points >= 10, "{points} points drawn");
    for id in [
        "chart-cpu",
        "chart-load",
        "chart-mem",
        "chart-temp",
        "chart-disk",
        "chart-net",
    ] {
        let at = dom
            .find(&format!("id=\"{id}\""))
            .unwrap_or_else(|| panic!("no #{id}"));
        assert!(
            dom[at..]
                .split("id=\"chart-")
                .nth(1)
                .unwrap_or(&dom[at..])
                .contains("<canvas"),
            "#{id} has no canvas"
        );
    }
    assert!(dom.contains("testhost"), "host card");
    assert!(dom.contains("nightly-backup"), "job table");
    assert!(dom.contains("52.5"), "temperature from the tower fixture");
    // A bar per mount: used / (used + avail) = 62.1446 % for md0, 96 % (red) for the root.
    for (mount, class, percent) in [
        ("/srv/storage", "fs", "62.1"),
        ("/", "fs fs-crit", "96.0"),
        ("/mnt/backup", "fs fs-unknown", ""),
    ] {
        let bar =
            format!(r#"<div class="{class}" data-mount="{mount}" data-used-percent="{percent}""#);
        assert!(dom.contains(&bar), "no {bar} in\n{dom}");
    }
    assert!(dom.contains(r#"aria-valuenow="62.1""#), "meter value");
    assert!(dom.contains(r#"style="width: 62.1%;""#), "bar width");

    let shot = Path::new(env!("CARGO_TARGET_TMPDIR")).join("dashboard.png");
    let _ = std::fs::remove_file(&shot);
    let profile = tempfile::tempdir().unwrap();
    let run = chromium(
        profile.path(),
        &[
            "--virtual-time-budget=8000",
            "--window-size=1280,1600",
            "--hide-scrollbars",
            &format!("--screenshot={}", shot.display()),
        ],
        &url,
    );
    assert!(
        run.status.success(),
        "{}",
        String::from_utf8_lossy(&run.stderr)
    );
    let png = std::fs::read(&shot).unwrap();
    assert!(
        png.starts_with(b"\x89PNG") && png.len() > 20_000,
        "screenshot {} bytes",
        png.len()
    );
    eprintln!("dashboard screenshot: {}", shot.display());
}
