//! PostgreSQL stacks (`postgres://…`): the production case.
//!
//! Checksums: `sum` per bin of a salted 64-bit hash of each whole row (`hash_record_extended`
//! from PostgreSQL 14 on, `hashtextextended` of the row's text before), computed by the server; sessions pin `TimeZone`, `DateStyle`, `IntervalStyle`, `extra_float_digits` and
//! `bytea_output` so both sides print rows identically. Copy: the source's
//! `COPY (SELECT … WHERE key BETWEEN lo AND hi) TO STDOUT (FORMAT binary)` bytes are streamed,
//! undecoded, into the destination's `COPY … FROM STDIN (FORMAT binary)` inside one transaction
//! that first deletes the range with `session_replication_role = replica` (foreign-key and user
//! triggers off for that transaction only). Memory stays at a few COPY buffers whatever the range.

use crate::error::{MigrateError, Result};
use crate::model::{Bin, Column, ForeignKey, KeyRange, KeyStats, KeyValue, TableSchema, TableSpec};
use crate::stack::{Stack, column_list, quote_ident};
use futures::{SinkExt, StreamExt};
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use stepops_error::names;
use stepops_error::redact as redact_url;
use stepops_pg::{ConnectError, PgConnector};
use tokio_postgres::Client;
use tokio_postgres::error::SqlState;

mod keys;

/// Settings every session starts with, so both sides render values identically. JIT is off:
/// compiling took longer (about 0.2 s a query) than the short refinement and chunk queries.
/// `standard_conforming_strings` is pinned: the status switch writes quoted literals, whose
/// meaning must not depend on a server or role default.
const SESSION_SETUP: &str = "SET TimeZone = 'UTC'; SET DateStyle = 'ISO, MDY'; \
     SET IntervalStyle = 'postgres'; SET extra_float_digits = 1; SET bytea_output = 'hex'; \
     SET lock_timeout = '60s'; SET jit = off; \
     SET standard_conforming_strings = on";

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

