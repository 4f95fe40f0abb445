//! `stepops demo`: the real migration pipeline on a laptop. A sample SQLite source, a stale
//! destination, the local engine on the project's own template.yaml and migrate.asl.json, the
//! pipeline's Lambdas and runner workers in-process (the work is `stepops_embedded`'s).

use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use serde_json::{Value, json};
use stepops_embedded::{
    ALL_LOCAL_TARGETS, LocalPipeline, PipelineOptions, RunSummary, SQLITE_TARGETS,
};
use stepops_sample::{Fractions, SampleSpec};

const LONG_ABOUT: &str = "\
Run the real migration pipeline locally, end to end, in one process:

  1. creates a sample SQLite source (stepops sample: users, projects, entities, acl, events)
     and a stale destination (a copy of the source, then rows updated, deleted and inserted);
  2. starts stepops' local Step Functions engine on the project's own template.yaml and
     statemachine/migrate.asl.json (built into this binary: the files that deploy), with the
     validate-input and notify Lambdas in-process (notify prints instead of SNS);
  3. starts runner workers in-process that poll the engine over HTTP through aws-sdk-sfn,
     exactly as the runner inside the VPC polls Step Functions;
  4. starts the migrate state machine (validate -> plan -> copy chunks in a Distributed Map ->
     verify), shows progress, prints the summary, then compares every row of both databases
     independently of the migration engine.

The local stack's environment is dev; its allowed targets are any sqlite: URL.
Everything lives in --dir (default .stepops/demo), recreated on each run.
Exit code 0 when the execution succeeded and the destination equals the source.

