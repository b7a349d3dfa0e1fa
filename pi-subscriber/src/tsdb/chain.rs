//! Raw rows stored as their change from the sample before (`pack.rs`): which rows are, and
//! reading any row back through its chain.
//!
//! A live sample that directly follows the host's previous one ([`Sample::follows`]) in the
//! same clock hour is stored as a delta from it, up to [`MAX_CHAIN`] in a row; any other
//! (the first of an hour, a backfilled one, one after a gap or a new series) is stored whole.
//! So a chain never crosses an hour: the raw tier is pruned an hour at a time and never
//! leaves a row without its base. Only the disk bound (`size.rs`) cuts inside an hour, and
//! it first stores whole the rows whose base it deletes ([`Tsdb::rekey_after`]).

use std::collections::{HashMap, VecDeque};

use rusqlite::params;

use super::codec;
use super::db::{Sample, Tsdb};
use super::pack::{self, Packed};
use super::parts::Kind;
use super::raw_key::{first_key, last_key};
use super::raw_log::RawRecord;
use super::raw_scan::Walk;
use super::rollup::{floor, HOUR_MS};
use crate::registry::Value;

/// The most delta rows between two whole ones: what reading one row may have to walk.
pub(super) const MAX_CHAIN: u32 = 64;

/// `HostCache::chain` when the host's last live sample is not a row to build on.
pub(super) const NO_BASE: u32 = u32::MAX;

/// A raw row's key: (host, ts, seq).
pub(super) type Key = (i64, i64, u64);
type Values = Vec<(u32, Value)>;

/// Rows recently decoded, by key, the oldest forgotten past `N`: the base of the next row of
/// a scan (values here, process lists in `top_chain.rs`).
pub(super) struct Recent<V, const N: usize> {
    recent: HashMap<Key, V>,
    order: VecDeque<Key>,
}

impl<V: Clone, const N: usize> Default for Recent<V, N> {
    fn default() -> Self {
        Self {
            recent: HashMap::new(),
            order: VecDeque::new(),
        }
    }
}

impl<V: Clone, const N: usize> Recent<V, N> {
    pub(super) fn put(&mut self, key: Key, value: &V) {
        if self.recent.insert(key, value.clone()).is_none() {
            self.order.push_back(key);
        }
        while self.order.len() > N {
            if let Some(old) = self.order.pop_front() {
                self.recent.remove(&old);
            }
        }
    }

    pub(super) fn get(&self, key: &Key) -> Option<&V> {
        self.recent.get(key)
    }
}

/// Samples recently unpacked: the base of the next row of a scan.
pub(super) type Chain = Recent<Values, 256>;

impl Tsdb {
    /// What to store for `sample` of `host` (`live`: the newest, over MQTT or HTTP), and the
    /// chain length it makes.
    pub(super) fn pack_sample(&self, host: &str, sample: &Sample, live: bool) -> (Vec<u8>, u32) {
        let base = self.hosts.get(host).and_then(|h| {
            let last = h.last.as_ref()?;
            (live
                && h.chain < MAX_CHAIN
                && sample.follows(last)
                && floor(last.ts_ms, HOUR_MS) == floor(sample.ts_ms, HOUR_MS))
            .then_some((last, h.chain))
        });
        if let Some((last, chain)) = base {
            if let Some(bytes) =
                pack::encode_delta(&sample.values, &last.values, sample.ts_ms - last.ts_ms)
            {
                return (bytes, chain + 1);
            }
        }
        (codec::encode_sample(&sample.values), 0)
    }

