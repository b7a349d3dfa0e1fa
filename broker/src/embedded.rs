//! The embedded rumqttd broker: one MQTT 3.1.1 listener with bounded memory.
//!
//! rumqttd has no stop API, so the broker runs on its own named thread (with its own
//! single-threaded runtime, so a burst of MQTT traffic cannot starve the host's tasks) until
//! the process exits. [`spawn`] returns once the listener accepts connections, or with the
//! reason it cannot.

use std::collections::HashMap;
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::mpsc;
use std::thread;
use std::time::{Duration, Instant};

use rumqttd::local::LinkBuilder;
use rumqttd::{Config, ConnectionSettings, LinkType, Router, RouterConfig, Server, ServerSettings};
use tokio::sync::watch;

use crate::retain::{RetainPolicy, RetainStats};
use crate::settings::BrokerSettings;

mod stall;
use daemon_kit::stats::Stats;
use stall::set_stall_timeout;

#[derive(Debug, thiserror::Error)]
pub enum EmbeddedError {
    #[error("cannot listen on {addr} (broker.listen): {source}")]
    Listen {
        addr: SocketAddr,
        source: std::io::Error,
    },
    #[error("cannot start the broker thread: {0}")]
    Thread(std::io::Error),
    #[error("the broker on {addr} stopped at start-up: {reason}")]
    Stopped { addr: SocketAddr, reason: String },
    #[error("the broker on {addr} did not start its retained-store guard: {reason}")]
    Guard { addr: SocketAddr, reason: String },
    #[error("the broker on {addr} did not accept connections within {waited:?}")]
    NotReady { addr: SocketAddr, waited: Duration },
}

/// A running embedded broker.
#[derive(Debug, Clone)]
pub struct EmbeddedBroker {
    /// Where it listens (port 0 resolved).
    pub addr: SocketAddr,
    /// Set with the reason when the broker's listener or router has stopped.
    stopped: watch::Receiver<Option<String>>,
    /// What the retained-store guard has cleared.
    retained: Stats<RetainStats>,
}

impl EmbeddedBroker {
    /// The retained store's size and what the guard has cleared so far.
    pub fn retained(&self) -> RetainStats {
        self.retained.snapshot()
    }

    /// A shared handle on the same figures, for a status page.
    pub fn retained_handle(&self) -> Stats<RetainStats> {
        self.retained.clone()
    }

    /// `Some(reason)` once the broker has stopped (its listener thread ended or panicked, or
    /// its router thread is gone): it will not come back, the process should exit.
    pub fn stopped(&self) -> Option<String> {
        if let Some(reason) = self.stopped.borrow().clone() {
            return Some(reason);
        }
        // The watchdog ended without a word.
        self.stopped.has_changed().is_err().then(watchdog_gone)
    }

    /// Completes with the reason once the broker has stopped (see [`Self::stopped`]); waits
    /// without waking up until then.
    pub async fn wait_stopped(&self) -> String {
        let mut stopped = self.stopped.clone();
        let reason = match stopped.wait_for(Option::is_some).await {
            Ok(reason) => reason.clone(),
            Err(_) => None,
        };
        reason.unwrap_or_else(watchdog_gone)
    }

    /// The address a local client connects to: loopback when listening on all addresses.
    pub fn local_addr(&self) -> SocketAddr {
        let mut addr = self.addr;
        if addr.ip().is_unspecified() {
            addr.set_ip(if addr.is_ipv4() {
                std::net::Ipv4Addr::LOCALHOST.into()
            } else {
                std::net::Ipv6Addr::LOCALHOST.into()
            });
        }
        addr
    }
}

/// rumqttd's configuration for one v4 listener on `addr`.
pub fn rumqttd_config(settings: &BrokerSettings, addr: SocketAddr) -> Config {
    let auth = settings.logins();
    let server = ServerSettings {
        name: "mqtt-v4".to_owned(),
        listen: addr,
        tls: None,
        next_connection_delay_ms: 1,
        connections: ConnectionSettings {
            connection_timeout_ms: 5_000,
            max_payload_size: settings.max_payload_size,
            max_inflight_count: 100,
            auth,
            external_auth: None,
            // `false`: a publish nobody subscribed to is not given its own replay log.
            dynamic_filters: false,
        },
    };
    Config {
        id: 0,
        router: RouterConfig {
            max_connections: settings.max_connections,
            max_outgoing_packet_count: crate::retain::SWEEP_WINDOW as u64,
            max_segment_size: settings.max_segment_size,
            max_segment_count: settings.max_segment_count,
            custom_segment: None,
            initialized_filters: None,
            shared_subscriptions_strategy: Default::default(),
        },
        v4: Some(HashMap::from([("v4".to_owned(), server)])),
        ..Config::default()
    }
}

