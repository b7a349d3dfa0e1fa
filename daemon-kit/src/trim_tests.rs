use super::*;

/// Excerpt of a publisher's smaps (field lines trimmed to those read, and a few others).
const SMAPS: &str = "\
55d0c0a00000-55d0c0b00000 r--p 00000000 08:01 131 /usr/bin/publisher
Size:               1024 kB
Rss:                 940 kB
Anonymous:             0 kB
VmFlags: rd mr mw me
55d0c0b00000-55d0c1000000 r-xp 00100000 08:01 131 /usr/bin/publisher
Size:               5120 kB
Rss:                2208 kB
Pss:                2208 kB
Anonymous:             0 kB
55d0c1000000-55d0c1040000 r--p 00600000 08:01 131 /usr/bin/publisher
Size:                256 kB
Rss:                 252 kB
Anonymous:           252 kB
55d0c1040000-55d0c1042000 rw-p 00640000 08:01 131 /usr/bin/publisher
Size:                  8 kB
Rss:                   8 kB
Anonymous:             8 kB
55d0c2000000-55d0c2100000 rw-p 00000000 00:00 0 [heap]
Rss:                 636 kB
Anonymous:           636 kB
7f1e40000000-7f1e40180000 r-xp 00028000 08:01 77 /usr/lib/x86_64-linux-gnu/libc.so.6
Rss:                1384 kB
Anonymous:             0 kB
7f1e40200000-7f1e40210000 r--p 00000000 08:01 78 /usr/lib/x86_64-linux-gnu/libm.so.6
Rss:                   0 kB
Anonymous:             0 kB
7f1e40300000-7f1e40310000 r--p 00000000 08:01 90 /var/lib/server-analytics/ring/seg-0
Rss:                  64 kB
Anonymous:             0 kB
7f1e40400000-7f1e40401000 r--s 00000000 08:01 91 /usr/lib/libshared.so
Rss:                   4 kB
Anonymous:             0 kB
7ffd1e5f0000-7ffd1e5f2000 r-xp 00000000 00:00 0 [vdso]
Rss:                   8 kB
Anonymous:             0 kB
7ffd1e600000-7ffd1e610000 r-xp 00000000 08:01 92 /usr/lib/libtruncated.so
Rss:                  12 kB
";

#[test]
fn only_unwritten_private_code_mappings_of_the_executable_and_libraries_are_chosen() {
    let found = clean_file_mappings(SMAPS, "/usr/bin/publisher");
    assert_eq!(
        found,
        vec![
            CleanMapping {
                start: 0x55d0c0a00000,
                end: 0x55d0c0b00000,
                resident_kb: 940
            },
            CleanMapping {
                start: 0x55d0c0b00000,
                end: 0x55d0c1000000,
                resident_kb: 2208
            },
            CleanMapping {
                start: 0x7f1e40000000,
                end: 0x7f1e40180000,
                resident_kb: 1384
            },
        ],
        "not: the relocated read-only data (anonymous pages), the writable data, the heap, \
         a library with nothing resident, a data file, a shared mapping, the vdso, a mapping \
         whose Anonymous line is missing"
    );
    // Another executable's path: its mappings are not this process's code.
    let found = clean_file_mappings(SMAPS, "/usr/bin/other");
    assert_eq!(found.len(), 1);
    assert_eq!(found[0].start, 0x7f1e40000000);
}

#[test]
fn malformed_smaps_chooses_nothing() {
    for text in [
        "",
        "garbage\nRss: 12 kB\nAnonymous: 0 kB\n",
        "zz-yy r-xp 0 0 0 /usr/bin/publisher\nRss: 12 kB\nAnonymous: 0 kB\n",
        "2000-1000 r-xp 0 0 0 /usr/bin/publisher\nRss: 12 kB\nAnonymous: 0 kB\n",
        "1000-2000 r-x 0 0 0 /usr/bin/publisher\nRss: 12 kB\nAnonymous: 0 kB\n",
        "1000-2000 r-xp 0 0 0 /usr/bin/publisher\nRss: twelve kB\nAnonymous: 0 kB\n",
        "1000-2000 r-xp 0 0 0 /usr/bin/publisher\nRss: 12 kB\nAnonymous: 4 kB\n",
    ] {
        assert_eq!(
            clean_file_mappings(text, "/usr/bin/publisher"),
            vec![],
            "{text:?}"
        );
    }
}

