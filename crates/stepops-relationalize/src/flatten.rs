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
//! on `(recordid, id)`. Values are written straight into their columns: each path's column is
//! named once per archive ([`Tables::field`], [`Tables::child`]), with [`field_names`] and
//! [`child_names`].

use crate::doc::{NodeRef, ObjectRef, View};
use crate::table::{Cell, ColumnFull, Place, Scalar, Tables};

/// The name of a column or table part for field `key` under `prefix`.
pub fn join_name(prefix: &str, key: &str) -> String {
    let key = key.replace('.', "_");
    if prefix.is_empty() {
        key
    } else {
        format!("{prefix}_{key}")
    }
}

/// The column and the table part of field `key` of an object at column `col`, part `part`.
pub fn field_names(col: &str, part: &str, key: &str) -> (String, String) {
    (join_name(col, key), join_name(part, key))
}

/// For an array at column `col`, part `part` of `table`: its child table, and the column and
/// part of a scalar element there.
pub fn child_names(table: &str, col: &str, part: &str) -> (String, String, String) {
    (
        format!("{table}_{part}"),
        format!("{col}_val"),
        "val".to_owned(),
    )
}

/// Flattens documents into tables, numbering join keys per archive.
#[derive(Debug)]
pub struct Flattener {
    /// The `recordid` of every row.
    record_id: String,
    next_id: i64,
}

impl Flattener {
    /// A flattener for the record `record_id` (its `recordid` column).
    pub fn new(record_id: &str) -> Self {
        Flattener {
            record_id: record_id.to_owned(),
            next_id: 1,
        }
    }

    /// Adds `doc` as one row of `root` (and its arrays' rows to the child tables).
    pub fn document(
        &mut self,
        tables: &mut Tables,
        root: &str,
        doc: ObjectRef<'_>,
    ) -> Result<(), ColumnFull> {
        let row = tables.root(root);
        let at = tables.field(row, "recordid");
        tables.set_str(at, &self.record_id)?;
        self.object(tables, row, doc)?;
        tables.end_row(row);
        Ok(())
    }

    fn object(
        &mut self,
        tables: &mut Tables,
        at: Place,
        m: ObjectRef<'_>,
    ) -> Result<(), ColumnFull> {
        for (k, v) in m.iter() {
            let field = tables.field(at, k);
            self.value(tables, field, v)?;
        }
        Ok(())
    }

    /// Puts `v` at `at`: a scalar in its column, an object's fields under it, an array's join
    /// key in it and its elements in the child table.
    fn value(&mut self, tables: &mut Tables, at: Place, v: NodeRef<'_>) -> Result<(), ColumnFull> {
        match v.view() {
            View::Object(m) => self.object(tables, at, m),
            View::Array(items) => {
                let id = self.next_id;
                self.next_id += 1;
                tables.set_cell(at, Cell::Key(id));
                let child = tables.child(at);
                let elements = items.iter();
                tables.child_rows(child, &self.record_id, id, elements.len())?;
                for item in elements {
                    match item.view() {
                        View::Object(m) => self.object(tables, child.row, m)?,
                        _ => self.value(tables, child.scalar, item)?,
                    }
                    tables.end_row(child.row);
                }
                Ok(())
            }
            View::Str(s) => tables.set_str(at, s),
            scalar => {
                tables.set_cell(at, Scalar::cell_of(scalar));
                Ok(())
            }
        }
    }
}

#[cfg(test)]
#[path = "flatten_tests.rs"]
mod tests;
