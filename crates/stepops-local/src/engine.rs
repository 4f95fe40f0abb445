//! The engine: state machines, executions (run by `stepops_asl::run`), durability, redrive,
//! and the library API the CLI and the pipeline embed.

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

/// One status-change event handed to one rule target (an in-process Lambda handler), as
/// EventBridge invokes a Lambda target: asynchronously, with the whole event as payload.
#[derive(Clone, Debug, PartialEq)]
pub struct Delivery {
    /// The rule ([`EventRuleSpec::id`]).
    pub rule: String,
    /// The target function's logical id.
    pub function: String,
    /// The execution whose status changed.
    pub execution_arn: String,
    /// Its new status.
    pub status: String,
    /// The event, as AWS sends it.
    pub event: Value,
    /// The handler's result, or `(error, cause)` of its last attempt.
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

    pub(crate) fn start_execution(
        self: &Arc<Self>,
        state_machine_arn: &str,
        name: Option<&str>,
        input: Option<&str>,
    ) -> Result<(String, DateTime<Utc>), ApiError> {
        let machine = self.machine(state_machine_arn)?;
        let name = match name {
            Some(n) if !n.is_empty() => n.to_string(),
            _ => uuid::Uuid::new_v4().to_string(),
        };
        if !valid_name(&name) {
            return Err(api(
                ApiErrorKind::InvalidName,
                format!("Invalid Name: '{name}'"),
            ));
        }
        let input_text = input.filter(|s| !s.is_empty()).unwrap_or("{}");
        let input_value: Value = serde_json::from_str(input_text).map_err(|e| {
            api(
                ApiErrorKind::InvalidExecutionInput,
                format!("Invalid Execution Input: not valid JSON ({e})"),
            )
        })?;
        let arn = self.locality.execution_arn(&machine.record.name, &name);
        if let Some(existing) = self.store.execution(&arn).map_err(internal)? {
            let same_input =
                serde_json::from_str::<Value>(&existing.input).ok() == Some(input_value.clone());
            if existing.status == "RUNNING" && same_input {
                return Ok((existing.arn, existing.start_date));
            }
            return Err(api(
                ApiErrorKind::ExecutionAlreadyExists,
                format!("Execution Already Exists: '{arn}'"),
            ));
        }
        let start = Utc::now();
        let info = ExecutionInfo {
            execution_arn: arn.clone(),
            name: name.clone(),
            state_machine_arn: machine.record.arn.clone(),
            state_machine_name: machine.record.name.clone(),
            role_arn: machine.record.role_arn.clone(),
            start_time: start,
            redrive_count: 0,
        };
        let record = ExecutionRecord {
            arn: arn.clone(),
            name,
            state_machine_arn: machine.record.arn.clone(),
            definition: machine.record.definition.clone(),
            status: "RUNNING".into(),
            input: input_value.to_string(),
            output: None,
            error: None,
            cause: None,
            start_date: start,
            stop_date: None,
            redrive_count: 0,
            redrive_date: None,
            info: serde_json::to_string(&info).expect("info serialises"),
        };
        self.store.insert_execution(&record).map_err(internal)?;
        self.status_changed(&arn);
        self.spawn_run(
            record,
            Some(machine.definition.clone()),
            info,
            input_value,
            None,
        );
        Ok((arn, start))
    }

