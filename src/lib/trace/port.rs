//! The port tracer: inbound packets and bytes per second to local TCP ports, counted by an
//! nftables counter that the tracer adds at its start and removes at its end (scalpels'
//! `rpc` tracer, which used an iptables rule it never removed).
//!
//! The counters live in a table of their own, `inet measpipe_port_<PID>`, hooked on
//! `input` before the usual filters, with rules that only count (no verdict), so nothing
//! else about the traffic changes. A table left behind by a tracer killed with SIGKILL is
//! removed by the next one to start (its PID is gone). The table is managed with the `nft`
//! command (Debian's nftables).
//!
//! Series, one record per port per tick with the field `port`: `rx_packets`
//! (`packets/s`) and `rx_bytes` (`bytes/s`). A rate needs two readings, so the first
//! records come one interval after the start.

use std::io::Write;
use std::process::{Command, Stdio};
use std::time::Instant;

use serde::Serialize;
use serde_json::Value;

use super::{rate, Tags};
use crate::ndjson::NdjsonWriter;

/// The prefix of the tracers' table names.
const TABLE_PREFIX: &str = "measpipe_port_";

#[derive(Debug, Serialize)]
struct PortFields {
    port: u16,
}

/// Counters on some TCP ports, removed when dropped.
#[derive(Debug)]
pub struct PortCounters {
    tags: Tags,
    table: String,
    ports: Vec<u16>,
    last: Option<(Instant, Vec<(u64, u64)>)>,
}

impl PortCounters {
    /// Adds the table and its counters (first removing tables of tracers that are gone).
    pub fn add(tags: Tags, ports: Vec<u16>) -> Result<PortCounters, crate::Error> {
        remove_stale_tables();
        let table = format!("{TABLE_PREFIX}{}", std::process::id());
        let mut script = format!("table inet {table} {{\n");
        for port in &ports {
            script.push_str(&format!("  counter port_{port} {{ }}\n"));
        }
        script.push_str(
            "  chain input {\n    type filter hook input priority -150; policy accept;\n",
        );
        for port in &ports {
            script.push_str(&format!(
                "    tcp dport {port} counter name \"port_{port}\"\n"
            ));
        }
        script.push_str("  }\n}\n");
        nft(&["-f", "-"], Some(&script)).map_err(|cause| {
            crate::Error::failed(format!(
                "cannot add the nftables counters (port-trace needs root or CAP_NET_ADMIN): {cause}"
            ))
        })?;
        Ok(PortCounters {
            tags,
            table,
            ports,
            last: None,
        })
    }

    /// Reads the counters and writes each port's rates since the last tick.
    pub fn tick(&mut self, out: &mut NdjsonWriter, ts: f64) -> Result<(), crate::Error> {
        let listing = nft(&["-j", "list", "table", "inet", &self.table], None)
            .map_err(|cause| crate::Error::failed(format!("cannot read the counters: {cause}")))?;
        let now = Instant::now();
        let counters = self
            .ports
            .iter()
            .map(|port| counter(&listing, &format!("port_{port}")))
            .collect::<Option<Vec<_>>>()
            .ok_or_else(|| {
                crate::Error::failed(format!(
                    "the counters of table inet {} are gone (was it deleted?)",
                    self.table
                ))
            })?;
        if let Some((then, before)) = &self.last {
            let seconds = (now - *then).as_secs_f64();
            for ((port, (packets, bytes)), (was_packets, was_bytes)) in
                self.ports.iter().zip(&counters).zip(before)
            {
                let fields = || PortFields { port: *port };
                if let Some(value) = rate(*packets, Some(*was_packets), seconds) {
                    self.tags
                        .write(out, ts, "rx_packets", "packets/s", value, fields())?;
                }
                if let Some(value) = rate(*bytes, Some(*was_bytes), seconds) {
                    self.tags
                        .write(out, ts, "rx_bytes", "bytes/s", value, fields())?;
                }
            }
        }
        self.last = Some((now, counters));
        Ok(())
    }

    /// The table's name.
    pub fn table(&self) -> &str {
        &self.table
    }
}

impl Drop for PortCounters {
    fn drop(&mut self) {
        let _ = nft(&["delete", "table", "inet", &self.table], None);
    }
}

/// The packets and bytes of the named counter in an `nft -j` listing.
fn counter(listing: &str, name: &str) -> Option<(u64, u64)> {
    let listing: Value = serde_json::from_str(listing).ok()?;
    listing["nftables"].as_array()?.iter().find_map(|item| {
        let counter = item.get("counter")?;
        (counter["name"] == name)
            .then(|| Some((counter["packets"].as_u64()?, counter["bytes"].as_u64()?)))?
    })
}

/// Removes the tables of port tracers whose process is gone.
fn remove_stale_tables() {
    let Ok(listing) = nft(&["-j", "list", "tables"], None) else {
        return;
    };
    let Ok(listing) = serde_json::from_str::<Value>(&listing) else {
        return;
    };
    let tables = listing["nftables"].as_array().cloned().unwrap_or_default();
    for item in tables {
        let Some(name) = item["table"]["name"].as_str() else {
            continue;
        };
        let Some(pid) = name
            .strip_prefix(TABLE_PREFIX)
            .and_then(|p| p.parse::<u32>().ok())
        else {
            continue;
        };
        if item["table"]["family"] == "inet"
            && !std::path::Path::new(&format!("/proc/{pid}")).exists()
        {
            let _ = nft(&["delete", "table", "inet", name], None);
        }
    }
}

/// Runs `nft` with `args` (and `input` on its stdin): its output, or its first line of
/// complaint.
fn nft(args: &[&str], input: Option<&str>) -> Result<String, String> {
    let mut child = Command::new("nft")
        .args(args)
        .stdin(if input.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| match e.kind() {
            std::io::ErrorKind::NotFound => {
                "nft not found (Debian: apt-get install nftables)".to_owned()
            }
            _ => format!("nft: {e}"),
        })?;
    if let (Some(text), Some(mut stdin)) = (input, child.stdin.take()) {
        stdin
            .write_all(text.as_bytes())
            .map_err(|e| format!("nft: {e}"))?;
    }
    let output = child.wait_with_output().map_err(|e| format!("nft: {e}"))?;
    if output.status.success() {
        return String::from_utf8(output.stdout).map_err(|e| format!("nft: {e}"));
    }
    let stderr = String::from_utf8_lossy(&output.stderr);
    let first = stderr
        .lines()
        .find(|l| l.starts_with("Error:"))
        .or_else(|| stderr.lines().next())
        .unwrap_or("failed");
    Err(format!("nft {}: {}", args.join(" "), first.trim()))
}
