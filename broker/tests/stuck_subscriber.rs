//! A login that subscribes to `#` and stops reading cannot hold the broker's memory: once it
//! has taken no data for `broker.stall_timeout` its connection is closed (its last will is
//! published, rumqttd frees its queue), while a subscriber that reads gets every snapshot.
//! The standalone broker binary on real sockets, the MQTT packets written by hand.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::io::{Read, Write};
use std::net::TcpStream;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

#[path = "../../publisher/tests/common/ports.rs"]
mod ports;

const BIN: &str = env!("CARGO_BIN_EXE_broker");

/// Kills the broker however the test ends.
struct Broker(Child);

impl Drop for Broker {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn start_broker(dir: &std::path::Path, table: &str) -> (Broker, u16) {
    let port = ports::free_port();
    let cfg = dir.join("broker.toml");
    std::fs::write(
        &cfg,
        format!("[broker]\nlisten = \"127.0.0.1:{port}\"\n{table}"),
    )
    .unwrap();
    let child = Command::new(BIN)
        .arg("--config")
        .arg(&cfg)
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let broker = Broker(child);
    let deadline = Instant::now() + Duration::from_secs(10);
    while TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(Instant::now() < deadline, "broker did not listen");
        std::thread::sleep(Duration::from_millis(20));
    }
    (broker, port)
}

fn packet(kind: u8, body: &[u8]) -> Vec<u8> {
    let mut out = vec![kind];
    let mut n = body.len();
    loop {
        let byte = (n % 128) as u8;
        n /= 128;
        out.push(if n > 0 { byte | 0x80 } else { byte });
        if n == 0 {
            break;
        }
    }
    out.extend_from_slice(body);
    out
}

fn string(s: &[u8], out: &mut Vec<u8>) {
    out.extend_from_slice(&(s.len() as u16).to_be_bytes());
    out.extend_from_slice(s);
}

fn publish(topic: &str, payload: &[u8]) -> Vec<u8> {
    let mut body = Vec::new();
    string(topic.as_bytes(), &mut body);
    body.extend_from_slice(payload);
    packet(0x30, &body)
}

/// One MQTT packet: its type nibble and body.
fn read_packet(sock: &mut TcpStream) -> std::io::Result<(u8, Vec<u8>)> {
    let mut kind = [0u8; 1];
    sock.read_exact(&mut kind)?;
    let (mut len, mut shift) = (0usize, 0);
    loop {
        let mut b = [0u8; 1];
        sock.read_exact(&mut b)?;
        len |= usize::from(b[0] & 0x7f) << shift;
        shift += 7;
        if b[0] & 0x80 == 0 {
            break;
        }
    }
    let mut body = vec![0u8; len];
    sock.read_exact(&mut body)?;
    Ok((kind[0] >> 4, body))
}

/// Connects (clean session, keep-alive 60 s, an optional last will at QoS 0) and subscribes
/// to `filters` at QoS 0.
fn client(port: u16, id: &str, will: Option<(&str, &str)>, filters: &[&str]) -> TcpStream {
    let mut sock = TcpStream::connect(("127.0.0.1", port)).unwrap();
    sock.set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let mut body = Vec::new();
    string(b"MQTT", &mut body);
    body.extend_from_slice(&[4, if will.is_some() { 0x06 } else { 0x02 }, 0, 60]);
    string(id.as_bytes(), &mut body);
    if let Some((topic, payload)) = will {
        string(topic.as_bytes(), &mut body);
        string(payload.as_bytes(), &mut body);
    }
    sock.write_all(&packet(0x10, &body)).unwrap();
    assert_eq!(read_packet(&mut sock).unwrap(), (2, vec![0, 0]), "CONNACK");
    if !filters.is_empty() {
        let mut body = vec![0, 1];
        for f in filters {
            string(f.as_bytes(), &mut body);
            body.push(0);
        }
        sock.write_all(&packet(0x82, &body)).unwrap();
        let (kind, _) = read_packet(&mut sock).unwrap();
        assert_eq!(kind, 9, "SUBACK");
    }
    sock
}

/// Reads publishes off `sock` on a thread, sending (topic, payload) until the socket closes.
fn reader(mut sock: TcpStream) -> mpsc::Receiver<(String, Vec<u8>)> {
    sock.set_read_timeout(None).unwrap();
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        while let Ok((kind, body)) = read_packet(&mut sock) {
            if kind != 3 || body.len() < 2 {
                continue;
            }
            let n = usize::from(u16::from_be_bytes([body[0], body[1]]));
            let topic = String::from_utf8_lossy(&body[2..2 + n]).into_owned();
            if tx.send((topic, body[2 + n..].to_vec())).is_err() {
                return;
            }
        }
    });
    rx
}

#[test]
fn a_subscriber_that_stops_reading_is_disconnected_and_the_others_get_every_snapshot() {
    let dir = tempfile::tempdir().unwrap();
    let (_broker, port) = start_broker(dir.path(), "stall_timeout = \"1s\"\n");
    // Subscribes to everything, then never reads again.
    let _stuck = client(port, "stuck", Some(("test/stuck/will", "gone")), &["#"]);
    let healthy = reader(client(
        port,
        "healthy",
        None,
        &["server-analytics/+/snapshot", "test/stuck/will"],
    ));
    let mut publisher = client(port, "flooder", None, &[]);

    // 200 KiB publishes on another topic, with a snapshot between every few, until the stuck
    // subscriber's will arrives (it has stopped reading: its buffers fill, then it stalls).
    let junk = vec![b'j'; 200 * 1024];
    let mut sent = 0u32;
    let mut got: Vec<u32> = Vec::new();
    let mut will = false;
    let deadline = Instant::now() + Duration::from_secs(30);
    while !will {
        assert!(
            Instant::now() < deadline,
            "the stuck subscriber was never disconnected ({sent} snapshots sent)"
        );
        sent += 1;
        publisher
            .write_all(&publish(
                "server-analytics/h/snapshot",
                sent.to_string().as_bytes(),
            ))
            .unwrap();
        for _ in 0..4 {
            publisher.write_all(&publish("flood/x", &junk)).unwrap();
        }
        std::thread::sleep(Duration::from_millis(20));
        while let Ok((topic, payload)) = healthy.try_recv() {
            match topic.as_str() {
                // The retained-store guard follows it with an empty publish.
                "test/stuck/will" => will |= payload == b"gone",
                _ => got.push(String::from_utf8(payload).unwrap().parse().unwrap()),
            }
        }
    }
    // Snapshots after the stuck one has gone arrive too.
    for _ in 0..5 {
        sent += 1;
        publisher
            .write_all(&publish(
                "server-analytics/h/snapshot",
                sent.to_string().as_bytes(),
            ))
            .unwrap();
    }
    while got.last() != Some(&sent) {
        let (topic, payload) = healthy
            .recv_timeout(Duration::from_secs(10))
            .unwrap_or_else(|_| panic!("healthy subscriber stopped at {:?}", got.last()));
        if topic != "test/stuck/will" {
            got.push(String::from_utf8(payload).unwrap().parse().unwrap());
        }
    }
    assert_eq!(got, (1..=sent).collect::<Vec<u32>>());
}
