//! Tables as they are filled: one [`Column`] per column name, in the order the columns were
//! first seen. A column keeps two vectors a row: the kind of its value (one byte: [`kind`])
//! and the value itself (8 bytes: an integer, a float's bits, a boolean, or where a string is
//! in the column's text), so that an integer column is already the buffer Arrow writes. A row
//! without a field is null there (a column set in a later row is filled with nulls up to it;
//! [`Table::fill`] fills the rest). [`Tables`] also remembers where each flattened path of a
//! document goes ([`Place`]), so that a document's values are written straight into their
//! columns without building a name per value. A column's strings are kept end to end in one
//! buffer of its own ([`Text`]): no allocation per string cell. The buffers of one archive's
//! columns are handed to the next archive's columns of the same names ([`Spare`]), so that
//! its cells are written into memory already in place instead of grown (and faulted in)
//! again.

use std::collections::{BTreeMap, HashMap};

use crate::doc::{View, same_text};

use crate::flatten::{child_names, field_names};

/// The kinds of values a column holds, one bit each, so that the kinds of a whole column are
/// one byte ([`Column::kinds`]).
pub mod kind {
    /// `null`, or a field the row does not have.
    pub const NULL: u8 = 0;
    /// A boolean.
    pub const BOOL: u8 = 1;
    /// An integer that fits `i64`.
    pub const INT: u8 = 2;
    /// Any other number.
    pub const FLOAT: u8 = 4;
    /// A string.
    pub const STR: u8 = 8;
    /// The join key of an array's child rows.
    pub const KEY: u8 = 16;
}

/// One value of a row, before the column is typed.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Cell {
    /// JSON `null`, or a field the row does not have.
    Null,
    /// A boolean.
    Bool(bool),
    /// An integer that fits `i64`.
    Int(i64),
    /// Any other number.
    Float(f64),
    /// A string, in its column's text ([`Column::text`]).
    Str(Text),
    /// The join key of an array's child rows (the array itself).
    Key(i64),
}

impl Cell {
    /// The cell as its [`kind`] and its 8 bytes.
    #[inline]
    fn split(self) -> (u8, u64) {
        match self {
            Cell::Null => (kind::NULL, 0),
            Cell::Bool(b) => (kind::BOOL, u64::from(b)),
            Cell::Int(i) => (kind::INT, i as u64),
            Cell::Float(f) => (kind::FLOAT, f.to_bits()),
            Cell::Str(t) => (kind::STR, t.packed()),
            Cell::Key(k) => (kind::KEY, k as u64),
        }
    }

    /// The cell [`Cell::split`] gave `kind` and `value`.
    pub fn join(kind: u8, value: u64) -> Cell {
        match kind {
            kind::BOOL => Cell::Bool(value != 0),
            kind::INT => Cell::Int(value as i64),
            kind::FLOAT => Cell::Float(f64::from_bits(value)),
            kind::STR => Cell::Str(Text::unpack(value)),
            kind::KEY => Cell::Key(value as i64),
            _ => Cell::Null,
        }
    }
}

/// Where a string cell's bytes are in its column's text.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Text {
    start: u32,
    len: u32,
}

impl Text {
    /// The text as one value: its start in the high half, its length in the low half.
    #[inline]
    fn packed(self) -> u64 {
        u64::from(self.start) << 32 | u64::from(self.len)
    }

    fn unpack(value: u64) -> Text {
        Text {
            start: (value >> 32) as u32,
            len: value as u32,
        }
    }
}

/// The most text one column of one archive holds: what a Parquet string column written in one
/// piece can hold (Arrow's 32-bit offsets).
pub const MAX_COLUMN_TEXT: usize = i32::MAX as usize;

/// Whether a column holding `used` bytes of text can take `more`.
fn has_room(used: usize, more: usize) -> bool {
    used.checked_add(more)
        .is_some_and(|total| total <= MAX_COLUMN_TEXT)
}

/// A column would hold more than [`MAX_COLUMN_TEXT`] bytes of strings.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "column {column} holds more than {MAX_COLUMN_TEXT} bytes of strings in this archive; split the archive into smaller ones"
)]
pub struct ColumnFull {
    /// The column (`table.column` once it has passed through [`Tables::set_str`]).
    pub column: String,
}

