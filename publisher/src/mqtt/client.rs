//! Where the publisher connects and how: broker address (the embedded one or `[broker]`'s),
//! client id, topics, packet limits, last will, login and TLS.

use std::sync::Arc;

use broker::{BrokerMode, BrokerSettings, Topics};
use rumqttc::{LastWill, MqttOptions, QoS};

/// Where to connect and how, resolved from the settings and, in embedded mode, the broker
/// that was started.
#[derive(Debug, Clone)]
pub struct ClientSettings {
    pub host_id: String,
    /// Broker host and port.
    pub host: String,
    pub port: u16,
    pub client_id: String,
    pub topics: Topics,
    pub settings: BrokerSettings,
}

impl ClientSettings {
    pub fn new(
        settings: &BrokerSettings,
        host_id: &str,
        embedded: Option<std::net::SocketAddr>,
    ) -> Self {
        let (host, port) = match embedded {
            Some(addr) => (addr.ip().to_string(), addr.port()),
            None => (settings.host.clone(), settings.port),
        };
        let client_id = if settings.client_id.is_empty() {
            format!("publisher-{host_id}")
        } else {
            settings.client_id.clone()
        };
        Self {
            host_id: host_id.to_owned(),
            host,
            port,
            client_id,
            topics: Topics::new(&settings.topic_prefix, host_id),
            settings: settings.clone(),
        }
    }

    /// Largest packet sent or accepted: the broker's limit, plus room for topic and header.
    fn max_packet(&self) -> usize {
        self.settings.max_payload_size + 1024
    }

    pub(super) fn options(&self) -> Result<MqttOptions, MqttError> {
        let mut options = MqttOptions::new(&self.client_id, &self.host, self.port);
        options
            .set_keep_alive(self.settings.keep_alive)
            .set_clean_session(true)
            .set_max_packet_size(self.max_packet(), self.max_packet())
            // If the publisher dies without a word, an external broker says so for it.
            .set_last_will(LastWill::new(
                &self.topics.status,
                "offline",
                QoS::AtLeastOnce,
                true,
            ));
        if let Some((user, pass)) = self.settings.credentials() {
            options.set_credentials(user, pass);
        }
        if self.settings.mode == BrokerMode::External && self.settings.tls {
            options.set_transport(rumqttc::Transport::tls_with_config(
                rumqttc::TlsConfiguration::Rustls(Arc::new(daemon_kit::tls::client_config(
                    self.settings.ca_file.as_deref(),
                    "broker.ca_file",
                )?)),
            ));
        }
        Ok(options)
    }
}

#[derive(Debug, thiserror::Error)]
pub enum MqttError {
    #[error(transparent)]
    Tls(#[from] daemon_kit::tls::TlsError),
}
