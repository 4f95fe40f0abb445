//! The in-process loop: plan → copy chunks concurrently → re-plan, with progress callbacks.

use crate::error::{MigrateError, Result};
use crate::model::{Chunk, CopyReport, Plan, Summary};
use crate::{DEFAULT_CHUNK_ROWS, DEFAULT_MAX_ROUNDS, Migration, PlanOptions};
use futures::StreamExt;
use futures::stream::FuturesUnordered;
use serde::{Deserialize, Serialize};
use std::time::{Duration, Instant};
use stepops_error::{ErrorName, Named};

/// Options of [`crate::migrate`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct MigrateOptions {
    /// Target rows per chunk.
    pub chunk_rows: u64,
    /// Chunks copied concurrently.
    pub jobs: usize,
    /// Rounds of copying before giving up with `Stepops.NotConverged`.
    pub max_rounds: u32,
    /// Plan only; write nothing.
    pub dry_run: bool,
    /// Attempts per chunk on `Stepops.Transient` errors (1 = no retry).
    pub attempts: u32,
}

impl Default for MigrateOptions {
    fn default() -> Self {
        MigrateOptions {
            chunk_rows: DEFAULT_CHUNK_ROWS,
            jobs: 4,
            max_rounds: DEFAULT_MAX_ROUNDS,
            dry_run: false,
            attempts: 3,
        }
    }
}

/// Progress callbacks (the CLI draws bars or log lines from them). All default to nothing.
pub trait Progress: Send + Sync {
    /// A round's plan is ready (also called for the final verification).
    fn planned(&self, _plan: &Plan) {}
    /// A chunk starts.
    fn chunk_started(&self, _chunk: &Chunk) {}
    /// A chunk was copied.
    fn chunk_done(&self, _chunk: &Chunk, _report: &CopyReport) {}
    /// A chunk failed with a transient error and will be retried.
    fn chunk_retry(&self, _chunk: &Chunk, _error: &MigrateError) {}
}

/// Progress that reports nothing.
#[derive(Debug, Default, Clone, Copy)]
pub struct NoProgress;
impl Progress for NoProgress {}

impl Migration {
    /// Runs the loop (see [`crate::migrate`]).
    pub async fn run(&self, options: &MigrateOptions, progress: &dyn Progress) -> Result<Summary> {
        let started = Instant::now();
        let mut summary = Summary {
            tables: self.tables().len(),
            rounds: 0,
            chunks: 0,
            rows_copied: 0,
            rows_deleted: 0,
            sequences_synced: 0,
            verified_copied_only: false,
            duration_seconds: 0.0,
        };
        let max_rounds = options.max_rounds.max(1);
        let mut round = 1;
        let mut baseline = None;
        // Without change tracking: the previous round's plan, whose copied ranges are all
        // that is compared again when the source stayed quiet (always in cut-over mode).
        let mut copied: Option<Plan> = None;
        loop {
            // After the copies, the indexes a load deferred are built before comparing again.
            if round > 1 && !options.dry_run {
                self.rebuild_indexes().await?;
            }
            // With change tracking, each plan after the first compares only what the source
            // changed since the previous one (whose chunks are copied by now).
            let plan = match copied.take() {
                Some(previous) => {
                    let (plan, copied_only) = self
                        .compare_after_copies(&previous, options.chunk_rows)
                        .await?;
                    summary.verified_copied_only = copied_only;
                    plan
                }
                None => {
                    self.plan(&PlanOptions {
                        chunk_rows: options.chunk_rows,
                        round,
                        dry_run: options.dry_run,
                        baseline: baseline.take(),
                    })
                    .await?
                }
            };
            progress.planned(&plan);
            tracing::debug!(
                round,
                chunks = plan.chunks.len(),
                estimated_rows = plan.estimated_rows(),
                "planned"
            );
            if plan.in_sync() || options.dry_run {
                break;
            }
            if round > max_rounds {
                return Err(MigrateError::NotConverged {
                    rounds: max_rounds,
                    tables: plan.differing_tables(),
                });
            }
            summary.rounds = round;
            let jobs = options.jobs.max(1);
            // At most `jobs` copies in flight (no closures: the future stays `Send`).
            let mut pending = plan.chunks.iter();
            let mut running = FuturesUnordered::new();
            loop {
                while running.len() < jobs {
                    match pending.next() {
                        Some(chunk) => running.push(self.copy_with_retry(
                            chunk,
                            options.attempts.max(1),
                            progress,
                        )),
                        None => break,
                    }
                }
                let Some(report) = running.next().await else {
                    break;
                };
                let report = report?;
                summary.chunks += 1;
                summary.rows_copied += report.rows_inserted;
                summary.rows_deleted += report.rows_deleted;
            }
            drop(running);
            baseline = plan.tracking.clone();
            if plan.source_stamp.is_some() {
                copied = Some(plan);
            }
            round += 1;
        }
        if !options.dry_run {
            // Left by an earlier run that stopped between its load and its verification.
            self.rebuild_indexes().await?;
            summary.sequences_synced = self.sync_sequences().await?;
        }
        summary.duration_seconds = started.elapsed().as_secs_f64();
        Ok(summary)
    }

    async fn copy_with_retry(
        &self,
        chunk: &Chunk,
        attempts: u32,
        progress: &dyn Progress,
    ) -> Result<CopyReport> {
        progress.chunk_started(chunk);
        let mut attempt = 1;
        loop {
            match self.copy_chunk(chunk).await {
                Ok(report) => {
                    tracing::debug!(table = %report.table, min = report.min, max = report.max, inserted = report.rows_inserted, deleted = report.rows_deleted, ms = report.duration_ms, "chunk copied");
                    progress.chunk_done(chunk, &report);
                    return Ok(report);
                }
                Err(e) if e.error_name() == ErrorName::Transient && attempt < attempts => {
                    tracing::warn!(table = %chunk.table, bounds = %chunk.bounds(), error = %e, attempt, "chunk failed, retrying");
                    progress.chunk_retry(chunk, &e);
                    tokio::time::sleep(Duration::from_millis(200 * 2u64.pow(attempt))).await;
                    attempt += 1;
                }
                Err(e) => return Err(e),
            }
        }
    }
}
