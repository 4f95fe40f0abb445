//! Live progress: the workers' step handler wrapped so that every finished `plan`, `copy` and
//! `verify` is counted.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::Value;
use stepops_runner::{
    LibraryEngine, LocalFolderStore, MigrationHandler, NoSecretSource, Resolver, Runner,
    RunnerOptions, StepError, StepHandler, local_sfn_client,
};

/// Counters the workers update as steps finish.
#[derive(Debug, Default)]
pub struct Progress {
    round: AtomicU64,
    tables: AtomicU64,
    chunks_planned: AtomicU64,
    chunks_copied: AtomicU64,
    copies_started: AtomicU64,
    rows_planned: AtomicU64,
    rows_inserted: AtomicU64,
    rows_deleted: AtomicU64,
    verified: AtomicU64,
    /// `(table, min, max)` of every finished copy.
    copied: Mutex<Vec<(String, i64, i64)>>,
}

/// A copy of the counters.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ProgressSnapshot {
    /// The latest planned round.
    pub round: u64,
    /// Tables with chunks to copy in the first round.
    pub tables: u64,
    /// Chunks planned, over all rounds.
    pub chunks_planned: u64,
    /// Chunks copied.
    pub chunks_copied: u64,
    /// Copy steps started (more than copied while copies run, or when a worker died mid-copy).
    pub copies_started: u64,
    /// Rows the plans estimated to copy, over all rounds.
    pub rows_planned: u64,
    /// Rows written by the copies.
    pub rows_inserted: u64,
    /// Rows deleted by the copies.
    pub rows_deleted: u64,
    /// Verify steps finished.
    pub verified: u64,
}

impl Progress {
    /// The counters now.
    pub fn snapshot(&self) -> ProgressSnapshot {
        let l = |a: &AtomicU64| a.load(Ordering::Relaxed);
        ProgressSnapshot {
            round: l(&self.round),
            tables: l(&self.tables),
            chunks_planned: l(&self.chunks_planned),
            chunks_copied: l(&self.chunks_copied),
            copies_started: l(&self.copies_started),
            rows_planned: l(&self.rows_planned),
            rows_inserted: l(&self.rows_inserted),
            rows_deleted: l(&self.rows_deleted),
            verified: l(&self.verified),
        }
    }

    /// `(table, min, max)` of every chunk copied, in order.
    pub fn copied_chunks(&self) -> Vec<(String, i64, i64)> {
        self.copied.lock().expect("copied chunks").clone()
    }

    pub(crate) fn reset(&self) {
        self.copied.lock().expect("copied chunks").clear();
        for a in [
            &self.round,
            &self.tables,
            &self.chunks_planned,
            &self.chunks_copied,
            &self.copies_started,
            &self.rows_planned,
            &self.rows_inserted,
            &self.rows_deleted,
            &self.verified,
        ] {
            a.store(0, Ordering::Relaxed);
        }
    }

    fn record(&self, step: &str, out: &Value) {
        let n = |k: &str| out.get(k).and_then(Value::as_u64).unwrap_or(0);
        match step {
            "plan" => {
                let round = n("round");
                self.round.fetch_max(round, Ordering::Relaxed);
                if round <= 1 {
                    let tables = out
                        .get("tables")
                        .and_then(Value::as_array)
                        .map_or(0, |t| t.len() as u64);
                    self.tables.store(tables, Ordering::Relaxed);
                }
                self.chunks_planned
                    .fetch_add(n("chunks"), Ordering::Relaxed);
                self.rows_planned
                    .fetch_add(n("estimatedRows"), Ordering::Relaxed);
            }
            "copy" => {
                self.copied.lock().expect("copied chunks").push((
                    out.get("table")
                        .and_then(Value::as_str)
                        .unwrap_or_default()
                        .to_owned(),
                    out.get("min").and_then(Value::as_i64).unwrap_or_default(),
                    out.get("max").and_then(Value::as_i64).unwrap_or_default(),
                ));
                self.chunks_copied.fetch_add(1, Ordering::Relaxed);
                self.rows_inserted
                    .fetch_add(n("rowsInserted"), Ordering::Relaxed);
                self.rows_deleted
                    .fetch_add(n("rowsDeleted"), Ordering::Relaxed);
            }
            "verify" => {
                self.verified.fetch_add(1, Ordering::Relaxed);
            }
            _ => {}
        }
    }
}

/// A step handler that counts what `inner` finished.
pub struct Counting<H> {
    inner: H,
    progress: Arc<Progress>,
}

impl<H: StepHandler> StepHandler for Counting<H> {
    fn run(
        &self,
        step: &str,
        args: Value,
    ) -> impl Future<Output = Result<Value, StepError>> + Send {
        let step = step.to_owned();
        async move {
            if step == "copy" {
                self.progress.copies_started.fetch_add(1, Ordering::Relaxed);
            }
            let out = self.inner.run(&step, args).await;
            if let Ok(v) = &out {
                self.progress.record(&step, v);
            }
            out
        }
    }
}

type LocalHandler = MigrationHandler<LibraryEngine, NoSecretSource, LocalFolderStore>;

/// `stepops_runner::local_migration_runner` with its handler counted into `progress`.
pub(crate) fn counted_runner(
    endpoint: &str,
    options: RunnerOptions,
    object_store_root: &std::path::Path,
    progress: Arc<Progress>,
) -> Runner<Counting<LocalHandler>> {
    let resolver = Arc::new(Resolver::new(NoSecretSource, Duration::from_secs(900)));
    let inner = MigrationHandler::new(
        LibraryEngine,
        resolver.clone(),
        LocalFolderStore::new(object_store_root),
    );
    Runner::new(
        local_sfn_client(endpoint),
        options,
        Counting { inner, progress },
    )
    .with_redactor(move |s| resolver.redact(s))
}
