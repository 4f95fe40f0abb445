//! The engine: state machines, executions (run by `stepops_asl::run`), durability, redrive,
//! and the library API the CLI and the pipeline embed.
//!
//! Here: the configuration, the outcome types and the state machines and activities of
//! [`Engine`]; `executions.rs` starts, stops, redrives and waits for executions,
//! `delivery.rs` delivers status changes to EventBridge rules' targets, `state_dir.rs` locks
//! the state directory, `facade.rs` is [`LocalEngine`], the library API.

mod delivery;
mod executions;
mod facade;
mod state_dir;

pub use facade::LocalEngine;

use std::collections::{BTreeMap, HashMap};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use chrono::{DateTime, Utc};
use serde_json::{Value, json};
use stepops_asl::{
    Definition, ExecutionInfo, ExecutionResult, ExecutionStore, HistoryEvent, RunOptions, Snapshot,
    StopSignal, StoreError,
};
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

use crate::arn::{Locality, states_resource, valid_name};
use crate::dispatch::Dispatcher;
use crate::error::{ApiError, ApiErrorKind, LocalError};
use crate::events::{EventRuleSpec, status_change_event};
use crate::lambda::{LambdaHandler, LambdaRegistry};
use crate::store::{ExecutionRecord, StateMachineRecord, Store};
use crate::tasks::TaskHub;
use crate::template::{LoadedTemplate, TemplateOptions, load_template};

/// How to start a [`LocalEngine`].
#[derive(Clone)]
pub struct EngineConfig {
    /// Where executions are persisted (`engine.sqlite3`); default `.stepops`.
    pub state_dir: PathBuf,
    /// Serve the Step Functions API on `127.0.0.1:port` (`Some(0)`: a free port); `None`:
    /// no HTTP server (in-process use only).
    pub port: Option<u16>,
    /// A SAM template to load state machines, activities and functions from.
    pub template: Option<PathBuf>,
    /// Parameter overrides, stack name, region and account.
    pub template_options: TemplateOptions,
    /// 1.0 real time; 0.0 no waiting (Wait states, retry intervals, timeouts).
    pub time_scale: f64,
    /// How long `GetActivityTask` holds a poll when no task is queued (AWS: 60 s).
    pub poll_timeout: Duration,
    /// What a held `GetActivityTask` does when its client goes away (a runner killed while it
    /// polls). `false` (default): the poll ends and the next task goes to a live poller.
    /// `true`, as AWS may do: the poll stays in line and takes a task that arrives before its
    /// time is up; that task is then lost (nobody works on it) until its `HeartbeatSeconds` run
    /// out and the state's `Retry` schedules it again. Crash tests use it.
    pub abandoned_polls_take_tasks: bool,
    /// Folder standing in for S3 (Distributed Map); default `<state_dir>/s3`.
    pub s3_root: Option<PathBuf>,
    /// Lambda handlers. Register them here (or before starting executions) so that executions
    /// resumed at start find them.
    pub lambdas: LambdaRegistry,
    /// Resume RUNNING executions found in the store at start (default true).
    pub resume: bool,
    /// Secrets Manager stand-in: `GetSecretValue` (`X-Amz-Target: secretsmanager.GetSecretValue`)
    /// on the same endpoint answers these values by name (a runner started with
    /// `AWS_ENDPOINT_URL_SECRETS_MANAGER=<endpoint>` reads its `{"secret": NAME}` targets here).
    /// Values are never logged.
    pub secrets: BTreeMap<String, String>,
}

impl Default for EngineConfig {
    fn default() -> Self {
        EngineConfig {
            state_dir: PathBuf::from(".stepops"),
            port: Some(0),
            template: None,
            template_options: TemplateOptions::default(),
            time_scale: 1.0,
            poll_timeout: Duration::from_secs(60),
            abandoned_polls_take_tasks: false,
            s3_root: None,
            lambdas: LambdaRegistry::new(),
            resume: true,
            secrets: BTreeMap::new(),
        }
    }
}

impl EngineConfig {
    /// A configuration persisting under `state_dir`, serving on a free port.
    pub fn new(state_dir: impl Into<PathBuf>) -> Self {
        EngineConfig {
            state_dir: state_dir.into(),
            ..Self::default()
        }
    }

    /// Registers a Lambda handler (by function name or template logical id).
    pub fn with_lambda(self, name: &str, handler: LambdaHandler) -> Self {
        self.lambdas.register(name, handler);
        self
    }
}

