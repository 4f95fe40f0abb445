//! A faithful local stand-in of the Synapse service's admin migration API (the endpoints of
//! docs/synapse-migration.md) over SQLite, served on 127.0.0.1 by the testkit's HTTP server:
//! HTTP Basic auth, asynchronous admin jobs that take time and can be made to fail, backups
//! written to a local folder standing in for the service's S3 bucket (share it between two
//! fakes, as prod and staging share theirs), the status switch (users' writes refused while
//! READ_ONLY; admin restores go on), and counters of the jobs started per range.
//!
//! ```no_run
//! # async fn demo() {
//! use stepops_synapse_fake::{FakeOptions, FakeStack};
//! let backups = tempfile::tempdir().unwrap();
//! let prod = FakeStack::start(FakeOptions::new("prod", backups.path())).await;
//! prod.seed("NODE", 1..=1000, 2);
//! let url = prod.url(); // synapse+http://KEY:SECRET@127.0.0.1:PORT/repo/v1
//! # }
//! ```

pub mod bench;
mod server;
pub mod store;

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::atomic::AtomicU64;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use rusqlite::{Connection, params};
use serde_json::Value;
pub use store::TypeDef;

/// How a fake stack behaves.
#[derive(Debug, Clone)]
pub struct FakeOptions {
    /// A name, in backup keys and messages.
    pub name: String,
    /// The admin service key.
    pub key: String,
    /// Its secret.
    pub secret: String,
    /// The shared backup folder (the service's bucket).
    pub backup_dir: PathBuf,
    /// The SQLite file (`None`: in memory).
    pub db: Option<PathBuf>,
    /// Primary types with their secondaries, in migration order.
    pub types: Vec<TypeDef>,
    /// How long every admin job takes before it does its work.
    pub job_delay: Duration,
}

impl FakeOptions {
    /// A stack named `name` with the default types and key, backups in `backup_dir`.
    pub fn new(name: &str, backup_dir: impl Into<PathBuf>) -> FakeOptions {
        FakeOptions {
            name: name.into(),
            key: "migration-admin".into(),
            secret: format!("{name}-Secret-7Qx"),
            backup_dir: backup_dir.into(),
            db: None,
            types: default_types(),
            job_delay: Duration::from_millis(20),
        }
    }
}

/// The default types: three with secondaries, then the change log.
pub fn default_types() -> Vec<TypeDef> {
    vec![
        TypeDef::new("PRINCIPAL", &["PRINCIPAL_ALIAS"]),
        TypeDef::new("NODE", &["NODE_REVISION"]),
        TypeDef::new("ACL", &["ACL_ACCESS"]),
        TypeDef::new("FILE_HANDLE", &[]),
        TypeDef::new("CHANGE", &[]),
    ]
}

/// A fault the next requests get.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Fault {
    /// Answer with this HTTP status (`{"reason": …}`).
    Status(u16),
    /// Answer 200 with a body that is not the documented JSON.
    Malformed,
    /// Answer only after this long.
    Delay(Duration),
}

/// A job's bookkeeping.
#[derive(Debug, Clone)]
pub(crate) struct Job {
    pub status: Value,
    pub kind: String,
}

pub(crate) struct Inner {
    pub opts: FakeOptions,
    pub db: Mutex<Connection>,
    pub status: Mutex<Value>,
    pub jobs: Mutex<HashMap<String, Job>>,
    pub next_job: AtomicU64,
    pub faults: Mutex<Vec<Fault>>,
    pub fail_jobs: Mutex<Vec<(String, String)>>,
    pub started: Mutex<HashMap<(String, String, i64, i64), usize>>,
    pub restoring: Mutex<HashMap<String, usize>>,
    pub violations: Mutex<Vec<String>>,
    pub late_starts: Mutex<Option<LateStarts>>,
}

/// Job starts answered late ([`FakeStack::answer_job_starts_late`]).
#[derive(Debug, Clone)]
pub(crate) struct LateStarts {
    pub kind: String,
    pub after: usize,
    pub count: usize,
    pub by: Duration,
}

impl Inner {
    pub fn db(&self) -> MutexGuard<'_, Connection> {
        self.db.lock().unwrap_or_else(|p| p.into_inner())
    }
    pub fn def(&self, t: &str) -> Option<TypeDef> {
        self.opts.types.iter().find(|d| d.name == t).cloned()
    }
    /// Jobs of `kind` started.
    pub fn jobs_of(&self, kind: &str) -> usize {
        lock(&self.started)
            .iter()
            .filter(|(k, _)| k.0 == kind)
            .map(|(_, n)| n)
            .sum()
    }
}

