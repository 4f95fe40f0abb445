//! `stepops`: the command line. Each subcommand lives in its own module and hands its parsed
//! arguments to a library crate; nothing here holds domain logic.

use clap::{Parser, Subcommand};

mod admin;
mod bench;
mod demo;
mod local;
mod local_migrate;
mod migrate;
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
    /// Print the error names stepops reports (what state machines Retry and Catch on).
    Errors,
    /// Create the sample schema and fill it with deterministic, exotic data.
    Sample(sample::SampleArgs),
    /// Benchmark `stepops migrate` against pgcopydb, pg_dump | psql and reladiff (prints figures).
    Bench(bench::BenchArgs),
    /// Make a destination database's tables equal to a source's, in resumable chunks.
    Migrate(migrate::MigrateArgs),
    /// Start a migration execution in AWS (or on a local engine) after validating its input.
    Start(start::StartArgs),
    /// The local Step Functions engine: run a definition once, or serve the API for runners.
    Local(local::LocalArgs),
    /// Make S3 prefixes equal to GitHub branches (`--config FILE [--dry-run]`), or check a
    /// definition (`check FILE`). See docs/repo-sync.md.
    RepoSync(repo_sync::RepoSyncArgs),
}

fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    // The demo shows progress and a summary; its in-process runner and engine log only
    // warnings unless STEPOPS_LOG asks for more. So does the engine benchmark, whose report
    // goes to stdout.
    let quiet = match &cli.command {
        Command::Demo(_) => true,
        Command::Local(args) => args.is_bench(),
        _ => false,
    };
    let default_level = if quiet { "warn" } else { "info" };
    stepops_runner::logging::init_with_default(default_level);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("cannot start the async runtime");
    let result: anyhow::Result<()> = runtime.block_on(async move {
        match cli.command {
            Command::Admin(args) => admin::run(args).await,
            Command::Demo(args) => demo::run(args).await,
            Command::Sample(args) => sample::run(args).await,
            Command::Bench(args) => bench::run(args).await,
            Command::Errors => {
                for name in stepops_error::ErrorName::ALL {
                    let retry = if name.is_retryable() {
                        "retry"
                    } else {
                        "catch"
                    };
                    println!("{:<26} {retry}", name.as_str());
                }
                Ok(())
            }
            Command::Migrate(args) => migrate::run(args).await,
            Command::Local(args) => local::run(args).await,
            Command::Start(args) => start::run(args).await,
            Command::RepoSync(args) => repo_sync::run(args).await,
        }
    });
    match result {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("error: {err:#}");
            std::process::ExitCode::FAILURE
        }
    }
}
