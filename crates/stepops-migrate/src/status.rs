//! The destination's read-only switch (the pipeline's `set-status` step): keeps other clients
//! from writing to a stack while it is being migrated, without stopping stepops itself.
//!
//! Two mechanisms:
//! - **Status table** (both engines), named in the migration config:
//!   `status: {table: stack_status, column: status, readOnly: READ_ONLY, readWrite: READ_WRITE}`.
//!   Setting it runs `UPDATE table SET column = value` (every row; the table must have at least
//!   one). The application is expected to honour the value. The status table is never migrated
//!   itself ([`crate::Config::selects`] leaves it out), so a copy cannot overwrite it.
//! - **PostgreSQL database default** (PostgreSQL without a status table):
//!   `ALTER DATABASE <current database> SET default_transaction_read_only = on | off`. New
//!   sessions of every client then start read-only; existing sessions keep their setting until
//!   they reconnect. The role needs to own the database or be a superuser. stepops' own
//!   destination sessions always `SET default_transaction_read_only = off`, so plan, copy and
//!   verify keep writing.
//!
//! SQLite without a status table has no switch: `Stepops.InvalidInput`. Setting a status twice
//! is harmless (idempotent); every change is read back before it is reported.

use serde::{Deserialize, Serialize};

use crate::config::Config;
use crate::error::{MigrateError, Result};
use crate::postgres::PgStack;
use crate::sqlite::SqliteStack;
use crate::stack::{Stack, quote_ident};
use stepops_error::DatabaseUrl;
pub use stepops_error::StatusConfig;

/// How a stack's status is kept.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum StatusMechanism {
    /// The configured status table.
    StatusTable,
    /// PostgreSQL's per-database `default_transaction_read_only`.
    DatabaseDefault,
}

/// A stack's status as read back from the database.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct StackStatus {
    /// Whether other clients are kept from writing.
    pub read_only: bool,
    /// Where that is kept.
    pub mechanism: StatusMechanism,
    /// What the database holds: the status column's value(s), or the database-level
    /// `default_transaction_read_only` (`off` when not set).
    pub value: String,
}

/// What [`StatusSwitch::set_read_only`] did.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct StatusChange {
    /// The status now (read back after the change).
    pub read_only: bool,
    /// Where it is kept.
    pub mechanism: StatusMechanism,
    /// Whether it was different before (false: it already was so; nothing changed).
    pub changed: bool,
}

/// The read-only switch of one stack (implemented for both engines' stacks).
#[allow(async_fn_in_trait)]
pub trait StatusSwitch: Stack {
    /// Reads the stack's status through the status table (`status`) or, without one, the
    /// engine's own mechanism.
    async fn status(&self, status: Option<&StatusConfig>) -> Result<StackStatus>;

    /// Puts the stack read-only (or back read-write) and reads it back. Idempotent.
    async fn set_read_only(
        &self,
        status: Option<&StatusConfig>,
        read_only: bool,
    ) -> Result<StatusChange> {
        let before = self.status(status).await?;
        self.write_status(status, read_only).await?;
        let after = self.status(status).await?;
        if after.read_only != read_only {
            return Err(MigrateError::Internal(format!(
                "{}: the status was set {} but reads back as {:?}",
                self.describe(),
                if read_only { "read-only" } else { "read-write" },
                after.value
            )));
        }
        Ok(StatusChange {
            read_only,
            mechanism: after.mechanism,
            changed: before.read_only != read_only || before.value != after.value,
        })
    }

    /// Writes the status (without reading it back).
    async fn write_status(&self, status: Option<&StatusConfig>, read_only: bool) -> Result<()>;
}

/// The value the status table holds for `read_only`.
fn wanted(config: &StatusConfig, read_only: bool) -> &str {
    if read_only {
        &config.read_only
    } else {
        &config.read_write
    }
}

/// From the status column's values to a status.
fn table_status(describe: &str, config: &StatusConfig, values: Vec<String>) -> Result<StackStatus> {
    if values.is_empty() {
        return Err(MigrateError::NotFound {
            target: describe.to_owned(),
            reason: format!(
                "the status table {} has no row: insert one (for example `INSERT INTO {} ({}) VALUES ('{}')`)",
                config.table,
                quote_ident(&config.table),
                quote_ident(&config.column),
                config.read_write.replace('\'', "''")
            ),
        });
    }
    let read_only = values.iter().all(|v| *v == config.read_only);
    let mut distinct = values;
    distinct.sort();
    distinct.dedup();
    Ok(StackStatus {
        read_only,
        mechanism: StatusMechanism::StatusTable,
        value: distinct.join(", "),
    })
}

