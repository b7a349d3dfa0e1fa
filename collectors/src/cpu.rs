//! CPU usage from `/proc/stat` deltas (Documentation/filesystems/proc.rst, "1.7 Miscellaneous
//! kernel statistics in /proc/stat").
//!
//! `guest` and `guest_nice` are already included in `user` and `nice` by the kernel, so they
//! are not added again (the original did, and over-reported CPU on a host running VMs).
//! `idle` includes `iowait`: a CPU waiting on I/O is not busy.

use broker::Cpu;

use super::held::{Extent, HeldFile};
use super::{parse_u64, read_parsed, round2, CollectError, ParseError, Roots};

/// The cumulative jiffies of one `cpu` line. Older kernels print fewer columns; the missing
/// ones read as zero.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct CpuTimes {
    pub user: u64,
    pub nice: u64,
    pub system: u64,
    pub idle: u64,
    pub iowait: u64,
    pub irq: u64,
    pub softirq: u64,
    pub steal: u64,
    pub guest: u64,
    pub guest_nice: u64,
}

impl CpuTimes {
    fn from_fields(fields: &[u64]) -> Self {
        let at = |i: usize| fields.get(i).copied().unwrap_or(0);
        Self {
            user: at(0),
            nice: at(1),
            system: at(2),
            idle: at(3),
            iowait: at(4),
            irq: at(5),
            softirq: at(6),
            steal: at(7),
            guest: at(8),
            guest_nice: at(9),
        }
    }

    /// Field-wise `self - earlier`, saturating: per-CPU `iowait` is known to go backwards on
    /// some kernels, and a decrease must not become a huge busy figure.
    fn since(&self, earlier: &CpuTimes) -> CpuTimes {
        CpuTimes {
            user: self.user.saturating_sub(earlier.user),
            nice: self.nice.saturating_sub(earlier.nice),
            system: self.system.saturating_sub(earlier.system),
            idle: self.idle.saturating_sub(earlier.idle),
            iowait: self.iowait.saturating_sub(earlier.iowait),
            irq: self.irq.saturating_sub(earlier.irq),
            softirq: self.softirq.saturating_sub(earlier.softirq),
            steal: self.steal.saturating_sub(earlier.steal),
            guest: self.guest.saturating_sub(earlier.guest),
            guest_nice: self.guest_nice.saturating_sub(earlier.guest_nice),
        }
    }

    /// All time, without guest time (already inside user and nice).
    pub fn total(&self) -> u64 {
        self.user + self.nice + self.system + self.idle_all() + self.irq + self.softirq + self.steal
    }

    /// Time not busy: idle plus waiting for I/O.
    pub fn idle_all(&self) -> u64 {
        self.idle + self.iowait
    }
}

/// One reading of `/proc/stat`: the aggregate line and each CPU's line.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct StatSample {
    pub all: CpuTimes,
    /// `(cpu number, times)`, in file order. Offline CPUs have no line.
    pub cores: Vec<(u32, CpuTimes)>,
    /// The `processes` line: forks and clones (threads too) since boot, in every pid
    /// namespace (`total_forks`, counted after the new task is in the pid tables). `None`
    /// when the line is missing, repeated or not one number; the CPU figures do not need it.
    pub forks: Option<u64>,
}

/// Parses the `cpu` and `cpuN` lines of `/proc/stat`; other lines are ignored.
pub fn parse_stat(text: &str) -> Result<StatSample, ParseError> {
    let mut sample = StatSample::default();
    parse_stat_into(text, &mut sample)?;
    Ok(sample)
}

