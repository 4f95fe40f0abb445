//! Durable state in SQLite (`<state dir>/engine.sqlite3`): state machines, activities,
//! executions with their history events and latest resumable snapshot.

use std::path::{Path, PathBuf};
use std::sync::Mutex;

use chrono::{DateTime, Utc};
use rusqlite::{Connection, OptionalExtension, params};

use crate::error::LocalError;

/// A state machine as stored.
#[derive(Clone, Debug, PartialEq)]
pub struct StateMachineRecord {
    /// ARN.
    pub arn: String,
    /// Name.
    pub name: String,
    /// Definition JSON (substitutions applied).
    pub definition: String,
    /// `roleArn`.
    pub role_arn: String,
    /// `STANDARD` / `EXPRESS`.
    pub kind: String,
    /// `creationDate`.
    pub created: DateTime<Utc>,
}

/// An execution as stored.
#[derive(Clone, Debug, PartialEq)]
pub struct ExecutionRecord {
    /// ARN.
    pub arn: String,
    /// Name.
    pub name: String,
    /// Its state machine.
    pub state_machine_arn: String,
    /// The definition it runs (as it was when it started).
    pub definition: String,
    /// `RUNNING`, `SUCCEEDED`, `FAILED`, `TIMED_OUT`, `ABORTED`.
    pub status: String,
    /// Input JSON.
    pub input: String,
    /// Output JSON when SUCCEEDED.
    pub output: Option<String>,
    /// Error when FAILED/ABORTED.
    pub error: Option<String>,
    /// Cause when FAILED/ABORTED.
    pub cause: Option<String>,
    /// `startDate`.
    pub start_date: DateTime<Utc>,
    /// `stopDate`.
    pub stop_date: Option<DateTime<Utc>>,
    /// `redriveCount`.
    pub redrive_count: u32,
    /// `redriveDate`.
    pub redrive_date: Option<DateTime<Utc>>,
    /// The interpreter's `ExecutionInfo`, JSON.
    pub info: String,
}

