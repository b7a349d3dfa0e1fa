//! The top-processes collector's parsing and its held files, against this machine's `/proc`.
use super::*;

/// A child killed and reaped when dropped, so a failed assertion does not leave it running
/// (a busy loop left behind took both cores of a CI machine for 15 minutes).
struct Kid(std::process::Child);

impl Kid {
    fn spawn(cmd: &str, args: &[&str]) -> Kid {
        Kid(std::process::Command::new(cmd).args(args).spawn().unwrap())
    }

    fn id(&self) -> u32 {
        self.0.id()
    }

    fn end(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

impl Drop for Kid {
    fn drop(&mut self) {
        self.end();
    }
}

fn pids(p: &Processes) -> Vec<u32> {
    p.top_cpu.iter().chain(&p.top_rss).map(|t| t.pid).collect()
}

#[test]
fn stat_files_stay_open_while_their_process_lives_and_close_when_it_exits() {
    let roots = Roots::default();
    let mut c = ProcessCollector::new(MAX_TOP, "/etc/passwd");
    let t0 = SystemTime::now();
    c.read(&roots, t0).unwrap();
    let before = c.held.len();
    assert!(before > 0, "this process's own stat at least");
    // Three busy children: held from their first sample, in the CPU list on the second.
    let mut kids: Vec<Kid> = (0..3)
        .map(|_| Kid::spawn("sh", &["-c", "while :; do :; done"]))
        .collect();
    let ids: Vec<u32> = kids.iter().map(|k| k.id()).collect();
    let t1 = t0 + std::time::Duration::from_millis(1);
    c.read(&roots, t1).unwrap();
    assert!(
        ids.iter().all(|id| c.held.contains_key(id)),
        "held: {ids:?}"
    );
    // Until each child has run a few ticks since that read (a VM stalled for the 300 ms a
    // fixed sleep allowed once left every process, the busy children too, at 0 ticks).
    let ticks = |id: &u32| {
        std::fs::read_to_string(format!("/proc/{id}/stat"))
            .ok()
            .and_then(|t| parse_stat(&t))
            .map_or(0, |s| s.ticks)
    };
    let start: Vec<u64> = ids.iter().map(ticks).collect();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    while ids.iter().zip(&start).any(|(id, t0)| ticks(id) < t0 + 3) {
        assert!(
            std::time::Instant::now() < deadline,
            "the children never ran"
        );
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    let p = c
        .read(&roots, t1 + std::time::Duration::from_millis(300))
        .unwrap();
    assert!(ids.iter().all(|id| pids(&p).contains(id)), "{p:?}");
    for k in &mut kids {
        k.end();
    }
    // Gone from /proc: not listed, their files closed, no error.
    let p = c
        .read(&roots, t1 + std::time::Duration::from_millis(600))
        .unwrap();
    assert!(ids.iter().all(|id| !c.held.contains_key(id)));
    assert!(ids.iter().all(|id| !pids(&p).contains(id)));
}

#[test]
fn the_stat_parser_borrows_and_bounds_every_number() {
    let line = b"77 (a) b) R 1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 16 17 18 19 20 21\n";
    let s = parse_stat_bytes(line).unwrap();
    assert_eq!(
        (s.pid, s.comm, s.ticks, s.starttime, s.rss_pages),
        (77, &b"a) b"[..], 11 + 12, 19, 21)
    );
    assert_eq!(number(b"18446744073709551615"), Some(u64::MAX));
    assert_eq!(number(b"18446744073709551616"), None, "overflow");
    assert_eq!(number(b"-1"), None);
    assert_eq!(number(b""), None);
    assert_eq!(
        parse_stat_bytes(b"99999999999 (x) R 1"),
        None,
        "pid beyond u32"
    );
    assert_eq!(top_k(vec![3, 1, 2, 5, 4], 2, |a, b| b.cmp(a)), vec![5, 4]);
    assert_eq!(top_k(vec![1], 5, |a, b| a.cmp(b)), vec![1]);
}

#[test]
fn stat_lines_with_awkward_names() {
    let line = "4242 (tmux: server (1)) S 1 4242 4242 0 -1 4194560 2000 0 3 0 150 50 0 0 20 0 1 0 123456 12345678 2500 18446744073709551615";
    assert_eq!(
        parse_stat(line),
        Some(ProcStat {
            pid: 4242,
            comm: "tmux: server (1)".into(),
            ticks: 200,
            starttime: 123456,
            rss_pages: 2500,
        })
    );
    assert_eq!(parse_stat("12 (kworker/0:1) I"), None, "truncated");
    assert_eq!(parse_stat(""), None);
}

#[test]
fn passwd_names() {
    let users = parse_passwd(
        "root:x:0:0:root:/root:/bin/bash\nwww-data:x:33:33::/var/www:/usr/sbin/nologin\nbroken\n",
    );
    assert_eq!(users.get(&33).map(String::as_str), Some("www-data"));
    assert_eq!(users.len(), 2);
}

/// A `stat` line with the fields the collector reads.
fn stat_line(pid: u32, comm: &str, ticks: u64, start: u64, rss: u64) -> String {
    format!("{pid} ({comm}) S 1 1 1 0 -1 0 0 0 0 0 {ticks} 0 0 0 20 0 1 0 {start} 1000 {rss}\n")
}

#[test]
fn the_proc_directory_stays_open_and_each_listing_is_exact() {
    use std::os::unix::fs::MetadataExt;
    let tmp = tempfile::tempdir().unwrap();
    let proc = tmp.path().join("proc");
    let write = |pid: u32, line: String| {
        std::fs::create_dir_all(proc.join(pid.to_string())).unwrap();
        // In place, as procfs shows a new value: the held file reads it.
        std::fs::write(proc.join(format!("{pid}/stat")), line).unwrap();
    };
    write(100, stat_line(100, "a", 1000, 5, 50));
    write(101, stat_line(101, "b", 2000, 6, 70));
    std::fs::create_dir_all(proc.join("self")).unwrap();
    std::fs::write(proc.join("stat"), "cpu 0\n").unwrap();
    let uid = std::fs::metadata(proc.join("100")).unwrap().uid();
    let passwd = tmp.path().join("passwd");
    std::fs::write(&passwd, format!("me:x:{uid}:{uid}::/:/bin/sh\n")).unwrap();
    let roots = Roots {
        proc: proc.clone(),
        sys: tmp.path().join("sys"),
    };
    let mut c = ProcessCollector::new(5, &passwd);
    let t0 = SystemTime::UNIX_EPOCH + std::time::Duration::from_secs(1_000_000);
    let p = c.read(&roots, t0).unwrap();
    let fd = c.dir.held_fd().expect("<proc> is held open");
    assert_eq!(p.count, 2);
    assert_eq!(pids(&p), vec![101, 100], "no CPU list on the first sample");
    assert_eq!(p.top_rss[0].user.as_deref(), Some("me"));
    assert_eq!(p.top_rss[0].name, "b");

    // 101 exits, 102 starts, 100 used 1.5 s of CPU in the second between the samples.
    std::fs::remove_dir_all(proc.join("101")).unwrap();
    write(102, stat_line(102, "c", 0, 7, 90));
    write(
        100,
        stat_line(100, "a", 1000 + 3 * c.ticks_per_s as u64 / 2, 5, 50),
    );
    let p = c
        .read(&roots, t0 + std::time::Duration::from_secs(1))
        .unwrap();
    assert_eq!(
        c.dir.held_fd(),
        Some(fd),
        "the same open directory, rewound"
    );
    assert_eq!(p.count, 2);
    assert_eq!(
        p.top_cpu
            .iter()
            .map(|t| (t.pid, t.cpu_percent))
            .collect::<Vec<_>>(),
        vec![(100, Some(150.0))]
    );
    assert_eq!(
        p.top_rss
            .iter()
            .map(|t| (t.pid, t.rss_bytes))
            .collect::<Vec<_>>(),
        vec![(102, 90 * c.page_bytes), (100, 50 * c.page_bytes)]
    );
    assert!(p
        .top_cpu
        .iter()
        .chain(&p.top_rss)
        .all(|t| t.user.as_deref() == Some("me")));

    // Pid 100 reused (another start time): it starts over, out of the CPU list.
    write(100, stat_line(100, "d", 10, 8, 60));
    let p = c
        .read(&roots, t0 + std::time::Duration::from_secs(2))
        .unwrap();
    assert_eq!(p.count, 2);
    assert_eq!(
        p.top_cpu
            .iter()
            .map(|t| (t.pid, t.cpu_percent))
            .collect::<Vec<_>>(),
        vec![(102, Some(0.0))]
    );
    assert_eq!(
        p.top_rss
            .iter()
            .map(|t| (t.pid, t.name.as_str()))
            .collect::<Vec<_>>(),
        vec![(102, "c"), (100, "d")]
    );

    // A listing past the end of the held directory's old contents: many new pids at once.
    for pid in 1000..1600 {
        write(pid, stat_line(pid, "many", 0, 9, 1));
    }
    let p = c
        .read(&roots, t0 + std::time::Duration::from_secs(3))
        .unwrap();
    assert_eq!(
        p.count, 602,
        "more entries than one getdents64 call returns"
    );
}

/// A fixture `<proc>/stat` whose `processes` line (forks since boot) is `forks`.
fn write_forks(proc: &std::path::Path, forks: &str) {
    std::fs::create_dir_all(proc).unwrap();
    std::fs::write(
        proc.join("stat"),
        format!("cpu  10 0 10 100 0 0 0 0 0 0\ncpu0 10 0 10 100 0 0 0 0 0 0\nctxt 7\n{forks}procs_running 1\n"),
    )
    .unwrap();
}

fn add(proc: &std::path::Path, pid: u32, rss: u64) {
    std::fs::create_dir_all(proc.join(pid.to_string())).unwrap();
    std::fs::write(
        proc.join(format!("{pid}/stat")),
        stat_line(pid, "p", 0, 5, rss),
    )
    .unwrap();
}

fn rss_pids(p: &Processes) -> Vec<u32> {
    p.top_rss.iter().map(|t| t.pid).collect()
}

#[test]
fn proc_is_listed_again_only_when_a_task_was_created_since() {
    let tmp = tempfile::tempdir().unwrap();
    let roots = Roots::under(tmp.path());
    let proc = roots.proc.clone();
    write_forks(&proc, "processes 500\n");
    add(&proc, 100, 10);
    add(&proc, 101, 20);
    let mut c = crate::Collectors::new(roots, crate::network::default_filter())
        .with_filesystems(None)
        .with_processes(Some(ProcessCollector::new(5, tmp.path().join("passwd"))));
    let mut sample = || c.sample().processes.expect("processes");
    let p = sample();
    assert_eq!((p.count, rss_pids(&p)), (2, vec![101, 100]));

    // A pid directory appears but no fork or clone was counted: `<proc>` is not listed again
    // (procfs never shows a task the counter missed), so 102 is not seen.
    add(&proc, 102, 30);
    let p = sample();
    assert_eq!((p.count, rss_pids(&p)), (2, vec![101, 100]), "listed again");

    // 101 exits (nothing created): dropped from the known set, for good.
    std::fs::remove_dir_all(proc.join("101")).unwrap();
    let p = sample();
    assert_eq!((p.count, rss_pids(&p)), (1, vec![100]));
    let p = sample();
    assert_eq!((p.count, rss_pids(&p)), (1, vec![100]));

    // A fork was counted: listed again, 102 found.
    write_forks(&proc, "processes 501\n");
    let p = sample();
    assert_eq!((p.count, rss_pids(&p)), (2, vec![102, 100]));

    // A `processes` line that is missing or not one number, twice alike: listed each time.
    for (pid, line) in [
        (201, ""),
        (202, ""),
        (203, "processes x\n"),
        (204, "processes x\n"),
        (205, "processes 501 7\n"),
        (206, "processes 501\nprocesses 501\n"),
        (207, "processes -1\n"),
    ] {
        add(&proc, pid, u64::from(pid) * 100);
        write_forks(&proc, line);
        let p = sample();
        assert_eq!(rss_pids(&p)[0], pid, "{line:?}");
    }
    // `<proc>/stat` unreadable: no count, listed.
    std::fs::remove_file(proc.join("stat")).unwrap();
    add(&proc, 300, 30_000);
    let p = sample();
    assert_eq!(rss_pids(&p)[0], 300, "no stat: listed");
}

#[test]
fn without_a_fork_count_every_read_lists() {
    let tmp = tempfile::tempdir().unwrap();
    let proc = tmp.path().join("proc");
    add(&proc, 100, 10);
    let roots = Roots {
        proc: proc.clone(),
        sys: tmp.path().join("sys"),
    };
    let mut c = ProcessCollector::new(5, tmp.path().join("passwd"));
    let t0 = SystemTime::UNIX_EPOCH + std::time::Duration::from_secs(1_000_000);
    let at = |s: u64| t0 + std::time::Duration::from_secs(s);
    c.read_counted(&roots, at(0), Some(9)).unwrap();
    add(&proc, 101, 10);
    assert_eq!(
        c.read_counted(&roots, at(1), Some(9)).unwrap().count,
        1,
        "skipped"
    );
    assert_eq!(c.read(&roots, at(2)).unwrap().count, 2, "read lists");
    add(&proc, 102, 10);
    assert_eq!(c.read_counted(&roots, at(3), Some(9)).unwrap().count, 3);
    assert_eq!(c.read_counted(&roots, at(4), None).unwrap().count, 3);
    // Another root with the same count: listed.
    let other = tempfile::tempdir().unwrap();
    add(&other.path().join("proc"), 7, 1);
    let roots = Roots::under(other.path());
    let p = c.read_counted(&roots, at(5), Some(9)).unwrap();
    assert_eq!(rss_pids(&p), vec![7]);
}

#[test]
fn on_procfs_a_process_that_exits_while_the_fork_count_stands_still_is_dropped() {
    let roots = Roots::default();
    let mut c = ProcessCollector::new(MAX_TOP, "/etc/passwd");
    let mut kid = Kid::spawn("sleep", &["60"]);
    let id = kid.id();
    let t0 = SystemTime::now();
    // Any count will do: the same one twice says "nothing created since" (true here for
    // what the test looks at: the child was created before the first read).
    c.read_counted(&roots, t0, Some(7)).unwrap();
    assert!(c.held.contains_key(&id), "the child's stat is held");
    assert!(c.dir.pids.iter().any(|e| e.pid == id));
    kid.end();
    let p = c
        .read_counted(&roots, t0 + std::time::Duration::from_secs(1), Some(7))
        .unwrap();
    assert!(c.dir.procfs(), "/proc is a procfs");
    assert!(
        !c.held.contains_key(&id),
        "its held file failed and was closed"
    );
    assert!(
        !c.dir.pids.iter().any(|e| e.pid == id),
        "dropped from the set"
    );
    assert!(!pids(&p).contains(&id));
    assert!(p.count > 0);
}
