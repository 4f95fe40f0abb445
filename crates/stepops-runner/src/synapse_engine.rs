//! The migration steps on Synapse stacks (`synapse+https://…` targets), for
//! [`crate::LibraryEngine`]: a plan is one chunk per type (its differing ranges in `ranges`),
//! a copy backs up and restores them through `stepops-synapse` with the chunk's journal, verify
//! compares again, set-status flips the stack's READ_ONLY switch.

use serde_json::Value;
use stepops_synapse::{Journal, SynapseConfig, is_synapse_url};

use crate::migration::{
    ChunkSpec, CopyOutcome, PlanOutcome, PlanRequest, Stacks, StatusOutcome, TableSummary,
    VerifyOutcome,
};
use crate::secrets::Secret;
use crate::step::StepError;

/// Ids per checksum bin of a verification when the config does not say.
const VERIFY_BIN_WIDTH: u64 = 50_000;

/// Whether this step runs on Synapse stacks: both targets, or neither (mixed: refused).
pub fn is_synapse(stacks: Stacks<'_>) -> Result<bool, StepError> {
    match (
        is_synapse_url(stacks.source.expose()),
        is_synapse_url(stacks.dest.expose()),
    ) {
        (true, true) => Ok(true),
        (false, false) => Ok(false),
        _ => Err(StepError::invalid_input(
            "one target is a Synapse stack (synapse+https://…) and the other a database: both \
             sides of a migration must be of the same kind",
        )),
    }
}

fn config(value: &Value) -> Result<SynapseConfig, StepError> {
    Ok(SynapseConfig::from_migration_config(value)?)
}

/// The plan step.
pub async fn plan(stacks: Stacks<'_>, request: &PlanRequest) -> Result<PlanOutcome, StepError> {
    let config = config(stacks.config)?;
    let (source, dest) = (stacks.source.expose(), stacks.dest.expose());
    let diffs = stepops_synapse::plan(source, dest, &config, request.chunk_rows).await?;
    let mut outcome = PlanOutcome::default();
    for d in diffs {
        let (Some(first), Some(last)) = (d.ranges.first(), d.ranges.last()) else {
            continue;
        };
        outcome.tables.push(TableSummary {
            table: d.type_name.clone(),
            chunks: 1,
            estimated_rows: d.estimated_rows,
        });
        outcome.chunks.push(ChunkSpec {
            table: d.type_name,
            min: first.0,
            max: last.1,
            estimated_rows: d.estimated_rows,
            ranges: d.ranges.iter().map(|&(a, b)| [a, b]).collect(),
            keys: Vec::new(),
            whole_table: false,
        });
    }
    Ok(outcome)
}

/// The copy step, recording its progress in `journal`.
pub async fn copy<J: Journal>(
    stacks: Stacks<'_>,
    chunk: &ChunkSpec,
    journal: &J,
) -> Result<CopyOutcome, StepError> {
    let config = config(stacks.config)?;
    let ranges: Vec<(i64, i64)> = if chunk.ranges.is_empty() {
        vec![(chunk.min, chunk.max)]
    } else {
        chunk.ranges.iter().map(|r| (r[0], r[1])).collect()
    };
    let report = stepops_synapse::copy_chunk(
        stacks.source.expose(),
        stacks.dest.expose(),
        &config,
        &chunk.table,
        &ranges,
        journal,
    )
    .await?;
    tracing::info!(
        type_name = %chunk.table, ranges = report.ranges, backups_started = report.backups_started,
        restores_started = report.restores_started, "synapse chunk done"
    );
    Ok(CopyOutcome {
        rows_deleted: 0,
        rows_inserted: report.restored_rows,
    })
}

/// The verify step.
pub async fn verify(stacks: Stacks<'_>) -> Result<VerifyOutcome, StepError> {
    let config = config(stacks.config)?;
    let (source, dest) = (stacks.source.expose(), stacks.dest.expose());
    let differing = stepops_synapse::verify(source, dest, &config, VERIFY_BIN_WIDTH).await?;
    Ok(VerifyOutcome {
        differing_tables: differing,
        sequences_synced: 0,
        compared_copied_only: false,
    })
}

/// The set-status step.
pub async fn set_read_only(
    target: &Secret,
    config_value: &Value,
    read_only: bool,
) -> Result<StatusOutcome, StepError> {
    let config = config(config_value)?;
    let r = stepops_synapse::set_read_only(target.expose(), &config, read_only).await?;
    Ok(StatusOutcome {
        read_only: r.read_only,
        mechanism: "stackStatus".into(),
        changed: r.changed,
    })
}
