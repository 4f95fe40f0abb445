//! `stepops migrate`: make a destination stack's tables equal to a source stack's.
//! Parses arguments, draws progress, prints the plan or the summary; the work is
//! `stepops_migrate`'s.

use anyhow::Context as _;
use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};
use std::collections::HashMap;
use std::io::IsTerminal;
use std::path::PathBuf;
use std::sync::Mutex;
use std::time::{Duration, Instant};
use stepops_migrate::{
    Chunk, Config, CopyReport, KeyKind, MigrateError, MigrateOptions, Migration, Plan, PlanOptions,
    Progress, Summary,
};

const LONG_ABOUT: &str = "\
Make the destination's tables equal to the source's, in chunks that can each be retried.

How it works: every table with an integer range key (its single integer primary key, or for a
child table the parent id its primary key starts with) is compared on both sides with salted
checksums over whole rows, computed inside each database. Rows missing on either side and every
differing key range become chunks of about --chunk-rows rows. Each chunk is copied in one
destination transaction (delete the range, insert the source's rows), so re-running after a
crash is always safe. Then it compares again, because the source may have changed meanwhile,
up to --max-rounds rounds; it fails with Stepops.NotConverged if the source keeps changing.

Both sides must use the same engine and the destination must already have the schema.
Nothing is written before every check passed (reachability, credentials, privileges, tables,
columns and types, usable keys). Passwords are never printed. See docs/migration.md.

URLs:  postgres://USER[:PASSWORD]@HOST[:PORT]/DB    sqlite:PATH
       (prefer STEPOPS_SOURCE / STEPOPS_DEST or a ~/.pgpass file to a password on the command line)

Config (YAML, optional):
  include: [users, projects, entities, acl]   # default: every table
  exclude: [audit_log]
  tables:
    acl: {rangeKey: entity_id}                # a child table moves with its parent's ids
  changeTracking: {slot: stepops_dev}         # PostgreSQL: see Change tracking below

Change tracking (PostgreSQL, --track SLOT or changeTracking in the config): stepops keeps a
logical replication slot on the source and, once a run has converged, compares only the rows
the source changed since (read from the slot), not every row: a re-sync after a few changes
takes a fraction of a full comparison, and a first copy needs no full verification pass. The
source needs wal_level = logical and a role with REPLICATION; the destination must be written
by stepops only (--full-check compares everything once). The slot keeps WAL on the source
until the next run: --tracking-status shows how much, --stop-tracking drops it.

Examples:
  stepops migrate --source sqlite:prod.db --dest sqlite:next.db
  stepops migrate --source postgres://app@old/app --dest postgres://app@new/app --jobs 8
  stepops migrate --source sqlite:a.db --dest sqlite:b.db --dry-run --plan-out plan.jsonl
  stepops migrate --source postgres://app@old/app --dest postgres://app@new/app --track stepops_dev
  stepops migrate --source … --dest … --track stepops_dev --tracking-status

Exit codes: 0 equal, 2 invalid input, 75 transient (retry), 77 unauthorized, 1 otherwise.";

/// Arguments of `stepops migrate`.
#[derive(clap::Args, Debug)]
#[command(long_about = LONG_ABOUT)]
pub struct MigrateArgs {
    /// Source stack URL: postgres://… or sqlite:PATH (read only).
    #[arg(
        long,
        env = "STEPOPS_SOURCE",
        hide_env_values = true,
        value_name = "URL"
    )]
    pub source: String,
    /// Destination stack URL (same engine as the source; the schema must exist).
    #[arg(long, env = "STEPOPS_DEST", hide_env_values = true, value_name = "URL")]
    pub dest: String,
    /// YAML config: include/exclude tables, per-table rangeKey.
    #[arg(long, value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// Target rows per chunk (one destination transaction each).
    #[arg(long, default_value_t = stepops_migrate::DEFAULT_CHUNK_ROWS, value_name = "N")]
    pub chunk_rows: u64,
    /// Chunks copied concurrently.
    #[arg(long, default_value_t = 4, value_name = "N")]
    pub jobs: usize,
    /// Rounds of plan → copy before giving up (Stepops.NotConverged).
    #[arg(long, default_value_t = stepops_migrate::DEFAULT_MAX_ROUNDS, value_name = "N")]
    pub max_rounds: u32,
    /// Print the plan and write nothing.
    #[arg(long)]
    pub dry_run: bool,
    /// Write the first round's plan as a JSON-lines manifest (one chunk per line) to FILE.
    #[arg(long, value_name = "FILE")]
    pub plan_out: Option<PathBuf>,
    /// Print the plan (with --dry-run) or the summary as JSON on stdout.
    #[arg(long)]
    pub json: bool,
    /// Change tracking through this logical replication slot on the (PostgreSQL) source,
    /// created on first use; the same as `changeTracking: {slot: SLOT}` in the config.
    #[arg(long, value_name = "SLOT")]
    pub track: Option<String>,
    /// With change tracking: compare every row this time (as without tracking) and record a
    /// fresh marker when equal.
    #[arg(long)]
    pub full_check: bool,
    /// The source is quiesced for this run (its writers stopped): after the copies compare
    /// only the copied ranges (waiting for late write statistics when needed), and fail
    /// Stepops.Conflict if the source is seen to change. Without it an untracked run does the
    /// same when it can prove the source quiet at once, and compares in full otherwise. The
    /// same as `cutOver: true` in the config (docs/migration.md, "Verifying only what was
    /// copied").
    #[arg(long)]
    pub cut_over: bool,
    /// With change tracking: print the slot (WAL it keeps on the source) and the destination's
    /// marker as JSON, and change nothing.
    #[arg(long, conflicts_with_all = ["stop_tracking", "dry_run"])]
    pub tracking_status: bool,
    /// With change tracking: drop the source's slot and the destination's marker (the next
    /// tracked run compares every row again), and copy nothing.
    #[arg(long, conflicts_with = "dry_run")]
    pub stop_tracking: bool,
}

