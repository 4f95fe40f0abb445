//! The stepops migration engine: make a destination stack's tables equal to a source stack's,
//! in idempotent chunks, so that a long migration survives any crash.
//!
//! The three steps a state machine runs, each callable on its own from serialisable inputs
//! (one activity each, possibly on different machines):
//! - [`plan`]: compare both sides (min/max/count and salted whole-row bin checksums computed by
//!   the databases) and cut the differences into [`Chunk`]s (a JSON-lines manifest);
//! - [`copy_chunk`]: in one destination transaction, delete the chunk's key range and insert the
//!   source's rows of that range (streamed, memory bounded);
//! - [`verify`]: re-plan; converged when nothing differs, `Stepops.NotConverged` past the round
//!   limit.
//!
//! [`migrate`] runs the whole loop in one process (the CLI's `stepops migrate`).
//! Stacks: PostgreSQL (`postgres://…`) and SQLite (`sqlite:PATH`); both sides use one engine.

mod config;
pub mod defer;
mod discover;
mod error;
pub mod lease;
mod model;
pub mod ordered;
pub mod own;
pub mod plan;
pub mod postgres;
mod run;
pub mod sqlite;
mod stack;
pub mod status;
mod steps;
pub mod track;

pub use config::{Config, TableConfig};
pub use discover::resolve;
pub use error::{MigrateError, Result};
pub use model::{
    Bin, Chunk, Column, CopyReport, ForeignKey, KeyColumn, KeyKind, KeyRange, KeyStats, KeyValue,
    Plan, PlanOutput, Summary, TableOutput, TablePlan, TableSchema, TableSpec, VerifyReport,
};
pub use run::{MigrateOptions, NoProgress, Progress};
pub use stack::{Stack, quote_ident};
pub use status::{StackStatus, StatusChange, StatusConfig, StatusMechanism, StatusSwitch};
pub use stepops_error::{DatabaseUrl, redact};
pub use steps::{copy_chunk, migrate, plan, stop_tracking, tracking_status, verify, verify_copied};
pub use track::{TrackingConfig, TrackingState, TrackingStatus};

use plan::TablePair;
use postgres::PgStack;
use serde::{Deserialize, Serialize};
use sqlite::SqliteStack;
use std::time::Instant;

/// Default rows per chunk.
pub const DEFAULT_CHUNK_ROWS: u64 = 50_000;
/// Default round limit.
pub const DEFAULT_MAX_ROUNDS: u32 = 5;

/// Options of [`plan`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PlanOptions {
    /// Target rows per chunk.
    pub chunk_rows: u64,
    /// Round number, carried into the plan.
    pub round: u32,
    /// Write nothing at all (with change tracking: no slot is created, no marker recorded).
    #[serde(default)]
    pub dry_run: bool,
    /// With change tracking: the previous comparison of this migration whose chunks have all
    /// been copied ([`Plan::tracking`]); `None` takes the destination's marker.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub baseline: Option<TrackingState>,
}

impl Default for PlanOptions {
    fn default() -> Self {
        PlanOptions {
            chunk_rows: DEFAULT_CHUNK_ROWS,
            round: 1,
            dry_run: false,
            baseline: None,
        }
    }
}

/// Both stacks, of one engine.
#[allow(clippy::large_enum_variant)] // one value per migration
enum Stacks {
    Pg(PgStack, PgStack),
    Sqlite(SqliteStack, SqliteStack),
}

/// Runs `$body` with `$s` and `$d` bound to the source and destination stacks.
macro_rules! with_stacks {
    ($self:expr, |$s:ident, $d:ident| $body:expr) => {
        match &$self.stacks {
            Stacks::Pg($s, $d) => $body,
            Stacks::Sqlite($s, $d) => $body,
        }
    };
}

/// An opened migration: both stacks connected, tables discovered and checked. Nothing is
/// written by [`Migration::open`], [`Migration::plan`] or [`Migration::verify`].
pub struct Migration {
    stacks: Stacks,
    tables: Vec<TableSpec>,
    tracking: Option<TrackingConfig>,
    defer_indexes: bool,
    whole_table_warn_rows: u64,
    cut_over: bool,
    /// [`Config::cut_over_settle_seconds`].
    cut_over_settle: std::time::Duration,
}

