//! The runner against stepops' own local engine (stepops-local): executions of real activity
//! Task states, driven over HTTP by the real SDK on both sides.

use super::{ARN, TestSteps, options};
use serde_json::{Value, json};
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};
use stepops_local::{EngineConfig, LocalEngine};
use stepops_runner::{RunReport, Runner, local_sfn_client};
use tokio_util::sync::CancellationToken;

struct Setup {
    _dir: tempfile::TempDir,
    engine: LocalEngine,
    client: aws_sdk_sfn::Client,
    activity: String,
}

async fn setup() -> Setup {
    let dir = tempfile::tempdir().unwrap();
    let mut config = EngineConfig::new(dir.path().join("state"));
    config.poll_timeout = Duration::from_secs(5);
    let engine = LocalEngine::start(config).await.unwrap();
    let client = local_sfn_client(&engine.endpoint().unwrap());
    let name = ARN.rsplit(':').next().unwrap();
    let activity = client
        .create_activity()
        .name(name)
        .send()
        .await
        .unwrap()
        .activity_arn;
    Setup {
        _dir: dir,
        engine,
        client,
        activity,
    }
}

/// Runs one execution of a single activity Task state with `input`; returns the final
/// DescribeExecution as `(status, output, error, cause)`.
async fn execute(
    s: &Setup,
    name: &str,
    heartbeat_seconds: u64,
    input: Value,
) -> (String, Option<String>, Option<String>, Option<String>) {
    let state = json!({"Type": "Task", "Resource": s.activity,
        "HeartbeatSeconds": heartbeat_seconds, "TimeoutSeconds": 60, "End": true});
    let exec = start(s, name, state, input).await;
    wait_done(s, &exec).await
}

/// Creates a one-state machine around `state` and starts it; returns the execution ARN.
async fn start(s: &Setup, name: &str, state: Value, input: Value) -> String {
    let definition = json!({"StartAt": "Work", "States": {"Work": state}});
    let machine = s
        .client
        .create_state_machine()
        .name(name)
        .definition(definition.to_string())
        .role_arn("arn:aws:iam::123456789012:role/stepops-test")
        .send()
        .await
        .unwrap()
        .state_machine_arn;
    s.client
        .start_execution()
        .state_machine_arn(machine)
        .input(input.to_string())
        .send()
        .await
        .unwrap()
        .execution_arn
}