    /// Runs (or resumes) one execution in the background.
    fn spawn_run(
        self: &Arc<Self>,
        record: ExecutionRecord,
        definition: Option<Arc<Definition>>,
        info: ExecutionInfo,
        input: Value,
        resume: Option<Snapshot>,
    ) {
        let definition = match definition {
            Some(d) => d,
            None => match Definition::parse(&record.definition) {
                Ok(d) => Arc::new(d),
                Err(e) => {
                    let _ = self.store.finish_execution(
                        &record.arn,
                        "FAILED",
                        None,
                        Some("States.Runtime"),
                        Some(&format!("The stored definition no longer loads: {e}")),
                        &Utc::now(),
                    );
                    self.status_changed(&record.arn);
                    self.finished.notify_waiters();
                    return;
                }
            },
        };
        let stop = StopSignal::new();
        self.running
            .lock()
            .expect("running lock")
            .insert(record.arn.clone(), RunningExecution { stop: stop.clone() });
        let engine = self.clone();
        let dispatcher: Arc<dyn stepops_asl::TaskDispatcher> =
            Arc::new(Dispatcher::new(Arc::downgrade(self)));
        let store: Arc<dyn ExecutionStore> = Arc::new(StoreAdapter(self.store.clone()));
        let options = RunOptions {
            time_scale: self.time_scale,
            s3_root: Some(self.s3_root.clone()),
        };
        let shutdown = self.shutdown.clone();
        let arn = record.arn.clone();
        self.tasks.spawn(async move {
            let run = stepops_asl::run(
                definition,
                info,
                input,
                resume,
                dispatcher,
                store,
                options,
                stop.clone(),
            );
            let result = tokio::select! {
                r = run => r,
                // The engine is going away: leave the execution RUNNING; the next engine on
                // this state dir resumes it from its snapshot.
                _ = shutdown.cancelled() => return,
            };
            engine.running.lock().expect("running lock").remove(&arn);
            let now = Utc::now();
            let (status, output, error, cause) = match result {
                ExecutionResult::Succeeded { output } => {
                    ("SUCCEEDED", Some(output.to_string()), None, None)
                }
                ExecutionResult::Failed { error, cause } => ("FAILED", None, error, cause),
                ExecutionResult::Aborted => {
                    let (e, c) = stop.reason();
                    ("ABORTED", None, e, c)
                }
                ExecutionResult::TimedOut => (
                    "TIMED_OUT",
                    None,
                    Some("States.Timeout".to_string()),
                    Some("The execution exceeded its TimeoutSeconds.".to_string()),
                ),
            };
            if let Err(e) = engine.store.finish_execution(
                &arn,
                status,
                output.as_deref(),
                error.as_deref(),
                cause.as_deref(),
                &now,
            ) {
                tracing::error!(execution = %arn, error = %e, "cannot record the end of an execution");
            }
            tracing::info!(execution = %arn, status, "execution ended");
            // Deliveries are counted before the waiters wake: `wait` + `deliveries_settled`
            // sees this execution's end notified.
            engine.status_changed(&arn);
            engine.finished.notify_waiters();
        });
    }

    /// Resumes every RUNNING execution of the store.
    fn resume_running(self: &Arc<Self>) -> Result<usize, LocalError> {
        let running = self.store.executions(None, Some("RUNNING"))?;
        let n = running.len();
        for record in running {
            let info: ExecutionInfo = match serde_json::from_str(&record.info) {
                Ok(i) => i,
                Err(e) => {
                    tracing::error!(execution = %record.arn, error = %e, "unreadable execution info; not resumed");
                    continue;
                }
            };
            let input: Value = serde_json::from_str(&record.input).unwrap_or(Value::Null);
            let snapshot = self
                .store
                .snapshot(&record.arn)?
                .and_then(|s| serde_json::from_str(&s).ok())
                .map(Snapshot);
            tracing::info!(execution = %record.arn, "resuming execution");
            self.spawn_run(record, None, info, input, snapshot);
        }
        Ok(n)
    }

    pub(crate) fn execution(&self, arn: &str) -> Result<ExecutionRecord, ApiError> {
        if states_resource(arn).is_none_or(|(k, _)| k != "execution") {
            return Err(api(
                ApiErrorKind::InvalidArn,
                format!("Invalid Arn: '{arn}' is not an execution ARN"),
            ));
        }
        self.store.execution(arn).map_err(internal)?.ok_or_else(|| {
            api(
                ApiErrorKind::ExecutionDoesNotExist,
                format!("Execution Does Not Exist: '{arn}'"),
            )
        })
    }

    pub(crate) fn stop_execution(
        &self,
        arn: &str,
        error: Option<String>,
        cause: Option<String>,
    ) -> Result<DateTime<Utc>, ApiError> {
        let record = self.execution(arn)?;
        if record.status != "RUNNING" {
            return Ok(record.stop_date.unwrap_or_else(Utc::now));
        }
        let running = self.running.lock().expect("running lock");
        if let Some(r) = running.get(arn) {
            r.stop.stop(error, cause);
        }
        Ok(Utc::now())
    }

