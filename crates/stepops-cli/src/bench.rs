//! `stepops bench`: the migration benchmark (`stepops-bench`), measuring this very executable's
//! `migrate` beside its peers.

use anyhow::Context as _;
pub use stepops_bench::BenchArgs;

/// Runs `stepops bench`.
pub async fn run(args: BenchArgs) -> anyhow::Result<()> {
    let exe = std::env::current_exe().context("cannot find the stepops executable")?;
    stepops_bench::run(args, exe).await
}
