//! The collectors against fixture trees of three kinds of machine, with exact values.
//! Every figure here is worked out by hand in `fixtures/<machine>/EXPECTED.md`.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::fs;

use broker::{DiskDevice, NetworkInterface, Power, Snapshot};
use common::{copy_tree, fixture};
use publisher::collectors::{
    cpu, disk, network, power, thermal, ChipFilter, CollectorName, Collectors, Roots,
};

fn text(machine: &str, file: &str) -> String {
    fs::read_to_string(fixture(machine).join(file)).unwrap()
}

/// CPU % between `proc/stat` and `proc_t1/stat`, to 4 decimals as in EXPECTED.md.
fn usage(machine: &str) -> (f64, Vec<f64>) {
    let a = cpu::parse_stat(&text(machine, "proc/stat")).unwrap();
    let b = cpu::parse_stat(&text(machine, "proc_t1/stat")).unwrap();
    let r4 = |x: f64| (x * 10_000.0).round() / 10_000.0;
    let all = r4(cpu::usage_percent(&a.all, &b.all).unwrap());
    let cores = a
        .cores
        .iter()
        .zip(&b.cores)
        .map(|((_, x), (_, y))| r4(cpu::usage_percent(x, y).unwrap()))
        .collect();
    (all, cores)
}

/// One full sample through [`Collectors`], with `proc_t1/stat` swapped in after priming so
/// the sample has a CPU % — the path the daemon takes.
fn sample(machine: &str) -> Snapshot {
    let dir = tempfile::tempdir().unwrap();
    copy_tree(&fixture(machine), dir.path());
    let statvfs = fs::read_to_string(fixture(machine).join("statvfs")).unwrap();
    let filesystems = publisher::collectors::FilesystemCollector::new(
        publisher::collectors::filesystem::Selection::default(),
        std::sync::Arc::new(publisher::collectors::statvfs::FixedStatvfs::parse(&statvfs).unwrap()),
        std::time::Duration::from_secs(5),
    );
    let mut collectors = Collectors::new(Roots::under(dir.path()), network::default_filter())
        .with_filesystems(Some(filesystems));
    collectors.prime();
    fs::copy(
        dir.path().join("proc_t1/stat"),
        dir.path().join("proc/stat"),
    )
    .unwrap();
    let reading = collectors.sample();
    assert!(collectors.errors().is_empty(), "{:?}", collectors.errors());
    reading.into_snapshot(Snapshot::default())
}

#[test]
fn tower_cpu_counts_guest_time_once() {
    let (all, cores) = usage("tower");
    assert_eq!(
        all, 32.4092,
        "the original, adding guest again, said 39.2206"
    );
    assert_eq!(cores.len(), 12);
    assert_eq!(cores[0], 37.9747);
    assert_eq!(cores[6], 25.2);
    assert_eq!(cores[11], 33.1113);
}

