//! The migration steps of `docs/dev/pipeline-steps.md`: `plan`, `copy`, `verify`,
//! `set-status`, `release`. [`MigrationHandler`] parses and checks each step's arguments, resolves the
//! targets to database URLs, calls a [`MigrationEngine`] (the database work) and shapes the
//! output; `plan` also writes the chunk manifest (JSON lines) to the object store, and `verify`
//! adds up the round's copy results from the copy Map's `ResultWriter` files
//! ([`crate::results`]).

use std::future::Future;
use std::sync::Arc;
use std::time::Instant;

use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use stepops_error::ErrorName;
use tracing::{info, warn};

use crate::journal::StoreJournal;
use crate::results::{RoundTotals, round_totals};
use crate::secrets::{Resolver, Secret, SecretSource, target_arg};
use crate::step::{StepError, StepHandler};
use crate::store::ObjectStore;

mod args;
mod status_record;

use args::{baseline_arg, bool_arg, config_arg, results_arg, str_field, totals_arg, u64_arg};

/// One chunk: a manifest line and the `copy` step's `chunk` argument (the engine's own type,
/// so a field the planner adds is carried without a second edit).
pub use stepops_migrate::Chunk as ChunkSpec;

/// One table's line of a plan's output.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TableSummary {
    /// Table name.
    pub table: String,
    /// Chunks planned.
    pub chunks: usize,
    /// Rows those chunks are expected to move.
    pub estimated_rows: u64,
}

/// What planning one round found.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct PlanOutcome {
    /// Per table, in dependency order.
    pub tables: Vec<TableSummary>,
    /// Chunks to copy, parents first.
    pub chunks: Vec<ChunkSpec>,
    /// With change tracking: the baseline for the step after this plan's copies
    /// (`stepops_migrate::TrackingState` as JSON), passed back as `baseline`.
    pub tracking: Option<Value>,
    /// Without change tracking: the source's write stamp at the plan, passed back to
    /// `verify` as `sourceStamp`.
    pub source_stamp: Option<String>,
}

/// A round planned with a source stamp: its plan as the `verify` step reads it back (its source stamp
/// and the chunks of its manifest, all copied by then).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CopiedRound {
    /// The plan's `sourceStamp`.
    pub source_stamp: String,
    /// The plan's chunks (its manifest).
    pub chunks: Vec<ChunkSpec>,
}

/// The `plan` step's options besides the targets and the config.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct PlanRequest {
    /// Target rows per chunk.
    pub chunk_rows: u64,
    /// Round number.
    pub round: u32,
    /// Write nothing (with change tracking: no slot created, no marker recorded).
    pub dry_run: bool,
    /// With change tracking: the previous plan's `tracking` (its chunks copied).
    pub baseline: Option<Value>,
}

/// What copying one chunk did.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct CopyOutcome {
    /// Destination rows deleted.
    pub rows_deleted: u64,
    /// Source rows inserted.
    pub rows_inserted: u64,
}

/// What a verification found.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct VerifyOutcome {
    /// Tables still different (empty: converged).
    pub differing_tables: Vec<String>,
    /// Destination sequences moved past its largest keys (done once converged).
    pub sequences_synced: u32,
    /// Only the round's copied ranges were compared, not every table (cut-over mode, or an
    /// untracked run whose source was not written since the plan).
    pub compared_copied_only: bool,
}

/// What setting a stack's status did.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct StatusOutcome {
    /// The status now, as read back.
    pub read_only: bool,
    /// How it is kept: `statusTable` or `databaseDefault`.
    pub mechanism: String,
    /// Whether it was different before.
    pub changed: bool,
}

/// The two stacks a migration step works on, resolved, and the migration's config as given.
#[derive(Debug, Clone, Copy)]
pub struct Stacks<'a> {
    /// The source's URL.
    pub source: &'a Secret,
    /// The destination's URL.
    pub dest: &'a Secret,
    /// The `config` argument.
    pub config: &'a Value,
}

/// A step's stacks once resolved, and its config: what [`Stacks`] borrows.
struct Resolved {
    source: Secret,
    dest: Secret,
    config: Value,
}

impl Resolved {
    fn stacks(&self) -> Stacks<'_> {
        Stacks {
            source: &self.source,
            dest: &self.dest,
            config: &self.config,
        }
    }
}

