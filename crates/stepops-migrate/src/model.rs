//! The data the steps exchange. Everything here is serde-serialisable (camelCase JSON) so each
//! step can run in another process, on another machine, from its JSON input alone.

use serde::{Deserialize, Serialize};

/// A column as the database describes it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Column {
    /// Column name.
    pub name: String,
    /// The column's type as the engine spells it (`bigint`, `numeric(10,2)`, `INTEGER`, …).
    pub sql_type: String,
    /// Whether it may hold NULL (a range key may not: such rows would be in no range).
    #[serde(default)]
    pub nullable: bool,
    /// Whether its ordering depends on a collation (text-like types): as a key it is ordered
    /// by its UTF-8 bytes on both sides, whatever their collations.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub collatable: bool,
    /// Whether its values have a fixed width (PostgreSQL `typlen > 0`: uuid, dates and times,
    /// floats, enums), which `width_bucket` searches quickly.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub fixed_width: bool,
}

/// A foreign key of a table.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ForeignKey {
    /// Referencing columns.
    pub columns: Vec<String>,
    /// Referenced table (display name, [`stepops_error::names`]).
    pub ref_table: String,
}

/// Where a table lives: its schema and its own name there (`schema` and `relname` in the
/// JSON of the tables that hold it).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Relation {
    /// The schema (empty on SQLite).
    #[serde(default)]
    pub schema: String,
    /// The table's own name within its schema.
    #[serde(default)]
    pub relname: String,
}

/// A table as discovered in one stack.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TableSchema {
    /// Display name: `schema.table` on PostgreSQL, the bare name on SQLite
    /// ([`stepops_error::names::display`]).
    pub name: String,
    /// Where it lives: its schema and its own name there.
    #[serde(flatten)]
    pub relation: Relation,
    /// Whether the source's default schema (the first of its search path) holds it.
    #[serde(default)]
    pub in_default_schema: bool,
    /// Columns of type `oid` (large objects referenced by number are not migrated).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub large_object_columns: Vec<String>,
    /// Columns in table order.
    pub columns: Vec<Column>,
    /// Primary key columns, in key order (empty: none).
    pub primary_key: Vec<String>,
    /// Foreign keys.
    pub foreign_keys: Vec<ForeignKey>,
    /// Column lists of the unique keys (primary key, unique constraints and unique indexes on
    /// plain columns, without partial or expression indexes).
    #[serde(default)]
    pub unique_keys: Vec<Vec<String>>,
}

/// How a table's rows are cut into ranges.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum KeyKind {
    /// One integer column: arithmetic bins ([`crate::plan`]).
    #[default]
    Integer,
    /// Any other orderable key, one or several columns: bins cut at key values read from the
    /// source ([`crate::ordered`]).
    Ordered,
    /// No usable key: the table is compared and copied whole ([`crate::ordered`]).
    Whole,
}

/// A column of a non-integer key, with what ordering and casting it needs.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct KeyColumn {
    /// Column name.
    pub name: String,
    /// Its type as the engine spells it (values are cast back from text to it).
    pub sql_type: String,
    /// Ordered by UTF-8 bytes rather than by a collation.
    #[serde(default)]
    pub collatable: bool,
    /// Values of a fixed width ([`Column::fixed_width`]).
    #[serde(default)]
    pub fixed_width: bool,
}

/// A table selected for migration: a *type* in the design's words.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TableSpec {
    /// Display name (`schema.table` on PostgreSQL, [`stepops_error::names`]).
    pub name: String,
    /// Where it lives: its schema and its own name there.
    #[serde(flatten)]
    pub relation: Relation,
    /// How rows are cut into ranges.
    #[serde(default)]
    pub key: KeyKind,
    /// [`KeyKind::Ordered`]: the key's columns, in key order.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub key_columns: Vec<KeyColumn>,
    /// [`KeyKind::Integer`]: the integer column whose ranges make chunks; otherwise the key's
    /// columns joined by `, ` (for messages).
    pub range_key: String,
    /// Whether the range key is unique (the primary key) or a parent id shared by many rows.
    pub key_is_unique: bool,
    /// All column names, sorted (the order rows are hashed and copied in).
    pub columns: Vec<String>,
    /// The columns' types, as the engine spells them, in `columns` order.
    #[serde(default)]
    pub types: Vec<String>,
    /// Tables this one references (selected ones only, itself excluded).
    pub parents: Vec<String>,
    /// Primary key columns, in key order (empty: none).
    #[serde(default)]
    pub primary_key: Vec<String>,
    /// The destination's unique keys that do not contain the range key: a row may hold such a
    /// value under another range key on the destination (a child moved to another parent, a
    /// unique name passed from one row to another), so a copy also deletes the destination's
    /// rows that collide with the incoming ones on them.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub conflict_keys: Vec<Vec<String>>,
}

