//! The publisher daemon: samples the machine, keeps a durable ring of snapshots, serves them
//! over HTTP and records batch jobs. `main.rs` parses arguments and binds; [`run`] does the rest.

/// The host collectors live in their own crate (the Pi watching itself uses them too).
pub use collectors;
pub mod config;
pub mod delivery;
pub mod events;
pub mod http;
pub mod job;
pub mod mqtt;
pub mod owner;
pub mod redact;
pub mod remote_write;
pub mod ring;
pub mod sampler;
pub mod shared_ring;
pub use collectors::units;

use anyhow::Context;
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

use broker::BrokerMode;

use crate::collectors::Collectors;
use crate::config::Settings;
use crate::events::EventLog;
use crate::ring::Ring;
use crate::sampler::{Sampler, SamplerStats};
use crate::shared_ring::SharedRing;
use daemon_kit::stats::Stats;

/// Runs the daemon until `shutdown` is cancelled, then stops sampling, lets HTTP requests in
/// flight finish, and returns. Every snapshot is already durable when it is served, so there
/// is nothing left to flush.
pub async fn run(
    settings: Settings,
    listener: TcpListener,
    shutdown: CancellationToken,
) -> anyhow::Result<()> {
    let ring_dir = settings.ring_dir();
    let (capacity, fsync) = (settings.ring.capacity, settings.ring.fsync);
    let (ring, recovery) =
        tokio::task::spawn_blocking(move || Ring::open(&ring_dir, capacity, fsync))
            .await?
            .context("cannot open the snapshot ring")?;
    tracing::info!(
        records = recovery.records,
        truncated_bytes = recovery.truncated_bytes,
        corrupt_records = recovery.corrupt_records,
        newest_seq = ?ring.newest_seq(),
        dir = %settings.ring_dir().display(),
        "ring opened"
    );
    let next_seq = ring.newest_seq().map_or(1, |s| s + 1);
    let ring = SharedRing::new(ring);
    let (latest_tx, latest_rx) = watch::channel(None);
    let stats = Stats::<SamplerStats>::default();
    let events = EventLog::new(&settings.data_dir);
    let mqtt_stats = Stats::<mqtt::MqttStats>::default();

    // The broker first: a publisher told to run one that cannot (port taken) should not start
    // half-way. rumqttd cannot be stopped; it ends with the process.
    let embedded = match settings.broker.mode {
        BrokerMode::Embedded => {
            let broker_settings = settings.broker.clone();
            let running =
                tokio::task::spawn_blocking(move || broker::embedded::spawn(&broker_settings))
                    .await?
                    .context("cannot start the embedded MQTT broker")?;
            Some(running)
        }
        BrokerMode::External | BrokerMode::Off => None,
    };
    // A broker that stops (a crashed thread) does not come back: stop, exit non-zero, and let
    // systemd restart the whole publisher.
    let broker_failed = CancellationToken::new();
    if let Some(running) = embedded.clone() {
        let (shutdown, failed) = (shutdown.clone(), broker_failed.clone());
        tokio::spawn(async move {
            tokio::select! {
                () = shutdown.cancelled() => {}
                reason = running.wait_stopped() => {
                    tracing::error!(%reason, "the embedded MQTT broker stopped; shutting down to be restarted");
                    failed.cancel();
                    shutdown.cancel();
                }
            }
        });
    }
    let retained = embedded.as_ref().map(|running| running.retained_handle());
    let embedded = embedded.map(|running| running.local_addr());
    let mqtt_task = match settings.broker.mode {
        BrokerMode::Off => None,
        _ => Some(tokio::spawn(mqtt::run(
            mqtt::ClientSettings::new(&settings.broker, &settings.host, embedded),
            latest_rx.clone(),
            events.clone(),
            settings.data_dir.clone(),
            mqtt_stats.clone(),
            shutdown.clone(),
        ))),
    };

    let sampler = Sampler {
        host: settings.host.clone(),
        interval: settings.sampler.interval,
        collectors: Some(
            Collectors::new(settings.roots(), settings.interface_filter())
                .with_chip_filter(settings.chip_filter())
                .with_filesystems(settings.filesystem_collector())
                .with_processes(settings.process_collector()),
        ),
        ring: ring.clone(),
        latest: latest_tx,
        stats: stats.clone(),
        next_seq,
        events: events.clone(),
        keep_events: settings.jobs.keep_events,
        units: settings
            .units
            .enabled
            .then(crate::units::UnitsReader::default),
    };
    let sampler = tokio::spawn(sampler.run(shutdown.clone()));
    tokio::spawn(daemon_kit::trim::trim_when(
        two_samples_out(latest_rx.clone()),
        shutdown.clone(),
    ));
    // Remote write: a shipper per receiver, the ring its queue (they stop when dropped).
    let remotes = remote_write::start(
        &settings.remote_write,
        &ring,
        &settings.data_dir,
        next_seq.checked_sub(1).filter(|s| *s > 0),
        settings.sampler.interval,
    )?;

    let state = http::AppState {
        host: settings.host.as_str().into(),
        interval: settings.sampler.interval,
        latest: latest_rx,
        ring,
        events,
        stats,
        mqtt: (settings.broker.mode != BrokerMode::Off).then_some(mqtt_stats),
        broker: retained,
        started: tokio::time::Instant::now(),
        request_timeout: settings.http.request_timeout,
        remote_write: std::sync::Arc::new(remotes),
    };
    tracing::info!(
        http = %listener.local_addr()?,
        host = %settings.host,
        interval = ?settings.sampler.interval,
        "publisher serving HTTP"
    );
    let server_shutdown = shutdown.clone();
    axum::serve(listener, http::router(state))
        .with_graceful_shutdown(async move { server_shutdown.cancelled().await })
        .await
        .context("HTTP server failed")?;
    // The server only returns on shutdown; make sure the sampler sees it too.
    shutdown.cancel();
    sampler.await.context("sampler task failed")?;
    if let Some(task) = mqtt_task {
        // Says `offline` and disconnects before the process (and with it the broker) ends.
        task.await.context("MQTT task failed")??;
    }
    if broker_failed.is_cancelled() {
        anyhow::bail!("stopped because the embedded MQTT broker stopped (see the log above)");
    }
    tracing::info!("publisher stopped cleanly");
    Ok(())
}

/// Completes once two samples are out (the first one discovers sensors and mounts): then
/// start-up is over and its pages can go ([`daemon_kit::trim`]; issue 22).
async fn two_samples_out(mut latest: crate::sampler::Latest) {
    for _ in 0..2 {
        if latest.changed().await.is_err() {
            return std::future::pending().await;
        }
    }
}