/// A JSON value to put in a cell: a scalar (objects and arrays are flattened before they get
/// here) or a string.
#[derive(Debug, Clone, Copy)]
pub enum Scalar<'a> {
    /// Anything but a string, as its cell.
    Cell(Cell),
    /// A string, copied into the column's text.
    Str(&'a str),
}

impl Scalar<'_> {
    /// The cell of a JSON scalar that is not a string (a string, an object or an array is
    /// null here).
    #[inline]
    pub fn cell_of(v: View<'_>) -> Cell {
        match v {
            View::Null | View::Object(_) | View::Array(_) | View::Str(_) => Cell::Null,
            View::Bool(b) => Cell::Bool(b),
            View::Number(n) => n
                .as_i64()
                .map_or_else(|| Cell::Float(n.as_f64().unwrap_or(f64::NAN)), Cell::Int),
        }
    }
}

impl From<Cell> for Scalar<'_> {
    fn from(c: Cell) -> Self {
        Scalar::Cell(c)
    }
}

/// A column: its name, each row's kind and value, and the text its strings point into.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Column {
    /// The column's name.
    pub name: String,
    /// Each row's [`kind`].
    kinds: Vec<u8>,
    /// Each row's value ([`Cell::split`]); 0 where null.
    values: Vec<u64>,
    /// Every kind stored, nulls aside; not kept up once a value was replaced in its row
    /// (`replaced`: [`Column::kinds`] then reads the rows).
    seen: u8,
    replaced: bool,
    text: String,
    /// The last string copied into `text`: a repeated value (the `recordid` of every row, an
    /// answer chosen from a list) points at it again instead of growing the text.
    last: Option<Text>,
}

impl Column {
    /// An empty column called `name`.
    pub fn new(name: &str) -> Column {
        Column {
            name: name.to_owned(),
            ..Column::default()
        }
    }

    /// The rows set so far (or filled with nulls).
    pub fn len(&self) -> usize {
        self.kinds.len()
    }

    /// Whether no row is set yet.
    pub fn is_empty(&self) -> bool {
        self.kinds.is_empty()
    }

    /// The cell of row `row` (null past the rows set).
    pub fn get(&self, row: usize) -> Cell {
        match self.kinds.get(row) {
            Some(k) => Cell::join(*k, self.values[row]),
            None => Cell::Null,
        }
    }

