//! Label values escaped for the text exposition formats: prometheus-client 0.24 writes them
//! verbatim, so a `"`, `\` or newline in a device name would end the value or the line.

use std::borrow::Cow;
use std::fmt::Write as _;

use prometheus_client::encoding::{EncodeLabelValue, LabelValueEncoder};

/// A label value as the text exposition formats (Prometheus 0.0.4 and OpenMetrics 1.0) require
/// it between its double quotes: `\` as `\\`, `"` as `\"`, a line feed as `\n`.
pub fn escape_label_value(value: &str) -> Cow<'_, str> {
    if !value.contains(['\\', '"', '\n']) {
        return Cow::Borrowed(value);
    }
    let mut out = String::with_capacity(value.len() + 8);
    for c in value.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '"' => out.push_str("\\\""),
            '\n' => out.push_str("\\n"),
            c => out.push(c),
        }
    }
    Cow::Owned(out)
}

/// A label value written escaped.
pub(super) struct Escaped<'a>(pub(super) &'a str);

impl EncodeLabelValue for Escaped<'_> {
    fn encode(&self, encoder: &mut LabelValueEncoder) -> Result<(), std::fmt::Error> {
        encoder.write_str(&escape_label_value(self.0))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn label_values_are_escaped_exactly() {
        assert_eq!(escape_label_value("sda"), "sda");
        assert!(matches!(escape_label_value("sda"), Cow::Borrowed(_)));
        assert_eq!(escape_label_value(r#"sd"a"#), r#"sd\"a"#);
        assert_eq!(escape_label_value(r"c:\d"), r"c:\\d");
        assert_eq!(escape_label_value("x\ny"), r"x\ny");
        assert_eq!(
            escape_label_value("a\"} 1\nforged{host=\"b\\\"} 2"),
            r#"a\"} 1\nforged{host=\"b\\\"} 2"#
        );
        assert_eq!(
            escape_label_value("tëmp\t"),
            "tëmp\t",
            "only the three are escaped"
        );
        assert_eq!(escape_label_value(""), "");
    }
}
