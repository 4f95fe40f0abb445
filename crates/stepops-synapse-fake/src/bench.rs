//! `stepops-synapse-fake bench`: stepops' Synapse migration against the service's own
//! algorithm run sequentially (the Java client's structure: per type in migration order, per
//! optimal range, a backup waited for, then its restore waited for), on fresh fake stacks with
//! the same rows, job latency and batch size, for several runner slot counts.
//!
//! stepops' side runs the runner's own steps (`stepops_synapse::plan`, `copy_chunk` with
//! `slots` chunks at once, `verify`) round after round until converged, as the state machine
//! does, without Step Functions between them (its overhead is a few events per round, see the
//! e2e history test). Both sides finish with the same verify pass and must move the same rows.

use std::time::{Duration, Instant};

use futures::{StreamExt, TryStreamExt};
use stepops_synapse::protocol::{AdminRequest, AdminResponse};
use stepops_synapse::{MemoryJournal, SynapseClient, SynapseConfig};

use crate::{FakeOptions, FakeStack, TypeDef};

/// What to measure.
#[derive(Debug, Clone)]
pub struct BenchSpec {
    /// Primary types (the last one is the change log, `CHANGE`).
    pub types: usize,
    /// Primary rows in all, spread evenly over the types.
    pub rows: i64,
    /// Rows per backup/restore range and per checksum bin.
    pub rows_per_range: i64,
    /// Rows per batch of the service's writes.
    pub batch_size: i64,
    /// Time every admin job waits before its work (the service's job queue latency).
    pub job_delay: Duration,
    /// Runner slot counts to measure stepops at.
    pub slots: Vec<usize>,
}

/// `stepops-synapse-fake bench`'s arguments.
#[derive(Debug, Clone, clap::Args)]
pub struct BenchArgs {
    /// Primary types (the last is the change log).
    #[arg(long, default_value_t = 24)]
    types: usize,
    /// Primary rows in all, spread over the types.
    #[arg(long, default_value_t = 2_000_000)]
    total_rows: i64,
    /// Rows per backup/restore range and checksum bin.
    #[arg(long, default_value_t = 50_000)]
    rows_per_range: i64,
    /// Rows per batch of the service's writes.
    #[arg(long, default_value_t = 50_000)]
    batch_size: i64,
    /// Latency of every admin job before its work (the service's job queue), ms.
    #[arg(long, default_value_t = 500)]
    job_delay_ms: u64,
    /// Runner slot counts to measure stepops at.
    #[arg(long, value_delimiter = ',', default_value = "1,2,4")]
    slots: Vec<usize>,
}

impl BenchArgs {
    /// What these arguments ask to measure.
    pub fn spec(self) -> BenchSpec {
        BenchSpec {
            types: self.types,
            rows: self.total_rows,
            rows_per_range: self.rows_per_range,
            batch_size: self.batch_size,
            job_delay: Duration::from_millis(self.job_delay_ms),
            slots: self.slots,
        }
    }
}

/// One measured run.
#[derive(Debug, Clone)]
pub struct BenchRun {
    /// `sequential` or `stepops, N slots`.
    pub label: String,
    /// Wall time, copy and verify included.
    pub elapsed: Duration,
    /// Rows the destination restored.
    pub rows_restored: u64,
    /// Backup and restore jobs started.
    pub jobs: usize,
}

fn types(n: usize) -> Vec<TypeDef> {
    let mut t: Vec<TypeDef> = (1..n.max(2))
        .map(|i| TypeDef::new(&format!("TYPE_{i:03}"), &[]))
        .collect();
    t.push(TypeDef::new("CHANGE", &[]));
    t
}

/// Two fresh stacks, the source seeded with `spec.rows` rows over `spec.types` types.
async fn stacks(spec: &BenchSpec, dir: &std::path::Path) -> (FakeStack, FakeStack) {
    let mk = |name: &str| {
        let mut o = FakeOptions::new(name, dir.join("backups"));
        o.types = types(spec.types);
        o.job_delay = spec.job_delay;
        o
    };
    let (s, d) = (
        FakeStack::start(mk("prod")).await,
        FakeStack::start(mk("staging")).await,
    );
    let per_type = (spec.rows / spec.types.max(1) as i64).max(1);
    for t in types(spec.types) {
        s.seed(&t.name, 1..=per_type, 0);
    }
    (s, d)
}