/// What a verify step compares, beyond the stacks.
#[derive(Debug, Clone, Copy)]
pub struct VerifyRequest<'a> {
    /// The round.
    pub round: u32,
    /// With change tracking, the round's plan's `tracking`.
    pub baseline: Option<&'a Value>,
    /// In cut-over mode, the round's plan: only its ranges are compared.
    pub copied: Option<&'a CopiedRound>,
}

/// The database work of a migration, over resolved URLs. Implemented over `stepops-migrate` by
/// [`crate::library_engine::LibraryEngine`] and by tests. Futures must be cancel-safe: `copy_chunk`'s
/// destination transaction must roll back when its future is dropped.
pub trait MigrationEngine: Send + Sync + 'static {
    /// Plans one round: chunks of about `chunk_rows` rows wherever the two sides differ.
    fn plan(
        &self,
        stacks: Stacks<'_>,
        request: &PlanRequest,
    ) -> impl Future<Output = Result<PlanOutcome, StepError>> + Send;

    /// Makes the destination's rows of the chunk equal to the source's, in one transaction.
    fn copy_chunk(
        &self,
        stacks: Stacks<'_>,
        chunk: &ChunkSpec,
    ) -> impl Future<Output = Result<CopyOutcome, StepError>> + Send;

    /// [`MigrationEngine::copy_chunk`] for an engine whose chunks resume from a journal (the
    /// Synapse stack's: its jobs and backups per range); others ignore `journal`.
    fn copy_chunk_resumable<J: stepops_synapse::Journal>(
        &self,
        stacks: Stacks<'_>,
        chunk: &ChunkSpec,
        _journal: &J,
    ) -> impl Future<Output = Result<CopyOutcome, StepError>> + Send {
        self.copy_chunk(stacks, chunk)
    }

    /// The tables that still differ (empty: converged, and then the destination's sequences
    /// are synced).
    fn verify(
        &self,
        stacks: Stacks<'_>,
        request: VerifyRequest<'_>,
    ) -> impl Future<Output = Result<VerifyOutcome, StepError>> + Send;

    /// Puts a stack read-only (or back read-write), through the status table of `config`
    /// (`status`) or the engine's own mechanism; idempotent.
    fn set_read_only(
        &self,
        target: &Secret,
        config: &Value,
        read_only: bool,
    ) -> impl Future<Output = Result<StatusOutcome, StepError>> + Send;

    /// Takes or renews the destination's lease for `run` for [`LEASE_TTL`]; `Stepops.Busy`
    /// while another run holds it. Engines without leases accept every run.
    fn hold_lease(
        &self,
        _dest: &Secret,
        _run: &str,
    ) -> impl Future<Output = Result<(), StepError>> + Send {
        async { Ok(()) }
    }

    /// Releases the destination's lease if `run` holds it.
    fn release_lease(
        &self,
        _dest: &Secret,
        _run: &str,
    ) -> impl Future<Output = Result<(), StepError>> + Send {
        async { Ok(()) }
    }
}

/// How long a destination's lease lasts unless renewed: a run's steps renew it when they start
/// and every [`LEASE_RENEW`] while they run, so it lapses this long after a holder died.
pub const LEASE_TTL: std::time::Duration = std::time::Duration::from_secs(15 * 60);

/// How often a running step renews its run's lease.
pub const LEASE_RENEW: std::time::Duration = std::time::Duration::from_secs(3 * 60);

/// Runs the migration steps.
pub struct MigrationHandler<E, S, O> {
    engine: E,
    resolver: Arc<Resolver<S>>,
    store: O,
    /// One status-record check at a time, so that a redrive's concurrent chunks put the
    /// destination read-only again once.
    status_record: tokio::sync::Mutex<()>,
}

impl<E: MigrationEngine, S: SecretSource, O: ObjectStore> MigrationHandler<E, S, O> {
    /// A handler over `engine`, resolving targets through `resolver` and writing manifests to
    /// `store`. Share `resolver` with [`crate::Runner::with_redactor`].
    pub fn new(engine: E, resolver: Arc<Resolver<S>>, store: O) -> Self {
        MigrationHandler {
            engine,
            resolver,
            store,
            status_record: tokio::sync::Mutex::new(()),
        }
    }