impl Migration {
    /// Connects to both stacks, discovers and checks the tables and the access rights
    /// (reading the source, writing the destination) without writing anything.
    ///
    /// Errors: `Stepops.InvalidInput` (bad URL, engines differ, bad config),
    /// `Stepops.Transient` (unreachable), `Stepops.Unauthorized`, `Stepops.NotFound`
    /// (database or file missing), `Stepops.SchemaMismatch`.
    pub async fn open(source: &str, dest: &str, config: &Config) -> Result<Migration> {
        let (s, d) = (DatabaseUrl::parse(source)?, DatabaseUrl::parse(dest)?);
        let stacks = match (&s, &d) {
            (DatabaseUrl::Postgres(a), DatabaseUrl::Postgres(b)) => {
                let (s, d) = (PgStack::new(a, true)?, PgStack::new(b, false)?);
                let (vs, vd) = futures::try_join!(s.server_version(), d.server_version())?;
                // hash_record_extended exists from PostgreSQL 14 on; both sides must agree.
                let record_hash = vs >= 140000 && vd >= 140000;
                s.allow_record_hash(record_hash);
                d.allow_record_hash(record_hash);
                Stacks::Pg(s, d)
            }
            (DatabaseUrl::Sqlite(a), DatabaseUrl::Sqlite(b)) => {
                if std::path::absolute(a).ok() == std::path::absolute(b).ok() {
                    return Err(MigrateError::InvalidInput(format!(
                        "source and destination are the same file ({})",
                        s.redacted()
                    )));
                }
                Stacks::Sqlite(SqliteStack::new(a), SqliteStack::new(b))
            }
            _ => {
                return Err(MigrateError::InvalidInput(format!(
                    "source ({}) is {} but destination ({}) is {}: both sides of a migration must use the same engine",
                    s.redacted(),
                    s.engine(),
                    d.redacted(),
                    d.engine()
                )));
            }
        };
        if config.change_tracking.is_some() && config.cut_over == Some(true) {
            return Err(MigrateError::InvalidInput(
                "cutOver and changeTracking cannot be combined: change tracking already compares only what the source changed; remove one of them from the config".into(),
            ));
        }
        if let Some(t) = &config.change_tracking {
            t.validate()?;
            if !matches!(stacks, Stacks::Pg(..)) {
                return Err(MigrateError::InvalidInput(
                    "changeTracking needs PostgreSQL stacks (it reads the source's logical replication slot); remove it from the config for SQLite".into(),
                ));
            }
        }
        let mut m = Migration {
            stacks,
            tables: Vec::new(),
            tracking: config.change_tracking.clone(),
            defer_indexes: config.defer_indexes.unwrap_or(true),
            whole_table_warn_rows: config.whole_table_warn_rows(),
            cut_over: config.cut_over.unwrap_or(false),
            cut_over_settle: std::time::Duration::from_secs(
                config
                    .cut_over_settle_seconds
                    .unwrap_or(stepops_error::config::DEFAULT_CUT_OVER_SETTLE_SECONDS),
            ),
        };
        m.tables = with_stacks!(m, |s, d| {
            let (a, b, default_schema) = futures::try_join!(
                s.schema(&config.schemas),
                d.schema(&config.schemas),
                s.default_schema()
            )?;
            let tables = resolve(&a, &b, config, is_integer_of(s), &default_schema).map_err(
                |e| match e {
                    MigrateError::NotFound { reason, .. } => MigrateError::NotFound {
                        target: s.describe(),
                        reason,
                    },
                    other => other,
                },
            )?;
            futures::try_join!(
                s.check_access(&tables, false),
                d.check_access(&tables, true)
            )?;
            tables
        });
        Ok(m)
    }

    /// The tables to migrate, parents first.
    pub fn tables(&self) -> &[TableSpec] {
        &self.tables
    }

    /// Compares both sides and cuts the differences into chunks. Writes nothing, except with
    /// change tracking (creating the source's slot on first use; recording the marker when
    /// nothing differs), and then never in a dry run.
    pub async fn plan(&self, options: &PlanOptions) -> Result<Plan> {
        let stamp = self.source_stamp().await?;
        let mut plan = self.compare(options).await?;
        plan.source_stamp = stamp;
        for tp in &mut plan.tables {
            let rows = tp.source.count.max(tp.dest.count);
            if tp.key == KeyKind::Whole && rows > self.whole_table_warn_rows {
                let warning = format!(
                    "{} has no primary key or unique NOT NULL key: it is compared and copied \
                     whole ({rows} rows), so any change re-copies all of it. Add a primary key \
                     (for example `ALTER TABLE {} ADD COLUMN id bigint GENERATED ALWAYS AS \
                     IDENTITY PRIMARY KEY` on both sides) or set its rangeKey in the config",
                    tp.table, tp.table
                );
                tracing::warn!(table = %tp.table, rows, "table without a key is copied whole");
                tp.warning = Some(warning);
            }
        }
        if !options.dry_run && self.defer_indexes {
            self.defer_for_load(&mut plan).await?;
        }
        Ok(plan)
    }