/// [`parse_stat`] into `sample`, reusing its list of cores (no allocation once it has grown
/// to the machine's CPU count).
pub fn parse_stat_into(text: &str, sample: &mut StatSample) -> Result<(), ParseError> {
    let mut all = None;
    sample.cores.clear();
    // `Some(None)`: seen, but not usable.
    let mut forks: Option<Option<u64>> = None;
    for (index, line) in text.lines().enumerate() {
        let mut words = line.split_ascii_whitespace();
        let Some(label) = words.next() else { continue };
        if label == "processes" {
            let value = match (words.next(), words.next(), forks) {
                (Some(n), None, None) => parse_u64(n).ok(),
                _ => None,
            };
            forks = Some(value);
            continue;
        }
        let Some(cpu_id) = label.strip_prefix("cpu") else {
            continue;
        };
        let bad = |reason: String| ParseError::Line {
            line: index + 1,
            reason,
        };
        // The first ten values are used; every one must be a number.
        let mut fields = [0u64; 10];
        let mut count = 0usize;
        for word in words {
            let value = parse_u64(word).map_err(|e| bad(e.to_string()))?;
            if let Some(slot) = fields.get_mut(count) {
                *slot = value;
            }
            count += 1;
        }
        // user nice system idle have been there since Linux 2.4; fewer means a cut line.
        if count < 4 {
            return Err(bad(format!(
                "{label} has {count} values, expected at least 4"
            )));
        }
        let times = CpuTimes::from_fields(&fields[..count.min(fields.len())]);
        if cpu_id.is_empty() {
            all = Some(times);
        } else {
            let n = cpu_id
                .parse()
                .map_err(|_| bad(format!("{label:?} is not cpu<N>")))?;
            sample.cores.push((n, times));
        }
    }
    sample.forks = forks.flatten();
    sample.all = all.ok_or(ParseError::Missing("aggregate \"cpu\" line"))?;
    Ok(())
}

/// Busy share of the time between two readings, in percent; `None` when no time passed.
pub fn usage_percent(earlier: &CpuTimes, later: &CpuTimes) -> Option<f64> {
    let delta = later.since(earlier);
    let total = delta.total();
    if total == 0 {
        return None;
    }
    let busy = total - delta.idle_all();
    Some(100.0 * busy as f64 / total as f64)
}

/// Builds the snapshot's `cpu` section from two `/proc/stat` readings and `/proc/loadavg`.
/// Usage needs both readings; load and core count need only the current ones.
pub fn summarize(
    previous: Option<&StatSample>,
    current: Option<&StatSample>,
    load: Option<super::load::LoadAvg>,
) -> Option<Cpu> {
    if current.is_none() && load.is_none() {
        return None;
    }
    let mut cpu = Cpu::default();
    if let Some(current) = current {
        cpu.cores = u32::try_from(current.cores.len()).ok();
        if let Some(previous) = previous {
            cpu.usage_percent = usage_percent(&previous.all, &current.all).map(round2);
            cpu.per_core_percent = current
                .cores
                .iter()
                .map(|(n, later)| {
                    previous
                        .cores
                        .iter()
                        .find(|(m, _)| m == n)
                        .and_then(|(_, earlier)| usage_percent(earlier, later))
                        .map(round2)
                })
                .collect();
        }
    }
    if let Some(load) = load {
        cpu.load_1m = Some(load.one);
        cpu.load_5m = Some(load.five);
        cpu.load_15m = Some(load.fifteen);
    }
    Some(cpu)
}

/// Reads `<proc>/stat`.
pub fn read(roots: &Roots) -> Result<StatSample, CollectError> {
    read_parsed(&roots.proc.join("stat"), parse_stat)
}

/// `<proc>/stat` kept open and re-read with `pread` ([`HeldFile`]).
#[derive(Debug)]
pub struct StatReader {
    file: HeldFile,
}

impl StatReader {
    pub fn new(roots: &Roots) -> Self {
        Self {
            file: HeldFile::proc(roots.proc.join("stat"), Extent::Whole),
        }
    }

    /// Reads into `sample` (its core list reused); on an error `sample` is left unusable.
    pub fn read_into(&mut self, sample: &mut StatSample) -> Result<(), CollectError> {
        self.file.parse(|text| parse_stat_into(text, sample))
    }

