//! What has been told to Home Assistant, and what to tell it next: given every host's state
//! once a second, the messages that announce new hosts and mounts, change availability and
//! state, and remove forgotten hosts. Pure: no I/O, no clock (staleness is judged by the
//! caller).

use std::collections::{BTreeMap, BTreeSet};

use broker::JobEnd;
use serde::Serialize;

use super::discovery::{Context, FILESYSTEM, MAX_FILESYSTEMS};
use crate::store::HostState;

/// One MQTT message to publish (QoS 1).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Message {
    pub topic: String,
    /// Empty clears a retained message (and removes an entity from HA).
    pub payload: String,
    pub retain: bool,
}

impl Message {
    pub fn retained(topic: String, payload: String) -> Self {
        Message {
            topic,
            payload,
            retain: true,
        }
    }
}

/// One host as seen this second.
#[derive(Debug, Clone, Copy)]
pub struct HostInput<'a> {
    pub name: &'a str,
    pub state: &'a HostState,
    /// Nothing new within the Pi's `health.max_age`.
    pub stale: bool,
    pub last_job: Option<&'a JobEnd>,
    /// `None` without alerts.
    pub alerts_firing: Option<usize>,
}

/// What one host has been told.
#[derive(Debug, Default)]
struct Told {
    /// Mount point → key, at most [`MAX_FILESYSTEMS`], kept once announced.
    mounts: BTreeMap<String, String>,
    /// A sample with the host's mounts has been seen (not only its history).
    mounts_known: bool,
    /// Binary sensors whose value the host has sent (announced from then on).
    shown: BTreeSet<&'static str>,
    /// Config topic → payload.
    configs: BTreeMap<String, String>,
    online: Option<bool>,
    state: Option<String>,
}

/// Counters for `/health`.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct TrackerStats {
    /// Hosts announced now.
    pub hosts: usize,
    pub hosts_announced_total: u64,
    /// Forgotten hosts whose entities were removed.
    pub hosts_removed_total: u64,
    /// Filesystems of the newest samples not announced: beyond [`MAX_FILESYSTEMS`] per host.
    pub filesystems_over_cap: usize,
    /// Configs an earlier run of this Pi left on the broker and this one removed (a host
    /// forgotten while it was down, a mount gone since).
    pub leftovers_removed_total: u64,
    /// Configs of this Pi found on the broker beyond [`MAX_FOUND`], not looked at.
    pub found_over_cap_total: u64,
}

/// Configs of this Pi found on the broker at start-up, kept at most (for the sweep).
pub const MAX_FOUND: usize = 8192;
/// The longest sensor key this Pi writes (`filesystem_used_percent_` + a mount key).
const MAX_KEY: usize = 96;

#[derive(Debug)]
pub struct Tracker {
    ctx: Context,
    hosts: BTreeMap<String, Told>,
    /// Retained configs of this Pi on the broker (its availability topic first), by host.
    found: BTreeMap<String, BTreeSet<String>>,
    resend: bool,
    /// [`Tracker::sweep`] has run: leftovers waiting for a host's mounts go as they are known.
    swept: bool,
    pub stats: TrackerStats,
}

/// Whether a config topic is a filesystem sensor's (`…/filesystem_used_percent_<key>/config`).
fn is_filesystem(topic: &str) -> bool {
    topic
        .rsplit('/')
        .nth(1)
        .and_then(|key| key.strip_prefix(FILESYSTEM.key))
        .is_some_and(|rest| rest.starts_with('_'))
}

/// Largest retained config looked at by the sweep (this Pi's are ~1 KiB).
pub const MAX_CONFIG_PAYLOAD: usize = 16 * 1024;

