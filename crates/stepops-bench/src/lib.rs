//! The migration benchmark (`stepops bench`, `bench/run.sh`): `stepops migrate` beside its
//! peers (pgcopydb, `pg_dump | psql`, reladiff) on two throwaway PostgreSQL servers
//! (`stepops-testkit`), on the sample schema (`stepops-sample`), every tool a measured child
//! process; the figures are printed as a Markdown table and kept in the work directory.
//!
//! A harness, not a test. The CLI parses [`BenchArgs`] and calls [`run`] with its own
//! executable (the `stepops` binary whose `migrate` is measured).
//!
//! - [`measure`]: one child process, its wall time and peak memory.
//! - `harness`: the servers, the steps and the rows of the report.
//! - `report`: the report's rendering.
//! - [`relationalize`]: `stepops relationalize bench`, beside DuckDB.
//! - [`reposync`]: `stepops repo-sync bench`, against moto's S3 server, beside `aws s3 sync`.

mod harness;
pub mod measure;
pub mod relationalize;
mod report;
pub mod reposync;

use std::path::PathBuf;

pub use harness::run;

/// The long help of `stepops bench`: what one run does.
pub const LONG_ABOUT: &str = "\
Benchmark `stepops migrate` on PostgreSQL and print the figures (a harness, not a timed test).

In one run, on two throwaway PostgreSQL servers (127.0.0.1, temporary directories): the source
with wal_level=logical (change tracking reads its slot), the destinations with
--dest-wal-level (replica by default, what managed PostgreSQL runs; minimal lets pgcopydb's
TRUNCATE + COPY skip the WAL):
  1. builds the sample source (`stepops sample`: users, projects, entities, acl, events);
  2. full copy into an empty destination: `stepops migrate` (schema pre-created, as it requires;
     then a full verification pass), `stepops migrate --track` (change tracking: verifies what
     changed meanwhile), `pgcopydb clone` (creates schema, copies, builds indexes) and
     `pg_dump --data-only | psql` (into the pre-created schema);
  3. incremental re-sync after 0.1% updates, 0.01% deletes and 0.1% inserts scattered over the
     source, with and without tracking (each into its destination from step 2); untracked three
     times, each after its own changes: a quiet source (the verification compares only the
     copied ranges), a busy one (a transaction held open on the source during the run: both
     sides compared in full) and `--cut-over`;
  4. a pass with no differences: `stepops migrate` again, with and without tracking, beside
     `reladiff` (hashdiff, every column, each table);
  5. peak memory (max RSS) of every stepops child process.
With --tls both servers also accept TLS (a certificate from a CA made for the run) and step 2
adds the same full copy with both URLs at sslmode=verify-full, reported as a ratio of the
plaintext one.
After steps 2 and 3 every stepops destination is compared with the source row by row
(client-side digest, independent of stepops' own checksums).

Peers missing from PATH are reported and skipped (bench/run.sh installs them: apt-get install
pgcopydb; pip install 'reladiff[postgresql]').

Examples:
  bench/run.sh                           # release build, peers installed, 5M rows
  stepops bench --rows 200000            # a quick run
  stepops bench --rows 1000000 --tls --no-peers   # TLS against plaintext
  stepops bench --rows 1000000 --key uuid         # uuid keys beside bigint keys";

/// Arguments of `stepops bench`.
#[derive(clap::Args, Debug)]
pub struct BenchArgs {
    /// Total sample rows (5,000,000 is about 1 GB of table data).
    #[arg(long, default_value_t = 5_000_000, value_name = "N")]
    pub rows: u64,
    /// Seed of the sample and of the mutations.
    #[arg(long, default_value_t = 1, value_name = "S")]
    pub seed: u64,
    /// Concurrency given to every tool (stepops --jobs, pgcopydb --table-jobs/--index-jobs,
    /// reladiff --threads); the default is stepops migrate's own default.
    #[arg(long, default_value_t = 4, value_name = "N")]
    pub jobs: usize,
    /// stepops --chunk-rows (default: stepops' own default).
    #[arg(long, value_name = "N")]
    pub chunk_rows: Option<u64>,
    /// Where the server's temporary directory and the tools' work files go.
    #[arg(long, value_name = "DIR")]
    pub workdir: Option<PathBuf>,
    /// Skip the peers (pgcopydb, pg_dump | psql, reladiff).
    #[arg(long)]
    pub no_peers: bool,
    /// Skip the row-by-row comparisons after the copies.
    #[arg(long)]
    pub no_verify: bool,
    /// wal_level of the destinations' server: `replica` (the default: what every replicated or
    /// managed PostgreSQL runs, Amazon RDS and Aurora included) or `minimal` (where a loader
    /// that truncates and copies in one transaction, as pgcopydb does, writes no WAL).
    #[arg(long, default_value = "replica", value_parser = ["minimal", "replica", "logical"], value_name = "LEVEL")]
    pub dest_wal_level: String,
    /// Keep the work directory (every tool's log; with RUST_LOG=stepops_migrate=debug the
    /// engine's timings) instead of deleting it at the end.
    #[arg(long)]
    pub keep: bool,
    /// Also run the full copy over TLS (sslmode=verify-full on both sides) and report it as a
    /// ratio of the plaintext copy.
    #[arg(long)]
    pub tls: bool,
    /// Also measure one table keyed by `uuid` beside the same table keyed by `bigint` (full
    /// copy, incremental, no-difference pass, and the peers on each): the ordered-key path
    /// against the integer fast path. `int`: the sample only.
    #[arg(long, default_value = "int", value_parser = ["int", "uuid"], value_name = "KIND")]
    pub key: String,
}
