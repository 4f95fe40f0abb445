//! PostgreSQL stacks (`postgres://…`): the production case.
//!
//! Checksums: `sum` per bin of a salted 64-bit hash of each whole row (`hash_record_extended`
//! from PostgreSQL 14 on, `hashtextextended` of the row's text before), computed by the server; sessions pin `TimeZone`, `DateStyle`, `IntervalStyle`, `extra_float_digits` and
//! `bytea_output` so both sides print rows identically. Copy: the source's
//! `COPY (SELECT … WHERE key BETWEEN lo AND hi) TO STDOUT (FORMAT binary)` bytes are streamed,
//! undecoded, into the destination's `COPY … FROM STDIN (FORMAT binary)` inside one transaction
//! that first deletes the range with `session_replication_role = replica` (foreign-key and user
//! triggers off for that transaction only). Memory stays at a few COPY buffers whatever the range.
//! Bin queries group without `ORDER BY` (the server then hash-aggregates a few thousand bins
//! instead of sorting every row, an external sort on disk at millions of rows), with `work_mem`
//! raised for them so that the aggregate is not spilled to disk either ([`Tuning`]); the bins
//! are ordered here.

use crate::error::{MigrateError, Result};
use crate::model::{Bin, KeyRange, KeyStats, KeyValue, TableSchema, TableSpec};
use crate::stack::{Salted, Settle, Stack, column_list, quote_ident};
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use stepops_error::redact as redact_url;
use stepops_pg::{ConnectError, PgConnector};
use tokio_postgres::Client;
use tokio_postgres::error::SqlState;

mod catalog;
mod copy;
mod keys;
mod session;

pub(crate) use session::{Session, Tuning};

pub use catalog::DEST_PRIVILEGES;

/// A PostgreSQL database as one side of a migration, with a small pool of idle sessions.
pub struct PgStack {
    url: String,
    connector: PgConnector,
    read_only: bool,
    idle: Mutex<Vec<Client>>,
    record_hash: AtomicBool,
    /// `statement_timeout` of new sessions in milliseconds (0: none).
    statement_timeout_ms: AtomicU64,
}

impl std::fmt::Debug for PgStack {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PgStack")
            .field("url", &redact_url(&self.url))
            .finish()
    }
}

impl PgStack {
    /// A stack on `url`; `read_only` sessions refuse writes (`default_transaction_read_only`),
    /// which is how sources are opened.
    pub fn new(url: &str, read_only: bool) -> Result<Self> {
        let mut connector = PgConnector::parse(url).map_err(|e| {
            MigrateError::InvalidInput(format!("invalid PostgreSQL URL {}: {e}", redact_url(url)))
        })?;
        let config = connector.config_mut();
        if config.get_connect_timeout().is_none() {
            config.connect_timeout(std::time::Duration::from_secs(15));
        }
        // A dead peer is noticed in about two minutes, not the kernel's two hours.
        config.keepalives_idle(std::time::Duration::from_secs(60));
        config.keepalives_interval(std::time::Duration::from_secs(15));
        config.keepalives_retries(4);
        config.tcp_user_timeout(std::time::Duration::from_secs(120));
        Ok(PgStack {
            url: url.to_owned(),
            connector,
            read_only,
            idle: Mutex::new(Vec::new()),
            record_hash: AtomicBool::new(false),
            statement_timeout_ms: AtomicU64::new(0),
        })
    }

    /// The server's `server_version_num` (for example 150004).
    pub async fn server_version(&self) -> Result<i32> {
        let v = self
            .query_with("SELECT current_setting('server_version_num')::int", |r| {
                r.try_get::<_, i32>(0)
            })
            .await?;
        Ok(v.first().copied().unwrap_or(0))
    }

    /// Allows checksums through `hash_record_extended` (PostgreSQL 14+) for tables whose column
    /// types all hash exactly. Both sides of a migration must agree: set it on both or neither.
    pub fn allow_record_hash(&self, on: bool) {
        self.record_hash.store(on, Ordering::Relaxed);
    }

    /// The longest one statement of this stack's sessions may run (`None`: no limit); a
    /// statement cancelled for it is `Stepops.Transient` (SQLSTATE 57014). Sessions opened
    /// from now on get it.
    pub fn set_statement_timeout(&self, limit: Option<std::time::Duration>) {
        let ms = limit.map_or(0, |d| d.as_millis().min(u128::from(u64::MAX)) as u64);
        self.statement_timeout_ms.store(ms, Ordering::Relaxed);
        self.idle.lock().expect("pool lock").clear();
    }

