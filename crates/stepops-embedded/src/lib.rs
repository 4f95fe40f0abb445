//! The migration pipeline on a laptop, in one process: what `stepops demo` and
//! `stepops local migrate` run.
//!
//! [`LocalPipeline::start`] writes the project's own `template.yaml` and
//! `statemachine/migrate.asl.json` (embedded at compile time: the very files that deploy) into
//! the state directory, starts the local Step Functions engine on them (environment `dev`),
//! registers the `validate-input` and `notify` Lambda handlers in-process (the same
//! `stepops-pipeline` functions the Lambda binaries wrap; notifications go to a local publisher
//! instead of SNS), and starts runner workers in-process that poll the engine over HTTP through
//! `aws-sdk-sfn`, exactly as the deployed runner polls Step Functions. As in AWS, a success is
//! notified by the state machine and every failure, timeout and abort by the template's
//! EventBridge rule, which the engine runs (the notify handler reads the failed step from the
//! execution's history over the engine's API).
//!
//! [`relationalize`] runs the relationalize state machine the same way (`stepops local
//! relationalize`), with the relationalize Lambda's library call over a folder standing in for
//! the stack's bucket.
//!
//! ```no_run
//! # async fn demo(input: serde_json::Value) -> Result<(), stepops_embedded::EmbeddedError> {
//! use stepops_embedded::{LocalPipeline, PipelineOptions};
//! let pipeline = LocalPipeline::start(PipelineOptions::new(".stepops/run")).await?;
//! let arn = pipeline.start_migration(&input)?;
//! let summary = pipeline.wait(&arn).await?;
//! println!("{}", summary.status);
//! pipeline.shutdown().await;
//! # Ok(()) }
//! ```

mod counting;
mod handlers;
pub mod jobs;
pub mod relationalize;
mod workers;

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::Value;
use stepops_error::{ErrorName, Named};
use stepops_local::{EngineConfig, LocalEngine, LocalError, TemplateOptions};
use stepops_pipeline::{Message, NotifyRequest, RunStatus};
use stepops_runner::{RunReport, RunnerOptions};
use workers::Worker;

pub use counting::{Counting, Progress, ProgressSnapshot};
pub use handlers::LocalPublisher;
pub use jobs::{JobOptions, LocalJobs};

/// The project's `template.yaml`, embedded at compile time.
pub const TEMPLATE_YAML: &str = include_str!("../../../template.yaml");
/// The project's `statemachine/migrate.asl.json`, embedded at compile time.
pub const MIGRATE_ASL_JSON: &str = include_str!("../../../statemachine/migrate.asl.json");
include!(concat!(env!("OUT_DIR"), "/statemachines.rs"));
/// The template's logical id of the migration state machine.
pub const STATE_MACHINE: &str = "MigrateStateMachine";
/// The template's logical id of the activity the runners poll.
pub const ACTIVITY: &str = "MigrateActivity";
/// The stack environment of local runs.
pub const ENVIRONMENT: &str = "dev";
/// Targets a local run may name by default: any SQLite file.
pub const SQLITE_TARGETS: &str = "url:sqlite:*";
/// Targets `stepops local migrate` allows: SQLite files, PostgreSQL URLs without a password,
/// Synapse stacks (their secret inline only on 127.0.0.1: `check_inline_url`).
pub const ALL_LOCAL_TARGETS: &str =
    "url:sqlite:*,url:postgres://*,url:postgresql://*,url:synapse+http://*,url:synapse+https://*";

