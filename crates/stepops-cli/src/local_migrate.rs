//! `stepops local migrate`: the migration pipeline (local engine, Lambdas, runner workers, all
//! in-process) on one's own databases (the work is `stepops_embedded`'s).

use std::path::PathBuf;

use anyhow::Context;
use serde_json::json;
use stepops_embedded::{ALL_LOCAL_TARGETS, PipelineOptions};

const LONG_ABOUT: &str = "\
Run the real migration pipeline (statemachine/migrate.asl.json on stepops' local Step Functions
engine, the validate-input and notify Lambdas and runner workers in-process) on your own
databases: SQLite files or PostgreSQL.

The local stack's environment is dev; it allows sqlite: URLs and postgres:// URLs WITHOUT a
password (validate-input refuses an inline password: use ~/.pgpass, PGPASSFILE or trust
authentication). The engine's state, manifests and history stay in --dir (default
.stepops/local-migrate): an interrupted run resumes when the command runs again on it.

Synapse stacks (synapse+http://KEY:SECRET@127.0.0.1:PORT/repo/v1, a local fake: run
stepops-synapse-fake for two) are migrated through the service's admin API; the destination is
READ_ONLY during the run and READ_WRITE again at its end (config `synapse.remainReadOnly` keeps it
read-only). Settings go in the config's `synapse` block (docs/synapse-migration.md).

Examples:
  stepops local migrate --source sqlite:prod-copy.db --dest sqlite:staging.db
  stepops local migrate --source 'synapse+http://migration-admin:prod-Secret-7Qx@127.0.0.1:41001/repo/v1' \\
      --dest 'synapse+http://migration-admin:staging-Secret-7Qx@127.0.0.1:41002/repo/v1'
  stepops local migrate --source postgres://app@127.0.0.1:5432/src \\
      --dest postgres://app@127.0.0.1:5432/dst --jobs 8 --chunk-rows 50000 --config tables.yaml";

/// Arguments of `stepops local migrate`.
#[derive(clap::Args, Debug)]
#[command(long_about = LONG_ABOUT)]
pub struct LocalMigrateArgs {
    /// The source database: sqlite:PATH or postgres://USER@HOST:PORT/DB (no password).
    #[arg(long, value_name = "URL")]
    pub source: String,
    /// The destination database, made equal to the source.
    #[arg(long, value_name = "URL")]
    pub dest: String,
    /// Chunks copied at once (the execution's maxConcurrency; split over the workers).
    #[arg(long, default_value_t = 4, value_name = "N")]
    pub jobs: u64,
    /// Runner workers started in-process.
    #[arg(long, default_value_t = 2, value_name = "N")]
    pub workers: usize,
    /// Rows per chunk (the execution's chunkRows).
    #[arg(long, default_value_t = 50_000, value_name = "N")]
    pub chunk_rows: u64,
    /// Plan/verify rounds before giving up (Stepops.NotConverged).
    #[arg(long, default_value_t = 5, value_name = "N")]
    pub max_rounds: u64,
    /// YAML or JSON: include/exclude tables, tables.NAME.rangeKey (as for `stepops migrate`).
    #[arg(long, value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// Plan only: report what differs, copy nothing.
    #[arg(long)]
    pub dry_run: bool,
    /// The engine's state directory (kept: executions resume, history stays inspectable).
    #[arg(long, default_value = ".stepops/local-migrate", value_name = "DIR")]
    pub dir: PathBuf,
}

/// Runs `stepops local migrate`.
pub async fn run(args: LocalMigrateArgs) -> anyhow::Result<()> {
    let config = match &args.config {
        Some(path) => serde_json::to_value(stepops_migrate::Config::load(path)?)?,
        None => json!({}),
    };
    let input = json!({
        "environment": "dev",
        "source": {"url": absolute_sqlite(&args.source)?},
        "dest": {"url": absolute_sqlite(&args.dest)?},
        "config": config,
        "chunkRows": args.chunk_rows,
        "maxConcurrency": args.jobs,
        "maxRounds": args.max_rounds,
        // The service's own client puts the destination read-only for a Synapse migration.
        "readOnlyDuringCopy": stepops_synapse_url(&args.dest),
        "dryRun": args.dry_run,
    });
    std::fs::create_dir_all(&args.dir)
        .with_context(|| format!("cannot create {}", args.dir.display()))?;
    let workers = args.workers.max(1);
    let mut options = PipelineOptions::new(args.dir.canonicalize()?);
    options.workers = workers;
    options.concurrency_per_worker = (args.jobs as usize).div_ceil(workers).max(1);
    options.allowed_targets = ALL_LOCAL_TARGETS.into();
    crate::demo::run_and_report(options, &input, false).await
}

fn stepops_synapse_url(url: &str) -> bool {
    url.starts_with("synapse+")
}

/// `sqlite:relative.db` → `sqlite:/abs/relative.db` (the runner may run elsewhere); other URLs
/// unchanged.
fn absolute_sqlite(url: &str) -> anyhow::Result<String> {
    let Some(path) = url.strip_prefix("sqlite:") else {
        return Ok(url.to_owned());
    };
    let path = path.strip_prefix("//").unwrap_or(path);
    let p = PathBuf::from(path);
    if p.is_absolute() {
        return Ok(format!("sqlite:{}", p.display()));
    }
    Ok(format!(
        "sqlite:{}",
        std::env::current_dir()?.join(p).display()
    ))
}
