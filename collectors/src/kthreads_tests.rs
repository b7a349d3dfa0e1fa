//! A kernel thread's `stat` is skipped only while its `schedstat` stands still; a user
//! process's never is. On a fixture tree (exact figures) and on this machine's `/proc`.
use std::path::Path;
use std::time::{Duration, SystemTime};

use crate::processes::ProcessCollector;
use crate::Roots;

/// A kernel thread's flags (`PF_KTHREAD | PF_NOFREEZE | …`, as kthreadd's read on a 6.1 kernel).
const KTHREAD_FLAGS: u64 = 0x0020_8040;
/// A user process's flags (`PF_RANDOMIZE | PF_SUPERPRIV`).
const USER_FLAGS: u64 = 0x0040_0100;

fn write(proc: &Path, pid: u32, comm: &str, flags: u64, ticks: u64, run_ns: Option<u64>) {
    let dir = proc.join(pid.to_string());
    std::fs::create_dir_all(&dir).unwrap();
    let rss = if flags == KTHREAD_FLAGS { 0 } else { 500 };
    std::fs::write(
        dir.join("stat"),
        format!("{pid} ({comm}) S 0 0 0 0 -1 {flags} 0 0 0 0 {ticks} 0 0 0 20 0 1 0 7 0 {rss} 18446744073709551615\n"),
    )
    .unwrap();
    if let Some(ns) = run_ns {
        std::fs::write(dir.join("schedstat"), format!("{ns} 1200 9\n")).unwrap();
    }
}

/// The CPU % of `pid` in the sample's CPU list.
fn cpu(p: &broker::Processes, pid: u32) -> Option<f64> {
    p.top_cpu
        .iter()
        .find(|t| t.pid == pid)
        .and_then(|t| t.cpu_percent)
}

#[test]
fn a_kernel_threads_stat_is_read_again_only_once_it_has_run() {
    let dir = tempfile::tempdir().unwrap();
    let proc = dir.path().join("proc");
    let roots = Roots::under(dir.path());
    let mut c = ProcessCollector::new(5, "/nonexistent");
    let t0 = SystemTime::UNIX_EPOCH + Duration::from_secs(1_000_000);
    let at = |s: u64| t0 + Duration::from_secs(s);
    // USER_HZ is 100: 20 ticks in 2 s are 10 %.
    write(&proc, 2, "kthreadd", KTHREAD_FLAGS, 100, Some(5_000));
    write(
        &proc,
        40,
        "kworker/0:1-events",
        KTHREAD_FLAGS,
        300,
        Some(9_000),
    );
    write(&proc, 900, "nginx", USER_FLAGS, 50, Some(1_000));
    write(&proc, 3, "old-kernel", KTHREAD_FLAGS, 10, None);
    c.read(&roots, at(0)).unwrap();
    // First seen: each `stat` read; the time read after it stands for nothing yet.
    assert_eq!(c.stat_reads_saved(), 0);

    // The kworker ran (20 ticks); nobody else's time moved; nginx's stat changed without its
    // first thread's time (another thread ran): read all the same.
    write(
        &proc,
        40,
        "kworker/0:1-events",
        KTHREAD_FLAGS,
        320,
        Some(9_900),
    );
    write(&proc, 900, "nginx", USER_FLAGS, 70, Some(1_000));
    write(&proc, 3, "old-kernel", KTHREAD_FLAGS, 30, None);
    let p = c.read(&roots, at(2)).unwrap();
    assert_eq!(cpu(&p, 40), Some(10.0));
    assert_eq!(cpu(&p, 900), Some(10.0));
    assert_eq!(cpu(&p, 3), Some(10.0), "no schedstat: stat read");
    assert_eq!(
        c.stat_reads_saved(),
        0,
        "each time now read before its stat"
    );

    // Nothing ran by `schedstat`: kthreadd's and the kworker's `stat`s are not read (a
    // changed line is the proof: its figures are not taken); nginx's and old-kernel's are.
    write(&proc, 2, "kthreadd", KTHREAD_FLAGS, 999, Some(5_000));
    write(
        &proc,
        40,
        "kworker/0:1-events",
        KTHREAD_FLAGS,
        999,
        Some(9_900),
    );
    write(&proc, 900, "nginx", USER_FLAGS, 90, Some(1_000));
    write(&proc, 3, "old-kernel", KTHREAD_FLAGS, 50, None);
    let p = c.read(&roots, at(4)).unwrap();
    assert_eq!(c.stat_reads_saved(), 2);
    assert_eq!(cpu(&p, 2), Some(0.0));
    assert_eq!(cpu(&p, 40), Some(0.0));
    assert_eq!(cpu(&p, 900), Some(10.0));
    assert_eq!(cpu(&p, 3), Some(10.0));
    assert_eq!(p.count, 4);
    let names: Vec<&str> = p.top_cpu.iter().map(|t| t.name.as_str()).collect();
    assert_eq!(
        names,
        ["old-kernel", "nginx", "kthreadd", "kworker/0:1-events"]
    );

    // The kworker's time moves: its `stat` is read, all of what it ran since its last read.
    write(
        &proc,
        40,
        "kworker/0:1-events",
        KTHREAD_FLAGS,
        1_019,
        Some(12_000),
    );
    let p = c.read(&roots, at(6)).unwrap();
    assert_eq!(cpu(&p, 40), Some(349.5), "(1019 - 320) ticks in 2 s");
    assert_eq!(c.stat_reads_saved(), 3, "kthreadd only");
}

#[test]
fn a_kernel_threads_pid_taken_by_a_user_process_is_read_as_that_process() {
    let dir = tempfile::tempdir().unwrap();
    let proc = dir.path().join("proc");
    let roots = Roots::under(dir.path());
    let mut c = ProcessCollector::new(5, "/nonexistent");
    let t0 = SystemTime::UNIX_EPOCH + Duration::from_secs(1_000_000);
    write(&proc, 77, "kswapd0", KTHREAD_FLAGS, 10, Some(400));
    c.read(&roots, t0).unwrap();
    c.read(&roots, t0 + Duration::from_secs(2)).unwrap();
    assert_eq!(c.stat_reads_saved(), 0);
    // On procfs the held `schedstat` of an exited thread fails; a new task's time is its own.
    write(&proc, 77, "bash", USER_FLAGS, 10, Some(31_337));
    for s in [4, 6] {
        let p = c.read(&roots, t0 + Duration::from_secs(s)).unwrap();
        assert_eq!(p.top_rss[0].name, "bash");
        assert_eq!(
            p.top_rss[0].rss_bytes,
            500 * rustix::param::page_size() as u64
        );
    }
    assert_eq!(
        c.stat_reads_saved(),
        0,
        "a user process's stat is always read"
    );
}

#[test]
fn on_this_machine_sleeping_kernel_threads_are_not_read_again() {
    let stat = std::fs::read_to_string("/proc/2/stat").unwrap_or_default();
    let kthreadd =
        crate::proc_stat::parse_stat_bytes(stat.as_bytes()).is_some_and(|s| s.kernel_thread);
    if !kthreadd || !Path::new("/proc/2/schedstat").exists() {
        eprintln!(
            "skipped: no kernel thread with a schedstat visible here (a pid namespace, or a \
             kernel without CONFIG_SCHED_INFO)"
        );
        return;
    }
    let roots = Roots::default();
    let mut c = ProcessCollector::new(5, "/etc/passwd");
    let t0 = SystemTime::now();
    for i in 0..3 {
        c.read(&roots, t0 + Duration::from_millis(i)).unwrap();
    }
    assert!(c.stat_reads_saved() > 0, "kthreadd at least sleeps");
}
