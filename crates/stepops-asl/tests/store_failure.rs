//! A store that cannot persist progress stops the execution (`States.Runtime` naming the
//! store's error) before any further task runs; its last persisted snapshot is redriven.

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

use common::{FnTasks, MemStore};
use futures::FutureExt;
use serde_json::json;
use stepops_asl::{
    Definition, ExecutionResult, ExecutionStore, HistoryEvent, RunOptions, Snapshot, StoreError,
    TaskInvocation,
};
use tokio_util::sync::CancellationToken;

const ACTIVITY: &str = "arn:aws:states:us-east-1:123456789012:activity:work";

/// A [`MemStore`] that refuses every write while `broken` is set.
#[derive(Default)]
struct FlakyStore {
    inner: MemStore,
    broken: AtomicBool,
    refused: AtomicUsize,
}

impl ExecutionStore for FlakyStore {
    fn record(
        &self,
        arn: &str,
        events: &[HistoryEvent],
        snapshot: &Snapshot,
    ) -> Result<(), StoreError> {
        if self.broken.load(Ordering::SeqCst) {
            self.refused.fetch_add(1, Ordering::SeqCst);
            return Err(StoreError("database or disk is full".into()));
        }
        self.inner.record(arn, events, snapshot)
    }
}

fn definition() -> Arc<Definition> {
    let def = json!({"StartAt": "Before", "States": {
        "Before": {"Type": "Pass", "Result": 1, "ResultPath": "$.before", "Next": "First"},
        "First": {"Type": "Task", "Resource": ACTIVITY, "ResultPath": "$.first", "Next": "Second"},
        "Second": {"Type": "Task", "Resource": ACTIVITY, "ResultPath": "$.second", "End": true}}});
    Arc::new(Definition::parse(&def.to_string()).unwrap())
}

#[tokio::test]
async fn a_store_failure_stops_the_execution_before_the_next_task_and_redrive_resumes() {
    let store = Arc::new(FlakyStore::default());
    // The store breaks while the first task runs: its result cannot be persisted.
    let s = store.clone();
    let tasks = FnTasks::new(move |t: TaskInvocation| {
        s.broken.store(true, Ordering::SeqCst);
        async move { Ok(json!(t.state_name)) }.boxed()
    });
    let options = RunOptions {
        time_scale: 0.0,
        ..Default::default()
    };
    let r = stepops_asl::run(
        definition(),
        common::info("store"),
        json!({}),
        None,
        tasks.clone(),
        store.clone(),
        options.clone(),
        CancellationToken::new(),
    )
    .await;
    let ExecutionResult::Failed { error, cause } = &r else {
        panic!("expected a failure, got {r:?}");
    };
    assert_eq!(error.as_deref(), Some("States.Runtime"));
    let cause = cause.as_deref().unwrap();
    assert!(
        cause.contains("could not persist execution progress: database or disk is full"),
        "{cause}"
    );
    assert!(cause.contains("redrive"), "{cause}");
    let names: Vec<String> = tasks.calls().iter().map(|c| c.state_name.clone()).collect();
    assert_eq!(names, ["First"], "no task runs after the store failed");
    assert_eq!(
        store.refused.load(Ordering::SeqCst),
        3,
        "one write, tried three times, then nothing more"
    );
    // What the store kept: up to the first task's scheduling (persisted before it ran).
    let kept = store.inner.event_types();
    assert_eq!(kept.last().map(String::as_str), Some("ActivityScheduled"));
    assert!(
        !kept
            .iter()
            .any(|t| t.starts_with("Execution") && t != "ExecutionStarted")
    );
    let last_id = store.inner.events.lock().unwrap().last().unwrap().id;

    // The store works again: redrive from the last persisted snapshot (still RUNNING).
    store.broken.store(false, Ordering::SeqCst);
    let snapshot = store.inner.snapshot();
    assert_eq!(snapshot.0["status"], "RUNNING");
    let redriven = stepops_asl::redrive(&snapshot).expect("a RUNNING snapshot can be redriven");
    let tasks = FnTasks::new(|t: TaskInvocation| async move { Ok(json!(t.state_name)) }.boxed());
    let mut info = common::info("store");
    info.redrive_count = 1;
    let again = Arc::new(MemStore::default());
    let r = stepops_asl::run(
        definition(),
        info,
        json!({}),
        Some(redriven),
        tasks.clone(),
        again.clone(),
        options,
        CancellationToken::new(),
    )
    .await;
    let ExecutionResult::Succeeded { output } = r else {
        panic!("expected success, got {r:?}");
    };
    assert_eq!(
        output,
        json!({"before": 1, "first": "First", "second": "Second"})
    );
    let names: Vec<String> = tasks.calls().iter().map(|c| c.state_name.clone()).collect();
    assert_eq!(
        names,
        ["First", "Second"],
        "the task in flight runs again, then the rest"
    );
    let events = again.events.lock().unwrap().clone();
    assert_eq!(events[0].event_type, "ExecutionRedriven");
    assert_eq!(events[0].id, last_id + 1, "event ids continue the store's");
    assert_eq!(
        events.last().map(|e| e.event_type.as_str()),
        Some("ExecutionSucceeded")
    );
    assert!(
        !events.iter().any(|e| e.event_type == "PassStateEntered"),
        "Before is not run again: {:?}",
        again.event_types()
    );
}

#[tokio::test]
async fn a_store_failing_at_the_end_fails_the_execution() {
    // Pass states only: the whole run may be one batch; it cannot be written.
    let store = Arc::new(FlakyStore::default());
    store.broken.store(true, Ordering::SeqCst);
    let def = json!({"StartAt": "A", "States": {"A": {"Type": "Pass", "Next": "B"},
        "B": {"Type": "Pass", "End": true}}});
    let r = common::run_untimed(
        Definition::parse(&def.to_string()).unwrap(),
        "end",
        json!({"x": 1}),
        store.clone(),
    )
    .await;
    assert!(
        matches!(&r, ExecutionResult::Failed { error: Some(e), cause: Some(c) }
            if e == "States.Runtime" && c.contains("database or disk is full")),
        "{r:?}"
    );
    assert!(store.inner.events.lock().unwrap().is_empty());
}
