//! Uptime, boot id and host name.

use super::held::{Extent, HeldFile};
use super::{read_parsed, read_text, CollectError, ParseError, Roots};

/// Parses `/proc/uptime` (`86400.50 170000.12`): seconds since boot.
pub fn parse_uptime(text: &str) -> Result<f64, ParseError> {
    let field = text
        .split_ascii_whitespace()
        .next()
        .ok_or(ParseError::Missing("uptime"))?;
    match field.parse::<f64>() {
        Ok(v) if v.is_finite() && v >= 0.0 => Ok(v),
        _ => Err(ParseError::NotANumber(field.to_owned())),
    }
}

/// Parses a boot id: one UUID-like token.
pub fn parse_boot_id(text: &str) -> Result<String, ParseError> {
    let id = text.trim();
    if id.is_empty() {
        return Err(ParseError::Missing("boot id"));
    }
    Ok(id.to_owned())
}

pub fn read_uptime(roots: &Roots) -> Result<f64, CollectError> {
    read_parsed(&roots.proc.join("uptime"), parse_uptime)
}

pub fn read_boot_id(roots: &Roots) -> Result<String, CollectError> {
    read_parsed(&roots.proc.join("sys/kernel/random/boot_id"), parse_boot_id)
}

/// `<proc>/uptime` and the boot id, kept open and re-read with `pread` ([`HeldFile`]).
#[derive(Debug)]
pub struct HostReader {
    uptime: HeldFile,
    boot_id: HeldFile,
}

impl HostReader {
    pub fn new(roots: &Roots) -> Self {
        let small = |path| HeldFile::new(path, Extent::Whole, 128, 4096);
        Self {
            uptime: small(roots.proc.join("uptime")),
            boot_id: small(roots.proc.join("sys/kernel/random/boot_id")),
        }
    }

    pub fn uptime(&mut self) -> Result<f64, CollectError> {
        self.uptime.parse(parse_uptime)
    }

    pub fn boot_id(&mut self) -> Result<String, CollectError> {
        self.boot_id.parse(parse_boot_id)
    }

    /// Closes both files: the next reads open the paths again.
    pub fn reopen(&mut self) {
        self.uptime.close();
        self.boot_id.close();
    }
}

/// The kernel's host name turned into a valid host id: characters outside `[A-Za-z0-9_-]`
/// become `-`, and only the first label of a dotted name is kept (`tower.lan` → `tower`).
pub fn read_host_id(roots: &Roots) -> Result<String, CollectError> {
    let text = read_text(&roots.proc.join("sys/kernel/hostname"))?;
    Ok(host_id_from_hostname(&text))
}

pub fn host_id_from_hostname(name: &str) -> String {
    let first = name.trim().split('.').next().unwrap_or("");
    let id: String = first
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '_' || c == '-' {
                c
            } else {
                '-'
            }
        })
        .collect();
    if id.is_empty() {
        "localhost".to_owned()
    } else {
        id
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn uptime_is_the_first_field() {
        assert_eq!(parse_uptime("86400.50 170000.12\n"), Ok(86400.5));
        assert_eq!(parse_uptime(""), Err(ParseError::Missing("uptime")));
        assert_eq!(parse_uptime("x 1"), Err(ParseError::NotANumber("x".into())));
    }

    #[test]
    fn boot_id_is_trimmed() {
        assert_eq!(parse_boot_id(" abc-1\n").unwrap(), "abc-1");
        assert!(parse_boot_id("\n").is_err());
    }

    #[test]
    fn hostnames_become_topic_safe_ids() {
        assert_eq!(host_id_from_hostname("tower.lan\n"), "tower");
        assert_eq!(host_id_from_hostname("my box"), "my-box");
        assert_eq!(host_id_from_hostname(""), "localhost");
        assert!(broker::validate_host_id(&host_id_from_hostname("wéird+name")).is_ok());
    }
}
