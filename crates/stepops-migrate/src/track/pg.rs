//! The PostgreSQL statements of change tracking: the source's logical replication slot and
//! snapshots, the destination's marker table and range-key look-ups.

use super::{MARKER_TABLE, TrackingState};
use crate::error::{MigrateError, Result};
use crate::model::TableSpec;
use crate::own::own_table;
use crate::postgres::{PgStack, t};
use crate::stack::{Stack, quote_ident};
use futures::{StreamExt, TryStreamExt};
use tokio_postgres::error::SqlState;

/// A logical replication slot as `pg_replication_slots` shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SlotInfo {
    /// Database the slot decodes.
    pub database: String,
    /// Output plugin.
    pub plugin: String,
    /// Position up to which changes were consumed (`X/Y`).
    pub confirmed_flush_lsn: String,
    /// WAL the slot keeps, in bytes (`pg_current_wal_lsn() - restart_lsn`).
    pub retained_bytes: i64,
}

/// The plugin stepops decodes with (shipped with PostgreSQL, available on managed services).
pub const PLUGIN: &str = "test_decoding";

impl PgStack {
    /// `current_database()` and `current_schema()`.
    pub(crate) async fn database_and_schema(&self) -> Result<(String, String)> {
        let s = self.take().await?;
        let row =
            s.0.query_one(
                "SELECT current_database()::text, current_schema()::text",
                &[],
            )
            .await
            .map_err(|e| self.err(e))?;
        self.give(s);
        Ok((row.get(0), row.get(1)))
    }

    /// The slot named `name`, if it exists.
    pub(crate) async fn slot(&self, name: &str) -> Result<Option<SlotInfo>> {
        let s = self.take().await?;
        let rows =
            s.0.query(
                "SELECT coalesce(database::text, ''), coalesce(plugin::text, ''), \
                    coalesce(confirmed_flush_lsn::text, '0/0'), \
                    coalesce(pg_wal_lsn_diff(pg_current_wal_lsn(), restart_lsn), 0)::bigint \
             FROM pg_replication_slots WHERE slot_name = $1",
                &[&name],
            )
            .await
            .map_err(|e| self.err(e))?;
        self.give(s);
        Ok(rows.first().map(|r| SlotInfo {
            database: r.get(0),
            plugin: r.get(1),
            confirmed_flush_lsn: r.get(2),
            retained_bytes: r.get(3),
        }))
    }

    /// Creates the logical slot `name` with [`PLUGIN`]. It waits until transactions running
    /// now have ended (PostgreSQL needs that for a consistent starting point).
    pub(crate) async fn create_slot(&self, name: &str) -> Result<()> {
        self.slot_call(
            "SELECT pg_create_logical_replication_slot($1, $2)",
            &[&name, &PLUGIN],
            name,
        )
        .await
    }

    /// Runs one slot function `sql` on a pooled session; an error names `slot`.
    async fn slot_call(
        &self,
        sql: &str,
        params: &[&(dyn tokio_postgres::types::ToSql + Sync)],
        slot: &str,
    ) -> Result<()> {
        let s = self.take().await?;
        match s.0.execute(sql, params).await {
            Ok(_) => {
                self.give(s);
                Ok(())
            }
            Err(e) => Err(self.slot_err(e, slot)),
        }
    }

    /// Drops the slot `name` (the source then stops keeping WAL for it).
    pub(crate) async fn drop_slot(&self, name: &str) -> Result<()> {
        self.slot_call("SELECT pg_drop_replication_slot($1)", &[&name], name)
            .await
    }

    /// `pg_current_snapshot()` as text.
    pub(crate) async fn current_snapshot(&self) -> Result<String> {
        let s = self.take().await?;
        let row =
            s.0.query_one("SELECT pg_current_snapshot()::text", &[])
                .await
                .map_err(|e| self.err(e))?;
        self.give(s);
        Ok(row.get(0))
    }

    /// Makes every commit so far durable in the WAL. Logical decoding reads only flushed WAL,
    /// and with `synchronous_commit = off` a transaction is visible before its commit is
    /// flushed: without this, a comparison could see a change that its peek misses. A
    /// transactional logical message committed synchronously (no table is written; allowed in
    /// a read-only session) flushes everything before it. (A transaction that only takes an
    /// id writes no WAL before its commit record, and PostgreSQL commits it asynchronously.)
    pub(crate) async fn flush_wal(&self) -> Result<()> {
        let s = self.take().await?;
        s.0.batch_execute(
            "BEGIN; SET LOCAL synchronous_commit = on; \
             SELECT pg_logical_emit_message(true, 'stepops', 'flush'); COMMIT",
        )
        .await
        .map_err(|e| self.err(e))?;
        self.give(s);
        Ok(())
    }

