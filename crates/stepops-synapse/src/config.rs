//! The Synapse migration's configuration: the `config` object of a migration's input when both
//! stacks are `synapse+…` URLs.

use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::client::ClientOptions;
use crate::error::{Result, SynapseError};

/// The service's change-log type: restored alone, after every other type.
pub const DEFAULT_CHANGE_LOG_TYPE: &str = "CHANGE";

/// Configuration of a Synapse migration (every field optional).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct SynapseConfig {
    /// Migrate only these primary types (empty: all).
    #[serde(default)]
    pub include: Vec<String>,
    /// Never migrate these primary types.
    #[serde(default, alias = "exclude")]
    pub skip: Vec<String>,
    /// Rows per batch of the service's backup and restore writes.
    #[serde(default = "default_batch_size")]
    pub batch_size: i64,
    /// Rows per backup/restore range (the copy's unit); default: the run's `chunkRows`.
    #[serde(default)]
    pub rows_per_range: Option<i64>,
    /// Ids per checksum bin; default: `rowsPerRange`.
    #[serde(default)]
    pub checksum_bin_width: Option<i64>,
    /// The change-log type, restored alone once every other type is equal.
    #[serde(default = "default_change_log")]
    pub change_log_type: String,
    /// `TABLE_NAME` (the service client's default) or `MIGRATION_TYPE_NAME`.
    #[serde(default = "default_alias")]
    pub alias_type: String,
    /// Keep the destination READ_ONLY at the end of the run (set-status read-write is a no-op).
    #[serde(default)]
    pub remain_read_only: bool,
    /// Backups running ahead of a type's (one-at-a-time) restores.
    #[serde(default = "default_ahead")]
    pub backups_ahead: usize,
    /// Longest wait between two polls of a job, in milliseconds.
    #[serde(default = "default_poll_max")]
    pub poll_max_ms: u64,
    /// One HTTP request's timeout, in seconds.
    #[serde(default = "default_timeout")]
    pub request_timeout_seconds: u64,
    /// Also compare each type's full-table checksum (every column of every row, not only ids
    /// and etags) wherever the batch checksums match, and copy a type whose full checksums
    /// differ whole. The service refuses it on a READ_WRITE stack: both stacks must be
    /// READ_ONLY (a cut-over), else the plan fails `Stepops.InvalidInput`.
    #[serde(default)]
    pub full_table_checksum: bool,
    /// An SSM parameter holding the source stack's service key (the runner puts it in the
    /// target URL's user part; the secret then holds `synapse+https://:SECRET@HOST/repo/v1`).
    #[serde(default)]
    pub source_key_parameter: Option<String>,
    /// The same for the destination stack.
    #[serde(default)]
    pub dest_key_parameter: Option<String>,
}

fn default_batch_size() -> i64 {
    50_000
}
fn default_change_log() -> String {
    DEFAULT_CHANGE_LOG_TYPE.into()
}
fn default_alias() -> String {
    "TABLE_NAME".into()
}
fn default_ahead() -> usize {
    2
}
fn default_poll_max() -> u64 {
    5_000
}
fn default_timeout() -> u64 {
    60
}

impl Default for SynapseConfig {
    fn default() -> Self {
        serde_json::from_value(serde_json::json!({})).expect("defaults")
    }
}

impl SynapseConfig {
    /// Reads the `synapse` block of a migration's `config` (absent: the defaults).
    ///
    /// Errors: `Stepops.InvalidInput` naming the field.
    pub fn from_migration_config(config: &serde_json::Value) -> Result<SynapseConfig> {
        SynapseConfig::from_json(config.get("synapse").unwrap_or(&serde_json::Value::Null))
    }

    /// Parses a `synapse` block (`null`: the defaults).
    ///
    /// Errors: `Stepops.InvalidInput` naming the field.
    pub fn from_json(value: &serde_json::Value) -> Result<SynapseConfig> {
        let value = if value.is_null() {
            serde_json::json!({})
        } else {
            value.clone()
        };
        let c: SynapseConfig = serde_json::from_value(value).map_err(|e| {
            SynapseError::InvalidInput(format!(
                "argument `config.synapse`: {e}; expected {{include?: [TYPE], \
                 skip?: [TYPE], batchSize?, rowsPerRange?, checksumBinWidth?, changeLogType?, \
                 aliasType?, remainReadOnly?, backupsAhead?, pollMaxMs?, requestTimeoutSeconds?, \
                 fullTableChecksum?, sourceKeyParameter?, destKeyParameter?}}"
            ))
        })?;
        if c.batch_size < 1
            || c.rows_per_range.is_some_and(|r| r < 1)
            || c.checksum_bin_width.is_some_and(|r| r < 1)
        {
            return Err(SynapseError::InvalidInput(
                "config: batchSize, rowsPerRange and checksumBinWidth must be at least 1".into(),
            ));
        }
        if c.backups_ahead == 0 || c.backups_ahead > 16 {
            return Err(SynapseError::InvalidInput(
                "config: backupsAhead must be 1 to 16".into(),
            ));
        }
        if !["TABLE_NAME", "MIGRATION_TYPE_NAME"].contains(&c.alias_type.as_str()) {
            return Err(SynapseError::InvalidInput(
                "config: aliasType must be TABLE_NAME or MIGRATION_TYPE_NAME".into(),
            ));
        }
        Ok(c)
    }

    /// Rows per range for a run whose `chunkRows` is `chunk_rows`.
    pub fn rows_per_range(&self, chunk_rows: u64) -> i64 {
        self.rows_per_range
            .unwrap_or(chunk_rows.clamp(1, i64::MAX as u64) as i64)
    }

    /// The client options this configuration asks for.
    pub fn client_options(&self) -> ClientOptions {
        ClientOptions {
            request_timeout: Duration::from_secs(self.request_timeout_seconds.max(1)),
            poll_max: Duration::from_millis(self.poll_max_ms.max(10)),
            poll_initial: Duration::from_millis(self.poll_max_ms.clamp(10, 100)),
            ..ClientOptions::default()
        }
    }
}
