//! The Home Assistant connection: the only task that polls rumqttc's event loop (through
//! `daemon_kit::mqtt::Link`). It never waits on anything but the event loop (and its backoff): what it learns goes into an
//! [`Inbox`] under a short lock and wakes the publishing task, which never waits on rumqttc's
//! request queue either (`outbox`). Two tasks that each await the other's bounded queue
//! deadlock (issue 18, item 7); these two cannot.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use daemon_kit::mqtt::Link as MqttLink;
use rumqttc::{ConnectionError, Event, Outgoing, Packet};
use tokio::sync::Notify;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use super::discovery::Context;
use super::tracker::{own_config, MAX_CONFIG_PAYLOAD, MAX_FOUND};
use super::{SharedHa, MAX_STATUS_PAYLOAD};

/// What the connection saw since the publishing task last looked.
#[derive(Debug, Default)]
pub struct News {
    /// ConnAcks (each a new clean session: subscribe, say online, resend everything).
    pub connects: u64,
    /// The session is up now.
    pub session: bool,
    /// HA said `online` on its status topic (any number of times: one resend).
    pub ha_online: bool,
    /// Retained configs of this Pi found on the broker while sweeping: (host, topic).
    pub found: Vec<(String, String)>,
    /// Configs of this Pi not kept for the sweep: beyond [`MAX_FOUND`] waiting here.
    pub found_over_cap: u64,
    /// The connection task ended (shutdown, or the client is gone).
    pub closed: bool,
    /// Publishes sent and not acknowledged yet (in this session).
    pub inflight: u16,
    /// PUBACKs so far.
    pub acked: u64,
}

/// The connection's mailbox to the publishing task: a short lock, a wake-up, no queue to
/// wait on.
#[derive(Debug, Default)]
pub struct Inbox {
    news: Mutex<News>,
    wake: Notify,
}

impl Inbox {
    fn post(&self, f: impl FnOnce(&mut News)) {
        f(&mut self.news.lock().unwrap_or_else(PoisonError::into_inner));
        self.wake.notify_one();
    }

    /// The events posted since the last call, and the connection's state now.
    pub fn take(&self) -> News {
        let mut news = self.news.lock().unwrap_or_else(PoisonError::into_inner);
        News {
            connects: std::mem::take(&mut news.connects),
            ha_online: std::mem::take(&mut news.ha_online),
            found: std::mem::take(&mut news.found),
            found_over_cap: std::mem::take(&mut news.found_over_cap),
            session: news.session,
            closed: news.closed,
            inflight: news.inflight,
            acked: news.acked,
        }
    }

    /// Resolves when something was posted (or rumqttc made room in its queue).
    pub async fn woken(&self) {
        self.wake.notified().await;
    }
}

/// Whether messages flow: the session may be up while the broker acknowledges nothing (then
/// `/health` must not say connected).
#[derive(Debug)]
pub struct Flow {
    stall_after: Duration,
    acked: u64,
    progress_at: Instant,
}

impl Flow {
    pub fn new(stall_after: Duration, now: Instant) -> Self {
        Flow {
            stall_after,
            acked: 0,
            progress_at: now,
        }
    }

    pub fn stall_after(&self) -> Duration {
        self.stall_after
    }

    /// Whether nothing was acknowledged for `stall_after` while messages were waiting
    /// (`waiting`: queued here or sent and not acknowledged). `acked`: PUBACKs so far.
    pub fn stalled(&mut self, now: Instant, acked: u64, waiting: bool) -> bool {
        if !waiting || acked != self.acked {
            self.acked = acked;
            self.progress_at = now;
        }
        now.saturating_duration_since(self.progress_at) >= self.stall_after
    }
}

/// What the connection task needs besides the event loop.
pub struct Link {
    pub ctx: Context,
    pub status_topic: String,
    pub sweeping: Arc<AtomicBool>,
    pub inbox: Arc<Inbox>,
    pub shared: SharedHa,
    pub stop: CancellationToken,
}

