//! PostgreSQL: copying one chunk: the destination's delete and the source's binary `COPY`
//! streamed into the destination's, in one destination transaction (with a staging table when
//! rows collide on another unique key).

use super::{PgStack, Session, error_text, t};
use crate::error::{MigrateError, Result};
use crate::model::TableSpec;
use crate::stack::{Stack, column_list, quote_ident};
use futures::{SinkExt, StreamExt};
use tokio_postgres::error::SqlState;

impl PgStack {
    /// One destination transaction: run `delete` (the chunk's rows), then stream the rows of
    /// the source's `select` (the same key ranges, columns in [`column_list`] order) in by
    /// binary COPY.
    pub(super) async fn copy_with(
        &self,
        source: &Self,
        table: &TableSpec,
        delete: &str,
        select: &str,
        by_index: bool,
    ) -> Result<(u64, u64)> {
        let cols = column_list(table);
        let mut dst = self.take().await?;
        let mut src = source.take().await?;
        let tx = dst.0.transaction().await.map_err(|e| self.err(e))?;
        // Step Functions delivers a task at least once: two copies of the same chunk at the
        // same time take turns (the second then replaces what the first wrote).
        tx.execute(
            "SELECT pg_advisory_xact_lock(hashtextextended($1, 7340))",
            &[&delete],
        )
        .await
        .map_err(|e| self.err(e))?;
        tx.batch_execute("SET LOCAL session_replication_role = replica")
            .await
            .map_err(|e| self.err(e))?;
        if by_index {
            // Many ranges: index range scans, never one sequential scan tested per range.
            tx.batch_execute("SET LOCAL enable_seqscan = off")
                .await
                .map_err(|e| self.err(e))?;
            source.by_index(&src, true).await?;
        }
        // The source starts sending while the destination deletes (both wait on their pages):
        // its rows queue in the connection until the COPY into the destination reads them.
        let copy_out = format!("COPY ({select}) TO STDOUT (FORMAT binary)");
        let (mut deleted, stream) = futures::try_join!(
            async { tx.execute(delete, &[]).await.map_err(|e| self.err(e)) },
            async { src.0.copy_out(&copy_out).await.map_err(|e| source.err(e)) }
        )?;
        let direct = format!("COPY {} ({cols}) FROM STDIN (FORMAT binary)", t(table));
        let inserted = if table.conflict_keys.is_empty() {
            self.pump(source, &tx, stream, &direct)
                .await
                .map_err(|f| f.into_error(self))?
        } else {
            // Rows may collide with destination rows of other ranges on a unique key without
            // the range key (rare): try the direct COPY; on a duplicate key, read the range
            // again into a staging table, delete the colliding rows, then insert.
            tx.batch_execute("SAVEPOINT stepops_direct")
                .await
                .map_err(|e| self.err(e))?;
            match self.pump(source, &tx, stream, &direct).await {
                Ok(n) => {
                    tx.batch_execute("RELEASE SAVEPOINT stepops_direct")
                        .await
                        .map_err(|e| self.err(e))?;
                    n
                }
                Err(Failed::Dest(e)) if e.code() == Some(&SqlState::UNIQUE_VIOLATION) => {
                    tracing::debug!(table = %table.name, "rows collide on a unique key: copying through a staging table");
                    tx.batch_execute("ROLLBACK TO SAVEPOINT stepops_direct")
                        .await
                        .map_err(|e| self.err(e))?;
                    // The first read may not have been drained: read again on a fresh session.
                    src = source.take().await?;
                    if by_index {
                        source.by_index(&src, true).await?;
                    }
                    tx.batch_execute(&format!(
                        "CREATE TEMP TABLE stepops_stage ON COMMIT DROP AS SELECT {cols} FROM {t} WITH NO DATA",
                        t = t(table)
                    ))
                    .await
                    .map_err(|e| self.err(e))?;
                    let stream = src.0.copy_out(&copy_out).await.map_err(|e| source.err(e))?;
                    self.pump(
                        source,
                        &tx,
                        stream,
                        &format!("COPY stepops_stage ({cols}) FROM STDIN (FORMAT binary)"),
                    )
                    .await
                    .map_err(|f| f.into_error(self))?;
                    for key in &table.conflict_keys {
                        let on = key
                            .iter()
                            .map(|c| format!("d.{c} = s.{c}", c = quote_ident(c)))
                            .collect::<Vec<_>>()
                            .join(" AND ");
                        deleted += tx
                            .execute(
                                &format!(
                                    "DELETE FROM {t} d USING stepops_stage s WHERE {on}",
                                    t = t(table)
                                ),
                                &[],
                            )
                            .await
                            .map_err(|e| self.err(e))?;
                    }
                    tx.execute(
                        &format!(
                            "INSERT INTO {t} ({cols}) OVERRIDING SYSTEM VALUE SELECT {cols} FROM stepops_stage",
                            t = t(table)
                        ),
                        &[],
                    )
                    .await
                    .map_err(|e| self.err(e))?
                }
                Err(other) => return Err(other.into_error(self)),
            }
        };
        tx.commit().await.map_err(|e| self.err(e))?;
        if by_index {
            source.by_index(&src, false).await?;
        }
        source.give(src);
        self.give(dst);
        Ok((deleted, inserted))
    }

