//! The optional migration configuration (YAML or JSON): which tables, and their range keys.
//!
//! ```yaml
//! include: [users, projects, entities, acl]   # default: every table
//! exclude: [audit_log]
//! tables:
//!   acl:
//!     range_key: entity_id    # a child table moves with its parent's id range
//! changeTracking:             # PostgreSQL: compare only what the source changed (crate::track)
//!   slot: stepops_dev
//! ```

use crate::error::{MigrateError, Result};
use crate::status::StatusConfig;
use crate::track::TrackingConfig;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::Path;

/// Which tables to migrate and how to cut them.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct Config {
    /// Tables to migrate; empty means every table of the source.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub include: Vec<String>,
    /// Tables to leave alone.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub exclude: Vec<String>,
    /// Per-table settings.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub tables: BTreeMap<String, TableConfig>,
    /// The destination's application status table, for the read-only switch
    /// (`status: {table, column, readOnly, readWrite}`, see [`crate::status`]). It is never
    /// migrated itself.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<StatusConfig>,
    /// Change tracking on a PostgreSQL source through a logical replication slot
    /// (`changeTracking: {slot: NAME}`, see [`crate::track`]): after a first converged run,
    /// each comparison reads only the rows the source changed since the last one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub change_tracking: Option<TrackingConfig>,
    /// PostgreSQL destinations: load a table that is empty on the destination without its
    /// secondary indexes and build them after the copies (default `true`; see
    /// [`crate::defer`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub defer_indexes: Option<bool>,
}

/// Settings of one table.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct TableConfig {
    /// The integer column whose ranges make the chunks (default: the single integer primary
    /// key, or the leading integer column of the primary key when it references a keyed table).
    #[serde(default, alias = "range_key", skip_serializing_if = "Option::is_none")]
    pub range_key: Option<String>,
}

impl Config {
    /// Parses YAML (JSON is YAML too).
    pub fn from_yaml(text: &str) -> Result<Config> {
        serde_norway::from_str(text).map_err(|e| {
            MigrateError::InvalidInput(format!(
                "invalid migration config: {e}. Expected keys: include, exclude, tables.<name>.range_key, status: {{table, column, readOnly, readWrite}}, changeTracking: {{slot, fullCheck}}, deferIndexes"
            ))
        })
        .and_then(|c: Config| {
            if let Some(t) = &c.change_tracking {
                t.validate()?;
            }
            Ok(c)
        })
    }

    /// Reads a YAML/JSON file.
    pub fn load(path: &Path) -> Result<Config> {
        let text = std::fs::read_to_string(path).map_err(|e| {
            MigrateError::InvalidInput(format!("cannot read config {}: {e}", path.display()))
        })?;
        Config::from_yaml(&text)
    }

    /// Whether the table is selected by include/exclude (never the status table; stepops'
    /// own tables live in their own schema, never discovered).
    pub fn selects(&self, table: &str) -> bool {
        (self.include.is_empty() || self.include.iter().any(|t| t == table))
            && !self.exclude.iter().any(|t| t == table)
            && self.status.as_ref().is_none_or(|s| s.table != table)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_yaml_and_selects() {
        let c = Config::from_yaml(
            "include: [a, acl]\nexclude: [b]\ntables:\n  acl:\n    range_key: entity_id\n",
        )
        .unwrap();
        assert!(c.selects("a"));
        assert!(!c.selects("b"));
        assert!(!c.selects("c"));
        assert_eq!(c.tables["acl"].range_key.as_deref(), Some("entity_id"));
        let e = Config::from_yaml("inclde: [a]").unwrap_err();
        assert_eq!(
            stepops_error::Named::error_name(&e),
            stepops_error::ErrorName::InvalidInput
        );
    }
}
