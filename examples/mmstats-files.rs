//! Makes stats files for benchmarks: `mmstats-files DIR FILES DEAD PID…` writes FILES
//! native files into DIR, each like a web worker's (counters, a gauge, a histogram, an
//! average, a text), DEAD of them owned by pids that cannot exist (above pid_max) and the
//! rest spread over the given live PIDs.

use std::fs;
use std::path::PathBuf;

use measpipe::mmstats::{layout, Builder};

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let usage = "usage: mmstats-files DIR FILES DEAD PID...";
    let dir = PathBuf::from(args.first().expect(usage));
    let files: u32 = args.get(1).expect(usage).parse().expect(usage);
    let dead: u32 = args.get(2).expect(usage).parse().expect(usage);
    let live: Vec<u32> = args[3..].iter().map(|p| p.parse().expect(usage)).collect();
    assert!(!live.is_empty() || dead >= files, "{usage}");
    let template = dir.join(".template");
    let stats = Builder::new()
        .label_prefix("web.")
        .counter("requests")
        .counter("errors")
        .gauge("queue")
        .histogram("request_bytes")
        .average("batch")
        .text("state", 16)
        .path(&template)
        .keep_file()
        .create()
        .expect("create the template");
    stats.counter("requests").unwrap().add(1000);
    stats.counter("errors").unwrap().add(3);
    stats.gauge("queue").unwrap().set(2);
    for v in 0..200u64 {
        stats.histogram("request_bytes").unwrap().record(v * v * 37);
        stats.average("batch").unwrap().add(v as f64);
    }
    stats.text("state").unwrap().set("serving");
    drop(stats);
    let mut bytes = fs::read(&template).expect("read the template");
    fs::remove_file(&template).ok();
    let pid_max: u32 = fs::read_to_string("/proc/sys/kernel/pid_max")
        .ok()
        .and_then(|t| t.trim().parse().ok())
        .unwrap_or(4_194_304);
    bytes[layout::header::STATE..layout::header::STATE + 4]
        .copy_from_slice(&layout::STATE_LIVE.to_ne_bytes());
    for i in 0..files {
        let pid = if i < dead {
            pid_max + 1 + i
        } else {
            live[(i - dead) as usize % live.len()]
        };
        bytes[layout::header::PID..layout::header::PID + 4].copy_from_slice(&pid.to_ne_bytes());
        bytes[layout::header::TID..layout::header::TID + 4].copy_from_slice(&0u32.to_ne_bytes());
        fs::write(dir.join(format!("web-{pid}-{i}.mmstats")), &bytes).expect("write a file");
    }
}