/// Runs `stepops migrate` (a migration error's `Stepops.*` name gives the exit code).
pub async fn run(args: MigrateArgs) -> anyhow::Result<()> {
    let args = &args;
    if args.chunk_rows == 0 || args.jobs == 0 || args.max_rounds == 0 {
        return Err(MigrateError::InvalidInput(
            "--chunk-rows, --jobs and --max-rounds must be at least 1".into(),
        )
        .into());
    }
    let mut config = match &args.config {
        Some(path) => Config::load(path)?,
        None => Config::default(),
    };
    if let Some(slot) = &args.track {
        let tracking = stepops_migrate::TrackingConfig {
            slot: slot.clone(),
            full_check: false,
        };
        tracking.validate()?;
        if config
            .change_tracking
            .as_ref()
            .is_some_and(|t| t.slot != *slot)
        {
            return Err(MigrateError::InvalidInput(format!(
                "--track {slot} and the config's changeTracking.slot differ: give one"
            ))
            .into());
        }
        config.change_tracking.get_or_insert(tracking);
    }
    if args.cut_over {
        config.cut_over = Some(true);
    }
    let tracking_flag = args.full_check || args.tracking_status || args.stop_tracking;
    if tracking_flag && config.change_tracking.is_none() {
        return Err(MigrateError::InvalidInput(
            "--full-check, --tracking-status and --stop-tracking need change tracking: give --track SLOT or changeTracking in the config".into(),
        )
        .into());
    }
    if args.full_check
        && let Some(t) = config.change_tracking.as_mut()
    {
        t.full_check = true;
    }
    if args.tracking_status {
        let status = stepops_migrate::tracking_status(&args.source, &args.dest, &config).await?;
        println!("{}", serde_json::to_string_pretty(&status)?);
        return Ok(());
    }
    if args.stop_tracking {
        let (slot, marker) =
            stepops_migrate::stop_tracking(&args.source, &args.dest, &config).await?;
        eprintln!(
            "change tracking stopped: slot {} on the source, marker {} on the destination",
            if slot { "dropped" } else { "was not there" },
            if marker { "deleted" } else { "was not there" }
        );
        return Ok(());
    }
    let options = MigrateOptions {
        chunk_rows: args.chunk_rows,
        jobs: args.jobs,
        max_rounds: args.max_rounds,
        dry_run: args.dry_run,
        ..MigrateOptions::default()
    };
    let migration = Migration::open(&args.source, &args.dest, &config).await?;
    if args.dry_run || args.plan_out.is_some() {
        let plan = migration
            .plan(&PlanOptions {
                chunk_rows: args.chunk_rows,
                round: 1,
                // Only printed or saved: the run below plans for itself.
                dry_run: true,
                baseline: None,
            })
            .await?;
        if let Some(path) = &args.plan_out {
            std::fs::write(path, plan.to_manifest())
                .with_context(|| format!("cannot write {}", path.display()))?;
            eprintln!("wrote {} chunk(s) to {}", plan.chunks.len(), path.display());
        }
        if args.dry_run {
            if args.json {
                println!("{}", serde_json::to_string_pretty(&plan)?);
            } else {
                print_plan(&plan);
            }
            return Ok(());
        }
    }
    let summary = run_with_progress(&migration, &options).await?;
    if args.json {
        println!("{}", serde_json::to_string_pretty(&summary)?);
    } else {
        print_summary(&summary);
    }
    Ok(())
}

