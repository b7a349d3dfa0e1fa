//! rumqttc's event loop as a cancel-safe stream of events, with backoff and jitter between
//! failed connects, the link's counters and connection errors in words a user can act on.

use std::future::Future;
use std::pin::Pin;
use std::time::Duration;

use rumqttc::{ConnectionError, Event, EventLoop, Packet};
use tokio::time::Instant;

use super::LinkCounters;
use crate::backoff::Backoff;
use crate::stats::Stats;

/// First wait after a failed connect; doubles per failure.
pub const FIRST_BACKOFF: Duration = Duration::from_millis(500);
/// Longest wait between two connects.
pub const MAX_BACKOFF: Duration = Duration::from_secs(30);
/// A connection that stayed up this long resets the backoff when it drops; one that dies
/// sooner (a broker that accepts and then closes, a refused login after the ConnAck) keeps
/// doubling it, so it is not retried every 0.5 s.
pub const STABLE_AFTER: Duration = Duration::from_secs(30);

/// When to try again: [`Backoff`] between failed connects, reset only by a connection that
/// stayed up [`STABLE_AFTER`] (not by every ConnAck).
#[derive(Debug, Clone)]
pub struct Pacing {
    backoff: Backoff,
    stable_after: Duration,
    up_since: Option<Instant>,
}

impl Default for Pacing {
    fn default() -> Self {
        Self::new(Backoff::new(FIRST_BACKOFF, MAX_BACKOFF), STABLE_AFTER)
    }
}

impl Pacing {
    pub fn new(backoff: Backoff, stable_after: Duration) -> Self {
        Self {
            backoff,
            stable_after,
            up_since: None,
        }
    }

    /// A ConnAck at `now`.
    pub fn connected(&mut self, now: Instant) {
        self.up_since = Some(now);
    }

    /// A connect failed or the connection dropped at `now`: the wait before the next
    /// attempt (`jitter` in `0.0..1.0`, see [`Backoff::next`]).
    pub fn failed(&mut self, now: Instant, jitter: f64) -> Duration {
        let stayed_up = self
            .up_since
            .take()
            .is_some_and(|t| now.saturating_duration_since(t) >= self.stable_after);
        if stayed_up {
            self.backoff.reset();
        }
        self.backoff.next(jitter)
    }
}

type PollFuture = Pin<Box<dyn Future<Output = (EventLoop, Result<Event, ConnectionError>)> + Send>>;

fn poll_once(mut eventloop: EventLoop) -> PollFuture {
    Box::pin(async move {
        let polled = eventloop.poll().await;
        (eventloop, polled)
    })
}

enum State {
    Polling(PollFuture),
    Resting(Option<Box<EventLoop>>, Instant),
}

/// rumqttc's event loop, polled by [`Link::next`] from the caller's own task (so the order of
/// queued requests and reported events is exact), with [`Pacing`] between failed connects
/// (rumqttc retries at once, thousands of times a second). It counts connects and errors in
/// the caller's [`Stats`] and logs an outage once.
///
/// [`Link::next`] is cancel-safe: an unfinished `poll` or wait is kept, never dropped
/// half-way, so it can sit in a `select!` with anything else.
pub struct Link<S> {
    state: State,
    pacing: Pacing,
    stats: Stats<S>,
    /// What is connected to, in log lines ("MQTT broker").
    what: &'static str,
    /// What still works meanwhile, in the outage's log line.
    meanwhile: &'static str,
    outage_logged: bool,
    drop_unsent: bool,
    inflight: u16,
    retry_in: Option<Duration>,
}

impl<S> std::fmt::Debug for Link<S> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Link")
            .field("what", &self.what)
            .field("inflight", &self.inflight)
            .field("retry_in", &self.retry_in)
            .finish_non_exhaustive()
    }
}

impl<S: LinkCounters + Clone> Link<S> {
    /// Drives `eventloop`, counting into `stats`; `what` names the broker in log lines.
    pub fn new(eventloop: EventLoop, stats: Stats<S>, what: &'static str) -> Self {
        Self {
            state: State::Polling(poll_once(eventloop)),
            pacing: Pacing::default(),
            stats,
            what,
            meanwhile: "",
            outage_logged: false,
            drop_unsent: false,
            inflight: 0,
            retry_in: None,
        }
    }

