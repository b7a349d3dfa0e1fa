//! What is discovered once and kept between samples (issue 22): hwmon chips and thermal zones,
//! a Pi's power files, the mounts, and the `/proc` files held open. Each test copies a
//! fixture machine into a temporary directory, samples it, changes the tree as the kernel
//! would (a chip unplugged, a chip plugged in, a mount added or removed, a file replaced) and
//! checks that the next sample — or the next after a rescan, where nothing fails to tell —
//! gives what a fresh read of the changed tree gives.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::fs;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use broker::Snapshot;
use common::{copy_tree, fixture};
use publisher::collectors::filesystem::Selection;
use publisher::collectors::statvfs::FixedStatvfs;
use publisher::collectors::{
    network, power, thermal, ChipFilter, Collectors, FilesystemCollector, Roots,
};

/// A copy of `machine` in a temporary directory.
fn copy(machine: &str) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    copy_tree(&fixture(machine), dir.path());
    dir
}

fn sample(c: &mut Collectors) -> Snapshot {
    c.sample().into_snapshot(Snapshot::default())
}

/// What reading the tree afresh gives (no state kept).
fn fresh_thermal(root: &Path) -> broker::Thermal {
    thermal::read(&Roots::under(root), &ChipFilter::default()).unwrap()
}

/// Replaces a file the way an editor or a package does: a new file renamed over it.
fn replace(path: &Path, text: &str) {
    let new = path.with_extension("new");
    fs::write(&new, text).unwrap();
    fs::rename(&new, path).unwrap();
}

#[test]
fn sensors_are_discovered_once_and_again_when_a_chip_goes_away() {
    let dir = copy("tower");
    let mut c =
        Collectors::new(Roots::under(dir.path()), network::default_filter()).with_filesystems(None);
    let first = sample(&mut c);
    assert_eq!(first.thermal, fresh_thermal(dir.path()));
    assert!(first.thermal.sensors.contains_key("coretemp/Package id 0"));
    let before = first.thermal.sensors.len();
    // A new value in place (as sysfs gives one each read) is read without a new discovery.
    let package = dir.path().join("sys/class/hwmon/hwmon2/temp1_input");
    fs::write(&package, "71500\n").unwrap();
    let second = sample(&mut c);
    assert_eq!(second.thermal.sensors["coretemp/Package id 0"], 71.5);
    assert_eq!(second.thermal, fresh_thermal(dir.path()));
    assert_eq!(c.thermal().discoveries(), 1);

    // The coretemp module unloaded: sysfs removes hwmon2, and its open inputs answer with an
    // error (ENODEV). Here an emptied file stands for that error (a plain file stays readable
    // once deleted).
    let chip = dir.path().join("sys/class/hwmon/hwmon2");
    for entry in fs::read_dir(&chip).unwrap() {
        let path = entry.unwrap().path();
        if path.to_str().unwrap().ends_with("_input") {
            fs::write(&path, "").unwrap();
        }
    }
    fs::remove_dir_all(&chip).unwrap();
    let third = sample(&mut c);
    assert_eq!(c.thermal().discoveries(), 2, "a failed read rediscovers");
    assert_eq!(third.thermal, fresh_thermal(dir.path()));
    assert!(!third
        .thermal
        .sensors
        .keys()
        .any(|k| k.starts_with("coretemp/")));
    assert_eq!(third.thermal.sensors.len(), before - 7);
    assert!(c.errors().is_empty(), "{:?}", c.errors());
}

#[test]
fn a_chip_that_appears_is_found_at_the_next_rescan() {
    let dir = copy("tower");
    let mut c =
        Collectors::new(Roots::under(dir.path()), network::default_filter()).with_filesystems(None);
    let before = sample(&mut c).thermal;
    let chip = dir.path().join("sys/class/hwmon/hwmon7");
    fs::create_dir_all(&chip).unwrap();
    fs::write(chip.join("name"), "k10temp\n").unwrap();
    fs::write(chip.join("temp1_input"), "48250\n").unwrap();
    fs::write(chip.join("temp1_label"), "Tctl\n").unwrap();
    // Nothing failed: the chip waits for the periodic rescan (every few minutes).
    assert_eq!(sample(&mut c).thermal, before);
    c.rescan();
    let after = sample(&mut c).thermal;
    assert_eq!(after.sensors["k10temp/Tctl"], 48.25);
    assert_eq!(after, fresh_thermal(dir.path()));
    assert_eq!(c.thermal().discoveries(), 2);

    // With a zero period every sample looks again.
    let mut eager = Collectors::new(Roots::under(dir.path()), network::default_filter())
        .with_filesystems(None)
        .with_rescan_every(Duration::ZERO);
    sample(&mut eager);
    fs::remove_dir_all(&chip).unwrap();
    assert!(!sample(&mut eager)
        .thermal
        .sensors
        .contains_key("k10temp/Tctl"));
}

