//! Files created in someone else's directory keep that directory's owner.
//!
//! `sudo publisher job …` writes into the user's data directory; files and directories it
//! creates there as root would lock the user's daemon out (`Permission denied` on the ring
//! directory, the event log or its lock). So what this process *creates* is handed to the
//! owner of the directory it is created in. Existing files are never re-owned: their owner is
//! kept. Only root can give a file away; for anyone else the files are already theirs, or
//! belong to a group directory whose rules apply as usual.
//!
//! Safe against a hostile directory owner: files are created with `O_EXCL | O_NOFOLLOW` and
//! re-owned through their descriptor (`fchown`), a directory with `lchown` right after
//! `mkdir`, so a symlink or a hard link planted in the directory is never followed or given away.

use std::fs::{self, File, OpenOptions};
use std::io;
use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
use std::path::Path;

/// Creates `dir` and its missing parents; each one created gets the owner of the directory
/// it was created in.
pub fn create_dir_all(dir: &Path) -> io::Result<()> {
    if dir.is_dir() {
        return Ok(());
    }
    if let Some(parent) = dir.parent().filter(|p| !p.as_os_str().is_empty()) {
        create_dir_all(parent)?;
    }
    match fs::create_dir(dir) {
        Ok(()) => {
            if let Some(parent) = dir.parent() {
                let parent = fs::metadata(if parent.as_os_str().is_empty() {
                    Path::new(".")
                } else {
                    parent
                })?;
                give_to(dir, &parent, |uid, gid| {
                    std::os::unix::fs::lchown(dir, Some(uid), Some(gid))
                });
            }
            Ok(())
        }
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists && dir.is_dir() => Ok(()),
        Err(e) => Err(e),
    }
}

/// Opens `path` (in `dir`) with `options`, creating it when it is missing; a file created here
/// gets `dir`'s owner. Symlinks are refused (`O_NOFOLLOW`), and so is anything that is not a
/// regular file with one link.
pub fn open_or_create(dir: &Path, path: &Path, options: &OpenOptions) -> io::Result<File> {
    let mut create = options.clone();
    create.create_new(true).custom_flags(libc::O_NOFOLLOW);
    match create.open(path) {
        Ok(file) => {
            let dir = fs::metadata(dir)?;
            give_to(path, &dir, |uid, gid| {
                std::os::unix::fs::fchown(&file, Some(uid), Some(gid))
            });
            Ok(file)
        }
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {
            let mut existing = options.clone();
            existing.create(false).custom_flags(libc::O_NOFOLLOW);
            let file = existing.open(path)?;
            let meta = file.metadata()?;
            if !meta.is_file() || meta.nlink() != 1 {
                return Err(io::Error::other(
                    "not a regular file with a single link; refusing to use it",
                ));
            }
            Ok(file)
        }
        Err(e) => Err(e),
    }
}

/// Re-owns a freshly created `path` to `dir`'s owner when they differ. Failing to (not root)
/// is normal and silent; anything else is logged.
fn give_to(path: &Path, dir: &fs::Metadata, chown: impl FnOnce(u32, u32) -> io::Result<()>) {
    let Ok(meta) = fs::symlink_metadata(path) else {
        return;
    };
    if (meta.uid(), meta.gid()) == (dir.uid(), dir.gid()) {
        return;
    }
    match chown(dir.uid(), dir.gid()) {
        Ok(()) => {}
        Err(e) if e.kind() == io::ErrorKind::PermissionDenied => {}
        Err(error) => {
            tracing::warn!(path = %path.display(), %error, "cannot give the file its directory's owner")
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn creates_parents_and_opens_existing_files_but_refuses_symlinks() {
        let dir = tempfile::tempdir().unwrap();
        let data = dir.path().join("a/b/c");
        create_dir_all(&data).unwrap();
        create_dir_all(&data).unwrap();
        assert!(data.is_dir());
        let path = data.join("f");
        let mut append = OpenOptions::new();
        append.append(true);
        open_or_create(&data, &path, &append).unwrap();
        open_or_create(&data, &path, &append).unwrap();
        assert!(path.is_file());
        let link = data.join("l");
        std::os::unix::fs::symlink(&path, &link).unwrap();
        assert!(open_or_create(&data, &link, &append).is_err());
        let hard = data.join("h");
        fs::hard_link(&path, &hard).unwrap();
        let e = open_or_create(&data, &hard, &append).unwrap_err();
        assert!(e.to_string().contains("single link"), "{e}");
    }
}
