//! `stepops relationalize`: archives of JSON documents → Parquet tables on a laptop (folders or
//! S3), and its benchmark beside DuckDB (the work is `stepops_relationalize`'s).

use anyhow::Context;
use stepops_relationalize::service::{configure, run_location};
use stepops_relationalize::{Location, RelzError};
use stepops_store::S3Store;

/// `stepops relationalize --help`.
pub const LONG_ABOUT: &str = "\
Relationalize archives as the relationalize Lambda does: every .zip under --input (a folder or
s3://BUCKET/PREFIX; one archive per uploaded record: metadata.json plus NAME.json / NAME.jsonl
documents of the dataset NAME) is validated against --schemas (DATASET/vN.json; without it
nothing is validated and every type is inferred), flattened into tables (structs → a_b columns,
arrays → child tables joined on recordid and id) and written as Parquet under --output:
TABLE/assessmentid=A/year=Y/month=M/day=D/RECORDID.parquet, invalid documents under
_quarantine/ with their reasons. Running it again replaces the same files. Each archive's
report goes to stderr, the run's summary (JSON) to stdout; the exit code is 1 when an archive
failed (the others are written). AWS credentials and region come from the environment
(AWS_PROFILE, …; AWS_ENDPOINT_URL_S3 for a local S3 server). See docs/relationalize.md.

Examples:
  stepops relationalize --input ./archives --output ./tables --schemas ./schemas
  stepops relationalize --input s3://uploads/archives/2024/ --output ./tables
  stepops relationalize bench --mib 256        # beside DuckDB (release build)
  stepops local relationalize --bucket ./bucket  # the state machine on the local engine";

/// Arguments of `stepops relationalize`.
#[derive(clap::Args, Debug)]
#[command(long_about = LONG_ABOUT, args_conflicts_with_subcommands = true)]
pub struct RelationalizeArgs {
    /// The archives: a folder or s3://BUCKET/PREFIX (every .zip below it).
    #[arg(long, value_name = "DIR_OR_S3", required = true)]
    pub input: Option<String>,
    /// Where tables and quarantine records go: a folder (created) or s3://BUCKET/PREFIX.
    #[arg(long, value_name = "DIR_OR_S3", required = true)]
    pub output: Option<String>,
    /// The JSON Schemas, DATASET/vN.json under a folder or s3://BUCKET/PREFIX. Without it,
    /// documents are not validated and every column's type is inferred.
    #[arg(long, value_name = "DIR_OR_S3")]
    pub schemas: Option<String>,
    /// Documents larger than this are quarantined unread.
    #[arg(long, value_name = "BYTES", default_value_t = stepops_relationalize::DEFAULT_MAX_DOCUMENT_BYTES)]
    pub max_document_bytes: u64,
    #[command(subcommand)]
    pub command: Option<RelationalizeCommand>,
}

/// `stepops relationalize bench`.
#[derive(clap::Subcommand, Debug)]
pub enum RelationalizeCommand {
    /// Benchmark beside DuckDB (read_json_auto → COPY … (FORMAT parquet)) on the same nested
    /// NDJSON, both on one core, in alternation for --rounds rounds: the median wall and CPU
    /// time of each and their ratios, peak memory, and half the archives, for linearity. Run it
    /// in a release build: cargo run --release --bin stepops -- relationalize bench
    Bench(stepops_bench::relationalize::BenchArgs),
}

/// Runs `stepops relationalize`.
pub async fn run(args: RelationalizeArgs) -> anyhow::Result<()> {
    if let Some(RelationalizeCommand::Bench(b)) = args.command {
        return stepops_bench::relationalize::run(b).await;
    }
    let (input, output) = (
        args.input.context("--input is required")?,
        args.output.context("--output is required")?,
    );
    let uses_s3 = [Some(&input), Some(&output), args.schemas.as_ref()]
        .iter()
        .flatten()
        .any(|l| l.starts_with("s3://"));
    let s3 = if uses_s3 {
        Some(S3Store::from_config(&aws_config::load_from_env().await))
    } else {
        None
    };
    let client = || {
        s3.clone()
            .expect("an S3 location loads the AWS configuration")
    };
    let relz = configure(
        &output,
        args.schemas.as_deref(),
        Some(args.max_document_bytes),
        client,
    )?;
    let input = Location::parse(&input, false)?;
    let store = input.store(client);
    let summary = run_location(&relz, &store, &input, |name, result| match result {
        Ok(r) => eprintln!(
            "{name}: {} documents, {} invalid, {} rows in {} tables",
            r.documents,
            r.invalid,
            r.tables.values().sum::<usize>(),
            r.tables.len()
        ),
        Err(e) => eprintln!(
            "{name}: FAILED: {}",
            stepops_error::TaskFailure::from_error(e).error
        ),
    })
    .await?;
    println!("{}", serde_json::to_string_pretty(&summary)?);
    if summary.failed > 0 {
        anyhow::bail!(
            "{} of {} archives failed (listed in the summary); the others were written",
            summary.failed,
            summary.archives
        );
    }
    Ok(())
}

/// For `main.rs`'s exit codes.
pub fn error_name(e: &(dyn std::error::Error + 'static)) -> Option<stepops_error::ErrorName> {
    use stepops_error::Named;
    e.downcast_ref::<RelzError>().map(Named::error_name)
}
