//! Network bytes per interface from `/proc/net/dev`.
//!
//! By default only interfaces that carry the machine's own traffic once are counted: loopback,
//! container veths and bridges, libvirt bridges, VPN tunnels and ifb shapers repeat bytes that
//! a physical interface also counts. The include/exclude lists in the config change that.

use std::collections::BTreeMap;

use super::filter::NameFilter;
use super::held::{Extent, HeldFile};
use super::{parse_u64, read_parsed, CollectError, ParseError, Roots};
use broker::{Network, NetworkInterface};

/// The interfaces left out unless the config says otherwise.
pub const DEFAULT_EXCLUDE: [&str; 9] = [
    "lo",
    "veth*",
    "docker*",
    "br-*",
    "virbr*",
    "wg*",
    "tun*",
    "tailscale*",
    "ifb*",
];

/// Which interfaces are counted: the shared [`NameFilter`] (globs such as `veth*`).
pub type InterfaceFilter = NameFilter;

/// The network section's default filter: everything but [`DEFAULT_EXCLUDE`].
pub fn default_filter() -> InterfaceFilter {
    NameFilter::excluding(&DEFAULT_EXCLUDE)
}

/// One line of `/proc/net/dev`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InterfaceLine {
    pub name: String,
    pub rx_bytes: u64,
    pub tx_bytes: u64,
}

/// Parses `/proc/net/dev`: two header lines, then `name: rx_bytes … (8 rx fields) tx_bytes …`.
pub fn parse_net_dev(text: &str) -> Result<Vec<InterfaceLine>, ParseError> {
    let mut interfaces = Vec::new();
    for_each_line(text, |name, rx_bytes, tx_bytes| {
        interfaces.push(InterfaceLine {
            name: name.to_owned(),
            rx_bytes,
            tx_bytes,
        })
    })?;
    Ok(interfaces)
}

/// Calls `each` with every interface's name and rx and tx bytes, without allocating; the
/// first bad line is the error.
fn for_each_line(text: &str, mut each: impl FnMut(&str, u64, u64)) -> Result<(), ParseError> {
    for (index, line) in text.lines().enumerate() {
        // Header lines contain '|'; old kernels wrote `eth0:123` with no space after ':'.
        let Some((name, counters)) = line.split_once(':') else {
            continue;
        };
        if name.contains('|') {
            continue;
        }
        let bad = |reason: String| ParseError::Line {
            line: index + 1,
            reason,
        };
        let mut fields = [""; 16];
        let mut count = 0usize;
        for word in counters.split_ascii_whitespace() {
            if let Some(slot) = fields.get_mut(count) {
                *slot = word;
            }
            count += 1;
        }
        if count < 16 {
            return Err(bad(format!("{count} counters, expected 16")));
        }
        let number = |i: usize| parse_u64(fields[i]).map_err(|e| bad(e.to_string()));
        let rx = number(0)?;
        let tx = number(8)?;
        each(name.trim(), rx, tx);
    }
    Ok(())
}

/// [`parse_net_dev`] and [`summarize`] in one pass: only the counted interfaces' names are
/// copied.
pub fn parse_summary(text: &str, filter: &InterfaceFilter) -> Result<Network, ParseError> {
    let mut interfaces = BTreeMap::new();
    for_each_line(text, |name, rx_bytes, tx_bytes| {
        if filter.counts(name) {
            interfaces.insert(name.to_owned(), NetworkInterface { rx_bytes, tx_bytes });
        }
    })?;
    Ok(totals(interfaces))
}

/// Sums the counted interfaces into the snapshot's `network` section.
pub fn summarize(lines: &[InterfaceLine], filter: &InterfaceFilter) -> Network {
    let interfaces: BTreeMap<String, NetworkInterface> = lines
        .iter()
        .filter(|l| filter.counts(&l.name))
        .map(|l| {
            (
                l.name.clone(),
                NetworkInterface {
                    rx_bytes: l.rx_bytes,
                    tx_bytes: l.tx_bytes,
                },
            )
        })
        .collect();
    totals(interfaces)
}

