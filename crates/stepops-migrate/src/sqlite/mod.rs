//! SQLite stacks (`sqlite:PATH`): the embedded default, one file per stack.
//!
//! Checksums: a deterministic aggregate `stepops_rowsum(salt, col…)` registered on each
//! connection sums (mod 2^64) a salted SipHash of every row's typed values, so the whole row
//! is compared inside SQLite. Copy: the destination connection attaches the source file
//! read-only and runs `DELETE` + `INSERT … SELECT` in one `IMMEDIATE` transaction with
//! foreign-key enforcement off for that connection: rows never pass through Rust.

use crate::error::{MigrateError, Result};
use crate::model::{
    Bin, Column, ForeignKey, KeyRange, KeyStats, KeyValue, Relation, TableSchema, TableSpec,
};
use crate::stack::{Salted, Stack, column_list, quote_ident};
use rusqlite::functions::{Aggregate, Context, FunctionFlags};
use rusqlite::types::ValueRef;
use rusqlite::{Connection, OpenFlags};
use std::hash::{DefaultHasher, Hasher};
use std::path::{Path, PathBuf};
use std::time::Duration;

mod keys;

/// A SQLite database file as one side of a migration.
#[derive(Debug, Clone)]
pub struct SqliteStack {
    path: PathBuf,
}

impl SqliteStack {
    /// A stack on an existing file (checked when first used).
    pub fn new(path: impl Into<PathBuf>) -> Self {
        SqliteStack { path: path.into() }
    }

    /// The file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// A connection, read-write when `write`. A read-only open that finds the file in need of
    /// recovery (a write transaction interrupted by a crash or SIGKILL left a hot journal,
    /// which a read-only connection may not roll back) opens it read-write once, which rolls
    /// the interrupted transaction back, then reads as asked.
    fn open(&self, write: bool) -> Result<Connection> {
        if !self.path.exists() {
            return Err(MigrateError::NotFound {
                target: self.describe(),
                reason: "the SQLite file does not exist (create the schema first, for example with `stepops sample`)".into(),
            });
        }
        match self.try_open(write) {
            Err(e) if !write && needs_recovery(&e) => {
                tracing::info!(
                    target = %self.describe(),
                    "rolling back a write transaction that was interrupted (hot journal) before reading"
                );
                match self.try_open(true).and_then(|_| self.try_open(false)) {
                    Ok(conn) => Ok(conn),
                    Err(e) if needs_recovery(&e) => Err(MigrateError::Unauthorized {
                        target: self.describe(),
                        reason: format!(
                            "{e}: a write transaction was interrupted and must be rolled back, \
                             which needs write access to the file and its directory (check \
                             their permissions)"
                        ),
                    }),
                    Err(e) => Err(self.err(e)),
                }
            }
            r => r.map_err(|e| self.err(e)),
        }
    }

    fn try_open(&self, write: bool) -> rusqlite::Result<Connection> {
        let mut flags = OpenFlags::SQLITE_OPEN_URI | OpenFlags::SQLITE_OPEN_NO_MUTEX;
        flags |= if write {
            OpenFlags::SQLITE_OPEN_READ_WRITE
        } else {
            OpenFlags::SQLITE_OPEN_READ_ONLY
        };
        let conn = Connection::open_with_flags(&self.path, flags)?;
        conn.busy_timeout(Duration::from_secs(60))?;
        conn.create_aggregate_function(
            "stepops_rowsum",
            -1,
            FunctionFlags::SQLITE_UTF8 | FunctionFlags::SQLITE_DETERMINISTIC,
            RowSum,
        )?;
        conn.create_scalar_function(
            "stepops_rowhash",
            -1,
            FunctionFlags::SQLITE_UTF8 | FunctionFlags::SQLITE_DETERMINISTIC,
            |ctx| Ok(row_hash(ctx) as i64),
        )?;
        // Make sure it is a database at all (a text file opens fine until the first read); on
        // a read-write connection this first read also rolls back a hot journal.
        conn.query_row("SELECT count(*) FROM sqlite_master", [], |_| Ok(()))?;
        Ok(conn)
    }

