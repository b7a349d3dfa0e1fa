//! Rules as pure functions: a threshold rule over one registry metric, read from a sample
//! (and the sample before it, for a counter's rate), gives one [`Observation`] per series.

use broker::{JobEnd, Snapshot};

use super::config::{AlertSettings, Levels, Severity, UserRule};
use crate::rates::Derived;
use crate::registry::{self, Value};

pub use crate::config::alerts::BUILTIN_NAMES;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Direction {
    Above,
    Below,
}

/// A threshold rule, built-in or user, as evaluated.
#[derive(Debug, Clone, PartialEq)]
pub struct Rule {
    pub name: String,
    /// A registry metric name; a rule whose metric the registry lacks is skipped.
    pub metric: String,
    pub direction: Direction,
    /// Ascending severity, each with its threshold.
    pub levels: Vec<(Severity, f64)>,
    /// Past this the alert resolves; between it and the lowest threshold nothing changes.
    pub clear: f64,
    pub for_ms: i64,
    /// Only these hosts (empty: all).
    pub hosts: Vec<String>,
    /// Only this label value.
    pub label: Option<String>,
    /// Each label's series only, not the host-wide one (a built-in rule on a labelled
    /// metric: one alert per failed unit, not one for their count).
    pub labels_only: bool,
}

/// What a rule saw in one series of one sample.
#[derive(Debug, Clone, PartialEq)]
pub struct Observation {
    pub label: String,
    pub value: f64,
    /// The highest level crossed, with its threshold; `None` when the condition is false.
    pub level: Option<(Severity, f64)>,
    /// Past `clear`: a firing alert resolves.
    pub cleared: bool,
}

/// Every rule the engine runs.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct RuleSet {
    pub thresholds: Vec<Rule>,
    pub host_down: bool,
    pub job_failed: bool,
    pub reboot: bool,
    pub job_missed: bool,
    pub job_overrun: bool,
    /// `remote_write_behind`: warning and critical backlog (s), and where it clears.
    pub remote_write_behind: Option<Levels>,
}

fn ms(d: std::time::Duration) -> i64 {
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX)
}

fn builtin(name: &str, metric: &str, l: &Levels) -> Option<Rule> {
    if !l.enabled {
        return None;
    }
    let mut levels = vec![(Severity::Warning, l.warning)];
    levels.extend(l.critical.map(|c| (Severity::Critical, c)));
    Some(Rule {
        name: name.into(),
        metric: metric.into(),
        direction: Direction::Above,
        levels,
        clear: l.clear.unwrap_or(l.warning),
        for_ms: ms(l.for_),
        hosts: Vec::new(),
        label: None,
        labels_only: registry::metric(metric).is_some_and(|m| m.label.is_some()),
    })
}

fn user(r: &UserRule) -> Rule {
    let (direction, threshold) = match (r.above, r.below) {
        (Some(t), _) => (Direction::Above, t),
        (None, t) => (Direction::Below, t.unwrap_or(0.0)),
    };
    Rule {
        name: r.name.clone(),
        metric: r.metric.clone(),
        direction,
        levels: vec![(r.severity, threshold)],
        clear: r.clear.unwrap_or(threshold),
        for_ms: ms(r.for_),
        hosts: r.hosts.clone(),
        label: r.label.clone(),
        labels_only: false,
    }
}

impl RuleSet {
    pub fn from_settings(s: &AlertSettings) -> RuleSet {
        let b = &s.builtin;
        // The built-in threshold rules, as the registry places them on its metrics.
        let mut thresholds: Vec<Rule> = registry::METRICS
            .iter()
            .filter_map(|m| {
                let name = m.alert?;
                builtin(name, m.name, b.levels(name)?)
            })
            .collect();
        thresholds.extend(s.rule.iter().map(user));
        RuleSet {
            thresholds,
            host_down: b.host_down,
            job_failed: b.job_failed,
            reboot: b.reboot,
            job_missed: b.job_missed,
            job_overrun: b.job_overrun,
            remote_write_behind: b
                .remote_write_behind
                .enabled
                .then(|| b.remote_write_behind.clone()),
        }
    }
}

impl Rule {
    /// Its metric's labels are a set's members and `cur` lists the set (even empty): a
    /// member it does not list is not in the set.
    pub fn members_listed(&self, cur: &Snapshot) -> bool {
        registry::metric(&self.metric)
            .filter(|m| m.label.is_some_and(|k| k.absent_is_zero()))
            .is_some_and(|m| !m.values(cur).is_empty())
    }

    pub fn applies_to(&self, host: &str) -> bool {
        self.hosts.is_empty() || self.hosts.iter().any(|h| h == host)
    }

    /// Judges one value.
    pub fn judge(&self, label: String, value: f64) -> Observation {
        let past = |t: f64| match self.direction {
            Direction::Above => value > t,
            Direction::Below => value < t,
        };
        let level = self.levels.iter().rev().find(|(_, t)| past(*t)).copied();
        Observation {
            label,
            value,
            level,
            cleared: !past(self.clear),
        }
    }

