//! Where the publisher connects and how: broker address (the embedded one or `[broker]`'s),
//! client id, topics, packet limits, last will, login and TLS.

use broker::{BrokerMode, BrokerSettings, Topics};
use daemon_kit::mqtt::ClientOptions;
use rumqttc::MqttOptions;

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
        Ok(ClientOptions::new(&self.client_id, &self.host, self.port)
            .keep_alive(self.settings.keep_alive)
            .max_packet_size(self.max_packet(), self.max_packet())
            // If the publisher dies without a word, an external broker says so for it.
            .last_will(&self.topics.status, "offline", true)
            .login(self.settings.credentials())
            .tls(
                self.settings.mode == BrokerMode::External && self.settings.tls,
                self.settings.ca_file.clone(),
                "broker.ca_file",
            )
            .build()?)
    }
}

#[derive(Debug, thiserror::Error)]
pub enum MqttError {
    #[error(transparent)]
    Options(#[from] daemon_kit::mqtt::OptionsError),
}