fn missing_table(describe: &str, config: &StatusConfig) -> MigrateError {
    MigrateError::NotFound {
        target: describe.to_owned(),
        reason: format!(
            "the status table {} (config status.table) does not exist: create it, or correct the config",
            config.table
        ),
    }
}

/// An SQL string literal: single quotes doubled, backslashes literal (every session sets
/// `standard_conforming_strings = on`, postgres.rs `SESSION_SETUP`).
fn literal(value: &str) -> String {
    format!("'{}'", value.replace('\'', "''"))
}

/// What the database-level setting means.
fn truthy(value: &str) -> bool {
    matches!(
        value.trim().to_ascii_lowercase().as_str(),
        "on" | "true" | "yes" | "1" | "t" | "y"
    )
}

/// The privilege the database mechanism needs, for messages.
const ALTER_DATABASE_PRIVILEGE: &str = "ALTER DATABASE … SET default_transaction_read_only needs a role that owns the database or is a superuser; or configure a status table (config status: {table, column, readOnly, readWrite})";

impl StatusSwitch for PgStack {
    async fn status(&self, status: Option<&StatusConfig>) -> Result<StackStatus> {
        match status {
            Some(config) => {
                let exists = self
                    .simple_text(&format!(
                        "SELECT (to_regclass(quote_ident(current_schema()) || '.' || quote_ident({})) IS NOT NULL)::text",
                        literal(&config.table)
                    ))
                    .await?;
                if exists.first().and_then(|v| v.as_deref()) != Some("true") {
                    return Err(missing_table(&self.describe(), config));
                }
                let values = self
                    .simple_text(&format!(
                        "SELECT {}::text FROM {}",
                        quote_ident(&config.column),
                        quote_ident(&config.table)
                    ))
                    .await?;
                let values = values
                    .into_iter()
                    .map(|v| v.unwrap_or_else(|| "NULL".into()))
                    .collect();
                table_status(&self.describe(), config, values)
            }
            None => {
                let setting = self
                    .simple_text(
                        "SELECT coalesce((SELECT split_part(c, '=', 2) FROM pg_db_role_setting s \
                         CROSS JOIN LATERAL unnest(s.setconfig) AS c \
                         WHERE s.setrole = 0 \
                           AND s.setdatabase = (SELECT oid FROM pg_database WHERE datname = current_database()) \
                           AND c LIKE 'default\\_transaction\\_read\\_only=%' LIMIT 1), 'off')",
                    )
                    .await?;
                let value = setting
                    .into_iter()
                    .next()
                    .flatten()
                    .unwrap_or_else(|| "off".into());
                Ok(StackStatus {
                    read_only: truthy(&value),
                    mechanism: StatusMechanism::DatabaseDefault,
                    value,
                })
            }
        }
    }

    async fn write_status(&self, status: Option<&StatusConfig>, read_only: bool) -> Result<()> {
        match status {
            Some(config) => {
                self.simple_text(&format!(
                    "UPDATE {} SET {} = {}",
                    quote_ident(&config.table),
                    quote_ident(&config.column),
                    literal(wanted(config, read_only))
                ))
                .await?;
                Ok(())
            }
            None => {
                let db = self.simple_text("SELECT current_database()").await?;
                let db = db.into_iter().next().flatten().ok_or_else(|| {
                    MigrateError::Internal(format!("{}: no current database", self.describe()))
                })?;
                let sql = format!(
                    "ALTER DATABASE {} SET default_transaction_read_only = {}",
                    quote_ident(&db),
                    if read_only { "on" } else { "off" }
                );
                match self.simple_text(&sql).await {
                    Ok(_) => Ok(()),
                    Err(MigrateError::Unauthorized { target, reason }) => {
                        Err(MigrateError::Unauthorized {
                            target,
                            reason: format!("{reason}; {ALTER_DATABASE_PRIVILEGE}"),
                        })
                    }
                    Err(e) => Err(e),
                }
            }
        }
    }
}

impl StatusSwitch for SqliteStack {
    async fn status(&self, status: Option<&StatusConfig>) -> Result<StackStatus> {
        let config = sqlite_config(self, status)?.clone();
        let describe = self.describe();
        let select = format!(
            "SELECT CAST({} AS TEXT) FROM main.{}",
            quote_ident(&config.column),
            quote_ident(&config.table)
        );
        let table = config.table.clone();
        let values = self
            .status_connection(false, move |conn| {
                if !sqlite_table_exists(conn, &table)? {
                    return Ok(None);
                }
                let values = conn
                    .prepare(&select)?
                    .query_map([], |r| r.get::<_, Option<String>>(0))?
                    .map(|v| v.map(|v| v.unwrap_or_else(|| "NULL".into())))
                    .collect::<rusqlite::Result<Vec<String>>>()?;
                Ok(Some(values))
            })
            .await?;
        match values {
            None => Err(missing_table(&describe, &config)),
            Some(values) => table_status(&describe, &config, values),
        }
    }

