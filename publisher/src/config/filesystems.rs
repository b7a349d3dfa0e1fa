//! `[filesystems]`: which mounts the filesystem collector reports, and its `statvfs` timeout.

use std::sync::Arc;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::{invalid, SettingsError};
use crate::collectors::filesystem::{
    self, FilesystemCollector, Selection, DEFAULT_EXCLUDE_FS_TYPES, DEFAULT_EXCLUDE_MOUNT_POINTS,
};
use crate::collectors::filter::{owned, NameFilter};
use crate::collectors::statvfs::Statvfs;

/// Entries per snapshot at most, whatever the config says (the Pi refuses more).
pub const MAX_MOUNTS_LIMIT: usize = 256;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct FilesystemSettings {
    /// Off leaves `filesystems` out of snapshots.
    pub enabled: bool,
    /// The deadline of one sample's `statvfs` calls, all together: the mount being asked
    /// then is reported `null` (and not asked again until the hung call returns), and so are
    /// those not reached yet (asked first in the next sample).
    #[serde(with = "daemon_kit::duration")]
    pub timeout: Duration,
    /// Mounts reported at most (the first by mount point), 1..=256.
    pub max_mounts: usize,
    /// Globs over mount points (`*` also matches `/`).
    pub mount_points: FilterSettings,
    /// Globs over filesystem types (`ext4`, `nfs4`, `fuse.*`).
    pub fs_types: FilterSettings,
    /// Globs over devices, as shown (`nvme0n1p2`, `tmpfs`, `nas:/export`).
    pub devices: FilterSettings,
}

/// An include and an exclude list of globs; setting `exclude` replaces the default list.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct FilterSettings {
    /// Only names matching one of these are reported; empty means all.
    pub include: Vec<String>,
    /// Names matching one of these are never reported.
    pub exclude: Vec<String>,
}

impl Default for FilesystemSettings {
    fn default() -> Self {
        Self {
            enabled: true,
            timeout: Duration::from_secs(1),
            max_mounts: 64,
            mount_points: FilterSettings {
                include: Vec::new(),
                exclude: owned(&DEFAULT_EXCLUDE_MOUNT_POINTS),
            },
            fs_types: FilterSettings {
                include: Vec::new(),
                exclude: owned(&DEFAULT_EXCLUDE_FS_TYPES),
            },
            devices: FilterSettings::default(),
        }
    }
}

/// The keys whose environment values are comma-separated lists.
pub const LIST_KEYS: [&str; 6] = [
    "filesystems.mount_points.include",
    "filesystems.mount_points.exclude",
    "filesystems.fs_types.include",
    "filesystems.fs_types.exclude",
    "filesystems.devices.include",
    "filesystems.devices.exclude",
];

fn filter(
    f: &FilterSettings,
    include_key: &'static str,
    exclude_key: &'static str,
) -> Result<NameFilter, SettingsError> {
    NameFilter::new(&f.include, &[]).map_err(|e| invalid(include_key, e))?;
    NameFilter::new(&[], &f.exclude).map_err(|e| invalid(exclude_key, e))?;
    NameFilter::new(&f.include, &f.exclude).map_err(|e| invalid(include_key, e))
}

impl FilesystemSettings {
    /// The selection these settings describe, or the key that is wrong.
    pub fn selection(&self) -> Result<Selection, SettingsError> {
        if !(1..=MAX_MOUNTS_LIMIT).contains(&self.max_mounts) {
            return Err(invalid(
                "filesystems.max_mounts",
                format!("must be 1..={MAX_MOUNTS_LIMIT}"),
            ));
        }
        Ok(Selection {
            mount_points: filter(
                &self.mount_points,
                "filesystems.mount_points.include",
                "filesystems.mount_points.exclude",
            )?,
            fs_types: filter(
                &self.fs_types,
                "filesystems.fs_types.include",
                "filesystems.fs_types.exclude",
            )?,
            devices: filter(
                &self.devices,
                "filesystems.devices.include",
                "filesystems.devices.exclude",
            )?,
            max_mounts: self.max_mounts,
        })
    }

    pub fn validate(&self) -> Result<(), SettingsError> {
        if self.timeout < Duration::from_millis(1) || self.timeout > Duration::from_secs(60) {
            return Err(invalid("filesystems.timeout", "must be 1ms..=60s"));
        }
        self.selection().map(|_| ())
    }

    /// The collector, with the real `statvfs`; `None` when disabled.
    pub fn collector(&self) -> Option<FilesystemCollector> {
        if !self.enabled {
            return None;
        }
        let selection = self.selection().unwrap_or_default();
        Some(filesystem::FilesystemCollector::new(
            selection,
            Arc::new(Statvfs),
            self.timeout,
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::super::{Overrides, Settings};
    use super::*;

    fn load(text: &str) -> Result<Settings, SettingsError> {
        super::super::load_for_test(text, Some("tower"))
    }

    #[test]
    fn defaults_are_node_exporters_lists_and_a_one_second_timeout() {
        let s = load("").unwrap().filesystems;
        assert!(s.enabled);
        assert_eq!(s.timeout, Duration::from_secs(1));
        assert_eq!(s.max_mounts, 64);
        assert_eq!(s.fs_types.exclude.len(), 25);
        assert_eq!(s.mount_points.exclude.len(), 9);
        let sel = s.selection().unwrap();
        assert!(!sel.fs_types.counts("overlay"));
        assert!(!sel.mount_points.counts("/run/credentials/getty.service"));
        assert!(sel.mount_points.counts("/run"));
        let example =
            std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../configs/publisher.toml");
        let shipped = Settings::load(Some(&example), &Overrides::default()).unwrap();
        assert_eq!(
            shipped.filesystems, s,
            "configs/publisher.toml spells the defaults"
        );
    }

    #[test]
    fn an_include_list_keeps_the_default_excludes() {
        let s = load(
            "[filesystems]\ntimeout = \"250ms\"\n[filesystems.mount_points]\ninclude = [\"/srv*\", \"/\"]\n",
        )
        .unwrap()
        .filesystems;
        assert_eq!(s.timeout, Duration::from_millis(250));
        assert_eq!(s.mount_points.include, ["/srv*", "/"]);
        assert_eq!(s.mount_points.exclude.len(), 9);
        let off = load("[filesystems]\nenabled = false\n").unwrap();
        assert!(off.filesystem_collector().is_none());
    }

    #[test]
    fn bad_values_name_their_key() {
        let msg = |t: &str| load(t).unwrap_err().to_string();
        let e = msg("[filesystems.fs_types]\nexclude = [\"[\"]\n");
        assert!(e.contains("filesystems.fs_types.exclude"), "{e}");
        let e = msg("[filesystems.devices]\ninclude = [\"[\"]\n");
        assert!(e.contains("filesystems.devices.include"), "{e}");
        let e = msg("[filesystems]\nmax_mounts = 0\n");
        assert!(e.contains("filesystems.max_mounts"), "{e}");
        let e = msg("[filesystems]\nmax_mounts = 257\n");
        assert!(e.contains("filesystems.max_mounts"), "{e}");
        let e = msg("[filesystems]\ntimeout = \"0s\"\n");
        assert!(e.contains("filesystems.timeout"), "{e}");
        let e = msg("[filesystems]\nmount_point = []\n");
        assert!(e.contains("mount_point"), "{e}");
    }
}
