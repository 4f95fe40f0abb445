//! PostgreSQL: tables whose key is not one integer column ([`KeyKind::Ordered`]) and tables
//! without a key ([`KeyKind::Whole`]).
//!
//! Key values travel as each column's text form and are cast back with the column's own type
//! (`$1::text::uuid`, `'…'::text::app.status`). A collatable column (text, varchar, citext, a
//! domain over them) is ordered by its UTF-8 bytes (`convert_to(col::text, 'UTF8')`), so two
//! servers with different collations or encodings agree on every range; other types keep their
//! own order (uuid, numeric, dates and times, enums). A composite key is ordered column by
//! column (a span's bounds compare as a row, `ROW(a, b) >= ROW(…)`). Bins are numbered by one
//! sort of the cuts and the rows together per side ([`binned`]).

use super::{PgStack, Tuning, t};
use crate::error::Result;
use crate::model::{Bin, KeyColumn, KeyKind, KeyRange, KeyValue, TableSpec};
use crate::stack::{Salted, column_list, quote_ident};

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

/// Every row of the table with its bin number `stepops_bin` (the number of cuts at or below
/// its key), its salted hash `stepops_h` and, with `keys`, its key's text forms
/// `stepops_t0`, …; the cuts' own rows are there too, marked `stepops_cut = 1`. The cuts
/// (one `text[]` parameter per key column, `$1`, `$2`, …) and the rows are sorted together on
/// the key's ordered form (a cut sorts before an equal key) and the cuts are counted by a
/// running sum: one sort, where `width_bucket` over variable-width values (text, numeric,
/// rows) walks the thresholds array on every probe (30 times slower at 10,000 cuts).
fn binned(table: &TableSpec, hash: &str, keys: bool) -> String {
    let cols = &table.key_columns;
    let n = cols.len();
    let ks: Vec<String> = (0..n).map(|i| format!("stepops_k{i}")).collect();
    let params: Vec<String> = (1..=n).map(|i| format!("${i}::text[]")).collect();
    let xs: Vec<String> = (0..n).map(|i| format!("x{i}")).collect();
    let cut_keys: Vec<String> = cols
        .iter()
        .enumerate()
        .map(|(i, c)| {
            format!(
                "{} AS stepops_k{i}",
                ordered(c, &cast(c, &format!("u.x{i}")))
            )
        })
        .collect();
    let row_keys: Vec<String> = cols
        .iter()
        .map(|c| ordered(c, &quote_ident(&c.name)))
        .collect();
    let (cut_texts, row_texts) = if keys {
        (
            (0..n)
                .map(|i| format!(", NULL::text AS stepops_t{i}"))
                .collect::<String>(),
            cols.iter()
                .map(|c| format!(", {}::text", quote_ident(&c.name)))
                .collect::<String>(),
        )
    } else {
        (String::new(), String::new())
    };
    format!(
        "SELECT sum(stepops_cut) OVER (ORDER BY {order}, stepops_cut DESC ROWS UNBOUNDED PRECEDING)
                AS stepops_bin, *
         FROM (SELECT {cut_keys}, 1 AS stepops_cut, NULL::bigint AS stepops_h{cut_texts}
               FROM unnest({params}) AS u({xs})
               UNION ALL
               SELECT {row_keys}, 0, {hash}{row_texts} FROM {t}) stepops_u",
        order = ks.join(", "),
        cut_keys = cut_keys.join(", "),
        params = params.join(", "),
        xs = xs.join(", "),
        row_keys = row_keys.join(", "),
        t = t(table),
    )
}