    async fn write_status(&self, status: Option<&StatusConfig>, read_only: bool) -> Result<()> {
        let config = sqlite_config(self, status)?.clone();
        let update = format!(
            "UPDATE main.{} SET {} = ?1",
            quote_ident(&config.table),
            quote_ident(&config.column)
        );
        let value = wanted(&config, read_only).to_owned();
        let table = config.table.clone();
        let found = self
            .status_connection(true, move |conn| {
                if !sqlite_table_exists(conn, &table)? {
                    return Ok(false);
                }
                conn.execute(&update, [&value])?;
                Ok(true)
            })
            .await?;
        if found {
            Ok(())
        } else {
            Err(missing_table(&self.describe(), &config))
        }
    }
}

fn sqlite_config<'a>(
    stack: &SqliteStack,
    status: Option<&'a StatusConfig>,
) -> Result<&'a StatusConfig> {
    status.ok_or_else(|| {
        MigrateError::InvalidInput(format!(
            "{} is SQLite, which has no read-only switch of its own: configure a status table in \
             the migration config (status: {{table, column, readOnly, readWrite}}), or run \
             without readOnlyDuringCopy",
            stack.describe()
        ))
    })
}

fn sqlite_table_exists(conn: &rusqlite::Connection, table: &str) -> rusqlite::Result<bool> {
    conn.query_row(
        "SELECT count(*) FROM main.sqlite_master WHERE type = 'table' AND name = ?1",
        [table],
        |r| r.get::<_, i64>(0),
    )
    .map(|n| n > 0)
}

/// Reads the status of the stack at `url` (see [`StatusSwitch::status`]); writes nothing.
pub async fn status(url: &str, config: &Config) -> Result<StackStatus> {
    if let Some(s) = &config.status {
        s.check()?;
    }
    match DatabaseUrl::parse(url)? {
        DatabaseUrl::Postgres(u) => {
            PgStack::new(&u, false)?
                .status(config.status.as_ref())
                .await
        }
        DatabaseUrl::Sqlite(p) => SqliteStack::new(p).status(config.status.as_ref()).await,
    }
}

/// Puts the stack at `url` read-only (`true`) or back read-write (`false`) through the
/// config's status table or, on PostgreSQL without one, the database default (see the module
/// documentation). Idempotent.
///
/// Errors: `Stepops.InvalidInput` (SQLite without a status table, bad config),
/// `Stepops.NotFound` (status table or its row missing), `Stepops.Unauthorized` (privilege),
/// `Stepops.Transient` (unreachable).
pub async fn set_read_only(url: &str, config: &Config, read_only: bool) -> Result<StatusChange> {
    if let Some(s) = &config.status {
        s.check()?;
    }
    let change = match DatabaseUrl::parse(url)? {
        DatabaseUrl::Postgres(u) => {
            PgStack::new(&u, false)?
                .set_read_only(config.status.as_ref(), read_only)
                .await?
        }
        DatabaseUrl::Sqlite(p) => {
            SqliteStack::new(p)
                .set_read_only(config.status.as_ref(), read_only)
                .await?
        }
    };
    tracing::info!(
        read_only,
        mechanism = ?change.mechanism,
        changed = change.changed,
        "stack status set"
    );
    Ok(change)
}

#[cfg(test)]
mod tests {
    use super::*;
    use stepops_error::{ErrorName, Named};

    fn status_config() -> Config {
        Config::from_yaml(
            "status: {table: stack_status, column: status, readOnly: READ_ONLY, readWrite: READ_WRITE}",
        )
        .unwrap()
    }

    fn db(dir: &std::path::Path, sql: &str) -> String {
        let path = dir.join("d.db");
        rusqlite::Connection::open(&path)
            .unwrap()
            .execute_batch(sql)
            .unwrap();
        format!("sqlite:{}", path.display())
    }

