//! The raw tier as flat rows (one per sample, every host-wide metric by name), for `/history`
//! and the seed's users, and what the store knows of each host at start-up.

use std::collections::HashMap;

use rusqlite::params;

use super::db::{Tsdb, NEIGHBOUR_WINDOW_MS};
use super::raw_scan::Walk;
use super::rollup::Tier;
use super::TsdbError;
use crate::registry::{Value, METRICS};

/// One raw sample: its host-wide values by metric name (a counter's is its rate from the
/// seq-adjacent sample; absent when there is none).
#[derive(Debug, Clone, PartialEq)]
pub struct FlatRow {
    pub ts_ms: i64,
    pub seq: u64,
    pub values: HashMap<&'static str, f64>,
}

/// A host as the database knows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KnownHost {
    pub name: String,
    /// Raw samples kept.
    pub samples: u64,
    /// The newest sample's time (server clock) that the Pi's clock (plus the allowed skew)
    /// has reached: a row dated ahead never makes its host look fresh.
    pub newest_ts_ms: Option<i64>,
    /// The highest seq whose time the Pi's clock had reached, with its time and boot: what a
    /// gap after a restart is measured from.
    pub reference: Option<(u64, i64, u64)>,
}

impl Tsdb {
    /// Raw samples of `host` with `from_ms <= ts <= to_ms`, ascending by time.
    pub fn flat_rows(
        &self,
        host: &str,
        from_ms: i64,
        to_ms: i64,
    ) -> Result<Vec<FlatRow>, TsdbError> {
        self.flat_inner(host, from_ms, to_ms)
            .map_err(|e| self.err(e))
    }

    fn flat_inner(&self, host: &str, from_ms: i64, to_ms: i64) -> rusqlite::Result<Vec<FlatRow>> {
        let Some(cache) = self.hosts.get(host) else {
            return Ok(Vec::new());
        };
        let window = self.raw_window(cache.id, from_ms, to_ms, NEIGHBOUR_WINDOW_MS, |_| true)?;
        let mut out = Vec::new();
        for (s, previous) in window.each() {
            let mut values = HashMap::new();
            for (id, v) in &s.values {
                if let (Some((_, m, label)), Value::Gauge(g)) = (self.series.get(id), v) {
                    if label.is_empty() {
                        values.insert(METRICS[*m].name, *g);
                    }
                }
            }
            if let Some(p) = previous {
                for (id, rate) in self.rates(p, s) {
                    if let Some((_, m, label)) = self.series.get(&id) {
                        if label.is_empty() && METRICS[*m].kind.is_counter() {
                            values.insert(METRICS[*m].name, rate);
                        }
                    }
                }
            }
            out.push(FlatRow {
                ts_ms: s.ts_ms,
                seq: s.seq,
                values,
            });
        }
        Ok(out)
    }

    /// Every host with data, and where its samples stand (`horizon_ms`: the Pi's clock plus
    /// the allowed skew; a sample dated beyond it is never a reference).
    pub fn known_hosts(&self, horizon_ms: i64) -> Result<Vec<KnownHost>, TsdbError> {
        let run = || -> rusqlite::Result<Vec<KnownHost>> {
            // One walk of the raw tier (its row ids are led by time, so a host's rows are not
            // together; there is no index to walk instead): per host, its row count, newest
            // time and highest seq at or before the horizon.
            #[derive(Default)]
            struct Seen {
                samples: u64,
                newest: Option<i64>,
                reference: Option<(i64, i64, u64)>,
            }
            let mut seen: HashMap<i64, Seen> = HashMap::new();
            self.walk_raw(Walk::keys(i64::MIN, i64::MAX), |r| {
                let s = seen.entry(r.host).or_default();
                s.samples += 1;
                if r.ts <= horizon_ms {
                    s.newest = s.newest.max(Some(r.ts));
                    let seq = r.seq as i64;
                    if s.reference.is_none_or(|(best, _, _)| seq > best) {
                        s.reference = Some((seq, r.ts, r.boot));
                    }
                }
                Ok(true)
            })?;
            let mut out = Vec::new();
            let mut names: Vec<(&String, i64)> =
                self.hosts.iter().map(|(n, h)| (n, h.id)).collect();
            names.sort();
            for (name, id) in names {
                let s = seen.remove(&id).unwrap_or_default();
                let reference = s.reference.map(|(seq, ts, boot)| (seq as u64, ts, boot));
                out.push(KnownHost {
                    name: name.clone(),
                    samples: s.samples,
                    newest_ts_ms: s.newest,
                    reference,
                });
            }
            Ok(out)
        };
        run().map_err(|e| self.err(e))
    }

    /// The hosts the history holds that `live` does not track, whose newest row (raw sample,
    /// or the end of a minute or hour row) is older than `before_ms`: `forget_after` applies
    /// to them too.
    pub fn dormant_hosts(
        &self,
        live: &dyn Fn(&str) -> bool,
        before_ms: i64,
    ) -> Result<Vec<String>, TsdbError> {
        let run = || -> rusqlite::Result<Vec<String>> {
            let mut out = Vec::new();
            for (name, h) in &self.hosts {
                if live(name) {
                    continue;
                }
                let raw = self.first_raw(Walk::whole(h.id).newest_first(), |_| true)?;
                let hour: Option<i64> = self.conn.query_row(
                    "SELECT MAX(start) + ?2 FROM hour WHERE series IN (SELECT id FROM series WHERE host = ?1)",
                    params![h.id, Tier::Hour.row_ms()],
                    |r| r.get(0),
                )?;
                let newest = raw.map(|r| r.ts).max(hour);
                let minute = self
                    .newest_minute_of(h.id)?
                    .map(|s| s.saturating_add(Tier::Minute.row_ms()));
                let newest = newest.max(minute);
                if newest.is_none_or(|t| t < before_ms) {
                    out.push(name.clone());
                }
            }
            out.sort();
            Ok(out)
        };
        run().map_err(|e| self.err(e))
    }
}
