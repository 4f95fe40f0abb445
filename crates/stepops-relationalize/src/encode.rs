//! A typed [`Table`] as one Parquet file (snappy, as Glue writes): the columns the schema
//! declares first, in its order, then the others as first seen.

use std::borrow::Cow;
use std::sync::Arc;

use arrow_array::builder::{
    BooleanBuilder, Float64Builder, Int64Builder, StringBuilder, TimestampMicrosecondBuilder,
};
use arrow_array::{ArrayRef, RecordBatch};
use arrow_schema::{DataType, Field, Schema, TimeUnit};
use parquet::arrow::ArrowWriter;
use parquet::basic::{Compression, Encoding};
use parquet::file::properties::WriterProperties;
use parquet::schema::types::ColumnPath;

use crate::error::RelzError;
use crate::table::{Cell, Column, Table};
use crate::types::{ColType, Conflict, resolve_checked, timestamp_micros};

fn data_type(t: ColType) -> DataType {
    match t {
        ColType::Int64 => DataType::Int64,
        ColType::Float64 => DataType::Float64,
        ColType::Boolean => DataType::Boolean,
        ColType::Utf8 => DataType::Utf8,
        ColType::Timestamp => DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into())),
    }
}

/// A cell of `column` as text, for a column written as strings.
fn text<'a>(column: &'a Column, c: &Cell) -> Option<Cow<'a, str>> {
    match c {
        Cell::Null => None,
        Cell::Bool(b) => Some(b.to_string().into()),
        Cell::Int(i) | Cell::Key(i) => Some(i.to_string().into()),
        Cell::Float(f) => Some(
            serde_json::Number::from_f64(*f)
                .map_or_else(|| f.to_string(), |n| n.to_string())
                .into(),
        ),
        Cell::Str(s) => Some(Cow::Borrowed(column.text(*s))),
    }
}

/// The column as timestamps, or `None` when one of its strings is not one.
fn timestamps(column: &Column) -> Option<ArrayRef> {
    let mut b = TimestampMicrosecondBuilder::with_capacity(column.cells.len()).with_timezone("UTC");
    for c in &column.cells {
        match c {
            Cell::Str(s) => b.append_value(timestamp_micros(column.text(*s))?),
            _ => b.append_null(),
        }
    }
    Some(Arc::new(b.finish()))
}

fn array(column: &Column, t: ColType) -> ArrayRef {
    let n = column.cells.len();
    match t {
        ColType::Int64 => {
            let mut b = Int64Builder::with_capacity(n);
            for c in &column.cells {
                b.append_option(match c {
                    Cell::Int(i) | Cell::Key(i) => Some(*i),
                    _ => None,
                });
            }
            Arc::new(b.finish())
        }
        ColType::Float64 => {
            let mut b = Float64Builder::with_capacity(n);
            for c in &column.cells {
                b.append_option(match c {
                    Cell::Int(i) => Some(*i as f64),
                    Cell::Float(f) => Some(*f),
                    _ => None,
                });
            }
            Arc::new(b.finish())
        }
        ColType::Boolean => {
            let mut b = BooleanBuilder::with_capacity(n);
            for c in &column.cells {
                b.append_option(match c {
                    Cell::Bool(v) => Some(*v),
                    _ => None,
                });
            }
            Arc::new(b.finish())
        }
        // Chosen only when every string is a timestamp (types::resolve), so never null here.
        ColType::Timestamp => {
            timestamps(column).unwrap_or_else(|| arrow_array::new_null_array(&data_type(t), n))
        }
        ColType::Utf8 => {
            let mut b = StringBuilder::with_capacity(n, n * 16);
            for c in &column.cells {
                b.append_option(text(column, c));
            }
            Arc::new(b.finish())
        }
    }
}

/// Whether `column` holds join keys: a child table's `id`, or an array's column in its
/// parent. Keys rise by one per array in document order, so they are written as deltas
/// (`DELTA_BINARY_PACKED`: a few bits a value, no dictionary, which could not shrink them).
fn is_join_key(column: &Column, is_child: bool) -> bool {
    (is_child && column.name == "id")
        || column
            .cells
            .iter()
            .all(|c| matches!(c, Cell::Key(_) | Cell::Null))
}

