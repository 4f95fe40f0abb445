//! A typed [`Table`] as one Parquet file (snappy, as Glue writes): the columns the schema
//! declares first, in its order, then the others as first seen.

use std::borrow::Cow;
use std::sync::Arc;

use arrow_array::{
    ArrayRef, BooleanArray, Float64Array, Int64Array, StringArray, TimestampMicrosecondArray,
};
use arrow_buffer::{BooleanBuffer, Buffer, NullBuffer, OffsetBuffer, ScalarBuffer};
use arrow_schema::{DataType, Field, Schema, TimeUnit};
use parquet::arrow::ArrowWriter;
use parquet::arrow::arrow_writer::{ArrowColumnWriter, compute_leaves};
use parquet::basic::{Compression, Encoding};
use parquet::file::properties::WriterProperties;
use parquet::file::writer::SerializedRowGroupWriter;
use parquet::schema::types::ColumnPath;

use crate::constant;
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
    // Most columns have no null: a pass of byte comparisons says so without packing a bit
    // per row.
    if every(rows, |k| k & kinds != 0) {
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

/// The string every row of `column` holds, when it holds one and the same in each (no null,
/// no other kind): the `recordid` of an archive's rows.
fn constant_string(column: &Column) -> Option<&str> {
    let first = *column.values().first()?;
    let same =
        every(column.kind_of_rows(), |k| k == kind::STR) && every(column.values(), |v| v == first);
    same.then(|| column.str_of(first))
}

/// Whether `test` holds for every row: 64 rows at a time without a branch per row, so that
/// the compiler can compare them as vectors.
fn every<T: Copy>(rows: &[T], test: impl Fn(T) -> bool) -> bool {
    rows.chunks(64)
        .all(|chunk| chunk.iter().fold(true, |all, v| all & test(*v)))
}

/// A column ready to be written.
enum Prepared<'c> {
    /// As an Arrow array, through the Arrow writer.
    Array(ArrayRef),
    /// As the one string it holds in every row, by [`constant`].
    Constant(&'c str),
}

/// Writes `array` (the rows of `field` in `group`) with `writer`, and appends the chunk.
fn write_array<W: std::io::Write + Send>(
    group: &mut SerializedRowGroupWriter<'_, W>,
    mut writer: ArrowColumnWriter,
    field: &Field,
    array: &ArrayRef,
) -> parquet::errors::Result<()> {
    for leaf in compute_leaves(field, array)? {
        writer.write(&leaf)?;
    }
    writer.close()?.append_to_row_group(group)
}

/// Encodes `table` (named `name`) as Parquet with the types `declared` gives (the others
/// inferred); returns the file and the columns written as strings for a conflict.
pub fn encode(
    name: &str,
    table: &mut Table,
    declared: &[(String, ColType)],
) -> Result<(Vec<u8>, Vec<Conflict>), RelzError> {
    encode_with(name, table, declared, Constants::Apart, None)
}

/// How [`encode_with`] writes a column holding one string in every row.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Constants {
    /// As its chunk, by [`constant`].
    Apart,
    /// Through the Arrow writer, as any other column (what the tests compare with).
    #[cfg(test)]
    Arrow,
}

