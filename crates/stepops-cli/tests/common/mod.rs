//! What the process tests share: the real `stepops-runner` binary, built on demand.

use std::path::{Path, PathBuf};
use std::process::Command;

/// The `stepops-runner` binary next to this test's own executable, built first.
pub fn runner_binary() -> PathBuf {
    if let Some(p) = std::env::var_os("STEPOPS_TEST_RUNNER_BIN") {
        return p.into();
    }
    // target/<profile>/deps/<this test> → target/<profile>/stepops-runner
    let exe = std::env::current_exe().expect("the test's path");
    let profile_dir = exe
        .parent()
        .and_then(Path::parent)
        .expect("target/<profile>");
    let target_dir = profile_dir.parent().expect("the target directory");
    let cargo = std::env::var("CARGO")
        .ok()
        .or_else(|| option_env!("CARGO").map(str::to_owned))
        .unwrap_or_else(|| "cargo".into());
    let mut build = Command::new(&cargo);
    build
        .args(["build", "-p", "stepops-runner", "--bin", "stepops-runner"])
        .arg("--target-dir")
        .arg(target_dir)
        .current_dir(env!("CARGO_MANIFEST_DIR"));
    if profile_dir.file_name().is_some_and(|n| n == "release") {
        build.arg("--release");
    }
    let status = build
        .status()
        .unwrap_or_else(|e| panic!("cannot run {cargo} to build stepops-runner: {e}"));
    assert!(status.success(), "cargo build -p stepops-runner failed");
    let bin = profile_dir.join("stepops-runner");
    assert!(
        bin.exists(),
        "{} is missing after the build; set STEPOPS_TEST_RUNNER_BIN to the runner binary",
        bin.display()
    );
    bin
}