    pub(crate) fn redrive_execution(
        self: &Arc<Self>,
        arn: &str,
    ) -> Result<DateTime<Utc>, ApiError> {
        let record = self.execution(arn)?;
        if !matches!(record.status.as_str(), "FAILED" | "TIMED_OUT" | "ABORTED") {
            return Err(api(
                ApiErrorKind::ExecutionNotRedrivable,
                format!(
                    "Execution Not Redrivable: '{arn}' is {}; only FAILED, TIMED_OUT and ABORTED executions can be redriven",
                    record.status
                ),
            ));
        }
        let snapshot = self
            .store
            .snapshot(arn)
            .map_err(internal)?
            .and_then(|s| serde_json::from_str::<Value>(&s).ok())
            .map(Snapshot)
            .ok_or_else(|| {
                api(
                    ApiErrorKind::ExecutionNotRedrivable,
                    format!("Execution Not Redrivable: '{arn}' has no recorded progress"),
                )
            })?;
        let redriven = stepops_asl::redrive(&snapshot).map_err(|e| {
            api(
                ApiErrorKind::ExecutionNotRedrivable,
                format!("Execution Not Redrivable: {e}"),
            )
        })?;
        let mut info: ExecutionInfo = serde_json::from_str(&record.info)
            .map_err(|e| api(ApiErrorKind::InternalFailure, e.to_string()))?;
        info.redrive_count = record.redrive_count + 1;
        let now = Utc::now();
        let info_text = serde_json::to_string(&info).expect("info serialises");
        let snap_text = serde_json::to_string(&redriven.0).expect("snapshot serialises");
        self.store
            .redrive_execution(arn, info.redrive_count, &now, &info_text, &snap_text)
            .map_err(internal)?;
        self.status_changed(arn);
        let input: Value = serde_json::from_str(&record.input).unwrap_or(Value::Null);
        let mut record = record;
        record.status = "RUNNING".into();
        self.spawn_run(record, None, info, input, Some(redriven));
        Ok(now)
    }

    /// Waits until the execution is no longer RUNNING.
    pub(crate) async fn wait(&self, arn: &str) -> Result<ExecutionRecord, ApiError> {
        loop {
            let notified = self.finished.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            let record = self.execution(arn)?;
            if record.status != "RUNNING" {
                return Ok(record);
            }
            tokio::select! {
                _ = notified => {}
                _ = self.shutdown.cancelled() => {
                    return Err(api(ApiErrorKind::InternalFailure, "the engine is shutting down"));
                }
            }
        }
    }

    /// Sends the execution's status change to every matching rule's targets, in the
    /// background (EventBridge invokes Lambda targets asynchronously).
    fn status_changed(self: &Arc<Self>, arn: &str) {
        let rules = self.event_rules.read().expect("rules lock").clone();
        if rules.is_empty() {
            return;
        }
        let record = match self.store.execution(arn) {
            Ok(Some(r)) => r,
            Ok(None) => return,
            Err(e) => {
                tracing::error!(execution = %arn, error = %e, "cannot read the execution for its status-change event");
                return;
            }
        };
        let event = status_change_event(&self.locality, &record);
        for rule in rules.iter().filter(|r| r.pattern.matches(&event)) {
            for target in &rule.targets {
                self.in_flight
                    .fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                let engine = self.clone();
                let (rule, target) = (rule.id.clone(), target.clone());
                let (event, status, arn) =
                    (event.clone(), record.status.clone(), record.arn.clone());
                self.tasks.spawn(async move {
                    let shutdown = engine.shutdown.clone();
                    let deliver = engine.deliver(&rule, &target, event, status, arn);
                    tokio::select! {
                        d = deliver => {
                            let mut all = engine.deliveries.lock().expect("deliveries lock");
                            if all.len() >= MAX_DELIVERIES_KEPT {
                                all.remove(0);
                            }
                            all.push(d);
                        }
                        _ = shutdown.cancelled() => {}
                    }
                    engine
                        .in_flight
                        .fetch_sub(1, std::sync::atomic::Ordering::SeqCst);
                    engine.delivered.notify_waiters();
                });
            }
        }
    }

