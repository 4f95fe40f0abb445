//! A typed [`Table`] as one Parquet file (snappy, as Glue writes): the columns the schema
//! declares first, in its order, then the others as first seen.

use std::borrow::Cow;
use std::sync::Arc;

use arrow_array::{
    ArrayRef, BooleanArray, Float64Array, Int64Array, RecordBatch, StringArray,
    TimestampMicrosecondArray,
};
use arrow_buffer::{BooleanBuffer, Buffer, NullBuffer, OffsetBuffer, ScalarBuffer};
use arrow_schema::{DataType, Field, Schema, TimeUnit};
use parquet::arrow::ArrowWriter;
use parquet::basic::{Compression, Encoding};
use parquet::file::properties::WriterProperties;
use parquet::schema::types::ColumnPath;

use crate::error::RelzError;
use crate::table::{Cell, Column, Table, kind};
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
fn text(column: &Column, c: Cell) -> Option<Cow<'_, str>> {
    match c {
        Cell::Null => None,
        Cell::Bool(b) => Some(b.to_string().into()),
        Cell::Int(i) | Cell::Key(i) => Some(i.to_string().into()),
        Cell::Float(f) => Some(
            serde_json::Number::from_f64(f)
                .map_or_else(|| f.to_string(), |n| n.to_string())
                .into(),
        ),
        Cell::Str(s) => Some(Cow::Borrowed(column.text(s))),
    }
}

/// The rows of `column` that hold one of `kinds` as valid, the others null (`None` when none is).
fn valid_where(column: &Column, kinds: u8) -> Option<NullBuffer> {
    let rows = column.kind_of_rows();
    // Most columns have no null: a pass of byte comparisons, 64 rows at a time, says so
    // without packing a bit per row.
    let all_valid = |chunk: &[u8]| chunk.iter().fold(true, |all, k| all & (k & kinds != 0));
    if rows.chunks(64).all(all_valid) {
        return None;
    }
    let valid = BooleanBuffer::collect_bool(rows.len(), |i| rows[i] & kinds != 0);
    Some(NullBuffer::new(valid)).filter(|n| n.null_count() > 0)
}

/// The column as timestamps, or `None` when one of its strings is not one.
fn timestamps(column: &Column) -> Option<ArrayRef> {
    let rows = column.kind_of_rows().iter().zip(column.values());
    let micros = rows
        .map(|(k, v)| match *k {
            kind::STR => timestamp_micros(column.str_of(*v)),
            _ => Some(0),
        })
        .collect::<Option<Vec<i64>>>()?;
    let array = TimestampMicrosecondArray::new(micros.into(), valid_where(column, kind::STR));
    Some(Arc::new(array.with_timezone("UTC")))
}

/// The column's strings (any other value as its text) as one Arrow string array.
fn strings(column: &Column) -> Result<StringArray, String> {
    let too_long = || {
        "a string column would hold more than 2 GiB of text in this archive; split the archive into smaller ones".to_owned()
    };
    let mut offsets = Vec::with_capacity(column.len() + 1);
    let mut bytes = Vec::new();
    offsets.push(0i32);
    for (k, v) in column.kind_of_rows().iter().zip(column.values()) {
        match *k {
            kind::STR => bytes.extend_from_slice(column.str_of(*v).as_bytes()),
            kind::NULL => {}
            other => {
                let cell = text(column, Cell::join(other, *v));
                bytes.extend_from_slice(cell.unwrap_or_default().as_bytes());
            }
        }
        offsets.push(i32::try_from(bytes.len()).map_err(|_| too_long())?);
    }
    let offsets = OffsetBuffer::new(ScalarBuffer::from(offsets));
    let nulls = valid_where(column, !kind::NULL);
    #[allow(unsafe_code)]
    // SAFETY: `bytes` is strings appended whole (a column's text is a `String` and each `Text`
    // is a `&str` copied into it; other values are their `to_string()`), and `offsets` are
    // where each ended: UTF-8 split at character boundaries, offsets rising from 0 to its
    // length, one more than the rows, as many rows as `nulls`. `try_new` checked all that
    // again, a tenth of the time spent writing a string column.
    let array = unsafe { StringArray::new_unchecked(offsets, Buffer::from_vec(bytes), nulls) };
    Ok(array)
}

/// `column` as an Arrow array of type `t` (which [`resolve_checked`] chose: its values fit).
fn array(column: &Column, t: ColType) -> Result<ArrayRef, String> {
    let values = column.values();
    Ok(match t {
        ColType::Int64 => {
            // Integers and join keys are their own 8 bytes; a null row holds 0.
            let ints = ScalarBuffer::new(Buffer::from_slice_ref(values), 0, values.len());
            let nulls = valid_where(column, kind::INT | kind::KEY);
            Arc::new(Int64Array::new(ints, nulls))
        }
        ColType::Float64 => {
            let floats = if column.kinds() & kind::INT == 0 {
                ScalarBuffer::new(Buffer::from_slice_ref(values), 0, values.len())
            } else {
                let rows = column.kind_of_rows().iter().zip(values);
                rows.map(|(k, v)| match *k {
                    kind::INT => *v as i64 as f64,
                    _ => f64::from_bits(*v),
                })
                .collect()
            };
            let nulls = valid_where(column, kind::INT | kind::FLOAT);
            Arc::new(Float64Array::new(floats, nulls))
        }
        ColType::Boolean => {
            let bools = BooleanBuffer::collect_bool(values.len(), |i| values[i] != 0);
            Arc::new(BooleanArray::new(bools, valid_where(column, kind::BOOL)))
        }
        // Chosen only when every string is a timestamp (types::resolve), so never null here.
        ColType::Timestamp => timestamps(column)
            .unwrap_or_else(|| arrow_array::new_null_array(&data_type(t), column.len())),
        ColType::Utf8 => Arc::new(strings(column)?),
    })
}

/// Whether `column` holds join keys: a child table's `id`, or an array's column in its
/// parent. Keys rise by one per array in document order, so they are written as deltas
/// (`DELTA_BINARY_PACKED`: a few bits a value, no dictionary, which could not shrink them).
fn is_join_key(column: &Column, is_child: bool) -> bool {
    (is_child && column.name == "id") || column.kinds() & !kind::KEY == 0
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
    table.fill();
    let mut fields = Vec::with_capacity(table.columns.len());
    let mut arrays = Vec::with_capacity(table.columns.len());
    let mut conflicts = Vec::new();
    let err = |e: &dyn std::fmt::Display| RelzError::Parquet {
        table: name.to_owned(),
        reason: e.to_string(),
    };
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
            _ => array(column, t).map_err(|e| err(&e))?,
        });
        if t == ColType::Int64 && is_join_key(column, is_child) {
            let path = ColumnPath::from(column.name.as_str());
            props = props
                .set_column_dictionary_enabled(path.clone(), false)
                .set_column_encoding(path, Encoding::DELTA_BINARY_PACKED);
        }
    }
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
