//! Ops jobs with the real `stepops-runner` binary: the job state machine on the local engine
//! (in this test's process, with the job-validate logic), the runner as a separate process
//! polling it over HTTP (shipping job output to the engine's CloudWatch Logs stand-in),
//! SIGKILLed in the middle of a step. An idempotent step runs again on
//! the next runner; a non-idempotent one fails with an unknown outcome and never runs twice.
#![allow(unsafe_code)] // libc: SIGKILL to the runner and to the orphaned job processes.

mod common;

use std::path::{Path, PathBuf};
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
        job(
            "chatty",
            true,
            format!("echo line-one; echo line-two; sleep 300 & echo $! >> {m}/tree.pids; echo $$ >> {m}/tree.pids; wait"),
        ),
    ])
    .unwrap()
}

/// The markers folder, the catalog folder the runner binary reads (the same jobs as the
/// engine's), and engine options with no in-process worker.
fn setup(dir: &Path) -> (PathBuf, PathBuf, JobOptions) {
    let markers = dir.join("markers");
    let catalog_dir = dir.join("jobs");
    std::fs::create_dir_all(&markers).unwrap();
    std::fs::create_dir_all(&catalog_dir).unwrap();
    for j in catalog(&markers).jobs() {
        std::fs::write(
            catalog_dir.join(format!("{}.yaml", j.name)),
            serde_norway::to_string(j).unwrap(),
        )
        .unwrap();
    }
    let catalog = stepops_jobs::Catalog::load_dir(&catalog_dir).unwrap();
    let mut options = JobOptions::new(dir.join("state"), catalog);
    options.workers = 0;
    (markers, catalog_dir, options)
}

fn start_runner(dir: &Path, jobs: &LocalJobs, catalog_dir: &Path, n: usize) -> Child {
    let config = dir.join(format!("runner-{n}.yaml"));
    std::fs::write(
        &config,
        format!(
            "activities: [\"{}\"]\nendpoint: {}\nenvironment: dev\nheartbeat_seconds: 1\njobs_dir: {}\njob_root: {}\nobject_store_root: {}\njob_kill_grace_seconds: 1\njob_log_group: /stepops/dev/jobs\nworker_name: runner-{n}\n",
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

/// Whether `pid` is a live process (a zombie waiting to be reaped counts as ended).
fn alive(pid: i32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .ok()
        .and_then(|stat| {
            let state = stat
                .rsplit(')')
                .next()?
                .split_whitespace()
                .next()?
                .to_owned();
            Some(state != "Z" && state != "X")
        })
        .unwrap_or(false)
}

/// The `stepops` CLI with `args`, in an environment that reaches no AWS account.
fn stepops(home: &Path, args: &[&str]) -> std::process::Command {
    let mut cmd = isolated_command(env!("CARGO_BIN_EXE_stepops"), home);
    cmd.args(args);
    cmd
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
    let (markers, catalog_dir, mut options) = setup(dir.path());
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

/// `stepops job logs` prints a running execution's step output from the runner's job root (and
/// with --follow until the end); `stepops job cancel` stops the execution, and the runner kills
/// the job's whole process tree (its backgrounded grandchild too) when its next heartbeat (1 s
/// here) is refused, within its 1 s grace.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn job_logs_prints_the_output_and_job_cancel_kills_the_process_tree() {
    let dir = tempfile::tempdir().unwrap();
    let (markers, catalog_dir, options) = setup(dir.path());
    let jobs = LocalJobs::start(options).await.unwrap();
    let mut runner = start_runner(dir.path(), &jobs, &catalog_dir, 1);
    let arn = jobs
        .start_job(&json!({"job": "chatty", "environment": "dev", "params": {}}))
        .unwrap();
    let tree = markers.join("tree.pids");
    wait_for("the job's processes", || pids(&tree).len() == 2).await;
    let job_root = dir.path().join("job-root");
    let root = job_root.to_str().unwrap();

    let out = stepops(dir.path(), &["job", "logs", &arn, "--job-root", root])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{out:?}");
    assert!(text.contains("line-one\nline-two\n"), "{text}");

    // Without a job root here, the same lines from the step's CloudWatch Logs stream (the
    // runner ships them to the engine's stand-in; the group comes from the machine's name).
    let started = Instant::now();
    loop {
        let out = stepops(
            dir.path(),
            &["job", "logs", &arn, "--endpoint", jobs.endpoint()],
        )
        .output()
        .unwrap();
        let text = String::from_utf8_lossy(&out.stdout);
        if out.status.success() && text == "line-one\nline-two\n" {
            let err = String::from_utf8_lossy(&out.stderr);
            assert!(err.contains("== step 0-chatty"), "{err}");
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(20),
            "never shipped: {out:?}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }

    let follower = stepops(
        dir.path(),
        &[
            "job",
            "logs",
            &arn,
            "--job-root",
            root,
            "--follow",
            "--endpoint",
            jobs.endpoint(),
        ],
    )
    .stdout(Stdio::piped())
    .stderr(Stdio::piped())
    .spawn()
    .unwrap();
    let out = stepops(
        dir.path(),
        &["job", "cancel", &arn, "--endpoint", jobs.endpoint()],
    )
    .output()
    .unwrap();
    assert!(out.status.success(), "{out:?}");
    let cancelled = Instant::now();
    let processes = pids(&tree);
    while processes.iter().any(|&p| alive(p)) {
        assert!(
            cancelled.elapsed() < Duration::from_secs(10),
            "the job's processes {processes:?} outlived the cancel"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    eprintln!(
        "process tree gone {:?} after the cancel",
        cancelled.elapsed()
    );
    let out = jobs.wait(&arn).await.unwrap();
    assert_eq!(out.status, "ABORTED", "{out:?}");

    let followed = follower.wait_with_output().unwrap();
    let stdout = String::from_utf8_lossy(&followed.stdout);
    let stderr = String::from_utf8_lossy(&followed.stderr);
    assert!(!followed.status.success(), "{stderr}");
    assert!(stdout.contains("line-one"), "{stdout}");
    assert!(stderr.contains("ABORTED"), "{stderr}");

    // An execution that has ended is not stopped again: the command says so and fails.
    let again = stepops(
        dir.path(),
        &["job", "cancel", &arn, "--endpoint", jobs.endpoint()],
    )
    .output()
    .unwrap();
    assert!(!again.status.success(), "{again:?}");
    assert!(
        String::from_utf8_lossy(&again.stderr).contains("is not running (it ended ABORTED)"),
        "{again:?}"
    );
    runner.kill().unwrap();
    runner.wait().unwrap();
    jobs.shutdown().await;
}
