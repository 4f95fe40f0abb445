//! `stepops-runner`: polls Step Functions activities and runs the migration's steps. Thin: it
//! parses arguments, loads the configuration and hands over to [`stepops_runner::serve`].

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Parser;
use stepops_runner::{RawConfig, RunnerConfig};

/// Polls Step Functions activities (GetActivityTask) and runs the steps their tasks name
/// (plan, copy, verify, set-status, release, ping), N at a time, with heartbeats. SIGTERM or Ctrl-C
/// drains: polling stops, running tasks get `drain_timeout_seconds` to finish, the rest are
/// handed back as Stepops.Transient so the state machine retries them.
///
/// Configuration: a YAML file (--config) whose keys can each be overridden by a
/// STEPOPS_RUNNER_<KEY> environment variable parsed as YAML, e.g. STEPOPS_RUNNER_CONCURRENCY=8 or
/// STEPOPS_RUNNER_ACTIVITIES='[arn:aws:states:eu-west-1:123456789012:activity:stepops-dev-migrate]'.
/// Keys: activities (required), concurrency, heartbeat_seconds, drain_timeout_seconds,
/// poll_read_timeout_seconds, endpoint, region, worker_name, environment, object_store_root,
/// secret_cache_seconds, allowed_targets, answer_timeout_seconds, jobs_dir, job_root,
/// job_kill_grace_seconds, job_log_group. A STEPOPS_RUNNER_* variable that names no key is an error; other
/// STEPOPS_* variables belong to other stepops commands and are ignored. See docs/runner.md.
/// Log level: STEPOPS_LOG (info, debug, …).
#[derive(Parser)]
#[command(name = "stepops-runner", version, about, verbatim_doc_comment)]
struct Args {
    /// The YAML configuration file.
    #[arg(long, short, env = "STEPOPS_CONFIG", value_name = "FILE")]
    config: Option<PathBuf>,
    /// Step Functions endpoint, e.g. the local engine's http://127.0.0.1:8083 (overrides the
    /// `endpoint` key). Without it: AWS, from the default credentials and region.
    #[arg(long, value_name = "URL")]
    endpoint: Option<String>,
    /// AWS region (overrides the `region` key).
    #[arg(long)]
    region: Option<String>,
    /// Check the configuration, print it, and exit.
    #[arg(long)]
    check_config: bool,
}

fn load(args: &Args) -> Result<RunnerConfig, stepops_runner::ConfigError> {
    let mut raw = match &args.config {
        Some(path) => RawConfig::from_file(path)?,
        None => RawConfig::default(),
    };
    for warning in raw.apply_env(std::env::vars())? {
        eprintln!("warning: {warning}");
    }
    if let Some(endpoint) = &args.endpoint {
        raw.set(
            "endpoint".into(),
            endpoint.clone().into(),
            "command line --endpoint",
        )?;
    }
    if let Some(region) = &args.region {
        raw.set(
            "region".into(),
            region.clone().into(),
            "command line --region",
        )?;
    }
    raw.build()
}

fn main() -> ExitCode {
    let args = Args::parse();
    stepops_runner::logging::init();
    let config = match load(&args) {
        Ok(c) => c,
        Err(err) => {
            eprintln!("error: {err}");
            return ExitCode::from(2);
        }
    };
    if args.check_config {
        println!("{config:#?}");
        return ExitCode::SUCCESS;
    }
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(err) => {
            eprintln!("error: cannot start the async runtime: {err}");
            return ExitCode::FAILURE;
        }
    };
    runtime.block_on(async {
        let signal = stepops_runner::shutdown_signal();
        stepops_runner::serve(&config, signal).await
    });
    ExitCode::SUCCESS
}