/// [`encode`], writing constant columns as `constants` says, in row groups of at most
/// `group_rows` rows (parquet's default when `None`).
fn encode_with(
    name: &str,
    table: &mut Table,
    declared: &[(String, ColType)],
    constants: Constants,
    group_rows: Option<usize>,
) -> Result<(Vec<u8>, Vec<Conflict>), RelzError> {
    for (col, _) in declared {
        table.declare(col);
    }
    table.fill();
    let mut fields = Vec::with_capacity(table.columns.len());
    let mut typed = Vec::with_capacity(table.columns.len());
    let mut conflicts = Vec::new();
    let err = |e: &dyn std::fmt::Display| RelzError::Parquet {
        table: name.to_owned(),
        reason: e.to_string(),
    };
    let mut props = WriterProperties::builder().set_compression(Compression::SNAPPY);
    if group_rows.is_some() {
        props = props.set_max_row_group_row_count(group_rows);
    }
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
        typed.push((t, converted));
        if t == ColType::Int64 && is_join_key(column, is_child) {
            let path = ColumnPath::from(column.name.as_str());
            props = props
                .set_column_dictionary_enabled(path.clone(), false)
                .set_column_encoding(path, Encoding::DELTA_BINARY_PACKED);
        }
    }
    let schema = Arc::new(Schema::new(fields));
    let mut out = Vec::new();
    let writer =
        ArrowWriter::try_new(&mut out, schema.clone(), Some(props.build())).map_err(|e| err(&e))?;
    let (mut file, factory) = writer.into_serialized_writer().map_err(|e| err(&e))?;
    let descriptors = file.schema_descr().columns().to_vec();
    let mut columns = Vec::with_capacity(typed.len());
    for ((column, (t, converted)), descr) in table.columns.iter().zip(typed).zip(&descriptors) {
        // Only a required string column is looked at (a pass over its rows).
        let apart = constants == Constants::Apart && t == ColType::Utf8 && constant::fits(descr);
        let constant = apart
            .then(|| constant_string(column))
            .flatten()
            .filter(|v| v.len() <= constant::MAX_LEN);
        columns.push(match (constant, t, converted) {
            (Some(value), ..) => Prepared::Constant(value),
            (None, ColType::Timestamp, Some(a)) => Prepared::Array(a),
            (None, ..) => Prepared::Array(array(column, t).map_err(|e| err(&e))?),
        });
    }
    // Row groups of at most the writer's row limit, as `ArrowWriter::write` splits a batch.
    let per_group = file
        .properties()
        .max_row_group_row_count()
        .unwrap_or(usize::MAX);
    let (mut start, mut group_index) = (0, 0);
    while start < table.rows {
        let rows = per_group.min(table.rows - start);
        let writers = factory
            .create_column_writers(group_index)
            .map_err(|e| err(&e))?;
        let mut group = file.next_row_group().map_err(|e| err(&e))?;
        let parts = columns
            .iter()
            .zip(writers)
            .zip(schema.fields())
            .zip(&descriptors);
        for (((column, writer), field), descr) in parts {
            match column {
                Prepared::Constant(value) => {
                    constant::append(&mut group, descr.clone(), value, rows)
                }
                Prepared::Array(array) => {
                    let part = array.slice(start, rows);
                    write_array(&mut group, writer, field, &part)
                }
            }
            .map_err(|e| err(&e))?;
        }
        group.close().map_err(|e| err(&e))?;
        start += rows;
        group_index += 1;
    }
    file.close().map_err(|e| err(&e))?;
    Ok((out, conflicts))
}

#[cfg(test)]
mod tests {
    use std::io::Write;

    use parquet::file::reader::{FileReader, SerializedFileReader};

    use super::*;
    use crate::doc::Doc;
    use crate::flatten::Flattener;
    use crate::table::{Scalar, Tables};

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

    #[test]
    fn a_column_is_constant_only_when_every_row_holds_the_same_string() {
        let column = |cells: &[Scalar<'_>]| {
            let mut c = Column::new("c");
            for cell in cells {
                c.push(*cell).unwrap();
            }
            c
        };
        let (a, b) = (Scalar::Str("a"), Scalar::Str("b"));
        let null = Scalar::Cell(Cell::Null);
        let many: Vec<Scalar<'_>> = std::iter::repeat_n(a, 200).collect();
        assert_eq!(constant_string(&column(&many)), Some("a"));
        // A different value, a null or a number at the start, in the middle (past the first
        // 64 rows) or at the end.
        for other in [b, null, Scalar::Cell(Cell::Int(1))] {
            for at in [0, 100, 199] {
                let mut cells = many.clone();
                cells[at] = other;
                assert_eq!(constant_string(&column(&cells)), None, "{other:?} at {at}");
            }
        }
        // The same text copied again (not the row before's) is another value here: the
        // column then goes through the Arrow writer, which writes it right.
        assert_eq!(constant_string(&column(&[a, b, a])), None);
        assert_eq!(constant_string(&column(&[])), None);
    }

