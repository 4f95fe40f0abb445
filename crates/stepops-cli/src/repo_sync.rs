//! `stepops repo-sync`: run repository sync definitions from a laptop, or check one (the work
//! is `stepops_reposync`'s).

use std::path::PathBuf;

use stepops_error::Named;
use stepops_pipeline::MemoryPublisher;
use stepops_reposync::service::{Alerts, Installations, run_all};
use stepops_reposync::{SyncError, parse_definitions, read_secret};

const LONG_ABOUT: &str = "\
Make S3 prefixes equal to GitHub branches, as the repo-sync Lambda does every five minutes.

FILE holds one definition, a list, or {definitions: [...]} (YAML or JSON; docs/repo-sync.md).
The GitHub App's key comes from private_key_file, or from the Secrets Manager secret named by
private_key_secret; AWS credentials and region come from the environment (AWS_PROFILE, …;
AWS_ENDPOINT_URL_S3 for a local S3 server). The report (new, modified, deleted, unchanged keys)
is printed as JSON. A failure prints its Stepops.* name and exits with that name's code.

Examples:
  stepops repo-sync check site.yaml             # validate only: no request is made
  stepops repo-sync --config site.yaml --dry-run # the plan; nothing is written
  stepops repo-sync --config site.yaml";

/// Arguments of `stepops repo-sync`.
#[derive(clap::Args, Debug)]
#[command(long_about = LONG_ABOUT, args_conflicts_with_subcommands = true)]
pub struct RepoSyncArgs {
    /// The definitions to run.
    #[arg(long, value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// Report what would change; write nothing.
    #[arg(long)]
    pub dry_run: bool,
    #[command(subcommand)]
    pub command: Option<RepoSyncCommand>,
}

/// `stepops repo-sync check`.
#[derive(clap::Subcommand, Debug)]
pub enum RepoSyncCommand {
    /// Validate a definition file (every problem listed); makes no request.
    Check {
        /// The definitions to check.
        file: PathBuf,
    },
    /// Benchmark against moto's S3 server on 127.0.0.1 (started here): a generated tree synced
    /// first, again unchanged, then with 1 % of its files changed at the same size; wall
    /// times, requests, peak memory; beside `aws s3 sync` when `aws` is installed.
    Bench {
        /// Files in the tree.
        #[arg(long, default_value_t = 5000)]
        files: usize,
        /// Total size of the tree, MiB.
        #[arg(long, default_value_t = 50)]
        mib: u64,
    },
}

/// Runs `stepops repo-sync`.
pub async fn run(args: RepoSyncArgs) -> anyhow::Result<()> {
    match execute(args).await {
        Ok(()) => Ok(()),
        Err(e) => {
            eprintln!("error: {}: {e}", e.error_name());
            std::process::exit(e.error_name().exit_code());
        }
    }
}

fn read(path: &PathBuf) -> Result<String, SyncError> {
    std::fs::read_to_string(path).map_err(|e| SyncError::Definition {
        problems: vec![format!("cannot read {}: {e}", path.display())],
    })
}

async fn execute(args: RepoSyncArgs) -> Result<(), SyncError> {
    if let Some(RepoSyncCommand::Check { file }) = &args.command {
        let defs = parse_definitions(&read(file)?)?;
        for d in &defs {
            println!("ok: {} -> s3://{}/{}", d.display_name(), d.bucket, d.prefix);
        }
        return Ok(());
    }
    if let Some(RepoSyncCommand::Bench { files, mib }) = &args.command {
        return stepops_bench::reposync::run(*files, *mib).await;
    }
    let Some(path) = &args.config else {
        return Err(SyncError::Definition {
            problems: vec!["give --config FILE (or `check FILE`); see --help".into()],
        });
    };
    let mut defs = parse_definitions(&read(path)?)?;
    if args.dry_run {
        defs.iter_mut().for_each(|d| d.dry_run = true);
    }
    let config = aws_config::load_from_env().await;
    let s3 = aws_sdk_s3::config::Builder::from(&config);
    let secret = |name| read_secret(&config, name);
    let reports = run_all(
        &defs,
        &s3,
        secret,
        &Installations::default(),
        None::<Alerts<'_, MemoryPublisher>>,
        &std::env::temp_dir(),
    )
    .await?;
    println!(
        "{}",
        serde_json::to_string_pretty(&reports).expect("reports serialise")
    );
    Ok(())
}
