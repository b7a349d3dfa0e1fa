//! `data_dir/alerts.json`: the engine's state, written atomically (temp file, fsync, rename,
//! fsync of the directory) so a restart neither repeats nor loses a notification.

use std::io::Write;
use std::path::{Path, PathBuf};

use super::engine::Saved;

/// A bigger file is not read (the state is a few KiB; MAX_RECENT and the bounds keep it so).
pub const MAX_FILE: u64 = 16 * 1024 * 1024;

pub fn path(data_dir: &Path) -> PathBuf {
    data_dir.join("alerts.json")
}

/// The saved state; empty when there is none, and (with a warning naming the file) when it
/// cannot be read.
pub fn load(path: &Path) -> Saved {
    let read = || -> Result<Option<Saved>, String> {
        let meta = match std::fs::metadata(path) {
            Ok(m) => m,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(e.to_string()),
        };
        if meta.len() > MAX_FILE {
            return Err(format!("larger than {MAX_FILE} bytes"));
        }
        let text = std::fs::read(path).map_err(|e| e.to_string())?;
        serde_json::from_slice(&text)
            .map(Some)
            .map_err(|e| e.to_string())
    };
    match read() {
        Ok(saved) => saved.unwrap_or_default(),
        Err(error) => {
            tracing::warn!(file = %path.display(), %error, "cannot read the alert state; starting empty");
            Saved::default()
        }
    }
}

/// Writes `saved` to `path` atomically.
pub fn save(path: &Path, saved: &Saved) -> std::io::Result<()> {
    let bytes = serde_json::to_vec(saved).map_err(std::io::Error::other)?;
    let tmp = path.with_extension("json.tmp");
    {
        let mut f = std::fs::File::create(&tmp)?;
        f.write_all(&bytes)?;
        f.sync_all()?;
    }
    std::fs::rename(&tmp, path)?;
    if let Some(dir) = path.parent() {
        // The rename itself is durable only once the directory is.
        if let Ok(d) = std::fs::File::open(dir) {
            let _ = d.sync_all();
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn saves_atomically_and_reads_back() {
        let dir = tempfile::tempdir().unwrap();
        let p = path(dir.path());
        assert_eq!(load(&p), Saved::default());
        let mut s = Saved::default();
        s.boots.insert("tower".into(), "b1".into());
        s.jobs_seen.push_back("r1".into());
        save(&p, &s).unwrap();
        assert_eq!(load(&p), s);
        assert!(!p.with_extension("json.tmp").exists());
        std::fs::write(&p, b"{not json").unwrap();
        assert_eq!(load(&p), Saved::default(), "a corrupt file starts empty");
    }
}