    /// Closes the file: the next read opens the path again.
    pub fn reopen(&mut self) {
        self.file.close();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const T0: &str = "cpu  100 10 50 1000 20 5 5 0 40 4\ncpu0 50 5 25 500 10 2 3 0 20 2\ncpu1 50 5 25 500 10 3 2 0 20 2\nintr 1 2 3\nctxt 99\n";
    const T1: &str = "cpu  200 10 100 1100 40 5 5 0 90 4\ncpu0 150 5 50 500 10 2 3 0 70 2\ncpu1 50 5 50 600 30 3 2 0 20 2\nintr 1 2 3\n";

    #[test]
    fn the_fork_count_is_one_number_on_one_line_or_none() {
        let forks = |extra: &str| parse_stat(&format!("{T0}{extra}")).unwrap().forks;
        assert_eq!(
            forks("processes 8812345\nprocs_running 2\n"),
            Some(8_812_345)
        );
        assert_eq!(forks(""), None);
        assert_eq!(forks("processes\n"), None);
        assert_eq!(forks("processes 12 13\n"), None);
        assert_eq!(forks("processes -1\n"), None);
        assert_eq!(forks("processes 99999999999999999999\n"), None);
        assert_eq!(forks("processes 12\nprocesses 12\n"), None, "repeated");
        // The CPU figures do not depend on it.
        assert_eq!(
            parse_stat(&format!("{T0}processes x\n")).unwrap().all,
            parse_stat(T0).unwrap().all
        );
    }

    #[test]
    fn guest_time_is_not_counted_twice() {
        let a = parse_stat(T0).unwrap();
        let b = parse_stat(T1).unwrap();
        // Δ: user 100, system 50, idle 100, iowait 20 → total 270, busy 150 → 55.56 %.
        // Adding guest (Δ50) to busy and total, as the original did, would give 200/320 = 62.5 %.
        let u = usage_percent(&a.all, &b.all).unwrap();
        assert!((u - 150.0 / 270.0 * 100.0).abs() < 1e-9, "{u}");
        let cpu = summarize(Some(&a), Some(&b), None).unwrap();
        assert_eq!(cpu.usage_percent, Some(55.56));
        // cpu0: Δ user 100 + system 25 = 125 busy of 125 → 100 %; cpu1: Δ system 25, idle 100,
        // iowait 20 → 25/145.
        assert_eq!(cpu.per_core_percent, vec![Some(100.0), Some(17.24)]);
        assert_eq!(cpu.cores, Some(2));
    }

    #[test]
    fn no_time_passed_gives_none_and_counter_decrease_is_not_busy() {
        let a = parse_stat(T0).unwrap();
        assert_eq!(usage_percent(&a.all, &a.all), None);
        let mut later = a.all;
        later.iowait -= 10; // known kernel quirk
        later.idle += 10;
        assert_eq!(usage_percent(&a.all, &later), Some(0.0));
    }

    #[test]
    fn first_sample_has_cores_and_load_but_no_usage() {
        let a = parse_stat(T0).unwrap();
        let load = crate::load::parse_loadavg("0.5 0.25 0.125 1/100 42\n").unwrap();
        let cpu = summarize(None, Some(&a), Some(load)).unwrap();
        assert_eq!(cpu.usage_percent, None);
        assert_eq!(cpu.cores, Some(2));
        assert_eq!(cpu.load_15m, Some(0.125));
        assert!(cpu.per_core_percent.is_empty());
        assert_eq!(summarize(None, None, None), None);
    }

    #[test]
    fn offline_core_reads_null() {
        let a = parse_stat("cpu 1 1 1 1\ncpu0 1 1 1 1\n").unwrap();
        let b = parse_stat("cpu 2 2 2 2\ncpu0 2 2 2 2\ncpu1 5 5 5 5\n").unwrap();
        let cpu = summarize(Some(&a), Some(&b), None).unwrap();
        assert_eq!(cpu.per_core_percent, vec![Some(75.0), None]);
    }

    #[test]
    fn truncated_or_garbled_stat_is_a_clear_error() {
        assert_eq!(
            parse_stat("cpu  301854 612 111922 8979004\ncpu0 44490 19\n"),
            Err(ParseError::Line {
                line: 2,
                reason: "cpu0 has 2 values, expected at least 4".into()
            })
        );
        assert!(matches!(
            parse_stat("cpu 1 2 x 4\n"),
            Err(ParseError::Line { line: 1, .. })
        ));
        assert_eq!(
            parse_stat(""),
            Err(ParseError::Missing("aggregate \"cpu\" line"))
        );
        assert_eq!(
            parse_stat("intr 5\n"),
            Err(ParseError::Missing("aggregate \"cpu\" line"))
        );
    }

    #[test]
    fn old_kernel_short_lines_are_accepted() {
        let s = parse_stat("cpu 10 20 30 40\n").unwrap();
        assert_eq!(s.all.total(), 100);
        assert_eq!(s.all.steal, 0);
    }
}
