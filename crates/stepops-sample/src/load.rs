//! Creating the schema and filling it: PostgreSQL by text COPY (tables in parallel, keys and
//! foreign keys added after the load), SQLite in one transaction with prepared statements.

use std::sync::Arc;
use std::time::Instant;

use bytes::Bytes;
use futures::SinkExt;

use crate::data::{self, Counts, EventIds, TABLES, Val, columns};
use crate::dialect::{pg_connect, sqlite_open};
use crate::encode::{copy_row, sqlite_value};
use crate::error::{Result, SampleError};
use crate::schema::{DROP_ALL, PG_FOREIGN_KEYS, PG_KEYS, PG_TABLES, SQLITE_SCHEMA};
use stepops_error::{DatabaseUrl, redact};

/// Progress of a load: `(table, rows written so far, rows planned for the table)`.
pub type Progress = Arc<dyn Fn(&str, u64, u64) + Send + Sync>;

/// What to build.
#[derive(Clone)]
pub struct SampleSpec {
    /// Total rows over all tables (split by [`Counts::for_total`]).
    pub rows: u64,
    /// Seed: the same seed and row count give the same data.
    pub seed: u64,
    /// Drop existing sample tables first (otherwise their presence is an error).
    pub replace: bool,
    /// Called every 50,000 rows and at the end of each table.
    pub progress: Option<Progress>,
}

impl std::fmt::Debug for SampleSpec {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SampleSpec")
            .field("rows", &self.rows)
            .field("seed", &self.seed)
            .field("replace", &self.replace)
            .finish()
    }
}

/// What was built.
#[derive(Debug, Clone, PartialEq)]
pub struct SampleReport {
    /// Rows per table.
    pub counts: Counts,
    /// Wall-clock seconds.
    pub seconds: f64,
}

/// The rows of one table, in key order.
pub fn rows(table: &str, seed: u64, c: Counts) -> Box<dyn Iterator<Item = Vec<Val>> + Send> {
    match table {
        "users" => Box::new((1..=c.users as i64).map(move |id| data::user(seed, id))),
        "projects" => {
            Box::new((1..=c.projects as i64).map(move |id| data::project(seed, id, c.users)))
        }
        "entities" => {
            Box::new((1..=c.entities as i64).map(move |id| data::entity(seed, id, c.projects)))
        }
        "acl" => Box::new((1..=c.entities).flat_map(move |e| {
            let n = data::acl_count(e, c.entities, c.acl);
            data::acl(seed, e as i64, n, c.users)
        })),
        "events" => Box::new(
            EventIds::new(seed, c.events)
                .take(c.events as usize)
                .map(move |id| data::event(seed, id, c.users)),
        ),
        other => panic!("unknown sample table {other}"),
    }
}

const PROGRESS_EVERY: u64 = 50_000;

/// Creates the sample schema at `url` and fills it with `spec.rows` deterministic rows.
pub async fn sample(url: &str, spec: SampleSpec) -> Result<SampleReport> {
    if spec.rows == 0 {
        return Err(SampleError::InvalidInput(
            "--rows must be at least 1 (it is the total over all tables)".into(),
        ));
    }
    let counts = Counts::for_total(spec.rows);
    let started = Instant::now();
    match DatabaseUrl::parse(url)? {
        DatabaseUrl::Postgres(url) => load_pg(&url, &spec, counts).await?,
        DatabaseUrl::Sqlite(path) => {
            let spec = spec.clone();
            tokio::task::spawn_blocking(move || load_sqlite(&path, &spec, counts))
                .await
                .map_err(|e| SampleError::Internal(format!("SQLite loader: {e}")))??
        }
    }
    Ok(SampleReport {
        counts,
        seconds: started.elapsed().as_secs_f64(),
    })
}