/// Polls the connection until stopped: reconnects with backoff, reports connections, HA's
/// `online`, the retained configs found while sweeping and every acknowledgement.
pub async fn run(eventloop: rumqttc::EventLoop, link: Link) {
    let Link {
        ctx,
        status_topic,
        sweeping,
        inbox,
        shared,
        stop,
    } = link;
    let mut conn = MqttLink::new(eventloop, shared.stats(), "Home Assistant broker");
    loop {
        let polled = tokio::select! {
            _ = stop.cancelled() => break,
            polled = conn.next() => polled,
        };
        match polled {
            // Counted by the link.
            Ok(Event::Incoming(Packet::ConnAck(_))) => {
                inbox.post(|n| {
                    n.connects += 1;
                    n.session = true;
                });
            }
            Ok(Event::Incoming(Packet::Publish(p))) if p.topic == status_topic => {
                if p.payload.as_ref() == b"online" {
                    shared.update(|h| h.ha_online_total += 1);
                    inbox.post(|n| n.ha_online = true);
                } else if p.payload.as_ref() != b"offline" || p.payload.len() > MAX_STATUS_PAYLOAD {
                    shared.update(|h| h.ignored_total += 1);
                }
            }
            Ok(Event::Incoming(Packet::Publish(p))) => {
                if !sweeping.load(Ordering::Relaxed) {
                    continue;
                }
                if p.payload.len() > MAX_CONFIG_PAYLOAD {
                    shared.update(|h| h.too_large_total += 1);
                    continue;
                }
                if let Some(host) = own_config(&ctx, &p.topic, &p.payload) {
                    let topic = p.topic;
                    inbox.post(|n| {
                        if n.found.len() < MAX_FOUND {
                            n.found.push((host, topic));
                        } else {
                            n.found_over_cap += 1;
                        }
                    });
                }
            }
            Ok(Event::Incoming(Packet::PubAck(_))) => {
                shared.update(|h| h.published_total += 1);
                let inflight = conn.inflight();
                inbox.post(|n| {
                    n.acked += 1;
                    n.inflight = inflight;
                });
            }
            // A request left rumqttc's queue: room for the publishing task.
            Ok(Event::Outgoing(Outgoing::Publish(_))) => {
                let inflight = conn.inflight();
                inbox.post(|n| n.inflight = inflight);
            }
            Ok(Event::Outgoing(Outgoing::Disconnect)) => break,
            Ok(_) => {}
            Err(ConnectionError::RequestsDone) => break,
            // Counted and logged by the link, which waits out its backoff on the next call.
            Err(_) => {
                inbox.post(|n| {
                    n.session = false;
                    n.inflight = 0;
                });
            }
        }
    }
    inbox.post(|n| {
        n.session = false;
        n.closed = true;
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_session_that_acknowledges_nothing_while_messages_wait_is_stalled() {
        let t0 = Instant::now();
        let s = |secs| t0 + Duration::from_secs(secs);
        let mut f = Flow::new(Duration::from_secs(60), t0);
        // Nothing waiting: never stalled, however long.
        assert!(!f.stalled(s(100), 0, false));
        assert!(!f.stalled(s(159), 0, true));
        assert!(f.stalled(s(160), 0, true));
        // An acknowledgement is progress.
        assert!(!f.stalled(s(161), 1, true));
        assert!(!f.stalled(s(220), 1, true));
        assert!(f.stalled(s(221), 1, true));
        // Emptied: fine again.
        assert!(!f.stalled(s(222), 1, false));
        assert!(!f.stalled(s(281), 1, true));
    }

    #[tokio::test]
    async fn news_accumulate_until_taken_and_the_session_flag_stays() {
        let inbox = Inbox::default();
        inbox.post(|n| {
            n.connects += 1;
            n.session = true;
        });
        for _ in 0..100 {
            inbox.post(|n| n.ha_online = true);
        }
        // One wake-up is stored for the next wait, however many posts.
        inbox.woken().await;
        inbox.post(|n| {
            n.acked += 1;
            n.found.push(("tower".into(), "t".into()));
        });
        let n = inbox.take();
        assert_eq!(
            (n.connects, n.session, n.ha_online, n.acked),
            (1, true, true, 1)
        );
        assert_eq!(n.found.len(), 1);
        let n = inbox.take();
        assert_eq!(
            (n.connects, n.session, n.ha_online, n.acked),
            (0, true, false, 1)
        );
        assert!(n.found.is_empty());
        inbox.post(|n| n.session = false);
        assert!(!inbox.take().session);
    }
}
