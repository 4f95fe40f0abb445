//! PostgreSQL: tables whose key is not one integer column ([`KeyKind::Ordered`]) and tables
//! without a key ([`KeyKind::Whole`]).
//!
//! Key values travel as each column's text form and are cast back with the column's own type
//! (`$1::text::uuid`, `'…'::text::app.status`). A collatable column (text, varchar, citext, a
//! domain over them) is ordered by its UTF-8 bytes (`convert_to(col::text, 'UTF8')`), so two
//! servers with different collations or encodings agree on every range; other types keep their
//! own order (uuid, numeric, dates and times, enums). A composite key is ordered as a row
//! (`ROW(a, b)`). Bins are numbered by `width_bucket` over the cuts, in one scan per side.

use super::{PgStack, t};
use crate::error::Result;
use crate::model::{Bin, KeyColumn, KeyKind, KeyRange, KeyValue, TableSpec};
use crate::stack::{column_list, quote_ident};

/// An SQL string literal (standard_conforming_strings is on in every session).
fn literal(text: &str) -> String {
    format!("'{}'", text.replace('\'', "''"))
}

/// The ordering form of a key column or of a value cast to its type.
fn ordered(col: &KeyColumn, expr: &str) -> String {
    if col.collatable {
        format!("convert_to(({expr})::text, 'UTF8')")
    } else {
        expr.to_owned()
    }
}

/// A value (text form) cast back to the column's type.
fn cast(col: &KeyColumn, text_expr: &str) -> String {
    format!("({text_expr})::text::{}", col.sql_type)
}

/// The table's key as one orderable expression: the column, or a row of them.
fn key_expr(table: &TableSpec) -> String {
    row(table
        .key_columns
        .iter()
        .map(|c| ordered(c, &quote_ident(&c.name)))
        .collect())
}

/// One expression, or `ROW(…)` of several.
fn row(parts: Vec<String>) -> String {
    if parts.len() == 1 {
        parts.into_iter().next().expect("one")
    } else {
        format!("ROW({})", parts.join(", "))
    }
}

/// A key value as an orderable SQL literal expression.
fn key_literal(table: &TableSpec, key: &KeyValue) -> String {
    row(table
        .key_columns
        .iter()
        .zip(&key.0)
        .map(|(c, v)| ordered(c, &cast(c, &literal(v))))
        .collect())
}

/// The key columns' text forms, for a select list.
fn key_text_columns(table: &TableSpec) -> String {
    table
        .key_columns
        .iter()
        .map(|c| format!("{}::text", quote_ident(&c.name)))
        .collect::<Vec<_>>()
        .join(", ")
}

/// Reads a key's text forms from columns `first..first + width` of a row.
fn key_of(
    r: &tokio_postgres::Row,
    first: usize,
    width: usize,
) -> Result<KeyValue, tokio_postgres::Error> {
    (first..first + width)
        .map(|i| r.try_get::<_, String>(i))
        .collect::<Result<Vec<_>, _>>()
        .map(KeyValue)
}

/// The `width_bucket` thresholds array built from the cuts passed as one `text[]` parameter
/// per key column (`$1`, `$2`, …).
fn thresholds(table: &TableSpec) -> String {
    let cols = &table.key_columns;
    let params: Vec<String> = (1..=cols.len()).map(|i| format!("${i}::text[]")).collect();
    let names: Vec<String> = (1..=cols.len()).map(|i| format!("x{i}")).collect();
    let elem = row(cols
        .iter()
        .zip(&names)
        .map(|(c, n)| ordered(c, &cast(c, &format!("u.{n}"))))
        .collect());
    format!(
        "(SELECT array_agg({elem} ORDER BY u.o) FROM unnest({}) WITH ORDINALITY AS u({}, o))",
        params.join(", "),
        names.join(", ")
    )
}

/// The cuts as one text array per key column.
fn cut_columns(table: &TableSpec, cuts: &[KeyValue]) -> Vec<Vec<String>> {
    (0..table.key_columns.len())
        .map(|i| cuts.iter().map(|k| k.0[i].clone()).collect())
        .collect()
}

/// The SQL condition selecting the rows of `ranges` (a point is an equality, which the key's
/// index serves; a span compares the ordered key).
pub(super) fn ranges_condition(table: &TableSpec, ranges: &[KeyRange]) -> String {
    let cols: Vec<String> = table
        .key_columns
        .iter()
        .map(|c| quote_ident(&c.name))
        .collect();
    let mut points = Vec::new();
    let mut spans = Vec::new();
    for r in ranges {
        if let Some(k) = &r.key {
            let values: Vec<String> = table
                .key_columns
                .iter()
                .zip(&k.0)
                .map(|(c, v)| cast(c, &literal(v)))
                .collect();
            points.push(format!("({})", values.join(", ")));
        } else {
            let mut parts = Vec::new();
            if let Some(from) = &r.from {
                parts.push(format!(
                    "{} >= {}",
                    key_expr(table),
                    key_literal(table, from)
                ));
            }
            if let Some(until) = &r.until {
                parts.push(format!(
                    "{} < {}",
                    key_expr(table),
                    key_literal(table, until)
                ));
            }
            spans.push(if parts.is_empty() {
                "true".to_owned()
            } else {
                format!("({})", parts.join(" AND "))
            });
        }
    }
    if !points.is_empty() {
        spans.push(format!(
            "({}) IN (VALUES {})",
            cols.join(", "),
            points.join(", ")
        ));
    }
    spans.join(" OR ")
}

