//! The embedded rumqttd broker: one MQTT 3.1.1 listener with bounded memory.
//!
//! rumqttd has no stop API, so the broker runs on its own named thread (with its own
//! single-threaded runtime, so a burst of MQTT traffic cannot starve the host's tasks) until
//! the process exits. [`spawn`] returns once the listener accepts connections, or with the
//! reason it cannot.

use std::collections::HashMap;
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::{mpsc, Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use rumqttd::local::LinkBuilder;
use rumqttd::{Config, ConnectionSettings, LinkType, Router, RouterConfig, Server, ServerSettings};

use crate::retain::{RetainPolicy, RetainStats};
use crate::settings::BrokerSettings;
use daemon_kit::stats::Stats;

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
    stopped: Arc<Mutex<Option<String>>>,
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
        self.stopped.lock().map_or_else(
            |_| Some("the broker watchdog panicked".to_owned()),
            |s| s.clone(),
        )
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
    let (done_tx, done_rx) = mpsc::channel::<String>();
    let (router_tx_out, router_rx_out) = mpsc::channel::<RouterGone>();
    thread::Builder::new()
        .name("mqtt-broker".to_owned())
        .spawn(move || {
            let Some(v4) = config.v4.as_ref().and_then(|m| m.values().next().cloned()) else {
                let _ = done_tx.send("no listener configured".to_owned());
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
                        .spawn(move || crate::retain::run(tx, rx, policy, guard_stats))
                        .map_err(|e| e.to_string())
                });
            let failed = guard.is_err();
            let _ = guard_tx.send(guard.map(drop));
            if failed {
                return;
            }
            let mut server = Server::new(v4, router_tx, rumqttd::protocol::v4::V4);
            let runtime = match tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
            {
                Ok(rt) => rt,
                Err(e) => {
                    let _ = done_tx.send(format!("cannot build its runtime: {e}"));
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
            let _ = done_tx.send(reason);
        })
        .map_err(EmbeddedError::Thread)?;

    match guard_rx.recv_timeout(Duration::from_secs(5)) {
        Ok(Ok(())) => {}
        Ok(Err(reason)) => return Err(EmbeddedError::Guard { addr, reason }),
        Err(_) => {
            let reason = done_rx
                .try_recv()
                .unwrap_or_else(|_| "it did not report within 5 s".to_owned());
            return Err(EmbeddedError::Guard { addr, reason });
        }
    }
    let stopped = Arc::new(Mutex::new(None));
    let broker = EmbeddedBroker {
        addr,
        stopped: Arc::clone(&stopped),
        retained,
    };
    let waited = Duration::from_secs(5);
    let deadline = Instant::now() + waited;
    loop {
        if let Ok(reason) = done_rx.try_recv() {
            return Err(EmbeddedError::Stopped { addr, reason });
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
                .spawn(move || watch(done_rx, router, stopped))
                .map_err(EmbeddedError::Thread)?;
            return Ok(broker);
        }
        if Instant::now() >= deadline {
            return Err(EmbeddedError::NotReady { addr, waited });
        }
        thread::sleep(Duration::from_millis(10));
    }
}

/// Sets `TCP_USER_TIMEOUT` on rumqttd's listening socket on `addr`; every connection it
/// accepts inherits it. rumqttd writes a subscriber's queue (up to 200 messages, each up to
/// `max_payload_size`) with no timeout of its own, and reads nothing from that client while
/// the write waits: a client that stops reading would hold its queue for as long as the
/// process lives. With the option the kernel closes a connection whose data has not been
/// taken (acknowledged, or its receive window left shut) for `timeout`, the write fails and
/// rumqttd drops the connection, its queue, and publishes its last will.
///
/// rumqttd binds its listener itself and does not expose it, so it is found among this
/// process's descriptors (`/proc/self/fd`: the listening socket bound to `addr`) and reached
/// through a duplicate (`pidfd_getfd`, Linux 5.6).
fn set_stall_timeout(addr: SocketAddr, timeout: Duration) -> Result<(), String> {
    use rustix::net::sockopt;
    use rustix::process::{getpid, pidfd_getfd, pidfd_open, PidfdFlags, PidfdGetfdFlags};

    let ms = u32::try_from(timeout.as_millis()).map_err(|_| "too large".to_owned())?;
    let pidfd =
        pidfd_open(getpid(), PidfdFlags::empty()).map_err(|e| format!("pidfd_open: {e}"))?;
    let fds = std::fs::read_dir("/proc/self/fd").map_err(|e| format!("/proc/self/fd: {e}"))?;
    for entry in fds.flatten() {
        let is_socket = std::fs::read_link(entry.path())
            .is_ok_and(|target| target.to_string_lossy().starts_with("socket:"));
        let Some(fd) = entry.file_name().to_str().and_then(|n| n.parse().ok()) else {
            continue;
        };
        if !is_socket {
            continue;
        }
        // Closed meanwhile, or not a socket any more: not ours.
        let Ok(dup) = pidfd_getfd(&pidfd, fd, PidfdGetfdFlags::empty()) else {
            continue;
        };
        let bound = rustix::net::getsockname(&dup)
            .ok()
            .and_then(|a| SocketAddr::try_from(a).ok());
        if bound == Some(addr) && sockopt::socket_acceptconn(&dup).unwrap_or(false) {
            sockopt::set_tcp_user_timeout(&dup, ms)
                .map_err(|e| format!("TCP_USER_TIMEOUT: {e}"))?;
            tracing::debug!(%addr, ?timeout, "stall timeout set on the broker's listener");
            return Ok(());
        }
    }
    Err("its listening socket was not found among the process's descriptors".to_owned())
}

/// Whether rumqttd's router thread is gone (its link's receiver dropped).
type RouterGone = Box<dyn Fn() -> bool + Send>;

/// Watches the broker's two threads: the listener's (it reports why it ended; a panic drops
/// the channel) and rumqttd's router (its link is disconnected when it is gone).
fn watch(
    done: mpsc::Receiver<String>,
    router: Option<RouterGone>,
    stopped: Arc<Mutex<Option<String>>>,
) {
    let reason = loop {
        match done.recv_timeout(Duration::from_millis(500)) {
            Ok(reason) => break format!("its listener stopped: {reason}"),
            Err(mpsc::RecvTimeoutError::Disconnected) => {
                break "its listener thread panicked".to_owned()
            }
            Err(mpsc::RecvTimeoutError::Timeout) => {
                if router.as_ref().is_some_and(|gone| gone()) {
                    break "its router thread ended".to_owned();
                }
            }
        }
    };
    tracing::error!(%reason, "embedded MQTT broker stopped");
    if let Ok(mut s) = stopped.lock() {
        *s = Some(reason);
    }
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_stall_timeout_is_set_on_the_listener_bound_to_the_address_only() {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let other = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        set_stall_timeout(addr, Duration::from_millis(2500)).unwrap();
        assert_eq!(
            rustix::net::sockopt::tcp_user_timeout(&listener).unwrap(),
            2500
        );
        assert_eq!(rustix::net::sockopt::tcp_user_timeout(&other).unwrap(), 0);
        // An accepted connection inherits it.
        let _client = TcpStream::connect(addr).unwrap();
        let (accepted, _) = listener.accept().unwrap();
        assert_eq!(
            rustix::net::sockopt::tcp_user_timeout(&accepted).unwrap(),
            2500
        );
        drop(listener);
        assert!(set_stall_timeout(addr, Duration::from_secs(1)).is_err());
    }
}