/// The host of a retained config that this Pi wrote: a `sensor`/`binary_sensor` config of
/// a device `server_analytics_<host>` whose first availability topic is this Pi's, with a
/// key this Pi could write. `None` for anything else (another Pi's, the rest of what HA
/// knows): the sweep leaves those alone.
pub fn own_config(ctx: &Context, topic: &str, payload: &[u8]) -> Option<String> {
    let rest = topic
        .strip_prefix(ctx.discovery_prefix.as_str())?
        .strip_prefix('/')?;
    let levels: Vec<&str> = rest.split('/').collect();
    let [component, node, key, "config"] = levels[..] else {
        return None;
    };
    // Only what this Pi could have written (bounded: a topic is at most ~200 bytes).
    let key_ok = !key.is_empty()
        && key.len() <= MAX_KEY
        && key
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_');
    if !matches!(component, "sensor" | "binary_sensor") || !key_ok {
        return None;
    }
    let host = node.strip_prefix("server_analytics_")?;
    if payload.is_empty()
        || payload.len() > MAX_CONFIG_PAYLOAD
        || broker::validate_host_id(host).is_err()
    {
        return None;
    }
    let config = serde_json::from_slice::<serde_json::Value>(payload).ok()?;
    (config["availability"][0]["topic"].as_str() == Some(&ctx.pi_availability()))
        .then(|| host.to_owned())
}

/// A host worth a device: a valid id and data (not only a retained MQTT status).
fn eligible(h: &HostInput<'_>) -> bool {
    broker::validate_host_id(h.name).is_ok() && (h.state.latest.is_some() || h.state.samples > 0)
}

impl Tracker {
    pub fn new(ctx: Context) -> Self {
        Tracker {
            ctx,
            hosts: BTreeMap::new(),
            found: BTreeMap::new(),
            resend: false,
            swept: false,
            stats: TrackerStats::default(),
        }
    }

    pub fn context(&self) -> &Context {
        &self.ctx
    }

    /// The next [`Tracker::tick`] publishes everything again (HA restarted, or a reconnect).
    pub fn resend_all(&mut self) {
        self.resend = true;
    }