pub(crate) fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// A running fake stack.
pub struct FakeStack {
    inner: Arc<Inner>,
    http: stepops_testkit::http::HttpServer,
}

impl FakeStack {
    /// Starts a stack on a free port of 127.0.0.1.
    pub async fn start(opts: FakeOptions) -> FakeStack {
        std::fs::create_dir_all(&opts.backup_dir).expect("the backup folder");
        let db = store::open(opts.db.as_deref()).expect("the fake's SQLite tables");
        let inner = Arc::new(Inner {
            opts,
            db: Mutex::new(db),
            status: Mutex::new(serde_json::json!({"status": "READ_WRITE"})),
            jobs: Mutex::default(),
            next_job: AtomicU64::new(1),
            faults: Mutex::default(),
            fail_jobs: Mutex::default(),
            started: Mutex::default(),
            restoring: Mutex::default(),
            violations: Mutex::default(),
            late_starts: Mutex::default(),
        });
        let i = inner.clone();
        let http =
            stepops_testkit::http::HttpServer::start(move |req| server::respond(&i, req)).await;
        FakeStack { inner, http }
    }

    /// `synapse+http://KEY:SECRET@127.0.0.1:PORT/repo/v1`.
    pub fn url(&self) -> String {
        let o = &self.inner.opts;
        self.url_with(&o.key, &o.secret)
    }

    /// The stack's URL with other credentials (to test refusals).
    pub fn url_with(&self, key: &str, secret: &str) -> String {
        let host = self.http.url().trim_start_matches("http://");
        format!("synapse+http://{key}:{secret}@{host}/repo/v1")
    }

    /// The requests served so far.
    pub fn requests(&self) -> Vec<stepops_testkit::http::Recorded> {
        self.http.requests()
    }

    /// Inserts primary rows `ids` of `t` (etag `e0-ID`) with `secondaries` rows each in every
    /// secondary type, in one transaction; existing rows are replaced.
    pub fn seed(&self, t: &str, ids: impl IntoIterator<Item = i64>, secondaries: i64) {
        let def = self.inner.def(t).expect("a known type");
        let mut db = self.inner.db();
        let tx = db.transaction().unwrap();
        {
            let mut p = tx
                .prepare("INSERT OR REPLACE INTO primary_rows VALUES (?1, ?2, ?3, ?4)")
                .unwrap();
            let mut s = tx
                .prepare("INSERT OR REPLACE INTO secondary_rows VALUES (?1, ?2, ?3, ?4)")
                .unwrap();
            for id in ids {
                p.execute(params![t, id, format!("e0-{id}"), format!("{t} row {id}")])
                    .unwrap();
                for sec in &def.secondaries {
                    for seq in 0..secondaries {
                        s.execute(params![sec, id, seq, format!("{sec} {id}.{seq}")])
                            .unwrap();
                    }
                }
            }
        }
        tx.commit().unwrap();
    }

