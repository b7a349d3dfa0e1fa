//! The top-processes collector's parsing and its held files, against this machine's `/proc`.
use super::*;

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
    let mut kids: Vec<std::process::Child> = (0..3)
        .map(|_| {
            std::process::Command::new("sh")
                .args(["-c", "while :; do :; done"])
                .spawn()
                .unwrap()
        })
        .collect();
    let ids: Vec<u32> = kids.iter().map(|k| k.id()).collect();
    let t1 = t0 + std::time::Duration::from_millis(1);
    c.read(&roots, t1).unwrap();
    assert!(
        ids.iter().all(|id| c.held.contains_key(id)),
        "held: {ids:?}"
    );
    std::thread::sleep(std::time::Duration::from_millis(300));
    let p = c
        .read(&roots, t1 + std::time::Duration::from_millis(300))
        .unwrap();
    assert!(ids.iter().all(|id| pids(&p).contains(id)), "{p:?}");
    for k in &mut kids {
        k.kill().unwrap();
        k.wait().unwrap();
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
