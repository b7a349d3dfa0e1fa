//! The Raspberry Pi subscriber: consumes snapshots over MQTT (HTTP polling as the fallback and
//! for backfill), computes rates, keeps per-host history and serves it on :9100.
//! `main.rs` parses arguments and binds; [`run`] does the rest.

pub mod alerts;
pub mod assets;
pub mod client_id;
pub mod clock;
pub mod config;
pub mod homeassistant;
pub mod http;
pub use http::{grafana, series};
pub mod ingest;
pub mod ingest_queue;
pub mod jobs;
pub mod mqtt;
pub mod poller;
pub mod prometheus;
pub mod rates;
/// The one metric model (the `metric-registry` crate, shared with the publisher's remote write).
pub use metric_registry as registry;
pub mod remote_write;
pub mod sanitize;
pub mod seed;
pub mod self_watch;
pub mod store;
pub mod throttle;
pub mod tsdb;
pub mod validate;

use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use tokio::net::TcpListener;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use crate::config::Settings;
use crate::ingest::Ingestor;
use crate::store::SharedStore;

/// How long after it serves HTTP the daemon gives back its start-up pages.
const START_UP: Duration = Duration::from_secs(60);

/// Runs until `shutdown` is cancelled; then stops the consumers, lets requests in flight
/// finish, and flushes the history to disk.
pub async fn run(
    settings: Settings,
    listener: TcpListener,
    shutdown: CancellationToken,
) -> anyhow::Result<()> {
    let store = {
        let settings = settings.clone();
        tokio::task::spawn_blocking(move || SharedStore::open(&settings, ingest::unix_ms_now()))
            .await??
    };
    let failed = store.failed();
    // The store's own tasks (history writer, forgetting silent hosts): stopped after every
    // task that stores has ended, so the last samples are committed.
    let maintenance = store.start_maintenance(&settings);
    let (gap_tx, gap_rx) = mpsc::channel(256);
    // Expected jobs: judged by a task of the watch, read by alerts and HTTP.
    let expectations = settings
        .jobs
        .expectations()
        .map_err(|(key, reason)| anyhow::anyhow!("invalid setting {key}: {reason}"))?;
    let jobs = jobs::watch::JobWatch::new(
        expectations,
        clock::unix_ms_now(),
        settings
            .history
            .persist
            .then_some(settings.data_dir.as_path()),
    );
    let events = store.clone();
    let jobs_task = jobs.spawn(move || events.events(|_| true).ok(), shutdown.clone());
    // Remote write: a shipper per receiver, the history its queue.
    let remotes = {
        let (list, store) = (settings.remote_write.clone(), store.clone());
        tokio::task::spawn_blocking(move || remote_write::start(&list, &store)).await??
    };
    let (feed, alerts, alert_task) = alerts::start(
        &settings,
        store.clone(),
        jobs.clone(),
        remotes.clone(),
        shutdown.clone(),
    );
    let own_host = settings
        .self_watch
        .enabled
        .then(|| self_watch::host_id(&settings.self_watch));
    let ingestor = Ingestor {
        store: store.clone(),
        gaps: gap_tx,
        max_payload: settings.mqtt.max_payload_size,
        alerts: feed,
        own_host: own_host.as_deref().map(ingest::OwnHost::new),
    };
    let mqtt_state = mqtt::SharedMqtt::default();

    let mut poller = poller::Poller::new(
        settings.poll.clone(),
        settings.mqtt.enabled,
        ingestor.clone(),
        mqtt_state.clone(),
    )
    .context("cannot build the HTTP client")?;
    poller.max_backfill = settings.history.capacity as u64;
    let mut tasks = Vec::new();
    if let Some(host) = own_host {
        tasks.push(tokio::spawn(self_watch::run(
            host,
            settings.self_watch.clone(),
            ingestor.clone(),
            shutdown.clone(),
        )));
    }
    if settings.mqtt.enabled {
        tasks.push(tokio::spawn(mqtt::run(
            settings.mqtt.clone(),
            ingestor,
            mqtt_state.clone(),
            Arc::clone(&poller.reconcile),
            shutdown.clone(),
        )));
    }
    tasks.push(tokio::spawn(poller.run(gap_rx, shutdown.clone())));

    let homeassistant =
        homeassistant::start(&settings, store.clone(), alerts.clone(), shutdown.clone()).map(
            |(shared, task)| {
                tasks.push(task);
                shared
            },
        );

    let state = http::AppState {
        prometheus: prometheus::registry_with(store.clone(), Some(alerts.clone()), remotes.clone()),
        store,
        mqtt: mqtt_state,
        default_host: settings.default_host.as_str().into(),
        max_age: settings.health.max_age.unwrap_or(store::DEFAULT_MAX_AGE),
        request_timeout: settings.http.request_timeout,
        admin_token: settings.http.admin_token.as_deref().map(Arc::from),
        alerts: Some(alerts),
        homeassistant,
        jobs,
        remote_write: remotes,
    };
    tracing::info!(http = %listener.local_addr()?, mqtt = settings.mqtt.enabled, "pi-subscriber serving HTTP");
    // A minute in, the store is open, the brokers and servers answered and the first samples
    // are in: start-up is over and its pages can go (issue 22).
    tokio::spawn(daemon_kit::trim::trim_when(
        tokio::time::sleep(START_UP),
        shutdown.clone(),
    ));
    let server_shutdown = shutdown.clone();
    let server_failed = failed.clone();
    let app = http::router(state).into_make_service_with_connect_info::<std::net::SocketAddr>();
    axum::serve(listener, app)
        .with_graceful_shutdown(async move {
            tokio::select! {
                _ = server_shutdown.cancelled() => {}
                _ = server_failed.cancelled() => {}
            }
        })
        .await
        .context("HTTP server failed")?;
    shutdown.cancel();
    tasks.extend(alert_task);
    tasks.extend(jobs_task);
    for task in tasks {
        let _ = tokio::time::timeout(Duration::from_secs(5), task).await;
    }
    // The writer commits what is left and ends.
    maintenance
        .finish()
        .await
        .map_err(|_| anyhow::anyhow!("history writer panicked"))?;
    if failed.is_cancelled() {
        anyhow::bail!("stopped because the store was poisoned by a panic (see the log); exiting non-zero so the service manager restarts pi-subscriber");
    }
    tracing::info!("pi-subscriber stopped cleanly");
    Ok(())
}
