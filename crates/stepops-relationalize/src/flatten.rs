//! AWS Glue's Relationalize with BridgeDownstream's renaming: one document becomes one row of
//! its root table and rows of child tables (docs/relationalize.md, "Naming rules").
//!
//! - The root table is named after the dataset; every row of every table has `recordid`.
//! - A struct's fields are flattened into columns joined by `_` (`a.b.c` → `a_b_c`); a `.`
//!   inside a field name also becomes `_`.
//! - An array at column `c` of table `T` puts a join key in `c` and its elements in the child
//!   table `T_c`, whose rows have `id` (the join key), `index` (the position, from 0) and the
//!   element: an object's fields flattened without any prefix (Glue's `c.val.` stripped), a
//!   scalar in `c_val`, an array's join key in `c_val` with its elements in `T_c_val`.
//! - `null` and missing fields are null cells; an empty object adds nothing; an empty array
//!   has a join key and no child rows.
//!
//! Join keys are numbered from 1 per archive in document order: a child row joins its parent
//! on `(recordid, id)`.

use serde_json::{Map, Value};

use crate::table::{Cell, Tables};

/// The name of a column or table part for field `key` under `prefix`.
pub fn join_name(prefix: &str, key: &str) -> String {
    let key = key.replace('.', "_");
    if prefix.is_empty() {
        key
    } else {
        format!("{prefix}_{key}")
    }
}

/// Flattens documents into tables, numbering join keys per archive.
#[derive(Debug)]
pub struct Flattener<'a> {
    record_id: &'a str,
    next_id: i64,
}

impl<'a> Flattener<'a> {
    /// A flattener for the record `record_id` (its `recordid` column).
    pub fn new(record_id: &'a str) -> Self {
        Flattener {
            record_id,
            next_id: 1,
        }
    }

    /// Adds `doc` as one row of `root` (and its arrays' rows to the child tables).
    pub fn document(&mut self, tables: &mut Tables, root: &str, doc: &Map<String, Value>) {
        let mut row = vec![("recordid".to_owned(), Cell::Str(self.record_id.to_owned()))];
        for (k, v) in doc {
            let name = join_name("", k);
            self.value(tables, root, &name, &name, v, &mut row);
        }
        tables.entry(root.to_owned()).or_default().push(row);
    }

    /// Puts `v` at column `col` of `row` (a row of `table`); `part` is what a child table of
    /// an array here is named after.
    fn value(
        &mut self,
        tables: &mut Tables,
        table: &str,
        col: &str,
        part: &str,
        v: &Value,
        row: &mut Vec<(String, Cell)>,
    ) {
        match v {
            Value::Object(m) => {
                for (k, v) in m {
                    self.value(
                        tables,
                        table,
                        &join_name(col, k),
                        &join_name(part, k),
                        v,
                        row,
                    );
                }
            }
            Value::Array(items) => {
                let id = self.next_id;
                self.next_id += 1;
                row.push((col.to_owned(), Cell::Key(id)));
                let child = format!("{table}_{part}");
                // The child table exists even when the array is empty.
                tables.entry(child.clone()).or_default();
                for (index, item) in items.iter().enumerate() {
                    let mut crow = vec![
                        ("recordid".to_owned(), Cell::Str(self.record_id.to_owned())),
                        ("id".to_owned(), Cell::Int(id)),
                        ("index".to_owned(), Cell::Int(index as i64)),
                    ];
                    match item {
                        Value::Object(m) => {
                            for (k, v) in m {
                                let name = join_name("", k);
                                self.value(tables, &child, &name, &name, v, &mut crow);
                            }
                        }
                        other => {
                            let name = format!("{col}_val");
                            self.value(tables, &child, &name, "val", other, &mut crow);
                        }
                    }
                    tables.entry(child.clone()).or_default().push(crow);
                }
            }
            scalar => row.push((col.to_owned(), Cell::of(scalar))),
        }
    }
}

#[cfg(test)]
#[path = "flatten_tests.rs"]
mod tests;
