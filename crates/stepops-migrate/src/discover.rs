//! From the two stacks' schemas and the config to the ordered list of tables to migrate, with
//! every problem found before anything is written.

use crate::config::Config;
use crate::error::{MigrateError, Result};
use crate::model::{TableSchema, TableSpec};
use std::collections::{BTreeMap, BTreeSet};

/// Picks, checks and orders the tables to migrate (parents before children).
///
/// `is_integer` tells whether a column type (as the engine spells it) is an integer type.
/// Fails with `Stepops.SchemaMismatch` listing every problem at once: a table missing on the
/// destination, different columns or types, no usable range key; with
/// `Stepops.InvalidInput` for config entries naming unknown tables or columns.
pub fn resolve(
    source: &[TableSchema],
    dest: &[TableSchema],
    config: &Config,
    is_integer: fn(&str) -> bool,
) -> Result<Vec<TableSpec>> {
    let src: BTreeMap<&str, &TableSchema> = source.iter().map(|t| (t.name.as_str(), t)).collect();
    let dst: BTreeMap<&str, &TableSchema> = dest.iter().map(|t| (t.name.as_str(), t)).collect();

    let unknown: Vec<&String> = config
        .include
        .iter()
        .chain(config.tables.keys())
        .filter(|n| !src.contains_key(n.as_str()))
        .collect();
    if !unknown.is_empty() {
        return Err(MigrateError::InvalidInput(format!(
            "the config names tables the source does not have: {}",
            unknown
                .iter()
                .map(|s| s.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        )));
    }

    let dest_only: Vec<&str> = dst
        .keys()
        .filter(|n| !src.contains_key(*n))
        .copied()
        .collect();
    if !dest_only.is_empty() {
        tracing::warn!(tables = ?dest_only, "tables only on the destination are left alone");
    }
    let mut problems = Vec::new();
    let mut specs = Vec::new();
    for (&name, &table) in &src {
        if !config.selects(name) {
            continue;
        }
        let Some(&other) = dst.get(name) else {
            problems.push(format!("table {name} is missing on the destination"));
            continue;
        };
        let a: BTreeMap<&str, &str> = table
            .columns
            .iter()
            .map(|c| (c.name.as_str(), c.sql_type.as_str()))
            .collect();
        let b: BTreeMap<&str, &str> = other
            .columns
            .iter()
            .map(|c| (c.name.as_str(), c.sql_type.as_str()))
            .collect();
        if a != b {
            let mut diffs = Vec::new();
            for (col, ty) in &a {
                match b.get(col) {
                    None => diffs.push(format!("{col} ({ty}) missing on the destination")),
                    Some(t2) if t2 != ty => diffs.push(format!(
                        "{col} is {ty} on the source but {t2} on the destination"
                    )),
                    _ => {}
                }
            }
            for (col, ty) in &b {
                if !a.contains_key(col) {
                    diffs.push(format!("{col} ({ty}) exists only on the destination"));
                }
            }
            problems.push(format!(
                "table {name} has different columns: {}",
                diffs.join("; ")
            ));
            continue;
        }
        match range_key(table, &src, config, is_integer) {
            Ok((key, _)) if [table, other].iter().any(|t| allows_null(t, &key)) => {
                problems.push(format!(
                    "table {name}: its range key {key} allows NULL (on the {}), and rows whose key \
                     is NULL would be neither compared nor copied; make the column NOT NULL on \
                     both sides, or set tables.{name}.rangeKey to a NOT NULL column",
                    if allows_null(table, &key) { "source" } else { "destination" }
                ));
            }
            Ok((key, unique)) => {
                let conflict_keys = conflict_keys(other, &key);
                let mut cols: Vec<(String, String)> = table
                    .columns
                    .iter()
                    .map(|c| (c.name.clone(), c.sql_type.clone()))
                    .collect();
                cols.sort();
                let (columns, types) = cols.into_iter().unzip();
                specs.push(TableSpec {
                    name: name.to_owned(),
                    range_key: key,
                    key_is_unique: unique,
                    columns,
                    types,
                    parents: Vec::new(),
                    primary_key: table.primary_key.clone(),
                    conflict_keys,
                });
            }
            Err(why) => problems.push(format!(
                "table {name} has no usable range key: {why}; set tables.{name}.rangeKey in the config or exclude it"
            )),
        }
    }
    if !problems.is_empty() {
        return Err(MigrateError::SchemaMismatch(problems.join(". ")));
    }

    let selected: BTreeSet<String> = specs.iter().map(|s| s.name.clone()).collect();
    for spec in &mut specs {
        let mut parents: Vec<String> = src[spec.name.as_str()]
            .foreign_keys
            .iter()
            .map(|fk| fk.ref_table.clone())
            .filter(|p| *p != spec.name && selected.contains(p))
            .collect();
        parents.sort();
        parents.dedup();
        spec.parents = parents;
    }
    Ok(order(specs))
}

/// The destination table's unique keys (its primary key included) that do not contain the
/// range key, each once.
fn conflict_keys(dest: &TableSchema, range_key: &str) -> Vec<Vec<String>> {
    let mut out: Vec<Vec<String>> = Vec::new();
    let keys = std::iter::once(&dest.primary_key).chain(&dest.unique_keys);
    for key in keys {
        if key.is_empty() || key.iter().any(|c| c == range_key) {
            continue;
        }
        let mut sorted = key.clone();
        sorted.sort();
        if !out.iter().any(|k| {
            let mut k = k.clone();
            k.sort();
            k == sorted
        }) {
            out.push(key.clone());
        }
    }
    out
}

/// Whether `column` of `table` may hold NULL.
fn allows_null(table: &TableSchema, column: &str) -> bool {
    table.columns.iter().any(|c| c.name == column && c.nullable)
}

/// The range key of a table and whether it is unique.
fn range_key(
    table: &TableSchema,
    all: &BTreeMap<&str, &TableSchema>,
    config: &Config,
    is_integer: fn(&str) -> bool,
) -> std::result::Result<(String, bool), String> {
    let col_type = |name: &str| {
        table
            .columns
            .iter()
            .find(|c| c.name == name)
            .map(|c| c.sql_type.as_str())
    };
    if let Some(key) = config
        .tables
        .get(&table.name)
        .and_then(|c| c.range_key.as_ref())
    {
        return match col_type(key) {
            None => Err(format!("the configured range key {key} is not a column")),
            Some(t) if !is_integer(t) => Err(format!(
                "the configured range key {key} is {t}, not an integer"
            )),
            Some(_) => Ok((key.clone(), table.primary_key == [key.clone()])),
        };
    }
    match table.primary_key.as_slice() {
        [] => Err("it has no primary key".into()),
        [single] => {
            let t = col_type(single).unwrap_or("?");
            if is_integer(t) {
                Ok((single.clone(), true))
            } else {
                Err(format!("its primary key {single} is {t}, not an integer"))
            }
        }
        [first, ..] => {
            let t = col_type(first).unwrap_or("?");
            let parent_keyed = table.foreign_keys.iter().any(|fk| {
                fk.columns.as_slice() == [first.clone()]
                    && all.get(fk.ref_table.as_str()).is_some_and(|p| {
                        matches!(p.primary_key.as_slice(), [k] if p.columns.iter().any(|c| &c.name == k && is_integer(&c.sql_type)))
                    })
            });
            if is_integer(t) && parent_keyed {
                Ok((first.clone(), false))
            } else {
                Err(format!(
                    "its primary key ({}) is composite and its first column is not an integer foreign key to a table with an integer key",
                    table.primary_key.join(", ")
                ))
            }
        }
    }
}

/// Topological order, parents first; ties and cycles broken by name.
fn order(specs: Vec<TableSpec>) -> Vec<TableSpec> {
    let mut remaining: BTreeMap<String, TableSpec> =
        specs.into_iter().map(|s| (s.name.clone(), s)).collect();
    let mut out: Vec<TableSpec> = Vec::new();
    while !remaining.is_empty() {
        let ready = remaining
            .values()
            .find(|s| s.parents.iter().all(|p| !remaining.contains_key(p)))
            .map(|s| s.name.clone());
        let next = match ready {
            Some(n) => n,
            None => {
                // A cycle: FK checks are off while copying, so any order is correct; warn.
                let n = remaining.keys().next().cloned().expect("non-empty");
                tracing::warn!(table = %n, "foreign keys form a cycle; ordering by name");
                n
            }
        };
        out.push(remaining.remove(&next).expect("present"));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{Column, ForeignKey};

    fn t(name: &str, cols: &[(&str, &str)], pk: &[&str], fks: &[(&str, &str)]) -> TableSchema {
        TableSchema {
            name: name.into(),
            columns: cols
                .iter()
                .map(|(n, ty)| Column {
                    name: (*n).into(),
                    sql_type: (*ty).into(),
                    nullable: false,
                })
                .collect(),
            primary_key: pk.iter().map(|s| (*s).into()).collect(),
            foreign_keys: fks
                .iter()
                .map(|(c, r)| ForeignKey {
                    columns: vec![(*c).into()],
                    ref_table: (*r).into(),
                })
                .collect(),
            unique_keys: Vec::new(),
        }
    }

    fn is_int(t: &str) -> bool {
        t == "int"
    }

    #[test]
    fn orders_parents_first_and_finds_child_keys() {
        let schema = vec![
            t(
                "acl",
                &[("entity_id", "int"), ("who", "int")],
                &["entity_id", "who"],
                &[("entity_id", "entities")],
            ),
            t(
                "entities",
                &[("id", "int"), ("parent_id", "int"), ("owner", "int")],
                &["id"],
                &[("parent_id", "entities"), ("owner", "users")],
            ),
            t("users", &[("id", "int")], &["id"], &[]),
        ];
        let specs = resolve(&schema, &schema, &Config::default(), is_int).unwrap();
        let names: Vec<_> = specs.iter().map(|s| s.name.as_str()).collect();
        assert_eq!(names, ["users", "entities", "acl"]);
        assert_eq!(specs[2].range_key, "entity_id");
        assert!(!specs[2].key_is_unique);
        assert_eq!(specs[1].parents, ["users"]);
        assert!(specs.iter().all(|s| s.conflict_keys.is_empty()));
    }

    #[test]
    fn unique_keys_without_the_range_key_are_conflict_keys() {
        let mut child = t(
            "child",
            &[("id", "int"), ("parent", "int"), ("name", "int")],
            &["id"],
            &[],
        );
        child.unique_keys = vec![
            vec!["id".into()],
            vec!["parent".into(), "name".into()],
            vec!["name".into()],
        ];
        let parent = t("parent", &[("id", "int")], &["id"], &[]);
        let schema = vec![child, parent];
        let cfg = Config::from_yaml("tables: {child: {rangeKey: parent}}").unwrap();
        let specs = resolve(&schema, &schema, &cfg, is_int).unwrap();
        let c = specs.iter().find(|s| s.name == "child").unwrap();
        assert_eq!(
            c.conflict_keys,
            [vec!["id".to_owned()], vec!["name".to_owned()]]
        );
        let p = specs.iter().find(|s| s.name == "parent").unwrap();
        assert!(p.conflict_keys.is_empty());
    }

    #[test]
    fn reports_every_problem() {
        let src = vec![
            t("a", &[("id", "text")], &["id"], &[]),
            t("b", &[("id", "int"), ("x", "int")], &["id"], &[]),
            t("c", &[("id", "int")], &["id"], &[]),
            t("d", &[("v", "int")], &[], &[]),
        ];
        let dst = vec![
            t("a", &[("id", "text")], &["id"], &[]),
            t("b", &[("id", "int"), ("x", "text")], &["id"], &[]),
            t("d", &[("v", "int")], &[], &[]),
        ];
        let err = resolve(&src, &dst, &Config::default(), is_int).unwrap_err();
        let msg = err.to_string();
        assert!(msg.contains("a has no usable range key"), "{msg}");
        assert!(msg.contains("x is int on the source but text"), "{msg}");
        assert!(msg.contains("c is missing on the destination"), "{msg}");
        assert!(
            msg.contains("d has no usable range key: it has no primary key"),
            "{msg}"
        );
        let cfg = Config::from_yaml("exclude: [a, b, c]\ntables: {d: {rangeKey: v}}").unwrap();
        let specs = resolve(&src, &dst, &cfg, is_int).unwrap();
        assert_eq!(specs.len(), 1);
        assert_eq!(specs[0].range_key, "v");
    }
}
