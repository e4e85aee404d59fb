//! The netdev tracer: per-device receive and transmit rates from `/proc/net/dev` (through
//! the procfs crate), scalpels' `traffic` tracer with both directions, errors and drops.
//!
//! Series, each one record per device per tick with the field `dev`: `rx_bytes`,
//! `tx_bytes` (`bytes/s`), `rx_packets`, `tx_packets` (`packets/s`), `rx_errors`,
//! `tx_errors` (`errors/s`), `rx_drops`, `tx_drops` (`drops/s`). A rate needs two
//! readings, so the first records come one interval after the start. A device that is
//! missing is reported once and traced when it appears.

use std::collections::{HashMap, HashSet};
use std::time::Instant;

use serde::Serialize;

use super::{rate, Tags};
use crate::ndjson::NdjsonWriter;

/// The series, in the order a reading keeps the counters.
const SERIES: [(&str, &str); 8] = [
    ("rx_bytes", "bytes/s"),
    ("tx_bytes", "bytes/s"),
    ("rx_packets", "packets/s"),
    ("tx_packets", "packets/s"),
    ("rx_errors", "errors/s"),
    ("tx_errors", "errors/s"),
    ("rx_drops", "drops/s"),
    ("tx_drops", "drops/s"),
];

#[derive(Debug, Serialize)]
struct DeviceFields<'a> {
    dev: &'a str,
}

/// Samples network devices and writes their rates.
#[derive(Debug)]
pub struct Sampler {
    tags: Tags,
    devices: Vec<String>,
    last: HashMap<String, (Instant, [u64; 8])>,
    missing: HashSet<String>,
}

impl Sampler {
    /// A sampler of `devices`, writing records tagged `tags`.
    pub fn new(tags: Tags, devices: Vec<String>) -> Sampler {
        Sampler {
            tags,
            devices,
            last: HashMap::new(),
            missing: HashSet::new(),
        }
    }

    /// Reads the counters and writes a rate per device and series since the last tick.
    pub fn tick(
        &mut self,
        out: &mut NdjsonWriter,
        ts: f64,
        warn: fn(&str),
    ) -> Result<(), crate::Error> {
        let status = procfs::net::dev_status()
            .map_err(|e| crate::Error::failed(format!("/proc/net/dev: {e}")))?;
        let now = Instant::now();
        for dev in &self.devices {
            let Some(device) = status.get(dev) else {
                if self.missing.insert(dev.clone()) {
                    warn(&format!(
                        "{dev}: no such network device (yet); it is traced when it appears"
                    ));
                }
                self.last.remove(dev);
                continue;
            };
            self.missing.remove(dev);
            let counters = [
                device.recv_bytes,
                device.sent_bytes,
                device.recv_packets,
                device.sent_packets,
                device.recv_errs,
                device.sent_errs,
                device.recv_drop,
                device.sent_drop,
            ];
            if let Some((then, before)) = self.last.get(dev) {
                let seconds = (now - *then).as_secs_f64();
                for (i, (series, unit)) in SERIES.into_iter().enumerate() {
                    if let Some(value) = rate(counters[i], Some(before[i]), seconds) {
                        self.tags
                            .write(out, ts, series, unit, value, DeviceFields { dev })?;
                    }
                }
            }
            self.last.insert(dev.clone(), (now, counters));
        }
        Ok(())
    }
}