/// Encodes `table` (named `name`) as Parquet with the types `declared` gives (the others
/// inferred); returns the file and the columns written as strings for a conflict.
pub fn encode(
    name: &str,
    table: &mut Table,
    declared: &[(String, ColType)],
) -> Result<(Vec<u8>, Vec<Conflict>), RelzError> {
    for (col, _) in declared {
        table.declare(col);
    }
    let mut fields = Vec::with_capacity(table.columns.len());
    let mut arrays = Vec::with_capacity(table.columns.len());
    let mut conflicts = Vec::new();
    let mut props = WriterProperties::builder().set_compression(Compression::SNAPPY);
    let is_child = table.column("index").is_some();
    for column in &table.columns {
        let want = declared
            .iter()
            .find(|(c, _)| *c == column.name)
            .map(|(_, t)| *t);
        let mut converted = None;
        let (t, conflict) = resolve_checked(name, column, want, |c| {
            converted = timestamps(c);
            converted.is_some()
        });
        conflicts.extend(conflict);
        let required = matches!(column.name.as_str(), "recordid");
        fields.push(Field::new(&column.name, data_type(t), !required));
        arrays.push(match (t, converted) {
            (ColType::Timestamp, Some(a)) => a,
            _ => array(column, t),
        });
        if t == ColType::Int64 && is_join_key(column, is_child) {
            let path = ColumnPath::from(column.name.as_str());
            props = props
                .set_column_dictionary_enabled(path.clone(), false)
                .set_column_encoding(path, Encoding::DELTA_BINARY_PACKED);
        }
    }
    let err = |e: &dyn std::fmt::Display| RelzError::Parquet {
        table: name.to_owned(),
        reason: e.to_string(),
    };
    let schema = Arc::new(Schema::new(fields));
    let batch = RecordBatch::try_new(schema.clone(), arrays).map_err(|e| err(&e))?;
    let props = props.build();
    let mut out = Vec::new();
    let mut writer = ArrowWriter::try_new(&mut out, schema, Some(props)).map_err(|e| err(&e))?;
    writer.write(&batch).map_err(|e| err(&e))?;
    writer.close().map_err(|e| err(&e))?;
    Ok((out, conflicts))
}

#[cfg(test)]
mod tests {
    use std::io::Write;

    use parquet::file::reader::{FileReader, SerializedFileReader};

    use super::*;
    use crate::doc::Doc;
    use crate::flatten::Flattener;
    use crate::table::Tables;

    /// Each column of a Parquet file with its encodings.
    fn encodings(body: &[u8]) -> Vec<(String, Vec<Encoding>)> {
        let mut file = tempfile::tempfile().unwrap();
        file.write_all(body).unwrap();
        let reader = SerializedFileReader::new(file).unwrap();
        let group = reader.metadata().row_group(0);
        group
            .columns()
            .iter()
            .map(|c| {
                let encodings = c.encodings().collect();
                (c.column_path().string(), encodings)
            })
            .collect()
    }

    #[test]
    fn join_keys_are_deltas_and_other_columns_dictionaries() {
        let mut tables = Tables::new();
        let mut f = Flattener::new("r1");
        for i in 0..50 {
            let text = format!(r#"{{"n": {i}, "steps": [{{"v": {i}}}, {{"v": 2}}]}}"#);
            let doc = Doc::parse(&text).unwrap();
            f.document(&mut tables, "s", doc.root_object().unwrap())
                .unwrap();
        }
        for (name, table) in tables.sorted_mut() {
            let (body, _) = encode(name, table, &[]).unwrap();
            for (column, used) in encodings(&body) {
                let key = matches!((name, column.as_str()), ("s", "steps") | ("s_steps", "id"));
                assert_eq!(
                    used.contains(&Encoding::DELTA_BINARY_PACKED),
                    key,
                    "{name}.{column}: {used:?}"
                );
                assert_eq!(
                    used.contains(&Encoding::RLE_DICTIONARY),
                    !key,
                    "{name}.{column}: {used:?}"
                );
            }
        }
    }
}
