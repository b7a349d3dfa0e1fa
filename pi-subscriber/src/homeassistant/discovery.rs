//! What the Pi tells Home Assistant about one host, as (topic, payload) pairs: pure, no I/O,
//! no clock. The sensors are one table keyed on the metric registry's names
//! (`crate::registry`); their values are the registry's and the rates module's, as
//! `/metrics` serves them, rounded.

use std::collections::{BTreeMap, BTreeSet};

use std::sync::LazyLock;

use serde_json::{json, Map, Value};

use crate::registry;

/// Filesystem sensors per host at most; mounts beyond (in mount order) are not announced.
pub const MAX_FILESYSTEMS: usize = 64;
/// Characters of a mount point shown in an entity's name at most.
const MAX_MOUNT_IN_NAME: usize = 64;

/// Where a sensor's value comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Source {
    /// The registry gauge `key`, host-wide.
    Gauge,
    /// The host-wide rate of the registry counter `key` ([`crate::rates::Derived::total`], computed at ingest).
    Rate,
    /// Boot time from the registry's `uptime_s` and the sample's time.
    BootedAt,
    /// `success` / `failed` of the host's newest finished job.
    LastJob,
    /// Alerts firing on the host (only with `[alerts]` enabled).
    AlertsFiring,
}

/// One Home Assistant sensor of every host.
#[derive(Debug, Clone, Copy)]
pub struct Sensor {
    /// The registry metric's name where there is one; the state JSON key and the end of the
    /// `unique_id`: never rename one (HA would see a new entity).
    pub key: &'static str,
    pub source: Source,
    /// `None`: the registry's title.
    pub name: Option<&'static str>,
    pub device_class: Option<&'static str>,
    pub state_class: Option<&'static str>,
    pub unit: Option<&'static str>,
    pub display_precision: Option<u8>,
    /// Decimals kept in the state JSON.
    pub round: i32,
    pub icon: Option<&'static str>,
    /// A `binary_sensor` (on while the value is above 0) rather than a `sensor`.
    pub binary: bool,
    /// Its metric's labels above 0 are an attribute (`units`: the failed units), from the
    /// state JSON's `<key>_labels`.
    pub labels_attribute: bool,
}

/// The sensor of a registry metric with Home Assistant hints.
fn of_metric(m: &registry::Metric, ha: &registry::Ha) -> Sensor {
    Sensor {
        key: m.name,
        source: match m.kind {
            registry::Kind::Gauge => Source::Gauge,
            registry::Kind::Counter(_) => Source::Rate,
        },
        name: None,
        device_class: ha.device_class,
        state_class: (!ha.binary).then_some("measurement"),
        unit: ha.unit,
        display_precision: ha.display_precision,
        round: ha.round,
        icon: ha.icon,
        binary: ha.binary,
        labels_attribute: ha.labels_attribute,
    }
}

/// Every host's sensors (filesystems apart: one per mount, [`FILESYSTEM`]): the host-wide
/// value of each registry metric that declares Home Assistant hints, then what is not a
/// metric.
pub static SENSORS: LazyLock<Vec<Sensor>> = LazyLock::new(|| {
    let mut out: Vec<Sensor> = registry::METRICS
        .iter()
        .filter(|m| m.label != Some(registry::LabelKey::Mount))
        .filter_map(|m| Some(of_metric(m, m.ha.as_ref()?)))
        .collect();
    out.extend([
        Sensor {
            key: "booted_at",
            source: Source::BootedAt,
            name: Some("Booted at"),
            device_class: Some("timestamp"),
            state_class: None,
            unit: None,
            display_precision: None,
            round: 0,
            icon: None,
            binary: false,
            labels_attribute: false,
        },
        Sensor {
            key: "last_job",
            source: Source::LastJob,
            name: Some("Last job"),
            device_class: Some("enum"),
            state_class: None,
            unit: None,
            display_precision: None,
            round: 0,
            icon: Some("mdi:briefcase-check"),
            binary: false,
            labels_attribute: false,
        },
        Sensor {
            key: "alerts_firing",
            source: Source::AlertsFiring,
            name: Some("Alerts firing"),
            device_class: None,
            state_class: Some("measurement"),
            unit: None,
            display_precision: Some(0),
            round: 0,
            icon: Some("mdi:alert"),
            binary: false,
            labels_attribute: false,
        },
    ]);
    out
});

/// The per-mount sensor (the registry's per-mount metric with Home Assistant hints); its key
/// is `<metric>_<mount key>`.
pub static FILESYSTEM: LazyLock<Sensor> = LazyLock::new(|| {
    registry::METRICS
        .iter()
        .filter(|m| m.label == Some(registry::LabelKey::Mount))
        .find_map(|m| Some(of_metric(m, m.ha.as_ref()?)))
        // Never taken: a registry test pins a per-mount metric with Home Assistant hints.
        .unwrap_or(Sensor {
            key: "filesystem",
            source: Source::Gauge,
            name: None,
            device_class: None,
            state_class: Some("measurement"),
            unit: Some("%"),
            display_precision: Some(1),
            round: 2,
            icon: Some("mdi:harddisk"),
            binary: false,
            labels_attribute: false,
        })
});

/// Where this Pi publishes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Context {
    pub discovery_prefix: String,
    /// The Pi's `mqtt.topic_prefix`.
    pub topic_prefix: String,
    /// The Pi's client id as a topic level ([`super::sanitize::topic_level`]).
    pub pi_id: String,
    /// `origin.sw` of every config (the Pi's version).
    pub version: String,
    /// Announce the `alerts_firing` sensor.
    pub alerts: bool,
}

impl Context {
    /// The Pi's own `online` / `offline` (its last will), retained.
    pub fn pi_availability(&self) -> String {
        format!("{}/pi/{}/availability", self.topic_prefix, self.pi_id)
    }