    fn connect_err(&self, e: ConnectError) -> MigrateError {
        match e {
            ConnectError::InvalidSettings(reason) => {
                MigrateError::InvalidInput(format!("{}: {reason}", self.describe()))
            }
            ConnectError::Tls(problem) => MigrateError::Tls {
                target: self.describe(),
                reason: problem.advice(),
            },
            ConnectError::Postgres(e) if e.code().is_some() => self.err(e),
            ConnectError::Postgres(e) => MigrateError::Unreachable {
                target: self.describe(),
                reason: error_text(&e),
            },
        }
    }

    pub(crate) fn err(&self, e: tokio_postgres::Error) -> MigrateError {
        let target = self.describe();
        let reason = error_text(&e);
        let Some(code) = e.code() else {
            return MigrateError::Transient { target, reason };
        };
        let class = &code.code()[..2];
        if *code == SqlState::INVALID_PASSWORD
            || *code == SqlState::INVALID_AUTHORIZATION_SPECIFICATION
            || *code == SqlState::INSUFFICIENT_PRIVILEGE
        {
            MigrateError::Unauthorized { target, reason }
        } else if *code == SqlState::INVALID_CATALOG_NAME {
            MigrateError::NotFound { target, reason }
        } else if *code == SqlState::UNDEFINED_TABLE || *code == SqlState::UNDEFINED_COLUMN {
            MigrateError::SchemaMismatch(format!("{target}: {reason}"))
        } else if class == "08"
            || class == "40"
            || class == "53"
            || class == "57"
            || *code == SqlState::LOCK_NOT_AVAILABLE
        {
            MigrateError::Transient { target, reason }
        } else {
            MigrateError::Internal(format!("{target}: {reason}"))
        }
    }

    /// The salted per-row hash expression of [`Stack::bins`] (column names unqualified).
    fn hash_expr(&self, table: &TableSpec, salt: &str) -> String {
        let seed = salt_seed(salt);
        if self.record_hash.load(Ordering::Relaxed) && table.types.len() == table.columns.len() {
            // Columns whose type hash merges distinct values are hashed through their text.
            let exprs: Vec<String> = table
                .columns
                .iter()
                .zip(&table.types)
                .map(|(c, ty)| {
                    if hashes_exactly(ty) {
                        quote_ident(c)
                    } else {
                        format!("{}::text", quote_ident(c))
                    }
                })
                .collect();
            format!("hash_record_extended(ROW({}), {seed})", exprs.join(", "))
        } else {
            format!(
                "hashtextextended(ROW({})::text, {seed})",
                column_list(table)
            )
        }
    }
}

/// A driver error for messages and task causes: the server's message (for data exceptions,
/// whose messages quote values, only their kind), the SQLSTATE, the table, column and
/// constraint, and the hint. Never the `detail`, which quotes row values (`Key (email)=(…)`,
/// `Failing row contains (…)`).
fn error_text(e: &tokio_postgres::Error) -> String {
    if let Some(db) = e.as_db_error() {
        let code = db.code().code();
        let mut s = if code.starts_with("22") {
            "a value was refused as invalid data".to_owned()
        } else {
            db.message().to_owned()
        };
        s.push_str(&format!(" (SQLSTATE {code}"));
        if let Some(t) = db.table() {
            match db.schema() {
                Some(schema) => s.push_str(&format!(", table {schema}.{t}")),
                None => s.push_str(&format!(", table {t}")),
            }
        }
        if let Some(c) = db.column() {
            s.push_str(&format!(", column {c}"));
        }
        if let Some(c) = db.constraint() {
            s.push_str(&format!(", constraint {c}"));
        }
        s.push(')');
        if let Some(h) = db.hint() {
            s.push_str(&format!(" hint: {h}"));
        }
        return redact_url(&s);
    }
    let mut s = e.to_string();
    let mut src = std::error::Error::source(e);
    while let Some(x) = src {
        s.push_str(&format!(": {x}"));
        src = x.source();
    }
    redact_url(&s)
}

/// A 64-bit seed from the plan's salt.
fn salt_seed(salt: &str) -> i64 {
    let mut h = std::hash::DefaultHasher::new();
    std::hash::Hasher::write(&mut h, salt.as_bytes());
    std::hash::Hasher::finish(&h) as i64
}