fn totals(interfaces: BTreeMap<String, NetworkInterface>) -> Network {
    Network {
        rx_bytes: interfaces.values().map(|i| i.rx_bytes).sum(),
        tx_bytes: interfaces.values().map(|i| i.tx_bytes).sum(),
        interfaces,
    }
}

/// Reads `<proc>/net/dev`.
pub fn read(roots: &Roots, filter: &InterfaceFilter) -> Result<Network, CollectError> {
    read_parsed(&roots.proc.join("net/dev"), parse_net_dev).map(|l| summarize(&l, filter))
}

/// `<proc>/net/dev` kept open and re-read with `pread` ([`HeldFile`]), with its filter.
#[derive(Debug)]
pub struct NetDevReader {
    file: HeldFile,
    filter: InterfaceFilter,
}

impl NetDevReader {
    pub fn new(roots: &Roots, filter: InterfaceFilter) -> Self {
        Self {
            file: HeldFile::proc(roots.proc.join("net/dev"), Extent::Records),
            filter,
        }
    }

    pub fn read(&mut self) -> Result<Network, CollectError> {
        let filter = &self.filter;
        self.file.parse(|text| parse_summary(text, filter))
    }

    /// Closes the file: the next read opens the path again.
    pub fn reopen(&mut self) {
        self.file.close();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const NET_DEV: &str = "Inter-|   Receive                                                |  Transmit
 face |bytes    packets errs drop fifo frame compressed multicast|bytes    packets errs drop fifo colls carrier compressed
    lo:    3193      29    0    0    0     0          0         0     3193      29    0    0    0     0       0          0
  eth0: 9013149     227    0    0    0     0          0         0    14913     174    0    0    0     0       0          0
docker0:  500 1 0 0 0 0 0 0 600 1 0 0 0 0 0 0
veth12ab: 700 1 0 0 0 0 0 0 800 1 0 0 0 0 0 0
  wlan0:100 1 0 0 0 0 0 0 200 1 0 0 0 0 0 0
";

    #[test]
    fn default_filter_counts_physical_interfaces_once() {
        let net = summarize(&parse_net_dev(NET_DEV).unwrap(), &default_filter());
        assert_eq!(parse_summary(NET_DEV, &default_filter()), Ok(net.clone()));
        assert_eq!(net.interfaces.keys().collect::<Vec<_>>(), ["eth0", "wlan0"]);
        assert_eq!(net.rx_bytes, 9013149 + 100);
        assert_eq!(net.tx_bytes, 14913 + 200);
    }

    #[test]
    fn include_and_exclude_lists() {
        let lines = parse_net_dev(NET_DEV).unwrap();
        let only_docker = InterfaceFilter::new(&["docker*".into()], &[]).unwrap();
        assert_eq!(summarize(&lines, &only_docker).rx_bytes, 500);
        let everything = InterfaceFilter::new(&[], &[]).unwrap();
        assert_eq!(summarize(&lines, &everything).interfaces.len(), 5);
        assert!(InterfaceFilter::new(&["[".into()], &[]).is_err());
    }

    #[test]
    fn default_excludes_are_valid_globs() {
        let f = default_filter();
        assert_eq!(f.exclude_len(), DEFAULT_EXCLUDE.len());
        for name in [
            "lo",
            "veth0",
            "docker0",
            "br-abc",
            "virbr0",
            "wg0",
            "tun0",
            "tailscale0",
            "ifb1",
        ] {
            assert!(!f.counts(name), "{name}");
        }
        assert!(f.counts("enp3s0"));
    }

    #[test]
    fn truncated_line_is_an_error() {
        let cut = "Inter-|\n face |\n  eth0: 9013149     227    0";
        assert!(parse_summary(cut, &default_filter()).is_err());
        assert_eq!(
            parse_net_dev(cut),
            Err(ParseError::Line {
                line: 3,
                reason: "3 counters, expected 16".into()
            })
        );
    }
}
