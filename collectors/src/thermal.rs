//! Temperatures from `/sys/class/thermal` and `/sys/class/hwmon`
//! (Documentation/hwmon/sysfs-interface.rst: `tempN_input` in millidegrees Celsius).
//!
//! The CPU's temperature is picked by [`cpu_temperature`]; every sensor found goes into
//! `sensors`. A machine with no sensors (a VM, this CI machine) gets `null`, never `0`.
//! Chips named in `thermal.exclude_chips` ([`ChipFilter`]) are skipped before any of their
//! inputs is read: reading `drivetemp` wakes (or keeps awake) some disks.

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};

use broker::Thermal;

pub use super::filter::ChipFilter;
use super::{CollectError, ParseError, Roots};

/// One `/sys/class/thermal/thermal_zoneN`.
#[derive(Debug, Clone, PartialEq)]
pub struct Zone {
    pub index: u32,
    pub kind: String,
    pub celsius: f64,
}

/// One `/sys/class/hwmon/hwmonN` chip and its temperature inputs.
#[derive(Debug, Clone, PartialEq)]
pub struct Chip {
    /// `hwmonN`, used when the chip has no `name` file.
    pub dir: String,
    pub name: Option<String>,
    /// Temperature inputs in input order.
    pub temps: Vec<Temp>,
}

/// One `tempN_input` of a chip.
#[derive(Debug, Clone, PartialEq)]
pub struct Temp {
    /// The N of `tempN_input`.
    pub input: u32,
    /// `tempN_label`, or `tempN` when there is none.
    pub label: String,
    pub celsius: f64,
}

impl Chip {
    pub(crate) fn display_name(&self) -> &str {
        self.name.as_deref().unwrap_or(&self.dir)
    }

    fn labelled(&self, label: &str) -> Option<f64> {
        self.temps
            .iter()
            .find(|t| t.label == label)
            .map(|t| t.celsius)
    }
}

/// Everything found under `/sys`.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct ThermalReading {
    pub zones: Vec<Zone>,
    pub chips: Vec<Chip>,
}

/// Parses a millidegree value (`48686` → 48.686 °C).
pub fn parse_millidegrees(text: &str) -> Result<f64, ParseError> {
    let t = text.trim();
    let milli: i64 = t
        .parse()
        .map_err(|_| ParseError::NotANumber(t.to_owned()))?;
    Ok(milli as f64 / 1000.0)
}

fn max(values: impl Iterator<Item = f64>) -> Option<f64> {
    values.fold(None, |m, v| Some(m.map_or(v, |m: f64| m.max(v))))
}

/// Picks the CPU temperature, most specific source first:
/// 1. the `x86_pkg_temp` thermal zone (Intel package sensor),
/// 2. hwmon `coretemp`: its `Package id N` / `Physical id N` sensors, else its hottest core,
/// 3. hwmon `k10temp` (AMD): `Tdie`, else `Tctl`, else its first input,
/// 4. the `cpu-thermal` / `cpu_thermal` zone or hwmon chip (Raspberry Pi and other ARM boards).
///
/// With several packages the hottest one is reported.
pub fn cpu_temperature(reading: &ThermalReading) -> Option<f64> {
    let zones = |kinds: &[&str]| {
        max(reading
            .zones
            .iter()
            .filter(|z| kinds.contains(&z.kind.as_str()))
            .map(|z| z.celsius))
    };
    let chips = |name: &'static str| {
        reading
            .chips
            .iter()
            .filter(move |c| c.name.as_deref() == Some(name))
    };
    zones(&["x86_pkg_temp"])
        .or_else(|| {
            let package = max(chips("coretemp").flat_map(|c| {
                c.temps
                    .iter()
                    .filter(|t| {
                        t.label.starts_with("Package id") || t.label.starts_with("Physical id")
                    })
                    .map(|t| t.celsius)
            }));
            package
                .or_else(|| max(chips("coretemp").flat_map(|c| c.temps.iter().map(|t| t.celsius))))
        })
        .or_else(|| {
            max(chips("k10temp").filter_map(|c| {
                c.labelled("Tdie")
                    .or_else(|| c.labelled("Tctl"))
                    .or_else(|| c.temps.first().map(|t| t.celsius))
            }))
        })
        .or_else(|| zones(&["cpu-thermal", "cpu_thermal"]))
        .or_else(|| max(chips("cpu_thermal").flat_map(|c| c.temps.iter().map(|t| t.celsius))))
}

