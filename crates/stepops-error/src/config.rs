//! The migration's configuration types (`include`, `exclude`, `tables`, `status`,
//! `changeTracking`, `deferIndexes`), shared by the engine (`stepops-migrate`, which reads them
//! from YAML or from a step's `config` argument) and validate-input (which deserializes the same
//! types from the execution input), so a key added here is accepted everywhere at once.
//!
//! ```yaml
//! include: [users, projects, entities, acl]   # default: every table
//! exclude: [audit_log]
//! tables:
//!   acl:
//!     range_key: entity_id    # a child table moves with its parent's id range
//! changeTracking:             # PostgreSQL: compare only what the source changed
//!   slot: stepops_dev
//! ```

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::names::Pattern;
use crate::{ErrorName, Named};

/// A migration configuration that is not valid; the message says what to change.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct ConfigProblem(pub String);

impl Named for ConfigProblem {
    fn error_name(&self) -> ErrorName {
        ErrorName::InvalidInput
    }
}

/// The default of [`MigrationConfig::cut_over_settle_seconds`]: PostgreSQL's 10 s idle flush
/// interval of a backend's statistics, and a second of margin.
pub const DEFAULT_CUT_OVER_SETTLE_SECONDS: u64 = 11;

/// Which tables to migrate and how to cut them.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
#[serde(
    expecting = "an object {schemas, include, exclude, tables, status, changeTracking, deferIndexes, cutOver, cutOverSettleSeconds, statementTimeouts, wholeTableWarnRows, synapse}"
)]
pub struct MigrationConfig {
    /// PostgreSQL: the schemas to look for tables in; empty means every schema but the
    /// system's and stepops' own.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub schemas: Vec<String>,
    /// Tables to migrate, as patterns (`app.users`, `audit.*`, `*.tmp_*`; a name without a
    /// schema is in the source's default schema: [`crate::names`]); empty means every table.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub include: Vec<String>,
    /// Tables to leave alone, as patterns; exclusion wins over inclusion.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub exclude: Vec<String>,
    /// A table without a key is compared and copied whole; above this many rows the plan warns
    /// that every change re-copies it (default [`DEFAULT_WHOLE_TABLE_WARN_ROWS`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub whole_table_warn_rows: Option<u64>,
    /// Per-table settings, keyed by pattern.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub tables: BTreeMap<String, TableConfig>,
    /// The destination's application status table, for the read-only switch
    /// (`status: {table, column, readOnly, readWrite}`). It is never migrated itself.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<StatusConfig>,
    /// Change tracking on a PostgreSQL source through a logical replication slot
    /// (`changeTracking: {slot: NAME}`): after a first converged run, each comparison reads
    /// only the rows the source changed since the last one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub change_tracking: Option<TrackingConfig>,
    /// PostgreSQL destinations: load a table that is empty on the destination without its
    /// secondary indexes and build them after the copies (default `true`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub defer_indexes: Option<bool>,
    /// The source is quiesced for this run (a cut-over: read-only, or its writers stopped):
    /// after the copies, only the copied key ranges are compared again instead of every
    /// table, and the run fails `Stepops.Conflict` if the source is seen to change. Not with
    /// `changeTracking`. Default `false`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cut_over: Option<bool>,
    /// Cut-over mode on PostgreSQL: when other transactions ran on the source's server since
    /// the plan, how long to wait (seconds) for their row counts to reach the server's
    /// statistics before deciding the migrated tables were not written. PostgreSQL 15 and
    /// later report a writer's counts within 10 s of its commit; default
    /// [`DEFAULT_CUT_OVER_SETTLE_SECONDS`].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cut_over_settle_seconds: Option<u64>,
    /// PostgreSQL: the longest one statement of each step may run (seconds); a statement
    /// cancelled for it fails the step `Stepops.Transient`, which the machine retries. Defaults:
    /// [`StatementTimeouts::default`].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub statement_timeouts: Option<StatementTimeouts>,
    /// Synapse stacks (`synapse+https://…` targets): the service migration's settings
    /// (`include`, `skip`, `batchSize`, `rowsPerRange`, `remainReadOnly`, …), checked by the
    /// runner (`stepops_synapse::SynapseConfig`; docs/synapse-migration.md).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub synapse: Option<serde_json::Value>,
}