    #[test]
    fn config_parses_and_is_checked() {
        let c = status_config();
        let s = c.status.as_ref().unwrap();
        assert_eq!(
            (s.table.as_str(), s.read_only.as_str()),
            ("stack_status", "READ_ONLY")
        );
        assert!(
            !c.selects("public", "stack_status", "public"),
            "the status table is never migrated"
        );
        assert!(c.selects("public", "users", "public"));
        let snake =
            Config::from_yaml("status: {table: t, column: c, read_only: 'off', read_write: 'on'}")
                .unwrap();
        assert_eq!(snake.status.unwrap().read_write, "on");
        for bad in [
            "status: {table: t, column: c, readOnly: X}",
            "status: {table: t, column: c, readOnly: X, readWrite: Y, where: z}",
            "status: stack_status",
        ] {
            let e = Config::from_yaml(bad).unwrap_err();
            assert_eq!(e.error_name(), ErrorName::InvalidInput, "{bad}");
        }
        let same = StatusConfig {
            table: "t".into(),
            column: "c".into(),
            read_only: "X".into(),
            read_write: "X".into(),
        };
        assert!(
            same.check()
                .unwrap_err()
                .to_string()
                .contains("must differ")
        );
    }

    #[tokio::test]
    async fn sqlite_status_table_switches_idempotently() {
        let dir = tempfile::tempdir().unwrap();
        let url = db(
            dir.path(),
            "CREATE TABLE stack_status (id INTEGER PRIMARY KEY, status TEXT NOT NULL);
             INSERT INTO stack_status VALUES (1, 'READ_WRITE');",
        );
        let c = status_config();
        assert!(!status(&url, &c).await.unwrap().read_only);
        let first = set_read_only(&url, &c, true).await.unwrap();
        assert_eq!(
            first,
            StatusChange {
                read_only: true,
                mechanism: StatusMechanism::StatusTable,
                changed: true
            }
        );
        let again = set_read_only(&url, &c, true).await.unwrap();
        assert!(again.read_only && !again.changed, "{again:?}");
        let path = url.strip_prefix("sqlite:").unwrap();
        let value: String = rusqlite::Connection::open(path)
            .unwrap()
            .query_row("SELECT status FROM stack_status", [], |r| r.get(0))
            .unwrap();
        assert_eq!(value, "READ_ONLY");
        let back = set_read_only(&url, &c, false).await.unwrap();
        assert!(!back.read_only && back.changed);
        assert_eq!(status(&url, &c).await.unwrap().value, "READ_WRITE");
    }

    #[tokio::test]
    async fn sqlite_errors_are_named() {
        let dir = tempfile::tempdir().unwrap();
        let url = db(dir.path(), "CREATE TABLE stack_status (status TEXT);");
        let e = set_read_only(&url, &Config::default(), true)
            .await
            .unwrap_err();
        assert_eq!(e.error_name(), ErrorName::InvalidInput);
        assert!(e.to_string().contains("configure a status table"), "{e}");
        let e = set_read_only(&url, &status_config(), true)
            .await
            .unwrap_err();
        assert_eq!(e.error_name(), ErrorName::NotFound);
        assert!(e.to_string().contains("has no row"), "{e}");
        let mut c = status_config();
        c.status.as_mut().unwrap().table = "nope".into();
        let e = set_read_only(&url, &c, true).await.unwrap_err();
        assert_eq!(e.error_name(), ErrorName::NotFound);
        assert!(e.to_string().contains("does not exist"), "{e}");
    }

    /// Another client's INSERT on a fresh session of `url`: the SQLSTATE it failed with.
    async fn other_client_insert(url: &str, id: i64) -> Option<String> {
        let (client, conn) = tokio_postgres::connect(url, tokio_postgres::NoTls)
            .await
            .unwrap();
        tokio::spawn(conn);
        client
            .execute(&format!("INSERT INTO items VALUES ({id}, 'app')"), &[])
            .await
            .err()
            .map(|e| e.code().map(|c| c.code().to_owned()).unwrap_or_default())
    }

