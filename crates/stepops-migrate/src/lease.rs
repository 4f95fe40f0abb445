//! One writer per destination: a run holds a lease on its PostgreSQL destination (a row of
//! stepops' own table `stepops.lease`, see [`crate::own`]) naming its run (the execution ARN),
//! the process that took it and an expiry that every step of the run pushes forward. A second
//! run against the same destination fails fast with `Stepops.Busy` naming the holder; the
//! lease is released when the run converges or fails for good, and otherwise expires (a dead
//! holder, an aborted execution). A redrive is the same run and keeps its lease.
//!
//! SQLite destinations are local files that one process writes: they take no lease.

use std::time::Duration;

use crate::error::{MigrateError, Result};
use crate::own::own_table;
use crate::postgres::PgStack;
use crate::stack::Stack;
use stepops_error::DatabaseUrl;

/// stepops' table (in its own schema) holding the destination's lease.
pub const LEASE_TABLE: &str = "lease";

/// Who holds a destination.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LeaseHolder {
    /// The run (an execution ARN).
    pub run: String,
    /// The process that took or last renewed it (`host/pid`).
    pub holder: String,
    /// When it expires unless renewed (UTC, ISO 8601).
    pub expires_at: String,
}

/// Takes the destination's lease for `run`, or renews it if `run` already holds it, for `ttl`
/// from now. Fails `Stepops.Busy` naming the holder while another unexpired run holds it.
pub async fn hold(dest: &str, run: &str, ttl: Duration) -> Result<()> {
    let DatabaseUrl::Postgres(url) = DatabaseUrl::parse(dest)? else {
        return Ok(());
    };
    let stack = PgStack::new(&url, false)?;
    stack.hold_lease(run, ttl).await
}

/// Releases the lease if `run` holds it; returns whether it did.
pub async fn release(dest: &str, run: &str) -> Result<bool> {
    let DatabaseUrl::Postgres(url) = DatabaseUrl::parse(dest)? else {
        return Ok(false);
    };
    PgStack::new(&url, false)?.release_lease(run).await
}

/// The current holder of the destination's lease, expired or not.
pub async fn holder(dest: &str) -> Result<Option<LeaseHolder>> {
    let DatabaseUrl::Postgres(url) = DatabaseUrl::parse(dest)? else {
        return Ok(None);
    };
    PgStack::new(&url, false)?.lease_holder().await
}

/// This process, as a lease names it.
fn this_process() -> String {
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .or_else(|| std::env::var("HOSTNAME").ok())
        .unwrap_or_else(|| "unknown-host".into());
    format!("{}/{}", host.trim(), std::process::id())
}

impl PgStack {
    async fn hold_lease(&self, run: &str, ttl: Duration) -> Result<()> {
        let s = self.take().await?;
        self.ensure_own_schema(&s).await?;
        let table = own_table(LEASE_TABLE);
        s.0.batch_execute(&format!(
            "CREATE TABLE IF NOT EXISTS {table} (name text PRIMARY KEY, run text NOT NULL, \
             holder text NOT NULL, acquired_at timestamptz NOT NULL DEFAULT now(), \
             expires_at timestamptz NOT NULL)"
        ))
        .await
        .map_err(|e| self.err(e))?;
        let seconds = ttl.as_secs_f64();
        let taken =
            s.0.query(
                &format!(
                    "INSERT INTO {table} AS l (name, run, holder, expires_at)
                 VALUES ('destination', $1, $2, now() + make_interval(secs => $3))
                 ON CONFLICT (name) DO UPDATE SET run = EXCLUDED.run, holder = EXCLUDED.holder,
                     expires_at = EXCLUDED.expires_at,
                     acquired_at = CASE WHEN l.run = EXCLUDED.run THEN l.acquired_at ELSE now() END
                 WHERE l.run = EXCLUDED.run OR l.expires_at < now()
                 RETURNING run"
                ),
                &[&run, &this_process(), &seconds],
            )
            .await
            .map_err(|e| self.err(e))?;
        self.give(s);
        if !taken.is_empty() {
            return Ok(());
        }
        let holder = self.lease_holder().await?;
        Err(MigrateError::Busy(match holder {
            Some(h) => format!(
                "{}: another run holds this destination: {} (taken by {}, expires {} unless \
                 renewed). One run at a time writes a destination: wait for it to end, or stop \
                 it; a failed or stopped run's lease expires by itself",
                self.describe(),
                h.run,
                h.holder,
                h.expires_at
            ),
            None => format!(
                "{}: another run took this destination's lease at the same moment; start again",
                self.describe()
            ),
        }))
    }

    async fn release_lease(&self, run: &str) -> Result<bool> {
        let s = self.take().await?;
        if !self.own_table_exists(&s, LEASE_TABLE).await? {
            self.give(s);
            return Ok(false);
        }
        let n =
            s.0.execute(
                &format!("DELETE FROM {} WHERE run = $1", own_table(LEASE_TABLE)),
                &[&run],
            )
            .await
            .map_err(|e| self.err(e))?;
        self.give(s);
        Ok(n > 0)
    }

    async fn lease_holder(&self) -> Result<Option<LeaseHolder>> {
        let s = self.take().await?;
        if !self.own_table_exists(&s, LEASE_TABLE).await? {
            self.give(s);
            return Ok(None);
        }
        let rows =
            s.0.query(
                &format!(
                    "SELECT run, holder, to_char(expires_at AT TIME ZONE 'UTC', \
                     'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"') FROM {}",
                    own_table(LEASE_TABLE)
                ),
                &[],
            )
            .await
            .map_err(|e| self.err(e))?;
        self.give(s);
        Ok(rows.first().map(|r| LeaseHolder {
            run: r.get(0),
            holder: r.get(1),
            expires_at: r.get(2),
        }))
    }
}
