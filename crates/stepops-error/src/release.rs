//! What the runner's `release` step answers after a failed migration
//! (`statemachine/release.asl.json`), as the notify function reads it: whether the destination
//! was put back read-write, and the run's last chunk that failed for good.

use serde::{Deserialize, Serialize};

/// The `release` step's output.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ReleaseOutcome {
    /// Whether the destination was put back read-write.
    #[serde(default)]
    pub released: bool,
    /// Whether it is read-only now (`None`: this run never touched its status).
    #[serde(default)]
    pub read_only: Option<bool>,
    /// Why, in one sentence.
    #[serde(default)]
    pub reason: String,
    /// The run's last chunk that failed for good, if one did.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub chunk_failure: Option<ChunkFailure>,
}

/// A chunk that failed for good, as the copy step saw it (the cause redacted).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ChunkFailure {
    /// The chunk's table (a Synapse stack: its type).
    pub table: String,
    /// Its range's start.
    pub min: i64,
    /// Its range's end.
    pub max: i64,
    /// The `Stepops.*` error name.
    pub error: String,
    /// What went wrong, without secrets.
    pub cause: String,
}