    #[tokio::test]
    async fn postgres_database_default_keeps_others_out_but_not_stepops() {
        let pg = stepops_testkit::PgServer::start().unwrap_or_else(|e| panic!("{e}"));
        let schema = "CREATE TABLE items(id bigint PRIMARY KEY, name text NOT NULL);";
        let src = pg.create_database("src").unwrap();
        let dst = pg.create_database("dst").unwrap();
        pg.psql(
            "src",
            &format!(
                "{schema} INSERT INTO items SELECT g, 'v' || g FROM generate_series(1, 2000) g;"
            ),
        )
        .unwrap();
        pg.psql("dst", schema).unwrap();
        let none = Config::default();
        let s = status(&dst, &none).await.unwrap();
        assert_eq!(
            (s.read_only, s.mechanism, s.value.as_str()),
            (false, StatusMechanism::DatabaseDefault, "off")
        );
        assert!(set_read_only(&dst, &none, true).await.unwrap().changed);
        assert!(
            !set_read_only(&dst, &none, true).await.unwrap().changed,
            "idempotent"
        );
        assert!(status(&dst, &none).await.unwrap().read_only);
        // Another client's new session is read-only (25006: read_only_sql_transaction) …
        assert_eq!(
            other_client_insert(&dst, -1).await.as_deref(),
            Some("25006")
        );
        // … while stepops migrates into it.
        let summary = crate::migrate(
            &src,
            &dst,
            &none,
            &crate::MigrateOptions::default(),
            &crate::NoProgress,
        )
        .await
        .unwrap();
        assert_eq!(summary.rows_copied, 2000);
        assert_eq!(
            pg.psql("dst", "SELECT count(*) FROM items").unwrap(),
            "2000"
        );
        let back = set_read_only(&dst, &none, false).await.unwrap();
        assert!(!back.read_only && back.changed);
        assert_eq!(other_client_insert(&dst, -2).await, None);
        // The source was not touched.
        assert!(!status(&src, &none).await.unwrap().read_only);
    }

    #[tokio::test]
    async fn postgres_status_table_and_privileges() {
        let pg = stepops_testkit::PgServer::start().unwrap_or_else(|e| panic!("{e}"));
        let dst = pg.create_database("dst").unwrap();
        pg.psql(
            "dst",
            "CREATE TYPE mode AS ENUM ('READ_ONLY', 'READ_WRITE');
             CREATE TABLE stack_status(id int PRIMARY KEY, status mode NOT NULL);",
        )
        .unwrap();
        let c = status_config();
        let e = set_read_only(&dst, &c, true).await.unwrap_err();
        assert_eq!(e.error_name(), ErrorName::NotFound, "{e}");
        pg.psql("dst", "INSERT INTO stack_status VALUES (1, 'READ_WRITE')")
            .unwrap();
        let ch = set_read_only(&dst, &c, true).await.unwrap();
        assert_eq!(
            (ch.read_only, ch.mechanism),
            (true, StatusMechanism::StatusTable)
        );
        assert_eq!(
            pg.psql("dst", "SELECT status FROM stack_status").unwrap(),
            "READ_ONLY"
        );
        // The status table does not touch the database default.
        assert_eq!(status(&dst, &Config::default()).await.unwrap().value, "off");
        set_read_only(&dst, &c, false).await.unwrap();
        assert_eq!(
            pg.psql("dst", "SELECT status FROM stack_status").unwrap(),
            "READ_WRITE"
        );
        // A role that does not own the database cannot ALTER DATABASE.
        pg.create_role("app", "pw").unwrap();
        pg.psql("dst", "GRANT ALL ON ALL TABLES IN SCHEMA public TO app")
            .unwrap();
        let app = pg.url_for("app", "pw", "dst");
        let e = set_read_only(&app, &Config::default(), true)
            .await
            .unwrap_err();
        assert_eq!(e.error_name(), ErrorName::Unauthorized, "{e}");
        assert!(e.to_string().contains("owns the database"), "{e}");
        assert!(!e.to_string().contains(":pw@"), "{e}");
        // … but it can use the status table.
        assert!(set_read_only(&app, &c, true).await.unwrap().read_only);
    }

    /// A value with a backslash and a quote is written exactly, even where the database's
    /// default turns `standard_conforming_strings` off (backslashes would be escapes).
    #[tokio::test]
    async fn postgres_status_values_are_written_exactly_whatever_the_string_settings() {
        let pg = stepops_testkit::PgServer::start().unwrap_or_else(|e| panic!("{e}"));
        let dst = pg.create_database("dst").unwrap();
        pg.psql(
            "dst",
            "ALTER DATABASE dst SET standard_conforming_strings = off;
             CREATE TABLE stack_status(status text NOT NULL);
             INSERT INTO stack_status VALUES ('up');",
        )
        .unwrap();
        let c = Config::from_yaml(
            r"status: {table: stack_status, column: status, readOnly: 'ro\n''x', readWrite: up}",
        )
        .unwrap();
        assert!(set_read_only(&dst, &c, true).await.unwrap().read_only);
        let stored = pg
            .psql("dst", "SELECT status = E'ro\\\\n''x' FROM stack_status")
            .unwrap();
        assert_eq!(stored, "t", "the status value was altered on the way");
        assert!(status(&dst, &c).await.unwrap().read_only);
    }
}