/// A failure of the embedded pipeline itself (not of the migration: that is a
/// [`RunSummary`] with status `FAILED`).
#[derive(Debug, thiserror::Error)]
pub enum EmbeddedError {
    /// The local engine refused something (template, start, …).
    #[error("local engine: {0}")]
    Engine(#[from] LocalError),
    /// A file of the state directory could not be written.
    #[error("cannot write {path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The options are wrong.
    #[error("{0}")]
    Invalid(String),
}

impl Named for EmbeddedError {
    fn error_name(&self) -> ErrorName {
        match self {
            EmbeddedError::Engine(e) => e.error_name(),
            EmbeddedError::Io { .. } => ErrorName::Transient,
            EmbeddedError::Invalid(_) => ErrorName::InvalidInput,
        }
    }
}

/// How the embedded pipeline runs.
#[derive(Debug, Clone)]
pub struct PipelineOptions {
    /// The engine's state (`engine.sqlite3`, the S3 stand-in `s3/`) and the template files.
    pub state_dir: PathBuf,
    /// Runner workers (each a `Runner` with its own poller and HTTP client).
    pub workers: usize,
    /// Tasks each worker runs at once.
    pub concurrency_per_worker: usize,
    /// The engine's time scale (1.0: real time; smaller makes Retry intervals, timeouts and
    /// `HeartbeatSeconds` shorter; keep `heartbeat_interval` well under 60 s × time_scale).
    pub time_scale: f64,
    /// The workers' heartbeat interval.
    pub heartbeat_interval: Duration,
    /// The validate-input Lambda's allow-list (`STEPOPS_ALLOWED_TARGETS`), default any SQLite file.
    pub allowed_targets: String,
    /// Serve the Step Functions API on this port (0: a free one).
    pub port: u16,
}

impl PipelineOptions {
    /// Two workers of two tasks, real time, heartbeats every 20 s, SQLite targets, a free port.
    pub fn new(state_dir: impl Into<PathBuf>) -> Self {
        PipelineOptions {
            state_dir: state_dir.into(),
            workers: 2,
            concurrency_per_worker: 2,
            time_scale: 1.0,
            heartbeat_interval: Duration::from_secs(20),
            allowed_targets: SQLITE_TARGETS.into(),
            port: 0,
        }
    }
}

/// The local engine with the pipeline's Lambdas and runner workers, running.
pub struct LocalPipeline {
    served: Served,
    s3_root: PathBuf,
    options: PipelineOptions,
    workers: Vec<Worker>,
    next_worker: usize,
    progress: Arc<Progress>,
    hooks: PipelineHooks,
    started: Mutex<Vec<(String, Instant)>>,
}

/// What an execution did, as the pipeline saw it.
#[derive(Debug, Clone)]
pub struct RunSummary {
    /// The execution.
    pub execution_arn: String,
    /// `SUCCEEDED`, `FAILED`, `TIMED_OUT` or `ABORTED`.
    pub status: String,
    /// Tables planned (first round).
    pub tables: u64,
    /// Chunks planned over all rounds.
    pub chunks: u64,
    /// Chunks copied (from the run's summary: each chunk once; without one, successful `copy`
    /// steps as the workers counted them).
    pub chunks_copied: u64,
    /// Rows written to the destination by the copies (exact, from the copy results).
    pub rows_copied: u64,
    /// Rows deleted from the destination by the copies (exact, from the copy results).
    pub rows_deleted: u64,
    /// Plan/verify rounds.
    pub rounds: u64,
    /// Wall-clock time from start to end.
    pub duration: Duration,
    /// The execution's error (FAILED).
    pub error: Option<String>,
    /// The execution's cause (FAILED).
    pub cause: Option<String>,
    /// The state whose failure (timeout, abort) ended the execution, as the failure
    /// notification names it (from the history); `None` for a success. A redrive resumes there.
    pub failed_step: Option<String>,
    /// The failure notification says this run left the destination read-only.
    pub destination_read_only: Option<bool>,
    /// The notification messages of the execution so far, oldest first (local publisher): a
    /// redriven execution has its earlier failures' too.
    pub notifications: Vec<Message>,
    /// The execution's output (SUCCEEDED).
    pub output: Option<Value>,
}

impl RunSummary {
    /// Whether the execution succeeded.
    pub fn succeeded(&self) -> bool {
        self.status == "SUCCEEDED"
    }
}

impl LocalPipeline {
    /// Writes the embedded template files under `options.state_dir`, starts the engine on them
    /// with the pipeline's Lambdas, and starts `options.workers` runner workers.
    pub async fn start(options: PipelineOptions) -> Result<LocalPipeline, EmbeddedError> {
        if options.workers == 0 || options.concurrency_per_worker == 0 {
            return Err(EmbeddedError::Invalid(
                "workers and concurrency per worker must be at least 1".into(),
            ));
        }
        let s3_root = options.state_dir.join("s3");
        let config = embedded_engine_config(&options.state_dir, options.port, options.time_scale)?;
        let (config, hooks) = with_pipeline_lambdas(config, ENVIRONMENT, &options.allowed_targets)?;
        let served = Served::start(config, ACTIVITY).await?;
        hooks.engine_started(&served.engine);
        let mut pipeline = LocalPipeline {
            served,
            s3_root,
            options,
            workers: Vec::new(),
            next_worker: 0,
            progress: Arc::new(Progress::default()),
            hooks,
            started: Mutex::new(Vec::new()),
        };
        for _ in 0..pipeline.options.workers {
            pipeline.add_worker();
        }
        Ok(pipeline)
    }

