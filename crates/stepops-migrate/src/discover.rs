//! From the two stacks' schemas and the config to the ordered list of tables to migrate, with
//! every problem found before anything is written.

use crate::config::Config;
use crate::config::TableConfig;
use crate::error::{MigrateError, Result};
use crate::model::{KeyColumn, KeyKind, TableSchema, TableSpec};
use std::collections::{BTreeMap, BTreeSet};
use stepops_error::names::Pattern;

/// Picks, checks and orders the tables to migrate (parents before children).
///
/// `is_integer` tells whether a column type (as the engine spells it) is an integer type;
/// `default_schema` is the source's default schema (where a pattern without a schema looks).
/// Fails with `Stepops.SchemaMismatch` listing every problem at once: a table missing on the
/// destination, different columns or types, a nullable key, large-object columns; with
/// `Stepops.InvalidInput` for config entries that match no table or name unknown or
/// unorderable columns; with `Stepops.NotFound` when nothing at all is selected.
pub fn resolve(
    source: &[TableSchema],
    dest: &[TableSchema],
    config: &Config,
    is_integer: fn(&str) -> bool,
    default_schema: &str,
) -> Result<Vec<TableSpec>> {
    let src: BTreeMap<&str, &TableSchema> = source.iter().map(|t| (t.name.as_str(), t)).collect();
    let dst: BTreeMap<&str, &TableSchema> = dest.iter().map(|t| (t.name.as_str(), t)).collect();

    let matches_any = |pattern: &str| {
        Pattern::parse(pattern).is_ok_and(|p| {
            source
                .iter()
                .any(|t| p.matches(&t.relation.schema, &t.relation.relname, default_schema))
        })
    };
    // An exclusion that matches nothing excludes nothing: worth a warning only (a
    // `*.tmp_*` may match on some days). An inclusion or a table's settings that match
    // nothing are a mistake that would silently change what is migrated.
    let idle: Vec<&String> = config.exclude.iter().filter(|p| !matches_any(p)).collect();
    if !idle.is_empty() {
        tracing::warn!(patterns = ?idle, "exclude patterns match no table of the source");
    }
    let unknown: Vec<String> = [
        ("include", config.include.iter().collect::<Vec<_>>()),
        ("tables", config.tables.keys().collect()),
    ]
    .into_iter()
    .flat_map(|(key, list)| {
        list.into_iter()
            .filter(|p| !matches_any(p))
            .map(move |p| format!("{key}: {p}"))
    })
    .collect();
    if !unknown.is_empty() {
        return Err(MigrateError::InvalidInput(format!(
            "the config names tables the source does not have ({}); {}",
            unknown.join(", "),
            searched(source, config, default_schema)
        )));
    }
    let present: BTreeSet<&str> = source.iter().map(|t| t.relation.schema.as_str()).collect();
    let missing_schemas: Vec<&str> = config
        .schemas
        .iter()
        .map(String::as_str)
        .filter(|s| !present.contains(s))
        .collect();
    if !missing_schemas.is_empty() {
        return Err(MigrateError::InvalidInput(format!(
            "the config's schemas list names {}, which hold(s) no table on the source (or does not exist)",
            missing_schemas.join(", ")
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
        if !config.selects(
            &table.relation.schema,
            &table.relation.relname,
            default_schema,
        ) {
            continue;
        }
        let Some(&other) = dst.get(name) else {
            problems.push(format!("table {name} is missing on the destination"));
            continue;
        };
        if let Some(diffs) = column_differences(table, other) {
            problems.push(format!("table {name} has different columns: {diffs}"));
            continue;
        }
        if !table.large_object_columns.is_empty() {
            problems.push(format!(
                "table {name} has large-object columns ({}): the large objects they point to are \
                 not migrated; exclude the table (exclude: [{name}]) or drop those columns",
                table.large_object_columns.join(", ")
            ));
            continue;
        }
        let settings = config.table(
            &table.relation.schema,
            &table.relation.relname,
            default_schema,
        );
        let key = match choose_key(table, &src, settings, is_integer) {
            Ok(key) => key,
            Err(KeyProblem::Config(why)) => {
                return Err(MigrateError::InvalidInput(format!("table {name}: {why}")));
            }
        };
        if let Some(col) = key
            .columns
            .iter()
            .find(|c| allows_null(table, c) || allows_null(other, c))
        {
            problems.push(format!(
                "table {name}: its range key {col} allows NULL (on the {}), and rows whose \
                 key is NULL would be neither compared nor copied; make the column NOT NULL on \
                 both sides, or set another rangeKey for {name} in the config's tables",
                if allows_null(table, col) {
                    "source"
                } else {
                    "destination"
                }
            ));
            continue;
        }
        let conflict_keys = match key.kind {
            KeyKind::Whole => Vec::new(),
            _ => conflict_keys(other, &key.columns),
        };
        let mut cols: Vec<(String, String)> = table
            .columns
            .iter()
            .map(|c| (c.name.clone(), c.sql_type.clone()))
            .collect();
        cols.sort();
        let (columns, types) = cols.into_iter().unzip();
        let key_columns = match key.kind {
            KeyKind::Ordered => key
                .columns
                .iter()
                .map(|c| {
                    let col = table
                        .columns
                        .iter()
                        .find(|x| &x.name == c)
                        .expect("checked");
                    KeyColumn {
                        name: c.clone(),
                        sql_type: col.sql_type.clone(),
                        collatable: col.collatable,
                        fixed_width: col.fixed_width,
                    }
                })
                .collect(),
            _ => Vec::new(),
        };
        specs.push(TableSpec {
            name: name.to_owned(),
            relation: table.relation.clone(),
            key: key.kind,
            key_columns,
            range_key: key.columns.join(", "),
            key_is_unique: key.unique,
            columns,
            types,
            parents: Vec::new(),
            primary_key: table.primary_key.clone(),
            conflict_keys,
        });
    }
    if !problems.is_empty() {
        return Err(MigrateError::SchemaMismatch(problems.join(". ")));
    }
    if specs.is_empty() {
        return Err(MigrateError::NotFound {
            target: "the source".into(),
            reason: format!(
                "no table to migrate: {}. A run that selects nothing is refused rather than \
                 reported in sync; check the connection's database, the schemas and the patterns",
                searched(source, config, default_schema)
            ),
        });
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

/// What was searched, for messages: the schemas holding tables, the default schema and the
/// config's patterns.
fn searched(source: &[TableSchema], config: &Config, default_schema: &str) -> String {
    let schemas: BTreeSet<&str> = source.iter().map(|t| t.relation.schema.as_str()).collect();
    let schemas: Vec<&str> = schemas.into_iter().filter(|s| !s.is_empty()).collect();
    let mut parts = vec![format!("{} table(s) found", source.len())];
    if !schemas.is_empty() || !config.schemas.is_empty() {
        parts.push(format!(
            "schemas searched: {}",
            if config.schemas.is_empty() {
                format!("every schema ({})", schemas.join(", "))
            } else {
                config.schemas.join(", ")
            }
        ));
    }
    if !default_schema.is_empty() {
        parts.push(format!(
            "a name without a schema means {default_schema}.NAME"
        ));
    }
    if !config.include.is_empty() {
        parts.push(format!("include: [{}]", config.include.join(", ")));
    }
    if !config.exclude.is_empty() {
        parts.push(format!("exclude: [{}]", config.exclude.join(", ")));
    }
    parts.join("; ")
}

/// How the differences between two tables' columns read, if they differ.
fn column_differences(table: &TableSchema, other: &TableSchema) -> Option<String> {
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
    if a == b {
        return None;
    }
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
    Some(diffs.join("; "))
}

/// The destination table's unique keys (its primary key included) that do not contain every
/// column of the range key, each once: two rows sharing such a value may sit in two ranges.
fn conflict_keys(dest: &TableSchema, range_key: &[String]) -> Vec<Vec<String>> {
    let mut out: Vec<Vec<String>> = Vec::new();
    let keys = std::iter::once(&dest.primary_key).chain(&dest.unique_keys);
    for key in keys {
        if key.is_empty() || range_key.iter().all(|k| key.contains(k)) {
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

/// A table's chosen key.
struct Key {
    kind: KeyKind,
    /// Integer: the one column; ordered: the key's columns; whole: none.
    columns: Vec<String>,
    unique: bool,
}

/// A configured key that cannot be used (the config must change).
enum KeyProblem {
    Config(String),
}

/// Types without a total order that two servers agree on (no default btree operator class).
fn orderable(sql_type: &str) -> bool {
    let base = sql_type.trim_end_matches("[]");
    !matches!(
        base,
        "json" | "xml" | "point" | "line" | "lseg" | "box" | "path" | "polygon" | "circle"
    )
}

/// The key of a table: the configured `rangeKey`; else the single integer primary key, or the
/// leading integer column of a composite primary key that references an integer-keyed table
/// (a child moves with its parent's id range); else the primary key whatever its types, or a
/// unique key of NOT NULL columns; else none (the table is compared and copied whole).
fn choose_key(
    table: &TableSchema,
    all: &BTreeMap<&str, &TableSchema>,
    settings: Option<&TableConfig>,
    is_integer: fn(&str) -> bool,
) -> std::result::Result<Key, KeyProblem> {
    let col_type = |name: &str| {
        table
            .columns
            .iter()
            .find(|c| c.name == name)
            .map(|c| c.sql_type.as_str())
    };
    let unique = |cols: &[String]| {
        table.primary_key.as_slice() == cols || table.unique_keys.iter().any(|k| k == cols)
    };
    if let Some(key) = settings.and_then(|c| c.range_key.as_ref()) {
        let one = [key.clone()];
        return match col_type(key) {
            None => Err(KeyProblem::Config(format!(
                "the configured rangeKey {key} is not one of its columns"
            ))),
            Some(t) if is_integer(t) => Ok(Key {
                kind: KeyKind::Integer,
                columns: one.to_vec(),
                unique: table.primary_key == one,
            }),
            Some(t) if !orderable(t) => Err(KeyProblem::Config(format!(
                "the configured rangeKey {key} is of type {t}, which has no order both servers \
                 agree on: choose a column of an orderable type (integer, uuid, text, numeric, \
                 date or time)"
            ))),
            Some(_) => Ok(Key {
                kind: KeyKind::Ordered,
                unique: unique(&one),
                columns: one.to_vec(),
            }),
        };
    }
    let integer = |c: &String| col_type(c).is_some_and(is_integer);
    match table.primary_key.as_slice() {
        [single] if integer(single) => {
            return Ok(Key {
                kind: KeyKind::Integer,
                columns: vec![single.clone()],
                unique: true,
            });
        }
        [first, _, ..] if integer(first) => {
            let parent_keyed = table.foreign_keys.iter().any(|fk| {
                fk.columns.as_slice() == [first.clone()]
                    && all.get(fk.ref_table.as_str()).is_some_and(|p| {
                        matches!(p.primary_key.as_slice(), [k] if p.columns.iter().any(|c| &c.name == k && is_integer(&c.sql_type)))
                    })
            });
            if parent_keyed {
                return Ok(Key {
                    kind: KeyKind::Integer,
                    columns: vec![first.clone()],
                    unique: false,
                });
            }
        }
        _ => {}
    }
    let not_null = |cols: &[String]| {
        cols.iter()
            .all(|c| table.columns.iter().any(|x| &x.name == c && !x.nullable))
    };
    // A key whose columns may hold NULL (SQLite allows it in a primary key that is not an
    // INTEGER PRIMARY KEY) would leave those rows out of every range: not a key.
    let candidate = if !table.primary_key.is_empty() && not_null(&table.primary_key) {
        Some(table.primary_key.clone())
    } else {
        // The narrowest unique key of NOT NULL columns (an integer one first).
        let mut keys: Vec<&Vec<String>> = table
            .unique_keys
            .iter()
            .filter(|k| !k.is_empty() && not_null(k))
            .collect();
        keys.sort_by_key(|k| (k.len(), !(k.len() == 1 && integer(&k[0]))));
        keys.first().map(|k| (*k).clone())
    };
    Ok(match candidate {
        Some(cols) if cols.len() == 1 && integer(&cols[0]) => Key {
            kind: KeyKind::Integer,
            columns: cols,
            unique: true,
        },
        Some(cols) => Key {
            kind: KeyKind::Ordered,
            columns: cols,
            unique: true,
        },
        None => Key {
            kind: KeyKind::Whole,
            columns: Vec::new(),
            unique: false,
        },
    })
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
    use crate::model::{Column, ForeignKey, Relation};
    use stepops_error::Named;

    fn t(name: &str, cols: &[(&str, &str)], pk: &[&str], fks: &[(&str, &str)]) -> TableSchema {
        TableSchema {
            name: name.into(),
            relation: Relation {
                schema: String::new(),
                relname: name.into(),
            },
            in_default_schema: true,
            large_object_columns: Vec::new(),
            columns: cols
                .iter()
                .map(|(n, ty)| Column {
                    name: (*n).into(),
                    sql_type: (*ty).into(),
                    nullable: false,
                    collatable: false,
                    fixed_width: false,
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
        let specs = resolve(&schema, &schema, &Config::default(), is_int, "").unwrap();
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
        let specs = resolve(&schema, &schema, &cfg, is_int, "").unwrap();
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
        let mut lob = t("e", &[("id", "int"), ("blob", "oid")], &["id"], &[]);
        lob.large_object_columns = vec!["blob".into()];
        let mut src = src;
        src.push(lob.clone());
        let dst = vec![
            t("a", &[("id", "text")], &["id"], &[]),
            t("b", &[("id", "int"), ("x", "text")], &["id"], &[]),
            t("d", &[("v", "int")], &[], &[]),
            lob,
        ];
        let err = resolve(&src, &dst, &Config::default(), is_int, "").unwrap_err();
        assert_eq!(err.error_name().as_str(), "Stepops.SchemaMismatch");
        let msg = err.to_string();
        assert!(msg.contains("x is int on the source but text"), "{msg}");
        assert!(msg.contains("c is missing on the destination"), "{msg}");
        assert!(msg.contains("e has large-object columns (blob)"), "{msg}");
        let cfg = Config::from_yaml("exclude: [b, c, e]").unwrap();
        let specs = resolve(&src, &dst, &cfg, is_int, "").unwrap();
        let kinds: Vec<_> = specs.iter().map(|s| (s.name.as_str(), s.key)).collect();
        assert_eq!(kinds, [("a", KeyKind::Ordered), ("d", KeyKind::Whole)]);
        assert_eq!(specs[0].key_columns[0].name, "id");
        let cfg = Config::from_yaml("exclude: [a, b, c, e]\ntables: {d: {rangeKey: v}}").unwrap();
        let specs = resolve(&src, &dst, &cfg, is_int, "").unwrap();
        assert_eq!(specs.len(), 1);
        assert_eq!(
            (specs[0].range_key.as_str(), specs[0].key),
            ("v", KeyKind::Integer)
        );
    }

    #[test]
    fn keys_of_any_type_and_tables_without_one() {
        let mut uniq = t("u", &[("code", "text"), ("v", "int")], &[], &[]);
        uniq.unique_keys = vec![vec!["code".into()]];
        let mut nullable = t("n", &[("code", "text")], &[], &[]);
        nullable.unique_keys = vec![vec!["code".into()]];
        nullable.columns[0].nullable = true;
        let schema = vec![
            t("comp", &[("a", "text"), ("b", "int")], &["a", "b"], &[]),
            t(
                "child",
                &[("p", "int"), ("k", "text")],
                &["p", "k"],
                &[("p", "parent")],
            ),
            t("parent", &[("id", "int")], &["id"], &[]),
            uniq,
            nullable,
        ];
        let specs = resolve(&schema, &schema, &Config::default(), is_int, "").unwrap();
        let by = |n: &str| specs.iter().find(|s| s.name == n).unwrap();
        assert_eq!(
            (by("comp").key, by("comp").range_key.as_str()),
            (KeyKind::Ordered, "a, b")
        );
        assert_eq!(
            (by("child").key, by("child").range_key.as_str()),
            (KeyKind::Integer, "p")
        );
        assert_eq!(
            (by("u").key, by("u").range_key.as_str()),
            (KeyKind::Ordered, "code")
        );
        assert_eq!(
            by("n").key,
            KeyKind::Whole,
            "a nullable unique key is no key"
        );
        let cfg = Config::from_yaml("tables: {u: {rangeKey: v}}").unwrap();
        let specs = resolve(&schema, &schema, &cfg, is_int, "").unwrap();
        let u = specs.iter().find(|s| s.name == "u").unwrap();
        assert_eq!((u.key, u.key_is_unique), (KeyKind::Integer, false));
    }

    #[test]
    fn config_that_selects_nothing_or_names_nothing_is_refused() {
        let mut json = t("j", &[("id", "int"), ("doc", "json")], &["id"], &[]);
        json.relation.schema = "app".into();
        json.name = "app.j".into();
        let schema = vec![json, t("x", &[("id", "int")], &["id"], &[])];
        let err = |yaml: &str| {
            resolve(
                &schema,
                &schema,
                &Config::from_yaml(yaml).unwrap(),
                is_int,
                "",
            )
            .unwrap_err()
        };
        for (yaml, name, says) in [
            ("include: [nope]", "Stepops.InvalidInput", "include: nope"),
            (
                "include: [\"*.tmp_*\"]",
                "Stepops.InvalidInput",
                "include: *.tmp_*",
            ),
            (
                "tables: {nope: {rangeKey: id}}",
                "Stepops.InvalidInput",
                "tables: nope",
            ),
            ("schemas: [audit]", "Stepops.InvalidInput", "names audit"),
            (
                "exclude: [x, app.j]",
                "Stepops.NotFound",
                "no table to migrate",
            ),
            (
                "tables: {app.j: {rangeKey: doc}}",
                "Stepops.InvalidInput",
                "no order",
            ),
            (
                "tables: {x: {rangeKey: other}}",
                "Stepops.InvalidInput",
                "not one of its columns",
            ),
        ] {
            let e = err(yaml);
            assert_eq!(e.error_name().as_str(), name, "{yaml}: {e}");
            assert!(e.to_string().contains(says), "{yaml}: {e}");
        }
        let e = resolve(&[], &[], &Config::default(), is_int, "public").unwrap_err();
        assert!(e.to_string().contains("0 table(s) found"), "{e}");
        let specs = resolve(
            &schema,
            &schema,
            &Config::from_yaml("include: [\"app.*\"]").unwrap(),
            is_int,
            "",
        )
        .unwrap();
        assert_eq!(specs.len(), 1);
        assert_eq!(specs[0].name, "app.j");
    }
}
