//! The runner against a Step Functions JSON API on 127.0.0.1 (the in-test fake), through the
//! real `aws-sdk-sfn` client.

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use common::{Answer, FakeSfn};
use serde_json::{Value, json};
use stepops_error::ErrorName;
use stepops_runner::{RunReport, Runner, RunnerOptions, StepError, StepHandler, local_sfn_client};
use tokio_util::sync::CancellationToken;

const ARN: &str = "arn:aws:states:us-east-1:000000000000:activity:test-migrate";
const ARN2: &str = "arn:aws:states:us-east-1:000000000000:activity:test-other";

/// Steps for the tests: `sleep {ms}`, `fail {name, cause}`, `big`, and `sqlite {path, holdMs}`
/// which inserts rows in one transaction and commits only after holding it.
#[derive(Default)]
pub(crate) struct TestSteps {
    running: AtomicUsize,
    max_running: AtomicUsize,
    pub(crate) dropped: Arc<AtomicBool>,
}

struct Running<'a>(&'a TestSteps);
impl Drop for Running<'_> {
    fn drop(&mut self) {
        self.0.running.fetch_sub(1, Ordering::SeqCst);
    }
}

impl StepHandler for TestSteps {
    async fn run(&self, step: &str, args: Value) -> Result<Value, StepError> {
        let now = self.running.fetch_add(1, Ordering::SeqCst) + 1;
        self.max_running.fetch_max(now, Ordering::SeqCst);
        let _guard = Running(self);
        match step {
            "sleep" => {
                let ms = args["ms"].as_u64().unwrap_or(0);
                tokio::time::sleep(Duration::from_millis(ms)).await;
                Ok(json!({"slept": ms}))
            }
            "fail" => Err(StepError::new(
                ErrorName::parse(args["name"].as_str().unwrap()).unwrap(),
                args["cause"].as_str().unwrap(),
            )),
            "big" => Ok(json!({"data": "x".repeat(300_000)})),
            "sqlite" => {
                let cancel = stepops_runner::CancelOnDrop::new();
                let flag = cancel.flag();
                let dropped = self.dropped.clone();
                struct Mark(Arc<AtomicBool>);
                impl Drop for Mark {
                    fn drop(&mut self) {
                        self.0.store(true, Ordering::SeqCst);
                    }
                }
                let _mark = Mark(dropped);
                let conn = rusqlite::Connection::open(args["path"].as_str().unwrap()).unwrap();
                conn.execute_batch("BEGIN; DELETE FROM t WHERE id BETWEEN 1 AND 100;")
                    .unwrap();
                for id in 1..=100 {
                    conn.execute("INSERT INTO t(id, v) VALUES (?1, 'new')", [id])
                        .unwrap();
                }
                tokio::time::sleep(Duration::from_millis(args["holdMs"].as_u64().unwrap())).await;
                assert!(!flag.load(Ordering::Relaxed));
                conn.execute_batch("COMMIT").unwrap();
                Ok(json!({"committed": true}))
            }
            other => Err(StepError::invalid_input(format!("unknown step {other}"))),
        }
    }
}

fn options(concurrency: usize, heartbeat_ms: u64) -> RunnerOptions {
    let mut o = RunnerOptions::new(vec![ARN.to_owned()]);
    o.concurrency = concurrency;
    o.heartbeat_interval = Duration::from_millis(heartbeat_ms);
    o.drain_timeout = Duration::from_secs(5);
    o.worker_name = "test-worker".into();
    o.answer_backoff = Duration::from_millis(20);
    o
}

struct Running2 {
    stop: CancellationToken,
    handle: tokio::task::JoinHandle<RunReport>,
}

impl Running2 {
    async fn stop(self) -> RunReport {
        self.stop.cancel();
        tokio::time::timeout(Duration::from_secs(20), self.handle)
            .await
            .expect("the runner stops")
            .unwrap()
    }
}

fn start(fake: &FakeSfn, options: RunnerOptions, steps: Arc<TestSteps>) -> Running2 {
    let stop = CancellationToken::new();
    let runner = Runner::new(local_sfn_client(&fake.endpoint()), options, steps);
    let handle = tokio::spawn(runner.run(stop.clone().cancelled_owned()));
    Running2 { stop, handle }
}

