//! Retry delays and heartbeat timeouts measured on tokio's paused clock: every sleep of the
//! executor advances virtual time by exactly its duration, so delays are read exactly (no
//! waiting, no scheduling noise) from the dispatcher's `tokio::time::Instant`s.
//!
//! * `JitterStrategy: NONE` gives exactly `IntervalSeconds × BackoffRate^n` (capped by
//!   `MaxDelaySeconds`), multiplied by the time scale;
//! * `JitterStrategy: FULL` gives a random delay in `[0, that]`;
//! * `HeartbeatSecondsPath` reads the heartbeat from the input.

mod common;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::{FnTasks, MemStore};
use futures::FutureExt;
use serde_json::{Value, json};
use stepops_asl::{Definition, ExecutionResult, RunOptions, TaskError, TaskInvocation};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

const LAMBDA: &str = "arn:aws:states:::lambda:invoke";
const ACTIVITY: &str = "arn:aws:states:us-east-1:123456789012:activity:work";

async fn run(
    def: &Value,
    input: Value,
    tasks: Arc<dyn stepops_asl::TaskDispatcher>,
    scale: f64,
) -> (ExecutionResult, Arc<MemStore>) {
    let def = Definition::parse(&def.to_string()).expect("definition loads");
    let store = Arc::new(MemStore::default());
    let r = stepops_asl::run(
        Arc::new(def),
        common::info("timing"),
        input,
        None,
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

/// Runs a Task that fails `failures` times with `Boom` and then succeeds, under `retrier`;
/// returns the delays between consecutive attempts.
async fn retry_delays(retrier: Value, failures: usize, scale: f64) -> Vec<Duration> {
    let times: Arc<Mutex<Vec<Instant>>> = Arc::default();
    let t = times.clone();
    let tasks = FnTasks::new(move |_inv: TaskInvocation| {
        let n = {
            let mut v = t.lock().unwrap();
            v.push(Instant::now());
            v.len()
        };
        async move {
            if n <= failures {
                Err(TaskError::new("Boom", format!("attempt {n}")))
            } else {
                Ok(json!({"attempts": n}))
            }
        }
        .boxed()
    });
    let def = json!({"StartAt": "T", "States": {"T": {
        "Type": "Task", "Resource": LAMBDA, "End": true, "Retry": [retrier]}}});
    let (r, _) = run(&def, json!({}), tasks, scale).await;
    assert!(
        matches!(&r, ExecutionResult::Succeeded { output } if output["attempts"] == failures + 1),
        "{r:?}"
    );
    let times = times.lock().unwrap().clone();
    times.windows(2).map(|w| w[1] - w[0]).collect()
}

fn secs(v: &[f64]) -> Vec<Duration> {
    v.iter().map(|s| Duration::from_secs_f64(*s)).collect()
}

#[tokio::test(start_paused = true)]
async fn jitter_none_gives_the_exact_backoff_under_the_time_scale() {
    // 2, 4, 8, 16 s capped at 10 s; at scale 0.5: 1, 2, 4, 5 s.
    let retrier = json!({"ErrorEquals": ["Boom"], "IntervalSeconds": 2, "BackoffRate": 2.0,
        "MaxAttempts": 4, "MaxDelaySeconds": 10, "JitterStrategy": "NONE"});
    assert_eq!(
        retry_delays(retrier, 4, 0.5).await,
        secs(&[1.0, 2.0, 4.0, 5.0])
    );
    // No JitterStrategy is NONE; defaults: IntervalSeconds 1, BackoffRate 2.0.
    let retrier = json!({"ErrorEquals": ["Boom"], "MaxAttempts": 3});
    assert_eq!(retry_delays(retrier, 3, 1.0).await, secs(&[1.0, 2.0, 4.0]));
}

#[tokio::test(start_paused = true)]
async fn jitter_full_randomises_each_delay_within_zero_and_the_backoff() {
    // Computed delays 3, 6, 12, 20 (capped), 20, … s; at scale 0.25: 0.75, 1.5, 3, 5, 5, … s.
    let attempts = 12;
    let retrier = json!({"ErrorEquals": ["Boom"], "IntervalSeconds": 3, "BackoffRate": 2.0,
        "MaxAttempts": attempts, "MaxDelaySeconds": 20, "JitterStrategy": "FULL"});
    let delays = retry_delays(retrier, attempts, 0.25).await;
    assert_eq!(delays.len(), attempts);
    let bounds: Vec<Duration> = (0..attempts)
        .map(|n| Duration::from_secs_f64((3.0 * 2f64.powi(n as i32)).min(20.0) * 0.25))
        .collect();
    // The timer wheel has millisecond ticks: a delay may end up to 1 ms after its value.
    let tick = Duration::from_millis(1);
    for (d, max) in delays.iter().zip(&bounds) {
        assert!(*d <= *max + tick, "delay {d:?} above its bound {max:?}");
    }
    // Randomised: not the computed delays, and not all the same fraction of them.
    let below = delays
        .iter()
        .zip(&bounds)
        .filter(|(d, max)| d.as_secs_f64() < max.as_secs_f64() * 0.95)
        .count();
    assert!(below >= 1, "no delay was shortened: {delays:?}");
    let mut fractions: Vec<u64> = delays
        .iter()
        .zip(&bounds)
        .map(|(d, max)| (d.as_secs_f64() / max.as_secs_f64() * 1000.0) as u64)
        .collect();
    fractions.sort();
    fractions.dedup();
    assert!(
        fractions.len() > 1,
        "the same delay fraction every time: {delays:?}"
    );
}

#[tokio::test(start_paused = true)]
async fn heartbeat_seconds_path_is_read_from_the_input() {
    // A worker that never beats: the heartbeat (8 s from the input, scale 0.5) expires at 4 s.
    // (heartbeat_seconds, timeout_seconds) of each invocation.
    type Seen = Arc<Mutex<Vec<(Option<u64>, Option<u64>)>>>;
    let seen: Seen = Arc::default();
    let s = seen.clone();
    let silent = FnTasks::new(move |t: TaskInvocation| {
        s.lock()
            .unwrap()
            .push((t.heartbeat_seconds, t.timeout_seconds));
        async move {
            futures::future::pending::<()>().await;
            Ok(Value::Null)
        }
        .boxed()
    });
    let def = json!({"StartAt": "T", "States": {"T": {"Type": "Task", "Resource": ACTIVITY,
        "HeartbeatSecondsPath": "$.limits.heartbeat", "TimeoutSeconds": 100, "End": true}}});
    let start = Instant::now();
    let (r, store) = run(&def, json!({"limits": {"heartbeat": 8}}), silent, 0.5).await;
    assert_eq!(failed(&r).0, "States.HeartbeatTimeout");
    assert_eq!(start.elapsed(), Duration::from_secs(4));
    assert_eq!(*seen.lock().unwrap(), [(Some(8), Some(100))]);
    let scheduled = store
        .events
        .lock()
        .unwrap()
        .iter()
        .find(|e| e.event_type == "ActivityScheduled")
        .cloned()
        .expect("ActivityScheduled");
    assert_eq!(scheduled.details["heartbeatInSeconds"], 8);

    // A worker beating every 3 s (scaled: 1.5 s) for 12 s (scaled: 6 s) is kept alive.
    let beating = FnTasks::new(|t: TaskInvocation| {
        async move {
            for _ in 0..4 {
                tokio::time::sleep(Duration::from_millis(1500)).await;
                t.heartbeat.beat();
            }
            Ok(json!("done"))
        }
        .boxed()
    });
    let start = Instant::now();
    let (r, _) = run(&def, json!({"limits": {"heartbeat": 8}}), beating, 0.5).await;
    assert!(
        matches!(&r, ExecutionResult::Succeeded { output } if output == "done"),
        "{r:?}"
    );
    assert_eq!(start.elapsed(), Duration::from_secs(6));
}

#[tokio::test(start_paused = true)]
async fn heartbeat_seconds_path_errors_are_states_runtime() {
    let def = |hb: &str| {
        json!({"StartAt": "T", "States": {"T": {"Type": "Task", "Resource": LAMBDA,
            "HeartbeatSecondsPath": hb, "TimeoutSeconds": 10, "End": true}}})
    };
    let never = || {
        FnTasks::new(|_t: TaskInvocation| async move { Ok(json!("ran")) }.boxed())
            as Arc<dyn stepops_asl::TaskDispatcher>
    };
    for (input, needle) in [
        (json!({"hb": 0}), "not a valid positive integer"),
        (json!({"hb": -3}), "not a valid positive integer"),
        (json!({"hb": "7"}), "not a valid positive integer"),
        (json!({"hb": 1.5}), "not a valid positive integer"),
        (json!({}), "Invalid path '$.hb'"),
        (
            json!({"hb": 10}),
            "HeartbeatSeconds (10) must be smaller than TimeoutSeconds (10)",
        ),
    ] {
        let tasks = FnTasks::new(|_t: TaskInvocation| async move { Ok(json!("ran")) }.boxed());
        let (r, _) = run(&def("$.hb"), input.clone(), tasks.clone(), 1.0).await;
        let (error, cause) = failed(&r);
        assert_eq!(error, "States.Runtime", "{input}: {cause}");
        assert!(cause.contains(needle), "{input}: {cause}");
        assert!(
            cause.starts_with("An error occurred while executing the state 'T'"),
            "{cause}"
        );
        assert!(tasks.calls().is_empty(), "{input}: the task must not run");
    }
    let (r, _) = run(&def("$.hb"), json!({"hb": 9}), never(), 1.0).await;
    assert!(matches!(r, ExecutionResult::Succeeded { .. }), "{r:?}");
}