#[test]
fn a_replaced_file_is_read_at_the_next_sample() {
    let dir = copy("tower");
    let mut c =
        Collectors::new(Roots::under(dir.path()), network::default_filter()).with_filesystems(None);
    let first = sample(&mut c);
    assert_eq!(first.memory.as_ref().unwrap().total_mb, 31951);
    let meminfo = dir.path().join("proc/meminfo");
    let text = fs::read_to_string(&meminfo).unwrap();
    let nvme = dir.path().join("sys/class/hwmon/hwmon1/temp1_input");
    replace(
        &meminfo,
        &text.replacen("MemTotal:", "MemTotal:   1024 kB\nX:", 1),
    );
    replace(&nvme, "12000\n");
    // procfs and sysfs never replace a file; a file elsewhere (a fixture tree, a copy given
    // as --proc-root) is checked to be the one held, and opened again when it is not.
    let after = sample(&mut c);
    assert_eq!(after.memory.unwrap().total_mb, 1);
    assert_eq!(after.thermal, fresh_thermal(dir.path()));
    assert_ne!(after.thermal, first.thermal);
}

#[test]
fn a_power_file_that_goes_away_is_looked_for_again() {
    let dir = copy("rpi4");
    let roots = Roots::under(dir.path());
    let mut c = Collectors::new(roots.clone(), network::default_filter()).with_filesystems(None);
    let first = sample(&mut c).power;
    assert_eq!(first, power::read(&roots).unwrap());
    assert!(first.unwrap().throttled.is_some());
    let firmware = dir
        .path()
        .join("sys/bus/platform/drivers/raspberrypi-firmware/soc:firmware");
    // Unbound: the open file fails (an emptied file here), the device directory is gone.
    fs::write(firmware.join("get_throttled"), "").unwrap();
    fs::remove_dir_all(&firmware).unwrap();
    let after = sample(&mut c).power;
    assert_eq!(after, power::read(&roots).unwrap());
    assert_eq!(after.unwrap().throttled, None);
    assert!(c.errors().is_empty(), "{:?}", c.errors());
}

fn tower_filesystems(dir: &Path, extra: &str) -> FilesystemCollector {
    let table = fs::read_to_string(dir.join("statvfs")).unwrap() + extra;
    FilesystemCollector::new(
        Selection::default(),
        Arc::new(FixedStatvfs::parse(&table).unwrap()),
        Duration::from_secs(5),
    )
}

#[test]
fn mountinfo_is_parsed_again_only_when_it_changed() {
    let dir = copy("tower");
    let roots = Roots::under(dir.path());
    let mut fs_c = tower_filesystems(dir.path(), "/mnt/new 4096 1000 500 400 100 90\n");
    let first = fs_c.read(&roots).unwrap();
    assert_eq!(fs_c.read(&roots).unwrap(), first);
    assert_eq!(fs_c.read(&roots).unwrap(), first);
    assert_eq!(fs_c.mountinfo_reads(), 1, "unchanged: not read again");

    // A mount added (the file rewritten in place).
    let mountinfo = dir.path().join("proc/self/mountinfo");
    let text = fs::read_to_string(&mountinfo).unwrap();
    let added = format!("{text}90 29 8:49 / /mnt/new rw,relatime shared:90 - ext4 /dev/sdd1 rw\n");
    fs::write(&mountinfo, &added).unwrap();
    let with_new = fs_c.read(&roots).unwrap();
    assert_eq!(fs_c.mountinfo_reads(), 2);
    assert_eq!(with_new.len(), first.len() + 1);
    let new = with_new["/mnt/new"].as_ref().unwrap();
    assert_eq!((new.device.as_str(), new.size_bytes), ("sdd1", 4096 * 1000));

    // A mount removed (the file replaced by another of the same length).
    let boot = added
        .lines()
        .find(|l| l.contains(" /boot "))
        .unwrap()
        .to_owned();
    let renamed = added.replace(&boot, &boot.replace(" /boot ", " /bxxt "));
    assert_eq!(renamed.len(), added.len());
    replace(&mountinfo, &renamed);
    let without = fs_c.read(&roots).unwrap();
    assert_eq!(fs_c.mountinfo_reads(), 3);
    assert!(!without.contains_key("/boot"));
    assert!(without.contains_key("/mnt/new"));

    // The same as a collector that never read the tree before.
    let mut fresh = tower_filesystems(dir.path(), "/mnt/new 4096 1000 500 400 100 90\n");
    assert_eq!(fresh.read(&roots).unwrap(), without);
}

/// On procfs the kernel flags a change of the mount table on the open file; with none, this
/// machine's mountinfo is read once however many samples are taken (a mount by another
/// process meanwhile may add a read: at most one is allowed for it).
#[test]
fn this_machines_mountinfo_is_read_once_while_nothing_is_mounted() {
    let mut c = FilesystemCollector::system();
    let roots = Roots::default();
    for _ in 0..5 {
        c.read(&roots).unwrap();
    }
    assert!(c.mountinfo_reads() <= 2, "{}", c.mountinfo_reads());
}