#[tokio::test]
async fn runs_at_most_n_tasks_at_once_over_several_activities() {
    let fake = FakeSfn::start(Duration::from_secs(2)).await;
    let steps = Arc::new(TestSteps::default());
    let mut opts = options(2, 5_000);
    opts.activities.push(ARN2.to_owned());
    let runner = start(&fake, opts, steps.clone());
    let tokens: Vec<String> = (0..6)
        .map(|i| {
            let arn = if i % 2 == 0 { ARN } else { ARN2 };
            fake.push(arn, json!({"step": "sleep", "args": {"ms": 300}}))
        })
        .collect();
    for t in &tokens {
        assert_eq!(
            fake.wait_answer(t, Duration::from_secs(10)).await,
            Answer::Success(json!({"slept": 300}))
        );
    }
    let report = runner.stop().await;
    assert_eq!(report.succeeded, 6);
    assert_eq!(steps.max_running.load(Ordering::SeqCst), 2);
    assert_eq!(
        fake.max_outstanding(),
        2,
        "never more tasks taken than slots"
    );
}

/// A poll the server holds for several seconds (the service: 60 s) is waited for, not cut by a
/// client timeout (stalled-stream protection, read timeout) and retried.
#[tokio::test]
async fn held_polls_are_waited_for() {
    let fake = FakeSfn::start(Duration::from_secs(7)).await;
    let runner = start(&fake, options(1, 5_000), Arc::new(TestSteps::default()));
    tokio::time::sleep(Duration::from_millis(7_500)).await;
    let t = fake.push(ARN, json!({"step": "sleep", "args": {"ms": 1}}));
    fake.wait_answer(&t, Duration::from_secs(5)).await;
    let starts = fake.poll_starts();
    assert!(starts.len() >= 2, "{} polls", starts.len());
    let gap = starts[1].duration_since(starts[0]);
    assert!(
        gap >= Duration::from_millis(6_900),
        "the first poll ended after {gap:?}"
    );
    runner.stop().await;
}

#[tokio::test]
async fn heartbeats_at_the_interval() {
    let fake = FakeSfn::start(Duration::from_secs(2)).await;
    let runner = start(&fake, options(1, 200), Arc::new(TestSteps::default()));
    let started = Instant::now();
    let t = fake.push(ARN, json!({"step": "sleep", "args": {"ms": 1100}}));
    fake.wait_answer(&t, Duration::from_secs(10)).await;
    let beats = fake.heartbeats(&t);
    assert!((4..=6).contains(&beats.len()), "{} heartbeats", beats.len());
    assert!(beats[0].duration_since(started) >= Duration::from_millis(180));
    for w in beats.windows(2) {
        let gap = w[1].duration_since(w[0]);
        assert!(
            gap >= Duration::from_millis(150),
            "heartbeats {gap:?} apart"
        );
    }
    runner.stop().await;
}