fn config(spec: &BenchSpec) -> SynapseConfig {
    let mut c = SynapseConfig::from_json(&serde_json::json!({
        "batchSize": spec.batch_size,
        "rowsPerRange": spec.rows_per_range,
        "pollMaxMs": 50,
    }))
    .expect("a valid bench configuration");
    c.backups_ahead = 2;
    c
}

fn jobs(s: &FakeStack, d: &FakeStack) -> usize {
    s.jobs_of("backup") + d.jobs_of("restore")
}

/// stepops: plan, copy `slots` chunks at once, verify, until converged (at most 5 rounds).
async fn stepops_run(spec: &BenchSpec, slots: usize, dir: &std::path::Path) -> BenchRun {
    let (s, d) = stacks(spec, dir).await;
    let (src, dst) = (s.url(), d.url());
    let config = config(spec);
    let chunk_rows = spec.rows_per_range as u64;
    let started = Instant::now();
    let mut restored = 0u64;
    for _round in 0..5 {
        let diffs = stepops_synapse::plan(&src, &dst, &config, chunk_rows)
            .await
            .expect("plan");
        if diffs.is_empty() {
            break;
        }
        let reports: Vec<_> = futures::stream::iter(diffs)
            .map(|t| {
                let (src, dst, config) = (&src, &dst, &config);
                async move {
                    let journal = MemoryJournal::default();
                    stepops_synapse::copy_chunk(src, dst, config, &t.type_name, &t.ranges, &journal)
                        .await
                }
            })
            .buffer_unordered(slots.max(1))
            .try_collect()
            .await
            .expect("copy");
        restored += reports.iter().map(|r| r.restored_rows).sum::<u64>();
    }
    let left = stepops_synapse::verify(&src, &dst, &config, chunk_rows)
        .await
        .expect("verify");
    assert!(left.is_empty(), "stepops left {left:?} different");
    assert_eq!(s.dump(), d.dump(), "stepops: the stacks differ");
    BenchRun {
        label: format!("stepops, {slots} slot(s)"),
        elapsed: started.elapsed(),
        rows_restored: restored,
        jobs: jobs(&s, &d),
    }
}

/// The service's client's structure: per type in order, the source's optimal ranges over its
/// ids, each backed up (waited for), then restored (waited for); then one verify pass.
async fn sequential_run(spec: &BenchSpec, dir: &std::path::Path) -> BenchRun {
    let (s, d) = stacks(spec, dir).await;
    let config = config(spec);
    let options = config.client_options();
    let source = SynapseClient::from_url(&s.url(), options).expect("source");
    let dest = SynapseClient::from_url(&d.url(), options).expect("dest");
    let started = Instant::now();
    let mut restored = 0u64;
    let counts = match source
        .run(&AdminRequest::TypeCounts {
            types: types(spec.types).into_iter().map(|t| t.name).collect(),
        })
        .await
        .expect("type counts")
    {
        AdminResponse::TypeCounts { list } => list,
        other => panic!("not type counts: {other:?}"),
    };
    for count in counts {
        let (Some(lo), Some(hi)) = (count.minid, count.maxid) else {
            continue;
        };
        let ranges = match source
            .run(&AdminRequest::OptimalRange {
                migration_type: count.type_name.clone(),
                minimum_id: lo,
                maximum_id: hi + 1,
                optimal_rows_per_range: spec.rows_per_range,
            })
            .await
            .expect("optimal ranges")
        {
            AdminResponse::OptimalRange { ranges } => ranges,
            other => panic!("not ranges: {other:?}"),
        };
        // A contiguous cover cut at the ranges' starts (as the service's client does).
        let mut starts: Vec<i64> = ranges.iter().map(|r| r.minimum_id).collect();
        starts.push(hi + 1);
        for w in starts.windows(2) {
            let r = stepops_synapse::protocol::IdRange {
                minimum_id: w[0],
                maximum_id: w[1],
            };
            let backup = source
                .run(&AdminRequest::Backup {
                    migration_type: count.type_name.clone(),
                    alias_type: config.alias_type.clone(),
                    batch_size: spec.batch_size,
                    minimum_id: r.minimum_id,
                    maximum_id: r.maximum_id,
                })
                .await
                .expect("backup");
            let AdminResponse::Backup { backup_file_key } = backup else {
                panic!("not a backup: {backup:?}")
            };
            let restore = dest
                .run(&AdminRequest::Restore {
                    migration_type: count.type_name.clone(),
                    alias_type: config.alias_type.clone(),
                    backup_file_key,
                    batch_size: spec.batch_size,
                    minimum_row_id: r.minimum_id,
                    maximum_row_id: r.maximum_id,
                })
                .await
                .expect("restore");
            if let AdminResponse::Restore { restored_row_count } = restore {
                restored += restored_row_count.unwrap_or(0).max(0) as u64;
            }
        }
    }
    let left = stepops_synapse::verify(&s.url(), &d.url(), &config, spec.rows_per_range as u64)
        .await
        .expect("verify");
    assert!(
        left.is_empty(),
        "the sequential run left {left:?} different"
    );
    assert_eq!(s.dump(), d.dump(), "sequential: the stacks differ");
    BenchRun {
        label: "sequential (the service's client)".into(),
        elapsed: started.elapsed(),
        rows_restored: restored,
        jobs: jobs(&s, &d),
    }
}