    fn err(&self, e: rusqlite::Error) -> MigrateError {
        use rusqlite::ErrorCode as C;
        let reason = e.to_string();
        if needs_recovery(&e) {
            return MigrateError::Transient {
                target: self.describe(),
                reason: format!(
                    "{reason}: the file needs recovery from an interrupted write (a hot journal or \
                     WAL index), which the next read-write connection does"
                ),
            };
        }
        match e.sqlite_error_code() {
            Some(C::DatabaseBusy | C::DatabaseLocked) => MigrateError::Transient {
                target: self.describe(),
                reason,
            },
            Some(C::PermissionDenied | C::ReadOnly | C::CannotOpen) => MigrateError::Unauthorized {
                target: self.describe(),
                reason: format!("{reason} (check the file's permissions)"),
            },
            Some(C::NotADatabase) => MigrateError::InvalidInput(format!(
                "{} is not a SQLite database: {reason}",
                self.describe()
            )),
            _ => MigrateError::Internal(format!("{}: {reason}", self.describe())),
        }
    }

    async fn blocking<T: Send + 'static>(
        &self,
        write: bool,
        f: impl FnOnce(&mut Connection, &SqliteStack) -> rusqlite::Result<T> + Send + 'static,
    ) -> Result<T> {
        let me = self.clone();
        tokio::task::spawn_blocking(move || {
            let mut conn = me.open(write)?;
            f(&mut conn, &me).map_err(|e| me.err(e))
        })
        .await?
    }
}

/// Whether SQLite refused because the file needs recovery that this connection may not do:
/// read-only because a hot journal must be rolled back (`SQLITE_READONLY_ROLLBACK`), a WAL
/// index must be rebuilt (`SQLITE_READONLY_RECOVERY`, `_CANTINIT`, `_CANTLOCK`), or the file
/// was replaced under the connection (`SQLITE_READONLY_DBMOVED`). All pass once a read-write
/// connection has opened the file: worth retrying, unlike a permission problem.
fn needs_recovery(e: &rusqlite::Error) -> bool {
    use rusqlite::ffi;
    e.sqlite_error().is_some_and(|f| {
        matches!(
            f.extended_code,
            ffi::SQLITE_READONLY_ROLLBACK
                | ffi::SQLITE_READONLY_RECOVERY
                | ffi::SQLITE_READONLY_CANTINIT
                | ffi::SQLITE_READONLY_CANTLOCK
                | ffi::SQLITE_READONLY_DBMOVED
        )
    })
}

/// A SipHash of a function call's arguments (the salt and a row's values), typed.
fn row_hash(ctx: &Context<'_>) -> u64 {
    let mut h = DefaultHasher::new();
    for i in 0..ctx.len() {
        match ctx.get_raw(i) {
            ValueRef::Null => h.write_u8(0),
            ValueRef::Integer(v) => {
                h.write_u8(1);
                h.write_i64(v);
            }
            ValueRef::Real(v) => {
                h.write_u8(2);
                h.write_u64(v.to_bits());
            }
            ValueRef::Text(b) => {
                h.write_u8(3);
                h.write_usize(b.len());
                h.write(b);
            }
            ValueRef::Blob(b) => {
                h.write_u8(4);
                h.write_usize(b.len());
                h.write(b);
            }
        }
    }
    h.finish()
}

/// `stepops_rowsum(salt, v1, v2, …)`: the wrapping sum of a SipHash of each row's values;
/// `stepops_rowhash(salt, v1, v2, …)` is one row's.
struct RowSum;

impl Aggregate<u64, i64> for RowSum {
    fn init(&self, _: &mut Context<'_>) -> rusqlite::Result<u64> {
        Ok(0)
    }

    fn step(&self, ctx: &mut Context<'_>, acc: &mut u64) -> rusqlite::Result<()> {
        *acc = acc.wrapping_add(row_hash(ctx));
        Ok(())
    }

