//! Task states against a test dispatcher: retries, timeouts, heartbeats, catch, resume after a
//! crash, redrive, payload limits, Parallel cancellation.

mod common;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::{FnTasks, MemStore};
use futures::FutureExt;
use serde_json::{Value, json};
use stepops_asl::{
    Definition, ExecutionResult, RunOptions, Snapshot, TaskDispatcher, TaskError, TaskInvocation,
};
use tokio_util::sync::CancellationToken;

const LAMBDA: &str = "arn:aws:states:::lambda:invoke";
const ACTIVITY: &str = "arn:aws:states:us-east-1:123456789012:activity:work";

async fn run_with(
    def: &Value,
    input: Value,
    tasks: Arc<dyn TaskDispatcher>,
    scale: f64,
    resume: Option<Snapshot>,
) -> (ExecutionResult, Arc<MemStore>) {
    let def = Definition::parse(&def.to_string()).expect("definition loads");
    let store = Arc::new(MemStore::default());
    let r = stepops_asl::run(
        Arc::new(def),
        common::info("t"),
        input,
        resume,
        tasks,
        store.clone(),
        RunOptions {
            time_scale: scale,
            ..Default::default()
        },
        CancellationToken::new(),
    )
    .await;
    (r, store)
}

fn failed(r: &ExecutionResult) -> (String, String) {
    match r {
        ExecutionResult::Failed { error, cause } => (
            error.clone().unwrap_or_default(),
            cause.clone().unwrap_or_default(),
        ),
        other => panic!("expected a failure, got {other:?}"),
    }
}

fn output(r: ExecutionResult) -> Value {
    match r {
        ExecutionResult::Succeeded { output } => output,
        other => panic!("expected success, got {other:?}"),
    }
}

fn task_def(extra: Value) -> Value {
    let mut task = json!({"Type": "Task", "Resource": LAMBDA, "End": true});
    for (k, v) in extra.as_object().unwrap() {
        task[k] = v.clone();
    }
    json!({"StartAt": "T", "States": {"T": task}})
}

#[tokio::test]
async fn task_data_flow_and_events() {
    let tasks = FnTasks::new(|t: TaskInvocation| {
        async move {
            Ok(json!({"Payload": {"sum": t.input["a"].as_i64().unwrap() + 1}, "StatusCode": 200}))
        }
        .boxed()
    });
    let def = task_def(json!({
        "Parameters": {"a.$": "$.x", "token.$": "$$.Task.Token", "name.$": "$$.State.Name"},
        "ResultSelector": {"sum.$": "$.Payload.sum"},
        "ResultPath": "$.deep.result",
    }));
    let (r, store) = run_with(
        &def,
        json!({"x": 41, "deep": {"keep": 1}}),
        tasks.clone(),
        0.0,
        None,
    )
    .await;
    assert_eq!(
        output(r),
        json!({"x": 41, "deep": {"keep": 1, "result": {"sum": 42}}})
    );
    let call = &tasks.calls()[0];
    assert_eq!(call.input["token"], json!(call.task_token));
    assert_eq!(call.input["name"], json!("T"));
    assert_eq!(call.state_name, "T");
    assert_eq!(
        store.event_types(),
        [
            "ExecutionStarted",
            "TaskStateEntered",
            "TaskScheduled",
            "TaskStarted",
            "TaskSucceeded",
            "TaskStateExited",
            "ExecutionSucceeded"
        ]
    );
    let events = store.events.lock().unwrap().clone();
    for (i, e) in events.iter().enumerate() {
        assert_eq!(e.id, i as i64 + 1);
    }
    assert_eq!(events[2].details["resourceType"], "lambda");
    assert_eq!(events[2].details["resource"], "invoke");
}