    /// Other pacing than the default (tests).
    pub fn with_pacing(mut self, pacing: Pacing) -> Self {
        self.pacing = pacing;
        self
    }

    /// What carries on during an outage, for its log line ("HTTP polling covers the gap").
    pub fn meanwhile(mut self, note: &'static str) -> Self {
        self.meanwhile = note;
        self
    }

    /// On each new connection, forget the requests rumqttc kept from the last one (the
    /// caller sends again what matters, with ids it knows).
    pub fn drop_unsent_on_reconnect(mut self) -> Self {
        self.drop_unsent = true;
        self
    }

    /// Publishes sent and not acknowledged, as of the last event.
    pub fn inflight(&self) -> u16 {
        self.inflight
    }

    /// The wait chosen after the last failure.
    pub fn retry_in(&self) -> Option<Duration> {
        self.retry_in
    }

    /// The next event, or the error of a failed connect (after which the next call first
    /// waits out the backoff). `Err(RequestsDone)`: every client handle is gone.
    pub async fn next(&mut self) -> Result<Event, ConnectionError> {
        loop {
            match &mut self.state {
                State::Resting(eventloop, until) => {
                    tokio::time::sleep_until(*until).await;
                    match eventloop.take() {
                        Some(el) => self.state = State::Polling(poll_once(*el)),
                        None => return Err(ConnectionError::RequestsDone),
                    }
                }
                State::Polling(future) => {
                    let (mut eventloop, polled) = future.await;
                    self.inflight = eventloop.state.inflight();
                    match &polled {
                        Ok(Event::Incoming(Packet::ConnAck(ack)))
                            if ack.code == rumqttc::ConnectReturnCode::Success =>
                        {
                            if self.drop_unsent {
                                eventloop.pending.clear();
                            }
                            self.connected();
                            self.state = State::Polling(poll_once(eventloop));
                        }
                        Ok(_) | Err(ConnectionError::RequestsDone) => {
                            self.state = State::Polling(poll_once(eventloop));
                        }
                        Err(error) => {
                            let wait = self.failed(error);
                            self.inflight = 0;
                            let until = Instant::now() + wait;
                            self.state = State::Resting(Some(Box::new(eventloop)), until);
                        }
                    }
                    return polled;
                }
            }
        }
    }

    fn connected(&mut self) {
        self.pacing.connected(Instant::now());
        self.outage_logged = false;
        tracing::info!("{} connected", self.what);
        self.stats.update(|s| {
            let s = s.link_stats();
            s.connected = true;
            s.connects_total += 1;
            s.last_error = None;
        });
    }

    fn failed(&mut self, error: &ConnectionError) -> Duration {
        let was_connected = self.pacing.up_since.is_some();
        let wait = self.pacing.failed(Instant::now(), fastrand::f64());
        self.retry_in = Some(wait);
        let reason = reason(error);
        if was_connected || !self.outage_logged {
            let meanwhile = if self.meanwhile.is_empty() {
                String::new()
            } else {
                format!(" ({})", self.meanwhile)
            };
            tracing::warn!(%reason, "{} unreachable; retrying with backoff{meanwhile}", self.what);
            self.outage_logged = true;
        } else {
            tracing::debug!(%reason, ?wait, "{} connect failed", self.what);
        }
        self.stats.update(|s| {
            let s = s.link_stats();
            s.connected = false;
            s.connect_errors_total += 1;
            s.last_error = Some(reason);
        });
        wait
    }
}

/// Why the connection failed, in words a user can act on.
pub fn reason(error: &ConnectionError) -> String {
    match error {
        // rumqttd refuses a bad password by closing the socket, which reads as "connection
        // aborted": say what it may mean.
        ConnectionError::MqttState(rumqttc::StateError::ConnectionAborted) => {
            "connection closed by the broker (wrong credentials, or a packet over its size limit?)"
                .to_owned()
        }
        other => other.to_string(),
    }
}

#[cfg(test)]
#[path = "link_tests.rs"]
mod tests;
