//! The filesystem collector: fixture machines with exact figures (worked out in
//! `fixtures/<machine>/EXPECTED.md`), this machine against `df -B1`, and a `statvfs` that hangs.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::time::Duration;

use broker::Filesystem;
use publisher::collectors::filesystem::{FilesystemCollector, Selection};
use publisher::collectors::statvfs::{FixedStatvfs, FsStats, Prober, Statvfs};
use publisher::collectors::{network, CollectorName, Collectors, Roots};

fn fixture(machine: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(machine)
}

fn fixed(machine: &str) -> Arc<FixedStatvfs> {
    let text = std::fs::read_to_string(fixture(machine).join("statvfs")).unwrap();
    Arc::new(FixedStatvfs::parse(&text).unwrap())
}

fn read(machine: &str) -> BTreeMap<String, Option<Filesystem>> {
    let mut c =
        FilesystemCollector::new(Selection::default(), fixed(machine), Duration::from_secs(5));
    let out = c.read(&Roots::under(fixture(machine))).unwrap();
    assert_eq!(c.failures().failed + c.failures().timed_out, 0);
    out
}

fn fs(device: &str, fstype: &str, n: [u64; 5]) -> Option<Filesystem> {
    Some(Filesystem {
        device: device.into(),
        fstype: fstype.into(),
        size_bytes: n[0],
        used_bytes: n[1],
        avail_bytes: n[2],
        files: n[3],
        files_free: n[4],
    })
}

#[test]
fn tower_every_real_filesystem_once_with_dfs_figures() {
    let got = read("tower");
    let want: BTreeMap<String, Option<Filesystem>> = [
        (
            "/",
            fs(
                "mapper/cryptroot",
                "ext4",
                [502383259648, 201235472384, 275541434368, 31260672, 30123456],
            ),
        ),
        (
            "/boot",
            fs(
                "nvme0n1p2",
                "ext4",
                [2042626048, 813826048, 1085440000, 131072, 130700],
            ),
        ),
        (
            "/boot/efi",
            fs("nvme0n1p1", "vfat", [535805952, 64765952, 471040000, 0, 0]),
        ),
        (
            "/media/alex/My Passport",
            fs(
                "sdc1",
                "exfat",
                [2000097902592, 689377902592, 1310720000000, 0, 0],
            ),
        ),
        (
            "/run",
            fs(
                "tmpfs",
                "tmpfs",
                [3345104896, 10960896, 3334144000, 4071128, 4070000],
            ),
        ),
        (
            "/run/lock",
            fs("tmpfs", "tmpfs", [5242880, 0, 5242880, 4071128, 4071125]),
        ),
        (
            "/run/user/1000",
            fs(
                "tmpfs",
                "tmpfs",
                [3345088512, 294912, 3344793600, 816668, 816600],
            ),
        ),
        (
            "/srv/storage",
            fs(
                "md0",
                "ext4",
                [
                    3999738626048,
                    2361338626048,
                    1438412800000,
                    244195328,
                    243000000,
                ],
            ),
        ),
        (
            "/tank/backup",
            fs(
                "tank/backup",
                "zfs",
                [
                    2000000000000,
                    976000000000,
                    1024000000000,
                    2000123456,
                    2000000000,
                ],
            ),
        ),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v))
    .collect();
    assert_eq!(got, want);
}

#[test]
fn rpi4_sd_card_boot_partition_and_usb_disk() {
    let got = read("rpi4");
    assert_eq!(
        got.keys().collect::<Vec<_>>(),
        [
            "/",
            "/boot/firmware",
            "/mnt/usb",
            "/run",
            "/run/lock",
            "/run/user/1000"
        ]
    );
    assert_eq!(
        got["/"],
        fs(
            "mmcblk0p2",
            "ext4",
            [30761816064, 6595416064, 22876160000, 1916928, 1850000]
        )
    );
    assert_eq!(
        got["/boot/firmware"],
        fs("mmcblk0p1", "vfat", [536870912, 76070912, 460800000, 0, 0])
    );
    assert_eq!(
        got["/mnt/usb"],
        fs(
            "sda1",
            "ext4",
            [
                1000204886016,
                181004886016,
                769187840000,
                61054976,
                61000000
            ]
        )
    );
}

#[test]
fn ci_vm_only_the_root_disk() {
    let got = read("ci-vm");
    assert_eq!(got.len(), 1, "{got:?}");
    assert_eq!(
        got["/"],
        fs(
            "vda",
            "ext4",
            [270553174016, 25485828096, 72086921216, 16777216, 16328288]
        )
    );
}

#[test]
fn a_sample_carries_the_filesystems_and_a_missing_mountinfo_is_counted() {
    let collector =
        FilesystemCollector::new(Selection::default(), fixed("tower"), Duration::from_secs(5));
    let mut c = Collectors::new(Roots::under(fixture("tower")), network::default_filter())
        .with_filesystems(Some(collector));
    let reading = c.sample();
    assert_eq!(reading.filesystems.as_ref().unwrap().len(), 9);
    assert_eq!(c.errors().get(&CollectorName::Filesystems), None);

    let dir = tempfile::tempdir().unwrap();
    let mut c = Collectors::new(Roots::under(dir.path()), network::default_filter());
    assert_eq!(c.sample().filesystems, None);
    assert_eq!(c.errors().get(&CollectorName::Filesystems), Some(&1));
}

/// `df -B1 --output=target,fstype,size,used,avail`, by mount point.
fn df() -> BTreeMap<String, (String, [u64; 3])> {
    let out = Command::new("df")
        .args(["-B1", "--output=target,fstype,size,used,avail"])
        .output()
        .expect("df (coreutils)");
    assert!(out.status.success());
    String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .skip(1)
        .filter_map(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            let n = f.len().checked_sub(4)?;
            let nums: Vec<u64> = f[n + 1..].iter().map(|x| x.parse().unwrap()).collect();
            Some((
                f[..n].join(" "),
                (f[n].to_owned(), [nums[0], nums[1], nums[2]]),
            ))
        })
        .collect()
}

