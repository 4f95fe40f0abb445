//! The database boundary: what the planner and the copier need from one side of a migration.

use crate::error::Result;
use crate::model::{Bin, KeyRange, KeyStats, KeyValue, TableSchema, TableSpec};

/// A table's rows as the checksum queries see them: hashed under the run's salt.
#[derive(Debug, Clone, Copy)]
pub struct Salted<'a> {
    /// The table.
    pub table: &'a TableSpec,
    /// The salt every row hash of the run is seeded with.
    pub salt: &'a str,
}

/// How [`Stack::written_since`] treats write statistics that may still be on their way.
#[derive(Debug, Clone, Copy)]
pub struct Settle {
    /// How long they may take to arrive.
    pub within: std::time::Duration,
    /// Wait for them (or answer at once that a write is not ruled out).
    pub wait: bool,
}

/// One side of a migration (a *stack*). Implementations: [`crate::postgres::PgStack`] and
/// [`crate::sqlite::SqliteStack`]. Keys are compared as `i64`; every range is inclusive.
#[allow(async_fn_in_trait)]
pub trait Stack: Send + Sync {
    /// The stack's URL without its password, for messages.
    fn describe(&self) -> String;

    /// Whether a column type, as this engine spells it, is an integer type.
    fn is_integer_type(sql_type: &str) -> bool
    where
        Self: Sized;

    /// Every table of the stack (in every schema but the system's and stepops' own, or in
    /// `schemas` when not empty) with columns, primary key and foreign keys.
    async fn schema(&self, schemas: &[String]) -> Result<Vec<TableSchema>>;

    /// The schema that a table name without one means (the first of the search path); empty
    /// where tables have no schema (SQLite).
    async fn default_schema(&self) -> Result<String>;

    /// Checks, without writing anything, that this stack can be read (`as_dest == false`) or
    /// written as a destination (`as_dest == true`) for these tables.
    async fn check_access(&self, tables: &[TableSpec], as_dest: bool) -> Result<()>;

    /// `min`, `max`, `count` of the table's range key.
    async fn stats(&self, table: &TableSpec) -> Result<KeyStats>;

    /// `min` and `max` of the table's range key and its row count, which may be an estimate
    /// where the engine has a cheap one (the plan only sizes its bins with it). Default: the
    /// exact [`Stack::stats`].
    async fn bounds(&self, table: &TableSpec) -> Result<KeyStats> {
        self.stats(table).await
    }

    /// Rows with range key in `[lo, hi]`.
    async fn count_range(&self, table: &TableSpec, lo: i64, hi: i64) -> Result<u64>;

    /// Rows in each of several disjoint key ranges (one query where the engine allows), in
    /// the order of `ranges`.
    async fn count_ranges(&self, table: &TableSpec, ranges: &[(i64, i64)]) -> Result<Vec<u64>> {
        let mut out = Vec::with_capacity(ranges.len());
        for &(lo, hi) in ranges {
            out.push(self.count_range(table, lo, hi).await?);
        }
        Ok(out)
    }

    /// The range keys of the rows numbered `every`, `2 * every`, … (in key order) among the
    /// rows with key in `[lo, hi]`: where to cut that range into chunks of `every` rows.
    async fn boundaries(&self, table: &TableSpec, lo: i64, hi: i64, every: u64)
    -> Result<Vec<i64>>;

