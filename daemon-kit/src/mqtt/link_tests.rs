use std::time::Duration;

use rumqttc::{AsyncClient, Event, Packet};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::time::Instant;

use super::*;
use crate::mqtt::{ClientOptions, LinkStats};

fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

/// Issue 19 item 5: a connection that dies right after its ConnAck does not reset the
/// backoff (it would be retried every 0.5 s forever); one that stayed up a while does.
#[test]
fn only_a_connection_that_stayed_up_resets_the_backoff() {
    let t0 = Instant::now();
    let at = |n: u64| t0 + ms(n);
    let mut p = Pacing::new(Backoff::new(ms(500), Duration::from_secs(30)), ms(30_000));
    assert_eq!(p.failed(at(0), 1.0), ms(500));
    assert_eq!(p.failed(at(500), 1.0), ms(1000));
    // Connected, then dropped a second later: still doubling.
    p.connected(at(1500));
    assert_eq!(p.failed(at(2500), 1.0), ms(2000));
    p.connected(at(4500));
    assert_eq!(p.failed(at(34_499), 1.0), ms(4000));
    // Up for 30 s: back to the first step.
    p.connected(at(40_000));
    assert_eq!(p.failed(at(70_000), 1.0), ms(500));
    // The next failure without a connect in between doubles again.
    assert_eq!(p.failed(at(70_500), 0.0), ms(500));
    assert_eq!(p.failed(at(71_000), 1.0), ms(2000));
}

/// A broker that acknowledges every connect and closes the connection at once.
async fn ack_and_close() -> u16 {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(async move {
        while let Ok((mut socket, _)) = listener.accept().await {
            let mut connect = [0u8; 256];
            let _ = socket.read(&mut connect).await;
            let _ = socket.write_all(&[0x20, 0x02, 0x00, 0x00]).await;
        }
    });
    port
}

#[tokio::test]
async fn counts_connects_and_errors_and_backs_off_across_short_connections() {
    let port = ack_and_close().await;
    let options = ClientOptions::new("link-test", "127.0.0.1", port)
        .build()
        .unwrap();
    let (client, eventloop) = AsyncClient::new(options, 4);
    let stats: Stats<LinkStats> = Stats::default();
    let mut link = Link::new(eventloop, stats.clone(), "test broker");
    let mut waits = Vec::new();
    while waits.len() < 3 {
        match tokio::time::timeout(Duration::from_secs(10), link.next())
            .await
            .expect("an event within 10 s")
        {
            Ok(Event::Incoming(Packet::ConnAck(_))) => {
                let s = stats.snapshot();
                assert!(s.connected);
                assert_eq!(s.connects_total, waits.len() as u64 + 1);
                assert_eq!(s.last_error, None);
            }
            Ok(_) => {}
            Err(_) => waits.push(link.retry_in().unwrap()),
        }
    }
    let s = stats.snapshot();
    assert_eq!(
        (s.connected, s.connects_total, s.connect_errors_total),
        (false, 3, 3)
    );
    assert!(s.last_error.is_some());
    // 50-100 % of 0.5 s, 1 s, 2 s: the ConnAcks in between did not reset the backoff.
    assert!(waits[0] >= ms(250) && waits[0] <= ms(500), "{waits:?}");
    assert!(waits[1] >= ms(500) && waits[1] <= ms(1000), "{waits:?}");
    assert!(waits[2] >= ms(1000) && waits[2] <= ms(2000), "{waits:?}");
    drop(client);
}

#[tokio::test]
async fn a_refused_connect_is_counted_with_its_reason_and_never_as_a_connect() {
    // A port nobody listens on (bound, then closed).
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let options = ClientOptions::new("link-test", "127.0.0.1", port)
        .build()
        .unwrap();
    let (_client, eventloop) = AsyncClient::new(options, 4);
    let stats: Stats<LinkStats> = Stats::default();
    let mut link = Link::new(eventloop, stats.clone(), "test broker");
    assert!(link.next().await.is_err());
    let s = stats.snapshot();
    assert_eq!(
        (s.connected, s.connects_total, s.connect_errors_total),
        (false, 0, 1)
    );
    assert!(
        s.last_error
            .as_deref()
            .unwrap_or_default()
            .to_lowercase()
            .contains("refused"),
        "{s:?}"
    );
}

/// `next` sits in `select!`s that drop it whenever something else is ready first: a dropped
/// call loses no event and no connect, and the backoff wait is kept, not restarted.
#[tokio::test]
async fn next_dropped_half_way_loses_nothing() {
    let port = ack_and_close().await;
    let options = ClientOptions::new("link-test", "127.0.0.1", port)
        .build()
        .unwrap();
    let (_client, eventloop) = AsyncClient::new(options, 4);
    let stats: Stats<LinkStats> = Stats::default();
    let mut link = Link::new(eventloop, stats.clone(), "test broker");
    let (mut connacks, mut errors, mut dropped) = (0u64, 0u64, 0u64);
    let deadline = Instant::now() + Duration::from_secs(20);
    while errors < 2 {
        assert!(
            Instant::now() < deadline,
            "{connacks} ConnAcks, {errors} errors"
        );
        match tokio::time::timeout(ms(1), link.next()).await {
            Err(_) => dropped += 1,
            Ok(Ok(Event::Incoming(Packet::ConnAck(_)))) => connacks += 1,
            Ok(Ok(_)) => {}
            Ok(Err(_)) => errors += 1,
        }
    }
    assert!(dropped > 10, "the waits were interrupted ({dropped})");
    let s = stats.snapshot();
    assert_eq!(
        (connacks, s.connects_total, s.connect_errors_total),
        (2, 2, 2)
    );
}
