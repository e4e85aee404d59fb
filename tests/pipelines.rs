//! The shell pipelines under `pipelines/`, run as an operator would.

mod common;

use std::process::Command;

#[test]
fn the_demo_fills_an_archive_and_reads_it_back() {
    let out = Command::new(common::repo_root().join("pipelines/demo"))
        .env(
            "MEASPIPE_BIN",
            common::bin_path("record-check").parent().unwrap(),
        )
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.starts_with("metadata: 11\n"), "{stdout}");
    assert!(stdout.contains("4   tool \"bwctl/iperf3\""), "{stdout}");
    assert!(stdout.contains("7   tool \"gridftp\""), "{stdout}");
    assert!(stdout.contains("throughput of the bwctl tests (bits/s), by esmond-get:\nsource,destination,event_type,tool,summary_type,summary_window,timestamp,value\r\n"), "{stdout}");
    assert_eq!(
        stdout.matches(",throughput,bwctl/iperf3,base,0,").count(),
        4,
        "{stdout}"
    );
    assert!(
        stderr.lines().any(|l| {
            // measpipe's batch API: the question whether the archive has it, then one batch.
            l
            == "esmond-post: records 7, points 14, requests 2, retries 0, duplicates 0, conflicts 0, failures 0"
        }),
        "{stderr}"
    );
}

#[test]
fn the_notigen_day_generates_checks_and_counts() {
    let out = Command::new(common::repo_root().join("pipelines/notigen-day"))
        .env(
            "MEASPIPE_BIN",
            common::bin_path("record-check").parent().unwrap(),
        )
        .env("DEMO_SPAN", "2h")
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(
        stderr
            .lines()
            .any(|l| l == "record-check: measurement 2, notification 2, stat 2, trace 1, bad 0"),
        "{stderr}"
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    let top = stdout.lines().next().unwrap_or_default();
    assert!(top.ends_with("compute.instance.update"), "{stdout}");
    assert!(stdout.contains("compute.instance.create.end"), "{stdout}");
}

#[test]
fn the_install_script_puts_pages_completions_and_wrappers_in_place() {
    let dir = tempfile::tempdir().unwrap();
    let out = Command::new(common::repo_root().join("pipelines/install"))
        .arg("/opt/measpipe")
        .env("DESTDIR", dir.path())
        .output()
        .unwrap();
    common::assert_success(&out);
    let root = dir.path().join("opt/measpipe");
    for tool in measpipe::tools::ALL {
        for file in [
            format!("share/man/man1/{}.1", tool.name),
            format!("share/bash-completion/completions/{}", tool.name),
            format!("share/zsh/site-functions/_{}", tool.name),
            format!("share/fish/vendor_completions.d/{}.fish", tool.name),
        ] {
            assert!(root.join(&file).is_file(), "{file} not installed");
        }
    }
    for file in [
        "share/man/man7/measpipe-records.7",
        "bin/esmond-ps-pipe",
        "bin/esmond-ps-load-gridftp",
        "bin/esmond-ps-get",
        "bin/esmond-ps-get-endpoints",
        "bin/esmond-ps-get-metadata",
        "bin/esmond-ps-get-bulk",
        "share/measpipe/pipelines/gridftp.logrotate",
        "share/measpipe/pipelines/gridftp-nats.cron",
        "share/measpipe/pipelines/systemd/esmond-serve.service",
        "share/measpipe/pipelines/systemd/measpipe-nats-ingest.service",
        "share/measpipe/pipelines/systemd/esmond-serve-backup.timer",
    ] {
        assert!(root.join(file).is_file(), "{file} not installed");
    }
    assert_eq!(
        String::from_utf8_lossy(&out.stderr),
        format!(
            "installed man pages, completions and pipelines under {}\n",
            root.display()
        )
    );
}