/// Runs a whole migration with progress bars on a terminal (log lines otherwise). Usable by
/// other commands (for example a demo) that already opened a [`Migration`].
pub async fn run_with_progress(
    migration: &Migration,
    options: &MigrateOptions,
) -> Result<Summary, MigrateError> {
    let progress = CliProgress::new(std::io::stderr().is_terminal());
    let result = migration.run(options, &progress).await;
    progress.finish();
    result
}

/// Prints a plan as a table.
pub fn print_plan(plan: &Plan) {
    println!(
        "{:<24} {:<14} {:>12} {:>12} {:>8} {:>14}",
        "table", "range key", "source rows", "dest rows", "chunks", "rows to copy"
    );
    for t in &plan.tables {
        let key = match t.key {
            KeyKind::Whole => "whole table (no key)",
            _ => t.range_key.as_str(),
        };
        let (src, dst) = match t.changed_keys {
            // Change tracking compared only the changed keys: no row counts were taken.
            Some(n) => (format!("{n} changed"), "-".to_owned()),
            None => (t.source.count.to_string(), t.dest.count.to_string()),
        };
        println!(
            "{:<24} {:<14} {:>12} {:>12} {:>8} {:>14}",
            t.table, key, src, dst, t.chunks, t.estimated_rows
        );
    }
    for w in plan.tables.iter().filter_map(|t| t.warning.as_ref()) {
        println!("warning: {w}");
    }
    if plan.in_sync() {
        println!("source and destination are equal: nothing to copy");
    } else {
        println!(
            "{} chunk(s), about {} row(s) to copy (dry run: nothing written)",
            plan.chunks.len(),
            plan.estimated_rows()
        );
    }
}

/// Prints the final summary.
pub fn print_summary(s: &Summary) {
    println!(
        "migrated {} table(s) in {} round(s): {} chunk(s), {} row(s) copied, {} row(s) deleted, {} sequence(s) set, {:.1} s{}",
        s.tables,
        s.rounds,
        s.chunks,
        s.rows_copied,
        s.rows_deleted,
        s.sequences_synced,
        s.duration_seconds,
        if s.verified_copied_only {
            "; verified by comparing only the copied ranges (the source was not written meanwhile)"
        } else {
            ""
        }
    );
}

/// Progress bars (terminal) or throttled log lines (anything else).
struct CliProgress {
    tty: bool,
    multi: MultiProgress,
    state: Mutex<State>,
}

struct State {
    overall: Option<ProgressBar>,
    tables: HashMap<String, ProgressBar>,
    round_started: Instant,
    last_log: Instant,
    rows: u64,
    total: u64,
    chunks_done: usize,
    chunks_total: usize,
}

fn style(prefix_width: usize) -> ProgressStyle {
    ProgressStyle::with_template(&format!(
        "{{prefix:>{prefix_width}}} [{{bar:32.cyan/blue}}] {{human_pos:>11}}/{{human_len:<11}} rows {{rate:>14}} ETA {{eta}}"
    ))
    .expect("valid template")
    .with_key(
        "rate",
        |state: &indicatif::ProgressState, w: &mut dyn std::fmt::Write| {
            let _ = write!(w, "{:.0} rows/s", state.per_sec());
        },
    )
    .progress_chars("=> ")
}

impl CliProgress {
    fn new(tty: bool) -> Self {
        let multi = MultiProgress::with_draw_target(if tty {
            ProgressDrawTarget::stderr()
        } else {
            ProgressDrawTarget::hidden()
        });
        CliProgress {
            tty,
            multi,
            state: Mutex::new(State {
                overall: None,
                tables: HashMap::new(),
                round_started: Instant::now(),
                last_log: Instant::now(),
                rows: 0,
                total: 0,
                chunks_done: 0,
                chunks_total: 0,
            }),
        }
    }

