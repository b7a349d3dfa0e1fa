//! One receiver: its URL, credentials, extra headers and CA, and what it answered to a POST.

use std::path::PathBuf;
use std::time::{Duration, SystemTime};

use crate::backoff::parse_retry_after;

/// How much of a receiver's error message is kept.
const MAX_MESSAGE: usize = 512;

/// Headers the protocol sets; an extra header may not replace them.
pub const PROTOCOL_HEADERS: [&str; 4] = [
    "content-encoding",
    "content-type",
    "user-agent",
    "x-prometheus-remote-write-version",
];

/// A receiver, as configured.
#[derive(Debug, Clone, Default)]
pub struct Endpoint {
    /// What logs, `/health` and metrics call it.
    pub name: String,
    pub url: String,
    pub basic_auth: Option<(String, String)>,
    pub bearer_token: Option<String>,
    /// Extra headers (`X-Scope-OrgID` for Mimir).
    pub headers: Vec<(String, String)>,
    /// A PEM file of the CA(s) that sign the receiver's certificate, beside the system's.
    pub ca_file: Option<PathBuf>,
    pub timeout: Duration,
}

#[derive(Debug, thiserror::Error)]
pub enum EndpointError {
    #[error("remote_write {name}: ca_file {path}: {why}")]
    CaFile {
        name: String,
        path: PathBuf,
        why: String,
    },
    #[error("remote_write {name}: header {header:?}: {why}")]
    Header {
        name: String,
        header: String,
        why: String,
    },
    #[error("remote_write {name}: url {url:?}: {why}")]
    Url {
        name: String,
        url: String,
        why: String,
    },
}

/// What became of one POST.
#[derive(Debug, Clone, PartialEq)]
pub enum Outcome {
    /// 2xx: the receiver has every sample of the batch.
    Sent,
    /// 5xx, 429 or no answer: send the same batch again, after `after` when it said.
    Retry {
        after: Option<Duration>,
        why: String,
    },
    /// Any other status: the batch will never be accepted; drop it.
    Rejected { status: u16, message: String },
}

#[derive(Debug, Clone)]
pub struct Client {
    http: reqwest::Client,
    endpoint: Endpoint,
    headers: reqwest::header::HeaderMap,
}

impl Client {
    pub fn new(e: &Endpoint) -> Result<Client, EndpointError> {
        use reqwest::header::{HeaderMap, HeaderName, HeaderValue};
        let url_err = |why: String| EndpointError::Url {
            name: e.name.clone(),
            url: e.url.clone(),
            why,
        };
        let url = reqwest::Url::parse(&e.url).map_err(|x| url_err(x.to_string()))?;
        if !matches!(url.scheme(), "http" | "https") {
            return Err(url_err("must be http:// or https://".into()));
        }
        let mut headers = HeaderMap::new();
        for (k, v) in &e.headers {
            let bad = |why: &str| EndpointError::Header {
                name: e.name.clone(),
                header: k.clone(),
                why: why.to_owned(),
            };
            if PROTOCOL_HEADERS.contains(&k.to_ascii_lowercase().as_str()) {
                return Err(bad("set by the protocol; it cannot be replaced"));
            }
            let name =
                HeaderName::from_bytes(k.as_bytes()).map_err(|_| bad("not a header name"))?;
            let mut value = HeaderValue::from_str(v).map_err(|_| bad("not a header value"))?;
            value.set_sensitive(true);
            headers.insert(name, value);
        }
        let fixed = [
            ("content-encoding", "snappy"),
            ("content-type", "application/x-protobuf"),
            ("x-prometheus-remote-write-version", "0.1.0"),
            (
                "user-agent",
                concat!("server-analytics/", env!("CARGO_PKG_VERSION")),
            ),
        ];
        for (k, v) in fixed {
            headers.insert(HeaderName::from_static(k), HeaderValue::from_static(v));
        }
        let mut builder = reqwest::Client::builder()
            .timeout(e.timeout.max(Duration::from_secs(1)))
            .connect_timeout(Duration::from_secs(10));
        if let Some(path) = &e.ca_file {
            let ca = |why: String| EndpointError::CaFile {
                name: e.name.clone(),
                path: path.clone(),
                why,
            };
            let pem = std::fs::read(path).map_err(|x| ca(x.to_string()))?;
            for cert in
                reqwest::Certificate::from_pem_bundle(&pem).map_err(|x| ca(x.to_string()))?
            {
                builder = builder.add_root_certificate(cert);
            }
        }
        let http = builder.build().map_err(|x| url_err(x.to_string()))?;
        Ok(Client {
            http,
            endpoint: e.clone(),
            headers,
        })
    }

    pub fn endpoint(&self) -> &Endpoint {
        &self.endpoint
    }

