//! `[homeassistant]`: MQTT discovery of every host the Pi knows (`crate::homeassistant`).
//! The broker is the Pi's `[mqtt]` one unless `host` is given (HA's own mosquitto).

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use super::MqttSettings;

/// Longest `discovery_prefix`, in bytes.
pub const MAX_DISCOVERY_PREFIX: usize = 64;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct HomeAssistantSettings {
    pub enabled: bool,
    /// HA's discovery prefix (its MQTT integration's default is `homeassistant`).
    pub discovery_prefix: String,
    /// HA's broker; absent: the Pi's `[mqtt]` broker, with its port, login and TLS.
    pub host: Option<String>,
    /// With `host`: 1883, or 8883 with `tls`.
    pub port: Option<u16>,
    pub username: Option<String>,
    pub password: Option<String>,
    /// With `host`: connect with TLS (default false).
    pub tls: Option<bool>,
    /// With `host` and `tls`: a PEM file of CA certificates to trust instead of the system's.
    pub ca_file: Option<PathBuf>,
}

impl Default for HomeAssistantSettings {
    fn default() -> Self {
        Self {
            enabled: false,
            discovery_prefix: "homeassistant".into(),
            host: None,
            port: None,
            username: None,
            password: None,
            tls: None,
            ca_file: None,
        }
    }
}

