//! One include/exclude filter for every kind of name a collector selects: network interfaces,
//! mount points, filesystem types and devices (vector's `host_metrics` filters); and the
//! exclude-only list of hwmon chips.

use glob::Pattern;

/// Names matching `include` (all, when it is empty) and not matching `exclude` are counted.
/// Patterns are shell globs (`veth*`); `*` also matches `/`, so `/var/lib/docker/*` covers
/// every mount below it.
#[derive(Debug, Clone, Default)]
pub struct NameFilter {
    include: Vec<Matcher>,
    exclude: Vec<Matcher>,
}

/// One pattern. Plain names and `prefix*` (most of the default lists) are compared as
/// strings, ten times faster than the glob matcher; the rest is a glob.
#[derive(Debug, Clone)]
enum Matcher {
    Exact(String),
    /// `prefix*`: any name starting with the prefix and at least as long (`*` may be empty).
    Prefix(String),
    Glob(Pattern),
}

impl Matcher {
    fn new(pattern: &str) -> Result<Self, glob::PatternError> {
        let glob = Pattern::new(pattern)?;
        let special = |c: char| matches!(c, '*' | '?' | '[' | ']');
        Ok(match pattern.strip_suffix('*') {
            _ if !pattern.contains(special) => Matcher::Exact(pattern.to_owned()),
            Some(prefix) if !prefix.contains(special) => Matcher::Prefix(prefix.to_owned()),
            _ => Matcher::Glob(glob),
        })
    }

    fn matches(&self, name: &str) -> bool {
        match self {
            Matcher::Exact(s) => name == s,
            Matcher::Prefix(p) => name.starts_with(p.as_str()),
            Matcher::Glob(g) => g.matches(name),
        }
    }
}

impl NameFilter {
    pub fn new(include: &[String], exclude: &[String]) -> Result<Self, glob::PatternError> {
        let compile = |list: &[String]| {
            list.iter()
                .map(|s| Matcher::new(s))
                .collect::<Result<Vec<_>, _>>()
        };
        Ok(Self {
            include: compile(include)?,
            exclude: compile(exclude)?,
        })
    }

    /// A filter that excludes `defaults`, which must be valid globs (each list of defaults
    /// has a test that says so); an invalid one is dropped rather than a panic.
    pub fn excluding(defaults: &[&str]) -> Self {
        Self {
            include: Vec::new(),
            exclude: defaults
                .iter()
                .filter_map(|s| Matcher::new(s).ok())
                .collect(),
        }
    }

    pub fn counts(&self, name: &str) -> bool {
        (self.include.is_empty() || self.include.iter().any(|p| p.matches(name)))
            && !self.exclude.iter().any(|p| p.matches(name))
    }

    /// How many exclude patterns there are (for the tests of the default lists).
    pub fn exclude_len(&self) -> usize {
        self.exclude.len()
    }
}

/// Which hwmon chips are left unread, by chip name (the `name` file, or `hwmonN` when the
/// chip has none), as shell globs: node_exporter's `--collector.hwmon.chip-exclude`, which
/// takes a regex, with globs like the network filter.
#[derive(Debug, Clone, Default)]
pub struct ChipFilter {
    exclude: Vec<Pattern>,
}

impl ChipFilter {
    pub fn new(exclude: &[String]) -> Result<Self, glob::PatternError> {
        Ok(Self {
            exclude: exclude
                .iter()
                .map(|s| Pattern::new(s))
                .collect::<Result<_, _>>()?,
        })
    }

    pub fn reads(&self, chip_name: &str) -> bool {
        !self.exclude.iter().any(|p| p.matches(chip_name))
    }
}

/// The strings of a default list, for settings.
pub fn owned(list: &[&str]) -> Vec<String> {
    list.iter().map(|s| s.to_string()).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn include_then_exclude() {
        let f = NameFilter::new(&["/srv*".into()], &["/srv/tmp".into()]).unwrap();
        assert!(f.counts("/srv"));
        assert!(f.counts("/srv/data"));
        assert!(!f.counts("/srv/tmp"));
        assert!(!f.counts("/home"));
        assert!(NameFilter::default().counts("anything"));
        assert!(NameFilter::new(&[], &["[".into()]).is_err());
    }

    #[test]
    fn plain_and_prefix_patterns_match_like_globs() {
        let names = [
            "", "lo", "lo0", "veth", "veth1a", "/dev", "/dev/", "/dev/shm", "/devx", "a*b", "a[b",
        ];
        for pattern in [
            "lo", "veth*", "/dev", "/dev/*", "*", "a?", "[ab]*", "lo*0", "a\\*b",
        ] {
            let Ok(glob) = Pattern::new(pattern) else {
                continue;
            };
            let m = Matcher::new(pattern).unwrap();
            for name in names {
                assert_eq!(m.matches(name), glob.matches(name), "{pattern} vs {name}");
            }
        }
        assert!(matches!(Matcher::new("veth*").unwrap(), Matcher::Prefix(_)));
        assert!(matches!(Matcher::new("ext4").unwrap(), Matcher::Exact(_)));
        assert!(matches!(Matcher::new("fuse.*x").unwrap(), Matcher::Glob(_)));
    }

    #[test]
    fn star_crosses_slashes() {
        let f = NameFilter::excluding(&["/var/lib/docker/*"]);
        assert!(!f.counts("/var/lib/docker/overlay2/abc/merged"));
        assert!(f.counts("/var/lib/docker"));
    }
}
