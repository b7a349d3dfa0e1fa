//! `broker.stall_timeout` on rumqttd's listening socket.

use std::net::SocketAddr;
use std::time::Duration;

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
pub(super) fn set_stall_timeout(addr: SocketAddr, timeout: Duration) -> Result<(), String> {
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

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::{TcpListener, TcpStream};

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