/// Per-step statement timeouts in seconds (`statementTimeouts: {plan, copy, verify}`); a key
/// left out keeps its default, 0 means none.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
#[serde(expecting = "an object such as {\"plan\": 21600, \"copy\": 3600, \"verify\": 21600}")]
pub struct StatementTimeouts {
    /// A plan's statements (bin checksums over whole tables): 6 hours, the Plan state's limit.
    #[serde(default = "six_hours")]
    pub plan: u64,
    /// A chunk's statements: 1 hour, the CopyChunk state's limit.
    #[serde(default = "one_hour")]
    pub copy: u64,
    /// A verification's statements: 6 hours, the Verify state's limit.
    #[serde(default = "six_hours")]
    pub verify: u64,
}

fn six_hours() -> u64 {
    6 * 3600
}

fn one_hour() -> u64 {
    3600
}

impl Default for StatementTimeouts {
    fn default() -> Self {
        StatementTimeouts {
            plan: six_hours(),
            copy: one_hour(),
            verify: six_hours(),
        }
    }
}

/// Settings of one table.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
#[serde(expecting = "an object such as {\"rangeKey\": \"id\"}")]
pub struct TableConfig {
    /// The integer column whose ranges make the chunks (default: the single integer primary
    /// key, or the leading integer column of the primary key when it references a keyed table).
    #[serde(default, alias = "range_key", skip_serializing_if = "Option::is_none")]
    pub range_key: Option<String>,
}

/// An application status table that says whether the stack is read-only (`status:` in the
/// migration config).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
#[serde(expecting = "an object {table, column, readOnly, readWrite}")]
pub struct StatusConfig {
    /// The table (in the connection's current schema on PostgreSQL).
    pub table: String,
    /// The column holding the status (text, or any type the values below convert to).
    pub column: String,
    /// The column's value meaning read-only (e.g. `READ_ONLY`).
    #[serde(alias = "read_only")]
    pub read_only: String,
    /// The column's value meaning read-write (e.g. `READ_WRITE`).
    #[serde(alias = "read_write")]
    pub read_write: String,
}

/// `changeTracking` in the migration config.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
#[serde(expecting = "an object {slot, fullCheck}")]
pub struct TrackingConfig {
    /// Name of the logical replication slot on the source (created on first use): lower-case
    /// letters, digits and underscores, at most 63. One per migration (source → destination).
    pub slot: String,
    /// Compare every row this run, as without tracking, and record a new marker when equal
    /// (for example once before a switch-over, or to catch changes made on the destination).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub full_check: bool,
}

/// Rows above which a table without a key makes the plan warn.
pub const DEFAULT_WHOLE_TABLE_WARN_ROWS: u64 = 1_000_000;

/// A PostgreSQL replication slot name as stepops creates them.
pub fn valid_slot_name(slot: &str) -> bool {
    !slot.is_empty()
        && slot.len() <= 63
        && slot
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_')
}

const EXPECTED: &str = "schemas, include, exclude, wholeTableWarnRows, tables.<name>.rangeKey, status: {table, column, readOnly, readWrite}, changeTracking: {slot, fullCheck}, deferIndexes, statementTimeouts: {plan, copy, verify}";

impl MigrationConfig {
    /// Parses YAML (JSON is YAML too) and checks it ([`MigrationConfig::problems`]).
    pub fn from_yaml(text: &str) -> Result<MigrationConfig, ConfigProblem> {
        let config: MigrationConfig = serde_norway::from_str(text).map_err(|e| {
            ConfigProblem(format!(
                "invalid migration config: {e}. Expected keys: {EXPECTED}"
            ))
        })?;
        refuse(config.problems("")).map(|()| config)
    }

