//! An Amazon States Language interpreter (JSONPath mode) for the local Step Functions engine.
//!
//! * [`Definition::parse`] loads and validates a state machine definition; anything the
//!   interpreter does not implement (JSONata, unknown fields, …) fails the load with a message
//!   that names the state.
//! * [`run`] runs (or resumes) one execution to its end. Task states go to a [`TaskDispatcher`];
//!   every transition is handed to an [`ExecutionStore`] with the new history events and a
//!   resumable [`Snapshot`].
//! * [`redrive`] turns the snapshot of a failed execution into one that re-runs only what failed.
//!
//! The data layer (paths, templates, intrinsic functions, Choice rules) is `stepops-asl-data`.
//! The contract with the local engine service is `docs/dev/asl-engine-api.md`; user
//! documentation is `docs/asl.md`.

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use chrono::{DateTime, Utc};
use futures::future::BoxFuture;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

mod definition;
mod executor;
mod map;
mod task;

pub use definition::Definition;

/// A definition failed to load (or a snapshot could not be used).
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum LoadError {
    /// The text is not JSON.
    #[error("the state machine definition is not valid JSON: {0}")]
    Json(String),
    /// The definition breaks the States Language rules.
    #[error("invalid state machine definition: {0}")]
    Invalid(String),
    /// The definition uses a feature this interpreter does not implement.
    #[error("unsupported in the local engine: {0}")]
    Unsupported(String),
    /// A snapshot given to `redrive` (or `run`) is unusable.
    #[error("unusable execution snapshot: {0}")]
    Snapshot(String),
}

impl stepops_error::Named for LoadError {
    fn error_name(&self) -> stepops_error::ErrorName {
        match self {
            LoadError::Snapshot(_) => stepops_error::ErrorName::Internal,
            _ => stepops_error::ErrorName::InvalidInput,
        }
    }
}

/// Who is running: fills the context object `$$.Execution` / `$$.StateMachine`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ExecutionInfo {
    /// `$$.Execution.Id`.
    pub execution_arn: String,
    /// `$$.Execution.Name`.
    pub name: String,
    /// `$$.StateMachine.Id`.
    pub state_machine_arn: String,
    /// `$$.StateMachine.Name`.
    pub state_machine_name: String,
    /// `$$.Execution.RoleArn`.
    pub role_arn: String,
    /// `$$.Execution.StartTime`.
    pub start_time: DateTime<Utc>,
    /// `$$.Execution.RedriveCount`.
    pub redrive_count: u32,
}

/// Runs Task states' resources. Implemented by `stepops-local` (activities, Lambda registry,
/// `.waitForTaskToken`, `states:startExecution(.sync)`), and by tests.
pub trait TaskDispatcher: Send + Sync + 'static {
    /// Runs one attempt of a Task state. The executor drops the future when the task times
    /// out, its heartbeat expires or the execution stops.
    fn dispatch(&self, task: TaskInvocation) -> BoxFuture<'static, Result<Value, TaskError>>;
}

/// One attempt of a Task state, as handed to the [`TaskDispatcher`].
#[derive(Clone, Debug)]
pub struct TaskInvocation {
    /// `Resource` as loaded (placeholders already substituted).
    pub resource: String,
    /// Effective input (after `InputPath` and `Parameters`).
    pub input: Value,
    /// Unique per attempt (64 lowercase hexadecimal characters); also `$$.Task.Token`.
    pub task_token: String,
    /// The dispatcher calls `heartbeat.beat()` on `SendTaskHeartbeat`.
    pub heartbeat: Heartbeat,
    /// `HeartbeatSeconds` (or its `Path` form) as resolved, unscaled.
    pub heartbeat_seconds: Option<u64>,
    /// `TimeoutSeconds` (or its `Path` form) as resolved, unscaled.
    pub timeout_seconds: Option<u64>,
    /// The execution running the task.
    pub execution: ExecutionInfo,
    /// The Task state's name.
    pub state_name: String,
}

/// Cloneable; [`Heartbeat::beat`] resets the executor's heartbeat timer.
#[derive(Clone, Debug, Default)]
pub struct Heartbeat {
    inner: Arc<HeartbeatInner>,
}

