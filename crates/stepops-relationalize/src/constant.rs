//! A required string column with the same value in every row (`recordid`: one archive is one
//! record, and every row of each of its tables carries its id) written as its Parquet column
//! chunk directly: a dictionary of that one value and one data page whose indices are a single
//! run. Through parquet's Arrow writer, every row's copy was laid out in a string array,
//! compared twice for the statistics and hashed into the dictionary: a tenth of a run's CPU
//! time (docs/benchmarks.md), for a chunk of a few dozen bytes. Up to 20,000 rows the chunk,
//! its statistics and its page index are byte for byte what that writer makes of such a
//! column; past that, it starts a new page every 20,000 rows and this chunk stays one page (a
//! test compares both, and reads the rows back).

use bytes::Bytes;
use parquet::basic::{BoundaryOrder, Compression, Encoding, EncodingMask, PageType, Type};
use parquet::column::page::{CompressedPage, Page, PageWriter};
use parquet::column::writer::ColumnCloseResult;
use parquet::data_type::ByteArray;
use parquet::errors::{ParquetError, Result};
use parquet::file::metadata::{
    ColumnChunkMetaData, ColumnIndexBuilder, OffsetIndexBuilder, PageEncodingStats,
};
use parquet::file::statistics::{Statistics, ValueStatistics};
use parquet::file::writer::{SerializedPageWriter, SerializedRowGroupWriter, TrackedWrite};
use parquet::schema::types::ColumnDescPtr;

/// The longest value written this way: parquet's default limit on statistics and the page
/// index (longer values would have truncated ones, as the Arrow writer makes them).
pub const MAX_LEN: usize = 64;

/// Whether a column of type `descr` can be written this way: a required (not nullable, not
/// repeated) string column.
pub fn fits(descr: &ColumnDescPtr) -> bool {
    descr.physical_type() == Type::BYTE_ARRAY
        && descr.max_def_level() == 0
        && descr.max_rep_level() == 0
}

/// Appends to `group` the column `descr` (which [`fits`]) holding `value` (at most [`MAX_LEN`]
/// bytes) in each of its `rows` rows, snappy-compressed.
pub fn append<W: std::io::Write + Send>(
    group: &mut SerializedRowGroupWriter<'_, W>,
    descr: ColumnDescPtr,
    value: &str,
    rows: usize,
) -> Result<()> {
    let too_many = |_| ParquetError::General(format!("{rows} rows do not fit one data page"));
    let num_values = u32::try_from(rows).map_err(too_many)?;
    let unencoded = i64::try_from(rows.saturating_mul(value.len())).map_err(too_many)?;

    // The dictionary: the value, PLAIN (its length, then its bytes).
    let mut plain = Vec::with_capacity(4 + value.len());
    plain.extend_from_slice(&(value.len() as u32).to_le_bytes());
    plain.extend_from_slice(value.as_bytes());
    let dictionary = compressed(&plain, |buf| Page::DictionaryPage {
        buf,
        num_values: 1,
        encoding: Encoding::PLAIN,
        is_sorted: false,
    })?;
    // The data page: no levels (required), then the indices, RLE_DICTIONARY: the bit width (0,
    // one entry) and one RLE run of `rows` zeros (its header `rows << 1` as a ULEB128; the
    // value takes no byte at width 0).
    let mut indices = vec![0u8];
    let mut header = u64::from(num_values) << 1;
    loop {
        let low = (header & 0x7f) as u8;
        header >>= 7;
        if header == 0 {
            indices.push(low);
            break;
        }
        indices.push(low | 0x80);
    }
    let data = compressed(&indices, |buf| Page::DataPage {
        buf,
        num_values,
        encoding: Encoding::RLE_DICTIONARY,
        def_level_encoding: Encoding::RLE,
        rep_level_encoding: Encoding::RLE,
        statistics: None,
    })?;

    let mut sink = TrackedWrite::new(Vec::new());
    let (dictionary, data) = {
        let mut pages = SerializedPageWriter::new(&mut sink);
        let written = (pages.write_page(dictionary)?, pages.write_page(data)?);
        pages.close()?;
        written
    };
    let chunk = Bytes::from(sink.into_inner()?);

    let value = ByteArray::from(value);
    let statistics = ValueStatistics::new(
        Some(value.clone()),
        Some(value.clone()),
        None,
        Some(0),
        false,
    )
    .with_backwards_compatible_min_max(descr.sort_order().is_signed());
    let metadata = ColumnChunkMetaData::builder(descr)
        .set_compression(Compression::SNAPPY)
        .set_encodings_mask(EncodingMask::new_from_encodings(
            [Encoding::PLAIN, Encoding::RLE, Encoding::RLE_DICTIONARY].iter(),
        ))
        .set_page_encoding_stats(vec![
            PageEncodingStats {
                page_type: PageType::DICTIONARY_PAGE,
                encoding: Encoding::PLAIN,
                count: 1,
            },
            PageEncodingStats {
                page_type: PageType::DATA_PAGE,
                encoding: Encoding::RLE_DICTIONARY,
                count: 1,
            },
        ])
        .set_total_compressed_size((dictionary.compressed_size + data.compressed_size) as i64)
        .set_total_uncompressed_size((dictionary.uncompressed_size + data.uncompressed_size) as i64)
        .set_num_values(i64::from(num_values))
        .set_data_page_offset(data.offset as i64)
        .set_dictionary_page_offset(Some(dictionary.offset as i64))
        .set_statistics(Statistics::ByteArray(statistics))
        .set_unencoded_byte_array_data_bytes(Some(unencoded))
        .build()?;

    let mut column_index = ColumnIndexBuilder::new(Type::BYTE_ARRAY);
    column_index.append(false, value.data().to_vec(), value.data().to_vec(), 0, None);
    column_index.set_boundary_order(BoundaryOrder::ASCENDING);
    let mut offset_index = OffsetIndexBuilder::new();
    offset_index.append_row_count(i64::from(num_values));
    offset_index.append_offset_and_size(data.offset as i64, data.compressed_size as i32);
    offset_index.append_unencoded_byte_array_data_bytes(Some(unencoded));

    let close = ColumnCloseResult {
        bytes_written: chunk.len() as u64,
        rows_written: u64::from(num_values),
        metadata,
        bloom_filter: None,
        column_index: Some(column_index.build()?),
        offset_index: Some(offset_index.build()),
    };
    group.append_column(&chunk, close)
}

/// `bytes` snappy-compressed, as the page `page` makes of them.
fn compressed(bytes: &[u8], page: impl FnOnce(Bytes) -> Page) -> Result<CompressedPage> {
    let buf = snap::raw::Encoder::new()
        .compress_vec(bytes)
        .map_err(|e| ParquetError::External(Box::new(e)))?;
    Ok(CompressedPage::new(page(Bytes::from(buf)), bytes.len()))
}