/// `min`, `max` and `count` of a range key on one side.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct KeyStats {
    /// Smallest key (`None`: empty table).
    pub min: Option<i64>,
    /// Largest key.
    pub max: Option<i64>,
    /// Row count.
    pub count: u64,
}

/// One checksum bin: the rows whose `(key - base) / width` is `bin`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Bin {
    /// Bin number.
    pub bin: i64,
    /// Rows in the bin.
    pub count: u64,
    /// Smallest key in the bin.
    pub min: i64,
    /// Largest key in the bin.
    pub max: i64,
    /// Salted checksum over the whole rows (engine-specific text form).
    pub checksum: String,
}

/// A unit of copying: make the destination's rows of `table` with range key in `[min, max]`
/// equal to the source's. One line of the JSON-lines manifest.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Chunk {
    /// Table name.
    pub table: String,
    /// First key (inclusive).
    pub min: i64,
    /// Last key (inclusive).
    pub max: i64,
    /// Rows expected (the larger side's count at planning time).
    pub estimated_rows: u64,
    /// When not empty: only these disjoint, ascending `[lo, hi]` key ranges inside
    /// `[min, max]` differ, and only they are copied (an incremental plan packs many small
    /// differing ranges into one chunk). Empty (the default, omitted from JSON): the whole
    /// `[min, max]`. A reader that ignores this field and copies `[min, max]` whole is still
    /// correct, only slower.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub ranges: Vec<[i64; 2]>,
    /// Tables with a non-integer key ([`KeyKind::Ordered`]): the key ranges to copy (`min` and
    /// `max` are then 0).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub keys: Vec<KeyRange>,
    /// A table without a key ([`KeyKind::Whole`]): the whole table is copied (`min`, `max` 0).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub whole_table: bool,
}

/// A value of a non-integer key: each column's text form, in key order. In JSON a one-column
/// key is a string and a composite key an array of strings.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct KeyValue(pub Vec<String>);

impl Serialize for KeyValue {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self.0.as_slice() {
            [one] => s.serialize_str(one),
            many => many.serialize(s),
        }
    }
}

impl<'de> Deserialize<'de> for KeyValue {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged, expecting = "a key: a string, or an array of strings")]
        enum Form {
            One(String),
            Many(Vec<String>),
        }
        Ok(KeyValue(match Form::deserialize(d)? {
            Form::One(s) => vec![s],
            Form::Many(v) => v,
        }))
    }
}

/// A range of a non-integer key: exactly one `key`, or the keys from `from` (inclusive) up to
/// `until` (exclusive), either end left out meaning unbounded.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct KeyRange {
    /// Exactly this key.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key: Option<KeyValue>,
    /// Lowest key (inclusive).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub from: Option<KeyValue>,
    /// Upper end (exclusive).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub until: Option<KeyValue>,
}

impl KeyRange {
    /// The half-open range `[from, until)`.
    pub fn span(from: Option<KeyValue>, until: Option<KeyValue>) -> KeyRange {
        KeyRange {
            key: None,
            from,
            until,
        }
    }

    /// Exactly one key.
    pub fn point(key: KeyValue) -> KeyRange {
        KeyRange {
            key: Some(key),
            from: None,
            until: None,
        }
    }

    /// The key values it holds, each of which must have `width` parts.
    pub fn values(&self) -> impl Iterator<Item = &KeyValue> {
        self.key.iter().chain(&self.from).chain(&self.until)
    }
}

