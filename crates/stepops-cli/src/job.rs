//! `stepops job list|show|check|run` (AWS or `--endpoint`) and the shared pieces of
//! `stepops local job run` (`local_job.rs`): reading the catalog, parsing `--param`, validating
//! before anything starts. docs/jobs.md.

use std::io::{BufRead, Write};
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context, bail};
use serde_json::{Value, json};
use stepops_jobs::{Catalog, JobRequest, Parameter, ValidatedJob};
use stepops_sfn::WaitOptions;

pub mod control;

const LONG_ABOUT: &str = "\
The ops job catalog: one YAML file per job under jobs/ (schema: jobs/schema.json; docs/jobs.md).

  stepops job list                        the jobs, their environments and steps
  stepops job show deploy                 one job: parameters, steps, secrets (names only)
  stepops job check                       every jobs/*.yaml against the schema's rules
  stepops job run deploy --env dev --param version=v1.4.0 --follow
  stepops job run backup --env prod --param bucket=my-bucket --dry-run
  stepops job logs ARN --follow             an execution's output (the runner's job root)
  stepops job cancel ARN                    stop it; the runner kills the job's processes

`run` validates the request with the same code as the stack's job-validate Lambda before
anything starts (--dry-run stops there and prints the steps' argument vectors); in prod it asks
for the job's name again (--yes skips the question, for scripts); --follow waits for the end,
printing the current step and the elapsed time, and exits with the job's status. Try a job on
your machine first with `stepops local job run`.

The state machine: --state-machine-arn, else the JobStateMachineArn output of the stack
--stack-name (default stepops-ENV), else on --endpoint the machine named like stepops-ENV-job.";

/// Arguments of `stepops job`.
#[derive(clap::Args, Debug)]
#[command(long_about = LONG_ABOUT)]
pub struct JobArgs {
    #[command(subcommand)]
    command: JobCommand,
    /// The catalog folder (default: ./jobs when it exists, else the catalog built into stepops).
    #[arg(long, global = true, value_name = "DIR")]
    jobs_dir: Option<PathBuf>,
}

#[derive(clap::Subcommand, Debug)]
enum JobCommand {
    /// List the jobs.
    List,
    /// Show one job.
    Show {
        /// The job's name.
        name: String,
    },
    /// Check every jobs/*.yaml (all problems, each with its file); exit 2 when one is bad.
    Check,
    /// Validate a request and start the job's execution.
    Run(RunArgs),
    /// Print an execution's step output (--follow: as it grows, until the end).
    Logs(control::LogsArgs),
    /// Stop an execution; the runner then kills the job's processes.
    Cancel(control::CancelArgs),
}

/// The request part shared by `job run` and `local job run`.
#[derive(clap::Args, Debug)]
pub struct RequestArgs {
    /// The job's name.
    pub name: String,
    /// The environment to run it in.
    #[arg(long, value_parser = ["dev", "prod"])]
    pub env: String,
    /// A parameter, KEY=VALUE (repeatable). Values are passed as one argument each, never
    /// through a shell.
    #[arg(long = "param", value_name = "KEY=VALUE")]
    pub params: Vec<String>,
    /// Validate and print the steps' argument vectors; start nothing.
    #[arg(long)]
    pub dry_run: bool,
}

/// Arguments of `stepops job run`.
#[derive(clap::Args, Debug)]
pub struct RunArgs {
    #[command(flatten)]
    request: RequestArgs,
    /// Wait for the end, showing the current step and elapsed time; exit with the job's status.
    #[arg(long)]
    follow: bool,
    /// Do not ask for the job's name again in prod.
    #[arg(long)]
    yes: bool,
    /// A Step Functions endpoint instead of AWS (a local engine).
    #[arg(long, value_name = "URL")]
    endpoint: Option<String>,
    /// The job state machine's ARN.
    #[arg(long, env = "STEPOPS_JOB_STATE_MACHINE_ARN", value_name = "ARN")]
    state_machine_arn: Option<String>,
    /// The stack whose JobStateMachineArn output names the machine (default stepops-ENV).
    #[arg(long, value_name = "NAME", conflicts_with_all = ["state_machine_arn", "endpoint"])]
    stack_name: Option<String>,
    /// AWS region (else the default chain).
    #[arg(long)]
    region: Option<String>,
}

/// The catalog: `dir`, else `./jobs` when it exists, else the built-in one.
pub fn load_catalog(dir: Option<&Path>) -> anyhow::Result<Catalog> {
    match dir {
        Some(d) => Ok(Catalog::load_dir(d)?),
        None if Path::new("jobs").is_dir() => Ok(Catalog::load_dir(Path::new("jobs"))?),
        None => Ok(stepops_jobs::embedded()?),
    }
}

/// The request of `args`, validated against `catalog`.
pub fn validate(
    catalog: &Catalog,
    args: &RequestArgs,
) -> anyhow::Result<(JobRequest, ValidatedJob)> {
    let mut params = serde_json::Map::new();
    for p in &args.params {
        let (k, v) = p
            .split_once('=')
            .with_context(|| format!("--param {p:?}: expected KEY=VALUE"))?;
        params.insert(k.to_owned(), Value::String(v.to_owned()));
    }
    let request = JobRequest::from_json(&json!({
        "job": args.name, "environment": args.env, "params": params,
    }))?;
    let job = catalog
        .validate(&request)
        .context("the request is refused, nothing was started")?;
    Ok((request, job))
}

/// Prints what would run.
pub fn print_plan(job: &ValidatedJob) {
    println!(
        "job {} in {} (catalog {}), concurrency group {}",
        job.job, job.environment, job.catalog_version, job.concurrency_group
    );
    for s in &job.steps {
        println!(
            "  step {}/{} {}: {} (timeout {} s{})",
            s.index + 1,
            job.steps.len(),
            s.name,
            serde_json::to_string(&s.argv).unwrap_or_default(),
            s.timeout_seconds,
            if s.idempotent { "" } else { ", not idempotent" }
        );
    }
}

/// Runs `stepops job …`.
pub async fn run(args: JobArgs) -> anyhow::Result<()> {
    let catalog = || load_catalog(args.jobs_dir.as_deref());
    match args.command {
        JobCommand::Check => check(args.jobs_dir.as_deref().unwrap_or(Path::new("jobs"))),
        JobCommand::Logs(a) => control::logs(a).await,
        JobCommand::Cancel(a) => control::cancel(a).await,
        JobCommand::Run(a) => run_job(&catalog()?, a).await,
        JobCommand::List => {
            let catalog = catalog()?;
            for j in catalog.jobs() {
                let steps = if j.steps.is_empty() { 1 } else { j.steps.len() };
                let envs: Vec<_> = j.environments.iter().map(|e| e.as_str()).collect();
                println!(
                    "{:<20} {:<9} {} step(s)  {}",
                    j.name,
                    envs.join(","),
                    steps,
                    j.description
                );
            }
            Ok(())
        }
        JobCommand::Show { name } => {
            let catalog = catalog()?;
            let j = catalog.job(&name)?;
            println!("{}: {}", j.name, j.description);
            let envs: Vec<_> = j.environments.iter().map(|e| e.as_str()).collect();
            println!("environments: {}", envs.join(", "));
            println!(
                "timeout: {} s, heartbeat: {} s, idempotent: {}",
                j.timeout_seconds, j.heartbeat_seconds, j.idempotent
            );
            for (n, p) in &j.parameters {
                println!(
                    "param {n}: {}{}{}",
                    describe(p),
                    if p.is_required() { " (required)" } else { "" },
                    p.description()
                        .map(|d| format!(" - {d}"))
                        .unwrap_or_default()
                );
            }
            for (var, per_env) in &j.secrets {
                for (env, r) in per_env {
                    println!("secret {var} ({env}): {}", r.describe());
                }
            }
            match &j.command {
                Some(argv) => println!("command: {}", serde_json::to_string(argv)?),
                None => {
                    for s in &j.steps {
                        println!("step {}: {}", s.name, serde_json::to_string(&s.command)?);
                    }
                }
            }
            Ok(())
        }
    }
}

fn describe(p: &Parameter) -> String {
    match p {
        Parameter::String {
            pattern,
            choices,
            default,
            ..
        } => format!(
            "string{}{}{}",
            pattern
                .as_ref()
                .map(|x| format!(" matching {x}"))
                .unwrap_or_default(),
            choices
                .as_ref()
                .map(|c| format!(" one of {}", c.join("|")))
                .unwrap_or_default(),
            default
                .as_ref()
                .map(|d| format!(" default {d:?}"))
                .unwrap_or_default()
        ),
        Parameter::Integer {
            minimum,
            maximum,
            default,
            ..
        } => format!(
            "integer {}..={}{}",
            minimum.map(|v| v.to_string()).unwrap_or_default(),
            maximum.map(|v| v.to_string()).unwrap_or_default(),
            default.map(|d| format!(" default {d}")).unwrap_or_default()
        ),
        Parameter::Boolean { default, .. } => format!(
            "boolean{}",
            default.map(|d| format!(" default {d}")).unwrap_or_default()
        ),
    }
}

fn check(dir: &Path) -> anyhow::Result<()> {
    let results = stepops_jobs::check_dir(dir)?;
    let mut bad = 0;
    for r in &results {
        match &r.result {
            Ok(j) => println!("ok   {} ({})", r.file, j.name),
            Err(e) => {
                bad += 1;
                println!("FAIL {e}");
            }
        }
    }
    if bad > 0 {
        return Err(stepops_jobs::JobError::Request {
            job: "?".into(),
            problem: format!("{bad} of {} job files are invalid (above)", results.len()),
        }
        .into());
    }
    println!("{} job files checked", results.len());
    Ok(())
}

/// In prod, the job's name typed again (unless `yes`).
pub fn confirm(job: &ValidatedJob, yes: bool) -> anyhow::Result<()> {
    if job.environment != stepops_error::Environment::Prod || yes {
        return Ok(());
    }
    typed_again(&format!("job {} runs in PROD", job.job), &job.job)
}

/// Asks for `expected` to be typed again after `what`; anything else is
/// `Stepops.NotConfirmed` and nothing is done.
pub fn typed_again(what: &str, expected: &str) -> anyhow::Result<()> {
    eprint!("{what}. Type {expected:?} to confirm: ");
    std::io::stderr().flush()?;
    let mut line = String::new();
    std::io::stdin().lock().read_line(&mut line)?;
    if line.trim() != expected {
        return Err(stepops_admin::AdminError::NotConfirmed(format!(
            "you typed {:?}, not {:?}: nothing was done",
            line.trim(),
            expected
        ))
        .into());
    }
    Ok(())
}

async fn run_job(catalog: &Catalog, a: RunArgs) -> anyhow::Result<()> {
    let (request, job) = validate(catalog, &a.request)?;
    print_plan(&job);
    if a.request.dry_run {
        println!("dry run: nothing was started");
        return Ok(());
    }
    confirm(&job, a.yes)?;
    let (sfn, aws) = stepops_sfn::connect(a.endpoint.as_deref(), a.region.as_deref()).await;
    let machine = match (&a.state_machine_arn, aws.as_ref()) {
        (Some(arn), _) => arn.clone(),
        (None, Some(aws)) => {
            let stack = a
                .stack_name
                .clone()
                .unwrap_or_else(|| format!("stepops-{}", a.request.env));
            let cfn = stepops_sfn::cloudformation_client(aws, None);
            stepops_sfn::state_machine_of_stack(&cfn, &stack, "JobStateMachineArn", &a.request.env)
                .await?
        }
        (None, None) => {
            let env = &a.request.env;
            let found = stepops_sfn::find_state_machines(&sfn, |n| {
                n.contains(env.as_str()) && n.ends_with("-job")
            })
            .await?;
            match found.as_slice() {
                [(_, one)] => one.clone(),
                _ => bail!(
                    "no single state machine named like stepops-{env}-job on the endpoint: give --state-machine-arn"
                ),
            }
        }
    };
    let arn = stepops_sfn::start_execution(&sfn, &machine, None, &serde_json::to_value(&request)?)
        .await?;
    println!("{arn}");
    if !a.follow {
        return Ok(());
    }
    let mut last = Duration::ZERO;
    let finished = stepops_sfn::wait_for_execution(&sfn, &arn, &WaitOptions::default(), |p| {
        if p.elapsed >= last + Duration::from_secs(10) {
            last = p.elapsed;
            eprintln!("running, {} s", p.elapsed.as_secs());
        }
    })
    .await?;
    println!(
        "{}",
        json!({"status": finished.status.as_str(), "output": finished.output, "error": finished.error, "cause": finished.cause})
    );
    if !finished.succeeded() {
        bail!(
            "job {} ended {}: {}",
            job.job,
            finished.status.as_str(),
            finished.error.unwrap_or_default()
        );
    }
    Ok(())
}