/// Starts the broker and waits (up to 5 s) until it accepts connections.
///
/// Port 0 is resolved first by binding it ourselves (rumqttd does not report the port it
/// got); the same bind gives a clear error when the address is taken.
pub fn spawn(settings: &BrokerSettings) -> Result<EmbeddedBroker, EmbeddedError> {
    let addr = {
        let probe = TcpListener::bind(settings.listen).map_err(|source| EmbeddedError::Listen {
            addr: settings.listen,
            source,
        })?;
        probe.local_addr().map_err(|source| EmbeddedError::Listen {
            addr: settings.listen,
            source,
        })?
    };
    let config = rumqttd_config(settings, addr);
    // Half the slots are for the prefix's and Home Assistant's topics alone.
    let policy = RetainPolicy {
        filters: settings.retained_filters(),
        protected: settings.protected_filters(),
        max_payload: settings.max_retained_payload,
        max_topics: settings.max_retained,
        reserved: settings.max_retained / 2,
    };
    let retained = Stats::<RetainStats>::default();
    let guard_stats = retained.clone();
    let (guard_tx, guard_rx) = mpsc::channel::<Result<(), String>>();
    let (done_tx, done_rx) = mpsc::channel::<Ended>();
    let guard_done = done_tx.clone();
    let (router_tx_out, router_rx_out) = mpsc::channel::<RouterGone>();
    thread::Builder::new()
        .name("mqtt-broker".to_owned())
        .spawn(move || {
            let Some(v4) = config.v4.as_ref().and_then(|m| m.values().next().cloned()) else {
                let _ = done_tx.send(Ended::Listener("no listener configured".to_owned()));
                return;
            };
            // The router runs on its own thread (`router-0`) for the life of the process.
            let router_tx = Router::new(config.id, config.router.clone()).spawn();
            let probe = router_tx.clone();
            let _ = router_tx_out.send(Box::new(move || probe.is_disconnected()));
            // The guard subscribes before the listener accepts anyone.
            let guard = LinkBuilder::new("server-analytics-retain-guard", router_tx.clone())
                .build()
                .map_err(|e| e.to_string())
                .and_then(|(mut tx, rx, _)| {
                    tx.subscribe("#").map_err(|e| e.to_string())?;
                    thread::Builder::new()
                        .name("mqtt-retain-guard".to_owned())
                        .spawn(move || {
                            // Says so when the guard ends: the router is gone (or it panicked).
                            let _ended = Report(guard_done, Some(Ended::Guard));
                            crate::retain::run(tx, rx, policy, guard_stats);
                        })
                        .map_err(|e| e.to_string())
                });
            let failed = guard.is_err();
            let _ = guard_tx.send(guard.map(drop));
            if failed {
                return;
            }
            // From here on the listener's end is reported, a panic's too.
            let mut report = Report(done_tx, Some(Ended::ListenerPanicked));
            let mut server = Server::new(v4, router_tx, rumqttd::protocol::v4::V4);
            let runtime = match tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
            {
                Ok(rt) => rt,
                Err(e) => {
                    report.1 = Some(Ended::Listener(format!("cannot build its runtime: {e}")));
                    return;
                }
            };
            // Only returns on failure.
            let result = runtime.block_on(async {
                tokio::select! {
                    result = server.start(LinkType::Remote) => result,
                    () = test_stop() => Ok(()),
                }
            });
            let reason = match result {
                Ok(()) => "listener ended".to_owned(),
                Err(e) => e.to_string(),
            };
            tracing::error!(%addr, %reason, "embedded MQTT broker stopped");
            report.1 = Some(Ended::Listener(reason));
        })
        .map_err(EmbeddedError::Thread)?;

    match guard_rx.recv_timeout(Duration::from_secs(5)) {
        Ok(Ok(())) => {}
        Ok(Err(reason)) => return Err(EmbeddedError::Guard { addr, reason }),
        Err(_) => {
            let reason = match done_rx.try_recv() {
                Ok(Ended::Listener(reason)) => reason,
                _ => "it did not report within 5 s".to_owned(),
            };
            return Err(EmbeddedError::Guard { addr, reason });
        }
    }
    let (stopped, stopped_rx) = watch::channel(None);
    let broker = EmbeddedBroker {
        addr,
        stopped: stopped_rx,
        retained,
    };
    let mut guard_alive = true;
    let waited = Duration::from_secs(5);
    let deadline = Instant::now() + waited;
    loop {
        match done_rx.try_recv() {
            Ok(Ended::Listener(reason)) => return Err(EmbeddedError::Stopped { addr, reason }),
            Ok(Ended::ListenerPanicked) => {
                let reason = "its listener thread panicked".to_owned();
                return Err(EmbeddedError::Stopped { addr, reason });
            }
            // The watchdog finds out why.
            Ok(Ended::Guard) => guard_alive = false,
            Err(_) => {}
        }
        if TcpStream::connect_timeout(&broker.local_addr(), Duration::from_millis(200)).is_ok() {
            tracing::info!(mqtt = %addr, "embedded MQTT broker listening");
            if !settings.stall_timeout.is_zero() {
                // Not fatal (a sandbox may refuse pidfd_getfd): the broker works, only a
                // client that stops reading keeps its queue, as with rumqttd alone.
                if let Err(reason) = set_stall_timeout(addr, settings.stall_timeout) {
                    tracing::warn!(%addr, %reason, "cannot set broker.stall_timeout; a client that stops reading keeps its queue until it disconnects");
                }
            }
            let router = router_rx_out.recv_timeout(Duration::from_secs(1)).ok();
            thread::Builder::new()
                .name("mqtt-broker-watch".to_owned())
                .spawn(move || watch_threads(done_rx, router, guard_alive, &stopped))
                .map_err(EmbeddedError::Thread)?;
            return Ok(broker);
        }
        if Instant::now() >= deadline {
            return Err(EmbeddedError::NotReady { addr, waited });
        }
        thread::sleep(Duration::from_millis(10));
    }
}

