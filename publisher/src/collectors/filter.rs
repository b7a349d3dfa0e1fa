//! One include/exclude filter for every kind of name a collector selects: network interfaces,
//! mount points, filesystem types and devices (vector's `host_metrics` filters).

use glob::Pattern;

/// Names matching `include` (all, when it is empty) and not matching `exclude` are counted.
/// Patterns are shell globs (`veth*`); `*` also matches `/`, so `/var/lib/docker/*` covers
/// every mount below it.
#[derive(Debug, Clone, Default)]
pub struct NameFilter {
    include: Vec<Pattern>,
    exclude: Vec<Pattern>,
}

impl NameFilter {
    pub fn new(include: &[String], exclude: &[String]) -> Result<Self, glob::PatternError> {
        let compile = |list: &[String]| {
            list.iter()
                .map(|s| Pattern::new(s))
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
                .filter_map(|s| Pattern::new(s).ok())
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
    fn star_crosses_slashes() {
        let f = NameFilter::excluding(&["/var/lib/docker/*"]);
        assert!(!f.counts("/var/lib/docker/overlay2/abc/merged"));
        assert!(f.counts("/var/lib/docker"));
    }
}
