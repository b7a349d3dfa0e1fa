//! The Raspberry Pi subscriber: consumes snapshots over MQTT (HTTP polling as the fallback and
//! for backfill), computes rates, keeps per-host history and serves it on :9100.
//! `main.rs` parses arguments and binds; [`run`] does the rest.

pub mod assets;
pub mod config;
pub mod grafana;
pub mod http;
pub mod ingest;
pub mod mqtt;
pub mod persist;
pub mod poller;
pub mod prometheus;
pub mod rates;
pub mod registry;
pub mod row;
pub mod store;
pub mod tsdb;
pub mod validate;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::Context;
use tokio::net::TcpListener;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use crate::config::Settings;
use crate::ingest::Ingestor;
use crate::persist::Persister;
use crate::store::Store;

/// Forgets the hosts silent for `forget_after`, checking a few times per `forget_after` (at
/// most once a minute).
async fn forget_silent_hosts(
    store: store::SharedStore,
    persister: Persister,
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
        let Ok(mut store) = store.lock() else { return };
        let silent = store.silent_hosts(now_ms, forget_after);
        for host in &silent {
            store.forget(host);
        }
        drop(store);
        for host in silent {
            tracing::info!(%host, after = ?forget_after, "host silent for history.forget_after: forgotten");
            persister.forget(&host);
        }
    }
}

/// Runs until `shutdown` is cancelled; then stops the consumers, lets requests in flight
/// finish, and flushes the history to disk.
pub async fn run(
    settings: Settings,
    listener: TcpListener,
    shutdown: CancellationToken,
) -> anyhow::Result<()> {
    let mut store = Store::new(settings.history.capacity, settings.history.max_hosts);
    store.max_clock_skew = settings.health.max_clock_skew;
    store.stale_after = settings.health.max_age;
    let history_dir = persist::history_dir(&settings.data_dir);
    if settings.history.persist {
        let dir = history_dir.clone();
        store = tokio::task::spawn_blocking(move || {
            persist::load(&dir, |host, rows| {
                let n = rows.len();
                if store.restore(host, rows, ingest::unix_ms_now()) {
                    tracing::info!(%host, rows = n, "history restored");
                } else {
                    tracing::warn!(%host, "history not restored: more hosts than history.max_hosts");
                }
            });
            store
        })
        .await?;
    }
    let store = store::SharedStore::new(store);
    let failed = store.failed();
    let (persister, writer) = if settings.history.persist {
        let (p, h) = persist::start(
            history_dir.clone(),
            store.clone(),
            settings.history.capacity,
        )
        .with_context(|| format!("cannot write the history in {}", history_dir.display()))?;
        (p, Some(h))
    } else {
        (Persister::disabled(), None)
    };
    let (gap_tx, gap_rx) = mpsc::channel(256);
    let ingestor = Ingestor {
        store: store.clone(),
        persister: persister.clone(),
        gaps: gap_tx,
        max_payload: settings.mqtt.max_payload_size,
    };
    let mqtt_state = Arc::new(Mutex::new(mqtt::MqttState::default()));

    let mut tasks = Vec::new();
    if settings.mqtt.enabled {
        tasks.push(tokio::spawn(mqtt::run(
            settings.mqtt.clone(),
            ingestor.clone(),
            Arc::clone(&mqtt_state),
            shutdown.clone(),
        )));
    }
    let mut poller = poller::Poller::new(
        settings.poll.clone(),
        settings.mqtt.enabled,
        ingestor,
        Arc::clone(&mqtt_state),
    )
    .context("cannot build the HTTP client")?;
    poller.max_backfill = settings.history.capacity as u64;
    tasks.push(tokio::spawn(poller.run(gap_rx, shutdown.clone())));

    tasks.push(tokio::spawn(forget_silent_hosts(
        store.clone(),
        persister.clone(),
        settings.history.forget_after,
        shutdown.clone(),
    )));

    let state = http::AppState {
        prometheus: prometheus::registry(store.clone(), settings.health.max_age),
        store,
        mqtt: mqtt_state,
        default_host: settings.default_host.as_str().into(),
        max_age: settings.health.max_age,
        request_timeout: settings.http.request_timeout,
        persister,
        admin_token: settings.http.admin_token.as_deref().map(Arc::from),
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
    for task in tasks {
        let _ = tokio::time::timeout(Duration::from_secs(5), task).await;
    }
    // The last Persister clones went with the tasks: the writer drains, syncs and ends.
    if let Some(writer) = writer {
        tokio::task::spawn_blocking(move || writer.join())
            .await?
            .map_err(|_| anyhow::anyhow!("history writer panicked"))?;
    }
    if failed.is_cancelled() {
        anyhow::bail!("stopped because the store was poisoned by a panic (see the log); exiting non-zero so the service manager restarts pi-subscriber");
    }
    tracing::info!("pi-subscriber stopped cleanly");
    Ok(())
}