    async fn target(&self, args: &Value, name: &str) -> Result<Secret, StepError> {
        let target = target_arg(name, args.get(name))?;
        let url = self.resolver.resolve(&target).await?;
        let keys = stepops_error::synapse_key_parameters(args.get("config"))
            .map_err(StepError::invalid_input)?;
        // `target` (set-status) is the destination in the migration.
        let side = if name == "target" { "dest" } else { name };
        let Some((_, parameter)) = keys.into_iter().find(|(field, _)| *field == side) else {
            return Ok(url);
        };
        // A Synapse stack whose service key is kept in its own parameter.
        let key = self.resolver.raw_value(&parameter).await?;
        let joined = stepops_synapse::with_service_key(url.expose(), key.expose())?;
        Ok(Secret::new(joined))
    }

    /// Resolves the step's `source` and `dest`, beside its `config`.
    async fn resolve(&self, args: &Value, config: Value) -> Result<Resolved, StepError> {
        Ok(Resolved {
            source: self.target(args, "source").await?,
            dest: self.target(args, "dest").await?,
            config,
        })
    }

    /// `sourceStamp` given (a string): the round's plan read back from its
    /// manifest (`manifest`: `{bucket, key}`); `None` otherwise.
    async fn copied_round(&self, args: &Value) -> Result<Option<CopiedRound>, StepError> {
        let source_stamp = match args.get("sourceStamp") {
            None | Some(Value::Null) => return Ok(None),
            Some(Value::String(s)) => s.clone(),
            Some(other) => {
                return Err(StepError::invalid_input(format!(
                    "argument `sourceStamp` must be the plan's `sourceStamp` string or null, got {other}"
                )));
            }
        };
        let manifest = args.get("manifest").ok_or_else(|| {
            StepError::invalid_input(
                "argument `manifest` ({bucket, key}: the plan's manifest) is needed with `sourceStamp`",
            )
        })?;
        let bucket = str_field(manifest, "manifest.bucket")?;
        let key = str_field(manifest, "manifest.key")?;
        let body = self.store.get(bucket, key).await?;
        let chunks = String::from_utf8_lossy(&body)
            .lines()
            .filter(|l| !l.trim().is_empty())
            .map(serde_json::from_str::<ChunkSpec>)
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| {
                StepError::invalid_input(format!(
                    "the manifest {bucket}/{key} holds a line that is not a chunk ({e}): it was not written by this plan step"
                ))
            })?;
        Ok(Some(CopiedRound {
            source_stamp,
            chunks,
        }))
    }

    async fn plan(&self, args: Value) -> Result<Value, StepError> {
        let config = config_arg(&args)?;
        let chunk_rows = u64_arg(&args, "chunkRows", 1, 100_000_000)?;
        let round = u64_arg(&args, "round", 1, 10_000)? as u32;
        let manifest = args.get("manifest").ok_or_else(|| {
            StepError::invalid_input("missing argument `manifest` ({bucket, prefix})")
        })?;
        let bucket = str_field(manifest, "manifest.bucket")?;
        let prefix = manifest
            .get("prefix")
            .and_then(Value::as_str)
            .ok_or_else(|| {
                StepError::invalid_input("argument `manifest.prefix` must be a string")
            })?;
        let request = PlanRequest {
            chunk_rows,
            round,
            dry_run: bool_arg(&args, "dryRun")?,
            baseline: baseline_arg(&args)?,
        };
        let resolved = self.resolve(&args, config).await?;
        let plan = self.engine.plan(resolved.stacks(), &request).await?;
        let mut body = String::new();
        for chunk in &plan.chunks {
            body.push_str(&serde_json::to_string(chunk).expect("a chunk serialises"));
            body.push('\n');
        }
        let key = manifest_key(prefix, round);
        self.store.put(bucket, &key, body.into_bytes()).await?;
        let estimated: u64 = plan.chunks.iter().map(|c| c.estimated_rows).sum();
        info!(
            round,
            chunks = plan.chunks.len(),
            estimated_rows = estimated,
            manifest = %format!("{bucket}/{key}"),
            "plan written"
        );
        Ok(json!({
            "round": round,
            "chunks": plan.chunks.len(),
            "estimatedRows": estimated,
            "inSync": plan.chunks.is_empty(),
            "tables": plan.tables,
            "manifest": {"bucket": bucket, "key": key},
            "tracking": plan.tracking,
            "sourceStamp": plan.source_stamp,
        }))
    }

    async fn copy(&self, args: Value) -> Result<Value, StepError> {
        let config = config_arg(&args)?;
        let chunk: ChunkSpec = serde_json::from_value(
            args.get("chunk")
                .cloned()
                .ok_or_else(|| StepError::invalid_input("missing argument `chunk`"))?,
        )
        .map_err(|e| {
            StepError::invalid_input(format!(
                "argument `chunk`: {e}; expected {{table, min, max, estimatedRows}}"
            ))
        })?;
        if chunk.min > chunk.max {
            return Err(StepError::invalid_input(format!(
                "argument `chunk`: min {} is above max {}",
                chunk.min, chunk.max
            )));
        }
        let resolved = self.resolve(&args, config).await?;
        let stacks = resolved.stacks();
        let started = Instant::now();
        let done = match args.get("journal") {
            None | Some(Value::Null) => {
                let journal = stepops_synapse::MemoryJournal::default();
                self.engine
                    .copy_chunk_resumable(stacks, &chunk, &journal)
                    .await?
            }
            Some(j) => {
                let bucket = str_field(j, "journal.bucket")?;
                let prefix = j.get("prefix").and_then(Value::as_str).ok_or_else(|| {
                    StepError::invalid_input("argument `journal.prefix` must be a string")
                })?;
                let journal = StoreJournal::new(self.store.clone(), bucket, prefix);
                self.engine
                    .copy_chunk_resumable(stacks, &chunk, &journal)
                    .await?
            }
        };
        let duration_ms = started.elapsed().as_millis() as u64;
        info!(
            table = %chunk.table, min = chunk.min, max = chunk.max,
            rows_deleted = done.rows_deleted, rows_inserted = done.rows_inserted, duration_ms,
            "chunk copied"
        );
        Ok(json!({
            "table": chunk.table,
            "min": chunk.min,
            "max": chunk.max,
            "rowsDeleted": done.rows_deleted,
            "rowsInserted": done.rows_inserted,
            "durationMs": duration_ms,
        }))
    }

    async fn verify(&self, args: Value) -> Result<Value, StepError> {
        let config = config_arg(&args)?;
        let round = u64_arg(&args, "round", 1, 10_000)? as u32;
        let max_rounds = u64_arg(&args, "maxRounds", 1, 10_000)? as u32;
        let resolved = self.resolve(&args, config).await?;
        let results = results_arg(&args)?;
        let previous = totals_arg(&args)?;
        let baseline = baseline_arg(&args)?;
        let copied = self.copied_round(&args).await?;
        let VerifyOutcome {
            differing_tables: differing,
            sequences_synced,
            compared_copied_only,
        } = self
            .engine
            .verify(
                resolved.stacks(),
                VerifyRequest {
                    round,
                    baseline: baseline.as_ref(),
                    copied: copied.as_ref(),
                },
            )
            .await?;
        let converged = differing.is_empty();
        info!(round, max_rounds, converged, differing = ?differing, sequences_synced, "verified");
        if !converged && round >= max_rounds {
            return Err(StepError::new(
                ErrorName::NotConverged,
                format!(
                    "not converged after {round} round(s): still different: {}. The source kept \
                     changing while it was copied. Run again at a quieter time, raise maxRounds, \
                     or stop the writes to the source (for example a maintenance window) for the \
                     last round. readOnlyDuringCopy does not help here: it only keeps other \
                     clients from writing to the destination",
                    differing.join(", ")
                ),
            ));
        }
        let mut out = json!({
            "converged": converged,
            "round": round,
            "differingTables": differing,
            "sequencesSynced": sequences_synced,
            "comparedCopiedOnly": compared_copied_only,
        });
        if let Some((bucket, key)) = results {
            // The row counts are for the report: a result file that cannot be read is logged
            // and counted as nothing copied (`chunksCopied` then falls short of the plan's
            // `chunks`, which the notification points out); it never fails the migration.
            let totals = match round_totals(&self.store, &bucket, &key).await {
                Ok(t) => t,
                Err(e) => {
                    warn!(round, error = %e, "cannot read the round's copy results");
                    RoundTotals::default()
                }
            };
            info!(
                round,
                chunks_copied = totals.chunks_copied,
                rows_copied = totals.rows_copied,
                rows_deleted = totals.rows_deleted,
                "round's copy results"
            );
            out["chunksCopied"] = json!(totals.chunks_copied);
            out["rowsCopied"] = json!(totals.rows_copied);
            out["rowsDeleted"] = json!(totals.rows_deleted);
            // The run's totals so far, added here in 64 bits: the state machine's
            // States.MathAdd only takes 32-bit integers, too small for a large migration's rows.
            out["totals"] = json!({
                "chunksCopied": previous.chunks_copied.saturating_add(totals.chunks_copied),
                "rowsCopied": previous.rows_copied.saturating_add(totals.rows_copied),
                "rowsDeleted": previous.rows_deleted.saturating_add(totals.rows_deleted),
            });
        }
        Ok(out)
    }

    async fn set_status(&self, args: Value) -> Result<Value, StepError> {
        let read_only = args
            .get("readOnly")
            .and_then(Value::as_bool)
            .ok_or_else(|| StepError::invalid_input("argument `readOnly` must be true or false"))?;
        let config = config_arg(&args)?;
        let target = self.target(&args, "target").await?;
        let outcome = self
            .engine
            .set_read_only(&target, &config, read_only)
            .await?;
        info!(read_only, mechanism = %outcome.mechanism, changed = outcome.changed, "status set");
        if read_only {
            self.record_read_only(&args, outcome.changed).await?;
        }
        Ok(serde_json::to_value(outcome).expect("a status outcome serialises"))
    }
}

