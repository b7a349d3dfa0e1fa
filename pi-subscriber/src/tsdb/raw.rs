//! Reading the raw tier: a host's samples over a range, each paired with the sample before it
//! in seq (the only one a counter's rate may be taken against), for `/history` and `/series`.

use std::collections::HashMap;

use rusqlite::params;

use super::codec;
use super::db::{Sample, Tsdb};

/// Raw samples of one host, ascending by time, with an index by seq.
pub(super) struct RawWindow {
    samples: Vec<Sample>,
    by_seq: HashMap<u64, Vec<usize>>,
    from_ms: i64,
}

impl RawWindow {
    /// The samples at or after the range's start, each with its seq predecessor when that
    /// one is in the window and follows on (same boot, earlier time).
    pub(super) fn each(&self) -> impl Iterator<Item = (&Sample, Option<&Sample>)> {
        self.samples
            .iter()
            .filter(|s| s.ts_ms >= self.from_ms)
            .map(|s| {
                let previous = s
                    .seq
                    .checked_sub(1)
                    .and_then(|p| self.by_seq.get(&p))
                    .and_then(|c| c.iter().map(|&i| &self.samples[i]).find(|p| s.follows(p)));
                (s, previous)
            })
    }
}

impl Tsdb {
    /// The raw samples of host `host` with `from_ms - margin_ms <= ts <= to_ms` (the margin
    /// holds the neighbours of the first ones), keeping the values of the series `keep`
    /// accepts.
    pub(super) fn raw_window(
        &self,
        host: i64,
        from_ms: i64,
        to_ms: i64,
        margin_ms: i64,
        keep: impl Fn(u32) -> bool,
    ) -> rusqlite::Result<RawWindow> {
        let mut stmt = self.conn.prepare_cached(
            "SELECT ts, seq, boot, data FROM raw WHERE host = ?1 AND ts BETWEEN ?2 AND ?3 ORDER BY ts, seq",
        )?;
        let mut rows = stmt.query(params![host, from_ms.saturating_sub(margin_ms), to_ms])?;
        let mut samples = Vec::new();
        while let Some(r) = rows.next()? {
            #[cfg(test)]
            super::limits::decoded::add(1);
            let data: Vec<u8> = r.get(3)?;
            let mut values = codec::decode_sample(&data);
            values.retain(|(id, _)| keep(*id));
            samples.push(Sample {
                ts_ms: r.get(0)?,
                seq: r.get::<_, i64>(1)? as u64,
                boot: r.get::<_, i64>(2)? as u64,
                values,
            });
        }
        let mut by_seq: HashMap<u64, Vec<usize>> = HashMap::new();
        for (i, s) in samples.iter().enumerate() {
            by_seq.entry(s.seq).or_default().push(i);
        }
        Ok(RawWindow {
            samples,
            by_seq,
            from_ms,
        })
    }
}
