//! The Synapse stack migration through the whole pipeline: the project's migrate.asl.json and
//! template.yaml on the local engine (`stepops-embedded`), the real validate-input and notify
//! logic, runner workers in-process polling over HTTP, and two fake Synapse stacks
//! (`stepops-synapse-fake`: real HTTP on 127.0.0.1, real SQLite, one shared backup folder).

use std::time::Duration;

use serde_json::{Value, json};
use stepops_embedded::{ALL_LOCAL_TARGETS, LocalPipeline, PipelineOptions, RunSummary};
use stepops_synapse_fake::{FakeOptions, FakeStack, TypeDef};

fn options(dir: &std::path::Path) -> PipelineOptions {
    let mut o = PipelineOptions::new(dir.join("stack"));
    o.allowed_targets = ALL_LOCAL_TARGETS.into();
    o.heartbeat_interval = Duration::from_secs(2);
    o
}

async fn stacks(dir: &std::path::Path, types: Option<Vec<TypeDef>>) -> (FakeStack, FakeStack) {
    let mk = |name: &str| {
        let mut o = FakeOptions::new(name, dir.join("backups"));
        if let Some(t) = &types {
            o.types = t.clone();
        }
        o
    };
    (
        FakeStack::start(mk("prod")).await,
        FakeStack::start(mk("staging")).await,
    )
}

fn input(s: &FakeStack, d: &FakeStack, synapse: Value) -> Value {
    json!({
        "environment": "dev",
        "source": {"url": s.url()},
        "dest": {"url": d.url()},
        "config": {"synapse": synapse},
        "chunkRows": 100,
        "maxConcurrency": 4,
        "readOnlyDuringCopy": true,
    })
}

fn fast() -> Value {
    json!({"pollMaxMs": 20, "batchSize": 100, "rowsPerRange": 25})
}

fn assert_succeeded(s: &RunSummary) {
    assert!(
        s.succeeded(),
        "{} {:?} {:?} in {:?}",
        s.status,
        s.error,
        s.cause,
        s.failed_step
    );
}

/// The `set-status` outputs of the execution, in order.
fn set_status_outputs(pipeline: &LocalPipeline, arn: &str) -> Vec<Value> {
    let mut current = String::new();
    let mut out = Vec::new();
    for e in pipeline.engine().history(arn).unwrap() {
        match e.event_type.as_str() {
            "TaskStateEntered" => {
                current = e.details["name"].as_str().unwrap_or_default().to_owned()
            }
            "ActivitySucceeded" if current.starts_with("SetDestination") => {
                out.push(serde_json::from_str(e.details["output"].as_str().unwrap()).unwrap());
            }
            _ => {}
        }
    }
    out
}

