//! The shell pipelines under `pipelines/`, run as an operator would.

mod common;

use std::process::Command;

#[test]
fn the_demo_checks_the_bundled_records() {
    let out = Command::new(common::repo_root().join("pipelines/demo"))
        .env(
            "MEASPIPE_BIN",
            common::bin_path("record-check").parent().unwrap(),
        )
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(
        stderr.contains("record-check: measurement 2, notification 2, stat 2, trace 1, bad 0"),
        "{stderr}"
    );
    assert_eq!(String::from_utf8_lossy(&out.stdout).lines().count(), 7);
}