#[test]
fn this_machine_agrees_with_df() {
    let before = df();
    let mut c = FilesystemCollector::system();
    let ours = c.read(&Roots::default()).unwrap();
    let after = df();
    let sel = Selection::default();
    // Busy filesystems (other builds on this machine) move between the two df runs: our
    // figure must lie between them, give or take 16 MiB.
    const SLACK: u64 = 16 << 20;
    let mut compared = 0;
    for (point, fs) in &ours {
        let fs = fs
            .as_ref()
            .unwrap_or_else(|| panic!("{point}: statvfs failed"));
        let (Some((_, b)), Some((_, a))) = (before.get(point), after.get(point)) else {
            panic!("{point} ({fs:?}) is not in df's list {before:?}");
        };
        assert_eq!(fs.size_bytes, b[0], "{point} size");
        for (i, got) in [(1, fs.used_bytes), (2, fs.avail_bytes)] {
            let (lo, hi) = (b[i].min(a[i]), b[i].max(a[i]));
            assert!(
                got + SLACK >= lo && got <= hi + SLACK,
                "{point}: {got} not within {lo}..={hi}"
            );
        }
        compared += 1;
    }
    // What df lists and we do not is excluded by the default lists or a device we list once.
    for (point, (fstype, _)) in &before {
        if ours.contains_key(point) || !after.contains_key(point) {
            continue;
        }
        let excluded = !sel.mount_points.counts(point) || !sel.fs_types.counts(fstype);
        let bind = ours.keys().any(|o| o.len() <= point.len());
        assert!(excluded || bind, "df lists {point} ({fstype}), we do not");
    }
    eprintln!("compared {compared} mounts with df: {:?}", ours.keys());
}

/// A prober that hangs on one mount until released, and counts the calls per mount.
#[derive(Debug, Default)]
struct Hanging {
    released: Mutex<bool>,
    wake: Condvar,
    calls_nfs: AtomicU64,
    calls_other: AtomicU64,
}

impl Prober for Hanging {
    fn statvfs(&self, path: &Path) -> std::io::Result<FsStats> {
        if path == Path::new("/mnt/nas") {
            self.calls_nfs.fetch_add(1, Ordering::SeqCst);
            let mut released = self.released.lock().unwrap();
            while !*released {
                released = self.wake.wait(released).unwrap();
            }
        } else {
            self.calls_other.fetch_add(1, Ordering::SeqCst);
        }
        Ok(FsStats {
            frsize: 4096,
            blocks: 1000,
            bfree: 400,
            bavail: 300,
            files: 10,
            ffree: 5,
        })
    }
}

#[test]
fn a_hung_mount_is_null_not_asked_again_until_it_answers_and_the_others_go_on() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(dir.path().join("proc/self")).unwrap();
    std::fs::write(
        dir.path().join("proc/self/mountinfo"),
        "1 0 8:1 / / rw - ext4 /dev/sda1 rw\n\
         2 1 0:50 / /mnt/nas rw - nfs4 nas:/export rw\n\
         3 1 8:17 / /srv rw - xfs /dev/sdb1 rw\n",
    )
    .unwrap();
    let roots = Roots::under(dir.path());
    let prober = Arc::new(Hanging::default());
    let mut c = FilesystemCollector::new(
        Selection::every_mount_point(),
        Arc::clone(&prober) as Arc<dyn Prober>,
        Duration::from_millis(100),
    );
    let good = fs("sda1", "ext4", [4096000, 2457600, 1228800, 10, 5]);

    // The sample's one deadline passes on /mnt/nas: /srv, not reached, is deferred.
    let first = c.read(&roots).unwrap();
    assert_eq!(first["/"], good);
    assert_eq!(first["/mnt/nas"], None, "timed out");
    assert_eq!(first["/srv"], None, "deferred");
    assert_eq!(c.failures().timed_out, 1);
    assert_eq!(c.failures().skipped, 1);
    assert_eq!(c.threads(), 1);

    for _ in 0..3 {
        let again = c.read(&roots).unwrap();
        assert_eq!(again["/mnt/nas"], None);
        assert_eq!(again["/"], good);
        assert_eq!(again["/srv"].as_ref().unwrap().device, "sdb1");
    }
    assert_eq!(
        prober.calls_nfs.load(Ordering::SeqCst),
        1,
        "not asked again"
    );
    assert_eq!(c.threads(), 2, "one stuck on /mnt/nas, one for the rest");
    assert_eq!(c.failures().timed_out, 1);
    assert_eq!(c.failures().skipped, 1 + 3);
    assert_eq!(prober.calls_other.load(Ordering::SeqCst), 1 + 3 * 2);

    *prober.released.lock().unwrap() = true;
    prober.wake.notify_all();
    // The late answer frees the mount; the next sample asks again and gets figures.
    let mut answered = None;
    for _ in 0..200 {
        let r = c.read(&roots).unwrap();
        if r["/mnt/nas"].is_some() {
            answered = Some(r);
            break;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    let answered = answered.expect("the mount came back");
    assert_eq!(answered["/mnt/nas"].as_ref().unwrap().device, "nas:/export");
    assert_eq!(prober.calls_nfs.load(Ordering::SeqCst), 2);
    assert_eq!(c.threads(), 2);
}

#[test]
fn the_real_statvfs_of_a_missing_path_fails_cleanly() {
    assert!(Statvfs.statvfs(Path::new("/nonexistent/x")).is_err());
}