/// Builds the snapshot's `thermal` section: zones keyed by type, hwmon inputs keyed
/// `chip/label`; a repeated key gets ` (thermal_zoneN)`, or ` (hwmonN/tempN)` added.
pub fn summarize(reading: &ThermalReading) -> Thermal {
    let mut sensors = BTreeMap::new();
    for zone in &reading.zones {
        let key = if sensors.contains_key(&zone.kind) {
            format!("{} (thermal_zone{})", zone.kind, zone.index)
        } else {
            zone.kind.clone()
        };
        sensors.insert(key, zone.celsius);
    }
    for chip in &reading.chips {
        for temp in &chip.temps {
            let mut key = format!("{}/{}", chip.display_name(), temp.label);
            if sensors.contains_key(&key) {
                key = format!("{key} ({}/temp{})", chip.dir, temp.input);
            }
            sensors.insert(key, temp.celsius);
        }
    }
    Thermal {
        cpu_temp_c: cpu_temperature(reading),
        sensors,
    }
}

/// `prefixN` entries of a directory, sorted by N. A missing directory is an empty list:
/// a machine without sensors is normal.
pub(crate) fn numbered_entries(
    dir: &Path,
    prefix: &str,
) -> Result<Vec<(u32, PathBuf)>, CollectError> {
    let entries = match fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(source) => {
            return Err(CollectError::Read {
                path: dir.to_owned(),
                source,
            })
        }
    };
    let mut found: Vec<(u32, PathBuf)> = entries
        .filter_map(|e| e.ok())
        .filter_map(|e| {
            let name = e.file_name();
            let n = name.to_str()?.strip_prefix(prefix)?.parse().ok()?;
            Some((n, e.path()))
        })
        .collect();
    found.sort_by_key(|(n, _)| *n);
    Ok(found)
}

pub(crate) fn read_trimmed(path: &Path) -> Option<String> {
    fs::read_to_string(path)
        .ok()
        .map(|s| s.trim().to_owned())
        .filter(|s| !s.is_empty())
}

/// Where a chip's attributes are: older kernels keep them in `hwmonN/device/`, not `hwmonN/`.
pub(crate) fn chip_base(dir: &Path) -> PathBuf {
    if dir.join("name").exists() || !dir.join("device/name").exists() {
        dir.to_owned()
    } else {
        dir.join("device")
    }
}

/// The N of a `tempN_input` file name.
pub(crate) fn temp_input_number(file: &str) -> Option<u32> {
    file.strip_prefix("temp")?
        .strip_suffix("_input")?
        .parse()
        .ok()
}

/// Reads the temperature inputs of one hwmon directory, or nothing past its `name` when
/// `filter` excludes the chip. A sensor that cannot be read (a dangling link, a driver
/// returning EIO) is skipped: the others still count.
fn read_chip(dir_name: String, dir: &Path, filter: &ChipFilter) -> Chip {
    let base = chip_base(dir);
    let name = read_trimmed(&base.join("name"));
    if !filter.reads(name.as_deref().unwrap_or(&dir_name)) {
        return Chip {
            dir: dir_name,
            name,
            temps: Vec::new(),
        };
    }
    let mut temps: Vec<Temp> = fs::read_dir(&base)
        .map(|entries| {
            entries
                .filter_map(|e| e.ok())
                .filter_map(|e| {
                    let file = e.file_name();
                    let file = file.to_str()?;
                    let input = temp_input_number(file)?;
                    let celsius = parse_millidegrees(&fs::read_to_string(e.path()).ok()?).ok()?;
                    let label = read_trimmed(&base.join(format!("temp{input}_label")))
                        .unwrap_or_else(|| format!("temp{input}"));
                    Some(Temp {
                        input,
                        label,
                        celsius,
                    })
                })
                .collect()
        })
        .unwrap_or_default();
    temps.sort_by_key(|t| t.input);
    Chip {
        dir: dir_name,
        name,
        temps,
    }
}

/// Reads every thermal zone and every hwmon chip that `chips` does not exclude under
/// `<sys>/class`.
pub fn read_sensors(roots: &Roots, chips: &ChipFilter) -> Result<ThermalReading, CollectError> {
    let mut reading = ThermalReading::default();
    for (index, dir) in numbered_entries(&roots.sys.join("class/thermal"), "thermal_zone")? {
        let kind =
            read_trimmed(&dir.join("type")).unwrap_or_else(|| format!("thermal_zone{index}"));
        // A zone whose temp cannot be read (some ACPI zones return EINVAL) is skipped.
        let Some(celsius) =
            read_trimmed(&dir.join("temp")).and_then(|t| parse_millidegrees(&t).ok())
        else {
            continue;
        };
        reading.zones.push(Zone {
            index,
            kind,
            celsius,
        });
    }
    for (index, dir) in numbered_entries(&roots.sys.join("class/hwmon"), "hwmon")? {
        let chip = read_chip(format!("hwmon{index}"), &dir, chips);
        if !chip.temps.is_empty() {
            reading.chips.push(chip);
        }
    }
    Ok(reading)
}

