//! PostgreSQL sessions: the pool of idle sessions every query takes one from, the settings
//! each session starts with, and the per-statement settings of checksum queries.

use std::sync::atomic::Ordering;

use tokio_postgres::Client;

use super::PgStack;
use crate::error::Result;

/// Settings every session starts with, so both sides render values identically. JIT is off:
/// compiling took longer (about 0.2 s a query) than the short refinement and chunk queries.
/// `standard_conforming_strings` is pinned: the status switch writes quoted literals, whose
/// meaning must not depend on a server or role default. `application_name` names stepops'
/// sessions in `pg_stat_activity` (the cut-over check leaves them out).
const SESSION_SETUP: &str = "SET TimeZone = 'UTC'; SET DateStyle = 'ISO, MDY'; \
     SET IntervalStyle = 'postgres'; SET extra_float_digits = 1; SET bytea_output = 'hex'; \
     SET lock_timeout = '60s'; SET jit = off; SET application_name = 'stepops'; \
     SET standard_conforming_strings = on";

/// A pooled session: returned to the pool by [`PgStack::give`] after success, dropped (and so
/// closed, rolling back anything open) otherwise.
pub(crate) struct Session(pub(crate) Client);

impl PgStack {
    /// An idle session of the pool, or a new one started with [`SESSION_SETUP`], this stack's
    /// statement timeout and its read-only (source) or writable (destination) default.
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

    /// Returns a session that finished cleanly to the pool (at most 16 are kept idle).
    pub(crate) fn give(&self, s: Session) {
        let mut idle = self.idle.lock().expect("pool lock");
        if idle.len() < 16 {
            idle.push(s.0);
        }
    }

    pub(super) async fn query_with<T>(
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
        self.tuned_query(sql, params, None, f).await
    }

    /// [`PgStack::query_params`] for a checksum query that hash-aggregates about
    /// `tuning.groups` bins (and, `tuning.by_index`, must read the table through the key's
    /// index): the session's `work_mem` is raised for it (never lowered) so that the hash
    /// table stays in memory. PostgreSQL's planner cannot tell how many bins an expression
    /// such as `(id - lo) / width` makes, plans for one per row, and at the default `work_mem`
    /// (4 MB) spilled the 50,000 bins of a 5M-row table to disk (250 MB written and read
    /// again: 7.2 s instead of 4.7 s). The settings are reset after the statement.
    pub(crate) async fn tuned_query<T>(
        &self,
        sql: &str,
        params: &[&(dyn tokio_postgres::types::ToSql + Sync)],
        tuning: Option<Tuning>,
        f: impl Fn(&tokio_postgres::Row) -> std::result::Result<T, tokio_postgres::Error>,
    ) -> Result<Vec<T>> {
        let s = self.take().await?;
        if let Some(t) = &tuning {
            s.0.query(
                "SELECT set_config('enable_seqscan', CASE WHEN $2 THEN 'off' ELSE current_setting('enable_seqscan') END, false),
                        set_config('work_mem', GREATEST(pg_size_bytes(current_setting('work_mem')) / 1024, $1::bigint)::text || 'kB', false)",
                &[&hash_work_mem_kb(t.groups), &t.by_index],
            )
            .await
            .map_err(|e| self.err(e))?;
        }
        let rows = s.0.query(sql, params).await.map_err(|e| self.err(e))?;
        if tuning.is_some() {
            s.0.batch_execute("RESET enable_seqscan; RESET work_mem")
                .await
                .map_err(|e| self.err(e))?;
        }
        let out = rows
            .iter()
            .map(&f)
            .collect::<std::result::Result<Vec<T>, _>>()
            .map_err(|e| self.err(e))?;
        self.give(s);
        Ok(out)
    }
}

/// How a checksum query is run ([`PgStack::tuned_query`]).
#[derive(Debug, Clone, Copy)]
pub(crate) struct Tuning {
    /// About how many bins it aggregates.
    pub(crate) groups: u64,
    /// Whether to keep it on the key's index (`enable_seqscan = off`): a query over thousands
    /// of narrow ranges that the planner would otherwise answer with one sequential scan
    /// tested against every range (seconds per query).
    pub(crate) by_index: bool,
}

/// The `work_mem` (kB) that keeps a hash aggregate of `groups` bin checksums in memory:
/// about 330 bytes a bin measured (a `numeric` sum, counts and bounds), 512 allowed, between
/// PostgreSQL's default 4 MB and 256 MB (the engine's bins per query are bounded far below).
pub(crate) fn hash_work_mem_kb(groups: u64) -> i64 {
    (groups.saturating_mul(512) / 1024).clamp(4 * 1024, 256 * 1024) as i64
}
