//! The migration's steps as one call each (the runner's activity steps and the CLI's
//! one-process loop): each opens both stacks with the step's statement timeout and runs one
//! [`Migration`] method.

use crate::track;
use crate::{
    Chunk, Config, CopyReport, MigrateError, MigrateOptions, Migration, Plan, PlanOptions,
    Progress, Result, Stacks, Summary, TrackingState, TrackingStatus, VerifyReport,
};

/// Opens both stacks for one step, with that step's statement timeout (seconds, 0 = none).
async fn open_step(source: &str, dest: &str, config: &Config, timeout: u64) -> Result<Migration> {
    let m = Migration::open(source, dest, config).await?;
    m.set_statement_timeout(timeout);
    Ok(m)
}

/// Step `plan`: opens both stacks and plans (writes nothing).
pub async fn plan(
    source: &str,
    dest: &str,
    config: &Config,
    options: &PlanOptions,
) -> Result<Plan> {
    open_step(source, dest, config, config.statement_timeouts().plan)
        .await?
        .plan(options)
        .await
}

/// Step `copy`: opens both stacks and copies one chunk.
pub async fn copy_chunk(
    source: &str,
    dest: &str,
    config: &Config,
    chunk: &Chunk,
) -> Result<CopyReport> {
    open_step(source, dest, config, config.statement_timeouts().copy)
        .await?
        .copy_chunk(chunk)
        .await
}

/// Step `verify`: opens both stacks and verifies (see [`Migration::verify`]).
pub async fn verify(
    source: &str,
    dest: &str,
    config: &Config,
    round: u32,
    max_rounds: u32,
    baseline: Option<&TrackingState>,
) -> Result<VerifyReport> {
    open_step(source, dest, config, config.statement_timeouts().verify)
        .await?
        .verify(round, max_rounds, baseline)
        .await
}

/// Step `verify` in cut-over mode (`cutOver` in the config): opens both stacks and compares
/// only what the round's plan `copied` (see [`Migration::verify_copied`]).
pub async fn verify_copied(
    source: &str,
    dest: &str,
    config: &Config,
    round: u32,
    max_rounds: u32,
    copied: &Plan,
) -> Result<VerifyReport> {
    open_step(source, dest, config, config.statement_timeouts().verify)
        .await?
        .verify_copied(round, max_rounds, copied)
        .await
}

/// The change-tracking slot and marker of `config.changeTracking` (reads only).
pub async fn tracking_status(source: &str, dest: &str, config: &Config) -> Result<TrackingStatus> {
    let m = Migration::open(source, dest, config).await?;
    match (&m.tracking, &m.stacks) {
        (Some(t), Stacks::Pg(s, d)) => track::status(s, d, t).await,
        _ => Err(MigrateError::InvalidInput(
            "the config has no changeTracking: {slot: NAME}".into(),
        )),
    }
}

/// Stops change tracking: drops the source's slot (it no longer keeps WAL) and deletes the
/// destination's marker (the next run compares every row). Returns whether each existed.
pub async fn stop_tracking(source: &str, dest: &str, config: &Config) -> Result<(bool, bool)> {
    let m = Migration::open(source, dest, config).await?;
    match (&m.tracking, &m.stacks) {
        (Some(t), Stacks::Pg(s, d)) => track::stop(s, d, t).await,
        _ => Err(MigrateError::InvalidInput(
            "the config has no changeTracking: {slot: NAME}".into(),
        )),
    }
}

/// The whole loop in one process: plan → copy (`jobs` chunks at a time) → re-plan, until equal
/// or `Stepops.NotConverged` after `max_rounds` rounds of copying.
pub async fn migrate(
    source: &str,
    dest: &str,
    config: &Config,
    options: &MigrateOptions,
    progress: &dyn Progress,
) -> Result<Summary> {
    Migration::open(source, dest, config)
        .await?
        .run(options, progress)
        .await
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::NoProgress;

    fn assert_send<T: Send>(_: &T) {}

    /// The runner spawns the steps on a multi-threaded runtime: their futures must be `Send`.
    #[test]
    fn step_futures_are_send() {
        let c = Config::default();
        let chunk = Chunk {
            table: "t".into(),
            min: 1,
            max: 2,
            estimated_rows: 1,
            ranges: Vec::new(),
            keys: Vec::new(),
            whole_table: false,
        };
        assert_send(&plan("sqlite:a", "sqlite:b", &c, &PlanOptions::default()));
        assert_send(&copy_chunk("sqlite:a", "sqlite:b", &c, &chunk));
        assert_send(&verify("sqlite:a", "sqlite:b", &c, 1, 2, None));
        assert_send(&migrate(
            "sqlite:a",
            "sqlite:b",
            &c,
            &MigrateOptions::default(),
            &NoProgress,
        ));
    }
}