    /// The engine's Step Functions endpoint (`http://127.0.0.1:PORT`).
    pub fn endpoint(&self) -> &str {
        &self.served.endpoint
    }

    /// The engine (history, describe, redrive, …).
    pub fn engine(&self) -> &LocalEngine {
        &self.served.engine
    }

    /// The migration state machine's ARN.
    pub fn state_machine_arn(&self) -> Result<String, EmbeddedError> {
        Ok(self.served.engine.state_machine_arn(STATE_MACHINE)?)
    }

    /// The activity the workers poll.
    pub fn activity_arn(&self) -> &str {
        &self.served.activity_arn
    }

    /// Live counters of the steps the workers ran (plan, copy, verify).
    pub fn progress(&self) -> ProgressSnapshot {
        self.progress.snapshot()
    }

    /// Starts one more runner worker; returns its name.
    pub fn add_worker(&mut self) -> String {
        self.next_worker += 1;
        let name = format!("embedded-worker-{}", self.next_worker);
        let mut options = RunnerOptions::new(vec![self.served.activity_arn.clone()]);
        options.concurrency = self.options.concurrency_per_worker;
        options.heartbeat_interval = self.options.heartbeat_interval;
        options.drain_timeout = Duration::from_secs(5);
        options.worker_name = name.clone();
        options.environment = stepops_error::Environment::parse(ENVIRONMENT);
        let runner = counting::counted_runner(
            &self.served.endpoint,
            options,
            &self.s3_root,
            self.progress.clone(),
        );
        self.workers.push(Worker::spawn(name.clone(), runner));
        name
    }

    /// Kills worker `index` at once, as a crashed process would die: its running steps are
    /// dropped mid-way and nothing is answered (the engine notices by the missing heartbeats).
    /// Returns the killed worker's name.
    pub fn kill_worker(&mut self, index: usize) -> Option<String> {
        if index >= self.workers.len() {
            return None;
        }
        let w = self.workers.remove(index);
        let name = w.name.clone();
        w.kill();
        Some(name)
    }

    /// Workers running.
    pub fn workers(&self) -> usize {
        self.workers.len()
    }

    /// Starts the `migrate` state machine with `input` (see docs/execution-input.md); returns the
    /// execution ARN.
    pub fn start_migration(&self, input: &Value) -> Result<String, EmbeddedError> {
        let arn = self
            .served
            .engine
            .start_execution(STATE_MACHINE, input, None)?;
        self.started
            .lock()
            .expect("start times")
            .push((arn.clone(), Instant::now()));
        Ok(arn)
    }

    /// Every chunk a `copy` step finished, `(table, min, max)`, in order (a chunk copied twice
    /// is listed twice).
    pub fn copied_chunks(&self) -> Vec<(String, i64, i64)> {
        self.progress.copied_chunks()
    }