    /// Streams the slot's pending changes (without consuming them) to `f` as
    /// `(lsn, xid, data)`; returns how many rows were read. Memory stays bounded: rows are
    /// handed over one at a time.
    pub(crate) async fn peek_changes(
        &self,
        slot: &str,
        mut f: impl FnMut(&str, u32, &str) -> Result<()>,
    ) -> Result<u64> {
        let s = self.take().await?;
        let stream =
            s.0.query_raw(
                "SELECT lsn::text, xid::text, data FROM pg_logical_slot_peek_changes($1, NULL, NULL, \
                 'include-xids', '1', 'skip-empty-xacts', '1')",
                [slot],
            )
            .await
            .map_err(|e| self.slot_err(e, slot))?;
        let mut stream = std::pin::pin!(stream);
        let mut n = 0u64;
        while let Some(row) = stream.next().await {
            let row = row.map_err(|e| self.slot_err(e, slot))?;
            let lsn: &str = row.get(0);
            let xid: &str = row.get(1);
            let data: &str = row.get(2);
            let xid: u32 = xid.parse().map_err(|_| {
                MigrateError::Internal(format!("logical decoding gave transaction id {xid:?}"))
            })?;
            f(lsn, xid, data)?;
            n += 1;
        }
        self.give(s);
        Ok(n)
    }

    /// Moves the slot forward to `lsn` (changes before it are no longer kept).
    pub(crate) async fn advance_slot(&self, slot: &str, lsn: &str) -> Result<()> {
        self.slot_call(
            "SELECT pg_replication_slot_advance($1, $2::text::pg_lsn)",
            &[&slot, &lsn],
            slot,
        )
        .await
    }

    fn slot_err(&self, e: tokio_postgres::Error, slot: &str) -> MigrateError {
        let target = self.describe();
        let code = e.code().cloned();
        let err = self.err(e);
        let reason = match &err {
            MigrateError::Internal(m) => m.clone(),
            MigrateError::Unauthorized { reason, .. } => {
                return MigrateError::Unauthorized {
                    target,
                    reason: format!(
                        "{reason}; change tracking needs a source role with the REPLICATION attribute (ALTER ROLE … REPLICATION; on Amazon RDS: GRANT rds_replication TO …)"
                    ),
                };
            }
            _ => return err,
        };
        match code {
            Some(c) if c == SqlState::OBJECT_NOT_IN_PREREQUISITE_STATE => {
                MigrateError::InvalidInput(format!(
                    "{target}: {reason}; change tracking needs wal_level = logical on the source (on Amazon RDS: rds.logical_replication = 1) and a free replication slot (max_replication_slots)"
                ))
            }
            Some(c) if c == SqlState::OBJECT_IN_USE => MigrateError::Transient {
                target,
                reason: format!("{reason} (another process is reading slot {slot})"),
            },
            Some(c) if c == SqlState::UNDEFINED_OBJECT => MigrateError::NotFound {
                target,
                reason: format!("{reason}: the replication slot {slot} does not exist"),
            },
            Some(c) if c == SqlState::DUPLICATE_OBJECT => MigrateError::Transient {
                target,
                reason: format!("{reason} (created at the same time by another run)"),
            },
            Some(c) if c == SqlState::CONFIGURATION_LIMIT_EXCEEDED => {
                MigrateError::InvalidInput(format!(
                    "{target}: {reason}; raise max_replication_slots on the source or drop an unused slot"
                ))
            }
            _ => MigrateError::Internal(format!("{target}: {reason}")),
        }
    }

    /// The destination's committed marker for `slot`, if any.
    pub(crate) async fn read_marker(&self, slot: &str) -> Result<Option<TrackingState>> {
        let s = self.take().await?;
        if !self.own_table_exists(&s, MARKER_TABLE).await? {
            self.give(s);
            return Ok(None);
        }
        let rows =
            s.0.query(
                &format!(
                    "SELECT state::text FROM {} WHERE slot = $1",
                    own_table(MARKER_TABLE)
                ),
                &[&slot],
            )
            .await
            .map_err(|e| self.err(e))?;
        self.give(s);
        match rows.first() {
            None => Ok(None),
            Some(r) => {
                let text: String = r.get(0);
                match serde_json::from_str(&text) {
                    Ok(state) => Ok(Some(state)),
                    Err(e) => {
                        tracing::warn!(slot, error = %e, "unreadable change-tracking marker on the destination: comparing everything");
                        Ok(None)
                    }
                }
            }
        }
    }

