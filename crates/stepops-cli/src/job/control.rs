//! `stepops job logs` and `stepops job cancel`: an execution's step output, read from the job
//! root of the runner that ran it, or from its step streams in CloudWatch Logs (printed as it
//! grows with `--follow`), and stopping an execution. [`StepLogs`] is also how `stepops local job run` streams its steps.

use std::collections::BTreeMap;
use std::io::{Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use stepops_sfn::WaitOptions;

/// Where a runner keeps its job steps' logs by default, and where `stepops local job run` does.
const JOB_ROOTS: [&str; 2] = [".stepops/local-jobs/jobs", "/var/lib/stepops/jobs"];

/// Arguments of `stepops job logs`.
#[derive(clap::Args, Debug)]
pub struct LogsArgs {
    /// The execution's ARN (as `stepops job run` printed it).
    execution: String,
    /// Print the output as it grows until the execution ends, then exit with its status
    /// (needs the execution's Step Functions: AWS, or --endpoint).
    #[arg(long)]
    follow: bool,
    /// The runner's job root (its `job_root`). Default: ./.stepops/local-jobs/jobs (what
    /// `stepops local job run` uses) when it holds this execution, else /var/lib/stepops/jobs
    /// (a runner's default).
    #[arg(long, value_name = "DIR")]
    job_root: Option<PathBuf>,
    /// Read the step streams of this CloudWatch Logs group instead of a job root (the
    /// runners' `job_log_group`). Default when no job root here holds the execution:
    /// /stepops/ENV[-NAMESPACE]/jobs, from the execution's state machine name.
    #[arg(long, value_name = "GROUP")]
    log_group: Option<String>,
    /// An endpoint instead of AWS (a local engine): Step Functions for --follow, and its
    /// CloudWatch Logs stand-in.
    #[arg(long, value_name = "URL")]
    endpoint: Option<String>,
    /// AWS region (else the default chain).
    #[arg(long)]
    region: Option<String>,
}

/// Arguments of `stepops job cancel`.
#[derive(clap::Args, Debug)]
pub struct CancelArgs {
    /// The execution's ARN.
    execution: String,
    /// Do not ask for the execution's name again when its state machine is prod's.
    #[arg(long)]
    yes: bool,
    /// A Step Functions endpoint instead of AWS (a local engine).
    #[arg(long, value_name = "URL")]
    endpoint: Option<String>,
    /// AWS region (else the default chain).
    #[arg(long)]
    region: Option<String>,
}

/// The step logs of one execution (`DIR/N-STEP.log`), printed from where the last call left
/// off; each step is announced on stderr when its log first appears.
pub struct StepLogs {
    dir: PathBuf,
    offsets: BTreeMap<(usize, String), u64>,
    started: Instant,
}

impl StepLogs {
    /// The logs of `execution_arn` under a runner's `job_root`.
    pub fn of(job_root: &Path, execution_arn: &str) -> StepLogs {
        StepLogs {
            dir: job_root
                .join("logs")
                .join(stepops_runner::job::execution_key(execution_arn)),
            offsets: BTreeMap::new(),
            started: Instant::now(),
        }
    }

    /// Whether any step of the execution has a log here.
    pub fn exist(&self) -> bool {
        self.dir.is_dir()
    }

    /// Prints to stdout what the logs gained since the last call, in step order. Copied through
    /// a small buffer: memory stays flat whatever the output's size.
    pub fn print_new(&mut self) -> anyhow::Result<()> {
        let Ok(entries) = std::fs::read_dir(&self.dir) else {
            return Ok(());
        };
        let mut steps: Vec<(usize, String)> = entries
            .filter_map(|e| e.ok()?.file_name().into_string().ok())
            .filter_map(|name| {
                let stem = name.strip_suffix(".log")?;
                let (index, step) = stem.split_once('-')?;
                Some((index.parse().ok()?, step.to_owned()))
            })
            .collect();
        steps.sort();
        for (index, step) in steps {
            let path = self.dir.join(format!("{index}-{step}.log"));
            let offset = match self.offsets.get(&(index, step.clone())) {
                Some(&o) => o,
                None => {
                    eprintln!(
                        "== step {} {step} (at {:.1} s)",
                        index + 1,
                        self.started.elapsed().as_secs_f64()
                    );
                    0
                }
            };
            let mut file = std::fs::File::open(&path)
                .with_context(|| format!("cannot read {}", path.display()))?;
            file.seek(SeekFrom::Start(offset))?;
            let mut out = std::io::stdout().lock();
            let copied = std::io::copy(&mut file, &mut out)?;
            out.flush()?;
            self.offsets.insert((index, step), offset + copied);
        }
        Ok(())
    }
}

/// The step streams of one execution in a CloudWatch Logs group
/// (`MACHINE/EXECUTION/INDEX-STEP`), printed from where the last call left off.
struct StepStreams {
    client: aws_sdk_cloudwatchlogs::Client,
    group: String,
    prefix: String,
    /// Each stream's forward token, by (step index, stream name): in step order.
    tokens: BTreeMap<(usize, String), Option<String>>,
    started: Instant,
}

impl StepStreams {
    /// Prints what the streams gained since the last call; returns how many lines.
    async fn print_new(&mut self) -> anyhow::Result<usize> {
        let names = stepops_sfn::log_stream_names(&self.client, &self.group, &self.prefix)
            .await
            .with_context(|| {
                format!(
                    "cannot list the streams of {} in CloudWatch Logs",
                    self.group
                )
            })?;
        for name in names {
            let step = name.rsplit('/').next().unwrap_or(&name);
            let index = step
                .split('-')
                .next()
                .and_then(|i| i.parse().ok())
                .unwrap_or(usize::MAX);
            self.tokens.entry((index, name)).or_insert(None);
        }
        let mut printed = 0;
        let mut out = std::io::stdout().lock();
        for ((_, stream), token) in self.tokens.iter_mut() {
            if token.is_none() {
                let step = stream.rsplit('/').next().unwrap_or(stream);
                eprintln!(
                    "== step {step} (at {:.1} s)",
                    self.started.elapsed().as_secs_f64()
                );
            }
            let (messages, next) =
                stepops_sfn::read_log_stream(&self.client, &self.group, stream, token.take())
                    .await
                    .with_context(|| format!("cannot read {stream} in CloudWatch Logs"))?;
            *token = next;
            for m in &messages {
                writeln!(out, "{m}")?;
            }
            printed += messages.len();
        }
        out.flush()?;
        Ok(printed)
    }
}

/// The job log group of an execution's machine: `stepops-ENV[-NS]-job` → `/stepops/ENV[-NS]/jobs`.
fn job_log_group(execution_arn: &str) -> Option<String> {
    let machine = execution_arn.rsplit(':').nth(1)?;
    let stack = machine.strip_prefix("stepops-")?.strip_suffix("-job")?;
    (!stack.is_empty()).then(|| format!("/stepops/{stack}/jobs"))
}

/// `stepops job logs` from CloudWatch Logs.
async fn logs_from_cloudwatch(a: &LogsArgs, group: String) -> anyhow::Result<()> {
    let client = match &a.endpoint {
        Some(endpoint) => stepops_sfn::local_logs_client(endpoint),
        None => {
            let config =
                stepops_sfn::load_sdk_config(a.region.as_deref(), Duration::from_secs(30)).await;
            stepops_sfn::logs_client(&config, None)
        }
    };
    let mut streams = StepStreams {
        client,
        prefix: format!("{}/", stepops_runner::job::execution_key(&a.execution)),
        group,
        tokens: BTreeMap::new(),
        started: Instant::now(),
    };
    streams.print_new().await?;
    if streams.tokens.is_empty() && !a.follow {
        bail!(
            "no step stream of {} in the CloudWatch Logs group {} (streams {}…): the job has not \
             started a step yet, or its runner does not ship its output (job_log_group); give \
             the runner's job root with --job-root to read its files",
            a.execution,
            streams.group,
            streams.prefix
        );
    }
    if !a.follow {
        return Ok(());
    }
    let (sfn, _) = stepops_sfn::connect(a.endpoint.as_deref(), a.region.as_deref()).await;
    loop {
        let status = stepops_sfn::execution_status(&sfn, &a.execution).await?;
        streams.print_new().await?;
        if status != aws_sdk_sfn::types::ExecutionStatus::Running {
            // The runner sends its last batch within a few seconds of the step's end.
            tokio::time::sleep(Duration::from_secs(2)).await;
            streams.print_new().await?;
            eprintln!("== {}", status.as_str());
            if status != aws_sdk_sfn::types::ExecutionStatus::Succeeded {
                bail!("the job ended {}", status.as_str());
            }
            return Ok(());
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
}

/// Runs `stepops job logs`.
pub async fn logs(a: LogsArgs) -> anyhow::Result<()> {
    if let Some(group) = &a.log_group {
        return logs_from_cloudwatch(&a, group.clone()).await;
    }
    let mut logs = match &a.job_root {
        Some(root) => StepLogs::of(root, &a.execution),
        None => JOB_ROOTS
            .iter()
            .map(|root| StepLogs::of(Path::new(root), &a.execution))
            .find(StepLogs::exist)
            .unwrap_or_else(|| StepLogs::of(Path::new(JOB_ROOTS[1]), &a.execution)),
    };
    if !logs.exist()
        && a.job_root.is_none()
        && let Some(group) = job_log_group(&a.execution)
    {
        return logs_from_cloudwatch(&a, group).await;
    }
    if !logs.exist() && !a.follow {
        bail!(
            "no step log of {} in {}: the logs are kept by the runner that ran the steps (give its job root with --job-root, or the runners' CloudWatch Logs group with --log-group); in AWS every line is also in the group /stepops/ENV/runner (Logs Insights: filter execution = \"{}\")",
            a.execution,
            logs.dir.display(),
            stepops_runner::job::execution_key(&a.execution)
        );
    }
    logs.print_new()?;
    if !a.follow {
        return Ok(());
    }
    let (sfn, _) = stepops_sfn::connect(a.endpoint.as_deref(), a.region.as_deref()).await;
    let options = WaitOptions {
        max_delay: Duration::from_millis(500),
        ..WaitOptions::default()
    };
    let mut failed = None;
    let finished = stepops_sfn::wait_for_execution(&sfn, &a.execution, &options, |_| {
        if let Err(e) = logs.print_new() {
            failed.get_or_insert(e);
        }
    })
    .await?;
    if let Some(e) = failed {
        return Err(e);
    }
    logs.print_new()?;
    eprintln!(
        "== {}{}",
        finished.status.as_str(),
        finished
            .error
            .as_ref()
            .map(|e| format!(": {e}"))
            .unwrap_or_default()
    );
    if !finished.succeeded() {
        bail!(
            "the job ended {}: {} {}",
            finished.status.as_str(),
            finished.error.unwrap_or_default(),
            finished.cause.unwrap_or_default()
        );
    }
    Ok(())
}

/// Runs `stepops job cancel`.
pub async fn cancel(a: CancelArgs) -> anyhow::Result<()> {
    let name = a
        .execution
        .rsplit(':')
        .next()
        .unwrap_or_default()
        .to_owned();
    let machine = a.execution.rsplit(':').nth(1).unwrap_or_default();
    if machine.split('-').any(|part| part == "prod") && !a.yes {
        super::typed_again(&format!("cancel the PROD execution {name}"), &name)?;
    }
    let (sfn, _) = stepops_sfn::connect(a.endpoint.as_deref(), a.region.as_deref()).await;
    let status = stepops_sfn::execution_status(&sfn, &a.execution).await?;
    if status != aws_sdk_sfn::types::ExecutionStatus::Running {
        bail!(
            "{name} is not running (it ended {}): nothing was stopped",
            status.as_str()
        );
    }
    stepops_sfn::stop_execution(&sfn, &a.execution, "cancelled with stepops job cancel").await?;
    println!(
        "stopped {name}: the runner stops the job's processes (TERM, then KILL after its grace) when its next heartbeat is refused, within the runner's heartbeat interval"
    );
    Ok(())
}