/// Whether PostgreSQL's hash of a type tells apart every two values that COPY would store
/// differently (so `hash_record_extended` may stand for the row). Types whose equality merges
/// distinct values (unconstrained `numeric` 1.0 = 1.00, `jsonb` numbers, `interval`
/// '1 day' = '24 hours', floats -0 = 0, case-insensitive types…) are hashed through their
/// text instead.
fn hashes_exactly(sql_type: &str) -> bool {
    let base = sql_type.trim_end_matches("[]");
    let base = base.split('(').next().unwrap_or(base).trim();
    if base == "numeric" {
        return sql_type.contains('(');
    }
    matches!(
        base,
        "smallint"
            | "integer"
            | "bigint"
            | "text"
            | "character varying"
            | "bytea"
            | "boolean"
            | "timestamp with time zone"
            | "timestamp without time zone"
            | "date"
            | "uuid"
    )
}

/// The table's qualified, quoted name for SQL.
pub(crate) fn t(table: &TableSpec) -> String {
    if table.relation.schema.is_empty() {
        quote_ident(&table.name)
    } else {
        format!(
            "{}.{}",
            quote_ident(&table.relation.schema),
            quote_ident(&table.relation.relname)
        )
    }
}

pub(crate) fn k(table: &TableSpec) -> String {
    quote_ident(&table.range_key)
}

impl Stack for PgStack {
    fn describe(&self) -> String {
        redact_url(&self.url)
    }

    fn is_integer_type(sql_type: &str) -> bool {
        matches!(sql_type, "smallint" | "integer" | "bigint")
    }

    async fn schema(&self, schemas: &[String]) -> Result<Vec<TableSchema>> {
        self.pg_schema(schemas).await
    }

    async fn check_access(&self, tables: &[TableSpec], as_dest: bool) -> Result<()> {
        self.pg_check_access(tables, as_dest).await
    }

    async fn default_schema(&self) -> Result<String> {
        let rows = self
            .query_with("SELECT current_schema()::text", |r| {
                r.try_get::<_, Option<String>>(0)
            })
            .await?;
        Ok(rows.into_iter().next().flatten().unwrap_or_default())
    }

    async fn stats(&self, table: &TableSpec) -> Result<KeyStats> {
        let sql = format!(
            "SELECT min({k})::bigint, max({k})::bigint, count(*) FROM {t}",
            k = k(table),
            t = t(table)
        );
        let rows = self
            .query_with(&sql, |r| {
                Ok(KeyStats {
                    min: r.try_get(0)?,
                    max: r.try_get(1)?,
                    count: r.try_get::<_, i64>(2)? as u64,
                })
            })
            .await?;
        Ok(rows.into_iter().next().unwrap_or_default())
    }

    /// The bounds from the key's index (two index probes) and the planner's row estimate
    /// (`pg_class.reltuples`; a table never analyzed is counted), instead of a scan of every
    /// row.
    async fn bounds(&self, table: &TableSpec) -> Result<KeyStats> {
        // A partitioned table's estimate is its leaf partitions' (a leaf never analyzed says
        // -1: then the estimate is unknown).
        let sql = format!(
            "SELECT (SELECT min({k})::bigint FROM {t}), (SELECT max({k})::bigint FROM {t}),
                    (SELECT CASE WHEN min(c.reltuples) >= 0 THEN sum(c.reltuples)::bigint END
                     FROM pg_class c
                     WHERE (c.oid = $1::text::regclass AND c.relkind = 'r')
                        OR c.oid IN (SELECT relid FROM pg_partition_tree($1::text::regclass)
                                     WHERE isleaf))",
            k = k(table),
            t = t(table)
        );
        let name = t(table);
        let rows = self
            .query_params(&sql, &[&name], |r| {
                Ok((
                    r.try_get::<_, Option<i64>>(0)?,
                    r.try_get::<_, Option<i64>>(1)?,
                    r.try_get::<_, Option<i64>>(2)?,
                ))
            })
            .await?;
        match rows.into_iter().next() {
            Some((min, max, Some(estimate))) if estimate > 0 || min.is_none() => Ok(KeyStats {
                min,
                max,
                count: estimate as u64,
            }),
            _ => self.stats(table).await,
        }
    }

    async fn count_range(&self, table: &TableSpec, lo: i64, hi: i64) -> Result<u64> {
        let sql = format!(
            "SELECT count(*) FROM {t} WHERE {k} BETWEEN {lo} AND {hi}",
            k = k(table),
            t = t(table)
        );
        let rows = self.query_with(&sql, |r| r.try_get::<_, i64>(0)).await?;
        Ok(rows.first().copied().unwrap_or(0) as u64)
    }