    /// Reads a YAML/JSON file.
    pub fn load(path: &std::path::Path) -> Result<MigrationConfig, ConfigProblem> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| ConfigProblem(format!("cannot read config {}: {e}", path.display())))?;
        MigrationConfig::from_yaml(&text)
    }

    /// Deserializes the JSON object `value` (an execution input's `config`, named `field`) and
    /// checks it; every problem is reported with its path (`` `config.status` ``).
    pub fn from_json(field: &str, value: &Value) -> Result<MigrationConfig, Vec<String>> {
        let config: MigrationConfig = serde_path_to_error::deserialize(value).map_err(|e| {
            let path = e.path().to_string();
            let at = if path == "." {
                field.to_owned()
            } else {
                format!("{field}.{path}")
            };
            vec![format!("`{at}`: {}", e.into_inner())]
        })?;
        let problems = config.problems(&format!("{field}."));
        if problems.is_empty() {
            Ok(config)
        } else {
            Err(problems)
        }
    }

    /// What is wrong beyond the shape: empty table or column names, a status switch whose two
    /// values are equal or whose table is in `include`, an invalid slot name. Each problem
    /// names its key after `prefix` (`config.` in an execution input).
    pub fn problems(&self, prefix: &str) -> Vec<String> {
        let mut problems = Vec::new();
        for (key, list) in [("include", &self.include), ("exclude", &self.exclude)] {
            if list.iter().any(|t| t.trim().is_empty()) {
                problems.push(format!(
                    "`{prefix}{key}` holds an empty table name: list table names"
                ));
            }
            for entry in list.iter().filter(|t| !t.trim().is_empty()) {
                if let Err(why) = Pattern::parse(entry) {
                    problems.push(format!("`{prefix}{key}`: {why}"));
                }
            }
        }
        if self.schemas.iter().any(|s| s.is_empty()) {
            problems.push(format!(
                "`{prefix}schemas` holds an empty schema name: list schema names"
            ));
        }
        for (table, settings) in &self.tables {
            if let Err(why) = Pattern::parse(table) {
                problems.push(format!("`{prefix}tables`: {why}"));
            }
            if settings
                .range_key
                .as_ref()
                .is_some_and(|k| k.trim().is_empty())
            {
                problems.push(format!(
                    "`{prefix}tables.{table}.rangeKey` must be a column name (a non-empty string)"
                ));
            }
        }
        if let Some(status) = &self.status {
            problems.extend(status.problems(prefix));
            if self.include.contains(&status.table) {
                problems.push(format!(
                    "`{prefix}include` names the status table `{}`, which is never migrated: remove it",
                    status.table
                ));
            }
        }
        if let Some(tracking) = &self.change_tracking
            && let Err(e) = tracking.validate()
        {
            problems.push(format!("`{prefix}changeTracking.slot`: {e}"));
        }
        if let Some(t) = &self.statement_timeouts {
            for (step, seconds) in [("plan", t.plan), ("copy", t.copy), ("verify", t.verify)] {
                if seconds > 7 * 24 * 3600 {
                    problems.push(format!(
                        "`{prefix}statementTimeouts.{step}` is {seconds} s: at most 604800 (a \
                         week), or 0 for none"
                    ));
                }
            }
        }
        problems
    }

    /// The statement timeouts, with the defaults for what the config leaves out.
    pub fn statement_timeouts(&self) -> StatementTimeouts {
        self.statement_timeouts.unwrap_or_default()
    }

    /// Whether `schema.table` is selected by `include`/`exclude` (never the status table,
    /// which is a table of the default schema); `default_schema` is where patterns without a
    /// schema look. Patterns that do not parse select nothing (they are refused by
    /// [`MigrationConfig::problems`] first).
    pub fn selects(&self, schema: &str, table: &str, default_schema: &str) -> bool {
        let hit =
            |p: &String| Pattern::parse(p).is_ok_and(|p| p.matches(schema, table, default_schema));
        (self.include.is_empty() || self.include.iter().any(hit))
            && !self.exclude.iter().any(hit)
            && self
                .status
                .as_ref()
                .is_none_or(|s| !(s.table == table && schema == default_schema))
    }

    /// The settings of `schema.table`: the first `tables` entry whose pattern matches it.
    pub fn table(&self, schema: &str, table: &str, default_schema: &str) -> Option<&TableConfig> {
        self.tables.iter().find_map(|(p, c)| {
            Pattern::parse(p)
                .is_ok_and(|p| p.matches(schema, table, default_schema))
                .then_some(c)
        })
    }

    /// The size above which a table without a key makes the plan warn.
    pub fn whole_table_warn_rows(&self) -> u64 {
        self.whole_table_warn_rows
            .unwrap_or(DEFAULT_WHOLE_TABLE_WARN_ROWS)
    }
}

/// `problems` as one error, or none.
fn refuse(problems: Vec<String>) -> Result<(), ConfigProblem> {
    if problems.is_empty() {
        Ok(())
    } else {
        Err(ConfigProblem(format!(
            "invalid migration config: {}",
            problems.join("; ")
        )))
    }
}

impl StatusConfig {
    fn problems(&self, prefix: &str) -> Vec<String> {
        let mut problems = Vec::new();
        for (key, v) in [
            ("table", &self.table),
            ("column", &self.column),
            ("readOnly", &self.read_only),
            ("readWrite", &self.read_write),
        ] {
            if v.trim().is_empty() {
                problems.push(format!("`{prefix}status.{key}` must be a non-empty string"));
            }
        }
        if self.read_only == self.read_write {
            problems.push(format!(
                "`{prefix}status.readOnly` and `{prefix}status.readWrite` are both `{}`: they must differ",
                self.read_only
            ));
        }
        problems
    }