type Invalid = (&'static str, String);

impl HomeAssistantSettings {
    /// The broker to publish to: HA's own when `host` is set, else the Pi's `[mqtt]` one; the
    /// client id is the Pi's with `-ha` (one id per connection, or they kick each other off).
    pub fn broker(&self, mqtt: &MqttSettings) -> MqttSettings {
        let mut b = mqtt.clone();
        b.client_id = format!("{}-ha", mqtt.client_id);
        if let Some(host) = &self.host {
            let tls = self.tls.unwrap_or(false);
            b.host = host.clone();
            b.port = self.port.unwrap_or(if tls { 8883 } else { 1883 });
            b.username = self.username.clone();
            b.password = self.password.clone();
            b.tls = tls;
            b.ca_file = self.ca_file.clone();
        }
        b
    }

    /// Checks every key, naming the one at fault.
    pub fn validate(&self, mqtt: &MqttSettings) -> Result<(), Invalid> {
        let bad = |key, reason: &str| Err((key, reason.to_owned()));
        let p = &self.discovery_prefix;
        if p.is_empty()
            || p.len() > MAX_DISCOVERY_PREFIX
            || p.contains(['+', '#', '\0'])
            || p.starts_with('/')
            || p.ends_with('/')
        {
            return Err((
                "homeassistant.discovery_prefix",
                format!(
                    "{:?} is not a topic prefix (1 to {MAX_DISCOVERY_PREFIX} bytes, without + # NUL or a leading/trailing /)",
                    p.chars().take(80).collect::<String>()
                ),
            ));
        }
        match &self.host {
            None => {
                let own = [
                    ("homeassistant.port", self.port.is_some()),
                    ("homeassistant.username", self.username.is_some()),
                    ("homeassistant.password", self.password.is_some()),
                    ("homeassistant.tls", self.tls.is_some()),
                    ("homeassistant.ca_file", self.ca_file.is_some()),
                ];
                if let Some((key, _)) = own.into_iter().find(|(_, set)| *set) {
                    return bad(key, "is only used with homeassistant.host (without it, the [mqtt] broker settings are used)");
                }
            }
            Some(host) => {
                if host.is_empty() || host.len() > 253 || host.chars().any(char::is_control) {
                    return bad(
                        "homeassistant.host",
                        "must be a host name or address (1 to 253 bytes)",
                    );
                }
                if self.username.is_some() != self.password.is_some() {
                    return bad(
                        "homeassistant.password",
                        "username and password go together",
                    );
                }
                if self.ca_file.is_some() && self.tls != Some(true) {
                    return bad(
                        "homeassistant.ca_file",
                        "is only used with homeassistant.tls = true",
                    );
                }
            }
        }
        if self.enabled {
            let b = self.broker(mqtt);
            if b.host.is_empty() {
                return bad("homeassistant.host", "must be set when mqtt.host is empty");
            }
            if b.tls {
                let key = if self.host.is_some() {
                    "homeassistant.ca_file"
                } else {
                    "mqtt.ca_file"
                };
                daemon_kit::tls::client_config(b.ca_file.as_deref(), key)
                    .map_err(|e| (key, e.to_string()))?;
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(text: &str) -> Result<HomeAssistantSettings, Invalid> {
        let s: HomeAssistantSettings = toml::from_str(text).map_err(|e| ("toml", e.to_string()))?;
        s.validate(&MqttSettings::default()).map(|()| s)
    }

    #[test]
    fn off_by_default_and_the_pis_broker_is_used_without_a_host() {
        let s = check("").unwrap();
        assert!(!s.enabled);
        assert_eq!(s.discovery_prefix, "homeassistant");
        let mqtt = MqttSettings {
            client_id: "pi-subscriber-pi-0123".into(),
            username: Some("pi".into()),
            password: Some("secret".into()),
            ..MqttSettings::default()
        };
        let b = s.broker(&mqtt);
        assert_eq!(
            (b.host.as_str(), b.port, b.username.as_deref(), b.tls),
            ("127.0.0.1", 1883, Some("pi"), false)
        );
        assert_eq!(b.client_id, "pi-subscriber-pi-0123-ha");
    }

    #[test]
    fn its_own_broker_with_tls_defaults_to_8883() {
        let s = check(
            "enabled = true\nhost = \"ha.lan\"\ntls = true\nusername = \"u\"\npassword = \"p\"\n",
        )
        .unwrap();
        let b = s.broker(&MqttSettings::default());
        assert_eq!(
            (b.host.as_str(), b.port, b.tls, b.password.as_deref()),
            ("ha.lan", 8883, true, Some("p"))
        );
        assert_eq!(
            check("host = \"ha.lan\"\nport = 1884\n")
                .unwrap()
                .broker(&MqttSettings::default())
                .port,
            1884
        );
    }

    #[test]
    fn bad_values_name_their_key() {
        let key = |t: &str| check(t).unwrap_err().0;
        assert_eq!(
            key("discovery_prefix = \"\""),
            "homeassistant.discovery_prefix"
        );
        assert_eq!(
            key("discovery_prefix = \"ha/#\""),
            "homeassistant.discovery_prefix"
        );
        assert_eq!(
            key("discovery_prefix = \"ha/+/x\""),
            "homeassistant.discovery_prefix"
        );
        assert_eq!(
            key("discovery_prefix = \"a\\u0000b\""),
            "homeassistant.discovery_prefix"
        );
        assert_eq!(
            key(&format!("discovery_prefix = \"{}\"", "h".repeat(65))),
            "homeassistant.discovery_prefix"
        );
        assert!(check(&format!("discovery_prefix = \"{}\"", "h".repeat(64))).is_ok());
        assert_eq!(key("port = 1884"), "homeassistant.port");
        assert_eq!(key("host = \"\""), "homeassistant.host");
        assert_eq!(
            key("host = \"ha\"\nusername = \"u\""),
            "homeassistant.password"
        );
        assert_eq!(
            key("host = \"ha\"\nca_file = \"/x.pem\""),
            "homeassistant.ca_file"
        );
        assert_eq!(
            key("enabled = true\nhost = \"ha\"\ntls = true\nca_file = \"/nonexistent/ca.pem\""),
            "homeassistant.ca_file"
        );
        assert_eq!(key("hots = \"x\""), "toml");
    }

    #[test]
    fn check_config_prints_the_section_with_the_password_redacted() {
        let mut s = crate::config::Settings::default();
        s.homeassistant.host = Some("ha.lan".into());
        s.homeassistant.username = Some("pi".into());
        s.homeassistant.password = Some("hunter2".into());
        let text = s.to_toml();
        assert!(text.contains("[homeassistant]\nenabled = false\ndiscovery_prefix = \"homeassistant\"\nhost = \"ha.lan\"\nusername = \"pi\"\npassword = \"<redacted>\"\n"), "{text}");
        assert!(!text.contains("hunter2"));
    }
}