    /// The cells of the rows set, in order.
    pub fn cells(&self) -> impl Iterator<Item = Cell> + '_ {
        self.kinds
            .iter()
            .zip(&self.values)
            .map(|(k, v)| Cell::join(*k, *v))
    }

    /// Each row's [`kind`].
    pub fn kind_of_rows(&self) -> &[u8] {
        &self.kinds
    }

    /// Each row's value: an integer or join key as `i64` bits, a float's bits, a boolean as
    /// 0 or 1, a string as [`Column::str_of`] reads it, 0 where null.
    pub fn values(&self) -> &[u64] {
        &self.values
    }

    /// The kinds of the values the column holds, one [`kind`] bit each.
    pub fn kinds(&self) -> u8 {
        if self.replaced {
            self.kinds.iter().fold(0, |k, x| k | x)
        } else {
            self.seen
        }
    }

    /// The string of a [`Cell::Str`] of this column.
    pub fn text(&self, t: Text) -> &str {
        let start = t.start as usize;
        &self.text[start..start + t.len as usize]
    }

    /// The string of a [`kind::STR`] row's value ([`Column::values`]).
    pub fn str_of(&self, value: u64) -> &str {
        self.text(Text::unpack(value))
    }

    /// `v` as a cell of this column (a string is copied into its text).
    pub fn cell(&mut self, v: Scalar<'_>) -> Result<Cell, ColumnFull> {
        match v {
            Scalar::Cell(c) => Ok(c),
            Scalar::Str(s) => self.string(s).map(Cell::Str),
        }
    }

    /// Where string `s` is in the column's text, copied there unless it repeats the last one.
    #[inline]
    fn string(&mut self, s: &str) -> Result<Text, ColumnFull> {
        if let Some(last) = self.last
            && same_text(self.text(last), s)
        {
            return Ok(last);
        }
        let start = self.text.len();
        if !has_room(start, s.len()) {
            return Err(self.full());
        }
        self.text.push_str(s);
        // Both below MAX_COLUMN_TEXT, so below u32::MAX.
        let text = Text {
            start: start as u32,
            len: s.len() as u32,
        };
        self.last = Some(text);
        Ok(text)
    }

    #[cold]
    fn full(&self) -> ColumnFull {
        ColumnFull {
            column: self.name.clone(),
        }
    }

    /// Puts a value of `kind` in row `row` (the table's current row, set or not yet).
    #[inline]
    fn put(&mut self, row: usize, kind: u8, value: u64) {
        if row == self.kinds.len() {
            self.seen |= kind;
            self.kinds.push(kind);
            self.values.push(value);
        } else {
            self.put_apart(row, kind, value);
        }
    }

    /// [`Column::put`] into a row that is not the next one: after rows left null, or again.
    #[cold]
    fn put_apart(&mut self, row: usize, kind: u8, value: u64) {
        if row < self.kinds.len() {
            self.replace(row, kind, value);
        } else {
            self.fill(row);
            self.put(row, kind, value);
        }
    }

    /// Sets row `row` again (two paths of a document named alike): the last value stays.
    fn replace(&mut self, row: usize, kind: u8, value: u64) {
        self.replaced = true;
        self.kinds[row] = kind;
        self.values[row] = value;
    }

    /// Nulls up to `rows` rows.
    fn fill(&mut self, rows: usize) {
        if self.kinds.len() < rows {
            self.kinds.resize(rows, kind::NULL);
            self.values.resize(rows, 0);
        }
    }

    /// Appends `values`, all of `kind`, as the rows from `row` on (the column has none of
    /// them yet).
    fn extend(&mut self, row: usize, kind: u8, values: impl Iterator<Item = u64>) {
        self.fill(row);
        debug_assert_eq!(self.kinds.len(), row, "rows from {row} are not set yet");
        let before = self.values.len();
        self.values.extend(values);
        self.kinds.resize(self.values.len(), kind);
        if self.values.len() > before {
            self.seen |= kind;
        }
    }

    /// Appends `n` rows holding `value`, of `kind`, from row `row` on (the column has none of
    /// them yet).
    fn repeat(&mut self, row: usize, kind: u8, value: u64, n: usize) {
        self.fill(row);
        debug_assert_eq!(self.kinds.len(), row, "rows from {row} are not set yet");
        self.values.resize(row + n, value);
        self.kinds.resize(row + n, kind);
        self.seen |= kind;
    }

    /// Appends a row holding `v`.
    pub fn push(&mut self, v: Scalar<'_>) -> Result<(), ColumnFull> {
        let (kind, value) = self.cell(v)?.split();
        self.put(self.kinds.len(), kind, value);
        Ok(())
    }
}

/// A table being filled, one row at a time: [`Tables::set_cell`] and [`Tables::set_str`] the
/// row's cells, then [`Tables::end_row`].
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Table {
    /// The columns, in the order they were first seen.
    pub columns: Vec<Column>,
    index: HashMap<String, usize>,
    /// Rows ended so far.
    pub rows: usize,
}

impl Table {
    /// The position of column `name`, created (all nulls so far) when new.
    pub fn declare(&mut self, name: &str) -> usize {
        self.declare_with(name, Buffers::default)
    }

    /// [`Table::declare`], a new column's memory taken from `buffers`.
    fn declare_with(&mut self, name: &str, buffers: impl FnOnce() -> Buffers) -> usize {
        if let Some(i) = self.index.get(name) {
            return *i;
        }
        let Buffers {
            kinds,
            values,
            text,
        } = buffers();
        self.columns.push(Column {
            kinds,
            values,
            text,
            ..Column::new(name)
        });
        self.index.insert(name.to_owned(), self.columns.len() - 1);
        self.columns.len() - 1
    }

    /// Ends the current row: the columns it did not set are null there.
    #[inline]
    pub fn end_row(&mut self) {
        self.rows += 1;
    }