    /// Bin checksums over the whole rows with key in `[lo, hi]`, grouped by
    /// `(key - lo) / width`, ordered by bin. `hi - lo` fits an `i64`.
    async fn bins(&self, on: Salted<'_>, lo: i64, hi: i64, width: i64) -> Result<Vec<Bin>>;

    /// Bin checksums over several disjoint key ranges at once (one query where the engine
    /// allows): for each `(lo, hi, width)` of `ranges`, the bins of [`Stack::bins`], returned
    /// as `(index into ranges, bin)` ordered by index then bin. Each `hi - lo` fits an `i64`.
    async fn bins_multi(
        &self,
        on: Salted<'_>,
        ranges: &[(i64, i64, i64)],
    ) -> Result<Vec<(usize, Bin)>> {
        let mut out = Vec::new();
        for (i, &(lo, hi, width)) in ranges.iter().enumerate() {
            out.extend(
                self.bins(on, lo, hi, width)
                    .await?
                    .into_iter()
                    .map(|b| (i, b)),
            );
        }
        Ok(out)
    }

    /// In one transaction on this (destination) stack: delete the rows whose range key is in
    /// one of `ranges` (disjoint, ascending, each `[lo, hi]`) and insert `source`'s rows of
    /// those ranges. Returns `(deleted, inserted)`.
    async fn copy_ranges(
        &self,
        source: &Self,
        table: &TableSpec,
        ranges: &[(i64, i64)],
    ) -> Result<(u64, u64)>
    where
        Self: Sized;

    /// The table's row count.
    async fn row_count(&self, table: &TableSpec) -> Result<u64>;

    /// A stamp of the writes `tables` have seen, for the cut-over mode's check that the source
    /// stayed quiet: two equal stamps mean no write was seen in between. PostgreSQL: the
    /// server's next transaction id, the statistics system's inserted, updated and deleted row
    /// counts and the tables' file nodes (a TRUNCATE changes those; partitions included; refused when `track_counts` is
    /// off); SQLite: the size and modification time of the
    /// database file and of its write-ahead log.
    async fn write_stamp(&self, tables: &[TableSpec]) -> Result<String>;

    /// Whether `tables` were written since `stamp` (a [`Stack::write_stamp`]) was taken.
    /// `settle`: what to do when the stamps alone cannot tell (PostgreSQL, whose write
    /// statistics may arrive late; other engines answer at once).
    async fn written_since(&self, tables: &[TableSpec], stamp: &str, _: Settle) -> Result<bool> {
        Ok(self.write_stamp(tables).await? != stamp)
    }

    /// A table without a key ([`crate::KeyKind::Whole`]): its row count and an
    /// order-independent checksum (the sum of the salted row hashes, so duplicate rows count).
    async fn table_sum(&self, on: Salted<'_>) -> Result<(u64, String)>;

    /// [`crate::KeyKind::Ordered`]: the keys of the rows numbered `every`, `2 * every`, … in
    /// key order (where to cut the table into bins or chunks of `every` rows).
    async fn key_cuts(&self, table: &TableSpec, every: u64) -> Result<Vec<KeyValue>>;

    /// [`crate::KeyKind::Ordered`]: bin checksums over the whole table, bin 0 holding the keys
    /// below `cuts[0]` and bin `i` those in `[cuts[i-1], cuts[i])`; ordered by bin, empty bins
    /// left out (`min`/`max` of each bin are 0).
    async fn key_bins(&self, on: Salted<'_>, cuts: &[KeyValue]) -> Result<Vec<Bin>>;

    /// [`crate::KeyKind::Ordered`]: the key and salted hash of every row in the given bins of
    /// [`Stack::key_bins`] (ascending bin numbers), as `(bin, key, hash)`.
    async fn key_rows(
        &self,
        on: Salted<'_>,
        cuts: &[KeyValue],
        bins: &[i64],
    ) -> Result<Vec<(i64, KeyValue, i64)>>;

    /// In one transaction on this (destination) stack: delete the rows in `ranges` and insert
    /// `source`'s rows of those ranges; `None`: the whole table. Returns `(deleted, inserted)`.
    async fn copy_keys(
        &self,
        source: &Self,
        table: &TableSpec,
        ranges: Option<&[KeyRange]>,
    ) -> Result<(u64, u64)>
    where
        Self: Sized;

    /// After convergence: sets the destination's sequences owned by the tables' columns
    /// (serial / identity) to the source's values, so new rows get fresh ids. Returns how many.
    async fn sync_sequences(&self, source: &Self, tables: &[TableSpec]) -> Result<u32>
    where
        Self: Sized;
}

/// Quotes an SQL identifier (`"name"`, inner quotes doubled); both engines use this form.
pub fn quote_ident(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

/// The table's columns, quoted and comma-separated, in [`TableSpec::columns`] order.
pub fn column_list(table: &TableSpec) -> String {
    table
        .columns
        .iter()
        .map(|c| quote_ident(c))
        .collect::<Vec<_>>()
        .join(", ")
}