impl PgStack {
    pub(super) async fn pg_table_sum(
        &self,
        table: &TableSpec,
        salt: &str,
    ) -> Result<(u64, String)> {
        let sql = format!(
            "SELECT count(*), COALESCE(sum({hash}), 0)::text FROM {t}",
            hash = self.hash_expr(table, salt),
            t = t(table)
        );
        let rows = self
            .query_with(&sql, |r| {
                Ok((r.try_get::<_, i64>(0)? as u64, r.try_get::<_, String>(1)?))
            })
            .await?;
        Ok(rows.into_iter().next().unwrap_or((0, "0".into())))
    }

    pub(super) async fn pg_key_cuts(&self, table: &TableSpec, every: u64) -> Result<Vec<KeyValue>> {
        let sql = format!(
            "SELECT {keys} FROM (SELECT {keys}, row_number() OVER (ORDER BY {order}) AS stepops_rn
             FROM {t}) s WHERE stepops_rn % {every} = 0 ORDER BY stepops_rn",
            keys = key_text_columns(table),
            order = key_expr(table),
            t = t(table),
            every = every.max(1)
        );
        let width = table.key_columns.len();
        self.query_with(&sql, |r| key_of(r, 0, width)).await
    }

    pub(super) async fn pg_key_bins(
        &self,
        table: &TableSpec,
        salt: &str,
        cuts: &[KeyValue],
    ) -> Result<Vec<Bin>> {
        let sql = format!(
            "SELECT COALESCE(width_bucket({key}, {thresholds}), 0)::bigint, count(*), sum({hash})::text
             FROM {t} GROUP BY 1 ORDER BY 1",
            key = key_expr(table),
            thresholds = thresholds(table),
            hash = self.hash_expr(table, salt),
            t = t(table)
        );
        let arrays = cut_columns(table, cuts);
        let params: Vec<&(dyn tokio_postgres::types::ToSql + Sync)> =
            arrays.iter().map(|a| a as _).collect();
        self.query_params(&sql, &params, |r| {
            Ok(Bin {
                bin: r.try_get(0)?,
                count: r.try_get::<_, i64>(1)? as u64,
                min: 0,
                max: 0,
                checksum: r.try_get(2)?,
            })
        })
        .await
    }

    pub(super) async fn pg_key_rows(
        &self,
        table: &TableSpec,
        salt: &str,
        cuts: &[KeyValue],
        bins: &[i64],
    ) -> Result<Vec<(i64, KeyValue, i64)>> {
        let n = table.key_columns.len();
        let sql = format!(
            "SELECT * FROM (SELECT COALESCE(width_bucket({key}, {thresholds}), 0)::bigint AS stepops_bin,
                    {keys}, {hash} FROM {t}) s
             WHERE stepops_bin = ANY(${bins_param}::bigint[])",
            key = key_expr(table),
            thresholds = thresholds(table),
            keys = key_text_columns(table),
            hash = self.hash_expr(table, salt),
            t = t(table),
            bins_param = n + 1,
        );
        let arrays = cut_columns(table, cuts);
        let bins = bins.to_vec();
        let mut params: Vec<&(dyn tokio_postgres::types::ToSql + Sync)> =
            arrays.iter().map(|a| a as _).collect();
        params.push(&bins);
        self.query_params(&sql, &params, |r| {
            Ok((r.try_get(0)?, key_of(r, 1, n)?, r.try_get(n + 1)?))
        })
        .await
    }

    pub(super) async fn pg_copy_keys(
        &self,
        source: &Self,
        table: &TableSpec,
        ranges: Option<&[KeyRange]>,
    ) -> Result<(u64, u64)> {
        let cond = match (table.key, ranges) {
            (KeyKind::Whole, _) | (_, None) => "true".to_owned(),
            (_, Some([])) => return Ok((0, 0)),
            (_, Some(r)) => ranges_condition(table, r),
        };
        let delete = format!("DELETE FROM {t} WHERE {cond}", t = t(table));
        let select = format!(
            "SELECT {cols} FROM {t} WHERE {cond}",
            cols = column_list(table),
            t = t(table)
        );
        self.copy_with(source, table, &delete, &select, false).await
    }
}