    /// Fills every column with nulls up to the table's rows, so that each holds every row (a
    /// column is otherwise only as long as its last row set).
    pub fn fill(&mut self) {
        for column in &mut self.columns {
            column.fill(self.rows);
        }
    }

    /// The column called `name`.
    pub fn column(&self, name: &str) -> Option<&Column> {
        self.index.get(name).map(|i| &self.columns[*i])
    }
}

/// Where a flattened path of a document goes: a column of a table (declared when first
/// set), the places of an object's fields under it, and an array's child table.
#[derive(Debug)]
struct Node {
    /// The column's name.
    col: String,
    /// What a child table of an array here is named after.
    part: String,
    /// The places of an object's fields here, in the order first seen.
    fields: Vec<(Box<str>, Place)>,
    /// The position in `fields` of each field.
    by_key: HashMap<Box<str>, usize>,
    /// The field after the one last looked up: documents usually repeat their key order
    /// (after the last field, the first looked up by name: `restart`).
    next: usize,
    /// The first field a row looks up by name (a child row's first three are set through
    /// [`Child::meta`]).
    restart: usize,
    child: Option<Child>,
}

/// Where a [`Place`]'s cells go: its table, and its column there once declared (the first
/// cell set declares it). Kept apart from [`Node`], small, for the cell stores.
#[derive(Debug, Clone, Copy)]
struct Slot {
    table: u32,
    column: u32,
}

impl Slot {
    /// `column` of a place whose column is not declared yet.
    const UNDECLARED: u32 = u32::MAX;
}

/// A place of [`Tables`]: a flattened path of a document ([`crate::flatten`]), resolved to
/// its table and column once, then reused by every document.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Place(usize);

/// The places of an array's elements: the row of its child table (an object element's
/// fields, without prefix), the place of a scalar element, and the row's `recordid`, `id`
/// and `index`.
#[derive(Debug, Clone, Copy)]
pub struct Child {
    /// The child table's row.
    pub row: Place,
    /// A scalar element (or an array's join key) of that row.
    pub scalar: Place,
    /// The row's `recordid`, `id` and `index`, its first three fields.
    pub meta: [Place; 3],
}

/// A column's memory, emptied: its kinds', values' and text's.
#[derive(Debug, Default)]
struct Buffers {
    kinds: Vec<u8>,
    values: Vec<u64>,
    text: String,
}

/// The emptied buffers of an earlier archive's columns, by table and column name: the next
/// archive's column of the same name starts with that capacity. Holds at most one archive's
/// columns (what [`Tables::into_spare`] returns replaces the previous ones).
#[derive(Debug, Default)]
pub struct Spare {
    buffers: HashMap<(String, String), Buffers>,
}

/// Every table of one archive, by name, and the [`Place`] each path of its documents goes to.
#[derive(Debug, Default)]
pub struct Tables {
    tables: Vec<Table>,
    names: Vec<String>,
    by_name: BTreeMap<String, usize>,
    nodes: Vec<Node>,
    /// Each node's [`Slot`], by the same index.
    slots: Vec<Slot>,
    roots: HashMap<String, Place>,
    spare: Spare,
}

impl Tables {
    /// No tables.
    pub fn new() -> Self {
        Tables::default()
    }

    /// No tables; new columns reuse the memory of `spare`'s columns of the same names.
    pub fn with_spare(spare: Spare) -> Self {
        Tables {
            spare,
            ..Tables::default()
        }
    }

    /// The tables' names and tables, sorted by name.
    pub fn sorted_mut(&mut self) -> impl Iterator<Item = (&str, &mut Table)> {
        let mut tables: Vec<Option<&mut Table>> = self.tables.iter_mut().map(Some).collect();
        self.by_name
            .iter()
            .filter_map(move |(name, i)| Some((name.as_str(), tables[*i].take()?)))
    }

    /// The columns' memory, emptied, for the next archive's tables ([`Tables::with_spare`]).
    pub fn into_spare(self) -> Spare {
        let mut buffers = HashMap::new();
        for (table, name) in self.tables.into_iter().zip(self.names) {
            for mut column in table.columns {
                column.kinds.clear();
                column.values.clear();
                column.text.clear();
                let b = Buffers {
                    kinds: column.kinds,
                    values: column.values,
                    text: column.text,
                };
                buffers.insert((name.clone(), column.name), b);
            }
        }
        Spare { buffers }
    }