/// The trims of the tests below would see each other's mappings.
static ONE_AT_A_TIME: std::sync::Mutex<()> = std::sync::Mutex::new(());

/// The kB of smaps' `field` over this process's mappings of `path`.
fn resident_kb(path: &str, field: &str) -> u64 {
    let smaps = std::fs::read_to_string("/proc/self/smaps").unwrap();
    let mut total = 0;
    let mut ours = false;
    for line in smaps.lines() {
        if parse_header(line, path).is_some() {
            ours = line.split_ascii_whitespace().nth(5) == Some(path);
        } else if ours {
            if let Some(rest) = line.strip_prefix(field).and_then(|r| r.strip_prefix(':')) {
                total += rest
                    .trim()
                    .trim_end_matches("kB")
                    .trim()
                    .parse::<u64>()
                    .unwrap();
            }
        }
    }
    total
}

#[allow(unsafe_code)]
fn map(file: &std::fs::File, len: usize, prot: libc::c_int) -> *mut u8 {
    use std::os::fd::AsRawFd;
    // SAFETY: a fresh private mapping of a file this test owns.
    let p = unsafe {
        libc::mmap(
            std::ptr::null_mut(),
            len,
            prot,
            libc::MAP_PRIVATE,
            file.as_raw_fd(),
            0,
        )
    };
    assert_ne!(p, libc::MAP_FAILED);
    p.cast()
}

/// A relocated read-only segment is a private mapping written once (copied on write) and
/// then made read-only: dropping it would bring back the file's bytes. The trim must leave
/// it alone, and trim a clean mapping of the same file, whose bytes read the same after.
#[test]
#[allow(unsafe_code)]
fn written_then_protected_pages_are_kept_and_clean_ones_read_the_same_after() {
    use std::io::Write;
    let _one = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("libtrimtest.so.1");
    let len = 16 * 4096;
    let mut file = std::fs::File::create(&path).unwrap();
    file.write_all(&vec![0x5a; len]).unwrap();
    let file = std::fs::File::open(&path).unwrap();
    let path = path.to_str().unwrap();

    let relro = map(&file, len, libc::PROT_READ | libc::PROT_WRITE);
    // SAFETY: within the mapping just made, writable.
    unsafe {
        *relro.add(100) = 0x17;
        assert_eq!(libc::mprotect(relro.cast(), len, libc::PROT_READ), 0);
    }
    let clean = map(&file, len, libc::PROT_READ);
    // SAFETY: within the mapping just made, readable.
    let sum: u64 = (0..len)
        .step_by(4096)
        .map(|i| unsafe { *clean.add(i) } as u64)
        .sum();
    assert_eq!(sum, 16 * 0x5a);
    let before = resident_kb(path, "Rss");
    assert_eq!(resident_kb(path, "Anonymous"), 4, "the written page");
    assert!(before >= 64 + 4, "both mappings resident: {before} kB");

    let trimmed = trim_resident_set().unwrap();
    assert!(trimmed.mappings >= 1, "{trimmed:?}");
    assert_eq!(
        resident_kb(path, "Rss"),
        4,
        "the clean mapping is gone from the resident set, the written page stays"
    );
    // SAFETY: both mappings are still there and readable.
    unsafe {
        assert_eq!(*relro.add(100), 0x17, "the written byte survives");
        assert_eq!(*relro.add(101), 0x5a);
        assert_eq!(*clean.add(100), 0x5a, "a trimmed page reads the file again");
        libc::munmap(relro.cast(), len);
        libc::munmap(clean.cast(), len);
    }
}

#[test]
fn the_running_test_binary_gives_back_code_it_does_not_run_again() {
    let _one = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    let exe = std::fs::read_link("/proc/self/exe").unwrap();
    let exe = exe.to_str().unwrap();
    let before = resident_kb(exe, "Rss");
    let trimmed = trim_resident_set().unwrap();
    let after = resident_kb(exe, "Rss");
    assert!(trimmed.resident_bytes > 0, "{trimmed:?}");
    assert!(
        after < before,
        "the test binary's resident pages: {before} kB before, {after} kB after"
    );
}
