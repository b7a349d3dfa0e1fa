//! `/prometheus`: the filesystem families, node_exporter's names and labels
//! (`…_filesystem_size_bytes{host,mountpoint,device,fstype}`), from each host's newest snapshot.
//! A mount whose `statvfs` timed out (`null`) has no sample.

use prometheus_client::collector::Collector;
use prometheus_client::encoding::DescriptorEncoder;
use prometheus_client::metrics::gauge::ConstGauge;
use prometheus_client::metrics::MetricType;
use prometheus_client::registry::Unit;

use super::family;
use crate::registry::used_percent;
use crate::store::SharedStore;

#[derive(Debug)]
pub(crate) struct FilesystemCollector {
    pub(crate) store: SharedStore,
}

type Gauges<'a> = Vec<(Vec<(&'a str, String)>, ConstGauge<f64>)>;

impl Collector for FilesystemCollector {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let Ok(hosts) = self.store.hosts() else {
            return Ok(());
        };
        let (mut size, mut avail, mut used, mut files, mut files_free): (
            Gauges,
            Gauges,
            Gauges,
            Gauges,
            Gauges,
        ) = Default::default();
        for (host, hs) in &hosts {
            let Some(map) = hs.latest.as_ref().and_then(|s| s.filesystems.as_ref()) else {
                continue;
            };
            for (mount, fs) in map {
                let Some(fs) = fs else { continue };
                let l = || {
                    vec![
                        ("host", host.clone()),
                        ("mountpoint", mount.clone()),
                        ("device", fs.device.clone()),
                        ("fstype", fs.fstype.clone()),
                    ]
                };
                size.push((l(), ConstGauge::new(fs.size_bytes as f64)));
                avail.push((l(), ConstGauge::new(fs.avail_bytes as f64)));
                files.push((l(), ConstGauge::new(fs.files as f64)));
                files_free.push((l(), ConstGauge::new(fs.files_free as f64)));
                if let Some(p) = used_percent(fs) {
                    used.push((l(), ConstGauge::new(p / 100.0)));
                }
            }
        }
        let e = &mut encoder;
        let bytes = Some(&Unit::Bytes);
        family(
            e,
            "filesystem_size",
            "Filesystem size (f_blocks x f_frsize)",
            bytes,
            MetricType::Gauge,
            size,
        )?;
        family(
            e,
            "filesystem_avail",
            "Bytes an unprivileged user may still write (f_bavail x f_frsize)",
            bytes,
            MetricType::Gauge,
            avail,
        )?;
        family(
            e,
            "filesystem_used",
            "Used share as df computes it: used / (used + avail), 0-1",
            Some(&Unit::Other("ratio".into())),
            MetricType::Gauge,
            used,
        )?;
        family(
            e,
            "filesystem_files",
            "Inodes (f_files)",
            None,
            MetricType::Gauge,
            files,
        )?;
        family(
            e,
            "filesystem_files_free",
            "Free inodes (f_ffree)",
            None,
            MetricType::Gauge,
            files_free,
        )?;
        Ok(())
    }
}
