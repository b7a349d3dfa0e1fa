//! Says when the job event log may have changed, so the MQTT task looks at it then, not
//! every second (issue 22). `publisher job` appends to `events.log` from another process;
//! an inotify watch on the data directory reports the log written, created, replaced (by a
//! compaction) or removed. Changes to the directory's other files are read and dropped.

use std::ffi::OsString;
use std::io;
use std::mem::MaybeUninit;
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

use rustix::fd::OwnedFd;
use rustix::fs::inotify::{self, CreateFlags, ReadFlags, WatchFlags};
use tokio::io::unix::AsyncFd;

#[derive(Debug)]
pub(super) struct LogWatch {
    fd: AsyncFd<OwnedFd>,
    /// The log's file name in the watched directory.
    name: OsString,
}

impl LogWatch {
    /// Watches the directory of `log`. Fails where inotify cannot be had (its limits, a file
    /// system without it); the caller then looks at the log every second instead.
    pub(super) fn new(log: &Path) -> io::Result<Self> {
        let (Some(dir), Some(name)) = (log.parent(), log.file_name()) else {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("{}: not a file in a directory", log.display()),
            ));
        };
        let fd = inotify::init(CreateFlags::CLOEXEC | CreateFlags::NONBLOCK)?;
        let events = WatchFlags::MODIFY
            | WatchFlags::CLOSE_WRITE
            | WatchFlags::CREATE
            | WatchFlags::DELETE
            | WatchFlags::MOVED_FROM
            | WatchFlags::MOVED_TO
            | WatchFlags::DELETE_SELF
            | WatchFlags::MOVE_SELF;
        inotify::add_watch(&fd, dir, events)?;
        Ok(Self {
            fd: register(fd)?,
            name: name.to_owned(),
        })
    }

    /// Completes when the log may have changed. An error (the directory itself removed or
    /// moved, the watch gone) means no more news will come.
    pub(super) async fn changed(&mut self) -> io::Result<()> {
        let mut buf = [MaybeUninit::<u8>::uninit(); 2048];
        loop {
            let mut ready = self.fd.readable().await?;
            let (mut ours, mut drained) = (false, false);
            let mut reader = inotify::Reader::new(ready.get_inner(), &mut buf);
            loop {
                match reader.next() {
                    Ok(event) => {
                        let flags = event.events();
                        let gone = ReadFlags::IGNORED
                            | ReadFlags::UNMOUNT
                            | ReadFlags::DELETE_SELF
                            | ReadFlags::MOVE_SELF;
                        if flags.intersects(gone) {
                            return Err(io::Error::other(
                                "the data directory is not watched any more",
                            ));
                        }
                        // Events were lost: the log's may be among them.
                        ours |= flags.contains(ReadFlags::QUEUE_OVERFLOW)
                            || event
                                .file_name()
                                .is_some_and(|n| n.to_bytes() == self.name.as_bytes());
                    }
                    Err(rustix::io::Errno::AGAIN) => {
                        drained = true;
                        break;
                    }
                    Err(error) => return Err(error.into()),
                }
                if reader.is_buffer_empty() {
                    break;
                }
            }
            if drained {
                ready.clear_ready();
            }
            if ours {
                return Ok(());
            }
        }
    }
}

/// Registers the inotify descriptor with tokio's reactor.
#[allow(unsafe_code)]
fn register(fd: OwnedFd) -> io::Result<AsyncFd<OwnedFd>> {
    // SAFETY: `AsyncFd::register` asks that the descriptor stay open, and `as_raw_fd` return
    // the same one, for the life of the `AsyncFd`: it owns the `OwnedFd`, which closes it only
    // when dropped with it, and whose descriptor never changes.
    unsafe { AsyncFd::register(fd) }.map_err(io::Error::from)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;
    use tokio::time::timeout;

    #[tokio::test]
    async fn the_log_written_created_or_replaced_is_reported_other_files_are_not() {
        let dir = tempfile::tempdir().unwrap();
        let log = dir.path().join("events.log");
        let mut watch = LogWatch::new(&log).unwrap();
        let wait = Duration::from_millis(200);
        std::fs::write(dir.path().join("mqtt-events.cursor"), b"x").unwrap();
        assert!(timeout(wait, watch.changed()).await.is_err());
        std::fs::write(&log, b"a\n").unwrap();
        assert!(timeout(wait, watch.changed()).await.is_ok());
        // Drain what one write reported (several events), then nothing more comes.
        while timeout(wait, watch.changed()).await.is_ok() {}
        let tmp = dir.path().join("events.log.tmp");
        std::fs::write(&tmp, b"b\n").unwrap();
        std::fs::rename(&tmp, &log).unwrap();
        assert!(timeout(wait, watch.changed()).await.is_ok());
    }
}