/// Creates the sample tables, empty, with their keys and foreign keys (for a destination).
pub async fn create_schema(url: &str) -> Result<()> {
    match DatabaseUrl::parse(url)? {
        DatabaseUrl::Postgres(url) => {
            let client = pg_connect(&url).await?;
            refuse_existing_pg(&client, &url, false).await?;
            let mut sql = String::from("BEGIN;");
            for (_, ddl) in PG_TABLES {
                sql.push_str(ddl);
                sql.push(';');
            }
            for s in PG_KEYS.iter().chain(PG_FOREIGN_KEYS) {
                sql.push_str(s);
                sql.push(';');
            }
            sql.push_str("COMMIT;");
            client
                .batch_execute(&sql)
                .await
                .map_err(SampleError::pg("create the sample schema".into()))
        }
        DatabaseUrl::Sqlite(path) => tokio::task::spawn_blocking(move || {
            let conn = sqlite_open(&path)?;
            refuse_existing_sqlite(&conn, &path, false)?;
            conn.execute_batch(&format!("BEGIN;{SQLITE_SCHEMA}COMMIT;"))
                .map_err(SampleError::sqlite("create the sample schema".into()))
        })
        .await
        .map_err(|e| SampleError::Internal(format!("SQLite: {e}")))?,
    }
}

fn exists_error(where_: &str, found: &[String]) -> SampleError {
    SampleError::InvalidInput(format!(
        "{where_} already has sample table(s) {}: pass --replace to drop and rebuild them, or use \
         another database",
        found.join(", ")
    ))
}

async fn refuse_existing_pg(
    client: &tokio_postgres::Client,
    url: &str,
    replace: bool,
) -> Result<()> {
    let names: Vec<String> = TABLES.iter().map(|s| s.to_string()).collect();
    let found: Vec<String> = client
        .query(
            "SELECT table_name::text FROM information_schema.tables \
             WHERE table_schema = current_schema() AND table_name = ANY($1) ORDER BY 1",
            &[&names],
        )
        .await
        .map_err(SampleError::pg("list existing tables".into()))?
        .iter()
        .map(|r| r.get(0))
        .collect();
    if found.is_empty() {
        return Ok(());
    }
    if !replace {
        return Err(exists_error(&redact(url), &found));
    }
    client
        .batch_execute(DROP_ALL)
        .await
        .map_err(SampleError::pg("drop the old sample tables".into()))
}

fn refuse_existing_sqlite(
    conn: &rusqlite::Connection,
    path: &std::path::Path,
    replace: bool,
) -> Result<()> {
    let mut stmt = conn
        .prepare("SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY name")
        .map_err(SampleError::sqlite("list existing tables".into()))?;
    let found: Vec<String> = stmt
        .query_map([], |r| r.get::<_, String>(0))
        .map_err(SampleError::sqlite("list existing tables".into()))?
        .filter_map(|r| r.ok())
        .filter(|t| TABLES.contains(&t.as_str()))
        .collect();
    if found.is_empty() {
        return Ok(());
    }
    if !replace {
        return Err(exists_error(&format!("sqlite:{}", path.display()), &found));
    }
    conn.execute_batch(DROP_ALL)
        .map_err(SampleError::sqlite("drop the old sample tables".into()))
}

async fn load_pg(url: &str, spec: &SampleSpec, counts: Counts) -> Result<()> {
    let client = pg_connect(url).await?;
    refuse_existing_pg(&client, url, spec.replace).await?;
    let mut ddl = String::new();
    for (_, t) in PG_TABLES {
        ddl.push_str(t);
        ddl.push(';');
    }
    client
        .batch_execute(&ddl)
        .await
        .map_err(SampleError::pg("create the sample tables".into()))?;

    // Load every table at once (no constraints yet, so no order is needed).
    let mut tasks = Vec::new();
    for table in TABLES {
        let url = url.to_owned();
        let spec = spec.clone();
        tasks.push(tokio::spawn(async move {
            copy_table(&url, table, &spec, counts).await
        }));
    }
    join_all(tasks).await?;

    // Keys per table in parallel; foreign keys one after the other (they lock their parents).
    let mut tasks = Vec::new();
    for stmt in PG_KEYS {
        let url = url.to_owned();
        tasks.push(tokio::spawn(async move {
            let c = pg_connect(&url).await?;
            c.batch_execute(stmt)
                .await
                .map_err(SampleError::pg((*stmt).to_owned()))
        }));
    }
    join_all(tasks).await?;
    for stmt in PG_FOREIGN_KEYS {
        client
            .batch_execute(stmt)
            .await
            .map_err(SampleError::pg((*stmt).to_owned()))?;
    }
    client
        .batch_execute("ANALYZE")
        .await
        .map_err(SampleError::pg("ANALYZE".into()))
}

