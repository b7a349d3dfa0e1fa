//! `[[remote_write]]`: a receiver, as both daemons' config files give it.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use serde::{Deserialize, Serialize};

/// Receivers at most.
pub const MAX_REMOTES: usize = 8;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RemoteWriteSettings {
    /// What `/health`, metrics and logs call it (and its cursors are kept under); empty: the
    /// URL's host and port.
    pub name: String,
    /// `http://prometheus:9090/api/v1/write`, `http://vm:8428/api/v1/write`, Mimir's
    /// `/api/v1/push`.
    pub url: String,
    pub username: Option<String>,
    pub password: Option<String>,
    pub bearer_token: Option<String>,
    /// Extra headers (`X-Scope-OrgID = "home"` for Mimir).
    pub headers: BTreeMap<String, String>,
    /// PEM CA(s) for a receiver behind a private CA.
    pub ca_file: Option<PathBuf>,
    /// Hosts to send (empty: all).
    pub hosts: Vec<String>,
    /// Registry metrics to send (empty: all).
    pub metrics: Vec<String>,
    /// Samples per request at most.
    pub max_samples_per_send: usize,
    #[serde(with = "daemon_kit::duration")]
    pub timeout: Duration,
    #[serde(with = "daemon_kit::duration")]
    pub min_backoff: Duration,
    #[serde(with = "daemon_kit::duration")]
    pub max_backoff: Duration,
    /// How long a host's samples wait at an open hole for the backfill to fill it, so that
    /// they are sent in time order.
    #[serde(with = "daemon_kit::duration")]
    pub hold: Duration,
}

impl Default for RemoteWriteSettings {
    fn default() -> Self {
        Self {
            name: String::new(),
            url: String::new(),
            username: None,
            password: None,
            bearer_token: None,
            headers: BTreeMap::new(),
            ca_file: None,
            hosts: Vec::new(),
            metrics: Vec::new(),
            max_samples_per_send: 2000,
            timeout: Duration::from_secs(30),
            min_backoff: Duration::from_millis(500),
            max_backoff: Duration::from_secs(30),
            hold: Duration::from_secs(300),
        }
    }
}

impl RemoteWriteSettings {
    /// Its name: `name`, else the URL's host and port.
    pub fn display_name(&self) -> String {
        if !self.name.is_empty() {
            return self.name.clone();
        }
        reqwest::Url::parse(&self.url)
            .ok()
            .and_then(|u| {
                let host = u.host_str()?.to_owned();
                Some(match u.port() {
                    Some(p) => format!("{host}:{p}"),
                    None => host,
                })
            })
            .unwrap_or_else(|| "remote".into())
    }

    /// A bad key and why (`remote_write[1].url`); `known_metric` tells the metric names that
    /// can be sent.
    pub fn validate(
        &self,
        i: usize,
        known_metric: &dyn Fn(&str) -> bool,
    ) -> Result<(), (String, String)> {
        let key = |k: &str| format!("remote_write[{i}].{k}");
        let url = reqwest::Url::parse(&self.url).map_err(|e| (key("url"), e.to_string()))?;
        if !matches!(url.scheme(), "http" | "https") {
            return Err((key("url"), "must be http:// or https://".into()));
        }
        if !url.username().is_empty() || url.password().is_some() {
            return Err((key("url"), "put credentials in username/password".into()));
        }
        if self.username.is_some() != self.password.is_some() {
            return Err((key("password"), "username and password go together".into()));
        }
        if self.username.is_some() && self.bearer_token.is_some() {
            return Err((
                key("bearer_token"),
                "basic auth or a bearer token, not both".into(),
            ));
        }
        let name = self.display_name();
        if name.is_empty()
            || name.len() > 64
            || !name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || "-_.:".contains(c))
        {
            return Err((key("name"), "1 to 64 of A-Z a-z 0-9 - _ . :".into()));
        }
        for h in &self.hosts {
            broker::validate_host_id(h).map_err(|e| (key("hosts"), e.to_string()))?;
        }
        for m in &self.metrics {
            if !known_metric(m) {
                let shown: String = m.chars().take(64).collect();
                return Err((
                    key("metrics"),
                    format!("{shown:?} is not a registry metric with a Prometheus family"),
                ));
            }
        }
        if !(1..=100_000).contains(&self.max_samples_per_send) {
            return Err((key("max_samples_per_send"), "must be 1..=100000".into()));
        }
        if self.min_backoff.is_zero() || self.max_backoff < self.min_backoff {
            return Err((
                key("max_backoff"),
                "must be at least min_backoff, above 0".into(),
            ));
        }
        if self.timeout < Duration::from_secs(1) {
            return Err((key("timeout"), "must be at least 1s".into()));
        }
        if self.hold > Duration::from_secs(3600) {
            return Err((key("hold"), "must be at most 1h".into()));
        }
        for k in self.headers.keys() {
            if crate::client::PROTOCOL_HEADERS.contains(&k.to_ascii_lowercase().as_str()) {
                return Err((key("headers"), format!("{k} is set by the protocol")));
            }
        }
        Ok(())
    }

    /// A copy to print: password, token and header values redacted.
    pub fn redacted(&self) -> Self {
        let mut r = self.clone();
        for secret in [&mut r.password, &mut r.bearer_token] {
            if secret.is_some() {
                *secret = Some("<redacted>".into());
            }
        }
        for v in r.headers.values_mut() {
            *v = "<redacted>".into();
        }
        r
    }

    /// The sender's view of it.
    pub fn endpoint(&self) -> crate::Endpoint {
        crate::Endpoint {
            name: self.display_name(),
            url: self.url.clone(),
            basic_auth: self.username.clone().zip(self.password.clone()),
            bearer_token: self.bearer_token.clone(),
            headers: self.headers.clone().into_iter().collect(),
            ca_file: self.ca_file.clone(),
            timeout: self.timeout,
        }
    }
}

/// Every remote valid, at most [`MAX_REMOTES`], names distinct.
pub fn validate(
    all: &[RemoteWriteSettings],
    known_metric: &dyn Fn(&str) -> bool,
) -> Result<(), (String, String)> {
    if all.len() > MAX_REMOTES {
        return Err(("remote_write".into(), format!("at most {MAX_REMOTES}")));
    }
    let mut names = std::collections::BTreeSet::new();
    for (i, r) in all.iter().enumerate() {
        r.validate(i, known_metric)?;
        if !names.insert(r.display_name()) {
            return Err((
                format!("remote_write[{i}].name"),
                format!("{:?} is taken by another remote", r.display_name()),
            ));
        }
    }
    Ok(())
}