#[derive(Debug, Default)]
struct HeartbeatInner {
    notify: Notify,
    beats: AtomicU64,
    waiting: std::sync::atomic::AtomicBool,
    worker: std::sync::Mutex<Option<String>>,
}

impl Heartbeat {
    /// A fresh heartbeat (the executor makes one per task attempt).
    pub fn new() -> Self {
        Self::default()
    }

    /// Records a heartbeat: the executor restarts its `HeartbeatSeconds` timer.
    pub fn beat(&self) {
        self.inner.beats.fetch_add(1, Ordering::SeqCst);
        self.inner.notify.notify_one();
    }

    /// Tells the executor that the task waits for a worker (an activity nobody has picked up
    /// yet): its `…Started` event and its `HeartbeatSeconds` timer then wait for the first
    /// [`Heartbeat::beat`], which the dispatcher sends when a worker gets the task
    /// (`GetActivityTask`). Call it inside `dispatch`, before returning the future.
    /// `TimeoutSeconds` still counts from scheduling, as in AWS.
    pub fn waiting_for_worker(&self) {
        self.inner.waiting.store(true, Ordering::SeqCst);
    }

    /// A worker took the task (`GetActivityTask`), naming itself `worker` (its `workerName`,
    /// which the `ActivityStarted` event records): a [`Heartbeat::beat`] that remembers who.
    pub fn taken_by(&self, worker: Option<&str>) {
        *self.inner.worker.lock().unwrap_or_else(|p| p.into_inner()) = worker.map(str::to_owned);
        self.beat();
    }

    /// The `workerName` given to [`Heartbeat::taken_by`], if any.
    pub fn worker(&self) -> Option<String> {
        self.inner
            .worker
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// Whether [`Heartbeat::waiting_for_worker`] was called.
    pub fn is_waiting_for_worker(&self) -> bool {
        self.inner.waiting.load(Ordering::SeqCst)
    }

    /// How many heartbeats were recorded.
    pub fn count(&self) -> u64 {
        self.inner.beats.load(Ordering::SeqCst)
    }

    /// Resolves at the next heartbeat (or at once if one arrived since the last call).
    pub(crate) async fn wait(&self) {
        self.inner.notify.notified().await
    }
}

/// A task's failure as ASL sees it (Lambda errors are mapped by the dispatcher:
/// `errorType` → error, `errorMessage` → cause, unhandled → `Lambda.Unknown` etc.).
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{error}: {cause}")]
pub struct TaskError {
    /// The error name `Retry`/`Catch` match on.
    pub error: String,
    /// The human cause.
    pub cause: String,
}

impl TaskError {
    /// A task error with this name and cause.
    pub fn new(error: impl Into<String>, cause: impl Into<String>) -> Self {
        TaskError {
            error: error.into(),
            cause: cause.into(),
        }
    }
}

/// One history event, in the Step Functions API's shape.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct HistoryEvent {
    /// 1-based, increasing.
    pub id: i64,
    /// The event this one follows (0 for the first).
    pub previous_event_id: i64,
    /// When it happened.
    pub timestamp: DateTime<Utc>,
    /// "ExecutionStarted", "TaskStateEntered", "ActivityScheduled", …
    pub event_type: String,
    /// "executionStartedEventDetails", "stateEnteredEventDetails", … (None when none).
    pub details_key: Option<String>,
    /// That object, camelCase as GetExecutionHistory returns it.
    pub details: Value,
}

/// Persists progress. Called at every transition with the new events and the execution's
/// latest resumable snapshot; the store writes both atomically. Several events may share one
/// call (group commit); a Task state is dispatched only once the call holding its
/// `…Scheduled` event has returned.
///
/// A call that fails is retried twice (after 0.1 s and 0.4 s); if it still fails, the
/// execution stops: its frames are cancelled (tasks in flight abandoned, as on a stop),
/// nothing more is recorded, and [`run`] returns `Failed` with `States.Runtime` and a cause
/// naming the error. The store keeps the last batch it wrote, which [`redrive`] accepts.
pub trait ExecutionStore: Send + Sync + 'static {
    /// Writes `events` (appended to the execution's history) and `snapshot` (replacing the
    /// previous one) in one transaction.
    fn record(
        &self,
        execution_arn: &str,
        events: &[HistoryEvent],
        snapshot: &Snapshot,
    ) -> Result<(), StoreError>;
}