#[tokio::test]
async fn activity_events_and_heartbeat_keeps_task_alive() {
    // Beats every 10 ms for 300 ms; HeartbeatSeconds 20 at scale 0.01 = 200 ms.
    let tasks = FnTasks::new(|t: TaskInvocation| {
        async move {
            for _ in 0..30 {
                tokio::time::sleep(Duration::from_millis(10)).await;
                t.heartbeat.beat();
            }
            Ok(json!("done"))
        }
        .boxed()
    });
    let def = json!({"StartAt": "T", "States": {"T": {
        "Type": "Task", "Resource": ACTIVITY, "HeartbeatSeconds": 20, "TimeoutSeconds": 1000, "End": true}}});
    let (r, store) = run_with(&def, json!({}), tasks, 0.01, None).await;
    assert_eq!(output(r), json!("done"));
    let types = store.event_types();
    assert!(types.contains(&"ActivityScheduled".to_owned()), "{types:?}");
    assert!(types.contains(&"ActivitySucceeded".to_owned()), "{types:?}");
}

/// Sets a flag when dropped: shows the executor dropped the dispatch future.
struct DropFlag(Arc<AtomicUsize>);
impl Drop for DropFlag {
    fn drop(&mut self) {
        self.0.fetch_add(1, Ordering::SeqCst);
    }
}

fn never_answers(dropped: Arc<AtomicUsize>) -> Arc<impl TaskDispatcher> {
    FnTasks::new(move |_t: TaskInvocation| {
        let guard = DropFlag(dropped.clone());
        async move {
            let _guard = guard;
            futures::future::pending::<()>().await;
            Ok(Value::Null)
        }
        .boxed()
    })
}

#[tokio::test]
async fn heartbeat_timeout_and_task_timeout() {
    let dropped = Arc::new(AtomicUsize::new(0));
    let def = task_def(json!({"HeartbeatSeconds": 2, "TimeoutSeconds": 10}));
    let start = Instant::now();
    let (r, store) = run_with(&def, json!({}), never_answers(dropped.clone()), 0.01, None).await;
    assert_eq!(failed(&r).0, "States.HeartbeatTimeout");
    assert!(start.elapsed() < Duration::from_secs(2));
    assert_eq!(
        dropped.load(Ordering::SeqCst),
        1,
        "the dispatch future was dropped"
    );
    assert!(store.event_types().contains(&"TaskTimedOut".to_owned()));

    let def = task_def(json!({"TimeoutSecondsPath": "$.t"}));
    let (r, _) = run_with(
        &def,
        json!({"t": 3}),
        never_answers(dropped.clone()),
        0.01,
        None,
    )
    .await;
    assert_eq!(failed(&r).0, "States.Timeout");
    assert_eq!(dropped.load(Ordering::SeqCst), 2);
}

#[tokio::test]
async fn retry_backoff_under_time_scale_then_catch() {
    let attempts = Arc::new(AtomicUsize::new(0));
    let a = attempts.clone();
    let tasks = FnTasks::new(move |_t: TaskInvocation| {
        let n = a.fetch_add(1, Ordering::SeqCst);
        async move {
            if n < 3 {
                Err(TaskError::new("Stepops.Transient", format!("attempt {n}")))
            } else {
                Ok(json!({"attempt": n}))
            }
        }
        .boxed()
    });
    // Delays 1, 2, 4 s (MaxDelaySeconds caps the third at 3) at scale 0.02: 20 + 40 + 60 ms.
    let def = task_def(json!({
        "Parameters": {"retry.$": "$$.State.RetryCount"},
        "Retry": [
            {"ErrorEquals": ["Other"], "MaxAttempts": 0},
            {"ErrorEquals": ["Stepops.Transient"], "IntervalSeconds": 1, "BackoffRate": 2.0,
             "MaxAttempts": 3, "MaxDelaySeconds": 3, "JitterStrategy": "NONE"}
        ]
    }));
    let start = Instant::now();
    let (r, _) = run_with(&def, json!({}), tasks.clone(), 0.02, None).await;
    let took = start.elapsed();
    assert_eq!(output(r), json!({"attempt": 3}));
    assert!(
        took >= Duration::from_millis(115),
        "backoff too short: {took:?}"
    );
    assert!(
        took < Duration::from_millis(1500),
        "backoff too long: {took:?}"
    );
    let counts: Vec<Value> = tasks
        .calls()
        .iter()
        .map(|c| c.input["retry"].clone())
        .collect();
    assert_eq!(counts, [json!(0), json!(1), json!(2), json!(3)]);

    // Retries run out: the first matching catcher wins, its ResultPath keeps the input.
    attempts.store(0, Ordering::SeqCst);
    let def = json!({"StartAt": "T", "States": {
        "T": {"Type": "Task", "Resource": LAMBDA, "End": true,
              "Retry": [{"ErrorEquals": ["States.ALL"], "MaxAttempts": 1, "IntervalSeconds": 1}],
              "Catch": [
                {"ErrorEquals": ["Nope"], "Next": "Wrong"},
                {"ErrorEquals": ["States.TaskFailed"], "ResultPath": "$.err", "Next": "Handled"},
                {"ErrorEquals": ["States.ALL"], "Next": "Wrong"}]},
        "Handled": {"Type": "Pass", "End": true},
        "Wrong": {"Type": "Fail", "Error": "Wrong"}}});
    let (r, _) = run_with(&def, json!({"keep": true}), tasks, 0.0, None).await;
    assert_eq!(
        output(r),
        json!({"keep": true, "err": {"Error": "Stepops.Transient", "Cause": "attempt 1"}})
    );
}