    /// PostgreSQL: drops the secondary indexes of the tables this plan loads into an empty
    /// destination table (recorded; rebuilt by [`Migration::rebuild_indexes`]).
    async fn defer_for_load(&self, plan: &mut Plan) -> Result<()> {
        let Stacks::Pg(_, d) = &self.stacks else {
            return Ok(());
        };
        for tp in &mut plan.tables {
            let empty_load = tp.changed_keys.is_none()
                && tp.dest.count == 0
                && tp.source.count > 0
                && tp.chunks > 0;
            if !empty_load {
                continue;
            }
            if let Some(spec) = self.tables.iter().find(|t| t.name == tp.table) {
                tp.deferred_indexes = d.defer_indexes(spec).await?.len();
            }
        }
        Ok(())
    }

    /// Limits each statement of this migration's PostgreSQL sessions to `seconds` (0: no
    /// limit); the steps use the config's `statementTimeouts`.
    pub fn set_statement_timeout(&self, seconds: u64) {
        if let Stacks::Pg(s, d) = &self.stacks {
            let limit = (seconds > 0).then(|| std::time::Duration::from_secs(seconds));
            s.set_statement_timeout(limit);
            d.set_statement_timeout(limit);
        }
    }

    /// Builds the indexes that a load deferred (see [`defer`]), two at a time; returns how
    /// many. Run after the copies, before comparing again; a no-op when none are pending.
    pub async fn rebuild_indexes(&self) -> Result<usize> {
        let Stacks::Pg(_, d) = &self.stacks else {
            return Ok(0);
        };
        let pending = d.deferred_indexes(&self.tables).await?;
        if pending.is_empty() {
            return Ok(0);
        }
        let started = Instant::now();
        let mut todo = pending.iter();
        let mut running = futures::stream::FuturesUnordered::new();
        loop {
            while running.len() < 2 {
                match todo.next() {
                    Some(ix) => running.push(d.rebuild_index(ix)),
                    None => break,
                }
            }
            match futures::StreamExt::next(&mut running).await {
                Some(r) => r?,
                None => break,
            }
        }
        tracing::info!(
            indexes = pending.len(),
            seconds = started.elapsed().as_secs_f64(),
            "deferred indexes built"
        );
        Ok(pending.len())
    }

    /// The comparison of [`Migration::plan`], without the index deferral.
    async fn compare(&self, options: &PlanOptions) -> Result<Plan> {
        let salt = new_salt();
        if let (Some(tracking), Stacks::Pg(s, d)) = (&self.tracking, &self.stacks) {
            return track::plan(s, d, &self.tables, tracking, options, &salt).await;
        }
        let mut tables = Vec::new();
        let mut chunks = Vec::new();
        for table in &self.tables {
            let (tp, mut cs) = with_stacks!(self, |s, d| {
                ordered::plan_any(TablePair::new(s, d, table, &salt, options.chunk_rows)).await?
            });
            tracing::debug!(table = %table.name, chunks = cs.len(), rows = tp.estimated_rows, "planned");
            tables.push(tp);
            chunks.append(&mut cs);
        }
        Ok(Plan {
            round: options.round,
            tables,
            chunks,
            tracking: None,
            source_stamp: None,
        })
    }

    /// Whether this migration runs in cut-over mode (`cutOver` in the config).
    pub fn is_cut_over(&self) -> bool {
        self.cut_over
    }

