//! The dashboard with five servers, in a real headless Chromium driven as a person would
//! (DevTools protocol on a pipe: real mouse events): one overview row per host with its
//! sparklines, sorting by a column, a click that opens the host's charts, pointing at the CPU
//! chart to see the processes behind a point, and at 1400 and 800 px no text that overlaps
//! or is cut without a way to read it (the page's own `#check=1` measures every text box and
//! every chart's axis labels). Screenshots are kept in `target/tmp/overview-*.png`.
#![allow(clippy::unwrap_used, clippy::expect_used)]

#[path = "../../publisher/tests/common/mod.rs"]
mod common;
mod support;

use std::path::Path;
use std::process::Command;

use common::Publisher;
use serde_json::Value;
use support::cdp::Browser;
use support::Subscriber;

const LONG: &str = "media-server-in-the-basement-with-a-long-name";

/// Six samples of a host, 10 s apart up to now: CPU `cpu` %, 2 of 8 GiB used, its disk busy
/// `busy` % of the time, 2 kB/s received.
fn publish(port: u16, host: &str, cpu: f64, busy: u64, procs: &str) {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as u64;
    for seq in 1..=6u64 {
        let ts_ms = now - (6 - seq) * 10_000;
        let body = format!(
            r#"{{"v":1,"host":"{host}","seq":{seq},"ts":{},"ts_ms":{ts_ms},"interval_s":10,"boot_id":"b",
            "cpu":{{"usage_percent":{cpu}}},"memory":{{"total_mb":8192,"available_mb":6144,"swap_used_mb":0,"swap_total_mb":0}},
            "disk":{{"read_sectors":0,"write_sectors":0,"devices":{{"sda":{{"read_sectors":0,"write_sectors":0,"ios":{},"io_wait_ms":0,"io_time_ms":{}}}}}}},
            "network":{{"rx_bytes":{},"tx_bytes":0,"interfaces":{{"eth0":{{"rx_bytes":{},"tx_bytes":0}}}}}},
            "processes":{procs}}}"#,
            ts_ms / 1000,
            seq * 10,
            seq * busy * 100,
            seq * 20_000,
            seq * 20_000,
        );
        let ok = Command::new("mosquitto_pub")
            .args(["-p", &port.to_string()])
            .args([
                "-t",
                &format!("server-analytics/{host}/snapshot"),
                "-q",
                "1",
            ])
            .args(["-m", &body])
            .status()
            .expect("mosquitto_pub (Debian package mosquitto-clients)");
        assert!(ok.success());
    }
}

const NO_PROCS: &str = r#"{"count":1,"top_cpu":[],"top_rss":[]}"#;
const HOSTILE: &str = r#"{"count":2,"top_cpu":[{"pid":7,"name":"<i>ffmpeg</i>","user":"media","cpu_percent":187.6,"rss_bytes":1}],"top_rss":[]}"#;

/// The hosts in the overview's order.
fn order(b: &mut Browser) -> Vec<String> {
    let v = b.eval("document.getElementById('overview').dataset.order");
    v.as_str().unwrap().split(',').map(str::to_owned).collect()
}

/// Waits for a layout check made after now, and returns what it found.
fn layout(b: &mut Browser) -> String {
    b.eval("document.body.dataset.layoutChecked = '0'");
    b.wait_for("document.body.dataset.layoutChecked === '1'");
    b.eval("document.body.dataset.layoutProblems")
        .as_str()
        .unwrap()
        .to_owned()
}

