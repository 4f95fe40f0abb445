//! PostgreSQL: what a stack holds and may do: the tables of every schema (columns, keys,
//! foreign keys), the privileges a migration needs, and the sequences set once converged.

use super::{PgStack, t};
use crate::error::{MigrateError, Result};
use crate::model::{Column, ForeignKey, Relation, TableSchema, TableSpec};
use crate::stack::{Settle, Stack, quote_ident};
use stepops_error::names;

/// Privileges the destination role needs, for messages and docs.
pub const DEST_PRIVILEGES: &str = "the destination role needs SELECT, INSERT and DELETE on every migrated table and the right to set session_replication_role: be a superuser, or on PostgreSQL 15+ run `GRANT SET ON PARAMETER session_replication_role TO <role>` as a superuser";

impl PgStack {
    /// [`Stack::write_stamp`]: the server's snapshot horizon, then each table's inserted +
    /// updated + deleted rows as the statistics system counts them, and its file nodes (a
    /// partitioned table: over its partitions), as `XMIN:XMAX;TABLES` (the snapshot's
    /// bounds: `XMAX` one past the newest finished transaction, `XMIN` the oldest still
    /// running below it, `XMAX` when none).
    pub(super) async fn pg_write_stamp(&self, tables: &[TableSpec]) -> Result<String> {
        let on = self
            .query_with("SELECT current_setting('track_counts')", |r| {
                r.try_get::<_, String>(0)
            })
            .await?;
        if on.first().map(String::as_str) != Some("on") {
            // (An untracked run without cutOver takes this as "no stamp" and compares in full.)
            return Err(MigrateError::InvalidInput(
                "cutOver needs the source's write statistics, but track_counts is off there: turn it on (the default) or run without cutOver".into(),
            ));
        }
        // Read first: a write that finishes after it moves the horizon, unless an older
        // transaction still running then finishes (it is not seen by the comparison that
        // follows either): XMIN < XMAX says one was running.
        let horizon = self.horizon().await?;
        let writes = self.table_writes(tables).await?;
        Ok(format!("{horizon};{writes}"))
    }

    /// `XMIN:XMAX` of the server's current snapshot.
    async fn horizon(&self) -> Result<String> {
        let rows = self
            .query_with(
                "SELECT pg_snapshot_xmin(s)::text || ':' || pg_snapshot_xmax(s)::text
                 FROM pg_current_snapshot() s",
                |r| r.try_get::<_, String>(0),
            )
            .await?;
        Ok(rows.into_iter().next().unwrap_or_default())
    }

    /// Each table's `ROWS/FILENODES` (see [`PgStack::pg_write_stamp`]), space-separated.
    async fn table_writes(&self, tables: &[TableSpec]) -> Result<String> {
        let mut stamp = Vec::with_capacity(tables.len());
        for table in tables {
            // The file nodes too: TRUNCATE (and VACUUM FULL, CLUSTER) give a table new files
            // without counting rows as deleted.
            let writes = self
                .query_params(
                    "SELECT COALESCE(sum(s.n_tup_ins + s.n_tup_upd + s.n_tup_del), 0)::text || '/'
                            || COALESCE(string_agg(pg_relation_filenode(s.relid)::text, ','
                                                   ORDER BY s.relid), '')
                     FROM pg_stat_user_tables s
                     WHERE s.relid = $1::text::regclass
                        OR s.relid IN (SELECT relid FROM pg_partition_tree($1::text::regclass))",
                    &[&t(table)],
                    |r| r.try_get::<_, String>(0),
                )
                .await?;
            stamp.push(writes.into_iter().next().unwrap_or_default());
        }
        Ok(stamp.join(" "))
    }

    /// [`Stack::written_since`]. The row counts reach the statistics asynchronously (a
    /// backend reports them after its commit, on PostgreSQL 15+ within 10 s of going idle, and
    /// at once when it disconnects), so equal counts alone prove nothing; the snapshot horizon
    /// is exact but moves with every transaction that finishes on the server. So: changed
    /// counts or file nodes mean written; no transaction running below the horizon then and
    /// the same horizon now mean no write has finished; otherwise some transaction finished
    /// (perhaps in another database): wait as long as a session of this database may still
    /// hold counts back ([`PgStack::pending_counts_wait`]) and compare the counts again, or,
    /// when not to `wait`, answer that a write is not ruled out.
    pub(super) async fn pg_written_since(
        &self,
        tables: &[TableSpec],
        stamp: &str,
        settle: Settle,
    ) -> Result<bool> {
        let (horizon_then, writes_then) = stamp.split_once(';').unwrap_or(("", stamp));
        let horizon_now = self.horizon().await?;
        if self.table_writes(tables).await? != writes_then {
            return Ok(true);
        }
        let quiet_then = horizon_then
            .split_once(':')
            .is_some_and(|(xmin, xmax)| xmin == xmax);
        let xmax = |h: &str| h.split_once(':').map(|(_, xmax)| xmax.to_owned());
        if quiet_then && xmax(&horizon_now) == xmax(horizon_then) {
            return Ok(false);
        }
        let pending = self.pending_counts_wait(settle.within).await?;
        if !pending.is_zero() {
            if !settle.wait {
                return Ok(true);
            }
            tracing::info!(
                seconds = pending.as_secs_f64(),
                "cut-over: a session of the source's database was active recently; waiting for its row counts to reach the statistics"
            );
            tokio::time::sleep(pending).await;
        }
        Ok(self.table_writes(tables).await? != writes_then)
    }

    /// How long a session of this database may still hold row counts back, at most `settle`:
    /// `settle` after the last state change of each other client session (stepops' own
    /// excepted), `settle` in full for a session in a transaction, running a statement, or
    /// whose state this role may not see; nothing when no other session is connected.
    async fn pending_counts_wait(
        &self,
        settle: std::time::Duration,
    ) -> Result<std::time::Duration> {
        let seconds = self
            .query_params(
                "SELECT COALESCE(max(CASE
                     WHEN state IS DISTINCT FROM 'idle' OR state_change IS NULL THEN $1::float8
                     ELSE GREATEST(0, $1::float8 - extract(epoch FROM clock_timestamp() - state_change)::float8)
                   END), 0)::float8
                 FROM pg_stat_activity
                 WHERE datname = current_database() AND backend_type = 'client backend'
                   AND pid <> pg_backend_pid() AND application_name IS DISTINCT FROM 'stepops'",
                &[&settle.as_secs_f64()],
                |r| r.try_get::<_, f64>(0),
            )
            .await?;
        let seconds = seconds.first().copied().unwrap_or(settle.as_secs_f64());
        Ok(std::time::Duration::from_secs_f64(
            seconds.clamp(0.0, settle.as_secs_f64()),
        ))
    }

    pub(super) async fn pg_schema(&self, schemas: &[String]) -> Result<Vec<TableSchema>> {
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
                    relation: Relation {
                        schema: r.get(0),
                        relname: r.get(1),
                    },
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

    pub(super) async fn pg_check_access(&self, tables: &[TableSpec], as_dest: bool) -> Result<()> {
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

    pub(super) async fn pg_sync_sequences(
        &self,
        source: &Self,
        tables: &[TableSpec],
    ) -> Result<u32> {
        let mut schemas: Vec<&str> = tables.iter().map(|t| t.relation.schema.as_str()).collect();
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