    /// The source's write stamp over the migrated tables, taken before every comparison that
    /// is not change tracking's: in cut-over mode (refused when the source keeps no write
    /// statistics) and in an untracked run, where it lets the verification compare only the
    /// copied ranges when the source stayed quiet ([`Migration::compare_after_copies`];
    /// `None` when the source keeps no write statistics). `None` with change tracking.
    async fn source_stamp(&self) -> Result<Option<String>> {
        if self.tracking.is_some() {
            return Ok(None);
        }
        match with_stacks!(self, |s, _d| s.write_stamp(&self.tables).await) {
            Ok(stamp) => Ok(Some(stamp)),
            Err(MigrateError::InvalidInput(_)) if !self.cut_over => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// The cut-over check's patience with late write statistics: [`Self::cut_over_settle`],
    /// waited for or not.
    fn settle(&self, wait: bool) -> stack::Settle {
        stack::Settle {
            within: self.cut_over_settle,
            wait,
        }
    }

    /// The comparison after a round's copies (`plan`: the round's plan, its chunks all
    /// copied). Only the copied ranges are compared again ([`Migration::compare_copied`])
    /// when the source is known not to have been written since `plan`'s comparison began:
    /// in cut-over mode that is required (waiting for late write statistics), in an untracked
    /// run it is checked without waiting, and when a write cannot be ruled out (or the plan
    /// has no stamp) both sides are compared in full, as [`Migration::plan`] does. Returns the
    /// comparison and whether it covered only the copied ranges.
    ///
    /// Errors: as [`Migration::compare_copied`] in cut-over mode, as [`Migration::plan`]
    /// otherwise.
    pub async fn compare_after_copies(&self, plan: &Plan, chunk_rows: u64) -> Result<(Plan, bool)> {
        if self.cut_over {
            return Ok((self.compare_copied(plan, chunk_rows).await?, true));
        }
        let quiet = match &plan.source_stamp {
            Some(before) => !with_stacks!(self, |s, _d| s
                .written_since(&self.tables, before, self.settle(false))
                .await?),
            None => false,
        };
        if quiet {
            tracing::info!(
                "the source was not written since the plan: comparing only the copied ranges"
            );
            return Ok((self.compare_ranges_of(plan, chunk_rows).await?, true));
        }
        let full = self
            .plan(&PlanOptions {
                chunk_rows,
                round: plan.round + 1,
                dry_run: false,
                baseline: None,
            })
            .await?;
        Ok((full, false))
    }

    /// Cut-over mode: compares again only what `plan`'s chunks copied (the exact key ranges of
    /// integer-keyed tables; tables with other keys that had chunks, in full), after checking
    /// that the source's write stamp is still the plan's (waiting, when needed, for late write
    /// statistics). Returns the differences as a plan for the next round (empty: converged).
    ///
    /// Errors: `Stepops.Conflict` when the source was written since the plan (the cut-over's
    /// premise is broken: run again without `cutOver`, or quiesce the source first);
    /// `Stepops.InvalidInput` when not in cut-over mode or the plan has no stamp.
    pub async fn compare_copied(&self, plan: &Plan, chunk_rows: u64) -> Result<Plan> {
        let (Some(before), true) = (&plan.source_stamp, self.cut_over) else {
            return Err(MigrateError::InvalidInput(
                "comparing only the copied ranges needs cutOver in the config and the plan's sourceStamp".into(),
            ));
        };
        let written = with_stacks!(self, |s, _d| s
            .written_since(&self.tables, before, self.settle(true))
            .await?);
        if written {
            return Err(MigrateError::Conflict(
                "the source was written during a cut-over run (its write statistics changed since the plan): the copied ranges alone cannot prove the tables equal. Stop the source's writers and run again, or run without cutOver".into(),
            ));
        }
        self.compare_ranges_of(plan, chunk_rows).await
    }

    /// Compares again only what `plan`'s chunks copied; the caller has established that the
    /// source was not written since `plan`'s comparison began.
    async fn compare_ranges_of(&self, plan: &Plan, chunk_rows: u64) -> Result<Plan> {
        let salt = new_salt();
        let mut out = Plan {
            round: plan.round + 1,
            tables: Vec::new(),
            chunks: Vec::new(),
            tracking: None,
            source_stamp: plan.source_stamp.clone(),
        };
        for table in &self.tables {
            let copied: Vec<&Chunk> = plan
                .chunks
                .iter()
                .filter(|c| c.table == table.name)
                .collect();
            if copied.is_empty() {
                continue;
            }
            let (tp, mut cs) = if table.key == KeyKind::Integer {
                let ranges = merged_ranges(&copied);
                // (Keys may span the whole i64 range: no overflow.)
                let keys = ranges.iter().fold(0u64, |n, &(lo, hi)| {
                    n.saturating_add(hi.abs_diff(lo).saturating_add(1))
                });
                with_stacks!(self, |s, d| {
                    plan::plan_ranges(
                        TablePair::new(s, d, table, &salt, chunk_rows),
                        &ranges,
                        keys,
                    )
                    .await?
                })
            } else {
                with_stacks!(self, |s, d| {
                    ordered::plan_any(TablePair::new(s, d, table, &salt, chunk_rows)).await?
                })
            };
            out.tables.push(tp);
            out.chunks.append(&mut cs);
        }
        Ok(out)
    }

    /// Copies one chunk: one destination transaction (delete the range, insert the source's
    /// rows). Idempotent: repeating it, also after a crash, is always safe.
    pub async fn copy_chunk(&self, chunk: &Chunk) -> Result<CopyReport> {
        let table = self
            .tables
            .iter()
            .find(|t| t.name == chunk.table)
            .ok_or_else(|| {
                MigrateError::InvalidInput(format!(
                    "chunk names table {:?}, which is not part of this migration",
                    chunk.table
                ))
            })?;
        let started = Instant::now();
        let (deleted, inserted) = if table.key == KeyKind::Integer {
            let ranges = checked_integer_ranges(table, chunk)?;
            with_stacks!(self, |s, d| d.copy_ranges(s, table, &ranges).await?)
        } else {
            let ranges = checked_key_ranges(table, chunk)?;
            with_stacks!(self, |s, d| d.copy_keys(s, table, ranges).await?)
        };
        Ok(CopyReport {
            table: chunk.table.clone(),
            min: chunk.min,
            max: chunk.max,
            rows_deleted: deleted,
            rows_inserted: inserted,
            duration_ms: started.elapsed().as_millis() as u64,
        })
    }

    /// Sets the destination's sequences (serial / identity columns of the migrated tables) to
    /// the source's values; run it once converged. Returns how many were set.
    pub async fn sync_sequences(&self) -> Result<u32> {
        with_stacks!(self, |s, d| d.sync_sequences(s, &self.tables).await)
    }

    /// Re-plans and reports whether both sides are equal; fails `Stepops.NotConverged` when
    /// they still differ and `round >= max_rounds`. With change tracking, `baseline` is the
    /// round's plan ([`Plan::tracking`], its chunks copied): only what the source changed
    /// since is compared, and equality records the marker.
    pub async fn verify(
        &self,
        round: u32,
        max_rounds: u32,
        baseline: Option<&TrackingState>,
    ) -> Result<VerifyReport> {
        self.rebuild_indexes().await?;
        let plan = self
            .plan(&PlanOptions {
                chunk_rows: DEFAULT_CHUNK_ROWS,
                round,
                dry_run: false,
                baseline: baseline.cloned(),
            })
            .await?;
        self.report(round, max_rounds, &plan).await
    }

    /// [`Migration::verify`] after a round planned with a source stamp (cut-over mode, or an
    /// untracked run): `copied` is the round's plan (its `sourceStamp` and chunks, all
    /// copied); only those ranges are compared again when the source stayed quiet
    /// ([`Migration::compare_after_copies`]), both sides in full otherwise.
    pub async fn verify_copied(
        &self,
        round: u32,
        max_rounds: u32,
        copied: &Plan,
    ) -> Result<VerifyReport> {
        self.rebuild_indexes().await?;
        let (plan, copied_only) = self
            .compare_after_copies(copied, DEFAULT_CHUNK_ROWS)
            .await?;
        let mut report = self.report(round, max_rounds, &plan).await?;
        report.compared_copied_only = copied_only;
        Ok(report)
    }

    /// The verification's verdict on a comparison: `Stepops.NotConverged` at the round limit,
    /// the sequences synced once equal.
    async fn report(&self, round: u32, max_rounds: u32, plan: &Plan) -> Result<VerifyReport> {
        let differing = plan.differing_tables();
        if !differing.is_empty() && round >= max_rounds {
            return Err(MigrateError::NotConverged {
                rounds: round,
                tables: differing,
            });
        }
        // Converged: the destination can take over, so its sequences must not hand out keys
        // that the copied rows already hold.
        let sequences_synced = if differing.is_empty() {
            self.sync_sequences().await?
        } else {
            0
        };
        Ok(VerifyReport {
            converged: differing.is_empty(),
            round,
            differing_tables: differing,
            sequences_synced,
            compared_copied_only: false,
        })
    }
}

/// The ranges of a chunk of a table with an integer key: inside the chunk, disjoint and
/// ascending, and no key ranges of another kind of table.
fn checked_integer_ranges(table: &TableSpec, chunk: &Chunk) -> Result<Vec<(i64, i64)>> {
    if chunk.whole_table || !chunk.keys.is_empty() {
        return Err(MigrateError::InvalidInput(format!(
            "chunk of {} carries key ranges or wholeTable, but {} is keyed by the integer column {}: the manifest was made for another schema; plan again",
            chunk.table, chunk.table, table.range_key
        )));
    }
    if chunk.min > chunk.max {
        return Err(MigrateError::InvalidInput(format!(
            "chunk of {} has min {} > max {}",
            chunk.table, chunk.min, chunk.max
        )));
    }
    let ranges = chunk.key_ranges();
    let mut prev: Option<i64> = None;
    for &(lo, hi) in &ranges {
        if lo > hi || lo < chunk.min || hi > chunk.max || prev.is_some_and(|p| lo <= p) {
            return Err(MigrateError::InvalidInput(format!(
                "chunk of {} ({}..{}) has range [{lo}, {hi}] that is empty, outside the chunk or not after the previous one: ranges must be disjoint and ascending",
                chunk.table, chunk.min, chunk.max
            )));
        }
        prev = Some(hi);
    }
    Ok(ranges)
}

/// The key ranges of a chunk of a table without an integer key, checked against the table:
/// `None` copies the whole table (a table without a key).
fn checked_key_ranges<'a>(table: &TableSpec, chunk: &'a Chunk) -> Result<Option<&'a [KeyRange]>> {
    let bad = |why: String| {
        Err(MigrateError::InvalidInput(format!(
            "chunk of {}: {why}: the manifest was made for another schema or by hand; plan again",
            chunk.table
        )))
    };
    if !chunk.ranges.is_empty() {
        return bad(format!(
            "it carries integer ranges, but {} has no integer key",
            chunk.table
        ));
    }
    match table.key {
        KeyKind::Whole if chunk.whole_table && chunk.keys.is_empty() => Ok(None),
        KeyKind::Whole => bad(format!(
            "{} has no key and is copied whole: expected wholeTable: true and no keys",
            chunk.table
        )),
        _ if chunk.whole_table || chunk.keys.is_empty() => bad(format!(
            "{} is keyed by ({}): expected keys and no wholeTable",
            chunk.table, table.range_key
        )),
        _ => {
            let width = table.key_columns.len();
            for r in &chunk.keys {
                let shape_ok = match &r.key {
                    Some(_) => r.from.is_none() && r.until.is_none(),
                    None => true,
                };
                if !shape_ok || r.values().any(|k| k.0.len() != width) {
                    return bad(format!(
                        "a key range is not one key or a from/until span of {width}-column keys"
                    ));
                }
            }
            Ok(Some(&chunk.keys))
        }
    }
}