    /// The tables' names, sorted.
    pub fn keys(&self) -> impl Iterator<Item = &String> {
        self.by_name.keys()
    }

    /// The table called `name`.
    pub fn get(&self, name: &str) -> Option<&Table> {
        self.by_name.get(name).map(|i| &self.tables[*i])
    }

    fn table(&mut self, name: String) -> usize {
        if let Some(i) = self.by_name.get(&name) {
            return *i;
        }
        self.tables.push(Table::default());
        self.names.push(name.clone());
        self.by_name.insert(name, self.tables.len() - 1);
        self.tables.len() - 1
    }

    fn node(&mut self, table: usize, col: String, part: String) -> Place {
        self.slots.push(Slot {
            table: table as u32,
            column: Slot::UNDECLARED,
        });
        self.nodes.push(Node {
            col,
            part,
            fields: Vec::new(),
            by_key: HashMap::new(),
            next: 0,
            restart: 0,
            child: None,
        });
        Place(self.nodes.len() - 1)
    }

    /// The row of the root table `name` (created when new).
    pub fn root(&mut self, name: &str) -> Place {
        if let Some(p) = self.roots.get(name) {
            return *p;
        }
        let table = self.table(name.to_owned());
        let p = self.node(table, String::new(), String::new());
        self.roots.insert(name.to_owned(), p);
        p
    }

    /// The place of field `key` of an object at `at` (named by [`field_names`]).
    pub fn field(&mut self, at: Place, key: &str) -> Place {
        let n = &mut self.nodes[at.0];
        // The next row of a table starts again at its first field looked up by name.
        if n.next == n.fields.len() {
            n.next = n.restart;
        }
        if let Some((k, p)) = n.fields.get(n.next)
            && same_text(k, key)
        {
            n.next += 1;
            return *p;
        }
        if let Some(i) = n.by_key.get(key).copied() {
            n.next = i + 1;
            return n.fields[i].1;
        }
        let table = self.slots[at.0].table as usize;
        let (col, part) = field_names(&n.col, &n.part, key);
        let p = self.node(table, col, part);
        let n = &mut self.nodes[at.0];
        n.by_key.insert(key.into(), n.fields.len());
        n.fields.push((key.into(), p));
        n.next = n.fields.len();
        p
    }

    /// The elements of an array at `at`, in its child table (named by [`child_names`];
    /// created when new, so that it exists even for an empty array).
    pub fn child(&mut self, at: Place) -> Child {
        if let Some(c) = self.nodes[at.0].child {
            return c;
        }
        let n = &self.nodes[at.0];
        let parent = &self.names[self.slots[at.0].table as usize];
        let (name, scalar_col, scalar_part) = child_names(parent, &n.col, &n.part);
        let table = self.table(name);
        let row = self.node(table, String::new(), String::new());
        let scalar = self.node(table, scalar_col, scalar_part);
        let meta = ["recordid", "id", "index"].map(|name| self.field(row, name));
        self.nodes[row.0].restart = meta.len();
        let c = Child { row, scalar, meta };
        self.nodes[at.0].child = Some(c);
        c
    }