/// Reads the sensors and builds the `thermal` section.
pub fn read(roots: &Roots, chips: &ChipFilter) -> Result<Thermal, CollectError> {
    read_sensors(roots, chips).map(|r| summarize(&r))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn chip(name: &str, temps: &[(&str, f64)]) -> Chip {
        Chip {
            dir: "hwmon9".into(),
            name: Some(name.into()),
            temps: temps
                .iter()
                .zip(1..)
                .map(|((label, celsius), input)| Temp {
                    input,
                    label: label.to_string(),
                    celsius: *celsius,
                })
                .collect(),
        }
    }

    fn zone(kind: &str, celsius: f64) -> Zone {
        Zone {
            index: 0,
            kind: kind.into(),
            celsius,
        }
    }

    #[test]
    fn millidegrees_keep_decimals() {
        assert_eq!(parse_millidegrees("48686\n"), Ok(48.686));
        assert_eq!(parse_millidegrees("-5000"), Ok(-5.0));
        assert!(parse_millidegrees("").is_err());
    }

    #[test]
    fn cpu_sensor_priority() {
        let mut r = ThermalReading {
            zones: vec![zone("acpitz", 27.8)],
            chips: vec![
                chip(
                    "coretemp",
                    &[("Core 0", 60.0), ("Package id 0", 55.0), ("Core 1", 61.0)],
                ),
                chip("k10temp", &[("Tctl", 70.0)]),
            ],
        };
        assert_eq!(
            cpu_temperature(&r),
            Some(55.0),
            "coretemp package beats cores"
        );
        r.zones.push(zone("x86_pkg_temp", 56.5));
        assert_eq!(cpu_temperature(&r), Some(56.5), "x86_pkg_temp zone first");
        r.zones.clear();
        r.chips[0] = chip("coretemp", &[("Core 0", 60.0), ("Core 1", 61.0)]);
        assert_eq!(
            cpu_temperature(&r),
            Some(61.0),
            "hottest core without a package"
        );
        r.chips.remove(0);
        assert_eq!(cpu_temperature(&r), Some(70.0), "k10temp Tctl");
        r.chips[0].temps.push(Temp {
            input: 2,
            label: "Tdie".into(),
            celsius: 60.0,
        });
        assert_eq!(cpu_temperature(&r), Some(60.0), "k10temp Tdie over Tctl");
        let pi = ThermalReading {
            zones: vec![zone("cpu-thermal", 48.686)],
            chips: vec![],
        };
        assert_eq!(cpu_temperature(&pi), Some(48.686));
        let vm = ThermalReading {
            zones: vec![zone("acpitz", 27.8)],
            chips: vec![chip("nvme", &[("Composite", 40.0)])],
        };
        assert_eq!(
            cpu_temperature(&vm),
            None,
            "no CPU sensor → null, not another sensor"
        );
    }

    #[test]
    fn sensors_map_keys_and_duplicates() {
        let r = ThermalReading {
            zones: vec![
                zone("acpitz", 27.8),
                Zone {
                    index: 3,
                    kind: "acpitz".into(),
                    celsius: 30.0,
                },
            ],
            chips: vec![
                Chip {
                    dir: "hwmon3".into(),
                    name: None,
                    temps: vec![Temp {
                        input: 1,
                        label: "temp1".into(),
                        celsius: 41.0,
                    }],
                },
                chip("nct", &[("fan", 30.0), ("fan", 31.0)]),
            ],
        };
        let t = summarize(&r);
        assert_eq!(t.sensors["acpitz"], 27.8);
        assert_eq!(t.sensors["acpitz (thermal_zone3)"], 30.0);
        assert_eq!(t.sensors["hwmon3/temp1"], 41.0);
        assert_eq!(t.sensors["nct/fan"], 30.0);
        assert_eq!(t.sensors["nct/fan (hwmon9/temp2)"], 31.0);
        assert_eq!(t.cpu_temp_c, None);
    }
}