/// How an execution ended (or that it still runs), as `DescribeExecution` tells it.
#[derive(Clone, Debug, PartialEq)]
pub struct ExecutionOutcome {
    /// The execution's ARN.
    pub execution_arn: String,
    /// `RUNNING`, `SUCCEEDED`, `FAILED`, `TIMED_OUT`, `ABORTED`.
    pub status: String,
    /// Output when SUCCEEDED.
    pub output: Option<Value>,
    /// Error when FAILED/ABORTED.
    pub error: Option<String>,
    /// Cause when FAILED/ABORTED.
    pub cause: Option<String>,
}

impl ExecutionOutcome {
    fn from_record(r: &ExecutionRecord) -> Self {
        ExecutionOutcome {
            execution_arn: r.arn.clone(),
            status: r.status.clone(),
            output: r
                .output
                .as_deref()
                .and_then(|o| serde_json::from_str(o).ok()),
            error: r.error.clone(),
            cause: r.cause.clone(),
        }
    }

    /// `{"status":"SUCCEEDED","output":…}` or `{"status":…,"error":…,"cause":…}`.
    pub fn to_json(&self) -> Value {
        if self.status == "SUCCEEDED" {
            json!({"status": self.status, "output": self.output})
        } else {
            json!({"status": self.status, "error": self.error, "cause": self.cause})
        }
    }
}

pub(crate) struct Machine {
    pub record: StateMachineRecord,
    pub definition: Arc<Definition>,
}

/// The shared state behind a [`LocalEngine`] (and its HTTP API and dispatcher).
pub(crate) struct Engine {
    pub locality: Locality,
    pub store: Arc<Store>,
    pub hub: Arc<TaskHub>,
    pub lambdas: LambdaRegistry,
    pub poll_timeout: Duration,
    /// [`EngineConfig::abandoned_polls_take_tasks`].
    pub abandoned_polls_take_tasks: bool,
    pub time_scale: f64,
    pub s3_root: PathBuf,
    /// The Secrets Manager stand-in's values, by name.
    pub secrets: BTreeMap<String, String>,
    /// The CloudWatch Logs stand-in's groups and streams.
    pub(crate) logs: crate::logs::LogStore,
    /// The DynamoDB integration's tables.
    pub(crate) tables: crate::dynamodb::Tables,
    machines: RwLock<BTreeMap<String, Arc<Machine>>>,
    /// Stop tokens of running executions, with the StopExecution error/cause.
    running: Mutex<HashMap<String, RunningExecution>>,
    finished: Notify,
    pub shutdown: CancellationToken,
    tasks: tokio_util::task::TaskTracker,
    /// EventBridge rules run on execution status changes (from the template).
    event_rules: RwLock<Vec<EventRuleSpec>>,
    /// Every delivery of a status-change event to a rule's target, oldest first.
    deliveries: Mutex<Vec<Delivery>>,
    /// Deliveries not finished yet.
    in_flight: std::sync::atomic::AtomicUsize,
    delivered: Notify,
    /// Exclusive lock on `<state dir>/engine.lock`, released when the last task is gone.
    _lock: std::fs::File,
}

/// One status-change event handed to one rule target, as EventBridge does: an in-process
/// Lambda handler invoked asynchronously with the whole event as payload, or a state machine
/// started with it as input.
#[derive(Clone, Debug, PartialEq)]
pub struct Delivery {
    /// The rule ([`EventRuleSpec::id`]).
    pub rule: String,
    /// The target's logical id (a function or a state machine).
    pub target: String,
    /// The execution whose status changed.
    pub execution_arn: String,
    /// Its new status.
    pub status: String,
    /// The event, as AWS sends it.
    pub event: Value,
    /// The handler's result (a state machine's: `{executionArn, status}` once it ended), or
    /// `(error, cause)` of its last attempt.
    pub result: Result<Value, (String, String)>,
    /// Invocations made (a failing handler is invoked up to 3 times, as Lambda retries an
    /// asynchronous invocation twice).
    pub attempts: u32,
}

/// Deliveries [`LocalEngine::deliveries`] keeps (the oldest go first).
const MAX_DELIVERIES_KEPT: usize = 1000;

/// A running execution's StopExecution handle (it carries the error and cause to the
/// `ExecutionAborted` event and to DescribeExecution).
struct RunningExecution {
    stop: StopSignal,
}

fn api(kind: ApiErrorKind, message: impl Into<String>) -> ApiError {
    ApiError::new(kind, message)
}

fn internal(e: LocalError) -> ApiError {
    api(ApiErrorKind::InternalFailure, e.to_string())
}

struct StoreAdapter(Arc<Store>);

