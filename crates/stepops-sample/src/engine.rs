//! The two engines behind one small interface: connect, run statements with [`Val`] parameters,
//! read single integers. PostgreSQL parameters travel as text and are cast in SQL
//! (`$1::text::jsonb`), so every type of the schema needs no client-side codec.

use std::path::PathBuf;

use crate::data::Val;
use crate::encode::{pg_text, sqlite_value};
use crate::error::{Result, SampleError};
use crate::schema::pg_type;

/// Where the sample lives.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target {
    /// `postgres://…` or `postgresql://…`.
    Postgres(String),
    /// `sqlite:PATH` (or `sqlite://PATH`).
    Sqlite(PathBuf),
}

impl Target {
    /// Parses `postgres://…` or `sqlite:PATH`.
    pub fn parse(url: &str) -> Result<Target> {
        let url = url.trim();
        if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            return Ok(Target::Postgres(url.to_owned()));
        }
        if let Some(rest) = url.strip_prefix("sqlite:") {
            let path = rest.strip_prefix("//").unwrap_or(rest);
            if !path.is_empty() {
                return Ok(Target::Sqlite(PathBuf::from(path)));
            }
        }
        Err(SampleError::InvalidInput(format!(
            "unsupported URL {:?}: use sqlite:PATH or postgres://USER@HOST:PORT/DB",
            redact(url)
        )))
    }

    /// The URL without its password.
    pub fn redacted(&self) -> String {
        match self {
            Target::Postgres(u) => redact(u),
            Target::Sqlite(p) => format!("sqlite:{}", p.display()),
        }
    }
}

/// Replaces the password of `scheme://user:password@host` by `***`.
pub fn redact(url: &str) -> String {
    let Some(start) = url.find("://").map(|i| i + 3) else {
        return url.to_owned();
    };
    let rest = &url[start..];
    let end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    match rest[..end].rfind('@') {
        Some(at) => match rest[..at].find(':') {
            Some(colon) => format!("{}{}***{}", &url[..start], &rest[..colon + 1], &rest[at..]),
            None => url.to_owned(),
        },
        None => url.to_owned(),
    }
}

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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_redacts() {
        assert_eq!(
            Target::parse("sqlite:/tmp/a.db").unwrap(),
            Target::Sqlite("/tmp/a.db".into())
        );
        assert_eq!(
            Target::parse("sqlite:///tmp/a.db").unwrap(),
            Target::Sqlite("/tmp/a.db".into())
        );
        assert!(Target::parse("mysql://x").is_err());
        assert!(Target::parse("sqlite:").is_err());
        assert_eq!(
            redact("postgres://u:secret@h:5/db"),
            "postgres://u:***@h:5/db"
        );
        assert_eq!(redact("postgres://u@h/db"), "postgres://u@h/db");
        let err = Target::parse("mysql://u:secret@h/db").unwrap_err();
        assert!(!err.to_string().contains("secret"));
    }
}