    fn finalize(&self, _: &mut Context<'_>, acc: Option<u64>) -> rusqlite::Result<i64> {
        Ok(acc.unwrap_or(0) as i64)
    }
}

fn t(table: &TableSpec) -> String {
    quote_ident(&table.name)
}

fn k(table: &TableSpec) -> String {
    quote_ident(&table.range_key)
}

/// A `file:` URI for ATTACH, read-only.
fn ro_uri(path: &Path) -> String {
    let abs = std::path::absolute(path).unwrap_or_else(|_| path.to_path_buf());
    let mut s = String::from("file:");
    for ch in abs.to_string_lossy().chars() {
        match ch {
            '%' => s.push_str("%25"),
            '?' => s.push_str("%3f"),
            '#' => s.push_str("%23"),
            ' ' => s.push_str("%20"),
            c => s.push(c),
        }
    }
    s.push_str("?mode=ro");
    s
}

impl Stack for SqliteStack {
    fn describe(&self) -> String {
        format!("sqlite:{}", self.path.display())
    }

    fn is_integer_type(sql_type: &str) -> bool {
        sql_type.to_ascii_uppercase().contains("INT")
    }

    async fn default_schema(&self) -> Result<String> {
        Ok(String::new())
    }

    async fn schema(&self, _schemas: &[String]) -> Result<Vec<TableSchema>> {
        self.blocking(false, |conn, _| {
            let names: Vec<String> = conn
                .prepare(
                    "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite\\_%' ESCAPE '\\' ORDER BY name",
                )?
                .query_map([], |r| r.get(0))?
                .collect::<rusqlite::Result<_>>()?;
            let mut out = Vec::new();
            for name in names {
                let mut columns = Vec::new();
                let mut pk: Vec<(i64, String)> = Vec::new();
                let mut stmt = conn.prepare(&format!("PRAGMA table_info({})", quote_ident(&name)))?;
                let mut rows = stmt.query([])?;
                while let Some(r) = rows.next()? {
                    let col: String = r.get(1)?;
                    let ty: String = r.get(2)?;
                    let not_null: bool = r.get(3)?;
                    let pk_pos: i64 = r.get(5)?;
                    if pk_pos > 0 {
                        pk.push((pk_pos, col.clone()));
                    }
                    let sql_type = ty.trim().to_ascii_uppercase();
                    // An INTEGER PRIMARY KEY is the rowid: never NULL whatever it declares.
                    let rowid = pk_pos == 1 && sql_type == "INTEGER";
                    columns.push(Column {
                        name: col,
                        sql_type,
                        nullable: !not_null && !rowid,
                        collatable: false,
                        fixed_width: false,
                    });
                }
                pk.sort();
                let mut fks: Vec<(i64, ForeignKey)> = Vec::new();
                let mut stmt =
                    conn.prepare(&format!("PRAGMA foreign_key_list({})", quote_ident(&name)))?;
                let mut rows = stmt.query([])?;
                while let Some(r) = rows.next()? {
                    let id: i64 = r.get(0)?;
                    let ref_table: String = r.get(2)?;
                    let from: String = r.get(3)?;
                    match fks.iter_mut().find(|(i, _)| *i == id) {
                        Some((_, fk)) => fk.columns.push(from),
                        None => fks.push((
                            id,
                            ForeignKey {
                                columns: vec![from],
                                ref_table,
                            },
                        )),
                    }
                }
                let mut unique_keys = Vec::new();
                let mut stmt = conn.prepare(&format!("PRAGMA index_list({})", quote_ident(&name)))?;
                let indexes: Vec<(String, bool, bool)> = stmt
                    .query_map([], |r| Ok((r.get::<_, String>(1)?, r.get::<_, bool>(2)?, r.get::<_, bool>(4)?)))?
                    .collect::<rusqlite::Result<_>>()?;
                for (index, unique, partial) in indexes {
                    if !unique || partial {
                        continue;
                    }
                    let mut stmt = conn.prepare(&format!("PRAGMA index_info({})", quote_ident(&index)))?;
                    let cols: Vec<Option<String>> = stmt
                        .query_map([], |r| r.get::<_, Option<String>>(2))?
                        .collect::<rusqlite::Result<_>>()?;
                    // An expression index names no column: not a plain unique key.
                    if let Some(cols) = cols.into_iter().collect::<Option<Vec<String>>>() {
                        unique_keys.push(cols);
                    }
                }
                out.push(TableSchema {
                    relation: Relation { schema: String::new(), relname: name.clone() },
                    in_default_schema: true,
                    large_object_columns: Vec::new(),
                    name,
                    columns,
                    primary_key: pk.into_iter().map(|(_, c)| c).collect(),
                    foreign_keys: fks.into_iter().map(|(_, f)| f).collect(),
                    unique_keys,
                });
            }
            Ok(out)
        })
        .await
    }

