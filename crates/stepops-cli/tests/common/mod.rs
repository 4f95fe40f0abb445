//! What the process tests share: the real `stepops-runner` binary, built on demand.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

/// The `stepops-runner` binary next to this test's own executable, built (once per test
/// process) first.
pub fn runner_binary() -> PathBuf {
    static BINARY: OnceLock<PathBuf> = OnceLock::new();
    BINARY.get_or_init(build_runner).clone()
}

fn build_runner() -> PathBuf {
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
    // The build `cargo nextest run --workspace` (the README's test command) made before the
    // tests ran: the same units, so after it this is a one-second freshness check. Any other
    // selection (`-p stepops-runner`) resolves other dependency features and compiles the AWS
    // SDK again while two test slots wait.
    let mut build = Command::new(&cargo);
    build
        .args(["test", "--no-run", "--workspace"])
        .arg("--target-dir")
        .arg(target_dir)
        .current_dir(env!("CARGO_MANIFEST_DIR"));
    // This test runs with the variables cargo sets for a compiled crate (CARGO_PKG_NAME,
    // CARGO_MANIFEST_DIR, …). Some build scripts (ring's) declare `rerun-if-env-changed` on
    // them, so passing them on makes this cargo re-run those scripts and rebuild everything
    // above them (8 minutes here), and the next top-level cargo run rebuilds it all back.
    for (name, _) in std::env::vars_os() {
        if name.to_str().is_some_and(is_set_by_cargo_for_a_crate) {
            build.env_remove(&name);
        }
    }
    if profile_dir.file_name().is_some_and(|n| n == "release") {
        build.arg("--release");
    }
    let status = build
        .status()
        .unwrap_or_else(|e| panic!("cannot run {cargo} to build stepops-runner: {e}"));
    assert!(status.success(), "cargo test --no-run --workspace failed");
    let bin = profile_dir.join("stepops-runner");
    assert!(
        bin.exists(),
        "{} is missing after the build; set STEPOPS_TEST_RUNNER_BIN to the runner binary",
        bin.display()
    );
    bin
}

/// Whether cargo sets `name` when it compiles or runs one crate (not configuration a user set).
fn is_set_by_cargo_for_a_crate(name: &str) -> bool {
    const PREFIXES: [&str; 3] = ["CARGO_PKG_", "CARGO_MANIFEST_", "CARGO_BIN_"];
    const NAMES: [&str; 5] = [
        "CARGO_CRATE_NAME",
        "CARGO_PRIMARY_PACKAGE",
        "CARGO_TARGET_TMPDIR",
        "CARGO_RUSTC_CURRENT_DIR",
        "OUT_DIR",
    ];
    PREFIXES.iter().any(|p| name.starts_with(p)) || NAMES.contains(&name)
}