impl<E: MigrationEngine, S: SecretSource, O: ObjectStore> StepHandler
    for MigrationHandler<E, S, O>
{
    async fn run(&self, step: &str, args: Value) -> Result<Value, StepError> {
        if !args.get("environment").is_some_and(Value::is_string) {
            return Err(StepError::invalid_input(format!(
                "step `{step}`: missing string argument `environment`"
            )));
        }
        let run = match (step, args.get("run")) {
            ("plan" | "copy" | "verify", Some(Value::String(run))) if !is_dry_run(&args) => {
                Some(run.clone())
            }
            (_, Some(v)) if !v.is_string() => {
                return Err(StepError::invalid_input(
                    "argument `run` must be the execution's ARN (a string)",
                ));
            }
            _ => None,
        };
        if matches!(step, "plan" | "copy" | "verify") && !is_dry_run(&args) {
            self.read_only_again(&args).await?;
        }
        let Some(run) = run else {
            return self.dispatch(step, args).await;
        };
        // One run at a time writes a destination: take (or renew) its lease first, keep it
        // while the step runs, and give it back when the run is over.
        let dest = self.target(&args, "dest").await?;
        self.engine.hold_lease(&dest, &run).await?;
        let work = self.dispatch(step, args);
        tokio::pin!(work);
        let mut renew = tokio::time::interval(LEASE_RENEW);
        renew.tick().await;
        let result = loop {
            tokio::select! {
                r = &mut work => break r,
                _ = renew.tick() => {
                    if let Err(e) = self.engine.hold_lease(&dest, &run).await {
                        warn!(error = %e.cause, "cannot renew the destination's lease");
                    }
                }
            }
        };
        let over = match &result {
            Ok(out) => step == "verify" && out["converged"] == json!(true),
            // Failed for good: the execution ends here (a redrive takes the lease again).
            Err(e) => !e.name.is_retryable() && e.name != ErrorName::Busy,
        };
        if over && let Err(e) = self.engine.release_lease(&dest, &run).await {
            warn!(error = %e.cause, "cannot release the destination's lease (it expires by itself)");
        }
        result
    }
}

