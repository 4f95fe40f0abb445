//! `stepops repo-sync bench`: a generated tree synced to moto's S3 server on 127.0.0.1 (first
//! sync, unchanged, 1 % changed), beside `aws s3 sync` when the AWS CLI is installed: wall
//! times, requests and peak memory (the sync itself is `stepops_reposync`'s).

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Instant, SystemTime};

use stepops_reposync::bench::{Run, change_one_percent, make_tree, peak_memory_mib, timed_run};
use stepops_reposync::{Definition, S3Target, SyncError};

fn fail(m: String) -> SyncError {
    SyncError::Local {
        path: "bench".into(),
        message: m,
    }
}

fn print(r: &Run) {
    let q = &r.requests;
    let n = |a: &std::sync::atomic::AtomicUsize| a.load(std::sync::atomic::Ordering::Relaxed);
    println!(
        "stepops  {:<28} {:>7.2} s  uploaded {:>5}  requests: list {} get {} head {} put {} delete {}",
        r.name,
        r.seconds,
        r.uploaded,
        n(&q.list),
        n(&q.get),
        n(&q.head),
        n(&q.put),
        n(&q.delete)
    );
}

/// `aws s3 sync`, timed; prints how many files it uploaded.
fn aws_sync(name: &str, endpoint: &str, dir: &Path, extra: &[&str]) -> Result<(), SyncError> {
    let start = Instant::now();
    let out = Command::new("aws")
        .args([
            "s3",
            "sync",
            &dir.display().to_string(),
            "s3://bench/awscli/",
            "--endpoint-url",
            endpoint,
            "--no-progress",
        ])
        .args(extra)
        .env("AWS_ACCESS_KEY_ID", "testing")
        .env("AWS_SECRET_ACCESS_KEY", "testing")
        .env("AWS_DEFAULT_REGION", "us-east-1")
        .stderr(Stdio::inherit())
        .output()
        .map_err(|e| fail(format!("aws: {e}")))?;
    let uploads = String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter(|l| l.starts_with("upload:"))
        .count();
    println!(
        "aws cli  {name:<28} {:>7.2} s  uploaded {uploads:>5}",
        start.elapsed().as_secs_f64()
    );
    Ok(())
}

/// Sets every file's modification time to now (what a fresh extraction does).
fn touch(dir: &Path, rels: &[String]) -> Result<(), SyncError> {
    for rel in rels {
        let f = std::fs::File::options()
            .write(true)
            .open(dir.join(rel))
            .map_err(|e| fail(e.to_string()))?;
        f.set_modified(SystemTime::now())
            .map_err(|e| fail(e.to_string()))?;
    }
    Ok(())
}

/// `stepops repo-sync bench`: moto's S3 server on a free port, the sync measured against it.
pub async fn run(files: usize, mib: u64) -> Result<(), SyncError> {
    let moto = stepops_testkit::moto::try_moto().await.map_err(fail)?;
    run_on(&moto.endpoint, files, mib).await
}

async fn run_on(endpoint: &str, files: usize, mib: u64) -> Result<(), SyncError> {
    let conf = aws_sdk_s3::config::Builder::new()
        .behavior_version(aws_sdk_s3::config::BehaviorVersion::latest())
        .endpoint_url(endpoint)
        .force_path_style(true)
        .credentials_provider(aws_sdk_s3::config::Credentials::new(
            "testing", "testing", None, None, "bench",
        ));
    let client = stepops_reposync::s3_client(&conf, "us-east-1");
    client
        .create_bucket()
        .bucket("bench")
        .send()
        .await
        .map_err(|e| fail(format!("create bucket: {e}")))?;
    let target = S3Target::new(client);
    let tmp = tempfile::tempdir().map_err(|e| fail(e.to_string()))?;
    let dir = tmp.path();
    let rels = make_tree(dir, files, mib * 1024 * 1024)?;
    println!("tree: {files} files, {mib} MiB, moto's S3 server at {endpoint}");
    let def: Definition = serde_norway::from_str(
        "organization: bench\nrepository: tree\nbranch: main\napp_id: \"1\"\ninstallation_id: 1\nprivate_key_file: unused\nbucket: bench\nregion: us-east-1\nprefix: stepops/\n",
    )
    .map_err(|e| fail(e.to_string()))?;
    print(&timed_run("first sync", &def, &target, dir, &rels).await?);
    print(&timed_run("no change", &def, &target, dir, &rels).await?);
    let aws = Command::new("aws").arg("--version").output().is_ok();
    if aws {
        aws_sync("first sync", endpoint, dir, &[])?;
        aws_sync("no change", endpoint, dir, &[])?;
        touch(dir, &rels)?;
        aws_sync("no change, fresh extraction", endpoint, dir, &[])?;
    }
    let changed = change_one_percent(dir, &rels)?;
    println!("changed {changed} files (same size)");
    print(&timed_run("1 % changed", &def, &target, dir, &rels).await?);
    if aws {
        aws_sync("1 % changed, --size-only", endpoint, dir, &["--size-only"])?;
        aws_sync("1 % changed", endpoint, dir, &[])?;
    } else {
        println!("aws cli: not installed (pip install awscli): not compared");
    }
    if let Some(m) = peak_memory_mib() {
        println!("stepops peak memory (VmHWM): {m:.1} MiB");
    }
    Ok(())
}