    /// Waits for the execution to end (and its status change to reach the notify function) and
    /// sums it up.
    pub async fn wait(&self, execution_arn: &str) -> Result<RunSummary, EmbeddedError> {
        let outcome = self.served.engine.wait(execution_arn).await?;
        self.served.engine.deliveries_settled().await;
        let started = self
            .started
            .lock()
            .expect("start times")
            .iter()
            .find(|(a, _)| a == execution_arn)
            .map(|(_, t)| *t);
        let duration = started.map(|t| t.elapsed()).unwrap_or_default();
        let p = self.progress.snapshot();
        let mine: Vec<(NotifyRequest, Message)> = self
            .hooks
            .notifications
            .lock()
            .expect("notifications")
            .iter()
            .filter(|(r, _)| r.execution_arn == execution_arn)
            .cloned()
            .collect();
        let ended = (outcome.status != "SUCCEEDED")
            .then(|| {
                mine.iter()
                    .rev()
                    .find(|(r, _)| r.status != RunStatus::Succeeded)
            })
            .flatten();
        let failed_step = ended.and_then(|(r, _)| r.failed_step.clone());
        let destination_read_only = ended.and_then(|(r, _)| r.destination_read_only);
        let summary = mine.iter().rev().find_map(|(r, _)| r.summary.clone());
        Ok(RunSummary {
            execution_arn: execution_arn.to_owned(),
            status: outcome.status,
            tables: summary.as_ref().and_then(|s| s.tables).unwrap_or(p.tables),
            chunks: summary
                .as_ref()
                .and_then(|s| s.chunks)
                .unwrap_or(p.chunks_planned),
            // Exact figures from the state machine's summary (the copy Map's results, each
            // chunk counted once); the workers' live counters when there is none (a failure).
            chunks_copied: summary
                .as_ref()
                .and_then(|s| s.chunks_copied)
                .unwrap_or(p.chunks_copied),
            rows_copied: summary
                .as_ref()
                .and_then(|s| s.rows_copied)
                .unwrap_or(p.rows_inserted),
            rows_deleted: summary
                .as_ref()
                .and_then(|s| s.rows_deleted)
                .unwrap_or(p.rows_deleted),
            rounds: summary.as_ref().and_then(|s| s.rounds).unwrap_or(p.round),
            duration,
            error: outcome.error,
            cause: outcome.cause,
            failed_step,
            destination_read_only,
            notifications: mine.into_iter().map(|(_, m)| m).collect(),
            output: outcome.output,
        })
    }

    /// Resets the progress counters (before a second run on the same pipeline).
    pub fn reset_progress(&self) {
        self.progress.reset();
    }

