//! [`LibraryEngine`]: the [`MigrationEngine`] over `stepops-migrate`'s library.
//!
//! Not integrated yet: `stepops-migrate` has not published its public `plan` / `copy_chunk` /
//! `verify` functions. Until it does, every call fails with `Stepops.Internal` saying so.

use serde_json::Value;

use crate::migration::{ChunkSpec, CopyOutcome, MigrationEngine, PlanOutcome};
use crate::secrets::Secret;
use crate::step::StepError;

/// The migration engine of `stepops-migrate` (PostgreSQL and SQLite stacks).
#[derive(Debug, Clone, Default)]
pub struct LibraryEngine;

fn pending() -> StepError {
    StepError::internal(
        "this runner was built before the migration engine (stepops-migrate) was integrated: \
         upgrade the runner",
    )
}

impl MigrationEngine for LibraryEngine {
    async fn plan(
        &self,
        _source: &Secret,
        _dest: &Secret,
        _config: &Value,
        _chunk_rows: u64,
        _round: u32,
    ) -> Result<PlanOutcome, StepError> {
        Err(pending())
    }

    async fn copy_chunk(
        &self,
        _source: &Secret,
        _dest: &Secret,
        _config: &Value,
        _chunk: &ChunkSpec,
    ) -> Result<CopyOutcome, StepError> {
        Err(pending())
    }

    async fn verify(
        &self,
        _source: &Secret,
        _dest: &Secret,
        _config: &Value,
        _round: u32,
    ) -> Result<Vec<String>, StepError> {
        Err(pending())
    }

    async fn set_read_only(&self, _target: &Secret, _read_only: bool) -> Result<(), StepError> {
        Err(pending())
    }
}