#[test]
fn five_servers_in_the_overview_sorted_clicked_pointed_at_and_never_overlapping() {
    if !support::chromium::available() {
        return;
    }
    let pdir = tempfile::tempdir().unwrap();
    let sdir = tempfile::tempdir().unwrap();
    let sys = common::fixture("tower").join("sys");
    let p = Publisher::start(
        pdir.path(),
        &["--interval", "1s", "--sys-root", sys.to_str().unwrap()],
    );
    let s = Subscriber::start(
        sdir.path(),
        p.mqtt_port,
        &p.url("/latest"),
        &["--max-age", "600"],
        &[],
    );
    let port = p.mqtt_port.unwrap();
    publish(port, "nas", 12.0, 10, NO_PROCS);
    publish(port, "pi-hole", 80.0, 1, NO_PROCS);
    publish(port, LONG, 45.0, 50, NO_PROCS);
    publish(port, "zbox", 5.0, 25, HOSTILE);
    s.wait_for("/hosts", |h| {
        h.as_array()
            .is_some_and(|l| l.len() == 5 && l.iter().all(|h| h["last_seq"].as_u64() >= Some(3)))
    });

    let mut b = Browser::open(&format!("{}#check=1", s.url("/")), 1400, 1000);
    b.wait_for("document.querySelectorAll('#overview tbody tr').length === 5");
    // Every known host's four sparklines are drawn, its value beside each.
    b.wait_for(
        "Array.from(document.querySelectorAll('#overview tr[data-host]:not([data-host=testhost]) td.ov-spark svg'))\
         .every((s) => Number(s.dataset.points) >= 3)",
    );
    let cols: Value =
        b.eval("Array.from(document.querySelectorAll('#overview thead button')).map((x) => x.dataset.sort)");
    assert_eq!(
        cols,
        serde_json::json!(["host", "status", "cpu", "mem", "net", "disk-busy"])
    );
    let cpu = b.eval("document.querySelector('#overview tr[data-host=\"pi-hole\"] td[data-col=cpu] .ov-val').textContent");
    assert_eq!(cpu, "80.0 %");
    let net = b.eval("document.querySelector('#overview tr[data-host=\"nas\"] td[data-col=net] .ov-val').textContent");
    assert_eq!(net, "2.0 kB/s");
    let busy = b.eval("document.querySelector('#overview tr[data-host=\"nas\"] td[data-col=\"disk-busy\"] .ov-val').textContent");
    assert_eq!(busy, "10.0 %");
    // The long name is cut in its cell, and readable whole on hover.
    let title = b.eval(&format!(
        "document.querySelector('#overview tr[data-host=\"{LONG}\"] .ov-host .ov-name').title"
    ));
    assert_eq!(title, LONG);
    assert_eq!(layout(&mut b), "", "at 1400 px");

    // Sorting: by CPU, busiest first, then least busy first (testhost's own CPU is live).
    let known =
        |o: Vec<String>| -> Vec<String> { o.into_iter().filter(|h| h != "testhost").collect() };
    assert_eq!(
        known(order(&mut b)),
        [LONG, "nas", "pi-hole", "zbox"],
        "by name"
    );
    let (x, y) = b.centre("#overview thead button[data-sort=cpu]");
    b.click(x, y);
    assert_eq!(known(order(&mut b)), ["pi-hole", LONG, "nas", "zbox"]);
    let (x, y) = b.centre("#overview thead button[data-sort=cpu]");
    b.click(x, y);
    assert_eq!(known(order(&mut b)), ["zbox", "nas", LONG, "pi-hole"]);

    // A click on a row opens that host's charts.
    let (x, y) = b.centre("#overview tr[data-host=\"zbox\"] td.ov-host");
    b.click(x, y);
    b.wait_for("document.getElementById('chart-host').textContent.includes('zbox') && document.body.dataset.ready === '1'");
    assert!(b
        .eval("location.hash")
        .as_str()
        .unwrap()
        .contains("host=zbox"));

    // Pointing at the CPU chart's newest point shows the processes behind it, as text.
    b.wait_for("document.querySelector('#chart-cpu .u-over') !== null");
    let rect = b.eval(
        "(() => { const r = document.querySelector('#chart-cpu .u-over'); r.scrollIntoView({block: 'center'}); \
         const b = r.getBoundingClientRect(); return [b.right - 2, b.top + b.height / 2]; })()",
    );
    b.hover(rect[0].as_f64().unwrap(), rect[1].as_f64().unwrap());
    let names = b.wait_for("document.getElementById('top-cpu').dataset.names");
    assert_eq!(names, "<i>ffmpeg</i>");
    assert_eq!(
        b.eval("document.querySelector('#top-cpu i') === null"),
        true
    );
    let text = b.eval("document.getElementById('top-cpu').textContent");
    assert!(
        text.as_str().unwrap().contains("<i>ffmpeg</i> 188 %"),
        "{text}"
    );

    let dir = Path::new(env!("CARGO_TARGET_TMPDIR"));
    b.eval("window.scrollTo(0, 0)");
    b.resize(1400, 2200);
    b.screenshot(&dir.join("overview-1400.png"), false);
    b.resize(800, 2600);
    assert_eq!(layout(&mut b), "", "at 800 px");
    b.screenshot(&dir.join("overview-800.png"), false);
    assert_eq!(b.problems, Vec::<String>::new(), "console errors");
}
