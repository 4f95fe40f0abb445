//! [`LibraryEngine`]: the [`MigrationEngine`] over `stepops-migrate` (PostgreSQL and SQLite
//! stacks; both sides of a migration use the same engine).
//!
//! Cancel safety: the PostgreSQL copy is async (tokio-postgres); when the runner drops the
//! step's future, the destination transaction and its connection are dropped and the server
//! rolls the transaction back. The SQLite copy runs its `DELETE` + `INSERT … SELECT` in one
//! transaction on a blocking thread, which finishes (commits or fails) on its own after the
//! future is dropped: the chunk is still all-or-nothing, and the retried chunk is idempotent.
//! Synapse stacks (`synapse+https://…` on both sides) go to [`crate::synapse_engine`].
//! `set-status` puts a stack read-only through `stepops_migrate::status` (the config's status
//! table, or PostgreSQL's database default); it reads the status back before answering.

use serde_json::Value;
use stepops_migrate::{Config, PlanOptions, StatusMechanism, TrackingState};

use crate::migration::{
    ChunkSpec, CopyOutcome, MigrationEngine, PlanOutcome, PlanRequest, Stacks, StatusOutcome,
    TableSummary, VerifyOutcome, VerifyRequest,
};
use crate::secrets::Secret;
use crate::step::StepError;
use crate::synapse_engine;
use stepops_synapse::is_synapse_url;

/// The migration engine of `stepops-migrate`.
#[derive(Debug, Clone, Default)]
pub struct LibraryEngine;

fn config(value: &Value) -> Result<Config, StepError> {
    serde_json::from_value(value.clone()).map_err(|e| {
        StepError::invalid_input(format!(
            "argument `config`: {e}; expected {{include?: [table], exclude?: [table], \
             tables?: {{NAME: {{rangeKey: COLUMN}}}}, status?: {{table, column, readOnly, \
             readWrite}}, changeTracking?: {{slot, fullCheck?}}, deferIndexes?: bool}}"
        ))
    })
}

fn baseline(value: Option<&Value>) -> Result<Option<TrackingState>, StepError> {
    value
        .map(|v| {
            serde_json::from_value(v.clone()).map_err(|e| {
                StepError::invalid_input(format!(
                    "argument `baseline`: {e}; expected the previous plan's `tracking` output"
                ))
            })
        })
        .transpose()
}

impl MigrationEngine for LibraryEngine {
    async fn plan(
        &self,
        stacks: Stacks<'_>,
        request: &PlanRequest,
    ) -> Result<PlanOutcome, StepError> {
        if synapse_engine::is_synapse(stacks)? {
            return synapse_engine::plan(stacks, request).await;
        }
        let config = config(stacks.config)?;
        let plan = stepops_migrate::plan(
            stacks.source.expose(),
            stacks.dest.expose(),
            &config,
            &PlanOptions {
                chunk_rows: request.chunk_rows,
                round: request.round,
                dry_run: request.dry_run,
                baseline: baseline(request.baseline.as_ref())?,
            },
        )
        .await?;
        Ok(PlanOutcome {
            tracking: plan
                .tracking
                .as_ref()
                .map(|t| serde_json::to_value(t).expect("a tracking state serialises")),
            source_stamp: plan.source_stamp.clone(),
            tables: plan
                .tables
                .iter()
                .map(|t| TableSummary {
                    table: t.table.clone(),
                    chunks: t.chunks,
                    estimated_rows: t.estimated_rows,
                })
                .collect(),
            chunks: plan.chunks,
        })
    }

    async fn copy_chunk(
        &self,
        stacks: Stacks<'_>,
        chunk: &ChunkSpec,
    ) -> Result<CopyOutcome, StepError> {
        let journal = stepops_synapse::MemoryJournal::default();
        self.copy_chunk_resumable(stacks, chunk, &journal).await
    }

    /// Synapse stacks resume from `journal`; the others' chunks are one transaction each.
    async fn copy_chunk_resumable<J: stepops_synapse::Journal>(
        &self,
        stacks: Stacks<'_>,
        chunk: &ChunkSpec,
        journal: &J,
    ) -> Result<CopyOutcome, StepError> {
        if synapse_engine::is_synapse(stacks)? {
            return synapse_engine::copy(stacks, chunk, journal).await;
        }
        let config = config(stacks.config)?;
        let (source, dest) = (stacks.source.expose(), stacks.dest.expose());
        let report = stepops_migrate::copy_chunk(source, dest, &config, chunk).await?;
        Ok(CopyOutcome {
            rows_deleted: report.rows_deleted,
            rows_inserted: report.rows_inserted,
        })
    }

    async fn verify(
        &self,
        stacks: Stacks<'_>,
        request: VerifyRequest<'_>,
    ) -> Result<VerifyOutcome, StepError> {
        if synapse_engine::is_synapse(stacks)? {
            return synapse_engine::verify(stacks).await;
        }
        let config = config(stacks.config)?;
        let baseline = baseline(request.baseline)?;
        let (source, dest, round) = (stacks.source, stacks.dest, request.round);
        // The round limit is the handler's business: never fail here.
        let report = match request.copied {
            Some(copied) => {
                let plan = stepops_migrate::Plan {
                    round,
                    tables: Vec::new(),
                    chunks: copied.chunks.clone(),
                    tracking: None,
                    source_stamp: Some(copied.source_stamp.clone()),
                };
                stepops_migrate::verify_copied(
                    source.expose(),
                    dest.expose(),
                    &config,
                    round,
                    u32::MAX,
                    &plan,
                )
                .await?
            }
            None => {
                stepops_migrate::verify(
                    source.expose(),
                    dest.expose(),
                    &config,
                    round,
                    u32::MAX,
                    baseline.as_ref(),
                )
                .await?
            }
        };
        Ok(VerifyOutcome {
            differing_tables: report.differing_tables,
            sequences_synced: report.sequences_synced,
            compared_copied_only: report.compared_copied_only,
        })
    }

    async fn hold_lease(&self, dest: &Secret, run: &str) -> Result<(), StepError> {
        if is_synapse_url(dest.expose()) {
            return Ok(()); // the service has no lease; READ_ONLY is its guard
        }
        stepops_migrate::lease::hold(dest.expose(), run, crate::migration::LEASE_TTL).await?;
        Ok(())
    }

    async fn release_lease(&self, dest: &Secret, run: &str) -> Result<(), StepError> {
        if is_synapse_url(dest.expose()) {
            return Ok(());
        }
        stepops_migrate::lease::release(dest.expose(), run).await?;
        Ok(())
    }

    async fn set_read_only(
        &self,
        target: &Secret,
        config_value: &Value,
        read_only: bool,
    ) -> Result<StatusOutcome, StepError> {
        if is_synapse_url(target.expose()) {
            return synapse_engine::set_read_only(target, config_value, read_only).await;
        }
        let config = config(config_value)?;
        let change =
            stepops_migrate::status::set_read_only(target.expose(), &config, read_only).await?;
        Ok(StatusOutcome {
            read_only: change.read_only,
            mechanism: match change.mechanism {
                StatusMechanism::StatusTable => "statusTable",
                StatusMechanism::DatabaseDefault => "databaseDefault",
            }
            .to_owned(),
            changed: change.changed,
        })
    }
}
