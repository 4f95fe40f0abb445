//! The stepops runner: polls Step Functions activities from inside the VPC and drives the
//! migration's steps (`plan`, `copy`, `verify`, `set-status`; contract in
//! `docs/dev/pipeline-steps.md`). User documentation: `docs/runner.md`.
//!
//! Embedding (as `stepops demo` does): [`local_migration_runner`] builds a runner of the
//! migration steps for the local engine; drive it until a shutdown future completes:
//!
//! ```no_run
//! # async fn demo() {
//! use stepops_runner::{RunnerOptions, local_migration_runner};
//! let mut options = RunnerOptions::new(vec![
//!     "arn:aws:states:us-east-1:000000000000:activity:migrate".into(),
//! ]);
//! options.concurrency = 4;
//! let stop = tokio_util::sync::CancellationToken::new();
//! let runner = local_migration_runner("http://127.0.0.1:8083", options, ".stepops/s3");
//! let task = tokio::spawn(runner.run(stop.clone().cancelled_owned()));
//! // … start the execution, wait for it …
//! stop.cancel();
//! let report = task.await.unwrap(); // succeeded, failed, abandoned, handed_back, undelivered
//! # }
//! ```
//!
//! For other step sets, implement [`StepHandler`] and use [`Runner::new`] with
//! [`local_sfn_client`] (or [`sfn_client`] for AWS).

pub mod config;
pub mod job;
pub mod journal;
pub mod library_engine;
pub mod logging;
pub mod migration;
pub mod results;
pub mod runner;
pub mod secrets;
pub mod step;
pub mod synapse_engine;
/// The object store (the shared `stepops-store` crate).
pub use stepops_store as store;

use std::future::Future;
use std::sync::Arc;

pub use config::{ConfigError, RawConfig, RunnerConfig};
pub use job::ship::{CloudWatchSink, LogSink};
pub use job::{JobSettings, WithJobs};
pub use library_engine::LibraryEngine;
pub use migration::{
    ChunkSpec, CopiedRound, CopyOutcome, MigrationEngine, MigrationHandler, PlanOutcome,
    PlanRequest, StatusOutcome, TableSummary,
};
pub use results::{RoundTotals, round_totals};
pub use runner::{RunReport, Runner, RunnerOptions};
pub use secrets::{
    AwsSecretSource, NoSecretSource, Resolver, Secret, SecretError, SecretSource, target_arg,
};
pub use step::{CancelOnDrop, StepError, StepHandler};
/// The Step Functions clients (the shared `stepops-sfn` crate).
pub use stepops_sfn::{load_sdk_config, local_logs_client, local_sfn_client, sfn_client};
#[cfg(feature = "s3")]
pub use store::S3Store;
pub use store::{AnyStore, LocalFolderStore, NoStore, ObjectStore, StoreError};

/// The runner a local run embeds: the migration steps over `stepops-migrate`, targets given as
/// `{"url": …}` only (no secret store), manifests under `object_store_root` (give it the local
/// engine's S3 folder), Step Functions at `endpoint` (the local engine), failure causes redacted.
pub fn local_migration_runner(
    endpoint: &str,
    options: RunnerOptions,
    object_store_root: impl Into<std::path::PathBuf>,
) -> Runner<MigrationHandler<LibraryEngine, NoSecretSource, LocalFolderStore>> {
    let resolver = Arc::new(Resolver::new(
        NoSecretSource,
        std::time::Duration::from_secs(900),
    ));
    let handler = MigrationHandler::new(
        LibraryEngine,
        resolver.clone(),
        LocalFolderStore::new(object_store_root),
    );
    Runner::new(local_sfn_client(endpoint), options, handler)
        .with_redactor(move |s| resolver.redact(s))
}