With --synapse, the same pipeline migrates between two fake Synapse stacks instead (the
service's admin migration API over real HTTP on 127.0.0.1, stepops-synapse-fake): a source
with --rows rows over five types, a destination holding a stale copy; the destination is
READ_ONLY during the copy and READ_WRITE after (docs/synapse-migration.md).

Examples:
  stepops demo
  stepops demo --synapse
  stepops demo --rows 200000 --jobs 8 --chunk-rows 5000
  stepops demo --dir /tmp/demo --rerun      # also shows that a second run copies nothing";

/// Arguments of `stepops demo`.
#[derive(clap::Args, Debug)]
#[command(long_about = LONG_ABOUT)]
pub struct DemoArgs {
    /// Work directory (deleted and recreated): databases, engine state, manifests.
    #[arg(long, default_value = ".stepops/demo", value_name = "DIR")]
    pub dir: PathBuf,
    /// Rows of the sample source, over all tables.
    #[arg(long, default_value_t = 20_000, value_name = "N")]
    pub rows: u64,
    /// Chunks copied at once (the execution's maxConcurrency; split over the workers).
    #[arg(long, default_value_t = 4, value_name = "N")]
    pub jobs: u64,
    /// Runner workers started in-process.
    #[arg(long, default_value_t = 2, value_name = "N")]
    pub workers: usize,
    /// Rows per chunk (the execution's chunkRows).
    #[arg(long, default_value_t = 1_000, value_name = "N")]
    pub chunk_rows: u64,
    /// Seed of the sample data (the stale copy uses seed + 1).
    #[arg(long, default_value_t = 1, value_name = "S")]
    pub seed: u64,
    /// After the run, start a second execution: it must copy nothing (0 chunks).
    #[arg(long)]
    pub rerun: bool,
    /// Migrate between two fake Synapse stacks instead of SQLite databases.
    #[arg(long)]
    pub synapse: bool,
}

/// Runs `stepops demo`.
pub async fn run(args: DemoArgs) -> anyhow::Result<()> {
    let started = Instant::now();
    if args.dir.exists() {
        std::fs::remove_dir_all(&args.dir).with_context(|| {
            format!(
                "cannot remove the old demo directory {}",
                args.dir.display()
            )
        })?;
    }
    std::fs::create_dir_all(&args.dir)
        .with_context(|| format!("cannot create {}", args.dir.display()))?;
    let dir = args.dir.canonicalize()?;
    if args.synapse {
        return synapse_demo(&args, &dir, started).await;
    }
    let (src_path, dst_path) = (dir.join("source.db"), dir.join("dest.db"));
    let (source, dest) = (sqlite_url(&src_path), sqlite_url(&dst_path));

    eprintln!("demo: work directory {}", dir.display());
    let report = stepops_sample::sample(
        &source,
        SampleSpec {
            rows: args.rows,
            seed: args.seed,
            replace: false,
            progress: None,
        },
    )
    .await
    .context("creating the sample source")?;
    eprintln!(
        "demo: source {} ({} rows in {:.1} s)",
        src_path.display(),
        report.counts.total(),
        report.seconds
    );
    std::fs::copy(&src_path, &dst_path).context("copying the source to the destination")?;
    let changes = stepops_sample::mutate(
        &dest,
        args.seed + 1,
        Fractions {
            update: 0.02,
            delete: 0.01,
            insert: 0.01,
        },
    )
    .await
    .context("making the destination stale")?;
    let (u, d, i) = changes.totals();
    eprintln!(
        "demo: destination {} = the source with {u} rows updated, {d} deleted, {i} inserted",
        dst_path.display()
    );

    let input = json!({
        "environment": "dev",
        "source": {"url": source},
        "dest": {"url": dest},
        "config": {},
        "chunkRows": args.chunk_rows,
        "maxConcurrency": args.jobs,
        "maxRounds": 5,
        "readOnlyDuringCopy": false,
        "dryRun": false,
    });
    run_and_report(
        pipeline_options(&args, &dir, SQLITE_TARGETS),
        &input,
        args.rerun,
    )
    .await?;

    eprintln!();
    let same = compare(&source, &dest).await?;
    if !same {
        bail!("the destination differs from the source after the migration (see above)");
    }
    println!(
        "demo: OK in {:.1} s: the destination equals the source (every row of every table compared, independently of the migration engine)",
        started.elapsed().as_secs_f64()
    );
    Ok(())
}

/// The embedded pipeline's options for `args`, its state under `dir`, allowing `targets`.
fn pipeline_options(args: &DemoArgs, dir: &Path, targets: &str) -> PipelineOptions {
    let workers = args.workers.max(1);
    let mut options = PipelineOptions::new(dir.join("stack"));
    options.workers = workers;
    options.concurrency_per_worker = (args.jobs as usize).div_ceil(workers).max(1);
    options.allowed_targets = targets.into();
    options
}

/// `stepops demo --synapse`: two fake stacks in `dir`, the source seeded, the destination a
/// stale copy (rows added, changed, deleted); the migration through the same pipeline.
async fn synapse_demo(args: &DemoArgs, dir: &Path, started: Instant) -> anyhow::Result<()> {
    use stepops_synapse_fake::{FakeOptions, FakeStack};
    let stack = |name: &str| {
        let mut o = FakeOptions::new(name, dir.join("synapse-backups"));
        o.db = Some(dir.join(format!("{name}.db")));
        FakeStack::start(o)
    };
    let (source, dest) = (stack("prod").await, stack("staging").await);
    let types: Vec<String> = stepops_synapse_fake::default_types()
        .into_iter()
        .map(|t| t.name)
        .collect();
    let per_type = (args.rows / types.len() as u64).max(1) as i64;
    for t in &types {
        source.seed(t, 1..=per_type, 2);
        dest.seed(t, 1..=per_type * 9 / 10, 2);
    }
    let stale = (per_type / 50).max(1);
    for id in 1..=stale {
        dest.write(&types[1], id * 7 % per_type + 1, "stale")
            .map_err(anyhow::Error::msg)?;
        dest.delete(&types[0], id * 11 % per_type + 1)
            .map_err(anyhow::Error::msg)?;
    }
    eprintln!(
        "demo: fake Synapse stacks {} (source, {} rows over {} types) and {} (destination: 90 % of them, {stale} changed, {stale} deleted)",
        stepops_error::redact(&source.url()),
        per_type * types.len() as i64,
        types.len(),
        stepops_error::redact(&dest.url())
    );
    let input = json!({
        "environment": "dev",
        "source": {"url": source.url()},
        "dest": {"url": dest.url()},
        "config": {"synapse": {"rowsPerRange": args.chunk_rows, "batchSize": args.chunk_rows, "pollMaxMs": 100}},
        "chunkRows": args.chunk_rows,
        "maxConcurrency": args.jobs,
        "readOnlyDuringCopy": true,
    });
    run_and_report(
        pipeline_options(args, dir, ALL_LOCAL_TARGETS),
        &input,
        args.rerun,
    )
    .await?;
    let same = source.dump() == dest.dump();
    println!(
        "independent check (every primary and secondary row of both stacks): {}; destination {}",
        if same { "equal" } else { "DIFFERENT" },
        dest.status()
    );
    if !same {
        bail!("the destination stack differs from the source after the migration");
    }
    println!(
        "demo: OK in {:.1} s: the destination stack equals the source",
        started.elapsed().as_secs_f64()
    );
    Ok(())
}

/// Starts the embedded pipeline, runs one migration (and a second one with `rerun`) with
/// progress, prints the summaries; fails when an execution did not succeed.
pub(crate) async fn run_and_report(
    options: PipelineOptions,
    input: &Value,
    rerun: bool,
) -> anyhow::Result<()> {
    let pipeline = LocalPipeline::start(options)
        .await
        .context("starting the local engine and the runner workers")?;
    eprintln!(
        "pipeline: local engine at {} (stack environment dev, template.yaml + statemachine/migrate.asl.json built in), {} runner workers polling {}",
        pipeline.endpoint(),
        pipeline.workers(),
        pipeline.activity_arn()
    );
    let result = async {
        let first = run_one(&pipeline, input, "run").await?;
        print_summary(&first);
        check(&first)?;
        if rerun {
            pipeline.reset_progress();
            let second = run_one(&pipeline, input, "second run").await?;
            print_summary(&second);
            check(&second)?;
            if second.chunks != 0 {
                bail!(
                    "the second run planned {} chunks: expected 0 (nothing differs any more)",
                    second.chunks
                );
            }
            println!("second run: nothing to copy (0 chunks), as expected");
        }
        Ok(())
    }
    .await;
    pipeline.shutdown().await;
    result
}

fn check(summary: &RunSummary) -> anyhow::Result<()> {
    if summary.succeeded() {
        return Ok(());
    }
    bail!(
        "execution {} {}{}: {}: {}",
        summary.execution_arn,
        summary.status,
        summary
            .failed_step
            .as_deref()
            .map(|s| format!(" in step {s}"))
            .unwrap_or_default(),
        summary.error.as_deref().unwrap_or("(no error)"),
        summary.cause.as_deref().unwrap_or("(no cause)")
    )
}

async fn run_one(
    pipeline: &LocalPipeline,
    input: &Value,
    what: &str,
) -> anyhow::Result<RunSummary> {
    let arn = pipeline
        .start_migration(input)
        .context("starting the migrate state machine")?;
    eprintln!("{what}: execution {arn}");
    let ticker = Ticker::new(what);
    let wait = pipeline.wait(&arn);
    tokio::pin!(wait);
    let mut tick = tokio::time::interval(Duration::from_millis(200));
    let summary = loop {
        tokio::select! {
            s = &mut wait => break s?,
            _ = tick.tick() => ticker.show(&pipeline.progress()),
        }
    };
    ticker.finish(&pipeline.progress());
    Ok(summary)
}

/// Progress: a bar on a terminal, a log line every few seconds otherwise.
struct Ticker {
    bar: Option<indicatif::ProgressBar>,
    what: String,
    last_line: std::sync::Mutex<(Instant, stepops_embedded::ProgressSnapshot)>,
}

impl Ticker {
    fn new(what: &str) -> Ticker {
        let bar = std::io::stderr().is_terminal().then(|| {
            let bar = indicatif::ProgressBar::new(0);
            bar.set_style(
                indicatif::ProgressStyle::with_template(
                    "{prefix} [{elapsed_precise}] {bar:30.cyan/blue} {pos}/{len} chunks {msg}",
                )
                .expect("a valid template")
                .progress_chars("=> "),
            );
            bar.set_prefix(what.to_owned());
            bar.enable_steady_tick(Duration::from_millis(200));
            bar
        });
        Ticker {
            bar,
            what: what.to_owned(),
            last_line: std::sync::Mutex::new((Instant::now(), Default::default())),
        }
    }

    fn line(p: &stepops_embedded::ProgressSnapshot) -> String {
        format!(
            "round {}: {}/{} chunks, {} rows copied, {} deleted{}",
            p.round.max(1),
            p.chunks_copied,
            p.chunks_planned,
            p.rows_inserted,
            p.rows_deleted,
            if p.round == 0 { " (planning)" } else { "" }
        )
    }

    fn show(&self, p: &stepops_embedded::ProgressSnapshot) {
        if let Some(bar) = &self.bar {
            bar.set_length(p.chunks_planned);
            bar.set_position(p.chunks_copied);
            bar.set_message(format!(
                "round {}, {} rows copied, {} deleted",
                p.round.max(1),
                p.rows_inserted,
                p.rows_deleted
            ));
            return;
        }
        let mut last = self.last_line.lock().expect("ticker");
        if last.0.elapsed() >= Duration::from_secs(2) && last.1 != *p {
            eprintln!("{}: {}", self.what, Self::line(p));
            *last = (Instant::now(), *p);
        }
    }

    fn finish(&self, p: &stepops_embedded::ProgressSnapshot) {
        if let Some(bar) = &self.bar {
            self.show(p);
            bar.finish();
        } else {
            eprintln!("{}: {}", self.what, Self::line(p));
        }
    }
}

/// Prints the run's summary on stdout.
pub(crate) fn print_summary(s: &RunSummary) {
    println!();
    println!("execution   {}", s.execution_arn);
    println!("status      {}", s.status);
    if s.succeeded() {
        println!("tables      {}", s.tables);
        println!(
            "chunks      {} planned, {} copied",
            s.chunks, s.chunks_copied
        );
        println!(
            "rows        {} copied, {} deleted",
            s.rows_copied, s.rows_deleted
        );
        println!("rounds      {}", s.rounds);
    } else {
        if let Some(step) = &s.failed_step {
            println!("failed step {step}");
        }
        println!("error       {}", s.error.as_deref().unwrap_or("-"));
        println!("cause       {}", s.cause.as_deref().unwrap_or("-"));
    }
    println!("duration    {:.1} s", s.duration.as_secs_f64());
    for m in &s.notifications {
        println!("notification (local, instead of SNS): {}", m.subject);
        for line in m.text.lines() {
            println!("  | {line}");
        }
    }
}

/// Compares both sample databases row by row (digests of every row in key order); prints one
/// line per table; true when all are equal.
pub(crate) async fn compare(source: &str, dest: &str) -> anyhow::Result<bool> {
    let a = stepops_sample::digest(source)
        .await
        .context("reading the source for the comparison")?;
    let b = stepops_sample::digest(dest)
        .await
        .context("reading the destination for the comparison")?;
    let mut same = a.len() == b.len();
    println!("independent check (every row of both databases, in key order):");
    for (x, y) in a.iter().zip(&b) {
        let ok = x == y;
        same &= ok;
        println!(
            "  {:<10} source {:>7} rows, destination {:>7} rows: {}",
            x.table,
            x.rows,
            y.rows,
            if ok { "equal" } else { "DIFFERENT" }
        );
    }
    Ok(same)
}

fn sqlite_url(path: &Path) -> String {
    format!("sqlite:{}", path.display())
}