    async fn deliver(
        &self,
        rule: &str,
        target: &crate::events::RuleTarget,
        event: Value,
        status: String,
        arn: String,
    ) -> Delivery {
        let mut attempts = 0;
        let result = loop {
            attempts += 1;
            let outcome = match self
                .lambdas
                .resolve(&target.logical_id)
                .or_else(|| self.lambdas.resolve(&target.name))
            {
                None => Err((
                    "Lambda.ResourceNotFoundException".to_owned(),
                    format!(
                        "rule {rule} targets {} but no in-process handler is registered for it (registered: {})",
                        target.logical_id,
                        self.lambdas.names().join(", ")
                    ),
                )),
                Some(h) => match crate::lambda::invoke(h, &target.name, event.clone()).await {
                    crate::lambda::Invocation::Ok(v) => Ok(v),
                    crate::lambda::Invocation::Err(e, c) => Err((e, c)),
                },
            };
            match outcome {
                Ok(v) => {
                    tracing::info!(rule, function = %target.logical_id, execution = %arn, status = %status, "status change delivered");
                    break Ok(v);
                }
                Err((e, c)) if attempts < 3 && e != "Lambda.ResourceNotFoundException" => {
                    tracing::warn!(rule, function = %target.logical_id, execution = %arn, error = %e, cause = %c, attempt = attempts, "status-change delivery failed; retrying");
                    let delay = Duration::from_secs_f64(f64::from(attempts) * self.time_scale);
                    tokio::time::sleep(delay).await;
                }
                Err((e, c)) => {
                    tracing::error!(rule, function = %target.logical_id, execution = %arn, error = %e, cause = %c, attempts, "status-change delivery failed");
                    break Err((e, c));
                }
            }
        };
        Delivery {
            rule: rule.to_owned(),
            function: target.logical_id.clone(),
            execution_arn: arn,
            status,
            event,
            result,
            attempts,
        }
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

/// Takes `<dir>/engine.lock`, waiting up to 10 s for an engine that is shutting down (its tasks
/// end at their next await) to let go of it.
async fn lock_state_dir(dir: &std::path::Path) -> Result<std::fs::File, LocalError> {
    std::fs::create_dir_all(dir).map_err(|source| LocalError::Io {
        path: dir.display().to_string(),
        source,
    })?;
    let path = dir.join("engine.lock");
    let file = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&path)
        .map_err(|source| LocalError::Io {
            path: path.display().to_string(),
            source,
        })?;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        match file.try_lock() {
            Ok(()) => return Ok(file),
            Err(std::fs::TryLockError::WouldBlock) if tokio::time::Instant::now() < deadline => {
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            Err(std::fs::TryLockError::WouldBlock) => {
                return Err(LocalError::Io {
                    path: path.display().to_string(),
                    source: std::io::Error::other(
                        "the state dir is in use by another stepops local engine; stop it or \
                         choose another --state-dir",
                    ),
                });
            }
            Err(std::fs::TryLockError::Error(source)) => {
                return Err(LocalError::Io {
                    path: path.display().to_string(),
                    source,
                });
            }
        }
    }
}

/// A running local engine. Dropping it stops the HTTP server and leaves RUNNING executions
/// in the store, to be resumed by the next engine started on the same state dir.
pub struct LocalEngine {
    engine: Arc<Engine>,
    addr: Option<SocketAddr>,
    template: Option<LoadedTemplate>,
}

impl LocalEngine {
    /// Opens the store, loads the template, starts the HTTP API (when `config.port` is set)
    /// and resumes the store's RUNNING executions.
    pub async fn start(config: EngineConfig) -> Result<LocalEngine, LocalError> {
        let lock = lock_state_dir(&config.state_dir).await?;
        let store = Arc::new(Store::open(&config.state_dir)?);
        let s3_root = config
            .s3_root
            .clone()
            .unwrap_or_else(|| config.state_dir.join("s3"));
        let engine = Arc::new(Engine {
            locality: config.template_options.locality.clone(),
            store: store.clone(),
            hub: TaskHub::with_log(store.clone()),
            lambdas: config.lambdas.clone(),
            poll_timeout: config.poll_timeout,
            abandoned_polls_take_tasks: config.abandoned_polls_take_tasks,
            time_scale: config.time_scale,
            s3_root,
            secrets: config.secrets.clone(),
            machines: RwLock::new(BTreeMap::new()),
            running: Mutex::new(HashMap::new()),
            finished: Notify::new(),
            shutdown: CancellationToken::new(),
            tasks: tokio_util::task::TaskTracker::new(),
            event_rules: RwLock::new(Vec::new()),
            deliveries: Mutex::new(Vec::new()),
            in_flight: std::sync::atomic::AtomicUsize::new(0),
            delivered: Notify::new(),
            _lock: lock,
        });
        for (arn, name, created) in store.activities()? {
            engine.hub.create_activity(&arn, &name, created);
        }
        for record in store.state_machines()? {
            let name = record.name.clone();
            if let Err(e) = engine.install_machine(record) {
                tracing::warn!(state_machine = %name, error = %e, "stored state machine no longer loads");
            }
        }
        let template = match &config.template {
            Some(path) => {
                let t = load_template(path, &config.template_options)?;
                for a in &t.activities {
                    let info = engine.hub.create_activity(&a.arn, &a.name, Utc::now());
                    store.put_activity(&a.arn, &a.name, &info.created)?;
                }
                for f in &t.functions {
                    engine.lambdas.alias(&f.logical_id, &f.name);
                }
                for r in &t.event_rules {
                    tracing::info!("{}", r.describe());
                }
                for u in &t.unemulated_rules {
                    tracing::info!(rule = %u.id, "not run locally: {}", u.reason);
                }
                *engine.event_rules.write().expect("rules lock") = t.event_rules.clone();
                for m in &t.state_machines {
                    let created = engine
                        .machines
                        .read()
                        .expect("machines lock")
                        .get(&m.arn)
                        .map(|x| x.record.created)
                        .unwrap_or_else(Utc::now);
                    engine
                        .install_machine(StateMachineRecord {
                            arn: m.arn.clone(),
                            name: m.name.clone(),
                            definition: m.definition.clone(),
                            role_arn: format!(
                                "arn:aws:iam::{}:role/{}Role",
                                engine.locality.account, m.logical_id
                            ),
                            kind: m.kind.clone(),
                            created,
                        })
                        .map_err(|e| LocalError::Template {
                            path: path.display().to_string(),
                            message: format!(
                                "state machine {} ({}): {e}",
                                m.logical_id,
                                m.definition_path
                                    .as_ref()
                                    .map(|p| p.display().to_string())
                                    .unwrap_or_else(|| "inline definition".into())
                            ),
                        })?;
                }
                Some(t)
            }
            None => None,
        };
        let addr = match config.port {
            Some(port) => {
                let addr = SocketAddr::from(([127, 0, 0, 1], port));
                let listener = tokio::net::TcpListener::bind(addr)
                    .await
                    .map_err(|source| LocalError::Bind {
                        addr: addr.to_string(),
                        source,
                    })?;
                let local = listener.local_addr().map_err(|source| LocalError::Bind {
                    addr: addr.to_string(),
                    source,
                })?;
                tokio::spawn(crate::api::serve(listener, engine.clone()));
                Some(local)
            }
            None => None,
        };
        if config.resume {
            let n = engine.resume_running()?;
            if n > 0 {
                tracing::info!(count = n, "resumed running executions");
            }
        }
        Ok(LocalEngine {
            engine,
            addr,
            template,
        })
    }

