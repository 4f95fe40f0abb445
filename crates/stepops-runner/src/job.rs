//! The `job` step: one step of an ops job from the catalog (docs/jobs.md), run as a process.
//!
//! The runner trusts no task: it re-validates the request against its own catalog (refusing a
//! request validated against another catalog version: `Stepops.Conflict`) and builds the
//! argument vector itself; nothing from the task is run as is. Then, in a fresh working
//! directory, with a minimal environment (`PATH`, `HOME` and `TMPDIR` in that directory,
//! `LANG`, the AWS region, `STEPOPS_*` names of the run) plus the job's variables and its
//! secrets (read through the [`SecretSource`], masked in all output), it runs the process
//! ([`process`]). Exit 0 is the step's output (exit code, masked tail); another exit is
//! `Stepops.JobFailed`, the timeout `Stepops.JobTimedOut`.
//!
//! # Runner death and unknown outcomes
//!
//! Before the process starts, the step writes a *start record* to the object store, and when it
//! ends a *result record*, under `PREFIX/EXECUTION/redrive-N/step-I` (the execution's name, its
//! redrive count, the step's index). When a task arrives for a step that already has:
//! - a result record: the recorded result is returned (its answer had been lost), nothing runs;
//! - a start record only: an earlier attempt started and never finished (its runner died, or
//!   drained and handed it back). An idempotent step runs again; a non-idempotent one fails
//!   `Stepops.JobFailed` saying its outcome is unknown, and never runs twice.
//!
//! A redrive has a new redrive count, hence fresh records: redriving is the operator's decision
//! to run the step again (after checking what the interrupted attempt did).

pub mod group;
pub mod mask;
pub mod pipe;
pub mod process;
pub mod ship;

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use serde_json::{Value, json};
use stepops_error::ErrorName;
use stepops_jobs::{Catalog, JobRequest, PlannedStep, SecretRef, ValidatedJob};
use tracing::{info, warn};

use crate::secrets::SecretSource;
use crate::step::{StepError, StepHandler};
use crate::store::{ObjectStore, StoreError};
use mask::Masker;
use process::{Exit, ProcessSpec, run_process};
use ship::{LogSink, Shipper};

/// The characters of output kept in a failure's cause.
const CAUSE_TAIL_CHARS: usize = 8 * 1024;

/// Where and how job steps run.
#[derive(Debug, Clone)]
pub struct JobSettings {
    /// The catalog (the runner's own; the embedded one by default).
    pub catalog: Arc<Catalog>,
    /// Fresh working directories are made under it.
    pub work_root: PathBuf,
    /// Step logs: `LOG_DIR/EXECUTION/I-STEP.log`.
    pub log_dir: PathBuf,
    /// Between SIGTERM and SIGKILL.
    pub kill_grace: Duration,
    /// Named in start records.
    pub worker_name: String,
    /// Where each step's masked output is also shipped, one stream per execution and step
    /// (`MACHINE/EXECUTION/INDEX-STEP`): CloudWatch Logs (`job_log_group`), or nowhere.
    pub log_sink: Option<Arc<dyn LogSink>>,
}

impl JobSettings {
    /// Settings with the embedded catalog, directories under `root`, a 10 s grace.
    pub fn new(catalog: Catalog, root: impl Into<PathBuf>) -> JobSettings {
        let root = root.into();
        JobSettings {
            catalog: Arc::new(catalog),
            log_dir: root.join("logs"),
            work_root: root.join("work"),
            kill_grace: Duration::from_secs(10),
            worker_name: "stepops-runner".into(),
            log_sink: None,
        }
    }
}

/// Runs `job` steps; every other step goes to the wrapped handler.
pub struct WithJobs<H, S, O> {
    rest: H,
    settings: JobSettings,
    secrets: S,
    store: O,
}

