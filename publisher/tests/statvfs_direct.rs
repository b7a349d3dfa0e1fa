//! Which mounts' `statvfs` runs on the sampling thread and which on the helper threads with
//! their timeout: local filesystems directly, every other type (network, FUSE, unknown) and
//! every mount below one of those through the helper threads.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

use broker::Filesystem;
use publisher::collectors::filesystem::{FilesystemCollector, Selection};
use publisher::collectors::statvfs::{FixedStatvfs, FsStats, Prober, Statvfs};
use publisher::collectors::Roots;

use common::{copy_tree, fixture};

fn fixed(machine: &str) -> FixedStatvfs {
    let text = std::fs::read_to_string(fixture(machine).join("statvfs")).unwrap();
    FixedStatvfs::parse(&text).unwrap()
}

/// The fixture's table behind a prober that says nothing of its types: every mount goes
/// through the helper threads, as every mount did before.
#[derive(Debug)]
struct AllThroughThreads(FixedStatvfs);

impl Prober for AllThroughThreads {
    fn statvfs(&self, path: &Path) -> std::io::Result<FsStats> {
        self.0.statvfs(path)
    }
}

fn read_with(
    machine: &str,
    prober: Arc<dyn Prober>,
) -> (BTreeMap<String, Option<Filesystem>>, usize) {
    let mut c = FilesystemCollector::new(Selection::default(), prober, Duration::from_secs(5));
    let roots = Roots::under(fixture(machine));
    let first = c.read(&roots).unwrap();
    assert_eq!(c.read(&roots).unwrap(), first);
    assert_eq!(c.failures().failed + c.failures().timed_out, 0);
    (first, c.threads())
}

#[test]
fn local_machines_start_no_helper_thread_and_their_figures_are_unchanged() {
    for machine in ["rpi4", "ci-vm"] {
        let (direct, threads) = read_with(machine, Arc::new(fixed(machine)));
        assert_eq!(threads, 0, "{machine}: every mount is local");
        let (pooled, pool_threads) =
            read_with(machine, Arc::new(AllThroughThreads(fixed(machine))));
        assert_eq!(pool_threads, 1);
        assert_eq!(direct, pooled, "{machine}");
        assert!(!direct.is_empty() && direct.values().all(Option::is_some));
    }
    let (rpi4, _) = read_with("rpi4", Arc::new(fixed("rpi4")));
    assert_eq!(rpi4["/"].as_ref().unwrap().size_bytes, 30761816064);
}

#[test]
fn the_tower_asks_only_its_fuse_portal_on_a_helper_thread() {
    // ext4, vfat, exfat, tmpfs, zfs directly; `fuse.portal` (a user's daemon answers it) on
    // the helper thread, where it answers no blocks and is left out as `df` does.
    let (direct, threads) = read_with("tower", Arc::new(fixed("tower")));
    assert_eq!(threads, 1);
    let (pooled, _) = read_with("tower", Arc::new(AllThroughThreads(fixed("tower"))));
    assert_eq!(direct, pooled);
    assert_eq!(direct.len(), 9);
    assert_eq!(direct["/tank/backup"].as_ref().unwrap().fstype, "zfs");
}

/// A mount table in a temporary tree.
fn tree(mountinfo: &str) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(dir.path().join("proc/self")).unwrap();
    std::fs::write(dir.path().join("proc/self/mountinfo"), mountinfo).unwrap();
    dir
}

#[test]
fn the_real_statvfs_of_local_mounts_runs_on_the_sampling_thread() {
    let dir = tree(
        "1 0 8:1 / / rw - ext4 /dev/sda1 rw\n\
         2 1 0:30 / /tmp rw - tmpfs tmpfs rw\n",
    );
    let mut c = FilesystemCollector::new(
        Selection::default(),
        Arc::new(Statvfs),
        Duration::from_secs(1),
    );
    let got = c.read(&Roots::under(dir.path())).unwrap();
    assert_eq!(c.threads(), 0);
    let root = Statvfs.statvfs(Path::new("/")).unwrap();
    let ours = got["/"].as_ref().unwrap();
    assert_eq!(ours.size_bytes, root.blocks * root.frsize);
    assert_eq!(ours.files, root.files);
    assert!(got["/tmp"].is_some());
}

/// Hangs on `/mnt/nas` until released; answers every other path; records the thread of
/// every call. Its types follow the real `statvfs`'s rule.
#[derive(Debug, Default)]
struct HungNas {
    released: Mutex<bool>,
    wake: Condvar,
    calls: Mutex<Vec<(PathBuf, Option<String>)>>,
}

impl HungNas {
    fn threads_of(&self, path: &str) -> Vec<Option<String>> {
        let calls = self.calls.lock().unwrap();
        let mut names: Vec<_> = calls
            .iter()
            .filter(|(p, _)| p == Path::new(path))
            .map(|(_, t)| t.clone())
            .collect();
        names.dedup();
        names
    }
}

