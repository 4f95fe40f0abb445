//! Column types: from the dataset's JSON Schema when it gives one (`integer` → Int64, `number`
//! → Float64, `boolean` → Boolean, `string` → Utf8, `string` with `format: date-time` →
//! Timestamp (µs, UTC), arrays → their Int64 join key), inferred from the values otherwise.
//! A column whose values do not fit one type is written as strings and reported as a
//! [`Conflict`], never dropped.

use std::collections::BTreeMap;

use serde::Serialize;
use serde_json::Value;

use crate::flatten::join_name;
use crate::table::kind::{BOOL, FLOAT, INT, KEY, STR};
use crate::table::{Cell, Column};

/// The Parquet/Arrow type a column is written with.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum ColType {
    /// 64-bit integer.
    Int64,
    /// 64-bit float.
    Float64,
    /// Boolean.
    Boolean,
    /// UTF-8 string.
    Utf8,
    /// Timestamp, microseconds, UTC.
    Timestamp,
}

/// A column whose values did not fit one type: written as strings.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Conflict {
    /// The table.
    pub table: String,
    /// The column.
    pub column: String,
    /// The JSON kinds seen (`boolean`, `integer`, `number`, `string`, `array`).
    pub found: Vec<&'static str>,
    /// The type the schema declared, when one did.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub declared: Option<ColType>,
}

/// Column types a JSON Schema declares, by table then column (in the schema's order).
pub type Declared = BTreeMap<String, Vec<(String, ColType)>>;

/// The columns and types `schema` declares for the dataset `root`, named by the same rules as
/// [`crate::flatten`]. What the schema leaves open (no `type`, several types, `$ref`) is not
/// declared and is inferred.
pub fn declared_types(root: &str, schema: &Value) -> Declared {
    let mut out = Declared::new();
    out.entry(root.to_owned())
        .or_default()
        .push(("recordid".into(), ColType::Utf8));
    walk(&mut out, root, "", "", schema);
    out
}

fn types_of(schema: &Value) -> Vec<&str> {
    match schema.get("type") {
        Some(Value::String(t)) => vec![t.as_str()],
        Some(Value::Array(ts)) => ts
            .iter()
            .filter_map(Value::as_str)
            .filter(|t| *t != "null")
            .collect(),
        _ => Vec::new(),
    }
}

fn is_object(schema: &Value) -> bool {
    let t = types_of(schema);
    t == ["object"] || (t.is_empty() && schema.get("properties").is_some())
}

fn walk(out: &mut Declared, table: &str, col: &str, part: &str, schema: &Value) {
    let types = types_of(schema);
    let declare = |out: &mut Declared, table: &str, col: &str, t: ColType| {
        out.entry(table.to_owned())
            .or_default()
            .push((col.to_owned(), t));
    };
    if is_object(schema) {
        if let Some(Value::Object(props)) = schema.get("properties") {
            for (k, s) in props {
                walk(out, table, &join_name(col, k), &join_name(part, k), s);
            }
        }
    } else if types == ["array"] || (types.is_empty() && schema.get("items").is_some()) {
        declare(out, table, col, ColType::Int64);
        let child = format!("{table}_{part}");
        for (c, t) in [
            ("recordid", ColType::Utf8),
            ("id", ColType::Int64),
            ("index", ColType::Int64),
        ] {
            declare(out, &child, c, t);
        }
        match schema.get("items") {
            Some(items) if is_object(items) => walk(out, &child, "", "", items),
            Some(items) => walk(out, &child, &format!("{col}_val"), "val", items),
            None => {}
        }
    } else if let [t] = types.as_slice() {
        let t = match *t {
            "integer" => ColType::Int64,
            "number" => ColType::Float64,
            "boolean" => ColType::Boolean,
            "string" if schema.get("format").and_then(Value::as_str) == Some("date-time") => {
                ColType::Timestamp
            }
            "string" => ColType::Utf8,
            _ => return,
        };
        declare(out, table, col, t);
    }
}

fn kind_names(k: u8) -> Vec<&'static str> {
    [
        (BOOL, "boolean"),
        (INT, "integer"),
        (FLOAT, "number"),
        (STR, "string"),
        (KEY, "array"),
    ]
    .into_iter()
    .filter(|(bit, _)| k & bit != 0)
    .map(|(_, n)| n)
    .collect()
}

/// An RFC 3339 timestamp as microseconds since the epoch.
pub fn timestamp_micros(s: &str) -> Option<i64> {
    chrono::DateTime::parse_from_rfc3339(s)
        .ok()
        .map(|t| t.timestamp_micros())
}

/// The type `column` of `table` is written with, given what the schema declares, and the
/// conflict when its values do not fit one type.
pub fn resolve(
    table: &str,
    column: &Column,
    declared: Option<ColType>,
) -> (ColType, Option<Conflict>) {
    let all_timestamps = |c: &Column| {
        c.cells().all(|cell| match cell {
            Cell::Str(s) => timestamp_micros(c.text(s)).is_some(),
            _ => true,
        })
    };
    resolve_checked(table, column, declared, all_timestamps)
}

/// [`resolve`], asking `all_timestamps` whether every string of the column is a timestamp
/// only when that decides the type (the encoder answers while it converts them, so that each
/// is parsed once).
pub fn resolve_checked(
    table: &str,
    column: &Column,
    declared: Option<ColType>,
    all_timestamps: impl FnOnce(&Column) -> bool,
) -> (ColType, Option<Conflict>) {
    let k = column.kinds();
    let fits = |t: ColType| match t {
        ColType::Int64 => k & !(INT | KEY) == 0 && k != (INT | KEY),
        ColType::Float64 => k & !(INT | FLOAT) == 0,
        ColType::Boolean => k & !BOOL == 0,
        ColType::Utf8 => k & !STR == 0,
        ColType::Timestamp => k & !STR == 0,
    };
    let chosen = declared.or(match k {
        0 | STR => Some(ColType::Utf8),
        BOOL => Some(ColType::Boolean),
        INT | KEY => Some(ColType::Int64),
        FLOAT => Some(ColType::Float64),
        x if x == INT | FLOAT => Some(ColType::Float64),
        _ => None,
    });
    match chosen {
        Some(ColType::Timestamp) if fits(ColType::Timestamp) && all_timestamps(column) => {
            (ColType::Timestamp, None)
        }
        Some(t) if t != ColType::Timestamp && fits(t) => (t, None),
        _ => (
            ColType::Utf8,
            Some(Conflict {
                table: table.to_owned(),
                column: column.name.clone(),
                found: kind_names(k),
                declared,
            }),
        ),
    }
}

#[cfg(test)]
#[path = "types_tests.rs"]
mod tests;