    async fn count_ranges(&self, table: &TableSpec, ranges: &[(i64, i64)]) -> Result<Vec<u64>> {
        if ranges.is_empty() {
            return Ok(Vec::new());
        }
        // One query: index (often index-only) range scans joined to the ranges, no row read.
        let sql = format!(
            "SELECT r.i, count({t}.{k}) FROM unnest($1::bigint[], $2::bigint[]) WITH ORDINALITY AS r(lo, hi, i) \
             LEFT JOIN {t} ON {t}.{k} BETWEEN r.lo AND r.hi GROUP BY r.i ORDER BY r.i",
            k = k(table),
            t = t(table)
        );
        let los: Vec<i64> = ranges.iter().map(|r| r.0).collect();
        let his: Vec<i64> = ranges.iter().map(|r| r.1).collect();
        let s = self.take().await?;
        self.by_index(&s, true).await?;
        let rows =
            s.0.query(&sql, &[&los, &his])
                .await
                .map_err(|e| self.err(e))?;
        self.by_index(&s, false).await?;
        self.give(s);
        Ok(rows.iter().map(|r| r.get::<_, i64>(1) as u64).collect())
    }

    async fn boundaries(
        &self,
        table: &TableSpec,
        lo: i64,
        hi: i64,
        every: u64,
    ) -> Result<Vec<i64>> {
        let sql = format!(
            "SELECT key FROM (SELECT {k}::bigint AS key, row_number() OVER (ORDER BY {k}) AS rn FROM {t} WHERE {k} BETWEEN {lo} AND {hi}) s WHERE rn % {every} = 0 ORDER BY rn",
            k = k(table),
            t = t(table),
            every = every.max(1)
        );
        self.query_with(&sql, |r| r.try_get::<_, i64>(0)).await
    }

    async fn bins(&self, on: Salted<'_>, lo: i64, hi: i64, width: i64) -> Result<Vec<Bin>> {
        let (table, salt) = (on.table, on.salt);
        let hash = self.hash_expr(table, salt);
        let sql = format!(
            "SELECT ({k}::bigint - ({lo})::bigint) / {width} AS b, count(*), min({k})::bigint, max({k})::bigint,
                    sum({hash})::text
             FROM {t} WHERE {k} BETWEEN {lo} AND {hi} GROUP BY 1",
            k = k(table),
            t = t(table),
        );
        let groups = (hi as i128 - lo as i128) / width.max(1) as i128 + 1;
        let mut bins = self
            .tuned_query(
                &sql,
                &[],
                Some(Tuning {
                    groups: groups.clamp(1, u64::MAX as i128) as u64,
                    by_index: false,
                }),
                |r| {
                    Ok(Bin {
                        bin: r.try_get(0)?,
                        count: r.try_get::<_, i64>(1)? as u64,
                        min: r.try_get(2)?,
                        max: r.try_get(3)?,
                        checksum: r.try_get(4)?,
                    })
                },
            )
            .await?;
        bins.sort_unstable_by_key(|b| b.bin);
        Ok(bins)
    }

    async fn bins_multi(
        &self,
        on: Salted<'_>,
        ranges: &[(i64, i64, i64)],
    ) -> Result<Vec<(usize, Bin)>> {
        let (table, salt) = (on.table, on.salt);
        if ranges.is_empty() {
            return Ok(Vec::new());
        }
        // One query for all ranges: a nested loop of index range scans, one per range.
        let sql = format!(
            "SELECT r.stepops_i, ({k}::bigint - r.stepops_lo) / r.stepops_w, count(*),
                    min({k})::bigint, max({k})::bigint, sum({hash})::text
             FROM unnest($1::bigint[], $2::bigint[], $3::bigint[]) WITH ORDINALITY
                  AS r(stepops_lo, stepops_hi, stepops_w, stepops_i)
             JOIN {t} ON {k} BETWEEN r.stepops_lo AND r.stepops_hi
             GROUP BY 1, 2",
            k = k(table),
            t = t(table),
            hash = self.hash_expr(table, salt),
        );
        let los: Vec<i64> = ranges.iter().map(|r| r.0).collect();
        let his: Vec<i64> = ranges.iter().map(|r| r.1).collect();
        let ws: Vec<i64> = ranges.iter().map(|r| r.2.max(1)).collect();
        let groups: u64 = ranges
            .iter()
            .map(|&(lo, hi, w)| ((hi as i128 - lo as i128) / w.max(1) as i128 + 1) as u64)
            .fold(0, u64::saturating_add);
        let mut out = self
            .tuned_query(
                &sql,
                &[&los, &his, &ws],
                Some(Tuning {
                    groups,
                    by_index: true,
                }),
                |r| {
                    Ok((
                        (r.try_get::<_, i64>(0)? - 1) as usize,
                        Bin {
                            bin: r.try_get(1)?,
                            count: r.try_get::<_, i64>(2)? as u64,
                            min: r.try_get(3)?,
                            max: r.try_get(4)?,
                            checksum: r.try_get(5)?,
                        },
                    ))
                },
            )
            .await?;
        out.sort_unstable_by_key(|(i, b)| (*i, b.bin));
        Ok(out)
    }