    /// What a reader sees of each column chunk of `body` apart from where it lies and its
    /// size: types, encodings, statistics, page index; and the rows, read back.
    fn described(body: &[u8]) -> (Vec<String>, Vec<arrow_array::RecordBatch>) {
        use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
        use parquet::file::serialized_reader::ReadOptionsBuilder;
        let mut file = tempfile::tempfile().unwrap();
        file.write_all(body).unwrap();
        let options = ReadOptionsBuilder::new().with_page_index().build();
        let reader = SerializedFileReader::new_with_options(file, options).unwrap();
        let meta = reader.metadata();
        let mut chunks = Vec::new();
        for (g, group) in meta.row_groups().iter().enumerate() {
            let index = meta.page_index_for_row_group(g);
            for (i, c) in group.columns().iter().enumerate() {
                let offsets = index.offset_index(i).unwrap();
                let first_rows: Vec<i64> = offsets
                    .page_locations()
                    .iter()
                    .map(|p| p.first_row_index)
                    .collect();
                chunks.push(format!(
                    "{g} {} {} {:?} {:?} {:?} {:?} {:?} {:?} {:?} {:?} {} {:?} {first_rows:?} {:?}",
                    c.column_path(),
                    c.num_values(),
                    c.compression_codec(),
                    c.encodings().collect::<Vec<_>>(),
                    c.page_encoding_stats(),
                    c.page_encoding_stats_mask(),
                    c.statistics(),
                    c.unencoded_byte_array_data_bytes(),
                    c.definition_level_histogram(),
                    c.repetition_level_histogram(),
                    c.dictionary_page_offset().is_some(),
                    index.column_index(i),
                    offsets.unencoded_byte_array_data_bytes(),
                ));
            }
        }
        let rows = ParquetRecordBatchReaderBuilder::try_new(bytes::Bytes::from(body.to_vec()))
            .unwrap()
            .build()
            .unwrap()
            .collect::<Result<Vec<_>, _>>()
            .unwrap();
        (chunks, rows)
    }

    #[test]
    fn a_column_with_one_string_in_every_row_is_written_as_the_arrow_writer_writes_it() {
        let longest = "r".repeat(constant::MAX_LEN);
        let too_long = "r".repeat(constant::MAX_LEN + 1);
        for record in ["rec-1", &longest, &too_long] {
            let mut tables = Tables::new();
            let mut f = Flattener::new(record);
            for i in 0..2500 {
                let steps: Vec<String> = (0..10).map(|s| format!(r#"{{"v": "a{s}"}}"#)).collect();
                let text = format!(
                    r#"{{"n": {i}, "same": "x", "when": "2024-03-05T10:00:00Z", "steps": [{}]}}"#,
                    steps.join(",")
                );
                let doc = Doc::parse(&text).unwrap();
                f.document(&mut tables, "s", doc.root_object().unwrap())
                    .unwrap();
            }
            let declared = [("when".to_owned(), ColType::Timestamp)];
            for (name, table) in tables.sorted_mut() {
                let declared = if name == "s" { &declared[..] } else { &[] };
                let rows = table.rows;
                for group_rows in [Some(1000), None] {
                    let mut copy = table.clone();
                    let (apart, _) =
                        encode_with(name, &mut copy, declared, Constants::Apart, group_rows)
                            .unwrap();
                    let mut copy = table.clone();
                    let (arrow, _) =
                        encode_with(name, &mut copy, declared, Constants::Arrow, group_rows)
                            .unwrap();
                    let ((chunks, batches), expected) = (described(&apart), described(&arrow));
                    assert_eq!(batches, expected.1, "{name}: the same rows");
                    let groups = rows.div_ceil(group_rows.unwrap_or(rows));
                    assert_eq!(chunks.len(), groups * batches[0].num_columns(), "{name}");
                    // Up to 20,000 rows (the Arrow writer's page), the file is the same byte for
                    // byte; past it, the Arrow writer starts another page of the same value, and
                    // a short record id's column is one page.
                    let apart_is_shorter = rows > 20_000 && group_rows.is_none();
                    if apart_is_shorter && record.len() <= constant::MAX_LEN {
                        assert!(apart.len() < arrow.len(), "{name}");
                    } else {
                        assert_eq!(chunks, expected.0, "{name}");
                        assert!(apart == arrow, "{name}, {group_rows:?}: byte for byte");
                    }
                }
            }
        }
    }
}