async fn wait_done(
    s: &Setup,
    exec: &str,
) -> (String, Option<String>, Option<String>, Option<String>) {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let d = s
            .client
            .describe_execution()
            .execution_arn(exec)
            .send()
            .await
            .unwrap();
        if d.status.as_str() != "RUNNING" {
            return (d.status.as_str().to_owned(), d.output, d.error, d.cause);
        }
        assert!(Instant::now() < deadline, "execution still running");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

fn start_runner(
    s: &Setup,
    steps: Arc<TestSteps>,
    heartbeat_ms: u64,
) -> (CancellationToken, tokio::task::JoinHandle<RunReport>) {
    let mut o = options(2, heartbeat_ms);
    o.activities = vec![s.activity.clone()];
    let stop = CancellationToken::new();
    let runner = Runner::new(local_sfn_client(&s.engine.endpoint().unwrap()), o, steps);
    (
        stop.clone(),
        tokio::spawn(runner.run(stop.cancelled_owned())),
    )
}

#[tokio::test]
async fn executions_succeed_and_fail_with_stepops_names() {
    let s = setup().await;
    let (stop, handle) = start_runner(&s, Arc::new(TestSteps::default()), 500);
    let (status, output, ..) = execute(
        &s,
        "ping",
        10,
        json!({"step": "ping", "args": {"sleepMs": 1200}}),
    )
    .await;
    assert_eq!(status, "SUCCEEDED");
    let output: Value = serde_json::from_str(&output.unwrap()).unwrap();
    assert_eq!(output["pong"], json!(true));
    let (status, _, error, cause) = execute(
        &s,
        "fail",
        10,
        json!({"step": "fail", "args": {"name": "Stepops.SchemaMismatch", "cause": "t has no key"}}),
    )
    .await;
    assert_eq!(status, "FAILED");
    assert_eq!(error.as_deref(), Some("Stepops.SchemaMismatch"));
    assert_eq!(cause.as_deref(), Some("t has no key"));
    stop.cancel();
    let report = handle.await.unwrap();
    assert_eq!((report.succeeded, report.failed), (1, 1));
}

#[tokio::test]
async fn a_heartbeat_timeout_cancels_the_step_and_rolls_back() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("dest.db");
    rusqlite::Connection::open(&db)
        .unwrap()
        .execute_batch(
            "CREATE TABLE t(id INTEGER PRIMARY KEY, v TEXT); INSERT INTO t VALUES (1, 'old');",
        )
        .unwrap();
    let s = setup().await;
    let steps = Arc::new(TestSteps::default());
    // Heartbeats every 2.5 s against HeartbeatSeconds 1: the engine times the task out, and the
    // runner learns it at its first heartbeat.
    let (stop, handle) = start_runner(&s, steps.clone(), 2_500);
    let started = Instant::now();
    let (status, _, error, _) = execute(
        &s,
        "hb",
        1,
        json!({"step": "sqlite", "args": {"path": db.to_str().unwrap(), "holdMs": 20_000}}),
    )
    .await;
    assert_eq!(status, "FAILED");
    assert_eq!(error.as_deref(), Some("States.HeartbeatTimeout"));
    while !steps.dropped.load(Ordering::SeqCst) {
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "the step was not cancelled"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let rows: Vec<String> = {
        let c = rusqlite::Connection::open(&db).unwrap();
        let mut st = c.prepare("SELECT v FROM t ORDER BY id").unwrap();
        st.query_map([], |r| r.get(0))
            .unwrap()
            .map(Result::unwrap)
            .collect()
    };
    assert_eq!(
        rows,
        vec!["old".to_owned()],
        "the transaction was rolled back"
    );
    stop.cancel();
    let report = handle.await.unwrap();
    assert_eq!(report.abandoned, 1);
}

/// The runner binary killed with SIGKILL mid-task: the engine times the task out on its
/// heartbeat, the state's Retry schedules it again, and a restarted runner finishes it.
#[tokio::test]
async fn a_killed_runner_s_task_is_retried_and_finished_by_the_next() {
    use super::binary::{runner, sigterm, wait_exit};
    let s = setup().await;
    let dir = tempfile::tempdir().unwrap();
    let config = format!(
        "activities: [{}]\nendpoint: {}\nconcurrency: 1\nheartbeat_seconds: 1\n",
        s.activity,
        s.engine.endpoint().unwrap()
    );
    let dir_a = dir.path().join("a");
    let dir_b = dir.path().join("b");
    std::fs::create_dir_all(&dir_a).unwrap();
    std::fs::create_dir_all(&dir_b).unwrap();
    let mut a = runner(&dir_a, &config, &[]).spawn().unwrap();
    let state = json!({"Type": "Task", "Resource": s.activity, "HeartbeatSeconds": 2,
        "TimeoutSeconds": 60, "End": true,
        "Retry": [{"ErrorEquals": ["States.HeartbeatTimeout"], "IntervalSeconds": 1,
                   "MaxAttempts": 3, "BackoffRate": 1.0}]});
    let started = Instant::now();
    let exec = start(
        &s,
        "crash",
        state,
        json!({"step": "ping", "args": {"sleepMs": 3000}}),
    )
    .await;
    let log_a = dir_a.join("stderr.log");
    while !std::fs::read_to_string(&log_a)
        .unwrap_or_default()
        .contains("task started")
    {
        assert!(
            started.elapsed() < Duration::from_secs(20),
            "runner A never took the task"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    a.kill().unwrap();
    a.wait().unwrap();
    let mut b = runner(&dir_b, &config, &[]).spawn().unwrap();
    let (status, output, error, cause) = wait_done(&s, &exec).await;
    assert_eq!(status, "SUCCEEDED", "{error:?} {cause:?}");
    let output: Value = serde_json::from_str(&output.unwrap()).unwrap();
    assert_eq!(output["pong"], json!(true));
    // A heartbeat timeout (2 s) and a retry happened before runner B's 3 s task.
    assert!(
        started.elapsed() >= Duration::from_secs(5),
        "{:?}",
        started.elapsed()
    );
    sigterm(&b);
    assert!(wait_exit(&mut b, Duration::from_secs(15)).await.success());
    let log_a = std::fs::read_to_string(&log_a).unwrap();
    assert!(
        !log_a.contains("task succeeded"),
        "runner A finished nothing"
    );
}

/// SIGTERM to the binary with two executions running: the short task finishes, the long one is
/// handed back as `Stepops.Transient` (its execution fails with that name, which a state's
/// Retry would catch), and the process exits 0.
#[tokio::test]
async fn sigterm_hands_back_to_the_engine() {
    use super::binary::{runner, sigterm, wait_exit};
    let s = setup().await;
    let dir = tempfile::tempdir().unwrap();
    let config = format!(
        "activities: [{}]\nendpoint: {}\nconcurrency: 2\nheartbeat_seconds: 1\ndrain_timeout_seconds: 2\n",
        s.activity,
        s.engine.endpoint().unwrap()
    );
    let mut child = runner(dir.path(), &config, &[]).spawn().unwrap();
    let state = |ms: u64| {
        (
            json!({"Type": "Task", "Resource": s.activity, "HeartbeatSeconds": 10,
                   "TimeoutSeconds": 120, "End": true}),
            json!({"step": "ping", "args": {"sleepMs": ms}}),
        )
    };
    let (st, input) = state(1_500);
    let short = start(&s, "short", st, input).await;
    let (st, input) = state(600_000);
    let long = start(&s, "long", st, input).await;
    let log = dir.path().join("stderr.log");
    let t0 = Instant::now();
    while std::fs::read_to_string(&log)
        .unwrap_or_default()
        .matches("task started")
        .count()
        < 2
    {
        assert!(
            t0.elapsed() < Duration::from_secs(20),
            "the runner did not take both tasks"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    sigterm(&child);
    assert!(
        wait_exit(&mut child, Duration::from_secs(15))
            .await
            .success()
    );
    let (status, ..) = wait_done(&s, &short).await;
    assert_eq!(status, "SUCCEEDED");
    let (status, _, error, cause) = wait_done(&s, &long).await;
    assert_eq!(status, "FAILED");
    assert_eq!(error.as_deref(), Some("Stepops.Transient"));
    assert!(cause.unwrap_or_default().contains("runner shutting down"));
}

/// An execution stopped while the runner binary holds its task: the answer is refused with
/// `TaskTimedOut`, and the runner's log says what the service answered and what it means
/// (not "timed out, retried there" alone). The history names the runner in `ActivityStarted`
/// (its `worker_name`) and keeps the stop's error and cause in `ExecutionAborted`.
#[tokio::test]
async fn an_answer_for_a_stopped_execution_is_logged_for_what_it_is() {
    use super::binary::{runner, sigterm, wait_exit};
    let s = setup().await;
    let dir = tempfile::tempdir().unwrap();
    let config = format!(
        "activities: [{}]\nendpoint: {}\nconcurrency: 1\nheartbeat_seconds: 30\nworker_name: runner-on-host-7\n",
        s.activity,
        s.engine.endpoint().unwrap()
    );
    let mut child = runner(dir.path(), &config, &[("STEPOPS_LOG", "info")])
        .spawn()
        .unwrap();
    let state = json!({"Type": "Task", "Resource": s.activity, "HeartbeatSeconds": 60,
        "TimeoutSeconds": 120, "End": true});
    let exec = start(
        &s,
        "stopped",
        state,
        json!({"step": "ping", "args": {"sleepMs": 1500}}),
    )
    .await;
    let log = dir.path().join("stderr.log");
    let read = || std::fs::read_to_string(&log).unwrap_or_default();
    let t0 = Instant::now();
    while !read().contains("task started") {
        assert!(t0.elapsed() < Duration::from_secs(20), "no task taken");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    s.client
        .stop_execution()
        .execution_arn(&exec)
        .error("Ops.Stopped")
        .cause("stopped by the operator")
        .send()
        .await
        .unwrap();
    while !read().contains("answer refused") {
        assert!(
            t0.elapsed() < Duration::from_secs(20),
            "no refusal:\n{}",
            read()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    sigterm(&child);
    assert!(
        wait_exit(&mut child, Duration::from_secs(15))
            .await
            .success()
    );
    let line: Value = read()
        .lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .find(|v| v.to_string().contains("answer refused"))
        .unwrap();
    let text = line.to_string();
    assert!(text.contains("\"answered\":\"TaskTimedOut\""), "{text}");
    assert!(text.contains("no longer running"), "{text}");
    assert!(!read().contains("it is retried there"), "{}", read());

    let history = s
        .client
        .get_execution_history()
        .execution_arn(&exec)
        .send()
        .await
        .unwrap();
    let worker = history
        .events()
        .iter()
        .find_map(|e| e.activity_started_event_details())
        .and_then(|d| d.worker_name());
    assert_eq!(worker, Some("runner-on-host-7"));
    let aborted = history
        .events()
        .iter()
        .find_map(|e| e.execution_aborted_event_details())
        .expect("ExecutionAborted with details");
    assert_eq!(aborted.error(), Some("Ops.Stopped"));
    assert_eq!(aborted.cause(), Some("stopped by the operator"));
}