    fn user_write(&self) -> Result<MutexGuard<'_, Connection>, String> {
        let status = lock(&self.inner.status)["status"]
            .as_str()
            .unwrap_or("")
            .to_owned();
        if status != "READ_WRITE" {
            return Err(format!(
                "{}: the stack is {status}: writes are refused",
                self.inner.opts.name
            ));
        }
        Ok(self.inner.db())
    }

    /// A user's write: sets row `id` of `t` (a new etag), refused unless READ_WRITE.
    pub fn write(&self, t: &str, id: i64, etag: &str) -> Result<(), String> {
        self.user_write()?
            .execute(
                "INSERT OR REPLACE INTO primary_rows VALUES (?1, ?2, ?3, ?4)",
                params![t, id, etag, format!("{t} row {id} {etag}")],
            )
            .map(drop)
            .map_err(|e| e.to_string())
    }

    /// A write that changes row `id` of `t` but keeps its etag (a bug or a manual fix on the
    /// service): batch checksums cannot see it, the full-table checksum can. Refused unless
    /// READ_WRITE.
    pub fn write_keeping_etag(&self, t: &str, id: i64, body: &str) -> Result<(), String> {
        self.user_write()?
            .execute(
                "UPDATE primary_rows SET body = ?3 WHERE type = ?1 AND id = ?2",
                params![t, id, body],
            )
            .map(drop)
            .map_err(|e| e.to_string())
    }

    /// A user's write to a secondary row of `owner` in secondary type `sec`; with `bump`, the
    /// owner's etag changes too (as the service does for a new revision).
    pub fn write_secondary(
        &self,
        sec: &str,
        owner: i64,
        seq: i64,
        body: &str,
        bump: Option<(&str, &str)>,
    ) -> Result<(), String> {
        let db = self.user_write()?;
        db.execute(
            "INSERT OR REPLACE INTO secondary_rows VALUES (?1, ?2, ?3, ?4)",
            params![sec, owner, seq, body],
        )
        .map_err(|e| e.to_string())?;
        if let Some((t, etag)) = bump {
            db.execute(
                "UPDATE primary_rows SET etag = ?3 WHERE type = ?1 AND id = ?2",
                params![t, owner, etag],
            )
            .map_err(|e| e.to_string())?;
        }
        Ok(())
    }

    /// A user's delete of row `id` of `t` and its secondaries.
    pub fn delete(&self, t: &str, id: i64) -> Result<(), String> {
        let def = self.inner.def(t).ok_or("unknown type")?;
        let db = self.user_write()?;
        db.execute(
            "DELETE FROM primary_rows WHERE type = ?1 AND id = ?2",
            params![t, id],
        )
        .map_err(|e| e.to_string())?;
        for s in &def.secondaries {
            db.execute(
                "DELETE FROM secondary_rows WHERE type = ?1 AND owner = ?2",
                params![s, id],
            )
            .map_err(|e| e.to_string())?;
        }
        Ok(())
    }

    /// Every row, in order (compare two stacks with `==`).
    pub fn dump(&self) -> Vec<String> {
        store::dump(&self.inner.db()).unwrap()
    }

    /// The stack's status (`READ_WRITE`, `READ_ONLY`, `DOWN`).
    pub fn status(&self) -> String {
        lock(&self.inner.status)["status"]
            .as_str()
            .unwrap_or("")
            .to_owned()
    }

    /// Sets the status directly.
    pub fn set_status(&self, status: &str) {
        lock(&self.inner.status)["status"] = Value::from(status);
    }

    /// The next `times` requests get `fault`.
    pub fn inject(&self, fault: Fault, times: usize) {
        let mut f = lock(&self.inner.faults);
        for _ in 0..times {
            f.push(fault.clone());
        }
    }

    /// The next admin job of `kind` (`backup`, `restore`, …) ends FAILED with `message`.
    pub fn fail_next_job(&self, kind: &str, message: &str) {
        lock(&self.inner.fail_jobs).push((kind.into(), message.into()));
    }

    /// Answers `count` starts of jobs of `kind`, those after the first `after` of them, late:
    /// the n-th of them `n × by` late (each job itself starts at once), so that a client's later
    /// start requests are still in flight, one after another, when an earlier job has ended.
    pub fn answer_job_starts_late(&self, kind: &str, after: usize, count: usize, by: Duration) {
        *lock(&self.inner.late_starts) = Some(LateStarts {
            kind: kind.into(),
            after,
            count,
            by,
        });
    }

    /// Jobs started, by `(kind, type, minimumId, maximumId)`.
    pub fn jobs_started(&self) -> HashMap<(String, String, i64, i64), usize> {
        lock(&self.inner.started).clone()
    }

    /// Jobs of `kind` started.
    pub fn jobs_of(&self, kind: &str) -> usize {
        self.inner.jobs_of(kind)
    }

    /// Jobs of `kind` still PROCESSING.
    pub fn jobs_running(&self, kind: &str) -> usize {
        lock(&self.inner.jobs)
            .values()
            .filter(|j| j.status["jobState"] == "PROCESSING" && j.kind == kind)
            .count()
    }

    /// The ids of the jobs of `kind` still PROCESSING.
    pub fn running_job_ids(&self, kind: &str) -> Vec<String> {
        lock(&self.inner.jobs)
            .iter()
            .filter(|(_, j)| j.status["jobState"] == "PROCESSING" && j.kind == kind)
            .map(|(id, _)| id.clone())
            .collect()
    }

    /// Broken rules seen: two restores of a type at once, the change log restored beside another.
    pub fn violations(&self) -> Vec<String> {
        lock(&self.inner.violations).clone()
    }
}
