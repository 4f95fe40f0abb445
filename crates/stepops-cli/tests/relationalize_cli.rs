//! `stepops relationalize` as a user runs it: folders in and out, the summary on stdout, the
//! exit code; and a run killed mid-archive (SIGKILL) that leaves only whole files, which a
//! second run completes.

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;
use stepops_relationalize::generate::{SURVEY_SCHEMA, archive, document};
use stepops_testkit::duckdb::{duckdb, duckdb_count};

fn stepops(input: &Path, output: &Path, schemas: Option<&Path>) -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_stepops"));
    c.args(["relationalize", "--input"])
        .arg(input)
        .arg("--output")
        .arg(output);
    if let Some(s) = schemas {
        c.arg("--schemas").arg(s);
    }
    c
}

fn setup(dir: &Path) {
    std::fs::create_dir_all(dir.join("in")).unwrap();
    std::fs::create_dir_all(dir.join("schemas/survey")).unwrap();
    std::fs::write(dir.join("schemas/survey/v1.json"), SURVEY_SCHEMA).unwrap();
}

fn parquet_files(dir: &Path, out: &mut Vec<std::path::PathBuf>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for e in entries {
        let p = e.unwrap().path();
        if p.is_dir() {
            parquet_files(&p, out);
        } else if p.extension().is_some_and(|x| x == "parquet") {
            out.push(p);
        }
    }
}

#[test]
fn a_laptop_run_writes_the_tables_and_exits_1_listing_the_failed_archive() {
    let tmp = tempfile::tempdir().unwrap();
    setup(tmp.path());
    for n in 0..2u64 {
        let lines = format!("{}\n{}\n", document(2 * n, 1), document(2 * n + 1, 1));
        let zip = archive(
            &format!("r{n}"),
            "a1",
            "2024-03-05T08:00:00Z",
            &[("survey.jsonl", lines.as_bytes())],
        );
        std::fs::write(tmp.path().join(format!("in/r{n}.zip")), zip).unwrap();
    }
    std::fs::write(tmp.path().join("in/broken.zip"), b"not a zip").unwrap();
    let out = stepops(
        &tmp.path().join("in"),
        &tmp.path().join("out"),
        Some(&tmp.path().join("schemas")),
    )
    .output()
    .unwrap();
    assert_eq!(
        out.status.code(),
        Some(1),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let summary: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(
        (summary["archives"].as_u64(), summary["failed"].as_u64()),
        (Some(3), Some(1))
    );
    assert_eq!(summary["failures"][0]["error"], "Stepops.InvalidInput");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("1 of 3 archives failed"), "{stderr}");
    assert_eq!(
        duckdb_count(&format!(
            "SELECT count(*) FROM read_parquet('{}/out/survey/**/*.parquet')",
            tmp.path().display()
        )),
        4
    );
    // A wrong location is named, exit code 2.
    let out = stepops(
        Path::new("/nonexistent/in"),
        &tmp.path().join("out"),
        Some(&tmp.path().join("schemas")),
    )
    .output()
    .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("Stepops.InvalidInput"));
}

#[test]
fn a_run_killed_mid_archive_leaves_only_whole_files_and_a_rerun_completes() {
    let tmp = tempfile::tempdir().unwrap();
    setup(tmp.path());
    // One archive of 40 datasets (240 files to publish): the kill lands while it publishes.
    let lines: String = (0..50).map(|i| format!("{}\n", document(i, 2))).collect();
    let names: Vec<String> = (0..40).map(|d| format!("survey{d:02}.jsonl")).collect();
    let members: Vec<(&str, &[u8])> = names
        .iter()
        .map(|n| (n.as_str(), lines.as_bytes()))
        .collect();
    let zip = archive("big", "a1", "2024-03-05T08:00:00Z", &members);
    std::fs::write(tmp.path().join("in/big.zip"), zip).unwrap();
    let output = tmp.path().join("out");
    let mut child = stepops(&tmp.path().join("in"), &output, None)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut files = Vec::new();
    while files.is_empty() && Instant::now() < deadline && child.try_wait().unwrap().is_none() {
        std::thread::sleep(Duration::from_millis(1));
        parquet_files(&output, &mut files);
    }
    child.kill().unwrap();
    child.wait().unwrap();
    files.clear();
    parquet_files(&output, &mut files);
    eprintln!(
        "{} of 240 files were visible when the run was killed",
        files.len()
    );
    assert!(!files.is_empty() && files.len() < 240, "killed mid-publish");
    // Every visible file is whole: DuckDB reads each to its end.
    for f in &files {
        duckdb(&format!(
            "SELECT count(*) FROM read_parquet('{}')",
            f.display()
        ));
    }
    let status = stepops(&tmp.path().join("in"), &output, None)
        .stdout(Stdio::null())
        .status()
        .unwrap();
    assert!(status.success());
    files.clear();
    parquet_files(&output, &mut files);
    assert_eq!(files.len(), 240);
    assert_eq!(
        duckdb_count(&format!(
            "SELECT count(*) FROM read_parquet('{}/survey07_steps/**/*.parquet')",
            output.display()
        )),
        100
    );
}