    /// The messages for this second: removals first, then every config not yet told (all
    /// of them after [`Tracker::resend_all`]), then availability and state changes (after
    /// the configs, so that HA subscribes before they arrive; all three are retained).
    pub fn tick(&mut self, hosts: &[HostInput<'_>]) -> Vec<Message> {
        let resend = std::mem::take(&mut self.resend);
        let hosts: Vec<&HostInput<'_>> = hosts.iter().filter(|h| eligible(h)).collect();
        let present: BTreeSet<&str> = hosts.iter().map(|h| h.name).collect();
        let mut out = Vec::new();
        let gone: Vec<String> = self
            .hosts
            .keys()
            .filter(|h| !present.contains(h.as_str()))
            .cloned()
            .collect();
        for host in gone {
            if let Some(told) = self.hosts.remove(&host) {
                out.extend(self.removal(&host, &told));
                self.stats.hosts_removed_total += 1;
                // Leftovers still waiting for its mounts go with it.
                if let Some(left) = self.found.remove(&host) {
                    self.stats.leftovers_removed_total += left.len() as u64;
                    out.extend(
                        left.into_iter()
                            .map(|t| Message::retained(t, String::new())),
                    );
                }
            }
        }
        let mut over_cap = 0;
        for h in &hosts {
            let told = self.hosts.entry(h.name.to_owned()).or_insert_with(|| {
                self.stats.hosts_announced_total += 1;
                Told::default()
            });
            told.mounts_known |= h
                .state
                .latest
                .as_deref()
                .is_some_and(|s| s.filesystems.is_some());
            let (fresh, over) = super::state::mounts(h.state);
            over_cap += over;
            for (mount, key) in fresh {
                if told.mounts.len() < MAX_FILESYSTEMS || told.mounts.contains_key(&mount) {
                    told.mounts.insert(mount, key);
                } else {
                    over_cap += 1;
                }
            }
            if let Some(latest) = h.state.latest.as_deref() {
                told.shown.extend(super::state::binary_shown(latest));
            }
            for (topic, payload) in self.ctx.configs(h.name, &told.mounts, &told.shown) {
                if resend || told.configs.get(&topic) != Some(&payload) {
                    told.configs.insert(topic.clone(), payload.clone());
                    out.push(Message::retained(topic, payload));
                }
            }
        }
        for h in &hosts {
            let Some(told) = self.hosts.get_mut(h.name) else {
                continue;
            };
            let online = !h.stale;
            if resend || told.online != Some(online) {
                told.online = Some(online);
                let text = if online { "online" } else { "offline" };
                out.push(Message::retained(
                    self.ctx.host_availability(h.name),
                    text.into(),
                ));
            }
            let state = serde_json::Value::Object(super::state::state(
                h.state,
                &told.mounts,
                h.last_job,
                h.alerts_firing,
            ))
            .to_string();
            if resend || told.state.as_ref() != Some(&state) {
                told.state = Some(state.clone());
                out.push(Message::retained(self.ctx.state_topic(h.name), state));
            }
        }
        if self.swept && !self.found.is_empty() {
            out.extend(self.sweep_ready());
        }
        self.stats.hosts = self.hosts.len();
        self.stats.filesystems_over_cap = over_cap;
        out
    }

    /// A retained config seen on the broker: kept for [`Tracker::sweep`] when it is one of
    /// this Pi's ([`own_config`]).
    pub fn found_config(&mut self, topic: &str, payload: &[u8]) {
        if let Some(host) = own_config(&self.ctx, topic, payload) {
            self.found(host, topic.to_owned());
        }
    }

    /// A config of this Pi's on the broker for `host` ([`own_config`]), kept for the sweep
    /// (at most [`MAX_FOUND`]).
    pub fn found(&mut self, host: String, topic: String) {
        let count: usize = self.found.values().map(BTreeSet::len).sum();
        if count >= MAX_FOUND {
            self.stats.found_over_cap_total += 1;
            return;
        }
        self.found.entry(host).or_default().insert(topic);
    }

    /// Removes what an earlier run left: the found configs of hosts not told now (with their
    /// state and availability) and of mounts no longer told. Call it once the hosts the Pi
    /// knows have been told (a while after start-up: every live host has sent a sample).
    /// The filesystem configs of a host told without mounts on record (offline since the
    /// Pi started: known from its history only) wait for its first sample with mounts; every
    /// later [`Tracker::tick`] removes those gone by then.
    pub fn sweep(&mut self) -> Vec<Message> {
        self.swept = true;
        self.sweep_ready()
    }

    /// The found configs that can be judged now (see [`Tracker::sweep`]).
    fn sweep_ready(&mut self) -> Vec<Message> {
        let mut out = Vec::new();
        for (host, topics) in std::mem::take(&mut self.found) {
            let told = self.hosts.get(&host);
            let mut waiting = BTreeSet::new();
            let mut stale = Vec::new();
            for t in topics {
                match told {
                    Some(told) if told.configs.contains_key(&t) => {}
                    Some(told) if !told.mounts_known && is_filesystem(&t) => {
                        waiting.insert(t);
                    }
                    _ => stale.push(t),
                }
            }
            self.stats.leftovers_removed_total += stale.len() as u64;
            out.extend(
                stale
                    .into_iter()
                    .map(|t| Message::retained(t, String::new())),
            );
            if told.is_none() {
                out.push(Message::retained(
                    self.ctx.state_topic(&host),
                    String::new(),
                ));
                out.push(Message::retained(
                    self.ctx.host_availability(&host),
                    String::new(),
                ));
            }
            if !waiting.is_empty() {
                self.found.insert(host, waiting);
            }
        }
        out
    }

    /// Empty retained messages on every topic told for a host: HA removes its entities and
    /// device, and the broker forgets its state and availability.
    fn removal(&self, host: &str, told: &Told) -> Vec<Message> {
        let mut out: Vec<Message> = told
            .configs
            .keys()
            .map(|t| Message::retained(t.clone(), String::new()))
            .collect();
        out.push(Message::retained(self.ctx.state_topic(host), String::new()));
        out.push(Message::retained(
            self.ctx.host_availability(host),
            String::new(),
        ));
        out
    }
}