/// A pooled session: returned to the pool by [`PgStack::give`] after success, dropped (and so
/// closed, rolling back anything open) otherwise.
pub(crate) struct Session(pub(crate) Client);

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

    pub(crate) async fn take(&self) -> Result<Session> {
        loop {
            let c = self.idle.lock().expect("pool lock").pop();
            match c {
                Some(c) if !c.is_closed() => return Ok(Session(c)),
                Some(_) => continue,
                None => break,
            }
        }
        let client = self
            .connector
            .connect()
            .await
            .map_err(|e| self.connect_err(e))?;
        client
            .batch_execute(&format!(
                "{SESSION_SETUP}; SET statement_timeout = {}",
                self.statement_timeout_ms.load(Ordering::Relaxed)
            ))
            .await
            .map_err(|e| self.err(e))?;
        if self.read_only {
            client
                .batch_execute("SET default_transaction_read_only = on")
                .await
                .map_err(|e| self.err(e))?;
        } else {
            // A destination keeps writing while `set-status` has made its database read-only
            // for other clients (ALTER DATABASE … SET default_transaction_read_only = on).
            client
                .batch_execute("SET default_transaction_read_only = off")
                .await
                .map_err(|e| self.err(e))?;
        }
        Ok(Session(client))
    }

    pub(crate) fn give(&self, s: Session) {
        let mut idle = self.idle.lock().expect("pool lock");
        if idle.len() < 16 {
            idle.push(s.0);
        }
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

    /// One destination transaction: run `delete` (the chunk's rows), then stream the rows of
    /// the source's `select` (the same key ranges, columns in [`column_list`] order) in by
    /// binary COPY.
    async fn copy_with(
        &self,
        source: &Self,
        table: &TableSpec,
        delete: &str,
        select: &str,
        by_index: bool,
    ) -> Result<(u64, u64)> {
        let cols = column_list(table);
        let mut dst = self.take().await?;
        let mut src = source.take().await?;
        let tx = dst.0.transaction().await.map_err(|e| self.err(e))?;
        // Step Functions delivers a task at least once: two copies of the same chunk at the
        // same time take turns (the second then replaces what the first wrote).
        tx.execute(
            "SELECT pg_advisory_xact_lock(hashtextextended($1, 7340))",
            &[&delete],
        )
        .await
        .map_err(|e| self.err(e))?;
        tx.batch_execute("SET LOCAL session_replication_role = replica")
            .await
            .map_err(|e| self.err(e))?;
        if by_index {
            // Many ranges: index range scans, never one sequential scan tested per range.
            tx.batch_execute("SET LOCAL enable_seqscan = off")
                .await
                .map_err(|e| self.err(e))?;
            source.by_index(&src, true).await?;
        }
        // The source starts sending while the destination deletes (both wait on their pages):
        // its rows queue in the connection until the COPY into the destination reads them.
        let copy_out = format!("COPY ({select}) TO STDOUT (FORMAT binary)");
        let (mut deleted, stream) = futures::try_join!(
            async { tx.execute(delete, &[]).await.map_err(|e| self.err(e)) },
            async { src.0.copy_out(&copy_out).await.map_err(|e| source.err(e)) }
        )?;
        let direct = format!("COPY {} ({cols}) FROM STDIN (FORMAT binary)", t(table));
        let inserted = if table.conflict_keys.is_empty() {
            self.pump(source, &tx, stream, &direct)
                .await
                .map_err(|f| f.into_error(self))?
        } else {
            // Rows may collide with destination rows of other ranges on a unique key without
            // the range key (rare): try the direct COPY; on a duplicate key, read the range
            // again into a staging table, delete the colliding rows, then insert.
            tx.batch_execute("SAVEPOINT stepops_direct")
                .await
                .map_err(|e| self.err(e))?;
            match self.pump(source, &tx, stream, &direct).await {
                Ok(n) => {
                    tx.batch_execute("RELEASE SAVEPOINT stepops_direct")
                        .await
                        .map_err(|e| self.err(e))?;
                    n
                }
                Err(Failed::Dest(e)) if e.code() == Some(&SqlState::UNIQUE_VIOLATION) => {
                    tracing::debug!(table = %table.name, "rows collide on a unique key: copying through a staging table");
                    tx.batch_execute("ROLLBACK TO SAVEPOINT stepops_direct")
                        .await
                        .map_err(|e| self.err(e))?;
                    // The first read may not have been drained: read again on a fresh session.
                    src = source.take().await?;
                    if by_index {
                        source.by_index(&src, true).await?;
                    }
                    tx.batch_execute(&format!(
                        "CREATE TEMP TABLE stepops_stage ON COMMIT DROP AS SELECT {cols} FROM {t} WITH NO DATA",
                        t = t(table)
                    ))
                    .await
                    .map_err(|e| self.err(e))?;
                    let stream = src.0.copy_out(&copy_out).await.map_err(|e| source.err(e))?;
                    self.pump(
                        source,
                        &tx,
                        stream,
                        &format!("COPY stepops_stage ({cols}) FROM STDIN (FORMAT binary)"),
                    )
                    .await
                    .map_err(|f| f.into_error(self))?;
                    for key in &table.conflict_keys {
                        let on = key
                            .iter()
                            .map(|c| format!("d.{c} = s.{c}", c = quote_ident(c)))
                            .collect::<Vec<_>>()
                            .join(" AND ");
                        deleted += tx
                            .execute(
                                &format!(
                                    "DELETE FROM {t} d USING stepops_stage s WHERE {on}",
                                    t = t(table)
                                ),
                                &[],
                            )
                            .await
                            .map_err(|e| self.err(e))?;
                    }
                    tx.execute(
                        &format!(
                            "INSERT INTO {t} ({cols}) OVERRIDING SYSTEM VALUE SELECT {cols} FROM stepops_stage",
                            t = t(table)
                        ),
                        &[],
                    )
                    .await
                    .map_err(|e| self.err(e))?
                }
                Err(other) => return Err(other.into_error(self)),
            }
        };
        tx.commit().await.map_err(|e| self.err(e))?;
        if by_index {
            source.by_index(&src, false).await?;
        }
        source.give(src);
        self.give(dst);
        Ok((deleted, inserted))
    }

    /// `SET` / `RESET enable_seqscan` on a source session.
    async fn by_index(&self, s: &Session, on: bool) -> Result<()> {
        s.0.batch_execute(if on {
            "SET enable_seqscan = off"
        } else {
            "RESET enable_seqscan"
        })
        .await
        .map_err(|e| self.err(e))
    }

    /// Streams a source COPY into `copy_in` (a COPY … FROM STDIN statement) inside `tx`;
    /// returns the rows written.
    async fn pump(
        &self,
        source: &Self,
        tx: &tokio_postgres::Transaction<'_>,
        stream: tokio_postgres::CopyOutStream,
        copy_in: &str,
    ) -> std::result::Result<u64, Failed> {
        let sink = tx
            .copy_in::<_, bytes::Bytes>(copy_in)
            .await
            .map_err(|e| Failed::Dest(e).with(self, source))?;
        let mut sink = std::pin::pin!(sink);
        let mut stream = std::pin::pin!(stream);
        while let Some(buf) = stream.next().await {
            let buf = buf.map_err(|e| Failed::Source(e).with(self, source))?;
            sink.feed(buf)
                .await
                .map_err(|e| Failed::Dest(e).with(self, source))?;
        }
        sink.as_mut()
            .finish()
            .await
            .map_err(|e| Failed::Dest(e).with(self, source))
    }

    async fn query_with<T>(
        &self,
        sql: &str,
        f: impl Fn(&tokio_postgres::Row) -> std::result::Result<T, tokio_postgres::Error>,
    ) -> Result<Vec<T>> {
        self.query_params(sql, &[], f).await
    }

    /// [`PgStack::query_with`] with parameters.
    pub(crate) async fn query_params<T>(
        &self,
        sql: &str,
        params: &[&(dyn tokio_postgres::types::ToSql + Sync)],
        f: impl Fn(&tokio_postgres::Row) -> std::result::Result<T, tokio_postgres::Error>,
    ) -> Result<Vec<T>> {
        let s = self.take().await?;
        let rows = s.0.query(sql, params).await.map_err(|e| self.err(e))?;
        let out = rows
            .iter()
            .map(&f)
            .collect::<std::result::Result<Vec<T>, _>>()
            .map_err(|e| self.err(e))?;
        self.give(s);
        Ok(out)
    }
}