    /// POSTs one encoded batch.
    pub async fn send(&self, body: Vec<u8>) -> Outcome {
        let mut req = self
            .http
            .post(&self.endpoint.url)
            .headers(self.headers.clone())
            .body(body);
        if let Some((user, password)) = &self.endpoint.basic_auth {
            req = req.basic_auth(user, Some(password));
        } else if let Some(token) = &self.endpoint.bearer_token {
            req = req.bearer_auth(token);
        }
        let resp = match req.send().await {
            Ok(r) => r,
            Err(e) => {
                return Outcome::Retry {
                    after: None,
                    why: without_url(&e),
                }
            }
        };
        let status = resp.status();
        if status.is_success() {
            return Outcome::Sent;
        }
        let after = resp
            .headers()
            .get(reqwest::header::RETRY_AFTER)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| parse_retry_after(v, SystemTime::now()));
        let message = message(resp).await;
        if status.is_server_error() || status.as_u16() == 429 {
            Outcome::Retry {
                after,
                why: format!("HTTP {}: {message}", status.as_u16()),
            }
        } else {
            Outcome::Rejected {
                status: status.as_u16(),
                message,
            }
        }
    }
}

/// The first bytes of a receiver's answer, on one line: at most [`MAX_MESSAGE`] are read,
/// whatever the receiver sends.
async fn message(mut resp: reqwest::Response) -> String {
    let mut bytes = Vec::new();
    while bytes.len() < MAX_MESSAGE {
        match resp.chunk().await {
            Ok(Some(chunk)) => {
                bytes.extend_from_slice(&chunk[..chunk.len().min(MAX_MESSAGE - bytes.len())])
            }
            _ => break,
        }
    }
    let text = String::from_utf8_lossy(&bytes);
    text.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// A transport error without its URL (which may hold credentials).
fn without_url(e: &reqwest::Error) -> String {
    let kind = if e.is_timeout() {
        "timed out"
    } else if e.is_connect() {
        "cannot connect"
    } else {
        "request failed"
    };
    let mut source = std::error::Error::source(e);
    let mut last = None;
    while let Some(s) = source {
        last = Some(s.to_string());
        source = s.source();
    }
    match last {
        Some(cause) => format!("{kind}: {cause}"),
        None => kind.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use std::io::{Read, Write};

    /// A receiver on a real socket that answers once with `status` and a body of `len` bytes;
    /// `written` counts the body bytes the client let it write.
    fn answer_once(status: &str, len: usize) -> String {
        answer_counting(status, len, Default::default())
    }

    fn answer_counting(
        status: &str,
        len: usize,
        written: std::sync::Arc<std::sync::atomic::AtomicUsize>,
    ) -> String {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = l.local_addr().unwrap();
        let status = status.to_owned();
        std::thread::spawn(move || {
            let (mut s, _) = l.accept().unwrap();
            let mut buf = [0u8; 65536];
            let _ = s.read(&mut buf);
            let head =
                format!("HTTP/1.1 {status}\r\ncontent-length: {len}\r\nconnection: close\r\n\r\n");
            let _ = s.write_all(head.as_bytes());
            let chunk = vec![b'x'; 65536];
            let mut left = len;
            while left > 0 {
                let n = left.min(chunk.len());
                if s.write_all(&chunk[..n]).is_err() {
                    break;
                }
                written.fetch_add(n, std::sync::atomic::Ordering::Relaxed);
                left -= n;
            }
        });
        format!("http://{addr}/api/v1/write")
    }

    #[tokio::test]
    async fn a_huge_refusal_is_read_only_as_far_as_the_message_goes() {
        let written = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let url = answer_counting("400 Bad Request", 256 << 20, written.clone());
        let c = Client::new(&Endpoint {
            name: "t".into(),
            url,
            timeout: Duration::from_secs(10),
            ..Endpoint::default()
        })
        .unwrap();
        match c.send(vec![1, 2, 3]).await {
            Outcome::Rejected { status, message } => {
                assert_eq!(status, 400);
                assert_eq!(message.len(), MAX_MESSAGE);
            }
            other => panic!("{other:?}"),
        }
        // The connection was dropped after the message: the receiver could not push its
        // 256 MiB (socket buffers take a few MiB at most).
        std::thread::sleep(Duration::from_millis(300));
        let n = written.load(std::sync::atomic::Ordering::Relaxed);
        assert!(n < 32 << 20, "{n} bytes read from a refusal");
    }

    #[tokio::test]
    async fn retry_after_and_5xx_are_retried_and_bad_config_names_its_key() {
        let url = answer_once("429 Too Many Requests", 0);
        let c = Client::new(&Endpoint {
            name: "t".into(),
            url,
            timeout: Duration::from_secs(10),
            ..Endpoint::default()
        })
        .unwrap();
        assert!(matches!(c.send(vec![]).await, Outcome::Retry { .. }));
        let bad = Client::new(&Endpoint {
            name: "t".into(),
            url: "http://127.0.0.1:1/".into(),
            headers: vec![("Content-Type".into(), "text/plain".into())],
            ..Endpoint::default()
        });
        assert!(bad
            .unwrap_err()
            .to_string()
            .contains("header \"Content-Type\""));
        let bad = Client::new(&Endpoint {
            name: "t".into(),
            url: "ftp://x/".into(),
            ..Endpoint::default()
        });
        assert!(bad.unwrap_err().to_string().contains("url"));
    }
}