    async fn check_access(&self, _tables: &[TableSpec], as_dest: bool) -> Result<()> {
        if as_dest {
            let meta = std::fs::metadata(&self.path).map_err(|e| MigrateError::NotFound {
                target: self.describe(),
                reason: e.to_string(),
            })?;
            if meta.permissions().readonly() {
                return Err(MigrateError::Unauthorized {
                    target: self.describe(),
                    reason: "the destination file is read-only".into(),
                });
            }
        }
        self.blocking(as_dest, |_, _| Ok(())).await
    }

    async fn stats(&self, table: &TableSpec) -> Result<KeyStats> {
        let sql = format!(
            "SELECT min({k}), max({k}), count(*) FROM {t}",
            k = k(table),
            t = t(table)
        );
        self.blocking(false, move |conn, _| {
            conn.query_row(&sql, [], |r| {
                Ok(KeyStats {
                    min: r.get(0)?,
                    max: r.get(1)?,
                    count: r.get::<_, i64>(2)? as u64,
                })
            })
        })
        .await
    }

    async fn count_range(&self, table: &TableSpec, lo: i64, hi: i64) -> Result<u64> {
        let sql = format!(
            "SELECT count(*) FROM {t} WHERE {k} BETWEEN ?1 AND ?2",
            k = k(table),
            t = t(table)
        );
        self.blocking(false, move |conn, _| {
            conn.query_row(&sql, [lo, hi], |r| r.get::<_, i64>(0))
                .map(|n| n as u64)
        })
        .await
    }

    async fn boundaries(
        &self,
        table: &TableSpec,
        lo: i64,
        hi: i64,
        every: u64,
    ) -> Result<Vec<i64>> {
        let sql = format!(
            "SELECT key FROM (SELECT {k} AS key, row_number() OVER (ORDER BY {k}) AS rn FROM {t} WHERE {k} BETWEEN ?1 AND ?2) WHERE rn % ?3 = 0 ORDER BY rn",
            k = k(table),
            t = t(table)
        );
        let every = every.max(1) as i64;
        self.blocking(false, move |conn, _| {
            conn.prepare(&sql)?
                .query_map([lo, hi, every], |r| r.get(0))?
                .collect()
        })
        .await
    }

    async fn bins(&self, on: Salted<'_>, lo: i64, hi: i64, width: i64) -> Result<Vec<Bin>> {
        let bins = self.bins_multi(on, &[(lo, hi, width)]).await?;
        Ok(bins.into_iter().map(|(_, bin)| bin).collect())
    }

    async fn bins_multi(
        &self,
        on: Salted<'_>,
        ranges: &[(i64, i64, i64)],
    ) -> Result<Vec<(usize, Bin)>> {
        let (table, salt) = (on.table, on.salt);
        let sql = format!(
            "SELECT ({k} - ?1) / ?3 AS b, count(*), min({k}), max({k}), stepops_rowsum(?4, {cols}) FROM {t} WHERE {k} BETWEEN ?1 AND ?2 GROUP BY 1 ORDER BY 1",
            k = k(table),
            t = t(table),
            cols = column_list(table)
        );
        let salt = salt.to_owned();
        let ranges = ranges.to_vec();
        // In-process: one prepared statement run once per range on one connection.
        self.blocking(false, move |conn, _| {
            let mut stmt = conn.prepare(&sql)?;
            let mut out = Vec::new();
            for (i, (lo, hi, width)) in ranges.into_iter().enumerate() {
                let rows = stmt.query_map(rusqlite::params![lo, hi, width.max(1), salt], |r| {
                    Ok(Bin {
                        bin: r.get(0)?,
                        count: r.get::<_, i64>(1)? as u64,
                        min: r.get(2)?,
                        max: r.get(3)?,
                        checksum: r.get::<_, i64>(4)?.to_string(),
                    })
                })?;
                for b in rows {
                    out.push((i, b?));
                }
            }
            Ok(out)
        })
        .await
    }

