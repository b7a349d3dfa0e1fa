//! The Raspberry Pi subscriber: consumes snapshots over MQTT (HTTP polling as the fallback and
//! for backfill), computes rates, keeps per-host history and serves it on :9100.
//! `main.rs` parses arguments and binds; [`run`] does the rest.

pub mod alerts;
pub mod assets;
pub mod client_id;
pub mod clock;
pub mod config;
pub mod history;
pub mod homeassistant;
pub mod http;
pub use http::{grafana, series};
pub mod ingest;
pub mod ingest_queue;
pub mod migrate;
pub mod mqtt;
pub mod poller;
pub mod prometheus;
pub mod rates;
pub mod registry;
pub mod sanitize;
pub mod seed;
pub mod store;
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
use crate::store::{SharedStore, Store};
use crate::tsdb::Tsdb;

/// Forgets the hosts silent for `forget_after`, checking a few times per `forget_after` (at
/// most once a minute).
async fn forget_silent_hosts(
    store: SharedStore,
    forget_after: Duration,
    shutdown: CancellationToken,
) {
    let period = (forget_after / 3).clamp(Duration::from_millis(500), Duration::from_secs(60));
    let mut tick = tokio::time::interval(period);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = tick.tick() => {}
        }
        let now_ms = ingest::unix_ms_now();
        let s = store.clone();
        let silent =
            match tokio::task::spawn_blocking(move || s.silent_hosts(now_ms, forget_after)).await {
                Ok(Ok(silent)) => silent,
                Ok(Err(store::HistoryError::Poisoned(_))) => return,
                Ok(Err(error)) => {
                    tracing::warn!(%error, "cannot list the silent hosts");
                    continue;
                }
                Err(error) => {
                    tracing::warn!(%error, "listing the silent hosts failed");
                    continue;
                }
            };
        for host in silent {
            let store = store.clone();
            let forgot =
                tokio::task::spawn_blocking(move || store.forget(&host).map(|_| host)).await;
            match forgot {
                Ok(Ok(host)) => {
                    tracing::info!(%host, after = ?forget_after, "host silent for history.forget_after: forgotten")
                }
                Ok(Err(error)) => tracing::warn!(%error, "cannot forget a silent host"),
                Err(error) => tracing::warn!(%error, "forgetting a silent host failed"),
            }
        }
    }
}

/// Commits the history every second (a power cut loses at most that), keeps it within
/// `max_disk` bytes (oldest rows first), and closes bucket rows and prunes every minute, off
/// the async workers; commits once more at shutdown.
fn history_writer(
    store: SharedStore,
    max_disk: u64,
    shutdown: CancellationToken,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(Duration::from_secs(1));
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut ticks = 0u64;
        loop {
            let stop = tokio::select! {
                _ = shutdown.cancelled() => true,
                _ = tick.tick() => false,
            };
            ticks += 1;
            let maintain = ticks % 60 == 1;
            let s = store.clone();
            let done = tokio::task::spawn_blocking(move || {
                // Each step runs whatever the one before did (a full disk fails them all,
                // and the commit still copies the counters that say so to `/health`).
                let maintained = match maintain {
                    true => s.maintain(ingest::unix_ms_now()),
                    false => Ok(()),
                };
                let bounded = s.bound_disk(max_disk);
                let committed = s.commit();
                maintained.and(bounded).and(committed)
            })
            .await;
            match done {
                Ok(Ok(())) => {}
                Ok(Err(error)) => tracing::warn!(%error, "cannot write the history"),
                Err(error) => tracing::warn!(%error, "history writer task failed"),
            }
            if stop {
                return;
            }
        }
    })
}

/// Runs until `shutdown` is cancelled; then stops the consumers, lets requests in flight
/// finish, and flushes the history to disk.
pub async fn run(
    settings: Settings,
    listener: TcpListener,
    shutdown: CancellationToken,
) -> anyhow::Result<()> {
    let state = Store::new(settings.history.max_hosts)
        .with_health(settings.health.max_age, settings.health.max_clock_skew)
        .with_max_samples_per_s(settings.history.max_samples_per_s);
    let now_ms = ingest::unix_ms_now();
    let retention = settings.retention();
    let max_series = settings.history.max_series_per_host;
    let series_budget = settings.history.max_series;
    let db_path = settings.data_dir.join("history.sqlite");
    let store = if settings.history.persist {
        std::fs::create_dir_all(&settings.data_dir).with_context(|| {
            format!(
                "cannot create the data directory {}",
                settings.data_dir.display()
            )
        })?;
        let (path, old) = (db_path.clone(), migrate::history_dir(&settings.data_dir));
        let skew = settings.health.max_clock_skew;
        tokio::task::spawn_blocking(move || -> anyhow::Result<SharedStore> {
            let mut tsdb = Tsdb::open(&path, retention, max_series, now_ms)?;
            tsdb.set_series_budget(series_budget);
            let store = SharedStore::new(state, tsdb);
            let imported = migrate::import(&old, &store, now_ms);
            if imported > 0 {
                tracing::info!(
                    rows = imported,
                    "history files of an earlier version imported"
                );
            }
            let horizon = now_ms.saturating_add(skew.as_millis() as i64);
            let hosts = store.restore_hosts(horizon)?;
            tracing::info!(hosts, db = %path.display(), "history opened");
            Ok(store)
        })
        .await??
    } else {
        let mut tsdb = Tsdb::open_in_memory(retention, max_series, now_ms)?;
        tsdb.set_series_budget(series_budget);
        SharedStore::new(state, tsdb)
    };
    let failed = store.failed();
    // Stopped after every task that stores has ended, so the last samples are committed.
    let writer_stop = CancellationToken::new();
    let writer = history_writer(
        store.clone(),
        settings.history.max_disk,
        writer_stop.clone(),
    );
    let (gap_tx, gap_rx) = mpsc::channel(256);
    let (feed, alerts, alert_task) = alerts::start(&settings, store.clone(), shutdown.clone());
    let ingestor = Ingestor {
        store: store.clone(),
        gaps: gap_tx,
        max_payload: settings.mqtt.max_payload_size,
        alerts: feed,
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

    tasks.push(tokio::spawn(forget_silent_hosts(
        store.clone(),
        settings.history.forget_after,
        shutdown.clone(),
    )));

    let state = http::AppState {
        prometheus: prometheus::registry(store.clone(), Some(alerts.clone())),
        store,
        mqtt: mqtt_state,
        default_host: settings.default_host.as_str().into(),
        max_age: settings.health.max_age.unwrap_or(store::DEFAULT_MAX_AGE),
        request_timeout: settings.http.request_timeout,
        admin_token: settings.http.admin_token.as_deref().map(Arc::from),
        alerts: Some(alerts),
        homeassistant,
    };
    tracing::info!(http = %listener.local_addr()?, mqtt = settings.mqtt.enabled, "pi-subscriber serving HTTP");
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
    for task in tasks {
        let _ = tokio::time::timeout(Duration::from_secs(5), task).await;
    }
    // The writer commits what is left and ends.
    writer_stop.cancel();
    writer
        .await
        .map_err(|_| anyhow::anyhow!("history writer panicked"))?;
    if failed.is_cancelled() {
        anyhow::bail!("stopped because the store was poisoned by a panic (see the log); exiting non-zero so the service manager restarts pi-subscriber");
    }
    tracing::info!("pi-subscriber stopped cleanly");
    Ok(())
}