fn seed_all(s: &FakeStack, ids: std::ops::RangeInclusive<i64>) {
    for t in ["PRINCIPAL", "NODE", "ACL", "FILE_HANDLE", "CHANGE"] {
        s.seed(t, ids.clone(), 2);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn full_copy_into_an_empty_stack_then_a_second_run_copies_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let (s, d) = stacks(dir.path(), None).await;
    seed_all(&s, 1..=400);
    let pipeline = LocalPipeline::start(options(dir.path())).await.unwrap();
    let arn = pipeline.start_migration(&input(&s, &d, fast())).unwrap();
    let run = pipeline.wait(&arn).await.unwrap();
    assert_succeeded(&run);
    assert_eq!(s.dump(), d.dump(), "the destination equals the source");
    assert_eq!(
        run.rounds, 2,
        "the change log alone, in a second round: {run:?}"
    );
    assert_eq!(run.rows_copied, 5 * 400, "{run:?}");
    assert!(d.violations().is_empty(), "{:?}", d.violations());
    assert_eq!(
        set_status_outputs(&pipeline, &arn),
        vec![
            json!({"readOnly": true, "mechanism": "stackStatus", "changed": true}),
            json!({"readOnly": false, "mechanism": "stackStatus", "changed": true}),
        ]
    );
    assert_eq!(d.status(), "READ_WRITE");
    for ((kind, t, lo, hi), n) in s.jobs_started().into_iter().chain(d.jobs_started()) {
        assert!(
            !matches!(kind.as_str(), "backup" | "restore") || n == 1,
            "{kind} {t} [{lo}, {hi}) started {n} times"
        );
    }

    let restores = d.jobs_of("restore");
    let arn = pipeline.start_migration(&input(&s, &d, fast())).unwrap();
    let again = pipeline.wait(&arn).await.unwrap();
    assert_succeeded(&again);
    assert_eq!((again.chunks, again.rows_copied), (0, 0), "{again:?}");
    assert_eq!(
        d.jobs_of("restore"),
        restores,
        "nothing restored the second time"
    );
    pipeline.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn diverged_destination_converges_and_stays_read_only_when_asked() {
    let dir = tempfile::tempdir().unwrap();
    let (s, d) = stacks(dir.path(), None).await;
    seed_all(&s, 1..=300);
    seed_all(&d, 1..=300);
    d.seed("NODE", 301..=340, 1); // rows added on the destination
    d.write("ACL", 17, "e-stale").unwrap(); // changed with a new etag
    d.delete("PRINCIPAL", 99).unwrap(); // deleted, with its secondary rows
    s.write_secondary(
        "NODE_REVISION",
        120,
        7,
        "a new revision",
        Some(("NODE", "e2-120")),
    )
    .unwrap();
    d.write_secondary(
        "PRINCIPAL_ALIAS",
        5,
        0,
        "edited alias",
        Some(("PRINCIPAL", "e2-5")),
    )
    .unwrap();
    assert_ne!(s.dump(), d.dump());
    let pipeline = LocalPipeline::start(options(dir.path())).await.unwrap();
    let mut stay = fast();
    stay["remainReadOnly"] = json!(true);
    let arn = pipeline.start_migration(&input(&s, &d, stay)).unwrap();
    let run = pipeline.wait(&arn).await.unwrap();
    assert_succeeded(&run);
    assert_eq!(s.dump(), d.dump());
    assert_eq!(d.status(), "READ_ONLY", "remainReadOnly keeps it read-only");
    let text = &run.notifications[0].text;
    assert!(
        text.contains("SUCCEEDED") || text.contains("succeeded"),
        "{text}"
    );
    assert_eq!(
        set_status_outputs(&pipeline, &arn)[1],
        json!({"readOnly": true, "mechanism": "stackStatus", "changed": false})
    );
    // Only what differed moved: 4 types touched, far fewer rows than the 1,500 of the stack.
    assert!(run.rows_copied < 400, "{run:?}");
    pipeline.shutdown().await;
}

/// The destination's status requests to `stack` in order (`READ_ONLY` / `READ_WRITE`), and for
/// each the number of restore jobs posted before it.
fn status_changes(stack: &FakeStack) -> Vec<(String, usize)> {
    let mut restores = 0;
    let mut out = Vec::new();
    for r in stack.requests() {
        let body: Value = serde_json::from_slice(&r.body).unwrap_or(Value::Null);
        if r.method == "POST" && r.path.ends_with("/admin/asynchronous/job") {
            let kind = body["adminRequest"]["concreteType"].as_str().unwrap_or("");
            if kind.ends_with("RestoreTypeRequest") {
                restores += 1;
            }
        }
        if r.method == "PUT" && r.path.ends_with("/admin/synapse/status") {
            out.push((body["status"].as_str().unwrap_or("?").to_owned(), restores));
        }
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_failed_job_fails_the_run_by_name_puts_it_back_read_write_and_a_redrive_resumes() {
    let dir = tempfile::tempdir().unwrap();
    let (s, d) = stacks(dir.path(), None).await;
    seed_all(&s, 1..=200);
    d.fail_next_job(
        "restore",
        "Lock wait timeout exceeded; try restarting transaction",
    );
    let pipeline = LocalPipeline::start(options(dir.path())).await.unwrap();
    let arn = pipeline.start_migration(&input(&s, &d, fast())).unwrap();
    let failed = pipeline.wait(&arn).await.unwrap();
    assert_eq!(failed.status, "FAILED", "{failed:?}");
    // The chunk's child failed Stepops.ServiceFailed (not retried); the Map reports it as
    // its failure threshold exceeded, and the notification names the chunk's error (below).
    assert_eq!(
        failed.failed_step.as_deref(),
        Some("CopyChunks"),
        "{failed:?}"
    );
    assert_eq!(
        failed.error.as_deref(),
        Some("States.ExceedToleratedFailureThreshold"),
        "{failed:?}"
    );
    // The release machine put it back READ_WRITE, and the notification says so.
    assert_eq!(
        d.status(),
        "READ_WRITE",
        "a failed run puts the destination back read-write"
    );
    let text = &failed.notifications[0].text;
    assert!(
        text.contains("The destination is READ-WRITE again"),
        "{text}"
    );
    assert!(!text.contains("READ-ONLY"), "{text}");
    // The execution shows the Map's threshold error; the notification names the chunk's own.
    assert!(text.contains("error: Stepops.ServiceFailed\n"), "{text}");
    assert!(
        text.contains("(the copy Map reported States.ExceedToleratedFailureThreshold)"),
        "{text}"
    );
    assert!(text.contains("Lock wait timeout exceeded"), "{text}");
    assert!(
        failed.notifications[0]
            .subject
            .ends_with("Stepops.ServiceFailed"),
        "{}",
        failed.notifications[0].subject
    );
    let before_redrive = status_changes(&d);
    assert_eq!(
        before_redrive
            .iter()
            .map(|(s, _)| s.as_str())
            .collect::<Vec<_>>(),
        ["READ_ONLY", "READ_WRITE"],
        "{before_redrive:?}"
    );

    // The Map's other children were aborted; their runner tasks stop at their next heartbeat
    // (refused). Redrive after that, as an operator does: a redrive while an aborted chunk still
    // runs could start a second backup of a range (harmless, but a job more).
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(s.jobs_running("backup") + d.jobs_running("restore"), 0);
    // Restores posted up to the redrive (the aborted chunks' last jobs included).
    let restores_at_redrive = d
        .requests()
        .iter()
        .filter(|r| {
            r.method == "POST" && String::from_utf8_lossy(&r.body).contains("RestoreTypeRequest")
        })
        .count();
    pipeline.engine().redrive_execution(&arn).unwrap();
    let done = pipeline.wait(&arn).await.unwrap();
    assert_succeeded(&done);
    assert_eq!(s.dump(), d.dump());
    assert_eq!(d.status(), "READ_WRITE");
    for ((kind, t, lo, hi), n) in s.jobs_started() {
        assert!(
            kind != "backup" || n == 1,
            "backup {t} [{lo}, {hi}) started {n} times"
        );
    }
    let restarts: usize = d
        .jobs_started()
        .iter()
        .filter(|(k, _)| k.0 == "restore")
        .map(|(_, n)| n - 1)
        .sum();
    assert_eq!(restarts, 1, "only the FAILED restore ran again");
    // The redrive put it read-only again before its first restore, and back at its end (two
    // chunks starting at once on two runner workers may both ask: the same status twice).
    let mut changes = status_changes(&d);
    changes.dedup_by(|a, b| a.0 == b.0);
    assert_eq!(
        changes[2..]
            .iter()
            .map(|(s, _)| s.as_str())
            .collect::<Vec<_>>(),
        ["READ_ONLY", "READ_WRITE"],
        "{changes:?}"
    );
    assert_eq!(
        changes[2].1, restores_at_redrive,
        "read-only again before any restore of the redrive: {changes:?}"
    );
    pipeline.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_failed_run_with_remain_read_only_leaves_it_read_only_and_says_so() {
    let dir = tempfile::tempdir().unwrap();
    let (s, d) = stacks(dir.path(), None).await;
    seed_all(&s, 1..=50);
    d.fail_next_job("restore", "Lock wait timeout exceeded");
    let pipeline = LocalPipeline::start(options(dir.path())).await.unwrap();
    let mut stay = fast();
    stay["remainReadOnly"] = json!(true);
    let arn = pipeline.start_migration(&input(&s, &d, stay)).unwrap();
    let failed = pipeline.wait(&arn).await.unwrap();
    assert_eq!(failed.status, "FAILED", "{failed:?}");
    assert_eq!(d.status(), "READ_ONLY");
    let text = &failed.notifications[0].text;
    assert!(
        text.contains("The destination is still READ-ONLY: the config asks it to stay read-only"),
        "{text}"
    );
    pipeline.shutdown().await;
}

/// A stack that was READ_ONLY before the run (an operator's maintenance) is left as it was
/// after a failure: stepops undoes only what it changed.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_failed_run_leaves_a_stack_that_was_read_only_before_it_as_it_was() {
    let dir = tempfile::tempdir().unwrap();
    let (s, d) = stacks(dir.path(), None).await;
    seed_all(&s, 1..=50);
    d.set_status("READ_ONLY");
    d.fail_next_job("restore", "Lock wait timeout exceeded");
    let pipeline = LocalPipeline::start(options(dir.path())).await.unwrap();
    let arn = pipeline.start_migration(&input(&s, &d, fast())).unwrap();
    let failed = pipeline.wait(&arn).await.unwrap();
    assert_eq!(failed.status, "FAILED", "{failed:?}");
    assert_eq!(d.status(), "READ_ONLY");
    assert!(status_changes(&d).is_empty(), "{:?}", status_changes(&d));
    pipeline.shutdown().await;
}

/// `delayBeforeStartSeconds`: the run waits before touching anything, so a run started by
/// mistake and stopped during the wait leaves the destination READ_WRITE with no job started.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_run_stopped_during_its_delay_before_start_touches_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let (s, d) = stacks(dir.path(), None).await;
    seed_all(&s, 1..=50);
    let pipeline = LocalPipeline::start(options(dir.path())).await.unwrap();
    let mut run = input(&s, &d, fast());
    run["delayBeforeStartSeconds"] = json!(600);
    let arn = pipeline.start_migration(&run).unwrap();
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    while !pipeline
        .engine()
        .history(&arn)
        .unwrap()
        .iter()
        .any(|e| e.event_type == "WaitStateEntered")
    {
        assert!(std::time::Instant::now() < deadline, "never waited");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    pipeline
        .engine()
        .stop_execution(&arn, Some("Mistake"), None)
        .unwrap();
    let stopped = pipeline.wait(&arn).await.unwrap();
    assert_eq!(stopped.status, "ABORTED", "{stopped:?}");
    assert_eq!(d.status(), "READ_WRITE");
    assert_eq!(s.jobs_of("backup") + d.jobs_of("restore"), 0);
    assert!(
        d.requests().is_empty(),
        "the destination was not even asked"
    );
    pipeline.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_source_written_during_the_run_converges_within_the_round_limit() {
    let dir = tempfile::tempdir().unwrap();
    let (s, d) = stacks(dir.path(), None).await;
    seed_all(&s, 1..=300);
    let s = std::sync::Arc::new(s);
    let pipeline = LocalPipeline::start(options(dir.path())).await.unwrap();
    let arn = pipeline.start_migration(&input(&s, &d, fast())).unwrap();
    // Users keep writing to the source while the first round copies.
    let writer = {
        let s = s.clone();
        tokio::spawn(async move {
            while s.jobs_of("backup") == 0 {
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
            for i in 0..40 {
                s.write("NODE", 1 + (i * 7) % 300, &format!("during-{i}"))
                    .unwrap();
                s.write("ACL", 1000 + i, "new").unwrap();
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        })
    };
    let run = pipeline.wait(&arn).await.unwrap();
    writer.await.unwrap();
    assert_succeeded(&run);
    assert_eq!(s.dump(), d.dump());
    assert!(run.rounds >= 2, "{run:?}");
    pipeline.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_118_type_run_keeps_the_execution_history_small() {
    let dir = tempfile::tempdir().unwrap();
    let names: Vec<String> = (0..117)
        .map(|i| format!("TYPE_{i:03}"))
        .chain(["CHANGE".to_owned()])
        .collect();
    let types: Vec<TypeDef> = names.iter().map(|n| TypeDef::new(n, &[])).collect();
    let (s, d) = stacks(dir.path(), Some(types)).await;
    for n in &names {
        s.seed(n, 1..=60, 0);
    }
    let pipeline = LocalPipeline::start(options(dir.path())).await.unwrap();
    let mut i = input(&s, &d, json!({"pollMaxMs": 20, "rowsPerRange": 5}));
    i["maxConcurrency"] = json!(8);
    let arn = pipeline.start_migration(&i).unwrap();
    let run = pipeline.wait(&arn).await.unwrap();
    assert_succeeded(&run);
    assert_eq!(s.dump(), d.dump());
    let events = pipeline.engine().history(&arn).unwrap().len();
    let ranges = d.jobs_of("restore");
    eprintln!(
        "118 types, {ranges} ranges restored, {} rounds: {events} events in the execution's history",
        run.rounds
    );
    assert!(ranges >= 118 * 12, "{ranges}");
    assert!(events < 300, "{events} history events for 118 types");
    pipeline.shutdown().await;
}