    /// The values of the raw row (`host`, `ts_ms`, `seq`) whose blob is `data`. A row whose
    /// chain is broken (a damaged database) has none.
    pub(super) fn unpack(
        &self,
        host: i64,
        ts_ms: i64,
        seq: u64,
        data: &[u8],
        chain: &mut Chain,
    ) -> rusqlite::Result<Values> {
        let mut pending: Vec<(Key, Vec<u8>)> = Vec::new();
        let mut key = (host, ts_ms, seq);
        let mut blob: Option<Vec<u8>> = None;
        let mut base: Option<Values> = loop {
            let bytes = blob.as_deref().unwrap_or(data);
            match pack::packed(bytes) {
                Packed::Full(b) => {
                    let values = codec::decode_sample(b);
                    chain.put(key, &values);
                    break Some(values);
                }
                Packed::Unknown => break None,
                Packed::Delta { back_ms, body } => {
                    let below = (host, key.1.saturating_sub(back_ms), key.2.wrapping_sub(1));
                    pending.push((key, body.to_vec()));
                    if let Some(values) = chain.get(&below) {
                        break Some(values.clone());
                    }
                    if pending.len() > 2 * MAX_CHAIN as usize {
                        break None;
                    }
                    match self.raw_data(host, below.1, below.2)? {
                        Some(next) => {
                            key = below;
                            blob = Some(next);
                        }
                        None => break None,
                    }
                }
            }
        };
        for (key, body) in pending.into_iter().rev() {
            let values = match &base {
                Some(b) => pack::decode_delta(&body, b),
                None => Vec::new(),
            };
            chain.put(key, &values);
            base = Some(values);
        }
        Ok(base.unwrap_or_default())
    }

    /// The values of the raw row (`host`, `ts_ms`, `seq`): from `chain` when it holds them,
    /// else read and unpacked (none for a row that is not there).
    pub(super) fn row_values(
        &self,
        host: i64,
        ts_ms: i64,
        seq: u64,
        chain: &mut Chain,
    ) -> rusqlite::Result<Values> {
        if let Some(values) = chain.get(&(host, ts_ms, seq)) {
            return Ok(values.clone());
        }
        match self.raw_data(host, ts_ms, seq)? {
            Some(data) => self.unpack(host, ts_ms, seq, &data, chain),
            None => Ok(Vec::new()),
        }
    }

    /// The stored blob of the raw row (`host`, `ts_ms`, `seq`), as it is (whole or a delta).
    pub(super) fn raw_data(
        &self,
        host: i64,
        ts_ms: i64,
        seq: u64,
    ) -> rusqlite::Result<Option<Vec<u8>>> {
        let walk = Walk::host(host, ts_ms, ts_ms).with_data();
        let row = self.first_raw(walk, |r| r.ts == ts_ms && r.seq == seq)?;
        Ok(row.and_then(|r| r.data))
    }

    /// Before the raw rows of `host` at or before `ts_ms` are deleted: the rows after them,
    /// in the same hour, whose base is among them are stored whole (values and lists).
    pub(super) fn rekey_after(&self, host: i64, ts_ms: i64) -> rusqlite::Result<()> {
        let end = floor(ts_ms, HOUR_MS).saturating_add(HOUR_MS);
        let walk = Walk::host(host, ts_ms, end).with_data().with_top();
        let mut rows = self.raw_rows(walk)?;
        rows.retain(|r| r.ts > ts_ms && r.ts < end);
        let mut chain = Chain::default();
        let mut lists = super::top_chain::TopChain::default();
        for row in rows {
            let (ts, seq, data, top) = (row.ts, row.seq, row.data(), row.top.as_deref());
            let Packed::Delta { back_ms, .. } = pack::packed(data) else {
                continue;
            };
            if ts.saturating_sub(back_ms) > ts_ms {
                continue;
            }
            let values = self.unpack(host, ts, seq, data, &mut chain)?;
            let top = match top {
                Some(b) => self
                    .unpack_top(host, ts, seq, b, &mut lists)?
                    .map(|l| l.encode()),
                None => None,
            };
            // Where it is: the day files, or the tables of a database from before.
            let data = codec::encode_sample(&values);
            let whole = RawRecord {
                key: row.key,
                host,
                seq,
                boot: row.boot,
                data,
                top,
            };
            if self.replace_raw(row.key, &whole)? {
                continue;
            }
            let RawRecord { data, top, .. } = whole;
            for table in self
                .parts
                .borrow()
                .tables_in(Kind::Raw, ts, ts.saturating_add(1))
            {
                self.conn
                    .prepare_cached(&format!(
                        "UPDATE {table} SET data = ?4, top = ?5
                         WHERE key BETWEEN ?6 AND ?7 AND host = ?1 AND ts = ?2 AND seq = ?3"
                    ))?
                    .execute(params![
                        host,
                        ts,
                        seq as i64,
                        data,
                        top,
                        first_key(ts),
                        last_key(ts)
                    ])?;
            }
        }
        Ok(())
    }
}
