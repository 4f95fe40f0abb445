//! `stepops sample`: build the sample schema and fill it with deterministic data
//! (the work is `stepops_sample`'s).

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

use stepops_sample::{Counts, SampleError, SampleSpec, TABLES};

const LONG_ABOUT: &str = "\
Create the sample schema in a database and fill it with realistic, deterministic data.

Tables (parents first): users, projects (-> users), entities (-> projects; a tree through
parent_id), acl (-> entities, users; primary key (entity_id, principal_id, access): a child table
whose range key is entity_id), events (sparse keys with huge gaps, up to about 10^15).
--rows is the total over all tables: users 5%, projects 1%, entities 40%, acl 30%, events 24%.
Values are chosen to break encoders: any Unicode (emoji, RTL, combining marks), quotes,
backslashes, tabs and newlines, empty and NULL blobs, NaN, +-Infinity, -0.0, extreme numerics,
JSON, uuids, arrays with NULLs. The same --seed and --rows always give the same data.

PostgreSQL is loaded with COPY (tables in parallel, keys and foreign keys added afterwards);
SQLite in one transaction. An existing sample is refused unless --replace is given.

Examples:
  stepops sample --out sqlite:source.db --rows 100000
  stepops sample --out postgres://postgres@127.0.0.1:5432/source --rows 5000000 --seed 7
  (prefer STEPOPS_SAMPLE_OUT or ~/.pgpass to a password on the command line)";

/// Arguments of `stepops sample`.
#[derive(clap::Args, Debug)]
#[command(long_about = LONG_ABOUT)]
pub struct SampleArgs {
    /// Where to build it: sqlite:PATH or postgres://USER@HOST:PORT/DB.
    #[arg(
        long,
        env = "STEPOPS_SAMPLE_OUT",
        hide_env_values = true,
        value_name = "URL"
    )]
    pub out: String,
    /// Total rows over all tables.
    #[arg(long, default_value_t = 100_000, value_name = "N")]
    pub rows: u64,
    /// Seed of the generated data.
    #[arg(long, default_value_t = 1, value_name = "S")]
    pub seed: u64,
    /// Drop existing sample tables first.
    #[arg(long)]
    pub replace: bool,
}

/// Runs `stepops sample` (a sample error's `Stepops.*` name gives the exit code).
pub async fn run(args: SampleArgs) -> anyhow::Result<()> {
    Ok(execute(&args).await?)
}

async fn execute(args: &SampleArgs) -> Result<(), SampleError> {
    let target = stepops_sample::DatabaseUrl::parse(&args.out)?;
    let counts = Counts::for_total(args.rows);
    eprintln!(
        "sample: {} rows (seed {}) into {}: {}",
        counts.total(),
        args.seed,
        target.redacted(),
        TABLES
            .iter()
            .map(|t| format!("{t} {}", counts.of(t)))
            .collect::<Vec<_>>()
            .join(", ")
    );
    let started = Instant::now();
    let done_total = Arc::new(AtomicU64::new(0));
    let last_line = Arc::new(AtomicU64::new(0));
    let per_table: Arc<std::sync::Mutex<std::collections::HashMap<String, u64>>> = Arc::default();
    let progress: stepops_sample::Progress = Arc::new(move |table, done, total| {
        let mut map = per_table.lock().expect("progress lock");
        let prev = map.insert(table.to_owned(), done).unwrap_or(0);
        if done == prev && done != 0 {
            return; // the table's final report repeats its last checkpoint
        }
        let all = done_total.fetch_add(done - prev, Ordering::Relaxed) + done - prev;
        let secs = started.elapsed().as_secs_f64();
        let now_tenths = (secs * 10.0) as u64;
        // At most a line per 2 s, plus one at the end of each table.
        if done == total || now_tenths >= last_line.load(Ordering::Relaxed) + 20 {
            last_line.store(now_tenths, Ordering::Relaxed);
            eprintln!(
                "sample: {table} {done}/{total}; all tables {all} rows, {:.0} rows/s",
                all as f64 / secs.max(0.001)
            );
        }
    });
    let report = stepops_sample::sample(
        &args.out,
        SampleSpec {
            rows: args.rows,
            seed: args.seed,
            replace: args.replace,
            progress: Some(progress),
        },
    )
    .await?;
    println!(
        "sample: {} rows in {:.1} s ({:.0} rows/s, keys and indexes included) into {}",
        report.counts.total(),
        report.seconds,
        report.counts.total() as f64 / report.seconds.max(0.001),
        target.redacted()
    );
    Ok(())
}
