//! The history's side of the one rate rule: rates between seq neighbours over a host's
//! series ids, their result by metric and label for the store, and the per-host record of
//! metrics whose total must come from its own counter (a device without a series).

use rusqlite::params;

use super::db::{Sample, Tsdb};
use crate::rates::{counter_rates, Derived};

impl Tsdb {
    /// Per-second rates of `later`'s counters (`later` must follow `earlier`), by the one rate
    /// rule ([`crate::rates::counter_rates`]) over the host's series.
    pub(super) fn rates(&self, earlier: &Sample, later: &Sample) -> Vec<(u32, f64)> {
        let dt = (later.ts_ms - earlier.ts_ms) as f64 / 1000.0;
        let whole = self
            .series
            .get(&later.values.first().map_or(0, |v| v.0))
            .and_then(|(host, _, _)| self.hosts.get(host))
            .map_or(0, |h| h.partial);
        counter_rates(
            &earlier.values,
            &later.values,
            dt,
            |id| self.series.get(&id).map(|(_, m, l)| (*m, l.as_str())),
            whole,
        )
    }

    /// The same rates by metric and label, as the store hands them to every surface.
    pub(super) fn derived(&self, rates: &[(u32, f64)]) -> Derived {
        Derived(
            rates
                .iter()
                .filter_map(|(id, r)| {
                    let (_, m, l) = self.series.get(id)?;
                    Some((*m, l.clone(), *r))
                })
                .collect(),
        )
    }
}

/// A metric's bit in [`super::db::HostCache::partial`] (the registry has fewer than 64 metrics).
pub(super) fn bit(metric: usize) -> u64 {
    1u64.checked_shl(metric as u32).unwrap_or(0)
}

pub(super) fn partial_key(host_id: i64) -> String {
    format!("partial:{host_id}")
}

impl Tsdb {
    /// Notes that a device of metric `m` has no series: the host's total is then never the
    /// sum of its devices (persisted, so a restart keeps the rule).
    pub(super) fn mark_partial(
        &mut self,
        host: &str,
        host_id: i64,
        m: usize,
        label: &str,
    ) -> rusqlite::Result<()> {
        let Some(h) = self.hosts.get_mut(host) else {
            return Ok(());
        };
        if label.is_empty() || h.partial & bit(m) != 0 {
            return Ok(());
        }
        h.partial |= bit(m);
        let mask = h.partial;
        self.conn.execute(
            "INSERT OR REPLACE INTO meta (key, value) VALUES (?1, ?2)",
            params![partial_key(host_id), mask as i64],
        )?;
        Ok(())
    }
}
