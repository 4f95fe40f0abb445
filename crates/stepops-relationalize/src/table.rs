//! Tables as they are filled: one [`Column`] of [`Cell`]s per column name, in the order the
//! columns were first seen, every column as long as the table (a row without a field holds
//! [`Cell::Null`] there).

use std::collections::{BTreeMap, HashMap};

use serde_json::Value;

/// One value of a row, before the column is typed.
#[derive(Debug, Clone, PartialEq)]
pub enum Cell {
    /// JSON `null`, or a field the row does not have.
    Null,
    /// A boolean.
    Bool(bool),
    /// An integer that fits `i64`.
    Int(i64),
    /// Any other number.
    Float(f64),
    /// A string.
    Str(String),
    /// The join key of an array's child rows (the array itself).
    Key(i64),
}

impl Cell {
    /// A JSON scalar as a cell (objects and arrays are flattened before they get here).
    pub fn of(v: &Value) -> Cell {
        match v {
            Value::Null | Value::Object(_) | Value::Array(_) => Cell::Null,
            Value::Bool(b) => Cell::Bool(*b),
            Value::Number(n) => n
                .as_i64()
                .map_or_else(|| Cell::Float(n.as_f64().unwrap_or(f64::NAN)), Cell::Int),
            Value::String(s) => Cell::Str(s.clone()),
        }
    }
}

/// A column: its name and one cell per row.
#[derive(Debug, Clone, PartialEq)]
pub struct Column {
    /// The column's name.
    pub name: String,
    /// One cell per row of the table.
    pub cells: Vec<Cell>,
}

/// A table being filled.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Table {
    /// The columns, in the order they were first seen (declared columns first).
    pub columns: Vec<Column>,
    index: HashMap<String, usize>,
    /// Rows pushed so far.
    pub rows: usize,
}

impl Table {
    /// The position of column `name`, created (all nulls so far) when new.
    pub fn declare(&mut self, name: &str) -> usize {
        if let Some(i) = self.index.get(name) {
            return *i;
        }
        self.columns.push(Column {
            name: name.to_owned(),
            cells: vec![Cell::Null; self.rows],
        });
        self.index.insert(name.to_owned(), self.columns.len() - 1);
        self.columns.len() - 1
    }

    /// Appends a row; a name given twice keeps its last cell.
    pub fn push(&mut self, row: Vec<(String, Cell)>) {
        for (name, cell) in row {
            let i = self.declare(&name);
            let column = &mut self.columns[i];
            if column.cells.len() > self.rows {
                column.cells[self.rows] = cell;
            } else {
                column.cells.push(cell);
            }
        }
        self.rows += 1;
        for column in &mut self.columns {
            if column.cells.len() < self.rows {
                column.cells.push(Cell::Null);
            }
        }
    }

    /// The column called `name`.
    pub fn column(&self, name: &str) -> Option<&Column> {
        self.index.get(name).map(|i| &self.columns[*i])
    }
}

/// Every table of one archive, by name.
pub type Tables = BTreeMap<String, Table>;