impl<H, S, O> WithJobs<H, S, O> {
    /// `job` steps with `settings`, secrets from `secrets`, records in `store`; the rest to
    /// `rest`.
    pub fn new(rest: H, settings: JobSettings, secrets: S, store: O) -> Self {
        WithJobs {
            rest,
            settings,
            secrets,
            store,
        }
    }
}

impl<H: StepHandler, S: SecretSource, O: ObjectStore> StepHandler for WithJobs<H, S, O> {
    async fn run(&self, step: &str, args: Value) -> Result<Value, StepError> {
        if step == "job" {
            self.job(args).await
        } else {
            self.rest.run(step, args).await
        }
    }
}

/// The `job` step's arguments.
struct JobArgs {
    job: ValidatedJob,
    step: PlannedStep,
    execution: String,
    records: Option<(String, String)>,
}

fn str_arg<'a>(args: &'a Value, key: &str) -> Result<&'a str, StepError> {
    args.get(key)
        .and_then(Value::as_str)
        .ok_or_else(|| StepError::invalid_input(format!("step `job`: missing string `{key}`")))
}

/// The last path segments of an execution ARN (`MACHINE/NAME`), safe as a key or folder.
pub fn execution_key(execution: &str) -> String {
    let mut parts = execution.rsplit(':');
    let name = parts.next().unwrap_or("");
    let machine = parts.next().unwrap_or("");
    format!("{machine}/{name}")
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || "-_./".contains(c) {
                c
            } else {
                '_'
            }
        })
        .collect::<String>()
        .replace("..", "__")
        .trim_matches('/')
        .to_owned()
}

impl<H, S: SecretSource, O: ObjectStore> WithJobs<H, S, O> {
    fn parse(&self, args: &Value) -> Result<JobArgs, StepError> {
        let request = JobRequest::from_json(args.get("request").unwrap_or(&Value::Null))?;
        let environment = str_arg(args, "environment")?;
        if request.environment != environment {
            return Err(StepError::new(
                ErrorName::WrongEnvironment,
                format!(
                    "step `job`: the task is for `{environment}` but its request for `{}`",
                    request.environment
                ),
            ));
        }
        let version = str_arg(args, "catalogVersion")?;
        let job = self.settings.catalog.validate_at(&request, version)?;
        let index = args
            .get("stepIndex")
            .and_then(Value::as_u64)
            .ok_or_else(|| StepError::invalid_input("step `job`: missing integer `stepIndex`"))?;
        let step = job.steps.get(index as usize).cloned().ok_or_else(|| {
            StepError::invalid_input(format!(
                "step `job`: job `{}` has {} steps, there is no step {index}",
                job.job,
                job.steps.len()
            ))
        })?;
        let execution = execution_key(str_arg(args, "execution")?);
        let redrive = args
            .get("redriveCount")
            .and_then(Value::as_u64)
            .unwrap_or(0);
        let records = match args.get("records") {
            None | Some(Value::Null) => None,
            Some(r) => {
                let bucket = str_arg(r, "bucket")?.to_owned();
                let prefix = r.get("prefix").and_then(Value::as_str).unwrap_or("jobs");
                Some((
                    bucket,
                    format!(
                        "{}/{execution}/redrive-{redrive}/step-{}",
                        prefix.trim_matches('/'),
                        step.index
                    ),
                ))
            }
        };
        if records.is_none() && !step.idempotent {
            return Err(StepError::invalid_input(format!(
                "step `job`: step `{}` of `{}` is not idempotent and the task has no `records` \
                 (bucket) to record its start: refused, it could otherwise run twice",
                step.name, job.job
            )));
        }
        Ok(JobArgs {
            job,
            step,
            execution,
            records,
        })
    }

    async fn read_record(&self, bucket: &str, key: &str) -> Result<Option<Value>, StepError> {
        match self.store.get(bucket, key).await {
            Ok(body) => Ok(serde_json::from_slice(&body).ok()),
            Err(StoreError::Missing { .. }) => Ok(None),
            Err(e) => Err(e.into()),
        }
    }