#[tokio::test]
async fn runtime_and_data_limit_errors_are_not_caught_by_states_all() {
    let tasks = FnTasks::new(|_t: TaskInvocation| {
        async move { Ok(json!({"big": "x".repeat(300 * 1024)})) }.boxed()
    });
    let catch_all = json!([{"ErrorEquals": ["States.ALL"], "Next": "Caught"}]);
    let def = json!({"StartAt": "T", "States": {
        "T": {"Type": "Task", "Resource": LAMBDA, "End": true, "Catch": catch_all},
        "Caught": {"Type": "Pass", "End": true}}});
    let (r, _) = run_with(&def, json!({}), tasks, 0.0, None).await;
    let (e, c) = failed(&r);
    assert_eq!(e, "States.DataLimitExceeded");
    assert!(c.contains("'T'"), "{c}");

    let tasks = FnTasks::new(|_t: TaskInvocation| async move { Ok(json!(1)) }.boxed());
    let def = json!({"StartAt": "T", "States": {
        "T": {"Type": "Task", "Resource": LAMBDA, "End": true, "Parameters": {"x.$": "$.missing"},
              "Catch": catch_all},
        "Caught": {"Type": "Pass", "End": true}}});
    let (r, _) = run_with(&def, json!({}), tasks, 0.0, None).await;
    let (e, c) = failed(&r);
    assert_eq!(e, "States.Runtime");
    assert!(
        c.starts_with(
            "An error occurred while executing the state 'T' (entered at the event id #2)."
        ),
        "{c}"
    );
}

#[tokio::test]
async fn parallel_branch_failure_cancels_siblings() {
    let dropped = Arc::new(AtomicUsize::new(0));
    let d = dropped.clone();
    let tasks = FnTasks::new(move |t: TaskInvocation| {
        let guard = DropFlag(d.clone());
        async move {
            let _guard = guard;
            if t.input == json!("fail") {
                tokio::time::sleep(Duration::from_millis(20)).await;
                Err(TaskError::new("BranchBoom", "boom"))
            } else {
                futures::future::pending::<()>().await;
                Ok(Value::Null)
            }
        }
        .boxed()
    });
    let branch = |v: &str| json!({"StartAt": "B", "States": {"B": {"Type": "Task", "Resource": LAMBDA, "Parameters": v, "End": true}}});
    let def = json!({"StartAt": "P", "States": {"P": {"Type": "Parallel", "End": true,
        "Branches": [branch("wait"), branch("fail"), branch("wait")]}}});
    let (r, store) = run_with(&def, json!({}), tasks, 1.0, None).await;
    assert_eq!(failed(&r), ("BranchBoom".into(), "boom".into()));
    assert_eq!(
        dropped.load(Ordering::SeqCst),
        3,
        "all three task futures were dropped"
    );
    assert!(
        store
            .event_types()
            .contains(&"ParallelStateFailed".to_owned())
    );
}