    /// `SET` / `RESET enable_seqscan` on a source session.
    pub(super) async fn by_index(&self, s: &Session, on: bool) -> Result<()> {
        s.0.batch_execute(if on {
            "SET enable_seqscan = off"
        } else {
            "RESET enable_seqscan"
        })
        .await
        .map_err(|e| self.err(e))
    }

    /// Streams a source COPY into `copy_in` (a COPY … FROM STDIN statement) inside `tx`;
    /// returns the rows written.
    async fn pump(
        &self,
        source: &Self,
        tx: &tokio_postgres::Transaction<'_>,
        stream: tokio_postgres::CopyOutStream,
        copy_in: &str,
    ) -> std::result::Result<u64, Failed> {
        let sink = tx
            .copy_in::<_, bytes::Bytes>(copy_in)
            .await
            .map_err(|e| Failed::Dest(e).with(self, source))?;
        let mut sink = std::pin::pin!(sink);
        let mut stream = std::pin::pin!(stream);
        while let Some(buf) = stream.next().await {
            let buf = buf.map_err(|e| Failed::Source(e).with(self, source))?;
            sink.feed(buf)
                .await
                .map_err(|e| Failed::Dest(e).with(self, source))?;
        }
        sink.as_mut()
            .finish()
            .await
            .map_err(|e| Failed::Dest(e).with(self, source))
    }
}

/// Which side of a copy failed, with the driver's error (mapped once the side is known).
enum Failed {
    Source(tokio_postgres::Error),
    Dest(tokio_postgres::Error),
    Mapped(MigrateError),
}

impl Failed {
    /// Keeps the raw error for the caller to inspect (a destination duplicate key), mapping
    /// everything else now.
    fn with(self, dest: &PgStack, source: &PgStack) -> Failed {
        match self {
            Failed::Dest(e) if e.code() == Some(&SqlState::UNIQUE_VIOLATION) => Failed::Dest(e),
            Failed::Dest(e) => Failed::Mapped(dest.err(e)),
            Failed::Source(e) => Failed::Mapped(source.err(e)),
            m => m,
        }
    }

    /// A duplicate key left at the end means rows of this range were written by something
    /// else at the same time (an earlier run's copy of an overlapping range, not yet
    /// committed when this one read): the same copy run again sees them and succeeds.
    fn into_error(self, dest: &PgStack) -> MigrateError {
        match self {
            Failed::Mapped(e) => e,
            Failed::Dest(e) if e.code() == Some(&SqlState::UNIQUE_VIOLATION) => {
                MigrateError::Transient {
                    target: dest.describe(),
                    reason: format!(
                        "{} while copying: rows of the range were written concurrently; \
                         copying the chunk again heals it",
                        error_text(&e)
                    ),
                }
            }
            Failed::Dest(e) | Failed::Source(e) => dest.err(e),
        }
    }
}