impl ExecutionStore for StoreAdapter {
    fn record(
        &self,
        execution_arn: &str,
        events: &[HistoryEvent],
        snapshot: &Snapshot,
    ) -> Result<(), StoreError> {
        let events: Vec<(i64, String)> = events
            .iter()
            .map(|e| {
                (
                    e.id,
                    serde_json::to_string(e).expect("history events serialise"),
                )
            })
            .collect();
        let snap = serde_json::to_string(&snapshot.0).expect("snapshots serialise");
        self.0
            .record(execution_arn, &events, &snap)
            .map_err(|e| StoreError(e.to_string()))
    }
}

impl Engine {
    pub(crate) fn machine(&self, arn: &str) -> Result<Arc<Machine>, ApiError> {
        if states_resource(arn).is_none_or(|(k, _)| k != "stateMachine") {
            return Err(api(
                ApiErrorKind::InvalidArn,
                format!("Invalid Arn: '{arn}' is not a state machine ARN"),
            ));
        }
        self.machines
            .read()
            .expect("machines lock")
            .get(arn)
            .cloned()
            .ok_or_else(|| {
                api(
                    ApiErrorKind::StateMachineDoesNotExist,
                    format!("State Machine Does Not Exist: '{arn}'"),
                )
            })
    }

    pub(crate) fn machines(&self) -> Vec<Arc<Machine>> {
        self.machines
            .read()
            .expect("machines lock")
            .values()
            .cloned()
            .collect()
    }

    /// Adds or replaces a state machine (template load; CreateStateMachine checks first).
    fn install_machine(&self, record: StateMachineRecord) -> Result<Arc<Machine>, LocalError> {
        let definition =
            Definition::parse(&record.definition).map_err(|e| LocalError::Definition {
                name: record.name.clone(),
                message: e.to_string(),
            })?;
        self.store.put_state_machine(&record)?;
        let m = Arc::new(Machine {
            record,
            definition: Arc::new(definition),
        });
        self.machines
            .write()
            .expect("machines lock")
            .insert(m.record.arn.clone(), m.clone());
        Ok(m)
    }

    pub(crate) fn create_state_machine(
        &self,
        name: &str,
        definition: &str,
        role_arn: &str,
        kind: &str,
    ) -> Result<(String, DateTime<Utc>), ApiError> {
        if !valid_name(name) {
            return Err(api(
                ApiErrorKind::InvalidName,
                format!("Invalid Name: '{name}'"),
            ));
        }
        let parsed = Definition::parse(definition).map_err(|e| {
            api(
                ApiErrorKind::InvalidDefinition,
                format!("Invalid State Machine Definition: {e}"),
            )
        })?;
        let arn = self.locality.state_machine_arn(name);
        if let Some(existing) = self.machines.read().expect("machines lock").get(&arn) {
            let same = serde_json::from_str::<Value>(&existing.record.definition).ok()
                == serde_json::from_str::<Value>(definition).ok();
            if same {
                return Ok((arn, existing.record.created));
            }
            return Err(api(
                ApiErrorKind::StateMachineAlreadyExists,
                format!("State Machine Already Exists: '{arn}'"),
            ));
        }
        let record = StateMachineRecord {
            arn: arn.clone(),
            name: name.to_string(),
            definition: definition.to_string(),
            role_arn: role_arn.to_string(),
            kind: if kind.is_empty() { "STANDARD" } else { kind }.to_string(),
            created: Utc::now(),
        };
        self.store.put_state_machine(&record).map_err(internal)?;
        let created = record.created;
        self.machines.write().expect("machines lock").insert(
            arn.clone(),
            Arc::new(Machine {
                record,
                definition: Arc::new(parsed),
            }),
        );
        Ok((arn, created))
    }

    pub(crate) fn create_activity(&self, name: &str) -> Result<(String, DateTime<Utc>), ApiError> {
        if !valid_name(name) {
            return Err(api(
                ApiErrorKind::InvalidName,
                format!("Invalid Name: '{name}'"),
            ));
        }
        let arn = self.locality.activity_arn(name);
        let info = self.hub.create_activity(&arn, name, Utc::now());
        self.store
            .put_activity(&arn, name, &info.created)
            .map_err(internal)?;
        Ok((arn, info.created))
    }

    pub(crate) fn delete_activity(&self, arn: &str) -> Result<(), ApiError> {
        if states_resource(arn).is_none_or(|(k, _)| k != "activity") {
            return Err(api(
                ApiErrorKind::InvalidArn,
                format!("Invalid Arn: '{arn}' is not an activity ARN"),
            ));
        }
        self.hub.delete_activity(arn);
        self.store.delete_activity(arn).map_err(internal)
    }
}
