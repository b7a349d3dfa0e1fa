//! Sizes in config files: a number of bytes, or a string with a unit (`"2GiB"`, `"500 MB"`:
//! `B`, `KiB`…`TiB` in powers of 1024, `KB`…`TB` in powers of 1000).

use serde::{Deserialize, Deserializer, Serializer};

/// Printed in the largest binary unit that divides it (`check-config`).
pub fn serialize<S: Serializer>(bytes: &u64, s: S) -> Result<S::Ok, S::Error> {
    let units = [
        ("TiB", 1u64 << 40),
        ("GiB", 1 << 30),
        ("MiB", 1 << 20),
        ("KiB", 1 << 10),
    ];
    match units
        .iter()
        .find(|(_, size)| *bytes != 0 && bytes.is_multiple_of(*size))
    {
        Some((unit, size)) => s.serialize_str(&format!("{}{unit}", bytes / size)),
        None => s.serialize_u64(*bytes),
    }
}

pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<u64, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Raw {
        Bytes(u64),
        Text(String),
    }
    match Raw::deserialize(d)? {
        Raw::Bytes(b) => Ok(b),
        Raw::Text(t) => parse(&t).ok_or_else(|| {
            serde::de::Error::custom(format!(
                "{t:?} is not a size like \"2GiB\", \"500MB\" or a number of bytes"
            ))
        }),
    }
}

/// `"2GiB"` → 2147483648; `None` for anything else or beyond `u64`.
pub fn parse(text: &str) -> Option<u64> {
    let t = text.trim();
    let split = t
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(t.len());
    let (number, unit) = t.split_at(split);
    let number: f64 = number.parse().ok()?;
    let scale: u64 = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "b" => 1,
        "kib" => 1 << 10,
        "mib" => 1 << 20,
        "gib" => 1 << 30,
        "tib" => 1 << 40,
        "kb" => 1_000,
        "mb" => 1_000_000,
        "gb" => 1_000_000_000,
        "tb" => 1_000_000_000_000,
        _ => return None,
    };
    let bytes = number * scale as f64;
    (bytes.is_finite() && bytes >= 0.0 && bytes < u64::MAX as f64).then_some(bytes as u64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Deserialize, serde::Serialize, Debug, PartialEq)]
    struct T {
        #[serde(with = "super")]
        size: u64,
    }

    #[test]
    fn sizes_with_units_or_bytes() {
        let t = |s: &str| serde_json::from_str::<T>(s).map(|t| t.size);
        assert_eq!(t(r#"{"size":"2GiB"}"#).unwrap(), 2 << 30);
        assert_eq!(t(r#"{"size":"500 MB"}"#).unwrap(), 500_000_000);
        assert_eq!(t(r#"{"size":"1.5KiB"}"#).unwrap(), 1536);
        assert_eq!(t(r#"{"size":"4096"}"#).unwrap(), 4096);
        assert_eq!(t(r#"{"size":1048576}"#).unwrap(), 1 << 20);
        for bad in [
            r#""2 parsecs""#,
            r#""-1GiB""#,
            r#""GiB""#,
            "-5",
            r#""1e30TiB""#,
        ] {
            assert!(t(&format!(r#"{{"size":{bad}}}"#)).is_err(), "{bad}");
        }
        let shown = |size| serde_json::to_string(&T { size }).unwrap();
        assert_eq!(shown(2 << 30), r#"{"size":"2GiB"}"#);
        assert_eq!(shown(1000), r#"{"size":1000}"#);
    }
}