#[test]
fn tower_full_sample() {
    let s = sample("tower");
    let cpu = s.cpu.unwrap();
    assert_eq!(cpu.usage_percent, Some(32.41));
    assert_eq!(cpu.cores, Some(12));
    assert_eq!(cpu.per_core_percent[9], Some(41.33));
    assert_eq!(
        (cpu.load_1m, cpu.load_5m, cpu.load_15m),
        (Some(1.42), Some(1.18), Some(0.97))
    );
    let mem = s.memory.unwrap();
    assert_eq!(
        (
            mem.total_mb,
            mem.available_mb,
            mem.swap_used_mb,
            mem.swap_total_mb
        ),
        (31951, 20952, 1159, 8191)
    );
    assert_eq!(s.uptime_s, Some(274512.83));
    assert_eq!(
        s.boot_id.as_deref(),
        Some("7c1e4a9d-52b8-4f0e-9d36-a1f07c3e8b25")
    );

    // Partitions, dm-0 (LUKS), md0 (RAID1), loop, zram and the stacked zd0 (ZFS zvol), nbd0,
    // drbd0 and bcache0 are not counted again.
    let disk = s.disk.unwrap();
    assert_eq!(
        disk.devices.keys().collect::<Vec<_>>(),
        ["nvme0n1", "sda", "sdb", "sr0"]
    );
    assert_eq!(
        disk.devices["nvme0n1"],
        DiskDevice {
            read_sectors: 181626888,
            write_sectors: 312664544,
            ios: Some(2419321 + 3771950),
            io_wait_ms: Some(512563 + 2804132),
            io_time_ms: Some(1913249),
        }
    );
    assert_eq!(
        (disk.read_sectors, disk.write_sectors),
        (248141916, 418102760)
    );

    // Bridge, veth, docker, libvirt and VPN traffic is already in enp3s0.
    let net = s.network.unwrap();
    assert_eq!(
        net.interfaces.keys().collect::<Vec<_>>(),
        ["enp3s0", "wlp4s0"]
    );
    assert_eq!(
        net.interfaces["enp3s0"],
        NetworkInterface {
            rx_bytes: 184467302911,
            tx_bytes: 23118440127
        }
    );
    assert_eq!((net.rx_bytes, net.tx_bytes), (184515514814, 23128324247));

    // x86_pkg_temp (52.5) wins over coretemp's package sensor (53.375): rule 1.
    assert_eq!(s.thermal.cpu_temp_c, Some(52.5));
    assert_eq!(s.thermal.sensors.len(), 19);
    assert_eq!(s.thermal.sensors["coretemp/Package id 0"], 53.375);
    // The SATA disks' drivetemp chips (no label; the second one's key names its directory).
    assert_eq!(s.thermal.sensors["drivetemp/temp1"], 36.0);
    assert_eq!(s.thermal.sensors["drivetemp/temp1 (hwmon6/temp1)"], 38.0);
    assert_eq!(s.thermal.sensors["nvme/Composite"], 44.85);
    assert_eq!(s.thermal.sensors["hwmon3/temp1"], 40.125);
    assert_eq!(s.thermal.sensors["iwlwifi_1"], 41.0);
}

#[test]
fn tower_without_the_pkg_zone_falls_back_to_coretemp_package() {
    let mut reading =
        thermal::read_sensors(&Roots::under(fixture("tower")), &ChipFilter::default()).unwrap();
    reading.zones.retain(|z| z.kind != "x86_pkg_temp");
    assert_eq!(thermal::cpu_temperature(&reading), Some(53.375));
}

#[test]
fn tower_counters_at_t1() {
    let d = disk::summarize(&disk::parse_diskstats(&text("tower", "proc_t1/diskstats")).unwrap());
    assert_eq!((d.read_sectors, d.write_sectors), (248319708, 418125672));
    let n = network::summarize(
        &network::parse_net_dev(&text("tower", "proc_t1/net/dev")).unwrap(),
        &network::default_filter(),
    );
    assert_eq!((n.rx_bytes, n.tx_bytes), (184594159986, 23130429021));
}

#[test]
fn rpi4_full_sample() {
    let (all, cores) = usage("rpi4");
    assert_eq!(all, 9.3182);
    assert_eq!(cores, vec![10.4667, 8.7392, 9.4604, 8.6057]);
    let s = sample("rpi4");
    // A weak supply earlier in this boot: under-voltage and throttling have occurred (bits 16
    // and 18 of get_throttled), neither now, and the rpi_volt alarm is off.
    assert_eq!(
        s.power,
        Some(Power {
            under_voltage_alarm: Some(false),
            throttled: Some(0x50000),
        })
    );
    let cpu = s.cpu.unwrap();
    assert_eq!(cpu.usage_percent, Some(9.32));
    assert_eq!(cpu.cores, Some(4));
    assert_eq!(
        (cpu.load_1m, cpu.load_5m, cpu.load_15m),
        (Some(0.31), Some(0.42), Some(0.38))
    );
    let mem = s.memory.unwrap();
    assert_eq!(
        (mem.total_mb, mem.available_mb, mem.swap_used_mb),
        (3791, 3030, 3)
    );
    assert_eq!(s.uptime_s, Some(1043127.41));
    assert_eq!(
        s.boot_id.as_deref(),
        Some("e4b0d2f1-9a37-4c6e-b851-3d2a6f90c7aa")
    );
    let disk = s.disk.unwrap();
    assert_eq!(disk.devices.keys().collect::<Vec<_>>(), ["mmcblk0", "sda"]);
    assert_eq!(
        (disk.read_sectors, disk.write_sectors),
        (55149058, 127633240)
    );
    let net = s.network.unwrap();
    assert_eq!(net.interfaces.keys().collect::<Vec<_>>(), ["eth0", "wlan0"]);
    assert_eq!((net.rx_bytes, net.tx_bytes), (9876329934, 41221321318));
    // The Pi's SoC sensor, with its decimals.
    assert_eq!(s.thermal.cpu_temp_c, Some(48.686));
    assert_eq!(s.thermal.sensors.len(), 2);
    assert_eq!(s.thermal.sensors["cpu_thermal/temp1"], 48.686);
}

