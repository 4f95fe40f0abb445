//! Helpers shared by the integration tests.
#![allow(dead_code)]

use std::sync::{Arc, Mutex};

use chrono::Utc;
use futures::future::BoxFuture;
use serde_json::Value;
use stepops_asl::{
    Definition, ExecutionInfo, ExecutionResult, ExecutionStore, HistoryEvent, RunOptions, Snapshot,
    StoreError, TaskDispatcher, TaskError, TaskInvocation,
};
use tokio_util::sync::CancellationToken;

pub fn info(name: &str) -> ExecutionInfo {
    ExecutionInfo {
        execution_arn: format!("arn:aws:states:us-east-1:123456789012:execution:Test:{name}"),
        name: name.to_owned(),
        state_machine_arn: "arn:aws:states:us-east-1:123456789012:stateMachine:Test".into(),
        state_machine_name: "Test".into(),
        role_arn: "arn:aws:iam::123456789012:role/test".into(),
        start_time: Utc::now(),
        redrive_count: 0,
    }
}

/// Runs `definition` from the start to its end, recording into `store`, with no task handler
/// and no waiting (time scale 0: Waits and Retry intervals are skipped).
pub async fn run_untimed(
    definition: Definition,
    name: &str,
    input: Value,
    store: Arc<dyn ExecutionStore>,
) -> ExecutionResult {
    stepops_asl::run(
        Arc::new(definition),
        info(name),
        input,
        None,
        Arc::new(NoTasks),
        store,
        RunOptions {
            time_scale: 0.0,
            ..Default::default()
        },
        CancellationToken::new(),
    )
    .await
}

/// Keeps every event and the latest snapshot in memory.
#[derive(Default)]
pub struct MemStore {
    pub events: Mutex<Vec<HistoryEvent>>,
    pub snapshot: Mutex<Option<Snapshot>>,
    pub calls: Mutex<usize>,
}

impl ExecutionStore for MemStore {
    fn record(
        &self,
        _arn: &str,
        events: &[HistoryEvent],
        snapshot: &Snapshot,
    ) -> Result<(), StoreError> {
        self.events.lock().unwrap().extend_from_slice(events);
        *self.snapshot.lock().unwrap() = Some(snapshot.clone());
        *self.calls.lock().unwrap() += 1;
        Ok(())
    }
}

impl MemStore {
    pub fn event_types(&self) -> Vec<String> {
        self.events
            .lock()
            .unwrap()
            .iter()
            .map(|e| e.event_type.clone())
            .collect()
    }
    pub fn snapshot(&self) -> Snapshot {
        self.snapshot
            .lock()
            .unwrap()
            .clone()
            .expect("a snapshot was recorded")
    }
}

/// Rejects every task (the conformance corpus has none).
pub struct NoTasks;

impl TaskDispatcher for NoTasks {
    fn dispatch(&self, task: TaskInvocation) -> BoxFuture<'static, Result<Value, TaskError>> {
        Box::pin(async move {
            Err(TaskError::new(
                "States.Runtime",
                format!("no task handler for resource '{}'", task.resource),
            ))
        })
    }
}

/// A dispatcher driven by a closure, recording every invocation.
pub struct FnTasks<F> {
    pub f: F,
    pub calls: Arc<Mutex<Vec<TaskInvocation>>>,
}

impl<F> FnTasks<F>
where
    F: Fn(TaskInvocation) -> BoxFuture<'static, Result<Value, TaskError>> + Send + Sync + 'static,
{
    pub fn new(f: F) -> Arc<Self> {
        Arc::new(FnTasks {
            f,
            calls: Arc::default(),
        })
    }
    pub fn calls(&self) -> Vec<TaskInvocation> {
        self.calls.lock().unwrap().clone()
    }
}

impl<F> TaskDispatcher for FnTasks<F>
where
    F: Fn(TaskInvocation) -> BoxFuture<'static, Result<Value, TaskError>> + Send + Sync + 'static,
{
    fn dispatch(&self, task: TaskInvocation) -> BoxFuture<'static, Result<Value, TaskError>> {
        self.calls.lock().unwrap().push(task.clone());
        (self.f)(task)
    }
}