/// The SQLite store.
pub struct Store {
    path: PathBuf,
    conn: Mutex<Connection>,
}

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS state_machines (
  arn TEXT PRIMARY KEY, name TEXT NOT NULL, definition TEXT NOT NULL, role_arn TEXT NOT NULL,
  kind TEXT NOT NULL, created TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS activities (
  arn TEXT PRIMARY KEY, name TEXT NOT NULL, created TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS executions (
  arn TEXT PRIMARY KEY, name TEXT NOT NULL, state_machine_arn TEXT NOT NULL,
  definition TEXT NOT NULL, status TEXT NOT NULL, input TEXT NOT NULL, output TEXT,
  error TEXT, cause TEXT, start_date TEXT NOT NULL, stop_date TEXT,
  redrive_count INTEGER NOT NULL DEFAULT 0, redrive_date TEXT, info TEXT NOT NULL,
  snapshot TEXT, seq INTEGER NOT NULL);
CREATE INDEX IF NOT EXISTS executions_by_machine ON executions(state_machine_arn, seq);
CREATE TABLE IF NOT EXISTS task_tokens (token TEXT PRIMARY KEY);
CREATE TABLE IF NOT EXISTS events (
  execution_arn TEXT NOT NULL, id INTEGER NOT NULL, event TEXT NOT NULL,
  PRIMARY KEY (execution_arn, id));
";

fn ts(d: &DateTime<Utc>) -> String {
    d.to_rfc3339_opts(chrono::SecondsFormat::Micros, true)
}

fn parse_ts(s: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(s)
        .map(|d| d.with_timezone(&Utc))
        .unwrap_or_else(|_| Utc::now())
}

const EXEC_COLUMNS: &str = "arn, name, state_machine_arn, definition, status, input, output, \
    error, cause, start_date, stop_date, redrive_count, redrive_date, info";

fn exec_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<ExecutionRecord> {
    Ok(ExecutionRecord {
        arn: r.get(0)?,
        name: r.get(1)?,
        state_machine_arn: r.get(2)?,
        definition: r.get(3)?,
        status: r.get(4)?,
        input: r.get(5)?,
        output: r.get(6)?,
        error: r.get(7)?,
        cause: r.get(8)?,
        start_date: parse_ts(&r.get::<_, String>(9)?),
        stop_date: r.get::<_, Option<String>>(10)?.map(|s| parse_ts(&s)),
        redrive_count: r.get(11)?,
        redrive_date: r.get::<_, Option<String>>(12)?.map(|s| parse_ts(&s)),
        info: r.get(13)?,
    })
}

impl Store {
    /// Opens (creating) `dir/engine.sqlite3`.
    pub fn open(dir: &Path) -> Result<Store, LocalError> {
        std::fs::create_dir_all(dir).map_err(|source| LocalError::Io {
            path: dir.display().to_string(),
            source,
        })?;
        let path = dir.join("engine.sqlite3");
        let err = |e: rusqlite::Error| LocalError::Store {
            path: path.display().to_string(),
            message: e.to_string(),
        };
        let conn = Connection::open(&path).map_err(err)?;
        conn.pragma_update(None, "journal_mode", "WAL")
            .map_err(err)?;
        conn.pragma_update(None, "synchronous", "NORMAL")
            .map_err(err)?;
        conn.busy_timeout(std::time::Duration::from_secs(10))
            .map_err(err)?;
        conn.execute_batch(SCHEMA).map_err(err)?;
        Ok(Store {
            path,
            conn: Mutex::new(conn),
        })
    }

    /// The database file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    fn with<T>(
        &self,
        f: impl FnOnce(&mut Connection) -> rusqlite::Result<T>,
    ) -> Result<T, LocalError> {
        let mut conn = self.conn.lock().unwrap_or_else(|p| p.into_inner());
        f(&mut conn).map_err(|e| LocalError::Store {
            path: self.path.display().to_string(),
            message: e.to_string(),
        })
    }

    /// Inserts or replaces a state machine.
    pub fn put_state_machine(&self, m: &StateMachineRecord) -> Result<(), LocalError> {
        self.with(|c| {
            c.execute(
                "INSERT INTO state_machines (arn, name, definition, role_arn, kind, created)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6)
                 ON CONFLICT(arn) DO UPDATE SET definition = excluded.definition,
                   role_arn = excluded.role_arn, kind = excluded.kind",
                params![
                    m.arn,
                    m.name,
                    m.definition,
                    m.role_arn,
                    m.kind,
                    ts(&m.created)
                ],
            )
            .map(|_| ())
        })
    }

    /// All state machines, by name.
    pub fn state_machines(&self) -> Result<Vec<StateMachineRecord>, LocalError> {
        self.with(|c| {
            let mut st = c.prepare(
                "SELECT arn, name, definition, role_arn, kind, created FROM state_machines ORDER BY name",
            )?;
            st.query_map([], |r| {
                Ok(StateMachineRecord {
                    arn: r.get(0)?,
                    name: r.get(1)?,
                    definition: r.get(2)?,
                    role_arn: r.get(3)?,
                    kind: r.get(4)?,
                    created: parse_ts(&r.get::<_, String>(5)?),
                })
            })?
            .collect()
        })
    }

    /// Inserts an activity (kept if it exists).
    pub fn put_activity(
        &self,
        arn: &str,
        name: &str,
        created: &DateTime<Utc>,
    ) -> Result<(), LocalError> {
        self.with(|c| {
            c.execute(
                "INSERT OR IGNORE INTO activities (arn, name, created) VALUES (?1, ?2, ?3)",
                params![arn, name, ts(created)],
            )
            .map(|_| ())
        })
    }

    /// Deletes an activity.
    pub fn delete_activity(&self, arn: &str) -> Result<(), LocalError> {
        self.with(|c| {
            c.execute("DELETE FROM activities WHERE arn = ?1", params![arn])
                .map(|_| ())
        })
    }

    /// All activities `(arn, name, created)`.
    pub fn activities(&self) -> Result<Vec<(String, String, DateTime<Utc>)>, LocalError> {
        self.with(|c| {
            let mut st = c.prepare("SELECT arn, name, created FROM activities")?;
            st.query_map([], |r| {
                Ok((r.get(0)?, r.get(1)?, parse_ts(&r.get::<_, String>(2)?)))
            })?
            .collect()
        })
    }

    /// Inserts a new execution.
    pub fn insert_execution(&self, e: &ExecutionRecord) -> Result<(), LocalError> {
        self.with(|c| {
            c.execute(
                "INSERT INTO executions (arn, name, state_machine_arn, definition, status, input,
                   output, error, cause, start_date, stop_date, redrive_count, redrive_date, info, seq)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14,
                   (SELECT COALESCE(MAX(seq), 0) + 1 FROM executions))",
                params![
                    e.arn,
                    e.name,
                    e.state_machine_arn,
                    e.definition,
                    e.status,
                    e.input,
                    e.output,
                    e.error,
                    e.cause,
                    ts(&e.start_date),
                    e.stop_date.as_ref().map(ts),
                    e.redrive_count,
                    e.redrive_date.as_ref().map(ts),
                    e.info,
                ],
            )
            .map(|_| ())
        })
    }

    /// Records how an execution ended.
    pub fn finish_execution(
        &self,
        arn: &str,
        status: &str,
        output: Option<&str>,
        error: Option<&str>,
        cause: Option<&str>,
        stop_date: &DateTime<Utc>,
    ) -> Result<(), LocalError> {
        self.with(|c| {
            c.execute(
                "UPDATE executions SET status = ?2, output = ?3, error = ?4, cause = ?5,
                   stop_date = ?6 WHERE arn = ?1",
                params![arn, status, output, error, cause, ts(stop_date)],
            )
            .map(|_| ())
        })
    }

    /// Marks an execution RUNNING again for a redrive, with the redriven snapshot.
    pub fn redrive_execution(
        &self,
        arn: &str,
        redrive_count: u32,
        redrive_date: &DateTime<Utc>,
        info: &str,
        snapshot: &str,
    ) -> Result<(), LocalError> {
        self.with(|c| {
            c.execute(
                "UPDATE executions SET status = 'RUNNING', output = NULL, error = NULL, cause = NULL,
                   stop_date = NULL, redrive_count = ?2, redrive_date = ?3, info = ?4, snapshot = ?5
                 WHERE arn = ?1",
                params![arn, redrive_count, ts(redrive_date), info, snapshot],
            )
            .map(|_| ())
        })
    }

    /// One execution.
    pub fn execution(&self, arn: &str) -> Result<Option<ExecutionRecord>, LocalError> {
        self.with(|c| {
            c.query_row(
                &format!("SELECT {EXEC_COLUMNS} FROM executions WHERE arn = ?1"),
                params![arn],
                exec_row,
            )
            .optional()
        })
    }

    /// Executions of a state machine (all when `None`), newest first, optionally by status.
    pub fn executions(
        &self,
        state_machine_arn: Option<&str>,
        status: Option<&str>,
    ) -> Result<Vec<ExecutionRecord>, LocalError> {
        self.with(|c| {
            let mut st = c.prepare(&format!(
                "SELECT {EXEC_COLUMNS} FROM executions
                 WHERE (?1 IS NULL OR state_machine_arn = ?1) AND (?2 IS NULL OR status = ?2)
                 ORDER BY seq DESC"
            ))?;
            st.query_map(params![state_machine_arn, status], exec_row)?
                .collect()
        })
    }

    /// Appends history events (`(id, event JSON)`) and replaces the snapshot, atomically.
    pub fn record(
        &self,
        execution_arn: &str,
        events: &[(i64, String)],
        snapshot: &str,
    ) -> Result<(), LocalError> {
        self.with(|c| {
            let tx = c.transaction()?;
            {
                let mut ins = tx.prepare_cached(
                    "INSERT OR REPLACE INTO events (execution_arn, id, event) VALUES (?1, ?2, ?3)",
                )?;
                for (id, ev) in events {
                    ins.execute(params![execution_arn, id, ev])?;
                }
                tx.execute(
                    "UPDATE executions SET snapshot = ?2 WHERE arn = ?1",
                    params![execution_arn, snapshot],
                )?;
            }
            tx.commit()
        })
    }

    /// Records an issued task token.
    pub fn put_token(&self, token: &str) -> Result<(), LocalError> {
        self.with(|c| {
            c.prepare_cached("INSERT OR IGNORE INTO task_tokens (token) VALUES (?1)")?
                .execute(params![token])
                .map(|_| ())
        })
    }

    /// Whether a task token was ever issued.
    pub fn has_token(&self, token: &str) -> Result<bool, LocalError> {
        self.with(|c| {
            c.prepare_cached("SELECT 1 FROM task_tokens WHERE token = ?1")?
                .exists(params![token])
        })
    }

    /// The latest snapshot of an execution.
    pub fn snapshot(&self, execution_arn: &str) -> Result<Option<String>, LocalError> {
        self.with(|c| {
            c.query_row(
                "SELECT snapshot FROM executions WHERE arn = ?1",
                params![execution_arn],
                |r| r.get::<_, Option<String>>(0),
            )
            .optional()
            .map(Option::flatten)
        })
    }

    /// History events (JSON) with id > `after`, up to `limit`, oldest first (or newest first
    /// with `reverse`, then ids < `after` when `after` > 0).
    pub fn events(
        &self,
        execution_arn: &str,
        after: i64,
        limit: usize,
        reverse: bool,
    ) -> Result<Vec<(i64, String)>, LocalError> {
        self.with(|c| {
            let sql = if reverse {
                "SELECT id, event FROM events WHERE execution_arn = ?1 AND (?2 = 0 OR id < ?2)
                 ORDER BY id DESC LIMIT ?3"
            } else {
                "SELECT id, event FROM events WHERE execution_arn = ?1 AND id > ?2
                 ORDER BY id LIMIT ?3"
            };
            let mut st = c.prepare_cached(sql)?;
            st.query_map(params![execution_arn, after, limit as i64], |r| {
                Ok((r.get(0)?, r.get(1)?))
            })?
            .collect()
        })
    }
}