    async fn job(&self, args: Value) -> Result<Value, StepError> {
        let arrived = std::time::Instant::now();
        let a = self.parse(&args)?;
        let label = format!("{}/{}", a.job.job, a.step.name);
        if let Some((bucket, base)) = &a.records {
            if let Some(result) = self.read_record(bucket, &format!("{base}.result")).await? {
                info!(job = %label, "step already finished (its answer was lost): returning its recorded result");
                return recorded(result);
            }
            if self
                .read_record(bucket, &format!("{base}.started"))
                .await?
                .is_some()
            {
                if !a.step.idempotent {
                    return Err(StepError::new(
                        ErrorName::JobFailed,
                        format!(
                            "outcome unknown: step `{}` of job `{}` was started by an earlier \
                             attempt that never finished (its runner died or was stopped), and \
                             it is not idempotent, so it is not run again automatically. Check \
                             what it did (its log: `stepops job logs`), then redrive the \
                             execution to run it again, or leave it failed",
                            a.step.name, a.job.job
                        ),
                    ));
                }
                warn!(job = %label, "an earlier attempt of this idempotent step never finished: running it again");
            }
        }
        let masker_values = self.secret_values(&a.step).await?;
        let env = self.environment(&a, &masker_values);
        let masker = Masker::new(masker_values.values().map(String::as_str));
        let fresh = self.settings.work_root.join(format!(
            "{}-{}-{}",
            a.execution.replace('/', "-"),
            a.step.index,
            rand::random::<u32>()
        ));
        std::fs::create_dir_all(&fresh).map_err(|e| {
            StepError::internal(format!(
                "cannot create the working directory {}: {e}",
                fresh.display()
            ))
        })?;
        let log_path = self
            .settings
            .log_dir
            .join(&a.execution)
            .join(format!("{}-{}.log", a.step.index, a.step.name));
        if let Some(parent) = log_path.parent() {
            std::fs::create_dir_all(parent).map_err(|e| {
                StepError::internal(format!(
                    "cannot create the log folder {}: {e}",
                    parent.display()
                ))
            })?;
        }
        if let Some((bucket, base)) = &a.records {
            let started = json!({
                "worker": self.settings.worker_name,
                "job": a.job.job,
                "step": a.step.name,
                "startedAt": unix_seconds(),
            });
            self.store
                .put(
                    bucket,
                    &format!("{base}.started"),
                    started.to_string().into_bytes(),
                )
                .await?;
        }
        let dir = a
            .step
            .working_dir
            .as_ref()
            .map(PathBuf::from)
            .unwrap_or_else(|| fresh.clone());
        let spec = ProcessSpec {
            argv: a.step.argv.clone(),
            env,
            dir,
            timeout: Duration::from_secs(a.step.timeout_seconds),
            grace: self.settings.kill_grace,
            log_path: log_path.clone(),
            masker,
            label: label.clone(),
            execution: a.execution.clone(),
            arrived,
            ship: self.settings.log_sink.as_ref().map(|sink| {
                let step = log_path.file_stem().unwrap_or_default().to_string_lossy();
                Shipper::start(sink.clone(), format!("{}/{step}", a.execution))
            }),
        };
        let outcome = run_process(spec).await;
        let _ = std::fs::remove_dir_all(&fresh);
        let result = match outcome {
            Err(e) => Err(StepError::new(
                ErrorName::JobFailed,
                format!("step `{}` of job `{}`: {}", a.step.name, a.job.job, e.0),
            )),
            Ok(o) => {
                let tail_text = cause_tail(&o.tail);
                let done = format!(
                    "step `{}` ({}/{}) of job `{}`",
                    a.step.name,
                    a.step.index + 1,
                    a.job.steps.len(),
                    a.job.job
                );
                match (o.timed_out, o.exit) {
                    (true, _) => Err(StepError::new(
                        ErrorName::JobTimedOut,
                        format!(
                            "{done} ran past its timeout of {} s: its process group was stopped \
                             (SIGTERM, then SIGKILL after {} s). Last lines:\n{tail_text}",
                            a.step.timeout_seconds,
                            self.settings.kill_grace.as_secs()
                        ),
                    )),
                    (false, Exit::Code(0)) => Ok(json!({
                        "job": a.job.job,
                        "step": a.step.name,
                        "index": a.step.index,
                        "exitCode": 0,
                        "durationMs": o.duration.as_millis() as u64,
                        "startLatencyUs": o.start_latency.as_micros() as u64,
                        "lines": o.lines,
                        "bytes": o.bytes,
                        "tail": o.tail,
                    })),
                    (false, Exit::Code(code)) => Err(StepError::new(
                        ErrorName::JobFailed,
                        format!("{done} exited with code {code}. Last lines:\n{tail_text}"),
                    )),
                    (false, Exit::Signal(sig)) => Err(StepError::new(
                        ErrorName::JobFailed,
                        format!("{done} was ended by signal {sig}. Last lines:\n{tail_text}"),
                    )),
                }
            }
        };
        if let Some((bucket, base)) = &a.records {
            let record = match &result {
                Ok(out) => json!({"output": out}),
                Err(e) => json!({"error": e.name.as_str(), "cause": e.cause}),
            };
            if let Err(e) = self
                .store
                .put(
                    bucket,
                    &format!("{base}.result"),
                    record.to_string().into_bytes(),
                )
                .await
            {
                warn!(job = %label, error = %e, "cannot write the step's result record");
            }
        }
        result
    }