    fn finish(&self) {
        let st = self.state.lock().expect("progress lock");
        for bar in st.tables.values() {
            bar.finish();
        }
        if let Some(o) = &st.overall {
            o.finish();
        }
    }
}

impl Progress for CliProgress {
    fn planned(&self, plan: &Plan) {
        let mut st = self.state.lock().expect("progress lock");
        // Bars of the previous round stay on screen, finished.
        for bar in st.tables.drain().map(|(_, b)| b) {
            bar.finish();
        }
        if let Some(o) = st.overall.take() {
            o.finish();
        }
        st.round_started = Instant::now();
        st.rows = 0;
        st.total = plan.estimated_rows();
        st.chunks_done = 0;
        st.chunks_total = plan.chunks.len();
        let label = if plan.in_sync() {
            "in sync".to_string()
        } else {
            format!(
                "round {}: {} chunk(s), ~{} row(s) to copy",
                plan.round,
                plan.chunks.len(),
                plan.estimated_rows()
            )
        };
        if !self.tty {
            tracing::info!(
                round = plan.round,
                chunks = plan.chunks.len(),
                estimated_rows = plan.estimated_rows(),
                "{label}"
            );
            for t in plan.tables.iter().filter(|t| t.chunks > 0) {
                tracing::info!(table = %t.table, chunks = t.chunks, estimated_rows = t.estimated_rows, source_rows = t.source.count, dest_rows = t.dest.count, "to copy");
            }
            return;
        }
        let _ = self.multi.println(label);
        if plan.in_sync() {
            return;
        }
        let width = plan
            .tables
            .iter()
            .map(|t| t.table.len())
            .max()
            .unwrap_or(5)
            .max(5);
        let overall = self
            .multi
            .add(ProgressBar::new(plan.estimated_rows().max(1)));
        overall.set_style(style(width));
        overall.set_prefix("all");
        overall.enable_steady_tick(Duration::from_millis(200));
        for t in plan.tables.iter().filter(|t| t.chunks > 0) {
            let bar = self.multi.add(ProgressBar::new(t.estimated_rows.max(1)));
            bar.set_style(style(width));
            bar.set_prefix(t.table.clone());
            st.tables.insert(t.table.clone(), bar);
        }
        st.overall = Some(overall);
    }

    fn chunk_done(&self, chunk: &Chunk, report: &CopyReport) {
        let mut st = self.state.lock().expect("progress lock");
        // Count the larger of inserted and deleted rows: a chunk that only deletes moves too.
        let moved = report.rows_inserted.max(report.rows_deleted);
        st.rows += moved;
        st.chunks_done += 1;
        if self.tty {
            for bar in [st.tables.get(&chunk.table), st.overall.as_ref()]
                .into_iter()
                .flatten()
            {
                if bar.position() + moved > bar.length().unwrap_or(0) {
                    bar.set_length(bar.position() + moved);
                }
                bar.inc(moved);
            }
            return;
        }
        let now = Instant::now();
        if now.duration_since(st.last_log) >= Duration::from_secs(2)
            || st.chunks_done == st.chunks_total
        {
            st.last_log = now;
            let secs = now.duration_since(st.round_started).as_secs_f64().max(1e-3);
            let rate = st.rows as f64 / secs;
            let eta = if rate > 0.0 && st.total > st.rows {
                (st.total - st.rows) as f64 / rate
            } else {
                0.0
            };
            tracing::info!(
                chunks_done = st.chunks_done,
                chunks = st.chunks_total,
                rows = st.rows,
                estimated_rows = st.total,
                rows_per_second = rate.round() as u64,
                eta_seconds = eta.round() as u64,
                last_table = %chunk.table,
                "copying: {}/{} chunks, {} rows, {:.0} rows/s, ETA {:.0} s",
                st.chunks_done,
                st.chunks_total,
                st.rows,
                rate,
                eta
            );
        }
    }

    fn chunk_retry(&self, chunk: &Chunk, error: &MigrateError) {
        let msg = format!("retrying chunk {} {}: {error}", chunk.table, chunk.bounds());
        if self.tty {
            let _ = self.multi.println(msg);
        } else {
            tracing::warn!("{msg}");
        }
    }
}
