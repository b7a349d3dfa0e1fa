//! A batch of samples grouped by series: labels sorted by name (`__name__` among them), each
//! series' samples in time order, encoded and snappy-compressed as one request body.

use std::collections::BTreeMap;

use prost::Message;

use crate::proto::{Label, Sample, TimeSeries, WriteRequest};

/// A series' identity: its labels, `__name__` among them, sorted by name.
type LabelSet = Vec<(String, String)>;

/// Samples by series (the sorted label set).
#[derive(Debug, Default, Clone)]
pub struct Batch {
    series: BTreeMap<LabelSet, Vec<(i64, f64)>>,
    samples: usize,
}

impl Batch {
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds one sample of the series `name{labels}` at `ts_ms`.
    pub fn push(&mut self, name: &str, labels: &[(&str, &str)], ts_ms: i64, value: f64) {
        let mut key: LabelSet = Vec::with_capacity(labels.len() + 1);
        key.push(("__name__".to_owned(), name.to_owned()));
        key.extend(
            labels
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned())),
        );
        key.sort();
        self.series.entry(key).or_default().push((ts_ms, value));
        self.samples += 1;
    }

    pub fn samples(&self) -> usize {
        self.samples
    }

    pub fn series(&self) -> usize {
        self.series.len()
    }

    pub fn is_empty(&self) -> bool {
        self.samples == 0
    }

    /// The `WriteRequest`, each series' samples sorted by time.
    pub fn request(&self) -> WriteRequest {
        WriteRequest {
            timeseries: self
                .series
                .iter()
                .map(|(labels, samples)| {
                    let mut samples = samples.clone();
                    samples.sort_by_key(|(t, _)| *t);
                    TimeSeries {
                        labels: labels
                            .iter()
                            .map(|(name, value)| Label {
                                name: name.clone(),
                                value: value.clone(),
                            })
                            .collect(),
                        samples: samples
                            .into_iter()
                            .map(|(timestamp, value)| Sample { value, timestamp })
                            .collect(),
                    }
                })
                .collect(),
        }
    }

    /// The request body: the protobuf, compressed with snappy's block format.
    pub fn body(&self) -> Vec<u8> {
        let raw = self.request().encode_to_vec();
        // Compressing a buffer in memory fails only beyond snap's maximum input (4 GiB);
        // batches are bounded far below that.
        snap::raw::Encoder::new()
            .compress_vec(&raw)
            .unwrap_or_default()
    }
}

/// Decodes a body as a receiver would (tests, and a receiver built on this crate).
pub fn decode(body: &[u8]) -> Option<WriteRequest> {
    let raw = snap::raw::Decoder::new().decompress_vec(body).ok()?;
    WriteRequest::decode(raw.as_slice()).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn labels_sorted_samples_in_time_order_round_trip_through_snappy() {
        let mut b = Batch::new();
        b.push(
            "up",
            &[("job", "server-analytics"), ("host", "tower")],
            2000,
            1.0,
        );
        b.push(
            "up",
            &[("host", "tower"), ("job", "server-analytics")],
            1000,
            0.0,
        );
        b.push("load", &[("host", "nas")], 1000, 0.5);
        assert_eq!((b.samples(), b.series()), (3, 2));
        let got = decode(&b.body()).unwrap();
        assert_eq!(got, b.request());
        let up = &got.timeseries[1];
        let names: Vec<&str> = up.labels.iter().map(|l| l.name.as_str()).collect();
        assert_eq!(names, ["__name__", "host", "job"]);
        let times: Vec<i64> = up.samples.iter().map(|s| s.timestamp).collect();
        assert_eq!(times, [1000, 2000]);
        assert_eq!(up.samples[0].value, 0.0);
        assert_eq!(decode(b"not snappy"), None);
    }
}
