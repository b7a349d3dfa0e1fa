//! The built-in dashboard in a real headless Chromium (Debian package `chromium`): it loads
//! with no failed request and no console error, its charts hold drawn data read from
//! `/series` (a min–max band on a rolled-up range, per-device charts once their section is
//! open), and a firing alert shows in the banner and on its host's card. The page's state is
//! read from the `data-*` attributes it sets. A screenshot is kept as a test artefact
//! (`target/tmp/dashboard.png`).
#![allow(clippy::unwrap_used, clippy::expect_used)]

#[path = "../../publisher/tests/common/mod.rs"]
mod common;
mod support;

use std::path::Path;
use std::process::Command;

use common::Publisher;
use support::chromium::{attr, chromium, page_problems};
use support::Subscriber;

/// The markup of one host's card, from `<article`.
fn card<'a>(dom: &'a str, host: &str) -> &'a str {
    let at = dom
        .match_indices("<article")
        .map(|(at, _)| at)
        .find(|at| {
            let tag = &dom[*at..];
            tag[..tag.find('>').unwrap()].contains(&format!(r#"data-host="{host}""#))
        })
        .unwrap_or_else(|| panic!("no card for {host}"));
    let rest = &dom[at..];
    &rest[..rest.find("</article>").unwrap()]
}

/// The element with this id, from its start tag to the end of the dump.
fn from_id<'a>(dom: &'a str, id: &str) -> &'a str {
    let at = dom
        .find(&format!(r#"id="{id}""#))
        .unwrap_or_else(|| panic!("no #{id}"));
    &dom[at..]
}

/// A snapshot of `zbox` as a real client would publish it: one disk (25 % busy, 3 ms a
/// request, reading 1 MiB/s) and one interface receiving 2 kB/s, and the tower fixture's
/// filesystems (md0, a full root, a hung NFS mount) plus a mount named like markup.
fn zbox(seq: u64, ts_ms: u128) -> String {
    let (sectors, bytes) = (2048 * seq, 2048 * seq);
    // 100 I/Os a second, each waiting 3 ms; the disk busy 250 ms of each second.
    let (ios, wait, busy) = (100 * seq, 300 * seq, 250 * seq);
    format!(
        r#"{{"v":1,"host":"zbox","seq":{seq},"ts":{},"ts_ms":{ts_ms},"interval_s":1,
        "failed_units":[{{"name":"backup.service","since_ms":1,"result":"exit-code"}},{{"name":"nas.mount"}}],
        "processes":{{"count":2,"top_cpu":[{{"pid":7,"name":"<i>ffmpeg</i>","user":"media","cpu_percent":187.6,"rss_bytes":1}}],"top_rss":[]}},
        "disk":{{"read_sectors":{sectors},"write_sectors":0,"devices":{{"sda":{{"read_sectors":{sectors},"write_sectors":0,"ios":{ios},"io_wait_ms":{wait},"io_time_ms":{busy}}}}}}},
        "network":{{"rx_bytes":{bytes},"tx_bytes":0,"interfaces":{{"eth0":{{"rx_bytes":{bytes},"tx_bytes":0}}}}}},
        "filesystems":{{
        "/":{{"device":"sda2","fstype":"ext4","size_bytes":100,"used_bytes":96,"avail_bytes":4,"files":1,"files_free":1}},
        "/mnt/backup":null,
        "/mnt/<b>x</b>":{{"device":"sdb1","fstype":"ext4","size_bytes":100,"used_bytes":10,"avail_bytes":90,"files":1,"files_free":1}},
        "/srv/storage":{{"device":"md0","fstype":"ext4","size_bytes":3999738626048,"used_bytes":2361338626048,
          "avail_bytes":1438412800000,"files":244195328,"files_free":243000000}}}}}}"#,
        ts_ms / 1000
    )
}

/// A user rule that fires on the first sample of any host with a CPU figure.
const RULE: &str = "[alerts]\n[[alerts.rule]]\nname = \"t\"\nmetric = \"cpu_usage_percent\"\nabove = -1.0\nfor = \"0s\"\n\
    [alerts.builtin.unit_failed]\nenabled = false\nwarning = 0.5\n\
    [[jobs.expect]]\nname = \"nightly-backup\"\nhost = \"testhost\"\ncron = \"0 3 * * *\"\n\
    [[jobs.expect]]\nname = \"<b>weekly</b>\"\nevery = \"7d\"\n";