/// Which side of a copy failed, with the driver's error (mapped once the side is known).
enum Failed {
    Source(tokio_postgres::Error),
    Dest(tokio_postgres::Error),
    Mapped(MigrateError),
}

impl Failed {
    /// Keeps the raw error for the caller to inspect (a destination duplicate key), mapping
    /// everything else now.
    fn with(self, dest: &PgStack, source: &PgStack) -> Failed {
        match self {
            Failed::Dest(e) if e.code() == Some(&SqlState::UNIQUE_VIOLATION) => Failed::Dest(e),
            Failed::Dest(e) => Failed::Mapped(dest.err(e)),
            Failed::Source(e) => Failed::Mapped(source.err(e)),
            m => m,
        }
    }

    /// A duplicate key left at the end means rows of this range were written by something
    /// else at the same time (an earlier run's copy of an overlapping range, not yet
    /// committed when this one read): the same copy run again sees them and succeeds.
    fn into_error(self, dest: &PgStack) -> MigrateError {
        match self {
            Failed::Mapped(e) => e,
            Failed::Dest(e) if e.code() == Some(&SqlState::UNIQUE_VIOLATION) => {
                MigrateError::Transient {
                    target: dest.describe(),
                    reason: format!(
                        "{} while copying: rows of the range were written concurrently; \
                         copying the chunk again heals it",
                        error_text(&e)
                    ),
                }
            }
            Failed::Dest(e) | Failed::Source(e) => dest.err(e),
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
    if table.schema.is_empty() {
        quote_ident(&table.name)
    } else {
        format!(
            "{}.{}",
            quote_ident(&table.schema),
            quote_ident(&table.relname)
        )
    }
}

pub(crate) fn k(table: &TableSpec) -> String {
    quote_ident(&table.range_key)
}

/// Privileges the destination role needs, for messages and docs.
pub const DEST_PRIVILEGES: &str = "the destination role needs SELECT, INSERT and DELETE on every migrated table and the right to set session_replication_role: be a superuser, or on PostgreSQL 15+ run `GRANT SET ON PARAMETER session_replication_role TO <role>` as a superuser";

impl Stack for PgStack {
    fn describe(&self) -> String {
        redact_url(&self.url)
    }

    fn is_integer_type(sql_type: &str) -> bool {
        matches!(sql_type, "smallint" | "integer" | "bigint")
    }

    async fn schema(&self, schemas: &[String]) -> Result<Vec<TableSchema>> {
        // Tables of every schema but the system's, stepops' own and extensions' (or of the
        // listed ones), partitions left out (a partitioned table is read and written through
        // its parent).
        let tables = format!(
            "SELECT c.oid FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
             WHERE c.relkind IN ('r', 'p') AND NOT c.relispartition
               AND n.nspname NOT IN ('pg_catalog', 'information_schema', '{own}')
               AND n.nspname NOT LIKE 'pg\\_toast%' AND n.nspname NOT LIKE 'pg\\_temp\\_%'
               AND (cardinality($1::text[]) = 0 OR n.nspname = ANY($1::text[]))
               AND NOT EXISTS (SELECT 1 FROM pg_depend d WHERE d.classid = 'pg_class'::regclass
                               AND d.objid = c.oid AND d.deptype = 'e')",
            own = crate::own::SCHEMA
        );
        let s = self.take().await?;
        let q = |sql: String| {
            let s = &s;
            async move { s.0.query(&sql, &[&schemas]).await.map_err(|e| self.err(e)) }
        };
        let cols = q(format!(
            "SELECT n.nspname::text, c.relname::text, a.attname::text,
                    format_type(a.atttypid, a.atttypmod), NOT a.attnotnull,
                    a.attcollation <> 0, a.atttypid = 'oid'::regtype,
                    n.nspname = current_schema(),
                    (SELECT ty.typlen > 0 FROM pg_type ty WHERE ty.oid = a.atttypid)
             FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
             JOIN pg_attribute a ON a.attrelid = c.oid
             WHERE c.oid IN ({tables})
               AND a.attnum > 0 AND NOT a.attisdropped AND a.attgenerated = ''
             ORDER BY n.nspname, c.relname, a.attnum"
        ))
        .await?;
        let keys = |cond: &str| {
            format!(
                "SELECT n.nspname::text, c.relname::text, array_agg(a.attname::text ORDER BY k.ord)
                 FROM pg_index i JOIN pg_class c ON c.oid = i.indrelid
                 JOIN pg_namespace n ON n.oid = c.relnamespace
                 CROSS JOIN LATERAL unnest(i.indkey::int2[]) WITH ORDINALITY AS k(attnum, ord)
                 JOIN pg_attribute a ON a.attrelid = c.oid AND a.attnum = k.attnum
                 WHERE c.oid IN ({tables}) AND {cond}
                 GROUP BY i.indexrelid, n.nspname, c.relname"
            )
        };
        let pks = q(keys("i.indisprimary")).await?;
        let uniques = q(keys(
            "i.indisunique AND i.indpred IS NULL AND i.indexprs IS NULL AND k.ord <= i.indnkeyatts",
        ))
        .await?;
        let fks = q(format!(
            "SELECT n.nspname::text, c.relname::text, rn.nspname::text, r.relname::text,
                    array_agg(a.attname::text ORDER BY k.ord)
             FROM pg_constraint co JOIN pg_class c ON c.oid = co.conrelid
             JOIN pg_class r ON r.oid = co.confrelid
             JOIN pg_namespace n ON n.oid = c.relnamespace
             JOIN pg_namespace rn ON rn.oid = r.relnamespace
             CROSS JOIN LATERAL unnest(co.conkey) WITH ORDINALITY AS k(attnum, ord)
             JOIN pg_attribute a ON a.attrelid = c.oid AND a.attnum = k.attnum
             WHERE co.contype = 'f' AND c.oid IN ({tables})
             GROUP BY co.oid, n.nspname, c.relname, rn.nspname, r.relname"
        ))
        .await?;
        self.give(s);
        let name_of = |r: &tokio_postgres::Row| names::display(r.get(0), r.get(1));
        let mut out: Vec<TableSchema> = Vec::new();
        for r in &cols {
            let name = name_of(r);
            if out.last().is_none_or(|t| t.name != name) {
                out.push(TableSchema {
                    name,
                    schema: r.get(0),
                    relname: r.get(1),
                    in_default_schema: r.get(7),
                    large_object_columns: Vec::new(),
                    columns: Vec::new(),
                    primary_key: Vec::new(),
                    foreign_keys: Vec::new(),
                    unique_keys: Vec::new(),
                });
            }
            let t = out.last_mut().expect("pushed");
            if r.get::<_, bool>(6) {
                t.large_object_columns.push(r.get(2));
            }
            t.columns.push(Column {
                name: r.get(2),
                sql_type: r.get(3),
                nullable: r.get(4),
                collatable: r.get(5),
                fixed_width: r.get::<_, Option<bool>>(8).unwrap_or(false),
            });
        }
        for t in &mut out {
            if let Some(r) = pks.iter().find(|r| name_of(r) == t.name) {
                t.primary_key = r.get(2);
            }
            t.unique_keys = uniques
                .iter()
                .filter(|r| name_of(r) == t.name)
                .map(|r| r.get(2))
                .collect();
            t.foreign_keys = fks
                .iter()
                .filter(|r| name_of(r) == t.name)
                .map(|r| ForeignKey {
                    columns: r.get(4),
                    ref_table: names::display(r.get(2), r.get(3)),
                })
                .collect();
        }
        Ok(out)
    }

    async fn default_schema(&self) -> Result<String> {
        let rows = self
            .query_with("SELECT current_schema()::text", |r| {
                r.try_get::<_, Option<String>>(0)
            })
            .await?;
        Ok(rows.into_iter().next().flatten().unwrap_or_default())
    }

    async fn check_access(&self, tables: &[TableSpec], as_dest: bool) -> Result<()> {
        let s = self.take().await?;
        let privs: &[&str] = if as_dest {
            &["SELECT", "INSERT", "DELETE"]
        } else {
            &["SELECT"]
        };
        // One round trip for every table and privilege.
        let sql_names: Vec<String> = tables.iter().map(t).collect();
        let names: Vec<&str> = tables.iter().map(|t| t.name.as_str()).collect();
        let missing: Vec<String> =
            s.0.query(
                "SELECT p || ' on ' || n FROM unnest($1::text[], $3::text[]) WITH ORDINALITY AS x(t, n, i) \
                 CROSS JOIN unnest($2::text[]) WITH ORDINALITY AS y(p, j) \
                 WHERE NOT has_table_privilege(t, p) \
                 ORDER BY i, j",
                &[&sql_names, &privs, &names],
            )
            .await
            .map_err(|e| self.err(e))?
            .iter()
            .map(|r| r.get(0))
            .collect();
        if !missing.is_empty() {
            return Err(MigrateError::Unauthorized {
                target: self.describe(),
                reason: format!(
                    "the role lacks {}{}",
                    missing.join(", "),
                    if as_dest {
                        format!("; {DEST_PRIVILEGES}")
                    } else {
                        String::new()
                    }
                ),
            });
        }
        if as_dest {
            let probe =
                s.0.batch_execute("BEGIN; SET LOCAL session_replication_role = replica; ROLLBACK")
                    .await;
            if let Err(e) = probe {
                let _ = s.0.batch_execute("ROLLBACK").await;
                let err = self.err(e);
                return Err(match err {
                    MigrateError::Unauthorized { target, reason } => MigrateError::Unauthorized {
                        target,
                        reason: format!("{reason}; {DEST_PRIVILEGES}"),
                    },
                    other => other,
                });
            }
            let ro: String =
                s.0.query_one("SHOW transaction_read_only", &[])
                    .await
                    .map_err(|e| self.err(e))?
                    .get(0);
            if ro == "on" {
                return Err(MigrateError::Unauthorized {
                    target: self.describe(),
                    reason: "the destination is read-only (a standby, or default_transaction_read_only is on)".into(),
                });
            }
        }
        self.give(s);
        Ok(())
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

    async fn bins(
        &self,
        table: &TableSpec,
        salt: &str,
        lo: i64,
        hi: i64,
        width: i64,
    ) -> Result<Vec<Bin>> {
        let hash = self.hash_expr(table, salt);
        let sql = format!(
            "SELECT ({k}::bigint - ({lo})::bigint) / {width} AS b, count(*), min({k})::bigint, max({k})::bigint,
                    sum({hash})::text
             FROM {t} WHERE {k} BETWEEN {lo} AND {hi} GROUP BY 1 ORDER BY 1",
            k = k(table),
            t = t(table),
        );
        self.query_with(&sql, |r| {
            Ok(Bin {
                bin: r.try_get(0)?,
                count: r.try_get::<_, i64>(1)? as u64,
                min: r.try_get(2)?,
                max: r.try_get(3)?,
                checksum: r.try_get(4)?,
            })
        })
        .await
    }

    async fn bins_multi(
        &self,
        table: &TableSpec,
        salt: &str,
        ranges: &[(i64, i64, i64)],
    ) -> Result<Vec<(usize, Bin)>> {
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
             GROUP BY 1, 2 ORDER BY 1, 2",
            k = k(table),
            t = t(table),
            hash = self.hash_expr(table, salt),
        );
        let los: Vec<i64> = ranges.iter().map(|r| r.0).collect();
        let his: Vec<i64> = ranges.iter().map(|r| r.1).collect();
        let ws: Vec<i64> = ranges.iter().map(|r| r.2.max(1)).collect();
        let s = self.take().await?;
        // With thousands of ranges over a large table the planner may prefer one sequential
        // scan tested against every range (seconds per query): keep it on the key's index.
        s.0.batch_execute("SET enable_seqscan = off")
            .await
            .map_err(|e| self.err(e))?;
        let rows =
            s.0.query(&sql, &[&los, &his, &ws])
                .await
                .map_err(|e| self.err(e))?;
        s.0.batch_execute("RESET enable_seqscan")
            .await
            .map_err(|e| self.err(e))?;
        let out = rows
            .iter()
            .map(|r| {
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
            })
            .collect::<std::result::Result<Vec<_>, tokio_postgres::Error>>()
            .map_err(|e| self.err(e))?;
        self.give(s);
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
            [(lo, hi)] => self.copy_range(source, table, *lo, *hi).await,
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

    async fn copy_range(
        &self,
        source: &Self,
        table: &TableSpec,
        lo: i64,
        hi: i64,
    ) -> Result<(u64, u64)> {
        let cond = format!("{k} BETWEEN {lo} AND {hi}", k = k(table));
        let delete = format!("DELETE FROM {t} WHERE {cond}", t = t(table));
        let select = format!(
            "SELECT {cols} FROM {t} WHERE {cond}",
            cols = column_list(table),
            t = t(table)
        );
        self.copy_with(source, table, &delete, &select, false).await
    }

    async fn row_count(&self, table: &TableSpec) -> Result<u64> {
        let sql = format!("SELECT count(*) FROM {}", t(table));
        let rows = self.query_with(&sql, |r| r.try_get::<_, i64>(0)).await?;
        Ok(rows.first().copied().unwrap_or(0) as u64)
    }

    async fn table_sum(&self, table: &TableSpec, salt: &str) -> Result<(u64, String)> {
        self.pg_table_sum(table, salt).await
    }

    async fn key_cuts(&self, table: &TableSpec, every: u64) -> Result<Vec<KeyValue>> {
        self.pg_key_cuts(table, every).await
    }

    async fn key_bins(&self, table: &TableSpec, salt: &str, cuts: &[KeyValue]) -> Result<Vec<Bin>> {
        self.pg_key_bins(table, salt, cuts).await
    }

    async fn key_rows(
        &self,
        table: &TableSpec,
        salt: &str,
        cuts: &[KeyValue],
        bins: &[i64],
    ) -> Result<Vec<(i64, KeyValue, i64)>> {
        self.pg_key_rows(table, salt, cuts, bins).await
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
        let mut schemas: Vec<&str> = tables.iter().map(|t| t.schema.as_str()).collect();
        schemas.sort();
        schemas.dedup();
        let owned = source
            .query_params(
                "SELECT n.nspname::text, c.relname::text, a.attname::text, s.seq
                 FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
                 JOIN pg_attribute a ON a.attrelid = c.oid
                 CROSS JOIN LATERAL (SELECT pg_get_serial_sequence(
                     quote_ident(n.nspname) || '.' || quote_ident(c.relname), a.attname) AS seq) s
                 WHERE c.relkind IN ('r', 'p') AND n.nspname = ANY($1::text[])
                   AND a.attnum > 0 AND NOT a.attisdropped AND s.seq IS NOT NULL",
                &[&schemas],
                |r| {
                    Ok((
                        names::display(r.try_get(0)?, r.try_get(1)?),
                        r.try_get::<_, String>(2)?,
                        r.try_get::<_, String>(3)?,
                    ))
                },
            )
            .await?;
        let mut n = 0;
        for (table, column, seq) in owned {
            let Some(spec) = tables.iter().find(|t| t.name == table) else {
                continue;
            };
            // `seq` comes from pg_get_serial_sequence: already a quoted, qualified name.
            let values = source
                .query_with(&format!("SELECT last_value, is_called FROM {seq}"), |r| {
                    Ok((r.try_get::<_, i64>(0)?, r.try_get::<_, bool>(1)?))
                })
                .await?;
            let Some((value, called)) = values.first().copied() else {
                continue;
            };
            // The source's position, or past the destination's largest key if that is further
            // (rows inserted with explicit keys): the next default never collides.
            let sql = format!(
                "SELECT setval($1::text::regclass, GREATEST($2, m), m >= $2 OR $3)
                 FROM (SELECT COALESCE(max({col}), 0)::bigint AS m FROM {tbl}) x",
                col = quote_ident(&column),
                tbl = t(spec),
            );
            let s = self.take().await?;
            s.0.query_one(&sql, &[&seq, &value, &called])
                .await
                .map_err(|e| match self.err(e) {
                    MigrateError::Unauthorized { target, reason } => MigrateError::Unauthorized {
                        target,
                        reason: format!("{reason}; grant UPDATE on the sequence {seq}"),
                    },
                    other => other,
                })?;
            self.give(s);
            n += 1;
        }
        Ok(n)
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