#[test]
fn ci_vm_has_no_sensor_and_says_null() {
    let (all, cores) = usage("ci-vm");
    assert_eq!(all, 13.5379);
    assert_eq!(cores, vec![2.5271, 24.6429]);
    let s = sample("ci-vm");
    assert_eq!(s.cpu.as_ref().unwrap().cores, Some(2));
    assert_eq!(s.memory.as_ref().unwrap().total_mb, 24105);
    assert_eq!(s.memory.as_ref().unwrap().available_mb, 23713);
    let disk = s.disk.unwrap();
    assert_eq!(disk.devices.keys().collect::<Vec<_>>(), ["vda"]);
    assert_eq!((disk.read_sectors, disk.write_sectors), (3957090, 3403256));
    let net = s.network.unwrap();
    assert_eq!(
        net.interfaces.keys().collect::<Vec<_>>(),
        ["eth0"],
        "ifb0/ifb1 are shapers"
    );
    assert_eq!((net.rx_bytes, net.tx_bytes), (115703932, 231241));
    assert_eq!(s.thermal.cpu_temp_c, None);
    assert!(s.thermal.sensors.is_empty());
    let json = serde_json::to_value(&s.thermal).unwrap();
    assert!(json["cpu_temp_c"].is_null(), "null, never 0");
}

#[test]
fn missing_and_truncated_files_null_one_section_only() {
    let dir = tempfile::tempdir().unwrap();
    copy_tree(&fixture("rpi4"), dir.path());
    fs::remove_file(dir.path().join("proc/meminfo")).unwrap();
    let stat = fs::read_to_string(dir.path().join("proc/diskstats")).unwrap();
    fs::write(dir.path().join("proc/diskstats"), &stat[..stat.len() / 2]).unwrap();
    fs::remove_dir_all(dir.path().join("sys")).unwrap();
    let mut collectors = Collectors::new(Roots::under(dir.path()), network::default_filter());
    let s = collectors.sample().into_snapshot(Snapshot::default());
    assert_eq!(s.memory, None);
    assert_eq!(s.disk, None);
    assert_eq!(
        s.thermal.cpu_temp_c, None,
        "no /sys at all is no sensor, not an error"
    );
    assert_eq!(s.network.unwrap().rx_bytes, 9876329934);
    assert_eq!(s.cpu.unwrap().cores, Some(4));
    let errors = collectors.errors();
    assert_eq!(errors.get(&CollectorName::Memory), Some(&1));
    assert_eq!(errors.get(&CollectorName::Disk), Some(&1));
    assert_eq!(errors.get(&CollectorName::Thermal), None);
    collectors.sample();
    assert_eq!(collectors.errors().get(&CollectorName::Memory), Some(&2));
}

/// Shapes seen in node_exporter's fixture tree, rebuilt here from the kernel's formats: an
/// hwmon chip whose attributes live in `device/` (older kernels), a garbled input and a
/// dangling link.
#[test]
fn hwmon_attributes_under_device_and_unreadable_inputs() {
    let dir = tempfile::tempdir().unwrap();
    let chip = dir.path().join("sys/class/hwmon/hwmon0/device");
    fs::create_dir_all(&chip).unwrap();
    fs::write(chip.join("name"), "coretemp\n").unwrap();
    fs::write(chip.join("temp1_input"), "55000\n").unwrap();
    fs::write(chip.join("temp1_label"), "Physical id 0\n").unwrap();
    fs::write(chip.join("temp2_input"), "garbage\n").unwrap();
    std::os::unix::fs::symlink("/nonexistent", chip.join("temp3_input")).unwrap();
    let reading = thermal::read_sensors(&Roots::under(dir.path()), &ChipFilter::default()).unwrap();
    assert_eq!(reading.chips.len(), 1);
    assert_eq!(
        reading.chips[0].temps,
        vec![thermal::Temp {
            input: 1,
            label: "Physical id 0".into(),
            celsius: 55.0
        }]
    );
    assert_eq!(thermal::cpu_temperature(&reading), Some(55.0));
}