    /// Writes the destination's marker for `state.slot` (creating the table on first use).
    pub(crate) async fn write_marker(&self, state: &TrackingState) -> Result<()> {
        let table = own_table(MARKER_TABLE);
        let json = serde_json::to_string(state).expect("a tracking state serialises");
        let s = self.take().await?;
        self.ensure_own_schema(&s).await?;
        s.0.batch_execute(&format!(
            "CREATE TABLE IF NOT EXISTS {table} (slot text PRIMARY KEY, state jsonb NOT NULL, \
             updated_at timestamptz NOT NULL DEFAULT now())"
        ))
        .await
        .map_err(|e| self.marker_err(e))?;
        s.0.execute(
            &format!(
                "INSERT INTO {table} (slot, state) VALUES ($1, $2::text::jsonb) \
                 ON CONFLICT (slot) DO UPDATE SET state = EXCLUDED.state, updated_at = now()"
            ),
            &[&state.slot, &json],
        )
        .await
        .map_err(|e| self.marker_err(e))?;
        self.give(s);
        Ok(())
    }

    /// Removes the destination's marker for `slot` (the next run compares everything).
    pub(crate) async fn delete_marker(&self, slot: &str) -> Result<bool> {
        if self.read_marker(slot).await?.is_none() {
            return Ok(false);
        }
        let s = self.take().await?;
        let n =
            s.0.execute(
                &format!("DELETE FROM {} WHERE slot = $1", own_table(MARKER_TABLE)),
                &[&slot],
            )
            .await
            .map_err(|e| self.marker_err(e))?;
        self.give(s);
        Ok(n > 0)
    }

    fn marker_err(&self, e: tokio_postgres::Error) -> MigrateError {
        match self.err(e) {
            MigrateError::Unauthorized { target, reason } => MigrateError::Unauthorized {
                target,
                reason: format!(
                    "{reason}; change tracking keeps its marker in stepops' own table {}: stepops' role creates it in its own schema on the first run",
                    own_table(MARKER_TABLE)
                ),
            },
            other => other,
        }
    }

    /// The range keys this (destination) stack holds for the rows identified by `columns` =
    /// each of `rows` (values as text, cast to the columns' types).
    pub(crate) async fn range_keys_of(
        &self,
        table: &TableSpec,
        columns: &[String],
        rows: &[Vec<String>],
    ) -> Result<Vec<i64>> {
        if rows.is_empty() || columns.is_empty() {
            return Ok(Vec::new());
        }
        let ty = |c: &str| -> Result<&str> {
            table
                .columns
                .iter()
                .position(|x| x == c)
                .and_then(|i| table.types.get(i))
                .map(String::as_str)
                .ok_or_else(|| {
                    MigrateError::Internal(format!("change of {}: unknown column {c}", table.name))
                })
        };
        let mut joins = Vec::new();
        let mut unnest = Vec::new();
        let mut aliases = Vec::new();
        for (i, c) in columns.iter().enumerate() {
            unnest.push(format!("${}::text[]", i + 1));
            aliases.push(format!("c{i}"));
            joins.push(format!("x.{} = u.c{i}::{}", quote_ident(c), ty(c)?));
        }
        let sql = format!(
            "SELECT DISTINCT x.{k}::bigint FROM unnest({u}) AS u({a}) JOIN {t} AS x ON {j}",
            k = quote_ident(&table.range_key),
            u = unnest.join(", "),
            a = aliases.join(", "),
            t = t(table),
            j = joins.join(" AND "),
        );
        let mut out = Vec::new();
        for batch in rows.chunks(10_000) {
            let cols: Vec<Vec<&str>> = (0..columns.len())
                .map(|i| batch.iter().map(|r| r[i].as_str()).collect())
                .collect();
            let params: Vec<&(dyn tokio_postgres::types::ToSql + Sync)> = cols
                .iter()
                .map(|c| c as &(dyn tokio_postgres::types::ToSql + Sync))
                .collect();
            let s = self.take().await?;
            let keys: Vec<i64> =
                s.0.query_raw(&sql, params)
                    .await
                    .map_err(|e| self.err(e))?
                    .map_ok(|r| r.get::<_, i64>(0))
                    .try_collect()
                    .await
                    .map_err(|e| self.err(e))?;
            self.give(s);
            out.extend(keys);
        }
        Ok(out)
    }
}
