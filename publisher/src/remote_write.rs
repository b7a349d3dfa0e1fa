//! Remote write from the publisher, for a server with no Pi: the same `[[remote_write]]` as
//! the Pi's, the same sender (the `remote-write` crate) and the same series (the
//! `metric-registry` crate's names and labels), with the ring as the queue. A receiver's
//! cursor (the newest seq it took) is kept in `data_dir/remote-write-<name>.seq`, written
//! whole (temporary file, sync, rename) after each batch, so a receiver down or a publisher
//! restarted loses nothing the ring still holds (24 h at the default capacity).

use std::collections::HashSet;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::Duration;

use broker::Snapshot;
use metric_registry::METRICS;
use remote_write::shipper::Settings as ShipperSettings;
use remote_write::{Batch, Client, Queue, RemoteWriteSettings, Shipper, ShipperHandle};

use crate::shared_ring::SharedRing;

/// Snapshots per batch at most (each holds ~60 series of a tower-sized host).
const ROWS_PER_SAMPLE_BUDGET: usize = 40;

struct RingQueue {
    ring: SharedRing,
    cursor_file: PathBuf,
    /// The newest seq the receiver took.
    cursor: u64,
    metrics: Option<HashSet<usize>>,
    interval: Duration,
}

fn read_cursor(path: &Path) -> Option<u64> {
    std::fs::read_to_string(path).ok()?.trim().parse().ok()
}

fn write_cursor(path: &Path, seq: u64) -> std::io::Result<()> {
    let tmp = path.with_extension("seq.tmp");
    let mut f = std::fs::File::create(&tmp)?;
    writeln!(f, "{seq}")?;
    f.sync_all()?;
    std::fs::rename(&tmp, path)
}

impl RingQueue {
    fn batch(&self, snapshots: &[Snapshot]) -> Batch {
        let mut b = Batch::new();
        for s in snapshots {
            for (i, m) in METRICS.iter().enumerate() {
                if self.metrics.as_ref().is_some_and(|w| !w.contains(&i)) {
                    continue;
                }
                for (label, value) in m.values(s) {
                    if let Some((name, labels, v)) = m.series(&s.host, &label, value) {
                        let labels: Vec<(&str, &str)> =
                            labels.iter().map(|(k, v)| (*k, v.as_str())).collect();
                        b.push(&name, &labels, s.ts_ms, v);
                    }
                }
            }
        }
        b
    }
}

impl Queue for RingQueue {
    type Mark = u64;

    fn next(&mut self, max: usize) -> Result<Option<(Batch, u64)>, String> {
        let rows = (max / ROWS_PER_SAMPLE_BUDGET).max(1);
        let page = self.ring.page(self.cursor, rows)?;
        // A ring that started over (a new data directory): start over with it.
        if page.newest_seq.is_some_and(|n| n < self.cursor) {
            self.cursor = page.oldest_seq.map_or(0, |o| o.saturating_sub(1));
            return Ok(None);
        }
        let snapshots: Vec<Snapshot> = page
            .snapshots
            .iter()
            .filter_map(|raw| serde_json::from_str(raw.get()).ok())
            .collect();
        let Some(last) = snapshots.last().map(|s| s.seq) else {
            return Ok(None);
        };
        Ok(Some((self.batch(&snapshots), last)))
    }

    fn ack(&mut self, seq: u64) -> Result<(), String> {
        self.cursor = seq;
        write_cursor(&self.cursor_file, seq)
            .map_err(|e| format!("{}: {e}", self.cursor_file.display()))
    }

    fn backlog(&mut self) -> Result<(u64, f64), String> {
        let page = self.ring.page(u64::MAX, 0)?;
        let behind = page.newest_seq.map_or(0, |n| n.saturating_sub(self.cursor));
        Ok((behind, behind as f64 * self.interval.as_secs_f64()))
    }
}

/// Starts a shipper per receiver over the ring. `newest` is the ring's newest seq now: a
/// receiver seen for the first time starts there.
pub fn start(
    remotes: &[RemoteWriteSettings],
    ring: &SharedRing,
    data_dir: &Path,
    newest: Option<u64>,
    interval: Duration,
) -> anyhow::Result<Vec<ShipperHandle>> {
    let mut handles = Vec::new();
    for r in remotes {
        let endpoint = r.endpoint();
        let client = Client::new(&endpoint)?;
        let cursor_file = data_dir.join(format!(
            "remote-write-{}.seq",
            endpoint.name.replace(':', "_")
        ));
        let cursor = match read_cursor(&cursor_file) {
            Some(c) => c,
            None => {
                let start = newest.unwrap_or(0);
                write_cursor(&cursor_file, start)
                    .map_err(|e| anyhow::anyhow!("{}: {e}", cursor_file.display()))?;
                start
            }
        };
        let queue = RingQueue {
            ring: ring.clone(),
            cursor_file,
            cursor,
            metrics: (!r.metrics.is_empty()).then(|| {
                r.metrics
                    .iter()
                    .filter_map(|m| metric_registry::index_of(m))
                    .collect()
            }),
            interval,
        };
        let settings = ShipperSettings {
            max_samples: r.max_samples_per_send,
            min_backoff: r.min_backoff,
            max_backoff: r.max_backoff,
            idle: Duration::from_secs(1),
        };
        tracing::info!(remote = %endpoint.name, url = %remote_write::shipper::redacted(&endpoint.url), from_seq = cursor + 1, "remote write: sending every sample from the ring");
        handles.push(Shipper::spawn(client, queue, settings));
    }
    Ok(handles)
}