async fn join_all(tasks: Vec<tokio::task::JoinHandle<Result<()>>>) -> Result<()> {
    let mut first = Ok(());
    for t in tasks {
        let r = t
            .await
            .map_err(|e| SampleError::Internal(format!("loader task: {e}")))
            .and_then(|r| r);
        if first.is_ok() {
            first = r;
        }
    }
    first
}

async fn copy_table(url: &str, table: &'static str, spec: &SampleSpec, c: Counts) -> Result<()> {
    let client = pg_connect(url).await?;
    let sql = format!("COPY {table} ({}) FROM STDIN", columns(table).join(", "));
    let sink = client
        .copy_in::<_, Bytes>(&sql)
        .await
        .map_err(SampleError::pg(sql.clone()))?;
    futures::pin_mut!(sink);
    let total = c.of(table);
    let mut buf = Vec::with_capacity(1 << 20);
    let mut done = 0u64;
    for row in rows(table, spec.seed, c) {
        copy_row(&row, &mut buf);
        done += 1;
        if buf.len() >= 1 << 20 {
            let chunk = Bytes::from(std::mem::replace(&mut buf, Vec::with_capacity(1 << 20)));
            sink.send(chunk)
                .await
                .map_err(SampleError::pg(sql.clone()))?;
        }
        if done.is_multiple_of(PROGRESS_EVERY)
            && let Some(p) = &spec.progress
        {
            p(table, done, total);
        }
    }
    if !buf.is_empty() {
        sink.send(Bytes::from(buf))
            .await
            .map_err(SampleError::pg(sql.clone()))?;
    }
    sink.finish().await.map_err(SampleError::pg(sql))?;
    if let Some(p) = &spec.progress {
        p(table, done, total);
    }
    Ok(())
}

fn load_sqlite(path: &std::path::Path, spec: &SampleSpec, c: Counts) -> Result<()> {
    let conn = sqlite_open(path)?;
    refuse_existing_sqlite(&conn, path, spec.replace)?;
    let ctx = |what: &str| SampleError::sqlite(what.to_owned());
    conn.execute_batch("PRAGMA synchronous = OFF; PRAGMA journal_mode = MEMORY;")
        .map_err(ctx("pragmas"))?;
    conn.execute_batch(&format!("BEGIN;{SQLITE_SCHEMA}"))
        .map_err(ctx("create the sample schema"))?;
    for table in TABLES {
        let cols = columns(table);
        let placeholders: Vec<String> = (1..=cols.len()).map(|i| format!("?{i}")).collect();
        let sql = format!(
            "INSERT INTO {table} ({}) VALUES ({})",
            cols.join(", "),
            placeholders.join(", ")
        );
        let mut stmt = conn.prepare(&sql).map_err(ctx(&sql))?;
        let total = c.of(table);
        let mut done = 0u64;
        for row in rows(table, spec.seed, c) {
            stmt.execute(rusqlite::params_from_iter(row.iter().map(sqlite_value)))
                .map_err(ctx(&sql))?;
            done += 1;
            if done.is_multiple_of(PROGRESS_EVERY)
                && let Some(p) = &spec.progress
            {
                p(table, done, total);
            }
        }
        if let Some(p) = &spec.progress {
            p(table, done, total);
        }
    }
    conn.execute_batch("COMMIT; ANALYZE;")
        .map_err(ctx("commit"))?;
    Ok(())
}
