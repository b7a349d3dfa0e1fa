//! The Pi's MQTT client id: unique per machine and stable across restarts, because two clients
//! with one id keep kicking each other off the broker (two stock Pis are both `raspberrypi`).
//!
//! `pi-subscriber-<host name>-<12 hex digits>`, the digits from `/etc/machine-id` hashed with an
//! application key (HMAC-SHA256, as systemd's `sd_id128_get_machine_app_specific`: the machine
//! id itself, which the systemd documentation asks to keep private, never leaves the Pi), or,
//! where the machine id cannot be read, from a random suffix persisted in
//! `<data_dir>/mqtt-client-id`.

use std::io::Read;
use std::path::{Path, PathBuf};

/// Where systemd keeps the machine id.
pub const MACHINE_ID: &str = "/etc/machine-id";
/// The persisted random suffix, in the data directory.
pub const SUFFIX_FILE: &str = "mqtt-client-id";
/// Hex digits of the suffix (48 bits: a collision among 1000 Pis has odds of about 2e-9).
const SUFFIX_LEN: usize = 12;
/// Host-name characters kept (MQTT 3.1.1 brokers must accept 23 bytes; every common one
/// accepts far more, and the suffix is what makes the id unique).
const HOST_LEN: usize = 24;

#[derive(Debug, thiserror::Error)]
pub enum ClientIdError {
    #[error("no /etc/machine-id and cannot keep a client id suffix in {}: {source}", path.display())]
    Suffix {
        path: PathBuf,
        source: std::io::Error,
    },
}

/// The client id for a machine called `hostname`.
pub fn derive(hostname: &str, machine_id: &Path, data_dir: &Path) -> Result<String, ClientIdError> {
    let host: String = hostname
        .trim()
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' || c == '_' {
                c
            } else {
                '-'
            }
        })
        .take(HOST_LEN)
        .collect();
    let host = if host.is_empty() {
        "pi".to_owned()
    } else {
        host
    };
    let suffix = match read_machine_id(machine_id) {
        Some(id) => hashed(&id),
        None => persisted_suffix(&data_dir.join(SUFFIX_FILE))?,
    };
    Ok(format!("pi-subscriber-{host}-{suffix}"))
}

/// The machine id when the file holds one (32 hex digits, as machine-id(5) says; an empty
/// file, as in a fresh image before first boot, does not count).
fn read_machine_id(path: &Path) -> Option<String> {
    let mut text = String::new();
    std::fs::File::open(path)
        .ok()?
        .take(256)
        .read_to_string(&mut text)
        .ok()?;
    let id = text.trim();
    (id.len() == 32 && id.chars().all(|c| c.is_ascii_hexdigit())).then(|| id.to_ascii_lowercase())
}

/// The first digits of HMAC-SHA256(app key, machine id).
fn hashed(machine_id: &str) -> String {
    let key = ring::hmac::Key::new(ring::hmac::HMAC_SHA256, b"server-analytics pi-subscriber");
    let tag = ring::hmac::sign(&key, machine_id.as_bytes());
    hex(tag.as_ref()).chars().take(SUFFIX_LEN).collect()
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// The suffix kept in `path`, made (random) and written there the first time.
fn persisted_suffix(path: &Path) -> Result<String, ClientIdError> {
    let err = |source| ClientIdError::Suffix {
        path: path.to_owned(),
        source,
    };
    let mut text = String::new();
    if let Ok(file) = std::fs::File::open(path) {
        let _ = file.take(256).read_to_string(&mut text);
        let kept = text.trim();
        if kept.len() == SUFFIX_LEN && kept.chars().all(|c| c.is_ascii_hexdigit()) {
            return Ok(kept.to_ascii_lowercase());
        }
    }
    let mut bytes = [0u8; SUFFIX_LEN / 2];
    ring::rand::SecureRandom::fill(&ring::rand::SystemRandom::new(), &mut bytes)
        .map_err(|_| err(std::io::Error::other("no random numbers from the system")))?;
    let suffix = hex(&bytes);
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).map_err(err)?;
    }
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, format!("{suffix}\n")).map_err(err)?;
    std::fs::rename(&tmp, path).map_err(err)?;
    Ok(suffix)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_machine_id_is_hashed_not_shown() {
        let dir = tempfile::tempdir().unwrap();
        let mid = dir.path().join("machine-id");
        std::fs::write(&mid, "0123456789abcdef0123456789abcdef\n").unwrap();
        let a = derive("raspberrypi", &mid, dir.path()).unwrap();
        assert_eq!(a, derive("raspberrypi", &mid, dir.path()).unwrap());
        assert!(a.starts_with("pi-subscriber-raspberrypi-"), "{a}");
        let suffix = a.rsplit('-').next().unwrap();
        assert_eq!(suffix.len(), 12);
        assert!(!"0123456789abcdef0123456789abcdef".contains(suffix));
        // A second Pi with the same host name gets another id.
        std::fs::write(&mid, "fedcba9876543210fedcba9876543210\n").unwrap();
        let b = derive("raspberrypi", &mid, dir.path()).unwrap();
        assert_ne!(a, b);
        assert!(b.starts_with("pi-subscriber-raspberrypi-"));
        // Nothing was written to the data directory.
        assert!(!dir.path().join(SUFFIX_FILE).exists());
    }

    #[test]
    fn without_a_machine_id_a_random_suffix_is_kept_in_the_data_dir() {
        let dir = tempfile::tempdir().unwrap();
        let data = dir.path().join("state");
        for unreadable in ["missing", "empty", "garbage"] {
            let mid = dir.path().join(unreadable);
            match unreadable {
                "empty" => std::fs::write(&mid, "").unwrap(),
                "garbage" => std::fs::write(&mid, "not a machine id").unwrap(),
                _ => {}
            }
            let a = derive("pi", &mid, &data).unwrap();
            let kept = std::fs::read_to_string(data.join(SUFFIX_FILE)).unwrap();
            assert_eq!(a, format!("pi-subscriber-pi-{}", kept.trim()));
            // Stable across restarts.
            assert_eq!(derive("pi", &mid, &data).unwrap(), a);
        }
        // Another Pi (another data dir) draws another suffix.
        let other = derive("pi", &dir.path().join("missing"), &dir.path().join("b")).unwrap();
        assert_ne!(
            other,
            derive("pi", &dir.path().join("missing"), &data).unwrap()
        );
    }

    #[test]
    fn odd_host_names_are_made_safe_and_short() {
        let dir = tempfile::tempdir().unwrap();
        let mid = dir.path().join("machine-id");
        std::fs::write(&mid, "0123456789abcdef0123456789abcdef").unwrap();
        let id = derive("my pi/+#.local-and-a-very-long-name", &mid, dir.path()).unwrap();
        assert!(
            id.starts_with("pi-subscriber-my-pi----local-and-a-ver-"),
            "{id}"
        );
        assert!(derive("", &mid, dir.path())
            .unwrap()
            .starts_with("pi-subscriber-pi-"));
    }

    #[test]
    fn an_unwritable_data_dir_is_named() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("file");
        std::fs::write(&file, "").unwrap();
        let e = derive("pi", &dir.path().join("missing"), &file.join("sub")).unwrap_err();
        assert!(
            e.to_string()
                .contains(&file.join("sub").join(SUFFIX_FILE).display().to_string()),
            "{e}"
        );
    }
}
