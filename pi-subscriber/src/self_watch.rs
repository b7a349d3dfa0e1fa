//! `[self]`: the Pi watches itself. Every `self.interval` it samples its own machine with the
//! publisher's collectors (the `collectors` crate: the same code, not a copy), and the sample
//! takes the one road every snapshot takes ([`Ingestor::snapshot_payload`]: validated,
//! stored, rated, alerted on): its SD card's fill, temperature, power flags, CPU and memory
//! are one more host on the dashboard, in Home Assistant and under the same alerts. No broker
//! hop, no second daemon. Its seq continues from the newest the store has for it, so a
//! restart leaves no gap to backfill.

use std::time::{Duration, SystemTime};

use broker::{Snapshot, SNAPSHOT_VERSION};
use collectors::{network, Collectors, FilesystemCollector, Roots};
use tokio_util::sync::CancellationToken;

use crate::config::self_watch::SelfSettings;
use crate::ingest::Ingestor;
use crate::store::{Outcome, Source};

/// The host id `[self]` stores under: `self.host`, else the machine's.
pub fn host_id(s: &SelfSettings) -> String {
    if !s.host.is_empty() {
        return s.host.clone();
    }
    collectors::host::read_host_id(&Roots::new(&s.proc_root, &s.sys_root))
        .unwrap_or_else(|_| "pi".into())
}

fn unix_ms(t: SystemTime) -> i64 {
    t.duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}

/// Samples until `shutdown`, stored under `host` ([`host_id`]).
pub async fn run(
    host: String,
    settings: SelfSettings,
    ingestor: Ingestor,
    shutdown: CancellationToken,
) {
    let mut seq = ingestor
        .store
        .host(&host)
        .ok()
        .flatten()
        .and_then(|h| {
            h.latest
                .as_ref()
                .map(|s| s.seq)
                .or(h.restored_newest.map(|p| p.seq))
        })
        .unwrap_or(0);
    tracing::info!(%host, interval = ?settings.interval, next_seq = seq + 1, "watching this machine ([self])");
    let roots = Roots::new(&settings.proc_root, &settings.sys_root);
    let mut collectors = Some(
        Collectors::new(roots, network::default_filter())
            .with_filesystems(Some(FilesystemCollector::system()))
            .with_processes(Some(collectors::processes::ProcessCollector::new(
                5,
                "/etc/passwd",
            ))),
    );
    let mut units = settings.units.then(collectors::units::UnitsReader::default);
    if let Some(c) = collectors.as_mut() {
        c.prime();
    }
    // The first sample a second after start (CPU % over that second), as the publisher does.
    tokio::select! {
        _ = shutdown.cancelled() => return,
        _ = tokio::time::sleep(Duration::from_secs(1).min(settings.interval)) => {}
    }
    let first = tokio::time::Instant::now() + settings.interval;
    let mut tick = tokio::time::interval_at(first, settings.interval);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        let Some(mut c) = collectors.take() else {
            break;
        };
        let Ok((c, mut reading)) = tokio::task::spawn_blocking(move || {
            let r = c.sample();
            (c, r)
        })
        .await
        else {
            tracing::error!("[self] sampling task failed; watching this machine stops");
            break;
        };
        collectors = Some(c);
        if let Some(u) = units.as_mut() {
            reading.failed_units = u.read().await;
        }
        let ts_ms = unix_ms(reading.read_at);
        let snapshot = reading.into_snapshot(Snapshot {
            v: SNAPSHOT_VERSION,
            host: host.clone(),
            seq: seq + 1,
            ts: ts_ms.div_euclid(1000),
            ts_ms,
            interval_s: settings.interval.as_secs_f64(),
            ..Snapshot::default()
        });
        // The same road as a payload from the broker: every bound and name rule applies.
        match serde_json::to_vec(&snapshot) {
            Ok(bytes) => match ingestor.snapshot_payload(&bytes, Some(&host), Source::Local) {
                Ok(Outcome::Stored { .. }) => seq += 1,
                Ok(other) => tracing::debug!(?other, "[self] sample not stored"),
                Err(why) => tracing::warn!(reason = %why, %host, "[self] sample rejected"),
            },
            Err(error) => tracing::warn!(%error, "[self] sample not encoded"),
        }
        tokio::select! {
            _ = shutdown.cancelled() => break,
            _ = tick.tick() => {}
        }
    }
}