impl Chunk {
    /// What the chunk covers, for messages: `[min, max]`, `N key range(s)` or `whole table`.
    pub fn bounds(&self) -> String {
        if self.whole_table {
            "whole table".to_owned()
        } else if !self.keys.is_empty() {
            format!("{} key range(s)", self.keys.len())
        } else {
            format!("[{}, {}]", self.min, self.max)
        }
    }

    /// The key ranges this chunk copies: [`Chunk::ranges`], or `[min, max]` when that is empty.
    pub fn key_ranges(&self) -> Vec<(i64, i64)> {
        if self.ranges.is_empty() {
            vec![(self.min, self.max)]
        } else {
            self.ranges.iter().map(|r| (r[0], r[1])).collect()
        }
    }
}

/// What the plan found for one table.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TablePlan {
    /// Table name.
    pub table: String,
    /// Range key column.
    pub range_key: String,
    /// Source statistics.
    pub source: KeyStats,
    /// Destination statistics.
    pub dest: KeyStats,
    /// Chunks planned for this table.
    pub chunks: usize,
    /// Rows those chunks are expected to move.
    pub estimated_rows: u64,
    /// With change tracking: the range-key values the source changed since the baseline, which
    /// were all that was compared (`None`: the whole table was compared, and `source`/`dest`
    /// hold its statistics).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub changed_keys: Option<u64>,
    /// Secondary indexes dropped for loading this (empty) destination table, rebuilt before
    /// the verification ([`crate::defer`]).
    #[serde(default, skip_serializing_if = "is_zero")]
    pub deferred_indexes: usize,
    /// How the table is cut: `integer`, `ordered` or `whole` (no key: one chunk, the
    /// whole table, when it differs).
    #[serde(default)]
    pub key: KeyKind,
    /// Something the operator should know (a large table without a key is re-copied whole
    /// on every change).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub warning: Option<String>,
}

impl TablePlan {
    /// The plan of `table` from both sides' statistics and its chunks; nothing deferred, no
    /// warning, the whole table compared (set `changed_keys` for a tracked plan).
    pub fn new(table: &TableSpec, source: KeyStats, dest: KeyStats, chunks: &[Chunk]) -> Self {
        TablePlan {
            table: table.name.clone(),
            range_key: table.range_key.clone(),
            source,
            dest,
            chunks: chunks.len(),
            estimated_rows: chunks.iter().map(|c| c.estimated_rows).sum(),
            changed_keys: None,
            deferred_indexes: 0,
            key: table.key,
            warning: None,
        }
    }
}

fn is_zero(n: &usize) -> bool {
    *n == 0
}

/// The plan of one round: chunks in dependency order (parents first).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Plan {
    /// Round number (1 for the first).
    pub round: u32,
    /// Per-table findings, in dependency order.
    pub tables: Vec<TablePlan>,
    /// Chunks to copy.
    pub chunks: Vec<Chunk>,
    /// With change tracking (`changeTracking` in the config): where this comparison stands in
    /// the source's change stream. The next comparison of the same migration takes it as its
    /// `baseline` once this plan's chunks are copied (see [`crate::track`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tracking: Option<crate::track::TrackingState>,
    /// Without change tracking: the source's write stamp when this comparison began
    /// ([`crate::stack::Stack::write_stamp`]). The verification of this plan's copies compares
    /// only the copied ranges when the stamp is unchanged; in cut-over mode (`cutOver` in the
    /// config) it fails when the stamp has changed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source_stamp: Option<String>,
}

impl Plan {
    /// Whether source and destination were found equal.
    pub fn in_sync(&self) -> bool {
        self.chunks.is_empty()
    }

    /// Sum of the chunks' estimated rows.
    pub fn estimated_rows(&self) -> u64 {
        self.chunks.iter().map(|c| c.estimated_rows).sum()
    }

    /// Tables with at least one chunk.
    pub fn differing_tables(&self) -> Vec<String> {
        self.tables
            .iter()
            .filter(|t| t.chunks > 0)
            .map(|t| t.table.clone())
            .collect()
    }

    /// The `plan` step's output as the state machine sees it (the chunks themselves go to the
    /// manifest).
    pub fn output(&self) -> PlanOutput {
        PlanOutput {
            round: self.round,
            tracking: self.tracking.clone(),
            chunks: self.chunks.len(),
            estimated_rows: self.estimated_rows(),
            in_sync: self.in_sync(),
            tables: self
                .tables
                .iter()
                .map(|t| TableOutput {
                    table: t.table.clone(),
                    chunks: t.chunks,
                    estimated_rows: t.estimated_rows,
                })
                .collect(),
        }
    }

