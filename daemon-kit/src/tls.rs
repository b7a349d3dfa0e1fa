//! The TLS client configuration both daemons use towards an external MQTT broker: rustls with
//! the ring provider (no C toolchain, cross-compiles to the Pi), trusting a PEM CA file or the
//! system's roots.

use std::path::{Path, PathBuf};
use std::sync::Arc;

/// A TLS setting that cannot work, naming the configuration key.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("{key} {}: {reason}", path.display())]
    CaFile {
        key: &'static str,
        path: PathBuf,
        reason: String,
    },
    #[error("TLS setup: {0}")]
    Setup(String),
}

/// Largest CA file read (a system bundle is ~200 KiB).
pub const MAX_CA_FILE: u64 = 4 * 1024 * 1024;

/// A rustls client config trusting the certificates of `ca_file` (named `key` in errors, e.g.
/// `mqtt.ca_file`) or, without one, the system's roots.
pub fn client_config(
    ca_file: Option<&Path>,
    key: &'static str,
) -> Result<rustls::ClientConfig, TlsError> {
    use rustls::pki_types::pem::PemObject;
    use rustls::pki_types::CertificateDer;
    let mut roots = rustls::RootCertStore::empty();
    match ca_file {
        Some(path) => {
            let ca_err = |reason: String| TlsError::CaFile {
                key,
                path: path.to_owned(),
                reason,
            };
            let len = std::fs::metadata(path)
                .map_err(|e| ca_err(e.to_string()))?
                .len();
            if len > MAX_CA_FILE {
                return Err(ca_err(format!(
                    "{len} bytes, more than the {MAX_CA_FILE} accepted"
                )));
            }
            let certs = CertificateDer::pem_file_iter(path)
                .map_err(|e| ca_err(e.to_string()))?
                .collect::<Result<Vec<_>, _>>()
                .map_err(|e| ca_err(e.to_string()))?;
            if certs.is_empty() {
                return Err(ca_err("no certificate in the file".into()));
            }
            for cert in certs {
                roots.add(cert).map_err(|e| ca_err(e.to_string()))?;
            }
        }
        None => {
            let found = rustls_native_certs::load_native_certs();
            for cert in found.certs {
                let _ = roots.add(cert);
            }
            if roots.is_empty() {
                return Err(TlsError::Setup(format!(
                    "no system CA certificates found; set {key}"
                )));
            }
        }
    }
    rustls::ClientConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
        .with_safe_default_protocol_versions()
        .map_err(|e| TlsError::Setup(e.to_string()))
        .map(|b| b.with_root_certificates(roots).with_no_client_auth())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_bad_ca_file_names_its_key_and_path() {
        let dir = tempfile::tempdir().unwrap();
        let missing = dir.path().join("missing.pem");
        let e = client_config(Some(&missing), "mqtt.ca_file").unwrap_err();
        assert!(
            e.to_string()
                .starts_with(&format!("mqtt.ca_file {}: ", missing.display())),
            "{e}"
        );
        let empty = dir.path().join("empty.pem");
        std::fs::write(&empty, "not a certificate\n").unwrap();
        let e = client_config(Some(&empty), "broker.ca_file").unwrap_err();
        assert_eq!(
            e.to_string(),
            format!(
                "broker.ca_file {}: no certificate in the file",
                empty.display()
            )
        );
    }
}
