//! rumqttc's event loop as a cancel-safe stream of events with backoff between failed
//! connects, and connection errors in words a user can act on.

use std::future::Future;
use std::pin::Pin;
use std::time::Duration;

use daemon_kit::backoff::Backoff;
use rumqttc::{ConnectionError, Event, EventLoop, Packet};

type PollFuture = Pin<Box<dyn Future<Output = (EventLoop, Result<Event, ConnectionError>)> + Send>>;

fn poll_once(mut eventloop: EventLoop) -> PollFuture {
    Box::pin(async move {
        let polled = eventloop.poll().await;
        (eventloop, polled)
    })
}

/// rumqttc's event loop, polled from the same task that queues publishes (so the order of
/// queued requests and reported packet ids is exact), with backoff and jitter between failed
/// connects (rumqttc retries at once, thousands of times a second).
///
/// [`Link::next`] is cancel-safe: an unfinished `poll` is kept, never dropped half-way.
pub(super) struct Link {
    state: LinkState,
    backoff: Backoff,
}

enum LinkState {
    Polling(PollFuture),
    Resting(Option<Box<EventLoop>>, tokio::time::Instant),
}

impl Link {
    pub(super) fn new(eventloop: EventLoop) -> Self {
        Self {
            state: LinkState::Polling(poll_once(eventloop)),
            backoff: Backoff::new(Duration::from_millis(500), Duration::from_secs(30)),
        }
    }

    pub(super) async fn next(&mut self) -> Result<Event, ConnectionError> {
        loop {
            match &mut self.state {
                LinkState::Resting(eventloop, until) => {
                    tokio::time::sleep_until(*until).await;
                    match eventloop.take() {
                        Some(el) => self.state = LinkState::Polling(poll_once(*el)),
                        None => return Err(ConnectionError::RequestsDone),
                    }
                }
                LinkState::Polling(future) => {
                    let (mut eventloop, polled) = future.await;
                    match &polled {
                        Ok(Event::Incoming(Packet::ConnAck(ack))) => {
                            if ack.code == rumqttc::ConnectReturnCode::Success {
                                self.backoff.reset();
                            }
                            // Unacknowledged publishes of an earlier connection are the
                            // publisher's to send again (events from the acked cursor), never
                            // rumqttc's: its re-sends would carry ids the tracker no longer knows.
                            eventloop.pending.clear();
                            self.state = LinkState::Polling(poll_once(eventloop));
                        }
                        Ok(_) | Err(ConnectionError::RequestsDone) => {
                            self.state = LinkState::Polling(poll_once(eventloop));
                        }
                        Err(_) => {
                            let until = tokio::time::Instant::now() + self.backoff.next_jittered();
                            self.state = LinkState::Resting(Some(Box::new(eventloop)), until);
                        }
                    }
                    return polled;
                }
            }
        }
    }
}

/// Why the connection failed, in words a user can act on.
pub(super) fn reason(error: &ConnectionError) -> String {
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
