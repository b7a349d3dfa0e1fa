//! Names from outside (mount points, the Pi's client id) turned into MQTT topic levels,
//! Home Assistant object ids and JSON keys: `[a-z0-9_]` (topic levels also keep `A-Z` and
//! `-`). A name that maps cleanly keeps its readable form; one that lost information on the
//! way gets `__` and 8 hex digits of a stable hash of the original, so two names never
//! collide (a clean form never holds `__`).

/// Readable part of a sanitized name at most (bytes), before the hash suffix.
pub const MAX_SLUG: usize = 48;

fn hash8(raw: &str) -> String {
    format!("{:08x}", crate::rates::boot_hash(Some(raw)) & 0xffff_ffff)
}

/// `kept` chars as they are, the rest as `_`, runs of `_` as one, cut to [`MAX_SLUG`];
/// with the hash suffix unless that lost nothing.
fn slug(raw: &str, original: &str, kept: fn(char) -> bool, clean: bool) -> String {
    let mut out = String::new();
    for c in raw.chars() {
        let c = if kept(c) { c } else { '_' };
        if !(c == '_' && out.ends_with('_')) {
            out.push(c);
        }
        if out.len() >= MAX_SLUG {
            break;
        }
    }
    let out = out.trim_matches('_').to_owned();
    let lossless = clean && out.len() < MAX_SLUG && !out.is_empty();
    if lossless {
        out
    } else if out.is_empty() {
        format!("x__{}", hash8(original))
    } else {
        format!("{out}__{}", hash8(original))
    }
}

/// A mount point as a key: `/` → `root`, `/mnt/data` → `mnt_data`; anything else than
/// lowercase letters and digits between single slashes (and `/root`, which would look like
/// `/`) gets the hash suffix: `/mnt/My Disk` → `mnt_my_disk__1a2b3c4d`.
pub fn mount_key(mount: &str) -> String {
    if mount == "/" {
        return "root".into();
    }
    let body = mount.strip_prefix('/').unwrap_or(mount);
    let clean = mount.starts_with('/')
        && body != "root"
        && body.split('/').all(|seg| {
            !seg.is_empty()
                && seg
                    .chars()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit())
        });
    // The suffix hashes the original mount, so `/A` and `/a` differ.
    slug(
        &body.to_ascii_lowercase(),
        mount,
        |c| c.is_ascii_lowercase() || c.is_ascii_digit(),
        clean,
    )
}

/// A name as one MQTT topic level / discovery node id (`[A-Za-z0-9_-]`).
pub fn topic_level(raw: &str) -> String {
    let kept = |c: char| c.is_ascii_alphanumeric() || c == '-' || c == '_';
    let clean = !raw.is_empty()
        && raw.len() < MAX_SLUG
        && raw.chars().all(kept)
        && !raw.contains("__")
        && !raw.starts_with('_')
        && !raw.ends_with('_');
    slug(raw, raw, kept, clean)
}

/// A host id (already `[A-Za-z0-9_-]`) as the start of an entity's object id: lowercase,
/// `-` as `_` (what HA makes of it anyway). Identity is the `unique_id`, which keeps the
/// host id exactly, so two hosts never share an entity.
pub fn object_prefix(host: &str) -> String {
    host.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() {
                c.to_ascii_lowercase()
            } else {
                '_'
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn clean_mounts_stay_readable() {
        assert_eq!(mount_key("/"), "root");
        assert_eq!(mount_key("/mnt/data"), "mnt_data");
        assert_eq!(mount_key("/boot/efi"), "boot_efi");
        assert_eq!(mount_key("/srv/disk2"), "srv_disk2");
    }

    #[test]
    fn lossy_mounts_get_a_stable_hash_and_never_collide() {
        let lossy = [
            "/mnt_data",
            "/mnt/Data",
            "/mnt/data/",
            "/mnt//data",
            "/root",
            "/mnt/My Disk",
            "mnt/data",
            "/ü",
            "/__",
            &format!("/{}", "a".repeat(60)),
            &format!("/{}b", "a".repeat(60)),
        ];
        let mut keys: Vec<String> = lossy.iter().map(|m| mount_key(m)).collect();
        for (m, k) in lossy.iter().zip(&keys) {
            assert!(k.contains("__"), "{m:?} → {k:?}");
            assert!(
                k.chars()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_'),
                "{k:?}"
            );
            assert!(k.len() <= MAX_SLUG + 10, "{k:?}");
            assert_eq!(&mount_key(m), k, "stable");
        }
        keys.extend(["root".to_string(), mount_key("/mnt/data")]);
        let n = keys.len();
        keys.sort();
        keys.dedup();
        assert_eq!(keys.len(), n, "{keys:?}");
        assert_eq!(
            mount_key("/mnt/My Disk"),
            format!("mnt_my_disk__{}", hash8("/mnt/My Disk"))
        );
        assert_eq!(mount_key("/ü"), format!("x__{}", hash8("/ü")));
    }

    #[test]
    fn topic_levels_and_object_prefixes() {
        assert_eq!(
            topic_level("pi-subscriber-pi-0123abcd"),
            "pi-subscriber-pi-0123abcd"
        );
        let odd = topic_level("pi/+#x");
        assert_eq!(odd, format!("pi_x__{}", hash8("pi/+#x")));
        assert_eq!(object_prefix("My-Tower_2"), "my_tower_2");
    }
}