    async fn copy_ranges(
        &self,
        source: &Self,
        table: &TableSpec,
        ranges: &[(i64, i64)],
    ) -> Result<(u64, u64)> {
        match ranges {
            [] => Ok((0, 0)),
            [(lo, hi)] => {
                let cond = format!("{k} BETWEEN {lo} AND {hi}", k = k(table));
                self.copy_where(source, table, &cond).await
            }
            _ => {
                // The ranges as two literal arrays (COPY takes no parameters), joined by index
                // range scans: a nested loop whatever the statistics (a long `OR` list can
                // turn into a sequential scan testing every arm on every row).
                let list = |f: fn(&(i64, i64)) -> i64| {
                    ranges
                        .iter()
                        .map(|r| f(r).to_string())
                        .collect::<Vec<_>>()
                        .join(",")
                };
                let r = format!(
                    "unnest('{{{}}}'::bigint[], '{{{}}}'::bigint[]) AS stepops_r(lo, hi)",
                    list(|r| r.0),
                    list(|r| r.1)
                );
                let (t, k) = (t(table), k(table));
                let cols = table
                    .columns
                    .iter()
                    .map(|c| format!("{t}.{}", quote_ident(c)))
                    .collect::<Vec<_>>()
                    .join(", ");
                let delete = format!(
                    "DELETE FROM {t} USING {r} WHERE {t}.{k} BETWEEN stepops_r.lo AND stepops_r.hi"
                );
                let select = format!(
                    "SELECT {cols} FROM {r} JOIN {t} ON {t}.{k} BETWEEN stepops_r.lo AND stepops_r.hi"
                );
                self.copy_with(source, table, &delete, &select, true).await
            }
        }
    }

    async fn row_count(&self, table: &TableSpec) -> Result<u64> {
        let sql = format!("SELECT count(*) FROM {}", t(table));
        let rows = self.query_with(&sql, |r| r.try_get::<_, i64>(0)).await?;
        Ok(rows.first().copied().unwrap_or(0) as u64)
    }

    async fn table_sum(&self, on: Salted<'_>) -> Result<(u64, String)> {
        self.pg_table_sum(on).await
    }

    async fn write_stamp(&self, tables: &[TableSpec]) -> Result<String> {
        self.pg_write_stamp(tables).await
    }

    async fn written_since(
        &self,
        tables: &[TableSpec],
        stamp: &str,
        settle: Settle,
    ) -> Result<bool> {
        self.pg_written_since(tables, stamp, settle).await
    }

    async fn key_cuts(&self, table: &TableSpec, every: u64) -> Result<Vec<KeyValue>> {
        self.pg_key_cuts(table, every).await
    }

    async fn key_bins(&self, on: Salted<'_>, cuts: &[KeyValue]) -> Result<Vec<Bin>> {
        self.pg_key_bins(on, cuts).await
    }

    async fn key_rows(
        &self,
        on: Salted<'_>,
        cuts: &[KeyValue],
        bins: &[i64],
    ) -> Result<Vec<(i64, KeyValue, i64)>> {
        self.pg_key_rows(on, cuts, bins).await
    }

    async fn copy_keys(
        &self,
        source: &Self,
        table: &TableSpec,
        ranges: Option<&[KeyRange]>,
    ) -> Result<(u64, u64)> {
        self.pg_copy_keys(source, table, ranges).await
    }

    async fn sync_sequences(&self, source: &Self, tables: &[TableSpec]) -> Result<u32> {
        self.pg_sync_sequences(source, tables).await
    }
}

impl PgStack {
    /// Runs `sql` (simple query protocol, no parameters) on one of this stack's sessions;
    /// returns the first column of every row as text (for [`crate::status`]).
    pub(crate) async fn simple_text(&self, sql: &str) -> Result<Vec<Option<String>>> {
        let s = self.take().await?;
        let messages = s.0.simple_query(sql).await.map_err(|e| self.err(e))?;
        self.give(s);
        Ok(messages
            .iter()
            .filter_map(|m| match m {
                tokio_postgres::SimpleQueryMessage::Row(r) => Some(r.get(0).map(str::to_owned)),
                _ => None,
            })
            .collect())
    }
}
