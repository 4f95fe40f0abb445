//! Ops jobs on a laptop (`stepops local job run`, the job tests): the project's own
//! `template.yaml` and `statemachine/job.asl.json` on the local engine (its DynamoDB tables
//! emulated in memory), the `job-validate` Lambda's logic registered in-process, and runner
//! workers in-process polling the job activity over HTTP, as the deployed runners do. Step
//! logs go to `STATE_DIR/jobs/logs/`, start/result records to the engine's S3 folder.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use crate::workers::Worker;
use serde_json::Value;
use stepops_error::Environment;
use stepops_jobs::Catalog;
use stepops_local::{ExecutionOutcome, LocalEngine};
use stepops_runner::{JobSettings, RunReport, RunnerOptions};
use stepops_secrets::MemorySecretSource;

use crate::{EmbeddedError, Served, embedded_engine_config};

/// The template's logical id of the job state machine.
pub const JOB_STATE_MACHINE: &str = "JobStateMachine";
/// The template's logical id of the job activity.
pub const JOB_ACTIVITY: &str = "JobActivity";
/// The template's logical id of the validation function.
pub const JOB_VALIDATE_FUNCTION: &str = "JobValidateFunction";

/// How [`LocalJobs`] runs.
#[derive(Debug, Clone)]
pub struct JobOptions {
    /// The engine's state, the template copy, logs, working directories.
    pub state_dir: PathBuf,
    /// The catalog (validation and runners alike).
    pub catalog: Catalog,
    /// Secret values by name (`stepops/dev/…`), for the jobs' `secrets`.
    pub secrets: MemorySecretSource,
    /// Runner workers started in-process (0: runners are started separately, as processes).
    pub workers: usize,
    /// The workers' heartbeat interval.
    pub heartbeat_interval: Duration,
    /// Between SIGTERM and SIGKILL.
    pub kill_grace: Duration,
    /// Serve the Step Functions API on this port (0: a free one).
    pub port: u16,
    /// The engine's time scale (tests: 0.1 makes a 10 s `HeartbeatSeconds` 1 s).
    pub time_scale: f64,
    /// Ship each step's output to this CloudWatch Logs group of the engine's stand-in (as a
    /// runner with `job_log_group` does in AWS); not shipped when `None`.
    pub log_group: Option<String>,
}

impl JobOptions {
    /// One worker, heartbeats every 5 s, a 5 s grace, a free port.
    pub fn new(state_dir: impl Into<PathBuf>, catalog: Catalog) -> Self {
        JobOptions {
            state_dir: state_dir.into(),
            catalog,
            secrets: MemorySecretSource::new(),
            workers: 1,
            heartbeat_interval: Duration::from_secs(5),
            kill_grace: Duration::from_secs(5),
            port: 0,
            time_scale: 1.0,
            log_group: None,
        }
    }
}

/// The local engine with the job machine, its Lambda and runner workers, running.
pub struct LocalJobs {
    served: Served,
    options: JobOptions,
    workers: Vec<Worker>,
}

impl LocalJobs {
    /// Starts the engine on the embedded template (environment `dev`) and the workers.
    pub async fn start(options: JobOptions) -> Result<LocalJobs, EmbeddedError> {
        let catalog = Arc::new(options.catalog.clone());
        let config = embedded_engine_config(&options.state_dir, options.port, options.time_scale)?
            .with_lambda(
                JOB_VALIDATE_FUNCTION,
                stepops_local::handler(move |event: Value| {
                    let catalog = catalog.clone();
                    async move {
                        stepops_jobs::validate_event(&catalog, &event, Environment::Dev)
                            .map_err(|e| stepops_local::LambdaError::from_named(&e))
                    }
                }),
            );
        let mut jobs = LocalJobs {
            served: Served::start(config, JOB_ACTIVITY).await?,
            options,
            workers: Vec::new(),
        };
        for _ in 0..jobs.options.workers {
            jobs.add_worker();
        }
        Ok(jobs)
    }

    /// Starts one more in-process runner worker.
    pub fn add_worker(&mut self) {
        let name = format!("local-job-worker-{}", self.workers.len() + 1);
        let mut options = RunnerOptions::new(vec![self.served.activity_arn.clone()]);
        options.concurrency = 2;
        options.heartbeat_interval = self.options.heartbeat_interval;
        options.drain_timeout = Duration::from_secs(5);
        options.worker_name = name.clone();
        options.environment = Some(Environment::Dev);
        let log_sink = self.options.log_group.as_ref().map(|group| {
            let client = stepops_runner::local_logs_client(&self.served.endpoint);
            Arc::new(stepops_runner::CloudWatchSink::new(client, group))
                as Arc<dyn stepops_runner::LogSink>
        });
        let settings = JobSettings {
            kill_grace: self.options.kill_grace,
            worker_name: name.clone(),
            log_sink,
            ..JobSettings::new(self.options.catalog.clone(), self.job_root())
        };
        let runner = stepops_runner::local_runner_with_jobs(
            &self.served.endpoint,
            options,
            self.served.engine.s3_root(),
            settings,
            self.options.secrets.clone(),
        );
        self.workers.push(Worker::spawn(name, runner));
    }

    /// Kills worker `index` at once, as a crashed runner dies: nothing is answered (the
    /// engine notices by the missing heartbeats); its running step's process group is stopped
    /// with it (in-process, the step's future is dropped).
    pub fn kill_worker(&mut self, index: usize) {
        if index < self.workers.len() {
            self.workers.remove(index).kill();
        }
    }

    /// The job activity's ARN (for runners started separately).
    pub fn activity_arn(&self) -> &str {
        &self.served.activity_arn
    }

    /// Where step logs and working directories go (`logs/`, `work/`).
    pub fn job_root(&self) -> PathBuf {
        self.options.state_dir.join("jobs")
    }

    /// The log file of step `index` (`name`) of `execution_arn`.
    pub fn log_path(&self, execution_arn: &str, index: usize, name: &str) -> PathBuf {
        self.job_root()
            .join("logs")
            .join(stepops_runner::job::execution_key(execution_arn))
            .join(format!("{index}-{name}.log"))
    }

    /// The engine's Step Functions endpoint.
    pub fn endpoint(&self) -> &str {
        &self.served.endpoint
    }

    /// The engine (describe, stop, redrive, history).
    pub fn engine(&self) -> &LocalEngine {
        &self.served.engine
    }

    /// Starts the job machine with `request` (`{"job", "environment", "params"}`).
    pub fn start_job(&self, request: &Value) -> Result<String, EmbeddedError> {
        Ok(self
            .served
            .engine
            .start_execution(JOB_STATE_MACHINE, request, None)?)
    }

    /// Waits for the execution to end.
    pub async fn wait(&self, execution_arn: &str) -> Result<ExecutionOutcome, EmbeddedError> {
        Ok(self.served.engine.wait(execution_arn).await?)
    }

    /// Stops the workers (running steps get a few seconds) and the engine.
    pub async fn shutdown(self) -> Vec<RunReport> {
        let reports = crate::workers::stop_all(self.workers).await;
        self.served.engine.shutdown().await;
        reports
    }
}
