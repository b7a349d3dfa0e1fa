//! Committed raw records the card lost (`RawLog::open` found a day's file missing, short, or
//! a record failing its CRC inside what was committed): that day ends at its last readable
//! record, so each host's samples after it, up to its first sample of a later day, are gone.
//! Each such gap becomes a hole, saved by the next commit: the backfill asks the publisher's
//! ring for it, and a hole the ring no longer covers is settled as lost and said so
//! (`holes.rs`). A gap at the newest end needs none: the next live sample shows it.

use super::db::Tsdb;
use super::holes::Hole;
use super::raw_key::{first_key, last_key};
use super::raw_log::Recovery;
use super::raw_scan::Walk;
use super::rollup::DAY_MS;

impl Tsdb {
    pub(super) fn holes_for_damage(&mut self, damage: &Recovery) -> rusqlite::Result<()> {
        self.stats.raw_lost_bytes = damage.lost_bytes;
        let hosts: Vec<(String, i64)> = self.hosts.iter().map(|(n, h)| (n.clone(), h.id)).collect();
        for &day in &damage.damaged_days {
            let next_day = day.saturating_add(1).saturating_mul(DAY_MS);
            for (name, id) in &hosts {
                let before = Walk {
                    to: last_key(next_day.saturating_sub(1)),
                    ..Walk::whole(*id)
                };
                let after = Walk {
                    from: first_key(next_day),
                    ..Walk::whole(*id)
                };
                let last = self.first_raw(before.newest_first(), |_| true)?;
                let next = self.first_raw(after, |_| true)?;
                let (Some(last), Some(next)) = (last, next) else {
                    continue;
                };
                if next.seq > last.seq.saturating_add(1) {
                    self.tx.remember_hole(&Hole {
                        host: name.clone(),
                        after_seq: last.seq,
                        before_seq: next.seq,
                        after_ts_ms: last.ts,
                        before_ts_ms: next.ts,
                        tries: 0,
                    });
                }
            }
        }
        Ok(())
    }
}