/// The key's column when the key is one column ordered by its own type (not text-like), so
/// its index serves ranges.
fn single_native(table: &TableSpec) -> Option<&KeyColumn> {
    match table.key_columns.as_slice() {
        [c] if !c.collatable => Some(c),
        _ => None,
    }
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
    pub(super) async fn pg_table_sum(&self, on: Salted<'_>) -> Result<(u64, String)> {
        let (table, salt) = (on.table, on.salt);
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

    pub(super) async fn pg_key_bins(&self, on: Salted<'_>, cuts: &[KeyValue]) -> Result<Vec<Bin>> {
        let (table, salt) = (on.table, on.salt);
        let hash = self.hash_expr(table, salt);
        let sql = match single_native(table) {
            // One fixed-width column: width_bucket's binary search, no sort.
            Some(c) if c.fixed_width => format!(
                "SELECT COALESCE(width_bucket({k}, ARRAY(SELECT {elem} FROM unnest($1::text[])
                        WITH ORDINALITY AS u(x, o) ORDER BY u.o)), 0)::bigint,
                        count(*), sum({hash})::text
                 FROM {t} GROUP BY 1",
                k = quote_ident(&c.name),
                elem = cast(c, "u.x"),
                t = t(table),
            ),
            _ => format!(
                "SELECT stepops_bin, count(*), sum(stepops_h)::text FROM ({binned}) s
                 WHERE stepops_cut = 0 GROUP BY 1",
                binned = binned(table, &hash, false),
            ),
        };
        let arrays = cut_columns(table, cuts);
        let params: Vec<&(dyn tokio_postgres::types::ToSql + Sync)> =
            arrays.iter().map(|a| a as _).collect();
        let groups = cuts.len() as u64 + 1;
        let mut bins = self
            .tuned_query(
                &sql,
                &params,
                Some(Tuning {
                    groups,
                    by_index: false,
                }),
                |r| {
                    Ok(Bin {
                        bin: r.try_get(0)?,
                        count: r.try_get::<_, i64>(1)? as u64,
                        min: 0,
                        max: 0,
                        checksum: r.try_get(2)?,
                    })
                },
            )
            .await?;
        bins.sort_unstable_by_key(|b| b.bin);
        Ok(bins)
    }

    pub(super) async fn pg_key_rows(
        &self,
        on: Salted<'_>,
        cuts: &[KeyValue],
        bins: &[i64],
    ) -> Result<Vec<(i64, KeyValue, i64)>> {
        let (table, salt) = (on.table, on.salt);
        if let Some(c) = single_native(table)
            && !cuts.is_empty()
        {
            return self.key_rows_by_index(table, c, salt, cuts, bins).await;
        }
        let n = table.key_columns.len();
        let texts: Vec<String> = (0..n).map(|i| format!("stepops_t{i}")).collect();
        let sql = format!(
            "SELECT stepops_bin, {texts}, stepops_h FROM ({binned}) s
             WHERE stepops_cut = 0 AND stepops_bin = ANY(${bins_param}::bigint[])",
            texts = texts.join(", "),
            binned = binned(table, &self.hash_expr(table, salt), true),
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

    /// [`PgStack::pg_key_rows`] for a one-column key in its own order: each bin's rows read by
    /// a range scan of the key's index (a few differing bins of a large table read only them).
    async fn key_rows_by_index(
        &self,
        table: &TableSpec,
        c: &KeyColumn,
        salt: &str,
        cuts: &[KeyValue],
        bins: &[i64],
    ) -> Result<Vec<(i64, KeyValue, i64)>> {
        let last = cuts.len() as i64;
        let (k, t, hash) = (quote_ident(&c.name), t(table), self.hash_expr(table, salt));
        let select = |bin: &str, from: &str, cond: &str| {
            format!("SELECT {bin}::bigint, {t}.{k}::text, {hash} FROM {from} WHERE {cond}")
        };
        let mut arms = Vec::new();
        let (mut ids, mut los, mut his) = (Vec::new(), Vec::new(), Vec::new());
        for &b in bins {
            if b == 0 {
                arms.push(select(
                    "0",
                    &t,
                    &format!("{k} < {}", cast(c, &literal(&cuts[0].0[0]))),
                ));
            } else if b == last {
                let lo = cast(c, &literal(&cuts[last as usize - 1].0[0]));
                arms.push(select(&last.to_string(), &t, &format!("{k} >= {lo}")));
            } else if b > 0 && b < last {
                ids.push(b);
                los.push(cuts[b as usize - 1].0[0].clone());
                his.push(cuts[b as usize].0[0].clone());
            }
        }
        if !ids.is_empty() {
            arms.push(select(
                "stepops_r.b",
                &format!("unnest($1::bigint[], $2::text[], $3::text[]) AS stepops_r(b, lo, hi) JOIN {t} ON true"),
                &format!(
                    "{t}.{k} >= {} AND {t}.{k} < {}",
                    cast(c, "stepops_r.lo"),
                    cast(c, "stepops_r.hi")
                ),
            ));
        }
        if arms.is_empty() {
            return Ok(Vec::new());
        }
        let sql = arms.join(" UNION ALL ");
        let s = self.take().await?;
        // Thousands of small ranges: index range scans, never a sequential scan per range.
        self.by_index(&s, true).await?;
        let params: Vec<&(dyn tokio_postgres::types::ToSql + Sync)> = if ids.is_empty() {
            Vec::new()
        } else {
            vec![&ids, &los, &his]
        };
        let rows = s.0.query(&sql, &params).await.map_err(|e| self.err(e))?;
        self.by_index(&s, false).await?;
        self.give(s);
        rows.iter()
            .map(|r| Ok((r.try_get(0)?, KeyValue(vec![r.try_get(1)?]), r.try_get(2)?)))
            .collect::<std::result::Result<Vec<_>, tokio_postgres::Error>>()
            .map_err(|e| self.err(e))
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
        self.copy_where(source, table, &cond).await
    }

    /// In one transaction on this (destination) stack: deletes the rows matching `cond` (an
    /// SQL condition over the table) and inserts `source`'s rows matching it. Returns
    /// `(deleted, inserted)`.
    pub(super) async fn copy_where(
        &self,
        source: &PgStack,
        table: &TableSpec,
        cond: &str,
    ) -> Result<(u64, u64)> {
        let delete = format!("DELETE FROM {t} WHERE {cond}", t = t(table));
        let select = format!(
            "SELECT {cols} FROM {t} WHERE {cond}",
            cols = column_list(table),
            t = t(table)
        );
        self.copy_with(source, table, &delete, &select, false).await
    }
}