/// [`local_migration_runner`] that also runs ops job steps (`job`) from `settings`' catalog,
/// their secrets read from `secrets` (a [`stepops_secrets::MemorySecretSource`] locally), their
/// start and result records under `object_store_root` (`stepops local job run`).
pub fn local_runner_with_jobs<S: SecretSource>(
    endpoint: &str,
    options: RunnerOptions,
    object_store_root: impl Into<std::path::PathBuf>,
    settings: JobSettings,
    secrets: S,
) -> Runner<
    WithJobs<
        MigrationHandler<LibraryEngine, NoSecretSource, LocalFolderStore>,
        S,
        LocalFolderStore,
    >,
> {
    let resolver = Arc::new(Resolver::new(
        NoSecretSource,
        std::time::Duration::from_secs(900),
    ));
    let store = LocalFolderStore::new(object_store_root);
    let handler = MigrationHandler::new(LibraryEngine, resolver.clone(), store.clone());
    let handler = WithJobs::new(handler, settings, secrets, store);
    Runner::new(local_sfn_client(endpoint), options, handler)
        .with_redactor(move |s| resolver.redact(s))
}

/// Runs the runner as the binary does: AWS clients from `config` (Step Functions at
/// `config.endpoint` when set), secrets from Secrets Manager/SSM, manifests under
/// `config.object_store_root` (S3 when unset), the migration engine of `stepops-migrate`, until `shutdown`.
pub async fn serve(config: &RunnerConfig, shutdown: impl Future<Output = ()> + Send) -> RunReport {
    // Against a local endpoint with no region configured anywhere, do not ask instance
    // metadata for one: any region will do.
    let region_in_env = ["AWS_REGION", "AWS_DEFAULT_REGION"]
        .iter()
        .any(|v| std::env::var_os(v).is_some());
    let region = config
        .region
        .clone()
        .or_else(|| (config.endpoint.is_some() && !region_in_env).then(|| "us-east-1".to_owned()));
    let sdk = load_sdk_config(region.as_deref(), config.poll_read_timeout).await;
    let client = sfn_client(&sdk, config.endpoint.as_deref());
    let resolver = Arc::new(Resolver::new(
        AwsSecretSource::new(&sdk),
        config.secret_cache,
    ));
    let store = match &config.object_store_root {
        Some(root) => AnyStore::Local(LocalFolderStore::new(root)),
        #[cfg(feature = "s3")]
        None => AnyStore::S3(S3Store::from_config(&sdk)),
        #[cfg(not(feature = "s3"))]
        None => AnyStore::None(NoStore),
    };
    let handler = MigrationHandler::new(LibraryEngine, resolver.clone(), store.clone());
    let catalog = match &config.jobs_dir {
        Some(dir) => stepops_jobs::Catalog::load_dir(dir),
        None => stepops_jobs::embedded(),
    };
    let catalog = catalog.unwrap_or_else(|e| {
        tracing::error!(error = %e, "the job catalog cannot be loaded: every job step will be refused");
        stepops_jobs::Catalog::from_files(Vec::new()).expect("an empty catalog")
    });
    let log_sink = config.job_log_group.as_ref().map(|group| {
        let client = stepops_sfn::logs_client(&sdk, config.endpoint.as_deref());
        Arc::new(CloudWatchSink::new(client, group)) as Arc<dyn LogSink>
    });
    let settings = JobSettings {
        kill_grace: config.job_kill_grace,
        worker_name: config.worker_name.clone(),
        log_sink,
        ..JobSettings::new(catalog, &config.job_root)
    };
    let handler = WithJobs::new(handler, settings, AwsSecretSource::new(&sdk), store);
    Runner::new(client, RunnerOptions::from(config), handler)
        .with_redactor(move |s| resolver.redact(s))
        .run(shutdown)
        .await
}

/// Completes on the first SIGTERM or SIGINT (Ctrl-C).
pub async fn shutdown_signal() {
    use tokio::signal::unix::{SignalKind, signal};
    let mut term = signal(SignalKind::terminate()).expect("cannot install a SIGTERM handler");
    let mut int = signal(SignalKind::interrupt()).expect("cannot install a SIGINT handler");
    let name = tokio::select! {
        _ = term.recv() => "SIGTERM",
        _ = int.recv() => "SIGINT",
    };
    tracing::info!(signal = name, "signal received: draining");
}