/// Whether a step's arguments ask for a dry run (writes nothing, takes no lease).
fn is_dry_run(args: &Value) -> bool {
    args.get("dryRun").and_then(Value::as_bool) == Some(true)
}

impl<E: MigrationEngine, S: SecretSource, O: ObjectStore> MigrationHandler<E, S, O> {
    async fn dispatch(&self, step: &str, args: Value) -> Result<Value, StepError> {
        match step {
            "plan" => self.plan(args).await,
            "copy" => {
                let result = self.copy(args.clone()).await;
                if let Err(e) = &result {
                    self.record_chunk_failure(&args, e).await;
                }
                result
            }
            "verify" => self.verify(args).await,
            "set-status" => self.set_status(args).await,
            "release" => self.release(args).await,
            other => Err(StepError::invalid_input(format!(
                "unknown step `{other}`: this runner knows plan, copy, verify, set-status, \
                 release, ping"
            ))),
        }
    }
}

/// The manifest's key for a round: `<prefix>/round-<n>.jsonl` (no doubled `/`).
pub fn manifest_key(prefix: &str, round: u32) -> String {
    let prefix = prefix.trim_matches('/');
    if prefix.is_empty() {
        format!("round-{round}.jsonl")
    } else {
        format!("{prefix}/round-{round}.jsonl")
    }
}

#[cfg(test)]
mod tests;