    /// The JSON-lines manifest: one chunk per line.
    pub fn to_manifest(&self) -> String {
        let mut out = String::new();
        for c in &self.chunks {
            out.push_str(&serde_json::to_string(c).expect("a chunk serialises"));
            out.push('\n');
        }
        out
    }

    /// Parses a JSON-lines manifest back into chunks.
    pub fn chunks_from_manifest(text: &str) -> crate::Result<Vec<Chunk>> {
        text.lines()
            .filter(|l| !l.trim().is_empty())
            .enumerate()
            .map(|(i, l)| {
                serde_json::from_str(l).map_err(|e| {
                    crate::MigrateError::InvalidInput(format!("manifest line {}: {e}", i + 1))
                })
            })
            .collect()
    }
}

/// The `plan` step's output (docs/dev/pipeline-steps.md), without the manifest's location.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PlanOutput {
    /// Round number.
    pub round: u32,
    /// With change tracking: the baseline for the step that follows this plan's copies
    /// ([`Plan::tracking`]); `null` without.
    #[serde(default)]
    pub tracking: Option<crate::track::TrackingState>,
    /// Number of chunks.
    pub chunks: usize,
    /// Rows the chunks are expected to move.
    pub estimated_rows: u64,
    /// Whether nothing differs.
    pub in_sync: bool,
    /// Per table.
    pub tables: Vec<TableOutput>,
}

/// One table of a [`PlanOutput`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TableOutput {
    /// Table name.
    pub table: String,
    /// Chunks planned.
    pub chunks: usize,
    /// Rows they are expected to move.
    pub estimated_rows: u64,
}

/// What copying one chunk did.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CopyReport {
    /// Table name.
    pub table: String,
    /// First key.
    pub min: i64,
    /// Last key.
    pub max: i64,
    /// Destination rows deleted.
    pub rows_deleted: u64,
    /// Source rows inserted.
    pub rows_inserted: u64,
    /// Wall-clock time.
    pub duration_ms: u64,
}

/// The outcome of a verification.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct VerifyReport {
    /// Whether source and destination are equal.
    pub converged: bool,
    /// The round that was verified.
    pub round: u32,
    /// Tables still different.
    pub differing_tables: Vec<String>,
    /// Sequences (serial and identity columns) of the destination moved past its largest key,
    /// done once converged (0 otherwise, and on SQLite).
    pub sequences_synced: u32,
    /// Whether only the ranges the round copied were compared (the source was not written
    /// since the round's plan), not both sides in full.
    #[serde(default)]
    pub compared_copied_only: bool,
}

/// The summary of a whole migration.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Summary {
    /// Tables migrated.
    pub tables: usize,
    /// Rounds of plan → copy done.
    pub rounds: u32,
    /// Chunks copied.
    pub chunks: usize,
    /// Rows inserted into the destination.
    pub rows_copied: u64,
    /// Rows deleted from the destination.
    pub rows_deleted: u64,
    /// Destination sequences set to the source's values.
    #[serde(default)]
    pub sequences_synced: u32,
    /// Whether the last comparison covered only the ranges the last round copied (the source
    /// was not written since that round's plan) instead of both sides in full.
    #[serde(default)]
    pub verified_copied_only: bool,
    /// Wall-clock seconds.
    pub duration_seconds: f64,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_relation_is_written_as_top_level_schema_and_relname() {
        let json = serde_json::json!({
            "name": "app.users", "schema": "app", "relname": "users", "rangeKey": "id",
            "keyIsUnique": true, "columns": ["id"], "parents": []
        });
        let spec: TableSpec = serde_json::from_value(json.clone()).unwrap();
        assert_eq!(
            spec.relation,
            Relation {
                schema: "app".into(),
                relname: "users".into()
            }
        );
        let back = serde_json::to_value(&spec).unwrap();
        assert_eq!(
            (&back["schema"], &back["relname"]),
            (&json["schema"], &json["relname"])
        );
        assert!(back.get("relation").is_none(), "{back}");
    }
}