    /// Sets the cell of `at`'s column in the current row of its table.
    pub fn set<'a>(&mut self, at: Place, v: impl Into<Scalar<'a>>) -> Result<(), ColumnFull> {
        match v.into() {
            Scalar::Cell(c) => {
                self.set_cell(at, c);
                Ok(())
            }
            Scalar::Str(s) => self.set_str(at, s),
        }
    }

    /// Sets a cell that is not a string.
    #[inline]
    pub fn set_cell(&mut self, at: Place, c: Cell) {
        let (table, column) = self.column_of(at);
        let rows = table.rows;
        let (kind, value) = c.split();
        table.columns[column].put(rows, kind, value);
    }

    /// Sets a string cell (copied into its column's text).
    #[inline]
    pub fn set_str(&mut self, at: Place, s: &str) -> Result<(), ColumnFull> {
        let (table, column) = self.column_of(at);
        let rows = table.rows;
        let column = &mut table.columns[column];
        match column.string(s) {
            Ok(text) => {
                column.put(rows, kind::STR, text.packed());
                Ok(())
            }
            Err(e) => Err(self.full_at(at, e)),
        }
    }

    /// Fills the `recordid`, `id` and `index` of the `elements` rows an array is about to add
    /// to `child`'s table, all at once (what the elements set themselves replaces these).
    pub fn child_rows(
        &mut self,
        child: Child,
        record_id: &str,
        id: i64,
        elements: usize,
    ) -> Result<(), ColumnFull> {
        if elements == 0 {
            return Ok(());
        }
        let columns = child.meta.map(|at| self.column_of(at).1);
        let table = &mut self.tables[self.slots[child.row.0].table as usize];
        let rows = table.rows;
        let [record, key, index] = table
            .columns
            .get_disjoint_mut(columns)
            .expect("a child table's recordid, id and index are three columns");
        let text = match record.string(record_id) {
            Ok(text) => text.packed(),
            Err(e) => return Err(self.full_at(child.meta[0], e)),
        };
        record.repeat(rows, kind::STR, text, elements);
        key.repeat(rows, kind::INT, id as u64, elements);
        index.extend(rows, kind::INT, 0..elements as u64);
        Ok(())
    }

    #[cold]
    fn full_at(&self, at: Place, e: ColumnFull) -> ColumnFull {
        ColumnFull {
            column: format!(
                "{}.{}",
                self.names[self.slots[at.0].table as usize], e.column
            ),
        }
    }

    /// The table of `at` and its column there (declared when it has none yet).
    #[inline]
    fn column_of(&mut self, at: Place) -> (&mut Table, usize) {
        let slot = self.slots[at.0];
        let column = if slot.column == Slot::UNDECLARED {
            self.declare(at)
        } else {
            slot.column as usize
        };
        (&mut self.tables[slot.table as usize], column)
    }

    /// Declares the column of `at` in its table, its memory from the spare buffers.
    #[cold]
    fn declare(&mut self, at: Place) -> usize {
        let (n, table) = (&self.nodes[at.0], self.slots[at.0].table as usize);
        let (spare, name) = (&mut self.spare, &self.names[table]);
        let column = self.tables[table].declare_with(&n.col, || {
            let key = (name.clone(), n.col.clone());
            spare.buffers.remove(&key).unwrap_or_default()
        });
        self.slots[at.0].column = column as u32;
        column
    }

    /// Ends the current row of `at`'s table.
    pub fn end_row(&mut self, at: Place) {
        self.tables[self.slots[at.0].table as usize].end_row();
    }
}

impl std::ops::Index<&str> for Tables {
    type Output = Table;