/// Whether rumqttd's router thread is gone (its link's receiver dropped).
type RouterGone = Box<dyn Fn() -> bool + Send>;

/// Why one of the broker's threads ended.
#[derive(Debug)]
enum Ended {
    /// The listener's thread, and why.
    Listener(String),
    ListenerPanicked,
    /// The retained-store guard: it ends when the router is gone (its link disconnected),
    /// or when it panicked.
    Guard,
}

/// Sends its message when dropped: when the thread that holds it ends, by a panic too.
struct Report(mpsc::Sender<Ended>, Option<Ended>);

impl Drop for Report {
    fn drop(&mut self) {
        if let Some(ended) = self.1.take() {
            let _ = self.0.send(ended);
        }
    }
}

fn watchdog_gone() -> String {
    "the broker watchdog panicked".to_owned()
}

/// Watches the broker's threads: the listener's (it reports why it ended, or that it
/// panicked) and rumqttd's router (its link is disconnected when it is gone). It sleeps until
/// a thread ends (issue 22: it used to look every 500 ms): the guard's link is the router's
/// pulse, the guard ending says the router may be gone. Only once the guard has ended with
/// the router still there (a panic) does it look at the router every 500 ms, as before.
fn watch_threads(
    done: mpsc::Receiver<Ended>,
    router: Option<RouterGone>,
    mut guard_alive: bool,
    stopped: &watch::Sender<Option<String>>,
) {
    let router_gone = || router.as_ref().is_some_and(|gone| gone());
    let reason = loop {
        let ended = if guard_alive && router.is_some() {
            done.recv()
                .map_err(|_| mpsc::RecvTimeoutError::Disconnected)
        } else {
            done.recv_timeout(Duration::from_millis(500))
        };
        match ended {
            Ok(Ended::Listener(reason)) => break format!("its listener stopped: {reason}"),
            Ok(Ended::ListenerPanicked) | Err(mpsc::RecvTimeoutError::Disconnected) => {
                break "its listener thread panicked".to_owned()
            }
            Ok(Ended::Guard) | Err(mpsc::RecvTimeoutError::Timeout) => {
                guard_alive = false;
                if router_gone() {
                    break "its router thread ended".to_owned();
                }
            }
        }
    };
    tracing::error!(%reason, "embedded MQTT broker stopped");
    stopped.send_replace(Some(reason));
}

/// Debug builds only: `SERVER_ANALYTICS_TEST_BROKER_STOP_AFTER=<ms>` stops the listener after
/// that long, so a test can see what a crashed broker thread does to the publisher. Release
/// builds never stop here.
async fn test_stop() {
    #[cfg(debug_assertions)]
    if let Some(ms) = std::env::var("SERVER_ANALYTICS_TEST_BROKER_STOP_AFTER")
        .ok()
        .and_then(|v| v.parse::<u64>().ok())
    {
        tokio::time::sleep(Duration::from_millis(ms)).await;
        return;
    }
    std::future::pending::<()>().await
}