#[test]
fn dashboard_renders_live_data_in_chromium() {
    if !Path::new("/usr/bin/chromium").exists() {
        eprintln!(
            "skipped: no /usr/bin/chromium (Debian package chromium; scripts/test.sh installs it)"
        );
        return;
    }
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
    let config = sdir.path().join("pi.toml");
    std::fs::write(&config, RULE).unwrap();
    // A long max_age: no host goes stale (and fires host_down) while the browser runs.
    let s = Subscriber::start(
        sdir.path(),
        p.mqtt_port,
        &p.url("/latest"),
        &["--config", config.to_str().unwrap(), "--max-age", "600"],
        &[],
    );
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
    for seq in [1u64, 2] {
        let published = Command::new("mosquitto_pub")
            .args(["-p", &p.mqtt_port.unwrap().to_string()])
            .args(["-t", "server-analytics/zbox/snapshot", "-q", "1"])
            .args(["-m", &zbox(seq, now - 2000 + 1000 * u128::from(seq))])
            .status()
            .expect("mosquitto_pub (Debian package mosquitto-clients)");
        assert!(published.success());
    }
    let m = s.wait_for("/metrics?host=zbox", |m| m["seq"] == 2);
    assert_eq!(
        m["filesystems"]["/srv/storage"]["used_bytes"],
        2361338626048u64
    );
    assert!(m["filesystems"]["/mnt/backup"].is_null());
    s.wait_for("/alerts", |a| {
        a["alerts"].as_array().is_some_and(|l| {
            l.iter()
                .any(|a| a["rule"] == "t" && a["host"] == "testhost" && a["state"] == "firing")
        })
    });
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
    // 1 h: 15 s steps from the raw tier, no band; a slot per step, some of them drawn.
    assert_eq!(attr(&dom, "data-range").as_deref(), Some("3600"));
    assert_eq!(attr(&dom, "data-step").as_deref(), Some("15"));
    assert_eq!(attr(&dom, "data-tier").as_deref(), Some("raw"));
    assert_eq!(attr(&dom, "data-band").as_deref(), Some("0"));
    assert!(!dom.contains("band-edge"), "a band at 1 h");
    let slots: usize = attr(&dom, "data-slots").unwrap().parse().unwrap();
    assert!((240..=241).contains(&slots), "{slots} slots");
    let points: usize = attr(&dom, "data-points").unwrap().parse().unwrap();
    assert!((1..=slots).contains(&points), "{points} points drawn");
    // Seconds of data in a 1 h window: the x axis starts where the data does (two 15 s steps
    // before the first point), not an hour back with the data a sliver at the right.
    let xfrom: u128 = attr(&dom, "data-xfrom").unwrap().parse().unwrap();
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis();
    assert!(
        now - xfrom < 5 * 60_000,
        "x starts {} s back",
        (now - xfrom) / 1000
    );
    // The rule fires on testhost: the banner names it, the card counts it, zbox has none.
    let banner = from_id(&dom, "alerts");
    let banner = &banner[..banner.find("</div>").unwrap()];
    assert!(
        !banner[..banner.find('>').unwrap()].contains("hidden"),
        "{banner}"
    );
    assert!(banner.contains(r#"data-firing="1""#), "{banner}");
    assert!(
        banner.contains(r#"data-rule="t" data-host="testhost""#),
        "{banner}"
    );
    assert!(banner.contains("testhost: t "), "{banner}");
    let tower = card(&dom, "testhost");
    assert!(tower.contains(r#"data-alerts="1""#), "{tower}");
    assert!(!card(&dom, "zbox").contains("data-alerts"), "badge on zbox");
    // zbox's failed systemd units: a badge, the names on hover; none on testhost.
    assert!(
        card(&dom, "zbox").contains(
            r#"<span class="units-badge" title="backup.service
nas.mount" data-units="2">2 failed</span>"#
        ),
        "{}",
        card(&dom, "zbox")
    );
    assert!(!card(&dom, "testhost").contains("units-badge"));
    // What eats the CPU now, from the snapshot's top processes (names as text).
    assert!(
        card(&dom, "zbox")
            .contains("<dt>Top CPU</dt><dd>&lt;i&gt;ffmpeg&lt;/i&gt; 188 % (media)</dd>"),
        "{}",
        card(&dom, "zbox")
    );
    // The per-device section is there, closed, with no chart in it.
    let devices = from_id(&dom, "devices");
    assert!(
        devices.starts_with(r#"id="devices" class="devices""#),
        "{devices}"
    );
    assert!(
        !devices[..devices.find('>').unwrap()].contains("open"),
        "open by default"
    );
    assert!(!devices[..devices.find("</details>").unwrap()].contains("<canvas"));
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
    // The expected jobs: the backup ran (success, next due at 03:00), the weekly one not yet.
    let expected = from_id(&dom, "expected-section");
    let expected = &expected[..expected.find("</section>").unwrap()];
    assert!(
        expected.contains(r#"<tr data-job="nightly-backup" data-state="ok"><td>nightly-backup</td><td>testhost</td><td>0 3 * * * (UTC)</td>"#),
        "{expected}"
    );
    assert!(
        expected.contains(r#"<td class="res-ok">success</td>"#),
        "{expected}"
    );
    assert!(
        expected.contains("<td>&lt;b&gt;weekly&lt;/b&gt;</td><td>(any)</td><td>every 7d</td>"),
        "{expected}"
    );
    assert!(expected.contains("<td>not run yet</td>"), "{expected}");
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

    seven_days(&url);
    rolled_up(&url, "range=2592000", 2_592_000, 7200, "1h");
    let dom = rolled_up(&url, "range=31536000", 31_536_000, 86_400, "1h");
    let points: usize = attr(&dom, "data-points").unwrap().parse().unwrap();
    assert!(points >= 1, "{points} points drawn in a year");

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
        &format!("{url}#devices=1"),
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

/// The page at `hash` (a range of `range` s, from the URL's hash as the buttons leave it)
/// after it settled: no error, steps of `step` s from `tier` with a min–max band, a slot per step.
fn rolled_up(url: &str, hash: &str, range: u64, step: u64, tier: &str) -> String {
    let profile = tempfile::tempdir().unwrap();
    let run = chromium(
        profile.path(),
        &["--virtual-time-budget=8000", "--dump-dom"],
        &format!("{url}#{hash}"),
    );
    let dom = String::from_utf8_lossy(&run.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&run.stderr);
    assert!(run.status.success(), "chromium failed: {stderr}");
    assert_eq!(page_problems(&stderr), Vec::<String>::new(), "{hash}");
    assert_eq!(attr(&dom, "data-ready").as_deref(), Some("1"), "{dom}");
    assert_eq!(attr(&dom, "data-range"), Some(range.to_string()));
    assert!(dom.contains(&format!(r#"data-range="{range}" aria-pressed="true""#)));
    assert_eq!(attr(&dom, "data-step"), Some(step.to_string()));
    assert_eq!(attr(&dom, "data-tier").as_deref(), Some(tier));
    assert_eq!(attr(&dom, "data-band").as_deref(), Some("1"));
    assert!(dom.contains("u-series band-edge"), "no min/max series");
    let slots: u64 = attr(&dom, "data-slots").unwrap().parse().unwrap();
    let width = step.max(if tier == "1h" { 3600 } else { 60 });
    assert!(
        (range / width..=range / width + 1).contains(&slots),
        "{slots} slots at {hash}"
    );
    dom
}

/// 7 d with zbox picked and the per-device section open (all from the URL's hash, as the
/// buttons, the host picker and the section leave them): 1800 s steps from the minute tier with
/// a min–max band, and a chart per disk, interface and mount of zbox, names shown as text.
fn seven_days(url: &str) {
    let dom = rolled_up(url, "range=604800&host=zbox&devices=1", 604_800, 1800, "1m");
    assert!(
        card(&dom, "zbox").starts_with(r#"<article class="card selected""#),
        "zbox not picked"
    );
    let devices = from_id(&dom, "devices");
    let devices = &devices[..devices.find("</details>").unwrap()];
    assert!(
        devices[..devices.find('>').unwrap()].contains("open"),
        "{devices}"
    );
    assert!(devices.contains(r#"data-count="5""#), "{devices}");
    assert!(
        devices.contains("(1 disk, 1 interface, 3 mounts)"),
        "{devices}"
    );
    assert!(!devices.contains("<b>"), "a name became markup");
    let panels: Vec<(&str, &str, &str)> = devices
        .split(r#"<div class="panel" data-kind=""#)
        .skip(1)
        .map(|p| {
            let kind = p.split('"').next().unwrap();
            let title =
                &p[p.find("<h3>").unwrap() + 4..p.find(r#" <span class="dev-name""#).unwrap()];
            let name = p.split(r#"<span class="dev-name" title=""#).nth(1).unwrap();
            let name = name.split("\">").nth(1).unwrap();
            (kind, title, name.split("</span>").next().unwrap())
        })
        .collect();
    // A disk's charts together, as the registry's `chart` hints on /series/metrics say: its
    // throughput, busy % and I/O wait (issue 19 item 7, no line of the dashboard names them).
    assert_eq!(
        panels,
        [
            ("disk", "Disk", "sda"),
            ("disk", "Disk busy", "sda"),
            ("disk", "Disk I/O wait", "sda"),
            ("interface", "Network", "eth0"),
            ("mount", "Filesystem used", "/"),
            ("mount", "Filesystem used", "/mnt/&lt;b&gt;x&lt;/b&gt;"),
            ("mount", "Filesystem used", "/srv/storage"),
        ]
    );
    assert_eq!(
        devices.matches("<canvas").count(),
        7,
        "a chart per device and chart"
    );
    // Byte rates in the unit that fits them: the disk's 1 MiB/s in MB/s, eth0's 2 kB/s in kB/s
    // (not 0.00 MB/s); percentages and milliseconds as they are.
    let units: Vec<&str> = devices
        .split(r#"<span class="unit">"#)
        .skip(1)
        .map(|u| u.split("</span>").next().unwrap())
        .collect();
    assert_eq!(
        units,
        ["(MB/s)", "(%)", "(ms)", "(kB/s)", "(%)", "(%)", "(%)"],
        "{devices}"
    );
    let drawn = devices.matches(r#"data-points="0""#).count();
    assert_eq!(drawn, 0, "a device chart without data: {devices}");
}