/// Runs the sequential structure once, then stepops at every slot count in `spec.slots`, each
/// on fresh stacks in a folder of its own under `dir`.
pub async fn run(spec: &BenchSpec, dir: &std::path::Path) -> Vec<BenchRun> {
    let mut runs = vec![sequential_run(spec, &dir.join("sequential")).await];
    for &slots in &spec.slots {
        runs.push(stepops_run(spec, slots, &dir.join(format!("stepops-{slots}"))).await);
    }
    runs
}

/// [`run`] in a temporary folder, then [`report`].
pub async fn measure(spec: &BenchSpec) -> std::io::Result<String> {
    let dir = tempfile::tempdir()?;
    let runs = run(spec, dir.path()).await;
    Ok(report(spec, &runs))
}

/// A Markdown table of `runs`, each against the first (the sequential run).
pub fn report(spec: &BenchSpec, runs: &[BenchRun]) -> String {
    let base = runs.first().map(|r| r.elapsed.as_secs_f64()).unwrap_or(1.0);
    let mut out = format!(
        "{} types, {} rows, {} rows per range, batch {}, job latency {} ms\n\n\
         | run | wall time | vs sequential | rows restored | jobs |\n|---|---|---|---|---|\n",
        spec.types,
        spec.rows,
        spec.rows_per_range,
        spec.batch_size,
        spec.job_delay.as_millis()
    );
    for r in runs {
        out.push_str(&format!(
            "| {} | {:.2} s | {:.2}× faster | {} | {} |\n",
            r.label,
            r.elapsed.as_secs_f64(),
            base / r.elapsed.as_secs_f64().max(1e-9),
            r.rows_restored,
            r.jobs
        ));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A small bench: both structures leave the stacks equal (checked inside) and restore the
    /// same rows; stepops starts no more jobs than the sequential client.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn both_structures_move_the_same_rows() {
        let spec = BenchSpec {
            types: 4,
            rows: 1_200,
            rows_per_range: 100,
            batch_size: 100,
            job_delay: Duration::from_millis(5),
            slots: vec![2],
        };
        let dir = tempfile::tempdir().unwrap();
        let runs = run(&spec, dir.path()).await;
        assert_eq!(runs.len(), 2);
        assert_eq!(runs[0].rows_restored, 1_200);
        assert_eq!(runs[1].rows_restored, runs[0].rows_restored);
        assert!(runs[1].jobs <= runs[0].jobs, "{runs:?}");
        let table = report(&spec, &runs);
        assert!(table.contains("| stepops, 2 slot(s) |"), "{table}");
    }
}