    async fn copy_ranges(
        &self,
        source: &Self,
        table: &TableSpec,
        ranges: &[(i64, i64)],
    ) -> Result<(u64, u64)> {
        if !source.path.exists() {
            source.open(false)?;
        }
        let uri = ro_uri(&source.path);
        let cols = column_list(table);
        let delete = format!(
            "DELETE FROM main.{t} WHERE {k} BETWEEN ?1 AND ?2",
            k = k(table),
            t = t(table)
        );
        let insert = format!(
            "INSERT INTO main.{t} ({cols}) SELECT {cols} FROM stepops_src.{t} WHERE {k} BETWEEN ?1 AND ?2",
            k = k(table),
            t = t(table)
        );
        // Destination rows that collide with incoming ones on a unique key without the range
        // key (they sit under another range key) go first.
        let conflicts: Vec<String> = table
            .conflict_keys
            .iter()
            .map(|key| {
                let cols = key.iter().map(|c| quote_ident(c)).collect::<Vec<_>>().join(", ");
                format!(
                    "DELETE FROM main.{t} WHERE ({cols}) IN (SELECT {cols} FROM stepops_src.{t} WHERE {k} BETWEEN ?1 AND ?2)",
                    k = k(table),
                    t = t(table)
                )
            })
            .collect();
        let ranges = ranges.to_vec();
        self.blocking(true, move |conn, _| {
            conn.execute_batch("PRAGMA foreign_keys = OFF")?;
            conn.execute("ATTACH DATABASE ?1 AS stepops_src", [&uri])?;
            let tx = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
            let (mut deleted, mut inserted) = (0u64, 0u64);
            {
                let mut del = tx.prepare(&delete)?;
                let mut ins = tx.prepare(&insert)?;
                let mut collide = conflicts
                    .iter()
                    .map(|sql| tx.prepare(sql))
                    .collect::<rusqlite::Result<Vec<_>>>()?;
                for (lo, hi) in ranges {
                    deleted += del.execute([lo, hi])? as u64;
                    for c in &mut collide {
                        deleted += c.execute([lo, hi])? as u64;
                    }
                    inserted += ins.execute([lo, hi])? as u64;
                }
            }
            tx.commit()?;
            Ok((deleted, inserted))
        })
        .await
    }

    async fn row_count(&self, table: &TableSpec) -> Result<u64> {
        self.sqlite_row_count(table).await
    }

    async fn table_sum(&self, on: Salted<'_>) -> Result<(u64, String)> {
        self.sqlite_table_sum(on).await
    }

    async fn write_stamp(&self, _tables: &[TableSpec]) -> Result<String> {
        let stamp = |path: &Path| match std::fs::metadata(path) {
            Ok(m) => {
                let modified = m
                    .modified()
                    .ok()
                    .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
                    .map_or(0, |d| d.as_nanos());
                format!("{}@{modified}", m.len())
            }
            Err(_) => "-".to_owned(),
        };
        let mut wal = self.path.clone().into_os_string();
        wal.push("-wal");
        Ok(format!("{} {}", stamp(&self.path), stamp(Path::new(&wal))))
    }

    async fn key_cuts(&self, table: &TableSpec, every: u64) -> Result<Vec<KeyValue>> {
        self.sqlite_key_cuts(table, every).await
    }

    async fn key_bins(&self, on: Salted<'_>, cuts: &[KeyValue]) -> Result<Vec<Bin>> {
        self.sqlite_key_bins(on, cuts).await
    }