impl Prober for HungNas {
    fn statvfs(&self, path: &Path) -> std::io::Result<FsStats> {
        let thread = std::thread::current().name().map(str::to_owned);
        self.calls.lock().unwrap().push((path.to_owned(), thread));
        if path == Path::new("/mnt/nas") {
            let mut released = self.released.lock().unwrap();
            while !*released {
                released = self.wake.wait(released).unwrap();
            }
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

    fn may_hang(&self, fstype: &str) -> bool {
        Statvfs.may_hang(fstype)
    }
}

#[test]
fn a_hung_nfs_mount_times_out_while_local_ones_are_answered_directly() {
    let dir = tree(
        "1 0 8:1 / / rw - ext4 /dev/sda1 rw\n\
         2 1 0:50 / /mnt/nas rw - nfs4 nas:/export rw\n\
         3 2 8:33 / /mnt/nas/cache rw - ext4 /dev/sdc1 rw\n\
         4 1 0:51 / /media/odd rw - weirdfs odd rw\n\
         5 1 8:17 / /srv rw - xfs /dev/sdb1 rw\n",
    );
    let roots = Roots::under(dir.path());
    let prober = Arc::new(HungNas::default());
    let mut c = FilesystemCollector::new(
        Selection::every_mount_point(),
        Arc::clone(&prober) as Arc<dyn Prober>,
        Duration::from_millis(100),
    );
    let me = std::thread::current().name().map(str::to_owned);

    let started = Instant::now();
    let first = c.read(&roots).unwrap();
    assert!(started.elapsed() < Duration::from_secs(2), "not stalled");
    assert!(first["/"].is_some() && first["/srv"].is_some(), "{first:?}");
    assert!(
        first["/media/odd"].is_some(),
        "answered before the hung one"
    );
    assert_eq!(first["/mnt/nas"], None, "timed out");
    assert_eq!(first["/mnt/nas/cache"], None, "deferred behind it");
    assert_eq!(c.failures().timed_out, 1);
    assert_eq!(c.failures().skipped, 1);
    assert_eq!(c.threads(), 1);

    for _ in 0..3 {
        let again = c.read(&roots).unwrap();
        assert_eq!(again["/mnt/nas"], None);
        assert!(again.iter().all(|(p, v)| p == "/mnt/nas" || v.is_some()));
    }
    assert_eq!(c.threads(), 2, "one stuck on /mnt/nas, one for the others");
    assert_eq!(c.failures().timed_out, 1);
    assert_eq!(c.failures().skipped, 1 + 3);

    // Local types on the sampling thread; the unknown type, the network mount and the local
    // one below it on the helper threads.
    assert_eq!(prober.threads_of("/"), std::slice::from_ref(&me));
    assert_eq!(prober.threads_of("/srv"), [me]);
    for path in ["/mnt/nas", "/mnt/nas/cache", "/media/odd"] {
        let threads = prober.threads_of(path);
        assert!(
            threads
                .iter()
                .all(|t| t.as_deref().is_some_and(|t| t.starts_with("statvfs-"))),
            "{path}: {threads:?}"
        );
    }

    *prober.released.lock().unwrap() = true;
    prober.wake.notify_all();
}

/// The tower's table, counting the calls for each mount point.
#[derive(Debug)]
struct Counting(FixedStatvfs, Mutex<BTreeMap<PathBuf, u32>>);

impl Prober for Counting {
    fn statvfs(&self, path: &Path) -> std::io::Result<FsStats> {
        *self.1.lock().unwrap().entry(path.to_owned()).or_default() += 1;
        self.0.statvfs(path)
    }

    fn may_hang(&self, fstype: &str) -> bool {
        self.0.may_hang(fstype)
    }
}

#[test]
fn a_protected_mount_with_no_blocks_is_asked_again_only_when_the_mount_table_changes() {
    // The tower's `fuse.portal` answers no blocks (it is never reported): asking it at every
    // sample cost the one hand-off to a helper thread the tower's sample still had.
    let dir = tempfile::tempdir().unwrap();
    copy_tree(&fixture("tower"), dir.path());
    let prober = Arc::new(Counting(fixed("tower"), Mutex::default()));
    let mut c = FilesystemCollector::new(
        Selection::default(),
        Arc::clone(&prober) as Arc<dyn Prober>,
        Duration::from_secs(5),
    );
    let roots = Roots::under(dir.path());
    let portal = Path::new("/run/user/1000/doc");
    let asked = |p: &Path| prober.1.lock().unwrap().get(p).copied().unwrap_or(0);
    let first = c.read(&roots).unwrap();
    for _ in 0..5 {
        assert_eq!(c.read(&roots).unwrap(), first);
    }
    assert_eq!(asked(portal), 1, "asked once, then left to rest");
    assert_eq!(asked(Path::new("/")), 6, "the others at every sample");
    assert!(!first.contains_key("/run/user/1000/doc"));
    // A new mount table: asked again (it may hold blocks now).
    let mountinfo = dir.path().join("proc/self/mountinfo");
    let mut text = std::fs::read_to_string(&mountinfo).unwrap();
    text.push_str("99 24 0:99 / /mnt/usb rw - vfat /dev/sdz1 rw\n");
    std::fs::write(&mountinfo, text).unwrap();
    c.read(&roots).unwrap();
    assert_eq!(asked(portal), 2);
}
