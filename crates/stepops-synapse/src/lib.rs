//! The Synapse service's admin migration API as a stepops stack (`synapse+https://KEY:SECRET@
//! repo-prod.prod.sagebase.org/repo/v1`): the protocol ([`protocol`]), a client with named
//! errors ([`client`]), and the migration in resumable steps the runner drives:
//! - [`plan`]: compare both stacks type by type and cut what differs into one chunk per type
//!   (its ranges), the change-log type alone once every other type is equal;
//! - [`copy_chunk`]: back up each range on the source and restore it on the destination, one
//!   restore of the type at a time, every job recorded in a [`Journal`];
//! - [`verify`]: compare again (a fresh salt); the types that still differ;
//! - [`set_read_only`]: the destination's status switch.
//!
//! Ids: every range in this crate is inclusive `[lo, hi]`; on the wire `maximumId` (and
//! `maximumRowId`) is sent exclusive, `hi + 1` ([`MAXIMUM_ID_EXCLUSIVE`]).

pub mod client;
pub mod config;
pub mod copy;
pub mod error;
pub mod plan;
pub mod protocol;
pub mod status;

pub use client::{ClientOptions, SynapseClient, is_synapse_url, with_service_key};
pub use config::SynapseConfig;
pub use copy::{CopyReport, Journal, MemoryJournal, RangeState, range_key};
pub use error::{Result, SynapseError};
pub use plan::TypeDiff;
pub use status::StatusReport;

/// stepops sends `maximumId`/`maximumRowId` as an exclusive bound (`hi + 1`), as the service's
/// model documents. Should a service read it as inclusive, a backup and the restore of the
/// same range both take one id more: still consistent (the range is deleted and restored as a
/// whole) and still idempotent. docs/synapse-migration.md says how the fake proves it.
pub const MAXIMUM_ID_EXCLUSIVE: bool = true;

fn clients(
    source: &str,
    dest: &str,
    config: &SynapseConfig,
) -> Result<(SynapseClient, SynapseClient)> {
    let o = config.client_options();
    Ok((
        SynapseClient::from_url(source, o)?,
        SynapseClient::from_url(dest, o)?,
    ))
}

/// Plans one round: what differs, one [`TypeDiff`] per type, in migration order. The
/// change-log type is left out while any other type differs (it is restored alone, after all
/// others: a later round).
pub async fn plan(
    source: &str,
    dest: &str,
    config: &SynapseConfig,
    chunk_rows: u64,
) -> Result<Vec<TypeDiff>> {
    let (s, d) = clients(source, dest, config)?;
    let types = plan::selected_types(&s, &d, config).await?;
    let mut diffs =
        plan::compare(&s, &d, config, &types, config.rows_per_range(chunk_rows)).await?;
    if diffs.iter().any(|t| t.type_name != config.change_log_type) {
        diffs.retain(|t| t.type_name != config.change_log_type);
    }
    Ok(diffs)
}

/// The types that still differ (empty: converged).
pub async fn verify(
    source: &str,
    dest: &str,
    config: &SynapseConfig,
    chunk_rows: u64,
) -> Result<Vec<String>> {
    let (s, d) = clients(source, dest, config)?;
    let types = plan::selected_types(&s, &d, config).await?;
    let diffs = plan::compare(&s, &d, config, &types, config.rows_per_range(chunk_rows)).await?;
    Ok(diffs.into_iter().map(|t| t.type_name).collect())
}

/// Copies one chunk: `ranges` (inclusive, ascending) of `type_name`.
pub async fn copy_chunk<J: Journal>(
    source: &str,
    dest: &str,
    config: &SynapseConfig,
    type_name: &str,
    ranges: &[(i64, i64)],
    journal: &J,
) -> Result<CopyReport> {
    let (s, d) = clients(source, dest, config)?;
    copy::copy_type(&s, &d, config, type_name, ranges, journal).await
}

/// Sets the stack at `url` read-only or read-write ([`status::set_read_only`]).
pub async fn set_read_only(
    url: &str,
    config: &SynapseConfig,
    read_only: bool,
) -> Result<StatusReport> {
    let c = SynapseClient::from_url(url, config.client_options())?;
    status::set_read_only(&c, config, read_only).await
}