#[test]
fn rpi5_under_voltage_now_and_a_machine_that_is_no_pi() {
    // The Pi 5's firmware device has another name; it is found through the driver.
    let rpi5 = power::read(&Roots::under(fixture("rpi5"))).unwrap();
    assert_eq!(
        rpi5,
        Some(Power {
            under_voltage_alarm: Some(true),
            throttled: Some(0x50005),
        })
    );
    assert_eq!(
        sample("tower").power,
        None,
        "not a Pi: no section, not a false all-clear"
    );
    assert_eq!(sample("ci-vm").power, None);
}

#[test]
fn a_power_file_that_does_not_parse_is_a_counted_collector_error() {
    let dir = tempfile::tempdir().unwrap();
    copy_tree(&fixture("rpi4"), dir.path());
    let throttled = dir
        .path()
        .join("sys/bus/platform/drivers/raspberrypi-firmware/soc:firmware/get_throttled");
    fs::write(&throttled, "throttled=oops\n").unwrap();
    let mut c = Collectors::new(Roots::under(dir.path()), network::default_filter());
    let r = c.sample();
    assert_eq!(r.power, None);
    assert_eq!(c.errors().get(&CollectorName::Power), Some(&1));
}

#[test]
fn top_processes_by_cpu_and_memory_from_two_samples() {
    use publisher::collectors::processes::ProcessCollector;
    let base = fixture("procs");
    let mut c = ProcessCollector::new(3, base.join("passwd"));
    let t0 = std::time::UNIX_EPOCH + std::time::Duration::from_secs(1_800_000_000);
    let first = c.read(&Roots::under(base.join("t0")), t0).unwrap();
    assert_eq!(first.count, 5);
    assert!(first.top_cpu.is_empty(), "no CPU % on the first sample");
    let p = c
        .read(
            &Roots::under(base.join("t1")),
            t0 + std::time::Duration::from_secs(2),
        )
        .unwrap();
    assert_eq!(p.count, 6);
    // EXPECTED.md: USER_HZ ticks over the 2 s between the samples, per core as top shows it.
    let hz = rustix::param::clock_ticks_per_second() as f64;
    let pct = |ticks: f64| ((ticks / hz / 2.0 * 100.0) * 100.0).round() / 100.0;
    let cpu: Vec<(u32, &str, Option<f64>)> = p
        .top_cpu
        .iter()
        .map(|t| (t.pid, t.name.as_str(), t.cpu_percent))
        .collect();
    assert_eq!(
        cpu,
        [
            (777, "ffmpeg", Some(pct(380.0))),
            (42, "postgres", Some(pct(150.0))),
            (1, "systemd", Some(pct(2.0)))
        ]
    );
    assert_eq!(pct(380.0), 190.0, "USER_HZ 100 on every Linux this runs on");
    let page = rustix::param::page_size() as u64;
    let mem: Vec<(u32, u64)> = p.top_rss.iter().map(|t| (t.pid, t.rss_bytes)).collect();
    assert_eq!(
        mem,
        [
            (888, 999_999 * page),
            (777, 120_000 * page),
            (42, 50_000 * page)
        ]
    );
    assert_eq!(
        p.top_rss[0].cpu_percent, None,
        "new since the previous sample"
    );
    // The owner: the fixture directory's, named from the fixture passwd (CI runs as root).
    let uid = std::os::unix::fs::MetadataExt::uid(&fs::metadata(base.join("t1/proc/777")).unwrap());
    let want = if uid == 0 {
        "root".to_owned()
    } else {
        uid.to_string()
    };
    assert_eq!(p.top_cpu[0].user.as_deref(), Some(want.as_str()));
}