#[tokio::test]
async fn timed_out_heartbeat_cancels_the_step_and_rolls_back() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("dest.db");
    {
        let c = rusqlite::Connection::open(&db).unwrap();
        c.execute_batch(
            "CREATE TABLE t(id INTEGER PRIMARY KEY, v TEXT);
             INSERT INTO t VALUES (1, 'old'), (2, 'old'), (3, 'old');",
        )
        .unwrap();
    }
    let fake = FakeSfn::start(Duration::from_secs(2)).await;
    let steps = Arc::new(TestSteps::default());
    let runner = start(&fake, options(1, 100), steps.clone());
    let t = fake.push(
        ARN,
        json!({"step": "sqlite", "args": {"path": db.to_str().unwrap(), "holdMs": 20_000}}),
    );
    fake.wait_delivered(&t, Duration::from_secs(5)).await;
    while fake.heartbeats(&t).is_empty() {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    fake.time_out(&t);
    let deadline = Instant::now() + Duration::from_secs(5);
    while !steps.dropped.load(Ordering::SeqCst) {
        assert!(Instant::now() < deadline, "the step was not cancelled");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    // The transaction was rolled back: the old rows are there, no new row is.
    let c = rusqlite::Connection::open(&db).unwrap();
    let (old, new): (i64, i64) = c
        .query_row("SELECT sum(v = 'old'), sum(v = 'new') FROM t", [], |r| {
            Ok((r.get(0)?, r.get::<_, Option<i64>>(1)?.unwrap_or(0)))
        })
        .unwrap();
    assert_eq!((old, new), (3, 0));
    // The slot is free again: a next task runs.
    let t2 = fake.push(ARN, json!({"step": "sleep", "args": {"ms": 10}}));
    fake.wait_answer(&t2, Duration::from_secs(5)).await;
    let report = runner.stop().await;
    assert_eq!(
        fake.answer(&t),
        None,
        "nothing is answered for a timed-out task"
    );
    assert_eq!(report.abandoned, 1);
    assert_eq!(report.succeeded, 1);
}

#[tokio::test]
async fn failures_carry_stepops_names_within_the_api_limits() {
    let fake = FakeSfn::start(Duration::from_secs(2)).await;
    let mut opts = options(4, 5_000);
    opts.environment = Some(stepops_error::Environment::Dev);
    let runner = start(&fake, opts, Arc::new(TestSteps::default()));
    let long_cause = "é".repeat(40_000);
    let cases = [
        (
            fake.push(
                ARN,
                json!({"step": "fail", "args": {"environment": "dev", "name": "Stepops.SchemaMismatch", "cause": "table t has no key"}}),
            ),
            "Stepops.SchemaMismatch",
            "table t has no key",
        ),
        (
            fake.push(
                ARN,
                json!({"step": "fail", "args": {"environment": "dev", "name": "Stepops.Transient", "cause": long_cause}}),
            ),
            "Stepops.Transient",
            "ééé",
        ),
        (fake.push_raw(ARN, "not json"), "Stepops.InvalidInput", "not JSON"),
        (
            fake.push(ARN, json!({"args": {}})),
            "Stepops.InvalidInput",
            "no string `step`",
        ),
        (
            fake.push(ARN, json!({"step": "sleep", "args": {"environment": "prod"}})),
            "Stepops.WrongEnvironment",
            "serves environment `dev`",
        ),
        (
            fake.push(ARN, json!({"step": "big", "args": {"environment": "dev"}})),
            "Stepops.Internal",
            "over Step Functions' limit",
        ),
        (
            fake.push(ARN, json!({"step": "sleep", "args": {"ms": 1}})),
            "Stepops.InvalidInput",
            "no string argument `environment`",
        ),
    ];
    for (token, name, text) in &cases {
        match fake.wait_answer(token, Duration::from_secs(10)).await {
            Answer::Failure { error, cause } => {
                assert_eq!(error, *name);
                assert!(cause.contains(text), "{cause:.200}");
                assert!(cause.chars().count() <= 32_768);
            }
            other => panic!("{name}: expected a failure, got {other:?}"),
        }
    }
    let ping = fake.push(ARN, json!({"step": "ping", "args": {"environment": "dev"}}));
    assert_eq!(
        fake.wait_answer(&ping, Duration::from_secs(5)).await,
        Answer::Success(json!({"pong": true, "worker": "test-worker"}))
    );
    let report = runner.stop().await;
    assert_eq!(report.failed, 7);
}

#[tokio::test]
async fn transient_answer_failures_are_retried() {
    let fake = FakeSfn::start(Duration::from_secs(2)).await;
    let runner = start(&fake, options(1, 5_000), Arc::new(TestSteps::default()));
    fake.fail_next_answers(3);
    let t = fake.push(ARN, json!({"step": "sleep", "args": {"ms": 1}}));
    assert_eq!(
        fake.wait_answer(&t, Duration::from_secs(20)).await,
        Answer::Success(json!({"slept": 1}))
    );
    // The SDK itself retries 5xx too; at least our attempts plus its own got through.
    assert!(
        fake.answer_attempts(&t) >= 4,
        "{}",
        fake.answer_attempts(&t)
    );
    runner.stop().await;
}

#[tokio::test]
async fn drain_finishes_short_tasks_and_hands_back_the_rest() {
    let fake = FakeSfn::start(Duration::from_secs(30)).await;
    let mut opts = options(2, 5_000);
    opts.drain_timeout = Duration::from_millis(1_500);
    let runner = start(&fake, opts, Arc::new(TestSteps::default()));
    let short = fake.push(ARN, json!({"step": "sleep", "args": {"ms": 700}}));
    let long = fake.push(ARN, json!({"step": "sleep", "args": {"ms": 60_000}}));
    fake.wait_delivered(&short, Duration::from_secs(5)).await;
    fake.wait_delivered(&long, Duration::from_secs(5)).await;
    let polls_before = fake.polls();
    let asked = Instant::now();
    let report = runner.stop().await;
    let took = asked.elapsed();
    assert!(took < Duration::from_secs(4), "drain took {took:?}");
    assert_eq!(
        fake.answer(&short),
        Some(Answer::Success(json!({"slept": 700})))
    );
    match fake.answer(&long) {
        Some(Answer::Failure { error, cause }) => {
            assert_eq!(error, "Stepops.Transient");
            assert!(cause.contains("runner shutting down"), "{cause}");
        }
        other => panic!("expected a hand-back, got {other:?}"),
    }
    // Queued after the stop: never taken.
    let late = fake.push(ARN, json!({"step": "sleep", "args": {"ms": 1}}));
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert!(!fake.delivered(&late));
    assert!(fake.polls() <= polls_before + 1);
    assert_eq!((report.succeeded, report.handed_back), (1, 1));
}

#[path = "cases/migration.rs"]
mod migration;

#[path = "cases/binary.rs"]
mod binary;

#[path = "cases/local_engine.rs"]
mod local_engine;

#[path = "cases/postgres.rs"]
mod postgres;

#[path = "cases/trust.rs"]
mod trust;

#[tokio::test]
async fn manifests_and_copy_results_go_through_s3() {
    use stepops_runner::{ObjectStore, S3Store};
    let fake = FakeSfn::start(Duration::from_secs(1)).await;
    let config = aws_sdk_s3::config::Builder::new()
        .behavior_version(aws_sdk_s3::config::BehaviorVersion::latest())
        .endpoint_url(fake.endpoint())
        .force_path_style(true)
        .region(aws_sdk_s3::config::Region::new("us-east-1"))
        .credentials_provider(aws_sdk_s3::config::Credentials::new(
            "t", "t", None, None, "t",
        ))
        .build();
    let store = S3Store::new(aws_sdk_s3::Client::from_conf(config));
    let body = b"{\"table\":\"users\",\"min\":1,\"max\":9,\"estimatedRows\":9}\n".to_vec();
    store
        .put("stepops-dev", "runs/e1/round-1.jsonl", body.clone())
        .await
        .unwrap();
    assert_eq!(fake.object("stepops-dev/runs/e1/round-1.jsonl"), Some(body));
    // Copy results are read back through GetObject, in the format Step Functions writes.
    let child = |rows: u64| {
        json!({"Name": "x", "Status": "SUCCEEDED",
               "Output": json!({"rowsInserted": rows, "rowsDeleted": 1}).to_string()})
    };
    store
        .put(
            "stepops-dev",
            "results/e1/round-1/run/SUCCEEDED_0.json",
            json!([child(7), child(8)]).to_string().into_bytes(),
        )
        .await
        .unwrap();
    store
        .put(
            "stepops-dev",
            "results/e1/round-1/run/manifest.json",
            json!({"DestinationBucket": "stepops-dev", "MapRunArn": "arn:m",
                   "ResultFiles": {"FAILED": [], "PENDING": [], "SUCCEEDED": [
                       {"Key": "results/e1/round-1/run/SUCCEEDED_0.json", "Size": 1}]}})
            .to_string()
            .into_bytes(),
        )
        .await
        .unwrap();
    let totals = stepops_runner::round_totals(
        &store,
        "stepops-dev",
        "results/e1/round-1/run/manifest.json",
    )
    .await
    .unwrap();
    assert_eq!(
        (
            totals.chunks_copied,
            totals.rows_copied,
            totals.rows_deleted
        ),
        (2, 15, 2)
    );
    let missing = store
        .get("stepops-dev", "results/none.json")
        .await
        .unwrap_err();
    assert_eq!(
        stepops_error::Named::error_name(&missing),
        ErrorName::NotFound,
        "{missing}"
    );
    let err = store
        .put("missing", "k.jsonl", b"x".to_vec())
        .await
        .unwrap_err();
    assert_eq!(
        stepops_error::Named::error_name(&err),
        ErrorName::NotFound,
        "{err}"
    );
}
