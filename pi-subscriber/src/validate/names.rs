//! The bounds on what one payload may hold, and the rule for the names in it (devices,
//! interfaces, sensors, job names): they become Prometheus label values, Grafana series names,
//! SQLite keys and dashboard text, so they are kept printable and short, and every map is kept
//! small, whatever a client sends.

use broker::{JobEnd, JobEvent, JobStart, Snapshot};

use super::Rejection;

/// Longest name (device, interface, sensor, mount, job name), in bytes.
pub const MAX_NAME_BYTES: usize = 128;
/// Longest host id, in bytes (HOST_NAME_MAX on Linux).
pub const MAX_HOST_BYTES: usize = broker::topics::MAX_HOST_ID_BYTES;
/// Longest other identifier (`boot_id`, a job's `run_id`), in bytes.
pub const MAX_ID_BYTES: usize = 64;
/// Most entries in `disk.devices`, `network.interfaces` and `thermal.sensors`.
pub const MAX_ENTRIES: usize = 128;
/// Filesystems per snapshot at most (a publisher sends at most 256: `filesystems.max_mounts`).
pub const MAX_FILESYSTEMS: usize = 256;
/// Bytes of a mount point, a device or a filesystem type at most (mount points run long).
pub const MAX_FILESYSTEM_NAME_BYTES: usize = 256;
/// Most entries in `cpu.per_core_percent`.
pub const MAX_CORES: usize = 512;
/// Processes per top list at most (the publisher sends 32 at most).
pub const MAX_TOP_PROCESSES: usize = 32;
/// Longest process name or user name.
pub const MAX_PROCESS_BYTES: usize = 64;
/// Failed units per snapshot at most (the publisher sends 64 at most).
pub const MAX_FAILED_UNITS: usize = 64;
/// Longest unit name (systemd's limit) or result.
pub const MAX_UNIT_BYTES: usize = 255;
/// A job event's `output_tail` is trimmed to its last this many bytes.
pub const MAX_OUTPUT_TAIL_BYTES: usize = 4096;
/// A job event's `command` (all arguments) and `error` are trimmed to this many bytes.
pub const MAX_COMMAND_BYTES: usize = 1024;
/// Most arguments kept of a job's `command`.
pub const MAX_COMMAND_ARGS: usize = 64;
/// What a trimmed string ends (or, for a tail, starts) with.
pub const TRIMMED: &str = "…";

/// A name is 1 to [`MAX_NAME_BYTES`] bytes of printable text: no control character (C0, DEL,
/// C1: newlines and tabs included) and no Unicode line or paragraph separator. Quotes,
/// backslashes, spaces and non-ASCII letters are allowed (`coretemp-isa-0000/Package id 0`);
/// `/prometheus` escapes them.
pub fn check_name(name: &str) -> Result<(), Rejection> {
    check_text(name, MAX_NAME_BYTES)
}

fn check_text(text: &str, max_bytes: usize) -> Result<(), Rejection> {
    if text.len() > max_bytes {
        return Err(Rejection::TooLong);
    }
    if text.is_empty()
        || text
            .chars()
            .any(|c| c.is_control() || c == '\u{2028}' || c == '\u{2029}')
    {
        return Err(Rejection::BadName);
    }
    Ok(())
}

fn check_names<'a>(names: impl ExactSizeIterator<Item = &'a String>) -> Result<(), Rejection> {
    if names.len() > MAX_ENTRIES {
        return Err(Rejection::TooManyEntries);
    }
    names.into_iter().try_for_each(|n| check_name(n))
}

/// Every map and list of a snapshot within its bound, every name by the rule, `boot_id` short.
pub fn check_snapshot(s: &Snapshot) -> Result<(), Rejection> {
    if let Some(boot) = &s.boot_id {
        check_text(boot, MAX_ID_BYTES)?;
    }
    if let Some(cpu) = &s.cpu {
        if cpu.per_core_percent.len() > MAX_CORES {
            return Err(Rejection::TooManyEntries);
        }
    }
    if let Some(disk) = &s.disk {
        check_names(disk.devices.keys())?;
    }
    if let Some(net) = &s.network {
        check_names(net.interfaces.keys())?;
    }
    if let Some(filesystems) = &s.filesystems {
        if filesystems.len() > MAX_FILESYSTEMS {
            return Err(Rejection::TooManyEntries);
        }
        for (mount, fs) in filesystems {
            check_text(mount, MAX_FILESYSTEM_NAME_BYTES)?;
            if let Some(fs) = fs {
                // A device or type may be empty (`none`-less mounts), never a control char.
                for text in [&fs.device, &fs.fstype] {
                    if !text.is_empty() {
                        check_text(text, MAX_FILESYSTEM_NAME_BYTES)?;
                    }
                }
            }
        }
    }
    if let Some(p) = &s.processes {
        if p.top_cpu.len() > MAX_TOP_PROCESSES || p.top_rss.len() > MAX_TOP_PROCESSES {
            return Err(Rejection::TooManyEntries);
        }
        for t in p.top_cpu.iter().chain(&p.top_rss) {
            check_text(&t.name, MAX_PROCESS_BYTES)?;
            if let Some(user) = &t.user {
                check_text(user, MAX_PROCESS_BYTES)?;
            }
        }
    }
    if let Some(units) = &s.failed_units {
        if units.len() > MAX_FAILED_UNITS {
            return Err(Rejection::TooManyEntries);
        }
        for u in units {
            check_text(&u.name, MAX_UNIT_BYTES)?;
            if let Some(result) = &u.result {
                check_text(result, MAX_UNIT_BYTES)?;
            }
        }
    }
    check_names(s.thermal.sensors.keys())
}