#[tokio::test]
async fn execution_timeout_and_stop() {
    let dropped = Arc::new(AtomicUsize::new(0));
    let def = json!({"TimeoutSeconds": 2, "StartAt": "T", "States": {"T": {"Type": "Task", "Resource": LAMBDA, "End": true}}});
    let (r, store) = run_with(&def, json!({}), never_answers(dropped.clone()), 0.01, None).await;
    assert_eq!(r, ExecutionResult::TimedOut);
    assert_eq!(store.event_types().last().unwrap(), "ExecutionTimedOut");

    let def = Arc::new(Definition::parse(&task_def(json!({})).to_string()).unwrap());
    let stop = CancellationToken::new();
    let store = Arc::new(MemStore::default());
    let fut = stepops_asl::run(
        def,
        common::info("s"),
        json!({}),
        None,
        never_answers(dropped.clone()),
        store.clone(),
        RunOptions::default(),
        stop.clone(),
    );
    let stopper = async {
        tokio::time::sleep(Duration::from_millis(30)).await;
        stop.cancel();
    };
    let (r, ()) = futures::join!(fut, stopper);
    assert_eq!(r, ExecutionResult::Aborted);
    assert_eq!(store.event_types().last().unwrap(), "ExecutionAborted");
    assert_eq!(dropped.load(Ordering::SeqCst), 2);

    // StopExecution with an error and a cause: AWS records them in the event.
    let def = Arc::new(Definition::parse(&task_def(json!({})).to_string()).unwrap());
    let stop = stepops_asl::StopSignal::new();
    let store = Arc::new(MemStore::default());
    let fut = stepops_asl::run(
        def,
        common::info("s2"),
        json!({}),
        None,
        never_answers(dropped.clone()),
        store.clone(),
        RunOptions::default(),
        stop.clone(),
    );
    let stopper = async {
        tokio::time::sleep(Duration::from_millis(30)).await;
        stop.stop(Some("Ops.Stopped".into()), Some("stopped by hand".into()));
    };
    let (r, ()) = futures::join!(fut, stopper);
    assert_eq!(r, ExecutionResult::Aborted);
    let last = store.events.lock().unwrap().last().unwrap().clone();
    assert_eq!(last.event_type, "ExecutionAborted");
    assert_eq!(
        last.details_key.as_deref(),
        Some("executionAbortedEventDetails")
    );
    assert_eq!(
        last.details,
        json!({"error": "Ops.Stopped", "cause": "stopped by hand"})
    );
}