    async fn secret_values(
        &self,
        step: &PlannedStep,
    ) -> Result<BTreeMap<String, String>, StepError> {
        let mut values = BTreeMap::new();
        for (var, reference) in &step.secrets {
            let secret = match reference {
                SecretRef::Secret(name) => self.secrets.secret(name).await?,
                SecretRef::Parameter(name) => self.secrets.parameter(name).await?,
            };
            values.insert(var.clone(), secret.expose().to_owned());
        }
        Ok(values)
    }

    fn environment(
        &self,
        a: &JobArgs,
        secrets: &BTreeMap<String, String>,
    ) -> BTreeMap<String, String> {
        let mut env = BTreeMap::new();
        let path = std::env::var("PATH").unwrap_or_else(|_| "/usr/local/bin:/usr/bin:/bin".into());
        env.insert("PATH".into(), path);
        env.insert("LANG".into(), "C.UTF-8".into());
        for var in ["AWS_REGION", "AWS_DEFAULT_REGION"] {
            if let Ok(v) = std::env::var(var) {
                env.insert(var.into(), v);
            }
        }
        env.insert("STEPOPS_JOB".into(), a.job.job.clone());
        env.insert("STEPOPS_STEP".into(), a.step.name.clone());
        env.insert("STEPOPS_ENVIRONMENT".into(), a.job.environment.to_string());
        env.insert("STEPOPS_EXECUTION".into(), a.execution.clone());
        env.extend(a.step.env.clone());
        env.extend(secrets.clone());
        env
    }
}

/// The tail for a cause, its end kept within [`CAUSE_TAIL_CHARS`].
fn cause_tail(tail: &[String]) -> String {
    let mut lines: Vec<&str> = Vec::new();
    let mut size = 0;
    for line in tail.iter().rev() {
        size += line.len() + 1;
        if size > CAUSE_TAIL_CHARS {
            break;
        }
        lines.push(line);
    }
    lines.reverse();
    lines.join("\n")
}

fn recorded(record: Value) -> Result<Value, StepError> {
    if let Some(out) = record.get("output") {
        return Ok(out.clone());
    }
    let name = record
        .get("error")
        .and_then(Value::as_str)
        .and_then(ErrorName::parse)
        .unwrap_or(ErrorName::JobFailed);
    let cause = record
        .get("cause")
        .and_then(Value::as_str)
        .unwrap_or("")
        .to_owned();
    Err(StepError::new(name, cause))
}

fn unix_seconds() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}