    /// `http://127.0.0.1:PORT` (the SDK's `endpoint_url`), when serving.
    pub fn endpoint(&self) -> Option<String> {
        self.addr.map(|a| format!("http://{a}"))
    }

    /// The folder standing in for S3 (Distributed Map `ItemReader`/`ResultWriter`): bucket `B`,
    /// key `K` is the file `s3_root/B/K`.
    pub fn s3_root(&self) -> &std::path::Path {
        &self.engine.s3_root
    }

    /// The SQLite database file holding executions.
    pub fn store_path(&self) -> &std::path::Path {
        self.engine.store.path()
    }

    /// The template as loaded, if any.
    pub fn template(&self) -> Option<&LoadedTemplate> {
        self.template.as_ref()
    }

    /// The local ARN of the state machine `name_or_arn` (a name, an ARN or a template
    /// logical id).
    pub fn state_machine_arn(&self, name_or_arn: &str) -> Result<String, LocalError> {
        if name_or_arn.starts_with("arn:") {
            return Ok(name_or_arn.to_string());
        }
        if let Some(t) = &self.template
            && let Some(m) = t
                .state_machines
                .iter()
                .find(|m| m.logical_id == name_or_arn)
        {
            return Ok(m.arn.clone());
        }
        Ok(self.engine.locality.state_machine_arn(name_or_arn))
    }

