//! Where an MQTT client connects and how: address, client id, login, TLS
//! ([`crate::tls`]), packet limits and last will, always with a clean session.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use rumqttc::{LastWill, MqttOptions, QoS};

/// Options that cannot work, naming the configuration key.
#[derive(Debug, thiserror::Error)]
pub enum OptionsError {
    #[error(transparent)]
    Tls(#[from] crate::tls::TlsError),
}

/// Largest packet read or sent when not set: rumqttc's own default is 10 KiB.
pub const DEFAULT_MAX_PACKET: usize = 256 * 1024;

/// A client's options; [`ClientOptions::build`] makes rumqttc's.
#[derive(Debug, Clone)]
pub struct ClientOptions {
    client_id: String,
    host: String,
    port: u16,
    keep_alive: Duration,
    login: Option<(String, String)>,
    /// TLS: the CA file (system roots when `None`) and its configuration key, for errors.
    tls: Option<(Option<PathBuf>, &'static str)>,
    max_incoming: usize,
    max_outgoing: usize,
    /// Topic, payload, retained; sent at QoS 1.
    last_will: Option<(String, String, bool)>,
}

impl ClientOptions {
    pub fn new(client_id: impl Into<String>, host: impl Into<String>, port: u16) -> Self {
        Self {
            client_id: client_id.into(),
            host: host.into(),
            port,
            keep_alive: Duration::from_secs(60),
            login: None,
            tls: None,
            max_incoming: DEFAULT_MAX_PACKET,
            max_outgoing: DEFAULT_MAX_PACKET,
            last_will: None,
        }
    }

    pub fn keep_alive(mut self, keep_alive: Duration) -> Self {
        self.keep_alive = keep_alive;
        self
    }

    /// User name and password, when both are set.
    pub fn login(mut self, login: Option<(&str, &str)>) -> Self {
        self.login = login.map(|(u, p)| (u.to_owned(), p.to_owned()));
        self
    }

    /// TLS trusting `ca_file` (named `key` in errors, e.g. `mqtt.ca_file`) or the system's
    /// roots; plain TCP when `enabled` is false.
    pub fn tls(mut self, enabled: bool, ca_file: Option<PathBuf>, key: &'static str) -> Self {
        self.tls = enabled.then_some((ca_file, key));
        self
    }

    /// Largest packet accepted and sent.
    pub fn max_packet_size(mut self, incoming: usize, outgoing: usize) -> Self {
        self.max_incoming = incoming;
        self.max_outgoing = outgoing;
        self
    }

    /// What the broker publishes (QoS 1) for this client when it goes without a word.
    pub fn last_will(mut self, topic: impl Into<String>, payload: &str, retain: bool) -> Self {
        self.last_will = Some((topic.into(), payload.to_owned(), retain));
        self
    }

    pub fn client_id(&self) -> &str {
        &self.client_id
    }

    /// `host:port`, as `/health` shows it.
    pub fn address(&self) -> String {
        format!("{}:{}", self.host, self.port)
    }

    /// rumqttc's options; fails on a CA file that cannot be used.
    pub fn build(&self) -> Result<MqttOptions, OptionsError> {
        let mut o = MqttOptions::new(&self.client_id, &self.host, self.port);
        o.set_keep_alive(self.keep_alive)
            .set_clean_session(true)
            .set_max_packet_size(self.max_incoming, self.max_outgoing);
        if let Some((user, pass)) = &self.login {
            o.set_credentials(user, pass);
        }
        if let Some((topic, payload, retain)) = &self.last_will {
            o.set_last_will(LastWill::new(
                topic,
                payload.as_bytes().to_vec(),
                QoS::AtLeastOnce,
                *retain,
            ));
        }
        if let Some((ca_file, key)) = &self.tls {
            let config = crate::tls::client_config(ca_file.as_deref(), key)?;
            o.set_transport(rumqttc::Transport::tls_with_config(
                rumqttc::TlsConfiguration::Rustls(Arc::new(config)),
            ));
        }
        Ok(o)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn options_carry_address_login_limits_and_will() {
        let o = ClientOptions::new("pi", "broker.lan", 1884)
            .keep_alive(Duration::from_secs(7))
            .login(Some(("u", "p")))
            .max_packet_size(2048, 1024)
            .last_will("sa/pi/status", "offline", true);
        assert_eq!(o.address(), "broker.lan:1884");
        let m = o.build().unwrap();
        assert_eq!(m.client_id(), "pi");
        assert_eq!(m.broker_address(), ("broker.lan".to_owned(), 1884));
        assert_eq!(m.keep_alive(), Duration::from_secs(7));
        assert!(m.clean_session());
        assert_eq!(m.max_packet_size(), 2048);
        let login = m.credentials().unwrap();
        assert_eq!(
            (login.username.as_str(), login.password.as_str()),
            ("u", "p")
        );
        let will = m.last_will().unwrap();
        assert_eq!(will.topic, "sa/pi/status");
        assert_eq!(will.message.as_ref(), b"offline");
        assert!(will.retain);
        assert!(matches!(m.transport(), rumqttc::Transport::Tcp));

        let plain = ClientOptions::new("pi", "h", 1)
            .login(None)
            .tls(false, None, "mqtt.ca_file");
        let m = plain.build().unwrap();
        assert!(m.credentials().is_none() && m.last_will().is_none());
        assert!(matches!(m.transport(), rumqttc::Transport::Tcp));
    }

    #[test]
    fn a_bad_ca_file_names_its_key() {
        let dir = tempfile::tempdir().unwrap();
        let missing = dir.path().join("missing.pem");
        let e = ClientOptions::new("pi", "h", 1)
            .tls(true, Some(missing.clone()), "homeassistant.ca_file")
            .build()
            .unwrap_err();
        assert!(
            e.to_string()
                .starts_with(&format!("homeassistant.ca_file {}: ", missing.display())),
            "{e}"
        );
    }
}
