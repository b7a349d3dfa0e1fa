//! Load averages from `/proc/loadavg`.

use super::held::{Extent, HeldFile};
use super::{read_parsed, CollectError, ParseError, Roots};

#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct LoadAvg {
    pub one: f64,
    pub five: f64,
    pub fifteen: f64,
}

/// Parses `0.21 0.37 0.39 1/719 19737`: the first three fields.
pub fn parse_loadavg(text: &str) -> Result<LoadAvg, ParseError> {
    let mut fields = text.split_ascii_whitespace();
    let mut next = |what: &'static str| -> Result<f64, ParseError> {
        let field = fields.next().ok_or(ParseError::Missing(what))?;
        let value: f64 = field
            .parse()
            .map_err(|_| ParseError::NotANumber(field.to_owned()))?;
        if value.is_finite() && value >= 0.0 {
            Ok(value)
        } else {
            Err(ParseError::NotANumber(field.to_owned()))
        }
    };
    Ok(LoadAvg {
        one: next("1-minute load")?,
        five: next("5-minute load")?,
        fifteen: next("15-minute load")?,
    })
}

/// Reads `<proc>/loadavg`.
pub fn read(roots: &Roots) -> Result<LoadAvg, CollectError> {
    read_parsed(&roots.proc.join("loadavg"), parse_loadavg)
}

/// `<proc>/loadavg` kept open and re-read with `pread` ([`HeldFile`]).
#[derive(Debug)]
pub struct LoadReader {
    file: HeldFile,
}

impl LoadReader {
    pub fn new(roots: &Roots) -> Self {
        Self {
            file: HeldFile::new(roots.proc.join("loadavg"), Extent::Whole, 128, 4096),
        }
    }

    pub fn read(&mut self) -> Result<LoadAvg, CollectError> {
        self.file.parse(parse_loadavg)
    }

    /// Closes the file: the next read opens the path again.
    pub fn reopen(&mut self) {
        self.file.close();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_three_averages() {
        let l = parse_loadavg("0.21 0.37 0.39 1/719 19737\n").unwrap();
        assert_eq!((l.one, l.five, l.fifteen), (0.21, 0.37, 0.39));
    }

    #[test]
    fn truncated_or_bad_loadavg_is_an_error() {
        assert_eq!(
            parse_loadavg("0.21 0.37"),
            Err(ParseError::Missing("15-minute load"))
        );
        assert_eq!(
            parse_loadavg("0.21 nan 1"),
            Err(ParseError::NotANumber("nan".into()))
        );
        assert_eq!(parse_loadavg(""), Err(ParseError::Missing("1-minute load")));
    }
}
