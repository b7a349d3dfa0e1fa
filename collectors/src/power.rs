//! A Raspberry Pi's power supply and throttling: the `rpi_volt` hwmon chip's under-voltage
//! alarm (`in0_lcrit_alarm`, Documentation/hwmon/raspberrypi-hwmon.rst) and the firmware
//! driver's `get_throttled` file (the bits `vcgencmd get_throttled` prints, in hex without
//! `0x`), found through the driver's directory so that the Pi 4's `soc:firmware` and the Pi
//! 5's firmware node are both read. Neither exists on other machines: the section is absent
//! there, never a false "no problem".

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use broker::Power;

use super::held::{HeldFile, RescanClock};
use super::{read_parsed, read_text, CollectError, ParseError, Roots};

/// The hwmon chip of the Pi's supply monitor.
const RPI_VOLT: &str = "rpi_volt";
/// Where the firmware driver's bound devices are linked, whatever the board.
const FIRMWARE_DRIVER: &str = "bus/platform/drivers/raspberrypi-firmware";
/// Directory entries looked at at most (hwmon chips, the driver's devices).
const MAX_ENTRIES: usize = 256;

/// `get_throttled`'s text: one hexadecimal number.
pub fn parse_throttled(text: &str) -> Result<u32, ParseError> {
    let hex = text.trim();
    let hex = hex.strip_prefix("0x").unwrap_or(hex);
    u32::from_str_radix(hex, 16).map_err(|_| ParseError::NotANumber(text.trim().to_owned()))
}

/// An alarm file's text: `0` or `1`.
pub fn parse_alarm(text: &str) -> Result<bool, ParseError> {
    match text.trim() {
        "0" => Ok(false),
        "1" => Ok(true),
        other => Err(ParseError::NotANumber(other.to_owned())),
    }
}

/// The entries of `dir`, sorted, at most [`MAX_ENTRIES`]; none when it does not exist.
fn entries(dir: &Path) -> Vec<PathBuf> {
    let Ok(read) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut out: Vec<PathBuf> = read.flatten().take(MAX_ENTRIES).map(|e| e.path()).collect();
    out.sort();
    out
}

/// The `in0_lcrit_alarm` of the first hwmon chip named `rpi_volt`.
fn alarm_file(roots: &Roots) -> Option<PathBuf> {
    entries(&roots.sys.join("class/hwmon"))
        .into_iter()
        .find(|chip| read_text(&chip.join("name")).is_ok_and(|n| n.trim() == RPI_VOLT))
        .map(|chip| chip.join("in0_lcrit_alarm"))
}

/// The `get_throttled` of the firmware driver's device.
fn throttled_file(roots: &Roots) -> Option<PathBuf> {
    entries(&roots.sys.join(FIRMWARE_DRIVER))
        .into_iter()
        .map(|dev| dev.join("get_throttled"))
        .find(|f| f.is_file())
}

/// Reads the Pi's power state: `None` on a machine with neither source.
pub fn read(roots: &Roots) -> Result<Option<Power>, CollectError> {
    let alarm = alarm_file(roots);
    let throttled = throttled_file(roots);
    if alarm.is_none() && throttled.is_none() {
        return Ok(None);
    }
    Ok(Some(Power {
        under_voltage_alarm: alarm.map(|f| read_parsed(&f, parse_alarm)).transpose()?,
        throttled: throttled
            .map(|f| read_parsed(&f, parse_throttled))
            .transpose()?,
    }))
}

/// The power files found once (a machine that is no Pi is not searched every sample) and
/// kept open; looked for again every [`super::RESCAN_EVERY`], when asked, and at once when a
/// read fails (which then reads them as [`read`] would).
#[derive(Debug)]
pub struct PowerCollector {
    roots: Roots,
    alarm: Option<HeldFile>,
    throttled: Option<HeldFile>,
    clock: RescanClock,
}

impl PowerCollector {
    pub fn new(roots: &Roots) -> Self {
        Self {
            roots: roots.clone(),
            alarm: None,
            throttled: None,
            clock: RescanClock::new(super::RESCAN_EVERY),
        }
    }

    pub fn set_rescan_every(&mut self, every: Duration) {
        self.clock.set_every(every);
    }

    /// The next read looks for the files again.
    pub fn rescan(&mut self) {
        self.clock.expire();
    }

    /// The Pi's power state: `None` on a machine with neither source.
    pub fn read(&mut self, now: Instant) -> Result<Option<Power>, CollectError> {
        if self.clock.due(now) {
            self.discover(now);
        }
        match self.read_held() {
            Ok(power) => Ok(power),
            Err(_) => {
                self.discover(now);
                self.read_held()
            }
        }
    }

    fn discover(&mut self, now: Instant) {
        self.alarm = alarm_file(&self.roots).map(HeldFile::attribute);
        self.throttled = throttled_file(&self.roots).map(HeldFile::attribute);
        self.clock.done(now);
    }

    fn read_held(&mut self) -> Result<Option<Power>, CollectError> {
        if self.alarm.is_none() && self.throttled.is_none() {
            return Ok(None);
        }
        Ok(Some(Power {
            under_voltage_alarm: self
                .alarm
                .as_mut()
                .map(|f| f.parse(parse_alarm))
                .transpose()?,
            throttled: self
                .throttled
                .as_mut()
                .map(|f| f.parse(parse_throttled))
                .transpose()?,
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn throttled_is_hex_with_or_without_0x() {
        assert_eq!(parse_throttled("50005\n"), Ok(0x50005));
        assert_eq!(parse_throttled("0x80008"), Ok(0x80008));
        assert_eq!(parse_throttled("0\n"), Ok(0));
        assert!(parse_throttled("throttled=0x0").is_err());
        assert!(parse_throttled("").is_err());
        assert!(parse_throttled("1ffffffff").is_err(), "more than 32 bits");
    }

    #[test]
    fn an_alarm_is_0_or_1() {
        assert_eq!(parse_alarm("0\n"), Ok(false));
        assert_eq!(parse_alarm("1\n"), Ok(true));
        assert!(parse_alarm("2").is_err());
    }

    #[test]
    fn a_machine_without_either_file_has_no_section() {
        let dir = tempfile::tempdir().unwrap();
        assert!(read(&Roots::under(dir.path())).unwrap().is_none());
    }
}
