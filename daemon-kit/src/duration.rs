//! Durations in config files: humantime strings (`"15s"`, `"250ms"`) or numbers of seconds.

use std::time::Duration;

use serde::{Deserialize, Deserializer, Serializer};

/// Longer than any interval, timeout, age or retention this project needs (history keeps two
/// years by default); keeps arithmetic on them (`interval × 3`, milliseconds in an `i64`) far
/// from overflow.
const MAX: Duration = Duration::from_secs(10 * 365 * 24 * 3600);

pub fn serialize<S: Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(&humantime::format_duration(*d).to_string())
}

pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Raw {
        Seconds(f64),
        Text(String),
    }
    let seconds = |s: f64| {
        Duration::try_from_secs_f64(s)
            .ok()
            .filter(|d| *d <= MAX)
            .ok_or_else(|| {
                serde::de::Error::custom(format!("{s} is not a duration of at most ten years"))
            })
    };
    match Raw::deserialize(d)? {
        Raw::Seconds(s) => seconds(s),
        // A bare number in a string (an environment variable, a seed-style flag) is seconds.
        Raw::Text(t) => match t.trim().parse::<f64>() {
            Ok(s) => seconds(s),
            _ => humantime::parse_duration(&t)
                .map_err(|e| {
                    serde::de::Error::custom(format!("{t:?} is not a duration like \"15s\": {e}"))
                })
                .and_then(|d| {
                    (d <= MAX).then_some(d).ok_or_else(|| {
                        serde::de::Error::custom(format!("{t:?} is longer than ten years"))
                    })
                }),
        },
    }
}

/// An optional duration (`None` when the key is absent): `#[serde(default, with =
/// "daemon_kit::duration::option")]`.
pub mod option {
    use std::time::Duration;

    use serde::{Deserializer, Serializer};

    pub fn serialize<S: Serializer>(d: &Option<Duration>, s: S) -> Result<S::Ok, S::Error> {
        match d {
            Some(d) => super::serialize(d, s),
            None => s.serialize_none(),
        }
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Duration>, D::Error> {
        #[derive(serde::Deserialize)]
        struct Wrapped(#[serde(with = "super")] Duration);
        Ok(<Option<Wrapped> as serde::Deserialize>::deserialize(d)?.map(|Wrapped(d)| d))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Deserialize, serde::Serialize, Debug, PartialEq)]
    struct T {
        #[serde(with = "super")]
        d: Duration,
    }

    #[test]
    fn strings_and_numbers() {
        let t: T = serde_json::from_str(r#"{"d":"250ms"}"#).unwrap();
        assert_eq!(t.d, Duration::from_millis(250));
        let t: T = serde_json::from_str(r#"{"d":1.5}"#).unwrap();
        assert_eq!(t.d, Duration::from_millis(1500));
        let t: T = serde_json::from_str(r#"{"d":"30"}"#).unwrap();
        assert_eq!(t.d, Duration::from_secs(30));
        assert!(serde_json::from_str::<T>(r#"{"d":"fast"}"#).is_err());
        assert!(serde_json::from_str::<T>(r#"{"d":-1}"#).is_err());
        assert!(
            serde_json::from_str::<T>(r#"{"d":1e30}"#).is_err(),
            "no panic on huge values"
        );
        assert!(serde_json::from_str::<T>(r#"{"d":"1e30"}"#).is_err());
        assert!(serde_json::from_str::<T>(r#"{"d":"9999999 days"}"#).is_err());
        assert_eq!(
            serde_json::to_string(&T {
                d: Duration::from_secs(15)
            })
            .unwrap(),
            r#"{"d":"15s"}"#
        );
    }
}
