//! The thermal collector between samples: which zones and hwmon inputs exist is found once
//! (the directory walks, `name`, `type` and `tempN_label` files of [`super::thermal`]), and
//! each input is then kept open and re-read with `pread` ([`HeldFile`]). Discovery runs again
//! when an input that read before fails (sysfs answers `ENODEV` once its chip is gone: a
//! module unloaded, a USB sensor unplugged), every [`super::RESCAN_EVERY`] (a chip that
//! appeared), and when asked ([`ThermalCollector::rescan`]). The values are the ones
//! [`super::thermal::read`] gives: same sensors, same keys, same order.

use std::fs;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use broker::Thermal;

use super::held::{HeldFile, RescanClock};
use super::thermal::{
    chip_base, numbered_entries, parse_millidegrees, read_trimmed, summarize, temp_input_number,
    Chip, ChipFilter, Temp, ThermalReading, Zone,
};
use super::{CollectError, Roots};

/// Inputs kept per chip at most (a chip lists a handful).
const MAX_INPUTS: usize = 256;

/// One sensor file and whether its last read gave a value.
#[derive(Debug)]
struct Input {
    file: HeldFile,
    read_last_time: bool,
}

impl Input {
    fn new(path: PathBuf) -> Self {
        Self {
            file: HeldFile::attribute(path),
            read_last_time: false,
        }
    }

    /// The temperature, or `None` (skipped this sample, as before).
    fn read(&mut self) -> Option<f64> {
        let value = self
            .file
            .read()
            .ok()
            .and_then(|t| parse_millidegrees(t).ok());
        self.read_last_time = value.is_some();
        value
    }
}

/// Every zone and input found by the last discovery, the values of the last read beside them.
#[derive(Debug, Default)]
struct Found {
    /// Parallel to `all.zones` / each chip's `temps`: the files to read.
    zones: Vec<Input>,
    chips: Vec<Vec<Input>>,
    /// The zones and chips with every input, values of the last read.
    all: ThermalReading,
}

/// Temperatures, with discovery cached and the inputs held open.
#[derive(Debug)]
pub struct ThermalCollector {
    sys: PathBuf,
    chips: ChipFilter,
    found: Found,
    clock: RescanClock,
    discoveries: u64,
}

impl ThermalCollector {
    pub fn new(roots: &Roots, chips: ChipFilter) -> Self {
        Self {
            sys: roots.sys.clone(),
            chips,
            found: Found::default(),
            clock: RescanClock::new(super::RESCAN_EVERY),
            discoveries: 0,
        }
    }

    /// How often zones and chips are looked for again without a failed read.
    pub fn set_rescan_every(&mut self, every: Duration) {
        self.clock.set_every(every);
    }

    /// The next read looks for zones and chips again.
    pub fn rescan(&mut self) {
        self.clock.expire();
    }

    /// Discoveries so far (the first one included).
    pub fn discoveries(&self) -> u64 {
        self.discoveries
    }

    /// The `thermal` section. An unreadable `class/thermal` or `class/hwmon` is the error;
    /// discovery is tried again next time.
    pub fn read(&mut self, now: Instant) -> Result<Thermal, CollectError> {
        if self.clock.due(now) {
            self.discover(now)?;
        }
        if self.read_inputs() {
            // A sensor that gave a value last time failed: its chip may be gone, another in
            // its place. Discover again and read what is there now.
            self.discover(now)?;
            self.read_inputs();
        }
        Ok(self.summary())
    }

    /// Reads every held input; `true` when one that read last time does not now.
    fn read_inputs(&mut self) -> bool {
        let mut lost = false;
        let found = &mut self.found;
        for (input, zone) in found.zones.iter_mut().zip(&mut found.all.zones) {
            let before = input.read_last_time;
            match input.read() {
                Some(c) => zone.celsius = c,
                None => lost |= before,
            }
        }
        for (inputs, chip) in found.chips.iter_mut().zip(&mut found.all.chips) {
            for (input, temp) in inputs.iter_mut().zip(&mut chip.temps) {
                let before = input.read_last_time;
                match input.read() {
                    Some(c) => temp.celsius = c,
                    None => lost |= before,
                }
            }
        }
        lost
    }

    /// The section from the last read: the inputs that gave no value left out, a chip left
    /// with none left out, as [`super::thermal::read_sensors`] does.
    fn summary(&self) -> Thermal {
        let found = &self.found;
        let every_input_read = found.zones.iter().all(|i| i.read_last_time)
            && found.chips.iter().flatten().all(|i| i.read_last_time);
        if every_input_read {
            return summarize(&found.all);
        }
        let zones = found
            .zones
            .iter()
            .zip(&found.all.zones)
            .filter(|(i, _)| i.read_last_time)
            .map(|(_, z)| z.clone())
            .collect();
        let chips = found
            .chips
            .iter()
            .zip(&found.all.chips)
            .filter_map(|(inputs, chip)| {
                let temps: Vec<Temp> = inputs
                    .iter()
                    .zip(&chip.temps)
                    .filter(|(i, _)| i.read_last_time)
                    .map(|(_, t)| t.clone())
                    .collect();
                (!temps.is_empty()).then(|| Chip {
                    temps,
                    ..chip.clone()
                })
            })
            .collect();
        summarize(&ThermalReading { zones, chips })
    }

    /// Walks `class/thermal` and `class/hwmon` and opens nothing yet: every zone and every
    /// input of a chip the filter reads becomes a held file, read for the first time by the
    /// next [`Self::read_inputs`].
    fn discover(&mut self, now: Instant) -> Result<(), CollectError> {
        let mut found = Found::default();
        for (index, dir) in numbered_entries(&self.sys.join("class/thermal"), "thermal_zone")? {
            let kind =
                read_trimmed(&dir.join("type")).unwrap_or_else(|| format!("thermal_zone{index}"));
            found.zones.push(Input::new(dir.join("temp")));
            found.all.zones.push(Zone {
                index,
                kind,
                celsius: 0.0,
            });
        }
        for (index, dir) in numbered_entries(&self.sys.join("class/hwmon"), "hwmon")? {
            let dir_name = format!("hwmon{index}");
            let base = chip_base(&dir);
            let name = read_trimmed(&base.join("name"));
            if !self.chips.reads(name.as_deref().unwrap_or(&dir_name)) {
                continue;
            }
            // Sorted by N, stably (read_dir's order on a tie), as `read_chip` does.
            let mut files: Vec<(u32, PathBuf)> = fs::read_dir(&base)
                .map(|entries| {
                    entries
                        .filter_map(|e| e.ok())
                        .filter_map(|e| {
                            Some((temp_input_number(e.file_name().to_str()?)?, e.path()))
                        })
                        .take(MAX_INPUTS)
                        .collect()
                })
                .unwrap_or_default();
            files.sort_by_key(|(n, _)| *n);
            if files.is_empty() {
                continue;
            }
            let temps = files
                .iter()
                .map(|&(input, _)| Temp {
                    input,
                    label: read_trimmed(&base.join(format!("temp{input}_label")))
                        .unwrap_or_else(|| format!("temp{input}")),
                    celsius: 0.0,
                })
                .collect();
            let inputs = files
                .into_iter()
                .map(|(_, path)| Input::new(path))
                .collect();
            found.chips.push(inputs);
            found.all.chips.push(Chip {
                dir: dir_name,
                name,
                temps,
            });
        }
        self.found = found;
        self.clock.done(now);
        self.discoveries += 1;
        Ok(())
    }
}