    /// Stops the workers (they drain: running steps get a few seconds to finish) and the
    /// engine; returns the workers' reports.
    pub async fn shutdown(self) -> Vec<RunReport> {
        let reports = workers::stop_all(self.workers).await;
        self.served.engine.shutdown().await;
        reports
    }
}

/// Every notification the local `notify` Lambda published, with its request (newest last).
pub type Notifications = Arc<Mutex<Vec<(NotifyRequest, Message)>>>;

/// What [`with_pipeline_lambdas`] hands back: the notifications, and the hook that tells the
/// notify handler where the engine serves (it reads execution histories there).
#[derive(Clone)]
pub struct PipelineHooks {
    /// Every notification sent, with its request.
    pub notifications: Notifications,
    endpoint: handlers::Endpoint,
}

impl PipelineHooks {
    /// Call once the engine has started: the notify handler reads histories at its endpoint
    /// (an engine without one leaves failure notifications without their failed step).
    pub fn engine_started(&self, engine: &LocalEngine) {
        if let Some(e) = engine.endpoint() {
            let _ = self.endpoint.set(e);
        }
    }
}

/// Registers the pipeline's Lambdas on `config`, as every local run of the project's template
/// needs them (`LocalPipeline`, `stepops local serve --pipeline`): `ValidateInputFunction`
/// (the `validate-input` logic for a stack of `environment` whose allowed targets are
/// `allowed_targets`, the `STEPOPS_ALLOWED_TARGETS` syntax) and `NotifyFunction` (the `notify`
/// logic with a [`LocalPublisher`]: each message is logged at `info`, not sent to SNS, and kept
/// in [`PipelineHooks::notifications`]). The notify function takes the state machine's
/// success requests and the status-change events the template's `MigrationEnded` rule sends;
/// call [`PipelineHooks::engine_started`] after starting the engine so that it can read the
/// failed execution's history.
pub fn with_pipeline_lambdas(
    config: EngineConfig,
    environment: &str,
    allowed_targets: &str,
) -> Result<(EngineConfig, PipelineHooks), EmbeddedError> {
    let stack = stepops_pipeline::stack_environment(environment, allowed_targets)
        .map_err(|e| EmbeddedError::Invalid(e.to_string()))?;
    let hooks = PipelineHooks {
        notifications: Arc::new(Mutex::new(Vec::new())),
        endpoint: Arc::default(),
    };
    let config = config
        .with_lambda(
            "ValidateInputFunction",
            handlers::validate_input_handler(stack),
        )
        .with_lambda(
            "NotifyFunction",
            handlers::notify(
                hooks.notifications.clone(),
                environment.to_owned(),
                hooks.endpoint.clone(),
            ),
        );
    Ok((config, hooks))
}

/// Registers the admin function (`AdminFunction`, the admin state machine's task) on `config`
/// for a stack of `environment` (`dev` or `prod`) that talks to the Synapse at
/// `synapse_endpoint`, with the local token source: `STEPOPS_ADMIN_TOKEN_DEV` /
/// `STEPOPS_ADMIN_TOKEN_PROD`, else the file named by `STEPOPS_ADMIN_TOKEN_FILE` (the token is
/// read at each task, never logged). Give the template the same `SynapseEndpoint` parameter.
pub fn with_admin_lambda(
    config: EngineConfig,
    environment: &str,
    synapse_endpoint: &str,
) -> Result<EngineConfig, EmbeddedError> {
    use stepops_admin::{AdminSettings, LocalTokenSource, SynapseClient, settings};
    let invalid = |e: stepops_admin::AdminError| EmbeddedError::Invalid(e.to_string());
    let settings = AdminSettings::from_lookup(|k| match k {
        settings::ENV_ENVIRONMENT => Some(environment.to_owned()),
        settings::ENV_ENDPOINT => Some(synapse_endpoint.to_owned()),
        other => std::env::var(other).ok(),
    })
    .map_err(invalid)?;
    let env = settings.environment;
    let client = Arc::new(
        SynapseClient::new(settings.client, LocalTokenSource::for_environment(env))
            .map_err(invalid)?,
    );
    Ok(config.with_lambda(
        "AdminFunction",
        stepops_local::handler(move |event: Value| {
            let client = client.clone();
            async move {
                stepops_admin::invoke(&event, env, &client)
                    .await
                    .map_err(|e| stepops_local::LambdaError::from_named(&e))
            }
        }),
    ))
}

/// Writes the embedded `template.yaml` and every `statemachine/*.asl.json` into `dir`; returns
/// the template's path.
pub fn write_template(dir: &Path) -> Result<PathBuf, EmbeddedError> {
    let template = dir.join("template.yaml");
    let mut files = vec![(template.clone(), TEMPLATE_YAML)];
    for (name, text) in STATE_MACHINE_FILES {
        files.push((dir.join("statemachine").join(name), *text));
    }
    for (path, text) in &files {
        let io = |source| EmbeddedError::Io {
            path: path.clone(),
            source,
        };
        std::fs::create_dir_all(path.parent().expect("a parent")).map_err(io)?;
        std::fs::write(path, text).map_err(io)?;
    }
    Ok(template)
}

/// The local engine's configuration for the embedded template (environment `dev`): its
/// state, the template and the S3 stand-in (`s3/`) under `state_dir`.
fn embedded_engine_config(
    state_dir: &Path,
    port: u16,
    time_scale: f64,
) -> Result<EngineConfig, EmbeddedError> {
    let template = write_template(&state_dir.join("template"))?;
    Ok(EngineConfig {
        port: Some(port),
        template: Some(template),
        template_options: TemplateOptions {
            parameter_overrides: [("Environment".to_string(), ENVIRONMENT.to_string())].into(),
            ..TemplateOptions::default()
        },
        time_scale,
        s3_root: Some(state_dir.join("s3")),
        ..EngineConfig::new(state_dir.join("engine"))
    })
}

/// A started local engine, the Step Functions endpoint it serves and the activity its
/// in-process workers poll.
struct Served {
    engine: LocalEngine,
    endpoint: String,
    activity_arn: String,
}

impl Served {
    /// Starts the engine of `config`; its workers poll `activity`.
    async fn start(config: EngineConfig, activity: &str) -> Result<Served, EmbeddedError> {
        let engine = LocalEngine::start(config).await?;
        let endpoint = engine
            .endpoint()
            .ok_or_else(|| EmbeddedError::Invalid("the local engine serves no endpoint".into()))?;
        let activity_arn = engine.activity_arn(activity);
        Ok(Served {
            engine,
            endpoint,
            activity_arn,
        })
    }
}