    /// The local ARN of the activity `name` (its name or template logical id).
    pub fn activity_arn(&self, name: &str) -> String {
        if let Some(t) = &self.template
            && let Some(a) = t.activities.iter().find(|a| a.logical_id == name)
        {
            return a.arn.clone();
        }
        self.engine.locality.activity_arn(name)
    }

    /// Registers a Lambda handler (by function name or template logical id).
    pub fn register_lambda(&self, name: &str, handler: LambdaHandler) {
        self.engine.lambdas.register(name, handler);
    }

    /// Creates (or finds, when the definition is the same) a state machine.
    pub fn create_state_machine(&self, name: &str, definition: &str) -> Result<String, LocalError> {
        let role = format!(
            "arn:aws:iam::{}:role/stepops-local",
            self.engine.locality.account
        );
        Ok(self
            .engine
            .create_state_machine(name, definition, &role, "STANDARD")?
            .0)
    }

    /// Creates an activity; returns its ARN.
    pub fn create_activity(&self, name: &str) -> Result<String, LocalError> {
        Ok(self.engine.create_activity(name)?.0)
    }

    /// Starts an execution of `state_machine` (name, ARN or template logical id); `name`
    /// defaults to a UUID. Returns the execution ARN.
    pub fn start_execution(
        &self,
        state_machine: &str,
        input: &Value,
        name: Option<&str>,
    ) -> Result<String, LocalError> {
        let arn = self.state_machine_arn(state_machine)?;
        Ok(self
            .engine
            .start_execution(&arn, name, Some(&input.to_string()))?
            .0)
    }

    /// The execution's current status (and result when it ended).
    pub fn describe(&self, execution_arn: &str) -> Result<ExecutionOutcome, LocalError> {
        Ok(ExecutionOutcome::from_record(
            &self.engine.execution(execution_arn)?,
        ))
    }

    /// Waits for the execution to end.
    pub async fn wait(&self, execution_arn: &str) -> Result<ExecutionOutcome, LocalError> {
        Ok(ExecutionOutcome::from_record(
            &self.engine.wait(execution_arn).await?,
        ))
    }

    /// Stops a running execution (it ends ABORTED).
    pub fn stop_execution(
        &self,
        execution_arn: &str,
        error: Option<&str>,
        cause: Option<&str>,
    ) -> Result<(), LocalError> {
        self.engine.stop_execution(
            execution_arn,
            error.map(str::to_string),
            cause.map(str::to_string),
        )?;
        Ok(())
    }

    /// Redrives a FAILED/TIMED_OUT/ABORTED execution: re-runs only what did not succeed.
    pub fn redrive_execution(&self, execution_arn: &str) -> Result<(), LocalError> {
        self.engine.redrive_execution(execution_arn)?;
        Ok(())
    }

    /// Every status-change event delivered to a rule's target so far (see [`Delivery`]).
    pub fn deliveries(&self) -> Vec<Delivery> {
        self.engine
            .deliveries
            .lock()
            .expect("deliveries lock")
            .clone()
    }

    /// Waits until no status-change delivery is in flight (after [`LocalEngine::wait`], the
    /// execution's end has then reached its rules' targets).
    pub async fn deliveries_settled(&self) {
        loop {
            let notified = self.engine.delivered.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            if self
                .engine
                .in_flight
                .load(std::sync::atomic::Ordering::SeqCst)
                == 0
            {
                return;
            }
            tokio::select! {
                _ = notified => {}
                _ = self.engine.shutdown.cancelled() => return,
            }
        }
    }

    /// The execution's history events, oldest first.
    pub fn history(&self, execution_arn: &str) -> Result<Vec<HistoryEvent>, LocalError> {
        self.engine.execution(execution_arn)?;
        Ok(self
            .engine
            .store
            .events(execution_arn, 0, usize::MAX >> 1, false)?
            .into_iter()
            .filter_map(|(_, e)| serde_json::from_str(&e).ok())
            .collect())
    }

    /// Stops the server and the executions' tasks and waits for them (RUNNING executions stay
    /// RUNNING in the store).
    pub async fn shutdown(self) {
        self.engine.shutdown.cancel();
        self.engine.tasks.close();
        self.engine.tasks.wait().await;
    }
}

impl Drop for LocalEngine {
    fn drop(&mut self) {
        self.engine.shutdown.cancel();
    }
}