    async fn key_rows(
        &self,
        on: Salted<'_>,
        cuts: &[KeyValue],
        bins: &[i64],
    ) -> Result<Vec<(i64, KeyValue, i64)>> {
        self.sqlite_key_rows(on, cuts, bins).await
    }

    async fn copy_keys(
        &self,
        source: &Self,
        table: &TableSpec,
        ranges: Option<&[KeyRange]>,
    ) -> Result<(u64, u64)> {
        self.sqlite_copy_keys(source, table, ranges).await
    }

    async fn sync_sequences(&self, _source: &Self, _tables: &[TableSpec]) -> Result<u32> {
        // INTEGER PRIMARY KEY picks max(rowid) + 1 by itself; AUTOINCREMENT counters
        // (sqlite_sequence) are not carried over.
        Ok(0)
    }
}

impl SqliteStack {
    /// In one `IMMEDIATE` transaction with the source attached read-only (`stepops_src`) and
    /// foreign keys off: the `deletes`, then the `inserts`. Returns `(deleted, inserted)`.
    pub(crate) async fn copy_statements(
        &self,
        source: &Self,
        deletes: Vec<String>,
        inserts: Vec<String>,
    ) -> Result<(u64, u64)> {
        if !source.path.exists() {
            source.open(false)?;
        }
        let uri = ro_uri(&source.path);
        self.blocking(true, move |conn, _| {
            conn.execute_batch("PRAGMA foreign_keys = OFF")?;
            conn.execute("ATTACH DATABASE ?1 AS stepops_src", [&uri])?;
            let tx = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
            let (mut deleted, mut inserted) = (0u64, 0u64);
            for delete in &deletes {
                deleted += tx.execute(delete, [])? as u64;
            }
            for insert in &inserts {
                inserted += tx.execute(insert, [])? as u64;
            }
            tx.commit()?;
            Ok((deleted, inserted))
        })
        .await
    }

    /// Runs `f` on a fresh connection to this file (read-write when `write`), on a blocking
    /// thread (for [`crate::status`]).
    pub(crate) async fn status_connection<T: Send + 'static>(
        &self,
        write: bool,
        f: impl FnOnce(&mut Connection) -> rusqlite::Result<T> + Send + 'static,
    ) -> Result<T> {
        self.blocking(write, move |conn, _| f(conn)).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use stepops_error::{ErrorName, Named};

    fn failure(extended: std::ffi::c_int) -> rusqlite::Error {
        rusqlite::Error::SqliteFailure(rusqlite::ffi::Error::new(extended), None)
    }

    #[test]
    fn recovery_and_locks_are_transient_permissions_are_not() {
        let stack = SqliteStack::new("/nowhere/x.db");
        for code in [
            rusqlite::ffi::SQLITE_READONLY_ROLLBACK,
            rusqlite::ffi::SQLITE_READONLY_RECOVERY,
            rusqlite::ffi::SQLITE_READONLY_CANTINIT,
            rusqlite::ffi::SQLITE_READONLY_DBMOVED,
            rusqlite::ffi::SQLITE_BUSY,
            rusqlite::ffi::SQLITE_BUSY_RECOVERY,
            rusqlite::ffi::SQLITE_LOCKED,
        ] {
            let e = stack.err(failure(code));
            assert_eq!(e.error_name(), ErrorName::Transient, "{code}: {e}");
        }
        for code in [
            rusqlite::ffi::SQLITE_READONLY,
            rusqlite::ffi::SQLITE_READONLY_DIRECTORY,
            rusqlite::ffi::SQLITE_PERM,
            rusqlite::ffi::SQLITE_CANTOPEN,
        ] {
            let e = stack.err(failure(code));
            assert_eq!(e.error_name(), ErrorName::Unauthorized, "{code}: {e}");
        }
        assert!(
            stack
                .err(failure(rusqlite::ffi::SQLITE_READONLY_ROLLBACK))
                .to_string()
                .contains("interrupted write")
        );
    }
}
