//! SQLite: tables whose key is not one integer column ([`crate::KeyKind::Ordered`]: text and
//! composite primary keys, `WITHOUT ROWID` tables) and tables without a key
//! ([`crate::KeyKind::Whole`]).
//!
//! Key values travel as text and are cast back with the column's declared type (so they take
//! the column's affinity and compare as the column's values do). SQLite has no
//! `width_bucket`: a row's bin is the number of cuts at or below its key, counted by a window
//! over the cuts and the rows sorted together (a cut sorts before an equal key).

use super::{SqliteStack, t};
use crate::error::Result;
use crate::model::{Bin, KeyRange, KeyValue, TableSpec};
use crate::stack::{Salted, column_list, quote_ident};

/// An SQL string literal.
fn literal(text: &str) -> String {
    format!("'{}'", text.replace('\'', "''"))
}

/// `expr` cast to a key column's declared type (its affinity), when it declares one.
fn cast(table: &TableSpec, i: usize, expr: &str) -> String {
    let ty = &table.key_columns[i].sql_type;
    if ty.is_empty() {
        expr.to_owned()
    } else {
        format!("CAST({expr} AS {ty})")
    }
}

/// The key columns, quoted.
fn key_cols(table: &TableSpec) -> Vec<String> {
    table
        .key_columns
        .iter()
        .map(|c| quote_ident(&c.name))
        .collect()
}

/// A key value as a row of cast literals: `(CAST('a' AS TEXT), CAST('1' AS INTEGER))`.
fn key_literal(table: &TableSpec, key: &KeyValue) -> String {
    let parts: Vec<String> = key
        .0
        .iter()
        .enumerate()
        .map(|(i, v)| cast(table, i, &literal(v)))
        .collect();
    format!("({})", parts.join(", "))
}

/// The SQL condition selecting the rows of `ranges`.
fn ranges_condition(table: &TableSpec, ranges: &[KeyRange]) -> String {
    let key = format!("({})", key_cols(table).join(", "));
    let arms: Vec<String> = ranges
        .iter()
        .map(|r| match &r.key {
            Some(k) => format!("{key} = {}", key_literal(table, k)),
            None => {
                let mut parts = Vec::new();
                if let Some(from) = &r.from {
                    parts.push(format!("{key} >= {}", key_literal(table, from)));
                }
                if let Some(until) = &r.until {
                    parts.push(format!("{key} < {}", key_literal(table, until)));
                }
                if parts.is_empty() {
                    "1".to_owned()
                } else {
                    format!("({})", parts.join(" AND "))
                }
            }
        })
        .collect();
    arms.join(" OR ")
}

/// Every row with its bin number (`stepops_bin`), the cuts given as a JSON array of key
/// arrays in parameter `?2`; the row's columns keep their names, its key columns are also
/// `stepops_k0`, `stepops_k1`, ….
fn binned(table: &TableSpec) -> String {
    let n = table.key_columns.len();
    let ks: Vec<String> = (0..n).map(|i| format!("stepops_k{i}")).collect();
    let cut_keys: Vec<String> = (0..n)
        .map(|i| {
            format!(
                "{} AS stepops_k{i}",
                cast(table, i, &format!("json_extract(value, '$[{i}]')"))
            )
        })
        .collect();
    let nulls: Vec<String> = table
        .columns
        .iter()
        .map(|c| format!("NULL AS {}", quote_ident(c)))
        .collect();
    let row_keys: Vec<String> = key_cols(table)
        .iter()
        .enumerate()
        .map(|(i, c)| format!("{c} AS stepops_k{i}"))
        .collect();
    format!(
        "SELECT sum(stepops_cut) OVER (ORDER BY {order}, stepops_cut DESC ROWS UNBOUNDED PRECEDING) AS stepops_bin, * FROM (
           SELECT {cut_keys}, 1 AS stepops_cut, {nulls} FROM json_each(?2)
           UNION ALL SELECT {row_keys}, 0, {cols} FROM {t})",
        order = ks.join(", "),
        cut_keys = cut_keys.join(", "),
        nulls = nulls.join(", "),
        row_keys = row_keys.join(", "),
        cols = column_list(table),
        t = t(table),
    )
}

/// The cuts as the JSON text of `?2`.
fn cuts_json(cuts: &[KeyValue]) -> String {
    serde_json::to_string(&cuts.iter().map(|k| &k.0).collect::<Vec<_>>()).expect("strings")
}

impl SqliteStack {
    pub(super) async fn sqlite_row_count(&self, table: &TableSpec) -> Result<u64> {
        let sql = format!("SELECT count(*) FROM {}", t(table));
        self.blocking(false, move |conn, _| {
            conn.query_row(&sql, [], |r| r.get::<_, i64>(0).map(|n| n as u64))
        })
        .await
    }