impl crate::tasks::TokenLog for Store {
    fn issued(&self, token: &str) {
        if let Err(e) = self.put_token(token) {
            tracing::warn!(error = %e, "cannot record a task token");
        }
    }

    fn was_issued(&self, token: &str) -> bool {
        self.has_token(token).unwrap_or(false)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn executions_events_and_snapshots_survive_reopen() {
        let dir = tempfile::tempdir().unwrap();
        let now = Utc::now();
        {
            let s = Store::open(dir.path()).unwrap();
            s.insert_execution(&ExecutionRecord {
                arn: "e1".into(),
                name: "n".into(),
                state_machine_arn: "m".into(),
                definition: "{}".into(),
                status: "RUNNING".into(),
                input: "{}".into(),
                output: None,
                error: None,
                cause: None,
                start_date: now,
                stop_date: None,
                redrive_count: 0,
                redrive_date: None,
                info: "{}".into(),
            })
            .unwrap();
            s.record("e1", &[(1, "{\"a\":1}".into()), (2, "{}".into())], "\"s1\"")
                .unwrap();
            s.record("e1", &[(3, "{}".into())], "\"s2\"").unwrap();
        }
        let s = Store::open(dir.path()).unwrap();
        assert_eq!(s.snapshot("e1").unwrap().as_deref(), Some("\"s2\""));
        let ev = s.events("e1", 1, 10, false).unwrap();
        assert_eq!(ev.iter().map(|e| e.0).collect::<Vec<_>>(), vec![2, 3]);
        let ev = s.events("e1", 0, 2, true).unwrap();
        assert_eq!(ev.iter().map(|e| e.0).collect::<Vec<_>>(), vec![3, 2]);
        let running = s.executions(None, Some("RUNNING")).unwrap();
        assert_eq!(running.len(), 1);
        assert_eq!(
            running[0].start_date.timestamp_micros(),
            now.timestamp_micros()
        );
        s.finish_execution("e1", "SUCCEEDED", Some("1"), None, None, &now)
            .unwrap();
        assert_eq!(s.execution("e1").unwrap().unwrap().status, "SUCCEEDED");
    }
}