    /// The rule over one sample; empty when the registry lacks the metric or the sample has
    /// no value for it. A counter's value is its rate as the store computed it at ingest
    /// (`rates`: the one rate rule), the number every other surface shows.
    pub fn evaluate(&self, cur: &Snapshot, rates: Option<&Derived>) -> Vec<Observation> {
        let Some(m) = registry::METRICS.iter().position(|m| m.name == self.metric) else {
            return Vec::new();
        };
        let mut out = Vec::new();
        let label_ok = |l: &str| {
            self.label.as_deref().is_none_or(|want| want == l)
                && !(self.labels_only && l.is_empty())
        };
        (registry::METRICS[m].extract)(cur, &mut |label, v| {
            if !label_ok(label) {
                return;
            }
            let value = match v {
                Value::Gauge(g) => Some(g),
                Value::Counter(_) => rates.and_then(|r| r.by_index(m, label)),
            };
            if let Some(v) = value.filter(|v| v.is_finite()) {
                out.push(self.judge(label.to_owned(), v));
            }
        });
        out
    }
}

/// `job_failed`: a non-zero exit code, a signal, or a command that could not start.
pub fn job_failed(e: &JobEnd) -> bool {
    e.failed()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rates::between;
    use broker::{Cpu, Network, Thermal};

    fn temp(v: f64) -> Snapshot {
        Snapshot {
            host: "tower".into(),
            thermal: Thermal {
                cpu_temp_c: Some(v),
                ..Thermal::default()
            },
            ..Snapshot::default()
        }
    }

    fn cpu_temp() -> Rule {
        let rules = RuleSet::from_settings(&AlertSettings::default()).thresholds;
        rules.into_iter().find(|r| r.name == "cpu_temp").unwrap()
    }

    #[test]
    fn levels_and_clear_follow_the_defaults() {
        let r = cpu_temp();
        assert_eq!(r.name, "cpu_temp");
        assert_eq!(r.for_ms, 60_000);
        let level = |v| r.evaluate(&temp(v), None)[0].level;
        assert_eq!(level(69.9), None);
        assert_eq!(level(70.5), Some((Severity::Warning, 70.0)));
        assert_eq!(level(85.5), Some((Severity::Critical, 85.0)));
        assert!(!r.evaluate(&temp(66.0), None)[0].cleared, "inside the band");
        assert!(r.evaluate(&temp(65.0), None)[0].cleared);
    }

    #[test]
    fn a_counter_rule_reads_the_rate_between_adjacent_samples_only() {
        let r = Rule {
            name: "rx".into(),
            metric: "network_rx_bytes_rate".into(),
            direction: Direction::Above,
            levels: vec![(Severity::Info, 100.0)],
            clear: 100.0,
            for_ms: 0,
            hosts: vec![],
            label: Some(String::new()),
            labels_only: false,
        };
        let at = |seq, ts_ms, rx| Snapshot {
            seq,
            ts_ms,
            network: Some(Network {
                rx_bytes: rx,
                ..Network::default()
            }),
            ..Snapshot::default()
        };
        let got = r.evaluate(
            &at(2, 2_000, 1_500),
            between(&at(1, 1_000, 1_000), &at(2, 2_000, 1_500)).as_ref(),
        );
        assert_eq!(got.len(), 1);
        assert_eq!(got[0].value, 500.0);
        assert!(r
            .evaluate(
                &at(3, 2_000, 1_500),
                between(&at(1, 1_000, 1_000), &at(3, 2_000, 1_500)).as_ref()
            )
            .is_empty());
        assert!(r
            .evaluate(
                &at(2, 2_000, 500),
                between(&at(1, 1_000, 1_000), &at(2, 2_000, 500)).as_ref()
            )
            .is_empty());
        assert!(r.evaluate(&at(2, 2_000, 1_500), None).is_empty());
    }

    #[test]
    fn a_metric_the_registry_lacks_is_skipped() {
        let rules = RuleSet::from_settings(&AlertSettings::default());
        let fs = rules
            .thresholds
            .iter()
            .find(|r| r.name == "filesystem_used")
            .unwrap();
        let s = Snapshot {
            cpu: Some(Cpu::default()),
            ..Snapshot::default()
        };
        assert!(fs.evaluate(&s, None).is_empty());
    }

    #[test]
    fn below_rules_and_failed_jobs() {
        let r = Rule {
            direction: Direction::Below,
            levels: vec![(Severity::Critical, 10.0)],
            clear: 20.0,
            ..cpu_temp()
        };
        assert_eq!(
            r.judge(String::new(), 5.0).level,
            Some((Severity::Critical, 10.0))
        );
        assert!(!r.judge(String::new(), 15.0).cleared);
        assert!(r.judge(String::new(), 25.0).cleared);
        let ok = JobEnd {
            exit_code: Some(0),
            ..JobEnd::default()
        };
        assert!(!job_failed(&ok));
        assert!(job_failed(&JobEnd {
            exit_code: Some(1),
            ..ok.clone()
        }));
        assert!(job_failed(&JobEnd {
            exit_code: None,
            signal: Some(9),
            ..ok
        }));
    }
}