    pub(super) async fn sqlite_table_sum(&self, on: Salted<'_>) -> Result<(u64, String)> {
        let (table, salt) = (on.table, on.salt);
        let sql = format!(
            "SELECT count(*), stepops_rowsum(?1, {cols}) FROM {t}",
            cols = column_list(table),
            t = t(table)
        );
        let salt = salt.to_owned();
        self.blocking(false, move |conn, _| {
            conn.query_row(&sql, [salt], |r| {
                Ok((
                    r.get::<_, i64>(0)? as u64,
                    r.get::<_, Option<i64>>(1)?.unwrap_or(0).to_string(),
                ))
            })
        })
        .await
    }

    pub(super) async fn sqlite_key_cuts(
        &self,
        table: &TableSpec,
        every: u64,
    ) -> Result<Vec<KeyValue>> {
        let cols = key_cols(table);
        let n = cols.len();
        let texts: Vec<String> = cols.iter().map(|c| format!("CAST({c} AS TEXT)")).collect();
        let sql = format!(
            "SELECT {texts} FROM (SELECT *, row_number() OVER (ORDER BY {order}) AS stepops_rn FROM {t})
             WHERE stepops_rn % ?1 = 0 ORDER BY stepops_rn",
            texts = texts.join(", "),
            order = cols.join(", "),
            t = t(table)
        );
        let every = every.max(1) as i64;
        self.blocking(false, move |conn, _| {
            conn.prepare(&sql)?
                .query_map([every], |r| {
                    (0..n)
                        .map(|i| r.get::<_, String>(i))
                        .collect::<rusqlite::Result<Vec<_>>>()
                })?
                .map(|k| k.map(KeyValue))
                .collect()
        })
        .await
    }

    pub(super) async fn sqlite_key_bins(
        &self,
        on: Salted<'_>,
        cuts: &[KeyValue],
    ) -> Result<Vec<Bin>> {
        let (table, salt) = (on.table, on.salt);
        let sql = format!(
            "SELECT stepops_bin, count(*), stepops_rowsum(?1, {cols}) FROM ({binned})
             WHERE stepops_cut = 0 GROUP BY stepops_bin ORDER BY stepops_bin",
            cols = column_list(table),
            binned = binned(table)
        );
        let params = (salt.to_owned(), cuts_json(cuts));
        self.blocking(false, move |conn, _| {
            conn.prepare(&sql)?
                .query_map(rusqlite::params![params.0, params.1], |r| {
                    Ok(Bin {
                        bin: r.get(0)?,
                        count: r.get::<_, i64>(1)? as u64,
                        min: 0,
                        max: 0,
                        checksum: r.get::<_, i64>(2)?.to_string(),
                    })
                })?
                .collect()
        })
        .await
    }

    pub(super) async fn sqlite_key_rows(
        &self,
        on: Salted<'_>,
        cuts: &[KeyValue],
        bins: &[i64],
    ) -> Result<Vec<(i64, KeyValue, i64)>> {
        let (table, salt) = (on.table, on.salt);
        let n = table.key_columns.len();
        let texts: Vec<String> = (0..n)
            .map(|i| format!("CAST(stepops_k{i} AS TEXT)"))
            .collect();
        let sql = format!(
            "SELECT stepops_bin, {texts}, stepops_rowhash(?1, {cols}) FROM ({binned})
             WHERE stepops_cut = 0 AND stepops_bin IN (SELECT value FROM json_each(?3))",
            texts = texts.join(", "),
            cols = column_list(table),
            binned = binned(table)
        );
        let bins = serde_json::to_string(bins).expect("numbers");
        let params = (salt.to_owned(), cuts_json(cuts), bins);
        self.blocking(false, move |conn, _| {
            conn.prepare(&sql)?
                .query_map(rusqlite::params![params.0, params.1, params.2], |r| {
                    let key = (1..=n)
                        .map(|i| r.get::<_, String>(i))
                        .collect::<rusqlite::Result<Vec<_>>>()?;
                    Ok((r.get(0)?, KeyValue(key), r.get(n + 1)?))
                })?
                .collect()
        })
        .await
    }

    pub(super) async fn sqlite_copy_keys(
        &self,
        source: &Self,
        table: &TableSpec,
        ranges: Option<&[KeyRange]>,
    ) -> Result<(u64, u64)> {
        let cond = match ranges {
            None => "1".to_owned(),
            Some([]) => return Ok((0, 0)),
            Some(r) => ranges_condition(table, r),
        };
        let t = t(table);
        let cols = column_list(table);
        let mut deletes = vec![format!("DELETE FROM main.{t} WHERE {cond}")];
        // Destination rows that collide with incoming ones on another unique key go too.
        for key in &table.conflict_keys {
            let kc = key
                .iter()
                .map(|c| quote_ident(c))
                .collect::<Vec<_>>()
                .join(", ");
            deletes.push(format!(
                "DELETE FROM main.{t} WHERE ({kc}) IN (SELECT {kc} FROM stepops_src.{t} WHERE {cond})"
            ));
        }
        let insert = format!(
            "INSERT INTO main.{t} ({cols}) SELECT {cols} FROM stepops_src.{t} WHERE {cond}"
        );
        self.copy_statements(source, deletes, vec![insert]).await
    }
}
