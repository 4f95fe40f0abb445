//! `stepops`: the command line. Each subcommand lives in its own module and hands its parsed
//! arguments to a library crate; nothing here holds domain logic.

use std::process::ExitCode;

use clap::{Parser, Subcommand};
use stepops_error::ErrorName;

mod admin;
mod bench;
mod demo;
mod errors;
mod job;
mod local;
mod local_job;
mod local_migrate;
mod migrate;
mod relationalize;
mod repo_sync;
mod sample;
mod start;

/// Operational tasks on AWS Step Functions: migrations between stacks, deploys and admin tasks,
/// runnable on a laptop through stepops' local engine.
#[derive(Parser)]
#[command(name = "stepops", version, about, long_about = None)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run one Synapse admin task through the admin state machine (validated, audited; prod
    /// asks for the target again). See docs/admin.md.
    Admin(admin::AdminArgs),
    /// Run the real migration pipeline locally on sample data (local engine, Lambdas and
    /// runner workers in-process), print the summary and check the result.
    Demo(demo::DemoArgs),
    /// Print the error names stepops reports: what state machines Retry and Catch on, and the
    /// exit code of each.
    Errors,
    /// Create the sample schema and fill it with deterministic, exotic data.
    Sample(sample::SampleArgs),
    /// Benchmark `stepops migrate` against pgcopydb, pg_dump | psql and reladiff (prints figures).
    #[command(long_about = stepops_bench::LONG_ABOUT)]
    Bench(bench::BenchArgs),
    /// Ops jobs from the catalog (jobs/*.yaml): list, show, check, run (see --help).
    Job(job::JobArgs),
    /// Make a destination database's tables equal to a source's, in resumable chunks.
    Migrate(migrate::MigrateArgs),
    /// Start a migration execution in AWS (or on a local engine) after validating its input.
    Start(start::StartArgs),
    /// The local Step Functions engine: run a definition once, or serve the API for runners.
    Local(local::LocalArgs),
    /// Make S3 prefixes equal to GitHub branches (`--config FILE [--dry-run]`), or check a
    /// definition (`check FILE`). See docs/repo-sync.md.
    RepoSync(repo_sync::RepoSyncArgs),
    /// Turn archives of JSON documents into validated, flattened, partitioned Parquet tables
    /// (`--input DIR_OR_S3 --output DIR_OR_S3 [--schemas …]`), or benchmark it beside DuckDB
    /// (`bench`). See docs/relationalize.md.
    #[command(long_about = relationalize::LONG_ABOUT)]
    Relationalize(relationalize::RelationalizeArgs),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    // The demo (progress and a summary) and the engine benchmark (a report on stdout) log only
    // warnings unless STEPOPS_LOG asks for more.
    let quiet = match &cli.command {
        Command::Demo(_) => true,
        Command::Local(args) => args.is_bench() || args.is_job(),
        _ => false,
    };
    stepops_runner::logging::init_with_default(if quiet { "warn" } else { "info" });
    let runtime = tokio::runtime::Runtime::new().expect("cannot start the async runtime");
    let result: anyhow::Result<()> = runtime.block_on(async move {
        match cli.command {
            Command::Admin(args) => admin::run(args).await,
            Command::Demo(args) => demo::run(args).await,
            Command::Sample(args) => sample::run(args).await,
            Command::Bench(args) => bench::run(args).await,
            Command::Errors => errors::run(),
            Command::Migrate(args) => migrate::run(args).await,
            Command::Local(args) => local::run(args).await,
            Command::Start(args) => start::run(args).await,
            Command::Job(args) => job::run(args).await,
            Command::RepoSync(args) => repo_sync::run(args).await,
            Command::Relationalize(args) => relationalize::run(args).await,
        }
    });
    let Err(err) = result else {
        return ExitCode::SUCCESS;
    };
    let name = errors::name_of(&err);
    let prefix = name.map(|n| format!("{n}: ")).unwrap_or_default();
    eprintln!("error: {prefix}{err:#}");
    ExitCode::from(name.map_or(1, ErrorName::exit_code) as u8)
}
