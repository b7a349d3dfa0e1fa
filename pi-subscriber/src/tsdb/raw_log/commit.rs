//! The commit protocol of the day files (see the module's doc): what a transaction changed,
//! sealing it, making it durable, and undoing it.

use std::collections::BTreeMap;
use std::fs::File;

use super::day::Day;
use super::index::scan_with;
use super::record::encode_seal;
use super::{err, RawLog, RawLogError, PAGE};

impl RawLog {
    /// The days whose length the open transaction changed, with that length, and the days it
    /// forgot: what the caller's transaction must store (after [`RawLog::sync`]).
    pub fn changes(&self) -> (Vec<(i64, u64)>, Vec<i64>) {
        let changed = self
            .days
            .iter()
            .filter(|(_, d)| d.len() != d.committed)
            .map(|(&day, d)| (day, d.len()))
            .collect();
        let forgotten = self.doomed.iter().map(|(day, _)| *day).collect();
        (changed, forgotten)
    }

    /// Whether the open transaction's records can be committed by the files alone, with
    /// [`RawLog::seal`]: it forgot no day, and made no day's file (a day SQLite has never
    /// stored a length for is not read at the next open, sealed or not).
    pub fn can_seal(&self) -> bool {
        self.doomed.is_empty()
            && self
                .days
                .values()
                .all(|d| d.len() == d.committed || d.committed > 0)
    }

    /// Ends every day the open transaction changed with a seal: once synced, its records
    /// are committed without SQLite storing a length (a commit whose transaction changed
    /// nothing else in SQLite writes nothing there; see the module's doc).
    pub fn seal(&mut self) {
        for d in self.days.values_mut().filter(|d| d.len() != d.committed) {
            encode_seal(&mut d.pending);
        }
    }

    /// After [`RawLog::seal`], in place of [`RawLog::sync`]: writes each day's buffer up to
    /// its last whole page and makes that durable; the rest (less than a page a day) stays
    /// buffered, committed, until a later write takes it. A page written part-full is written
    /// again by the next sync: for one host that doubled what its records cost the card. A
    /// power cut loses that tail: samples the Pi's restart finds missing and backfills from
    /// the publisher's ring (its own samples have none: they are lost).
    pub fn write_whole_pages(&mut self) -> Result<(), RawLogError> {
        self.write_up_to(|d| d.len() / PAGE * PAGE)
    }

    /// Writes what is committed and still buffered (a sealed commit's tail), and makes it
    /// durable: at a clean stop, so a restart finds every committed sample.
    pub fn flush_committed(&mut self) -> Result<(), RawLogError> {
        self.write_up_to(|d| d.committed)
    }

    /// Writes each day file's buffer up to the offset `end` gives it and syncs what it wrote.
    fn write_up_to(&mut self, end: impl Fn(&Day) -> u64) -> Result<(), RawLogError> {
        for d in self.days.values_mut() {
            let end = end(d);
            if end <= d.written || d.file.is_none() {
                continue;
            }
            let n = usize::try_from(end - d.written).unwrap_or(usize::MAX);
            d.write_head(n, &mut self.bytes_written)
                .map_err(err(&d.path))?;
            if let Some(file) = &d.file {
                file.sync_data().map_err(err(&d.path))?;
            }
        }
        Ok(())
    }

    /// Writes what is buffered and makes it durable; every day's length, for the caller's
    /// transaction to store.
    pub fn sync(&mut self) -> Result<BTreeMap<i64, u64>, RawLogError> {
        let mut new = false;
        for d in self.days.values_mut() {
            if d.pending.is_empty() && d.written == d.committed {
                continue;
            }
            d.spill(&mut self.bytes_written).map_err(err(&d.path))?;
            if let Some(file) = &d.file {
                file.sync_data().map_err(err(&d.path))?;
            }
            new |= std::mem::take(&mut d.new);
        }
        if let Some(dir) = self.dir.as_ref().filter(|_| new) {
            File::open(dir)
                .and_then(|f| f.sync_all())
                .map_err(err(dir))?;
        }
        Ok(self.days.iter().map(|(&k, d)| (k, d.len())).collect())
    }

    /// The caller's transaction holding the lengths [`RawLog::sync`] returned committed.
    pub fn committed(&mut self) {
        for d in self.days.values_mut() {
            d.committed = d.len();
        }
        for (day, d) in self.doomed.drain(..) {
            if d.file.is_some() {
                if let Err(error) = std::fs::remove_file(&d.path) {
                    // Not in the committed lengths any more: the next open removes it.
                    tracing::warn!(%error, day, file = %d.path.display(), "raw log: a dropped day's file stays");
                }
            }
        }
    }

    /// The caller's transaction failed: every record since the last commit is gone (and
    /// what its hides and replacements changed comes back: the day is indexed again from
    /// its file).
    pub fn rollback(&mut self) -> Result<(), RawLogError> {
        for (day, d) in self.doomed.drain(..) {
            self.days.insert(day, d);
        }
        let mut gone = Vec::new();
        for (&day, d) in self.days.iter_mut() {
            if d.len() == d.committed {
                continue;
            }
            if d.committed == 0 {
                gone.push(day);
                continue;
            }
            if d.committed >= d.written {
                // The commit's tail is still buffered (a sealed commit writes whole pages):
                // the buffer is cut back to it.
                let keep = usize::try_from(d.committed - d.written).unwrap_or(usize::MAX);
                d.pending.truncate(keep);
            } else if let Some(file) = &d.file {
                d.pending.clear();
                file.set_len(d.committed).map_err(err(&d.path))?;
                d.written = d.committed;
            }
            let day: &Day = d;
            d.index = scan_with(|buf, at| day.read_at(buf, at), day.committed)
                .map_err(err(&d.path))?
                .index;
        }
        for day in gone {
            self.drop_day(day)?;
        }
        Ok(())
    }
}

/// A log dropped (the store closed) writes its committed tail first.
impl Drop for RawLog {
    fn drop(&mut self) {
        if let Err(error) = self.flush_committed() {
            tracing::warn!(%error, "raw log: the last committed samples could not be written");
        }
    }
}