    fn index(&self, name: &str) -> &Table {
        self.get(name)
            .unwrap_or_else(|| panic!("there is no table {name}"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn texts(c: &Column) -> Vec<Option<&str>> {
        c.cells()
            .map(|x| match x {
                Cell::Str(t) => Some(c.text(t)),
                _ => None,
            })
            .collect()
    }

    #[test]
    fn every_cell_comes_back_as_it_was_stored() {
        let mut c = Column::new("c");
        let cells = [
            Cell::Null,
            Cell::Bool(true),
            Cell::Bool(false),
            Cell::Int(i64::MIN),
            Cell::Int(-1),
            Cell::Float(-0.0),
            Cell::Float(f64::MAX),
            Cell::Key(i64::MAX),
        ];
        for cell in cells {
            c.push(cell.into()).unwrap();
        }
        c.push(Scalar::Str("s")).unwrap();
        let back: Vec<Cell> = c.cells().collect();
        assert_eq!(back[..cells.len()], cells);
        assert_eq!(texts(&c)[cells.len()], Some("s"));
        assert_eq!(c.get(100), Cell::Null, "null past the rows set");
        assert_eq!(
            c.kinds(),
            kind::BOOL | kind::INT | kind::FLOAT | kind::KEY | kind::STR
        );
        assert!(matches!(c.get(5), Cell::Float(z) if z.is_sign_negative()));
    }

    #[test]
    fn strings_are_kept_in_their_column_up_to_what_parquet_can_hold() {
        let mut c = Column::new("name");
        c.push(Scalar::Str("ab")).unwrap();
        c.push(Scalar::Cell(Cell::Null)).unwrap();
        c.push(Scalar::Str("")).unwrap();
        c.push(Scalar::Str("cd")).unwrap();
        assert_eq!(texts(&c), [Some("ab"), None, Some(""), Some("cd")]);
        assert!(has_room(MAX_COLUMN_TEXT - 2, 2));
        assert!(!has_room(MAX_COLUMN_TEXT - 1, 2));
        assert!(!has_room(usize::MAX, 1));
    }

    #[test]
    fn a_string_repeated_from_the_row_before_is_not_copied_again() {
        let mut c = Column::new("recordid");
        for v in ["rec-1", "rec-1", "x", "rec-1", "rec-1"] {
            c.push(Scalar::Str(v)).unwrap();
        }
        assert_eq!(c.text, "rec-1xrec-1");
        let texts: Vec<&str> = c
            .cells()
            .map(|x| match x {
                Cell::Str(t) => c.text(t),
                other => panic!("not a string: {other:?}"),
            })
            .collect();
        assert_eq!(texts, ["rec-1", "rec-1", "x", "rec-1", "rec-1"]);
    }

    #[test]
    fn rows_left_out_are_null_and_a_cell_set_twice_keeps_the_last_value() {
        let mut tables = Tables::new();
        let root = tables.root("t");
        let (a, b) = (tables.field(root, "a"), tables.field(root, "b"));
        tables.set(a, Cell::Int(1)).unwrap();
        tables.end_row(root);
        tables.end_row(root);
        // Row 2 sets b (never set before) once, and a twice with another kind.
        tables.set(b, Cell::Bool(true)).unwrap();
        tables.set(a, Cell::Int(2)).unwrap();
        tables.set(a, Scalar::Str("two")).unwrap();
        tables.end_row(root);
        tables.end_row(root);
        let t = tables.tables.first_mut().unwrap();
        assert_eq!(t.column("b").unwrap().len(), 3, "filled up to the row set");
        t.fill();
        let a = t.column("a").unwrap();
        let b = t.column("b").unwrap();
        assert_eq!((a.len(), b.len()), (4, 4));
        let bs: Vec<Cell> = b.cells().collect();
        assert_eq!(bs, [Cell::Null, Cell::Null, Cell::Bool(true), Cell::Null]);
        assert_eq!(texts(a), [None, None, Some("two"), None]);
        assert_eq!(a.get(0), Cell::Int(1));
        assert_eq!(a.kinds(), kind::INT | kind::STR, "the replaced 2 is gone");
        assert_eq!(b.kinds(), kind::BOOL);
    }

    #[test]
    fn the_next_archive_reuses_the_columns_memory_and_starts_empty() {
        let fill = |tables: &mut Tables, rows: i64, name: &str| {
            let root = tables.root("t");
            for i in 0..rows {
                let (a, b) = (tables.field(root, "a"), tables.field(root, name));
                tables.set(a, Cell::Int(i)).unwrap();
                tables.set(b, Scalar::Str("text")).unwrap();
                tables.end_row(root);
            }
        };
        let mut first = Tables::new();
        fill(&mut first, 1000, "b");
        let capacity = first["t"].column("a").unwrap().values.capacity();
        let mut second = Tables::with_spare(first.into_spare());
        fill(&mut second, 2, "c");
        let t = &second["t"];
        let a = t.column("a").unwrap();
        assert_eq!(a.cells().collect::<Vec<_>>(), [Cell::Int(0), Cell::Int(1)]);
        assert_eq!(a.values.capacity(), capacity, "column a's memory is reused");
        let c = t.column("c").unwrap();
        assert_eq!(c.text, "text", "a new column's text starts empty");
        assert!(t.column("b").is_none(), "only the columns this archive has");
        let spare = second.into_spare();
        assert_eq!(
            spare.buffers.len(),
            2,
            "the spare holds one archive's columns"
        );
    }
}