    /// Checks the names and values: non-empty, the two values different.
    pub fn check(&self) -> Result<(), ConfigProblem> {
        refuse(self.problems(""))
    }
}

impl TrackingConfig {
    /// Checks the slot name as PostgreSQL requires it.
    pub fn validate(&self) -> Result<(), ConfigProblem> {
        if valid_slot_name(&self.slot) {
            Ok(())
        } else {
            Err(ConfigProblem(format!(
                "changeTracking.slot {:?} is not a valid replication slot name: use 1 to 63 lower-case letters, digits and underscores (for example stepops_dev)",
                self.slot
            )))
        }
    }
}

/// The SSM parameters holding the Synapse service keys that `config.synapse` names
/// (`sourceKeyParameter`, `destKeyParameter`), as `(target field, reference)`: checked against
/// the stack's allow-list like the targets themselves. A value that is not a non-empty string is
/// an error naming the field.
pub fn synapse_key_parameters(
    config: Option<&Value>,
) -> Result<Vec<(&'static str, crate::TargetRef)>, String> {
    let Some(synapse) = config.and_then(|c| c.get("synapse")) else {
        return Ok(Vec::new());
    };
    let mut found = Vec::new();
    for (field, key) in [
        ("source", "sourceKeyParameter"),
        ("dest", "destKeyParameter"),
    ] {
        match synapse.get(key) {
            None | Some(Value::Null) => {}
            Some(Value::String(name)) if !name.trim().is_empty() => found.push((
                field,
                crate::TargetRef {
                    kind: crate::TargetKind::Parameter,
                    name: name.clone(),
                },
            )),
            Some(other) => {
                return Err(format!(
                    "`config.synapse.{key}` must be the name of an SSM parameter holding the \
                     {field} stack's service key, got {other}"
                ));
            }
        }
    }
    Ok(found)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn parses_yaml_and_selects() {
        let c = MigrationConfig::from_yaml(
            "include: [a, acl]\nexclude: [b]\ntables:\n  acl:\n    range_key: entity_id\n",
        )
        .unwrap();
        assert!(c.selects("public", "a", "public"));
        assert!(!c.selects("public", "b", "public"));
        assert!(!c.selects("public", "c", "public"));
        assert_eq!(c.tables["acl"].range_key.as_deref(), Some("entity_id"));
        let e = MigrationConfig::from_yaml("inclde: [a]").unwrap_err();
        assert_eq!(e.error_name(), ErrorName::InvalidInput);
        assert!(e.to_string().contains("Expected keys"), "{e}");
    }

    #[test]
    fn json_problems_name_their_path() {
        for (config, says) in [
            (
                json!({"exlude": ["a"]}),
                "`config.exlude`: unknown field `exlude`",
            ),
            (json!({"exclude": "a"}), "`config.exclude`: invalid type"),
            (
                json!({"status": {"table": "s", "column": "c", "readOnly": "RO", "readWrite": "RW", "row": 1}}),
                "`config.status.row`: unknown field `row`",
            ),
            (
                json!({"status": {"table": "s", "column": "c", "readOnly": "RO"}}),
                "`config.status`: missing field `readWrite`",
            ),
            (
                json!({"status": {"table": "s", "column": "c", "readOnly": "X", "readWrite": "X"}}),
                "they must differ",
            ),
            (
                json!({"include": ["s"], "status": {"table": "s", "column": "c", "readOnly": "A", "readWrite": "B"}}),
                "names the status table `s`",
            ),
            (
                json!({"status": "s"}),
                "expected an object {table, column, readOnly, readWrite}",
            ),
            (
                json!({"changeTracking": {"slot": "Bad-Slot"}}),
                "not a valid replication slot name",
            ),
            (
                json!({"deferIndexes": "yes"}),
                "`config.deferIndexes`: invalid type",
            ),
            (
                json!({"tables": {"acl": {"rangeKey": ""}}}),
                "`config.tables.acl.rangeKey`",
            ),
        ] {
            let problems = MigrationConfig::from_json("config", &config).unwrap_err();
            assert!(
                problems.iter().any(|p| p.contains(says)),
                "{config}: {problems:?}"
            );
        }
        let ok = json!({"tables": {"acl": {"range_key": "entity_id"}}, "deferIndexes": false});
        let c = MigrationConfig::from_json("config", &ok).unwrap();
        assert_eq!(c.defer_indexes, Some(false));
    }
}
