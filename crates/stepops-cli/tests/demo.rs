//! `stepops demo` as a user runs it: the real binary, the SQLite demo and the Synapse demo
//! (`--synapse`), each with `--rerun` (a second execution must copy nothing). The demos check
//! their own result independently of the migration engine and exit non-zero otherwise.

use stepops_testkit::process::isolated_command;

fn demo(args: &[&str]) -> String {
    let dir = tempfile::tempdir().unwrap();
    let out = isolated_command(env!("CARGO_BIN_EXE_stepops"), dir.path())
        .arg("demo")
        .arg("--dir")
        .arg(dir.path().join("demo"))
        .args(args)
        .output()
        .unwrap();
    let text = format!(
        "{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        out.status.success(),
        "stepops demo {args:?} failed:\n{text}"
    );
    text
}

#[test]
fn the_sqlite_demo_converges_and_a_rerun_copies_nothing() {
    let text = demo(&["--rows", "3000", "--rerun"]);
    assert!(text.contains("second run: nothing to copy"), "{text}");
    assert!(text.contains("demo: OK"), "{text}");
}

#[test]
fn the_synapse_demo_converges_leaves_read_write_and_never_prints_the_secret() {
    let text = demo(&[
        "--synapse",
        "--rows",
        "2000",
        "--chunk-rows",
        "100",
        "--rerun",
    ]);
    assert!(text.contains("second run: nothing to copy"), "{text}");
    assert!(text.contains("equal; destination READ_WRITE"), "{text}");
    assert!(text.contains("demo: OK"), "{text}");
    // The fakes' secrets (stepops_synapse_fake::FakeOptions::new) are in no output line.
    assert!(!text.contains("-Secret-7Qx"), "{text}");
}