    /// `online` / `offline` of one host as the Pi judges staleness, retained.
    pub fn host_availability(&self, host: &str) -> String {
        format!("{}/{host}/ha/availability", self.topic_prefix)
    }

    /// One JSON per host and sample, retained.
    pub fn state_topic(&self, host: &str) -> String {
        format!("{}/{host}/ha/state", self.topic_prefix)
    }

    pub fn config_topic(&self, component: &str, host: &str, key: &str) -> String {
        format!(
            "{}/{component}/server_analytics_{host}/{key}/config",
            self.discovery_prefix
        )
    }

    /// Every config of one host (`mounts`: mount point → key, at most
    /// [`MAX_FILESYSTEMS`]), as (topic, JSON). A `problem` binary sensor is announced only
    /// once the host has sent its value (`shown`): a server that is no Raspberry Pi gets no
    /// under-voltage entity that is unknown forever.
    pub fn configs(
        &self,
        host: &str,
        mounts: &BTreeMap<String, String>,
        shown: &BTreeSet<&'static str>,
    ) -> Vec<(String, String)> {
        let mut out = vec![self.heartbeat(host)];
        for s in SENSORS.iter() {
            if s.source == Source::AlertsFiring && !self.alerts {
                continue;
            }
            if s.binary && !shown.contains(s.key) {
                continue;
            }
            let name = s
                .name
                .or_else(|| registry::metric(s.key).map(|m| m.title))
                .unwrap_or(s.key);
            out.push(self.sensor(host, s, s.key, name.to_owned()));
        }
        let title = registry::metric(FILESYSTEM.key).map_or("Filesystem used", |m| m.title);
        for (mount, key) in mounts.iter().take(MAX_FILESYSTEMS) {
            let shown: String = mount.chars().take(MAX_MOUNT_IN_NAME).collect();
            let key = format!("{}_{key}", FILESYSTEM.key);
            out.push(self.sensor(host, &FILESYSTEM, &key, format!("{title} {shown}")));
        }
        out
    }

    fn device(&self, host: &str) -> Value {
        json!({
            "identifiers": [format!("server_analytics_{host}")],
            "name": host,
            "manufacturer": "Server Analytics",
            "model": "publisher",
        })
    }

    fn origin(&self) -> Value {
        json!({"name": "Server Analytics", "sw": self.version})
    }

    fn sensor(&self, host: &str, s: &Sensor, key: &str, name: String) -> (String, String) {
        let mut c = Map::new();
        c.insert("name".into(), name.into());
        c.insert(
            "object_id".into(),
            format!("{}_{key}", super::sanitize::object_prefix(host)).into(),
        );
        c.insert(
            "unique_id".into(),
            format!("server_analytics_{host}_{key}").into(),
        );
        c.insert("state_topic".into(), self.state_topic(host).into());
        let template = if s.binary {
            format!("{{{{ ('ON' if value_json.{key} > 0 else 'OFF') if value_json is defined and value_json.{key} is defined else 'None' }}}}")
        } else {
            format!("{{{{ value_json.{key} if value_json is defined and value_json.{key} is defined else 'None' }}}}")
        };
        c.insert("value_template".into(), template.into());
        c.insert(
            "availability".into(),
            json!([{"topic": self.pi_availability()}, {"topic": self.host_availability(host)}]),
        );
        c.insert("availability_mode".into(), "all".into());
        let optional = [
            ("device_class", s.device_class),
            ("state_class", s.state_class),
            ("unit_of_measurement", s.unit),
            ("icon", s.icon),
        ];
        for (k, v) in optional {
            if let Some(v) = v {
                c.insert(k.into(), v.into());
            }
        }
        if let Some(p) = s.display_precision {
            c.insert("suggested_display_precision".into(), p.into());
        }
        if s.labels_attribute {
            let plural = registry::metric(s.key)
                .and_then(|m| m.label)
                .map_or("labels".to_owned(), |k| format!("{}s", k.as_str()));
            c.insert(
                "json_attributes_topic".into(),
                self.state_topic(host).into(),
            );
            c.insert(
                "json_attributes_template".into(),
                format!("{{{{ {{'{plural}': value_json.{key}_labels}} | tojson if value_json is defined and value_json.{key}_labels is defined else '{{}}' }}}}").into(),
            );
        }
        if s.source == Source::LastJob {
            c.insert("options".into(), json!(["success", "failed"]));
            c.insert(
                "json_attributes_topic".into(),
                self.state_topic(host).into(),
            );
            c.insert(
                "json_attributes_template".into(),
                "{{ value_json.last_job_detail | tojson if value_json is defined and value_json.last_job_detail is defined else '{}' }}".into(),
            );
        }
        c.insert("device".into(), self.device(host));
        c.insert("origin".into(), self.origin());
        (
            self.config_topic(if s.binary { "binary_sensor" } else { "sensor" }, host, key),
            Value::Object(c).to_string(),
        )
    }

    /// The heartbeat: on while the host is fresh; its own availability is the Pi's only, so
    /// a dead server shows "disconnected" (an automation can trigger on it), not unavailable.
    fn heartbeat(&self, host: &str) -> (String, String) {
        let c = json!({
            "name": "Heartbeat",
            "object_id": format!("{}_heartbeat", super::sanitize::object_prefix(host)),
            "unique_id": format!("server_analytics_{host}_heartbeat"),
            "state_topic": self.host_availability(host),
            "payload_on": "online",
            "payload_off": "offline",
            "device_class": "connectivity",
            "availability": [{"topic": self.pi_availability()}],
            "device": self.device(host),
            "origin": self.origin(),
        });
        (
            self.config_topic("binary_sensor", host, "heartbeat"),
            c.to_string(),
        )
    }
}
