//! The two engines behind one small interface: connect, run statements with [`Val`] parameters,
//! read single integers. PostgreSQL parameters travel as text and are cast in SQL
//! (`$1::text::jsonb`), so every type of the schema needs no client-side codec.

use crate::data::Val;
use crate::encode::{pg_text, sqlite_value};
use crate::error::{Result, SampleError};
use crate::schema::pg_type;
use stepops_error::redact;

/// Connects to PostgreSQL and drives the connection on the runtime.
pub async fn pg_connect(url: &str) -> Result<tokio_postgres::Client> {
    stepops_pg::connect(url)
        .await
        .map_err(SampleError::connect(format!("connect to {}", redact(url))))
}

/// Which SQL dialect a statement is written for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dialect {
    /// `$1::text::TYPE` placeholders.
    Postgres,
    /// `?1` placeholders.
    Sqlite,
}

impl Dialect {
    /// Placeholder `n` (1-based) for a value of `table.column`.
    pub fn param(self, n: usize, table: &str, column: &str) -> String {
        match self {
            Dialect::Postgres => format!("${n}::text::{}", pg_type(table, column)),
            Dialect::Sqlite => format!("?{n}"),
        }
    }

    /// Placeholder `n` for a bigint.
    pub fn int(self, n: usize) -> String {
        match self {
            Dialect::Postgres => format!("${n}::text::bigint"),
            Dialect::Sqlite => format!("?{n}"),
        }
    }
}

/// Statements with [`Val`] parameters on either engine.
pub trait Exec: Send {
    /// The dialect to write statements in.
    fn dialect(&self) -> Dialect;
    /// Runs a statement; returns the affected rows.
    fn execute(&mut self, sql: &str, params: &[Val]) -> impl Future<Output = Result<u64>> + Send;
    /// The first column of the first row as an integer (NULL and no row give `None`).
    fn query_i64(
        &mut self,
        sql: &str,
        params: &[Val],
    ) -> impl Future<Output = Result<Option<i64>>> + Send;
    /// Runs statements without parameters.
    fn batch(&mut self, sql: &str) -> impl Future<Output = Result<()>> + Send;
}

/// A PostgreSQL connection.
pub struct PgExec(pub tokio_postgres::Client);

fn text_params(params: &[Val]) -> Vec<Option<String>> {
    params.iter().map(pg_text).collect()
}

impl Exec for PgExec {
    fn dialect(&self) -> Dialect {
        Dialect::Postgres
    }

    async fn execute(&mut self, sql: &str, params: &[Val]) -> Result<u64> {
        let texts = text_params(params);
        let refs: Vec<&(dyn tokio_postgres::types::ToSql + Sync)> = texts
            .iter()
            .map(|t| t as &(dyn tokio_postgres::types::ToSql + Sync))
            .collect();
        self.0
            .execute(sql, &refs)
            .await
            .map_err(SampleError::pg(sql.to_owned()))
    }

    async fn query_i64(&mut self, sql: &str, params: &[Val]) -> Result<Option<i64>> {
        let texts = text_params(params);
        let refs: Vec<&(dyn tokio_postgres::types::ToSql + Sync)> = texts
            .iter()
            .map(|t| t as &(dyn tokio_postgres::types::ToSql + Sync))
            .collect();
        let row = self
            .0
            .query_opt(sql, &refs)
            .await
            .map_err(SampleError::pg(sql.to_owned()))?;
        Ok(row.and_then(|r| r.get::<_, Option<i64>>(0)))
    }

    async fn batch(&mut self, sql: &str) -> Result<()> {
        self.0
            .batch_execute(sql)
            .await
            .map_err(SampleError::pg(sql.to_owned()))
    }
}

/// A SQLite connection (its calls block; run it on a blocking thread).
pub struct SqliteExec(pub rusqlite::Connection);

impl Exec for SqliteExec {
    fn dialect(&self) -> Dialect {
        Dialect::Sqlite
    }

    async fn execute(&mut self, sql: &str, params: &[Val]) -> Result<u64> {
        let values: Vec<_> = params.iter().map(sqlite_value).collect();
        let mut stmt = self
            .0
            .prepare_cached(sql)
            .map_err(SampleError::sqlite(sql.to_owned()))?;
        stmt.execute(rusqlite::params_from_iter(values))
            .map(|n| n as u64)
            .map_err(SampleError::sqlite(sql.to_owned()))
    }

    async fn query_i64(&mut self, sql: &str, params: &[Val]) -> Result<Option<i64>> {
        use rusqlite::OptionalExtension;
        let values: Vec<_> = params.iter().map(sqlite_value).collect();
        let mut stmt = self
            .0
            .prepare_cached(sql)
            .map_err(SampleError::sqlite(sql.to_owned()))?;
        let v: Option<Option<i64>> = stmt
            .query_row(rusqlite::params_from_iter(values), |r| r.get(0))
            .optional()
            .map_err(SampleError::sqlite(sql.to_owned()))?;
        Ok(v.flatten())
    }

    async fn batch(&mut self, sql: &str) -> Result<()> {
        self.0
            .execute_batch(sql)
            .map_err(SampleError::sqlite(sql.to_owned()))
    }
}

/// Opens a SQLite file (created if missing).
pub fn sqlite_open(path: &std::path::Path) -> Result<rusqlite::Connection> {
    let conn = rusqlite::Connection::open(path)
        .map_err(SampleError::sqlite(format!("open {}", path.display())))?;
    conn.busy_timeout(std::time::Duration::from_secs(30))
        .map_err(SampleError::sqlite("set busy timeout".to_owned()))?;
    Ok(conn)
}
