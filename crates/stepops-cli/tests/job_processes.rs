//! Ops jobs with the real `stepops-runner` binary: the job state machine on the local engine
//! (in this test's process, with the job-validate logic), the runner as a separate process
//! polling it over HTTP, SIGKILLed in the middle of a step. An idempotent step runs again on
//! the next runner; a non-idempotent one fails with an unknown outcome and never runs twice.
#![allow(unsafe_code)] // libc: SIGKILL to the runner and to the orphaned job processes.

mod common;

use std::path::Path;
use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

use serde_json::json;
use stepops_embedded::{JobOptions, LocalJobs};
use stepops_testkit::process::isolated_command;

fn catalog(markers: &Path) -> stepops_jobs::Catalog {
    let m = markers.display();
    let job = |name: &str, idempotent: bool, script: String| {
        (
            format!("{name}.yaml"),
            format!(
                "name: {name}\ndescription: test\nenvironments: [dev]\ncommand: [sh, -c, '{script}']\ntimeout_seconds: 600\nheartbeat_seconds: 10\nidempotent: {idempotent}\n"
            ),
        )
    };
    stepops_jobs::Catalog::from_files(vec![
        job("once", false, format!("echo $$ >> {m}/once.pids; sleep 300")),
        job(
            "again",
            true,
            format!("echo $$ >> {m}/again.pids; if [ $(wc -l < {m}/again.pids) -lt 2 ]; then sleep 300; fi; echo finished"),
        ),
    ])
    .unwrap()
}

fn start_runner(dir: &Path, jobs: &LocalJobs, catalog_dir: &Path, n: usize) -> Child {
    let config = dir.join(format!("runner-{n}.yaml"));
    std::fs::write(
        &config,
        format!(
            "activities: [\"{}\"]\nendpoint: {}\nenvironment: dev\nheartbeat_seconds: 1\njobs_dir: {}\njob_root: {}\nobject_store_root: {}\njob_kill_grace_seconds: 1\nworker_name: runner-{n}\n",
            jobs.activity_arn(),
            jobs.endpoint(),
            catalog_dir.display(),
            dir.join("job-root").display(),
            jobs.engine().s3_root().display(),
        ),
    )
    .unwrap();
    let log = std::fs::File::create(dir.join(format!("runner-{n}.log"))).unwrap();
    isolated_command(common::runner_binary(), dir)
        .arg("--config")
        .arg(&config)
        .stdout(Stdio::null())
        .stderr(log)
        .spawn()
        .expect("the stepops-runner binary")
}

fn pids(path: &Path) -> Vec<i32> {
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .filter_map(|l| l.trim().parse().ok())
        .collect()
}

async fn wait_for(what: &str, mut cond: impl FnMut() -> bool) {
    let t = Instant::now();
    while !cond() {
        assert!(
            t.elapsed() < Duration::from_secs(60),
            "timed out waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// SIGKILL to the process group `pid` leads (a job step's `sh` leads its group).
fn kill_group(pid: i32) {
    // SAFETY: kill(2) with plain integers.
    unsafe {
        libc::kill(-pid, libc::SIGKILL);
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_sigkilled_runner_reruns_an_idempotent_step_and_never_a_non_idempotent_one() {
    let dir = tempfile::tempdir().unwrap();
    let markers = dir.path().join("markers");
    let catalog_dir = dir.path().join("jobs");
    std::fs::create_dir_all(&markers).unwrap();
    std::fs::create_dir_all(&catalog_dir).unwrap();
    let catalog = catalog(&markers);
    // The runner binary reads the same catalog from its jobs_dir.
    for j in catalog.jobs() {
        std::fs::write(
            catalog_dir.join(format!("{}.yaml", j.name)),
            serde_norway::to_string(j).unwrap(),
        )
        .unwrap();
    }
    let catalog = stepops_jobs::Catalog::load_dir(&catalog_dir).unwrap();
    let mut options = JobOptions::new(dir.path().join("state"), catalog);
    options.workers = 0;
    options.time_scale = 0.3; // HeartbeatSeconds 10 → 3 s
    let jobs = LocalJobs::start(options).await.unwrap();
    let mut orphans = Vec::new();

    for (job, idempotent) in [("again", true), ("once", false)] {
        let file = markers.join(format!("{job}.pids"));
        let mut first = start_runner(dir.path(), &jobs, &catalog_dir, 1);
        let arn = jobs
            .start_job(&json!({"job": job, "environment": "dev", "params": {}}))
            .unwrap();
        wait_for("the first attempt", || pids(&file).len() == 1).await;
        first.kill().unwrap(); // SIGKILL: nothing answered, no drain
        first.wait().unwrap();
        orphans.extend(pids(&file));
        let mut second = start_runner(dir.path(), &jobs, &catalog_dir, 2);
        let out = jobs.wait(&arn).await.unwrap();
        second.kill().unwrap();
        second.wait().unwrap();
        if idempotent {
            assert_eq!(out.status, "SUCCEEDED", "{out:?}");
            assert_eq!(pids(&file).len(), 2, "the idempotent step ran again");
        } else {
            assert_eq!(out.error.as_deref(), Some("Stepops.JobFailed"), "{out:?}");
            assert!(
                out.cause.as_deref().unwrap().contains("outcome unknown"),
                "{out:?}"
            );
            assert_eq!(
                pids(&file).len(),
                1,
                "the non-idempotent step never ran twice"
            );
        }
    }
    for pid in orphans {
        kill_group(pid);
    }
    eprintln!("orphans killed");
    jobs.shutdown().await;
    eprintln!("engine stopped");
}
