//! `stepops local job run`: a job from the catalog through the real job state machine on the
//! local engine, with an in-process runner (the work is `stepops_embedded::LocalJobs`'s); the
//! steps' output is streamed to stdout as it is written, with the current step and elapsed time.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use stepops_embedded::{JobOptions, LocalJobs};
use stepops_secrets::MemorySecretSource;

use crate::job::control::StepLogs;
use crate::job::{RequestArgs, load_catalog, print_plan, validate};

const LONG_ABOUT: &str = "\
Run a job of the catalog on this machine: the same statemachine/job.asl.json and template.yaml
as in AWS on stepops' local engine (its concurrency lease in the engine's emulated DynamoDB
table), the job-validate logic and a runner in-process. The steps run as your user, in fresh
directories under --dir; their output is printed as it comes, secrets masked.

The local stack is dev. Secrets the job names are given with --secret NAME=VALUE or
--secret NAME=@FILE (the value read from FILE), e.g. --secret stepops/dev/source-db=@db-url.txt.

Examples:
  stepops local job run rolling-restart --env dev --param service=search --param image=v2 --dry-run
  stepops local job run backup --env dev --param bucket=my-dev-bucket \\
      --secret stepops/dev/source-db=@url.txt";

/// Arguments of `stepops local job`.
#[derive(clap::Args, Debug)]
pub struct LocalJobArgs {
    #[command(subcommand)]
    command: LocalJobCommand,
}

#[derive(clap::Subcommand, Debug)]
enum LocalJobCommand {
    /// Run a job locally (see --help).
    #[command(long_about = LONG_ABOUT)]
    Run(LocalJobRunArgs),
}

/// Arguments of `stepops local job run`.
#[derive(clap::Args, Debug)]
pub struct LocalJobRunArgs {
    #[command(flatten)]
    request: RequestArgs,
    /// A secret's value for the job: NAME=VALUE or NAME=@FILE (repeatable).
    #[arg(long = "secret", value_name = "NAME=VALUE")]
    secrets: Vec<String>,
    /// The catalog folder (default: ./jobs when it exists, else the built-in catalog).
    #[arg(long, value_name = "DIR")]
    jobs_dir: Option<PathBuf>,
    /// The engine's state, step logs and working directories.
    #[arg(long, default_value = ".stepops/local-jobs", value_name = "DIR")]
    dir: PathBuf,
}

/// Runs `stepops local job …`.
pub async fn run(args: LocalJobArgs) -> anyhow::Result<()> {
    let LocalJobCommand::Run(a) = args.command;
    let catalog = load_catalog(a.jobs_dir.as_deref())?;
    let (request, job) = validate(&catalog, &a.request)?;
    print_plan(&job);
    if a.request.dry_run {
        println!("dry run: nothing was started");
        return Ok(());
    }
    if a.request.env != "dev" {
        bail!("the local stack is dev: run with --env dev (prod runs only in its own stack)");
    }
    let mut secrets = MemorySecretSource::new();
    for s in &a.secrets {
        let (name, value) = s.split_once('=').with_context(|| {
            format!(
                "--secret {name:?}: expected NAME=VALUE or NAME=@FILE",
                name = s.split('=').next().unwrap_or("")
            )
        })?;
        let value = match value.strip_prefix('@') {
            Some(file) => std::fs::read_to_string(file)
                .with_context(|| format!("cannot read the secret file {file}"))?
                .trim_end_matches('\n')
                .to_owned(),
            None => value.to_owned(),
        };
        secrets = secrets
            .with_secret(name, value.clone())
            .with_parameter(name, value);
    }
    std::fs::create_dir_all(&a.dir)
        .with_context(|| format!("cannot create {}", a.dir.display()))?;
    let mut options = JobOptions::new(a.dir.canonicalize()?, catalog);
    options.secrets = secrets;
    let jobs = LocalJobs::start(options).await?;
    let arn = jobs.start_job(&serde_json::to_value(&request)?)?;
    eprintln!("execution {arn}");
    let started = Instant::now();
    let mut logs = StepLogs::of(&jobs.job_root(), &arn);
    let outcome = loop {
        let done = jobs.engine().describe(&arn)?;
        logs.print_new()?;
        if done.status != "RUNNING" {
            break done;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    jobs.shutdown().await;
    eprintln!(
        "== {} in {:.1} s{}",
        outcome.status,
        started.elapsed().as_secs_f64(),
        outcome
            .error
            .as_ref()
            .map(|e| format!(": {e}"))
            .unwrap_or_default()
    );
    if outcome.status != "SUCCEEDED" {
        bail!(
            "job {} ended {}: {} {}",
            job.job,
            outcome.status,
            outcome.error.unwrap_or_default(),
            outcome.cause.unwrap_or_default()
        );
    }
    Ok(())
}