/// The longest prefix of `s` of at most `max` bytes, on a character boundary.
fn head(s: &str, max: usize) -> &str {
    let mut end = max.min(s.len());
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    &s[..end]
}

/// The longest suffix of `s` of at most `max` bytes, on a character boundary.
fn tail(s: &str, max: usize) -> &str {
    let mut start = s.len().saturating_sub(max);
    while !s.is_char_boundary(start) {
        start += 1;
    }
    &s[start..]
}

/// `s` cut to at most `max` bytes, ending with [`TRIMMED`] when cut.
pub fn trim_end(s: &mut String, max: usize) {
    if s.len() > max {
        let kept = head(s, max.saturating_sub(TRIMMED.len())).len();
        s.truncate(kept);
        s.push_str(TRIMMED);
    }
}

/// `s` cut to its last `max` bytes at most, starting with [`TRIMMED`] when cut.
pub fn trim_start(s: &mut String, max: usize) {
    if s.len() > max {
        *s = format!("{TRIMMED}{}", tail(s, max.saturating_sub(TRIMMED.len())));
    }
}

/// A command cut to [`MAX_COMMAND_ARGS`] arguments and [`MAX_COMMAND_BYTES`] bytes in all;
/// a cut command ends with the argument [`TRIMMED`].
fn trim_command(command: &mut Vec<String>) {
    let budget = MAX_COMMAND_BYTES - TRIMMED.len();
    let mut used = 0;
    for (i, arg) in command.iter_mut().enumerate() {
        if i == MAX_COMMAND_ARGS || used + arg.len() > budget {
            let kept = if i == MAX_COMMAND_ARGS {
                0
            } else {
                head(arg, budget - used).len()
            };
            arg.truncate(kept);
            let keep = if kept == 0 { i } else { i + 1 };
            command.truncate(keep);
            command.push(TRIMMED.to_owned());
            return;
        }
        used += arg.len();
    }
}

/// Checks a job event's names and trims its free text to the bounds above.
pub fn check_event(e: &mut JobEvent) -> Result<(), Rejection> {
    check_text(e.run_id(), MAX_ID_BYTES)?;
    check_name(e.name())?;
    match e {
        JobEvent::JobStart(JobStart { command, .. }) => trim_command(command),
        JobEvent::JobEnd(JobEnd {
            output_tail, error, ..
        }) => {
            trim_start(output_tail, MAX_OUTPUT_TAIL_BYTES);
            if let Some(error) = error {
                trim_end(error, MAX_COMMAND_BYTES);
            }
        }
    }
    Ok(())
}

/// Bytes an event holds on the heap, roughly (what the store's byte budget counts).
pub fn event_bytes(e: &JobEvent) -> usize {
    let fixed =
        std::mem::size_of::<JobEvent>() + e.run_id().len() + e.name().len() + e.host().len();
    fixed
        + match e {
            JobEvent::JobStart(s) => s.command.iter().map(|a| a.len() + 24).sum(),
            JobEvent::JobEnd(end) => {
                end.output_tail.len() + end.error.as_ref().map_or(0, String::len)
            }
        }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_printable_and_short() {
        for good in [
            "sda",
            "nvme0n1",
            "coretemp-isa-0000/Package id 0",
            "sd\"a",
            "c\\d",
            "tëmp",
        ] {
            assert_eq!(check_name(good), Ok(()), "{good:?}");
        }
        for bad in [
            "",
            "a\nb",
            "a\rb",
            "tab\there",
            "nul\0",
            "del\u{7f}",
            "c1\u{85}",
            "ls\u{2028}",
        ] {
            assert_eq!(check_name(bad), Err(Rejection::BadName), "{bad:?}");
        }
        assert_eq!(check_name(&"x".repeat(128)), Ok(()));
        assert_eq!(check_name(&"x".repeat(129)), Err(Rejection::TooLong));
    }

    #[test]
    fn trimming_keeps_char_boundaries_and_marks_the_cut() {
        let mut s = "abcdefgh".to_owned();
        trim_end(&mut s, 6);
        assert_eq!(s, "abc…");
        let mut s = "ééééé".to_owned(); // 10 bytes
        trim_end(&mut s, 8);
        assert_eq!(s, "éé…");
        let mut s = "abcdefgh".to_owned();
        trim_start(&mut s, 6);
        assert_eq!(s, "…fgh");
        let mut s = "ééééé".to_owned();
        trim_start(&mut s, 8);
        assert_eq!(s, "…éé");
        let mut s = "short".to_owned();
        trim_start(&mut s, 8);
        trim_end(&mut s, 8);
        assert_eq!(s, "short");
    }

    #[test]
    fn commands_are_cut_by_count_and_bytes() {
        let mut c: Vec<String> = (0..100).map(|i| i.to_string()).collect();
        trim_command(&mut c);
        assert_eq!(c.len(), MAX_COMMAND_ARGS + 1);
        assert_eq!(c[63], "63");
        assert_eq!(c[64], TRIMMED);
        let mut c = vec!["mysqldump".to_owned(), "y".repeat(5000)];
        trim_command(&mut c);
        assert_eq!(c[0], "mysqldump");
        assert_eq!(c[1].len(), MAX_COMMAND_BYTES - TRIMMED.len() - 9);
        assert_eq!(c[2], TRIMMED);
        assert_eq!(c.iter().map(String::len).sum::<usize>(), MAX_COMMAND_BYTES);
        let mut c = vec!["a".repeat(MAX_COMMAND_BYTES - TRIMMED.len()), "b".into()];
        trim_command(&mut c);
        assert_eq!(c.len(), 2, "the empty cut argument is dropped");
        assert_eq!(c[1], TRIMMED);
        let mut c = vec!["ls".to_owned(), "-l".to_owned()];
        trim_command(&mut c);
        assert_eq!(c, ["ls", "-l"]);
    }
}