#[tokio::test]
async fn resume_after_crash_reruns_only_the_task_in_flight() {
    // First process: T1 succeeds, T2 hangs; the process "dies" (the run future is dropped).
    let def = json!({"StartAt": "T1", "States": {
        "T1": {"Type": "Task", "Resource": LAMBDA, "Parameters": {"step": 1}, "ResultPath": "$.one", "Next": "W"},
        "W": {"Type": "Wait", "Seconds": 5, "Next": "T2"},
        "T2": {"Type": "Task", "Resource": LAMBDA, "Parameters": {"step": 2}, "ResultPath": "$.two", "End": true}}});
    let hang = FnTasks::new(|t: TaskInvocation| {
        async move {
            if t.input["step"] == 2 {
                futures::future::pending::<()>().await;
            }
            Ok(json!(format!("r{}", t.input["step"])))
        }
        .boxed()
    });
    let parsed = Arc::new(Definition::parse(&def.to_string()).unwrap());
    let store = Arc::new(MemStore::default());
    let run = stepops_asl::run(
        parsed.clone(),
        common::info("c"),
        json!({"in": 1}),
        None,
        hang.clone(),
        store.clone(),
        RunOptions {
            time_scale: 0.0,
            ..Default::default()
        },
        CancellationToken::new(),
    );
    let watcher = async {
        while hang.calls().len() < 2 {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        // Let the recorder hand T2's events to the store.
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    tokio::select! {
        r = run => panic!("the first run must still be in flight, it ended: {r:?}"),
        _ = tokio::time::timeout(Duration::from_secs(20), watcher) => {}
    }
    assert_eq!(hang.calls().len(), 2);
    let snapshot = store.snapshot();
    let last_id = store.events.lock().unwrap().last().unwrap().id;

    // Second process: resumes from the snapshot; only T2 runs again.
    let ok = FnTasks::new(|t: TaskInvocation| {
        async move { Ok(json!(format!("r{}", t.input["step"]))) }.boxed()
    });
    let store2 = Arc::new(MemStore::default());
    let r = stepops_asl::run(
        parsed,
        common::info("c"),
        json!({"in": 1}),
        Some(snapshot),
        ok.clone(),
        store2.clone(),
        RunOptions {
            time_scale: 0.0,
            ..Default::default()
        },
        CancellationToken::new(),
    )
    .await;
    assert_eq!(output(r), json!({"in": 1, "one": "r1", "two": "r2"}));
    let steps: Vec<Value> = ok.calls().iter().map(|c| c.input["step"].clone()).collect();
    assert_eq!(steps, [json!(2)]);
    let first_new = store2.events.lock().unwrap()[0].id;
    assert_eq!(first_new, last_id + 1, "event ids continue after a resume");
}

#[tokio::test]
async fn redrive_failed_map_runs_only_failed_items() {
    let def = json!({"StartAt": "M", "States": {"M": {"Type": "Map", "End": true, "MaxConcurrency": 2,
        "ItemProcessor": {"StartAt": "Prep", "States": {
            "Prep": {"Type": "Pass", "Next": "Work"},
            "Work": {"Type": "Task", "Resource": LAMBDA, "End": true}}}}}});
    let fail_odd = Arc::new(Mutex::new(true));
    let f = fail_odd.clone();
    let tasks = FnTasks::new(move |t: TaskInvocation| {
        let fail = *f.lock().unwrap() && t.input.as_i64().unwrap() % 2 == 1;
        async move {
            if fail {
                Err(TaskError::new(
                    "Stepops.Transient",
                    format!("item {} failed", t.input),
                ))
            } else {
                Ok(json!(t.input.as_i64().unwrap() * 10))
            }
        }
        .boxed()
    });
    let input = json!([0, 1, 2, 3, 4, 5]);
    let (r, store) = run_with(&def, input.clone(), tasks.clone(), 0.0, None).await;
    assert_eq!(failed(&r).0, "Stepops.Transient");
    let first_calls = tasks.calls().len();

    *fail_odd.lock().unwrap() = false;
    let snap = stepops_asl::redrive(&store.snapshot()).expect("a failed execution can be redriven");
    let (r, store2) = run_with(&def, input, tasks.clone(), 0.0, Some(snap)).await;
    assert_eq!(output(r), json!([0, 10, 20, 30, 40, 50]));
    let redriven: Vec<i64> = tasks.calls()[first_calls..]
        .iter()
        .map(|c| c.input.as_i64().unwrap())
        .collect();
    // The items that succeeded (an even item dispatched while item 1 failed may have been
    // aborted, and rightly runs again).
    let succeeded_before: Vec<i64> = store
        .events
        .lock()
        .unwrap()
        .iter()
        .filter(|e| e.event_type == "MapIterationSucceeded")
        .map(|e| e.details["index"].as_i64().unwrap())
        .collect();
    for n in &redriven {
        assert!(
            !succeeded_before.contains(n),
            "item {n} succeeded before and ran again"
        );
    }
    assert!(redriven.contains(&1));
    assert_eq!(store2.event_types()[0], "ExecutionRedriven");
    // A succeeded execution cannot be redriven.
    assert!(stepops_asl::redrive(&store2.snapshot()).is_err());
}

#[tokio::test]
async fn redrive_reruns_failed_task_state_only() {
    let def = json!({"StartAt": "A", "States": {
        "A": {"Type": "Task", "Resource": LAMBDA, "Parameters": {"s": "A"}, "ResultPath": "$.a", "Next": "B"},
        "B": {"Type": "Task", "Resource": LAMBDA, "Parameters": {"s": "B"}, "ResultPath": "$.b", "End": true}}});
    let fail_b = Arc::new(Mutex::new(true));
    let f = fail_b.clone();
    let tasks = FnTasks::new(move |t: TaskInvocation| {
        let fail = *f.lock().unwrap() && t.input["s"] == "B";
        async move {
            if fail {
                Err(TaskError::new("Boom", "b failed"))
            } else {
                Ok(t.input["s"].clone())
            }
        }
        .boxed()
    });
    let (r, store) = run_with(&def, json!({}), tasks.clone(), 0.0, None).await;
    assert_eq!(failed(&r).0, "Boom");
    *fail_b.lock().unwrap() = false;
    let snap = stepops_asl::redrive(&store.snapshot()).unwrap();
    let (r, _) = run_with(&def, json!({}), tasks.clone(), 0.0, Some(snap)).await;
    assert_eq!(output(r), json!({"a": "A", "b": "B"}));
    let names: Vec<Value> = tasks.calls().iter().map(|c| c.input["s"].clone()).collect();
    assert_eq!(names, [json!("A"), json!("B"), json!("B")]);
}

#[tokio::test]
async fn wait_honours_time_scale() {
    let def =
        json!({"StartAt": "W", "States": {"W": {"Type": "Wait", "Seconds": 10, "End": true}}});
    let start = Instant::now();
    let (r, _) = run_with(&def, json!(1), Arc::new(common::NoTasks), 0.005, None).await;
    assert_eq!(output(r), json!(1));
    let took = start.elapsed();
    assert!(
        took >= Duration::from_millis(45) && took < Duration::from_millis(1000),
        "{took:?}"
    );
}

#[test]
fn load_errors_name_the_state() {
    let cases = [
        (
            json!({"StartAt": "A", "States": {"A": {"Type": "Pass", "Next": "Nope"}}}),
            "'A'",
        ),
        (
            json!({"StartAt": "A", "States": {"A": {"Type": "Pass", "End": true}, "B": {"Type": "Pass", "End": true}}}),
            "'B'",
        ),
        (
            json!({"StartAt": "A", "States": {"A": {"Type": "Pass"}}}),
            "'A'",
        ),
        (
            json!({"StartAt": "A", "States": {"A": {"Type": "Pass", "End": true, "Bogus": 1}}}),
            "'Bogus'",
        ),
        (
            json!({"StartAt": "A", "States": {"A": {"Type": "Task", "End": true}}}),
            "'A'",
        ),
        (
            json!({"StartAt": "A", "States": {"A": {"Type": "Task", "Resource": "${Fn}", "End": true}}}),
            "'A'",
        ),
        (
            json!({"StartAt": "A", "States": {"A": {"Type": "Choice", "Choices": []}}}),
            "'A'",
        ),
        (
            json!({"StartAt": "A", "States": {"A": {"Type": "Wait", "End": true}}}),
            "'A'",
        ),
        (
            json!({"StartAt": "A", "States": {"A": {"Type": "Map", "End": true, "ItemReader": {}, "ItemProcessor": {"StartAt": "X", "States": {"X": {"Type": "Succeed"}}}}}}),
            "'A'",
        ),
        (
            json!({"StartAt": "A", "States": {"A": {"Type": "Task", "Resource": LAMBDA, "End": true,
            "Retry": [{"ErrorEquals": ["States.ALL"]}, {"ErrorEquals": ["X"]}]}}}),
            "States.ALL",
        ),
    ];
    for (def, needle) in cases {
        let err = Definition::parse(&def.to_string()).expect_err(&def.to_string());
        assert!(
            err.to_string().contains(needle),
            "{err} should mention {needle}"
        );
    }
    let jsonata = json!({"QueryLanguage": "JSONata", "StartAt": "A", "States": {"A": {"Type": "Pass", "End": true}}});
    let err = Definition::parse(&jsonata.to_string()).unwrap_err();
    assert!(
        matches!(err, stepops_asl::LoadError::Unsupported(_)),
        "{err}"
    );
    let def = json!({"StartAt": "A", "States": {"A": {"Type": "Parallel", "Next": "B", "Branches": [
        {"StartAt": "X", "States": {"X": {"Type": "Task", "Resource": ACTIVITY, "End": true}}}]},
        "B": {"Type": "Task", "Resource": LAMBDA, "End": true}}});
    let d = Definition::parse(&def.to_string()).unwrap();
    assert_eq!(
        d.task_resources(),
        vec![LAMBDA.to_owned(), ACTIVITY.to_owned()]
    );
}

/// Every project state machine (`statemachine/*.asl.json`) loads, its `${Placeholders}` filled
/// with ARNs as `DefinitionSubstitutions` would.
#[test]
fn project_state_machines_load() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../statemachine");
    let mut n = 0;
    for entry in std::fs::read_dir(&dir).expect("statemachine/ exists") {
        let path = entry.unwrap().path();
        if !path.to_string_lossy().ends_with(".asl.json") {
            continue;
        }
        let text = std::fs::read_to_string(&path).unwrap();
        let mut out = String::new();
        let mut rest = text.as_str();
        while let Some(i) = rest.find("${") {
            out.push_str(&rest[..i]);
            let end = rest[i..].find('}').expect("closed placeholder") + i;
            let name = &rest[i + 2..end];
            out.push_str(&format!(
                "arn:aws:states:us-east-1:123456789012:activity:{name}"
            ));
            rest = &rest[end + 1..];
        }
        out.push_str(rest);
        if let Err(e) = Definition::parse(&out) {
            panic!("{} does not load: {e}", path.display());
        }
        n += 1;
    }
    assert!(n > 0, "no state machine found in {}", dir.display());
}

#[tokio::test]
async fn map_and_parallel_history_in_aws_order() {
    let def = json!({"StartAt": "M", "States": {
        "M": {"Type": "Map", "MaxConcurrency": 1, "Next": "P",
              "ItemProcessor": {"StartAt": "I", "States": {"I": {"Type": "Pass", "End": true}}}},
        "P": {"Type": "Parallel", "End": true, "Branches": [
            {"StartAt": "B", "States": {"B": {"Type": "Pass", "End": true}}}]}}});
    let (r, store) = run_with(&def, json!([1]), Arc::new(common::NoTasks), 0.0, None).await;
    assert_eq!(output(r), json!([[1]]));
    assert_eq!(
        store.event_types(),
        [
            "ExecutionStarted",
            "MapStateEntered",
            "MapStateStarted",
            "MapIterationStarted",
            "PassStateEntered",
            "PassStateExited",
            "MapIterationSucceeded",
            "MapStateSucceeded",
            "MapStateExited",
            "ParallelStateEntered",
            "ParallelStateStarted",
            "PassStateEntered",
            "PassStateExited",
            "ParallelStateSucceeded",
            "ParallelStateExited",
            "ExecutionSucceeded"
        ]
    );
    let events = store.events.lock().unwrap().clone();
    assert_eq!(events[2].details, json!({"length": 1}));
    assert_eq!(events[3].details, json!({"name": "M", "index": 0}));
    assert_eq!(events[1].details["input"], json!("[1]"));
    assert_eq!(
        events[1].details_key.as_deref(),
        Some("stateEnteredEventDetails")
    );
}

#[tokio::test]
async fn activity_waiting_for_a_worker_starts_its_heartbeat_at_pickup() {
    // HeartbeatSeconds 5 at scale 0.01 = 50 ms; the worker picks the task up after 150 ms.
    let tasks = FnTasks::new(|t: TaskInvocation| {
        t.heartbeat.waiting_for_worker();
        async move {
            tokio::time::sleep(Duration::from_millis(150)).await;
            t.heartbeat.taken_by(Some("runner-a")); // GetActivityTask handed it to a worker
            tokio::time::sleep(Duration::from_millis(10)).await;
            Ok(json!("picked up late, finished in time"))
        }
        .boxed()
    });
    let def = json!({"StartAt": "T", "States": {"T": {
        "Type": "Task", "Resource": ACTIVITY, "HeartbeatSeconds": 5, "End": true}}});
    let (r, store) = run_with(&def, json!({}), tasks, 0.01, None).await;
    assert_eq!(output(r), json!("picked up late, finished in time"));
    let events = store.events.lock().unwrap().clone();
    let at = |t: &str| events.iter().find(|e| e.event_type == t).unwrap().timestamp;
    assert!(at("ActivityStarted") - at("ActivityScheduled") >= chrono::Duration::milliseconds(100));
    let started = events
        .iter()
        .find(|e| e.event_type == "ActivityStarted")
        .unwrap();
    assert_eq!(started.details, json!({"workerName": "runner-a"}));

    // Nobody picks it up: TimeoutSeconds (counted from scheduling) ends it.
    let dropped = Arc::new(AtomicUsize::new(0));
    let d = dropped.clone();
    let tasks = FnTasks::new(move |t: TaskInvocation| {
        t.heartbeat.waiting_for_worker();
        let guard = DropFlag(d.clone());
        async move {
            let _guard = guard;
            futures::future::pending::<()>().await;
            Ok(Value::Null)
        }
        .boxed()
    });
    let def = json!({"StartAt": "T", "States": {"T": {
        "Type": "Task", "Resource": ACTIVITY, "HeartbeatSeconds": 5, "TimeoutSeconds": 20, "End": true}}});
    let (r, store) = run_with(&def, json!({}), tasks, 0.01, None).await;
    assert_eq!(failed(&r).0, "States.Timeout");
    assert!(!store.event_types().contains(&"ActivityStarted".to_owned()));
    assert_eq!(store.event_types()[3], "ActivityTimedOut");
    assert_eq!(dropped.load(Ordering::SeqCst), 1);
}

#[tokio::test]
async fn resume_inside_a_map_skips_completed_items() {
    let def = json!({"StartAt": "M", "States": {"M": {"Type": "Map", "End": true, "MaxConcurrency": 1,
        "ItemProcessor": {"StartAt": "Work", "States": {
            "Work": {"Type": "Task", "Resource": LAMBDA, "End": true}}}}}});
    let parsed = Arc::new(Definition::parse(&def.to_string()).unwrap());
    let hang_on_2 = FnTasks::new(|t: TaskInvocation| {
        async move {
            if t.input == json!(2) {
                futures::future::pending::<()>().await;
            }
            Ok(json!(t.input.as_i64().unwrap() * 10))
        }
        .boxed()
    });
    let store = Arc::new(MemStore::default());
    let opts = || RunOptions {
        time_scale: 0.0,
        ..Default::default()
    };
    let run = stepops_asl::run(
        parsed.clone(),
        common::info("m"),
        json!([0, 1, 2, 3]),
        None,
        hang_on_2.clone(),
        store.clone(),
        opts(),
        CancellationToken::new(),
    );
    let watcher = async {
        while hang_on_2.calls().len() < 3 {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    tokio::select! {
        r = run => panic!("the first run must still be in flight, it ended: {r:?}"),
        _ = tokio::time::timeout(Duration::from_secs(20), watcher) => {}
    }
    let ok = FnTasks::new(|t: TaskInvocation| {
        async move { Ok(json!(t.input.as_i64().unwrap() * 10)) }.boxed()
    });
    let r = stepops_asl::run(
        parsed,
        common::info("m"),
        json!([0, 1, 2, 3]),
        Some(store.snapshot()),
        ok.clone(),
        Arc::new(MemStore::default()),
        opts(),
        CancellationToken::new(),
    )
    .await;
    assert_eq!(output(r), json!([0, 10, 20, 30]));
    let items: Vec<Value> = ok.calls().iter().map(|c| c.input.clone()).collect();
    assert_eq!(
        items,
        [json!(2), json!(3)],
        "items 0 and 1 had completed before the crash"
    );
}

#[tokio::test]
async fn choice_on_a_missing_path_fails_the_execution() {
    // AWS fails (States.Runtime) when a comparison's Variable matches nothing.
    let def = json!({"StartAt": "C", "States": {
        "C": {"Type": "Choice", "Choices": [{"Variable": "$.foo", "NumericEquals": 1, "Next": "D"}], "Default": "D"},
        "D": {"Type": "Pass", "End": true}}});
    let (r, _) = run_with(&def, json!({}), Arc::new(common::NoTasks), 0.0, None).await;
    let (e, c) = failed(&r);
    assert_eq!(e, "States.Runtime");
    assert!(
        c.starts_with(
            "An error occurred while executing the state 'C' (entered at the event id #2)."
        ),
        "{c}"
    );
}
