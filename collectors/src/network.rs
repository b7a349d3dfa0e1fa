//! Network bytes per interface from `/proc/net/dev`.
//!
//! By default only interfaces that carry the machine's own traffic once are counted: loopback,
//! container veths and bridges, libvirt bridges, VPN tunnels and ifb shapers repeat bytes that
//! a physical interface also counts. The include/exclude lists in the config change that.

use std::collections::BTreeMap;

use super::filter::NameFilter;
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
        let fields: Vec<&str> = counters.split_ascii_whitespace().collect();
        if fields.len() < 16 {
            return Err(bad(format!("{} counters, expected 16", fields.len())));
        }
        let number = |i: usize| parse_u64(fields[i]).map_err(|e| bad(e.to_string()));
        interfaces.push(InterfaceLine {
            name: name.trim().to_owned(),
            rx_bytes: number(0)?,
            tx_bytes: number(8)?,
        });
    }
    Ok(interfaces)
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
        assert_eq!(
            parse_net_dev(cut),
            Err(ParseError::Line {
                line: 3,
                reason: "3 counters, expected 16".into()
            })
        );
    }
}