fn is_integer_of<S: Stack>(_: &S) -> fn(&str) -> bool {
    S::is_integer_type
}

/// The key ranges of integer chunks, sorted and with overlapping or adjacent ones merged.
fn merged_ranges(chunks: &[&Chunk]) -> Vec<(i64, i64)> {
    let mut all: Vec<(i64, i64)> = chunks.iter().flat_map(|c| c.key_ranges()).collect();
    all.sort_unstable();
    let mut out: Vec<(i64, i64)> = Vec::with_capacity(all.len());
    for (lo, hi) in all {
        match out.last_mut() {
            Some(last) if lo <= last.1.saturating_add(1) => last.1 = last.1.max(hi),
            _ => out.push((lo, hi)),
        }
    }
    // The bin queries need each range's width to fit an i64: one spanning more keys (from
    // below zero to far above it) is compared as its negative and its non-negative half.
    out.into_iter()
        .flat_map(|(lo, hi)| match hi.checked_sub(lo) {
            Some(_) => vec![(lo, hi)],
            None => vec![(lo, -1), (0, hi)],
        })
        .collect()
}

/// A fresh random salt (hex): a new one per plan, so no stale checksum can ever match.
pub fn new_salt() -> String {
    format!("{:032x}", rand::random::<u128>())
}