/// The store could not persist progress: the execution stops with `States.Runtime` (see
/// [`ExecutionStore`]).
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("could not persist execution progress: {0}")]
pub struct StoreError(pub String);

/// Opaque resumable state (serde_json::Value inside); stored and given back as is.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Snapshot(pub Value);

/// How to run.
#[derive(Clone, Debug, PartialEq)]
pub struct RunOptions {
    /// 1.0 real time; 0.0 = no waiting (Wait states, Retry intervals, task timeouts and
    /// heartbeat timeouts are all multiplied by it).
    pub time_scale: f64,
    /// Local folder standing in for S3 (Distributed Map `ItemReader` / `ResultWriter`):
    /// bucket `B`, key `K` is the file `s3_root/B/K`. `None`: such Maps fail with
    /// `States.ItemReaderFailed` / `States.ResultWriterFailed`.
    pub s3_root: Option<PathBuf>,
}

impl Default for RunOptions {
    fn default() -> Self {
        RunOptions {
            time_scale: 1.0,
            s3_root: None,
        }
    }
}

/// How an execution ended.
#[derive(Clone, Debug, PartialEq)]
pub enum ExecutionResult {
    /// SUCCEEDED with this output.
    Succeeded {
        /// The execution's output.
        output: Value,
    },
    /// FAILED.
    Failed {
        /// The error name (None when the Fail state gave none).
        error: Option<String>,
        /// The cause (None when none was given).
        cause: Option<String>,
    },
    /// Stopped through `stop`.
    Aborted,
    /// The definition's `TimeoutSeconds` elapsed.
    TimedOut,
}

/// Stops an execution (`StopExecution`): [`StopSignal::stop`] cancels it and gives the error
/// and cause that its `ExecutionAborted` event records, as AWS records them
/// (`executionAbortedEventDetails`). A bare `CancellationToken` converts into one (a stop
/// without error or cause).
#[derive(Clone, Debug, Default)]
pub struct StopSignal {
    token: CancellationToken,
    reason: Arc<std::sync::Mutex<StopReason>>,
}

/// `(error, cause)` given to [`StopSignal::stop`].
type StopReason = (Option<String>, Option<String>);

impl StopSignal {
    /// A signal not yet given.
    pub fn new() -> Self {
        Self::default()
    }

    /// Stops the execution, recording `error` and `cause` in its `ExecutionAborted` event.
    pub fn stop(&self, error: Option<String>, cause: Option<String>) {
        *self.reason.lock().unwrap_or_else(|p| p.into_inner()) = (error, cause);
        self.token.cancel();
    }

    /// The token that [`StopSignal::stop`] cancels.
    pub fn token(&self) -> &CancellationToken {
        &self.token
    }

    /// The error and cause given to [`StopSignal::stop`] (both `None` before, or when none
    /// were given).
    pub fn reason(&self) -> (Option<String>, Option<String>) {
        self.reason
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }
}

impl From<CancellationToken> for StopSignal {
    fn from(token: CancellationToken) -> Self {
        StopSignal {
            token,
            reason: Arc::default(),
        }
    }
}

/// Runs (or resumes from `resume`) one execution to its end. `stop`: a [`StopSignal`] (or a
/// `CancellationToken`) that ends it `ABORTED`.
#[allow(clippy::too_many_arguments)]
pub async fn run(
    definition: Arc<Definition>,
    info: ExecutionInfo,
    input: Value,
    resume: Option<Snapshot>,
    tasks: Arc<dyn TaskDispatcher>,
    store: Arc<dyn ExecutionStore>,
    options: RunOptions,
    stop: impl Into<StopSignal>,
) -> ExecutionResult {
    executor::run(
        definition,
        info,
        input,
        resume,
        tasks,
        store,
        options,
        stop.into(),
    )
    .await
}

/// For RedriveExecution: from the snapshot of a FAILED/TIMED_OUT/ABORTED execution, a snapshot
/// that re-runs only what did not succeed (the failed state; in a Map, only failed items).
/// A RUNNING snapshot is accepted too: the last persisted progress of an execution stopped
/// because its store failed; it resumes from there.
pub fn redrive(snapshot: &Snapshot) -> Result<Snapshot, LoadError> {
    executor::redrive(snapshot)
}
