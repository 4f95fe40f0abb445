//! An independent full comparison of two sample databases: every row of every table, in key
//! order, hashed on the client (nothing of the migration engine is used).

use futures::TryStreamExt;

use crate::data::{TABLES, columns};
use crate::dialect::{pg_connect, sqlite_open};
use crate::error::{Result, SampleError};
use stepops_error::DatabaseUrl;

/// Row count and content hash of one table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TableDigest {
    /// The table.
    pub table: String,
    /// Its rows.
    pub rows: u64,
    /// FNV-1a (64-bit) over every row's text in key order.
    pub hash: u64,
}

/// A table's digest as its rows are read: FNV-1a over each value, and the rows counted.
struct Running {
    hash: u64,
    rows: u64,
}

impl Running {
    fn new() -> Running {
        Running {
            hash: 0xcbf2_9ce4_8422_2325,
            rows: 0,
        }
    }

    /// Adds one value of the current row.
    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.hash ^= u64::from(b);
            self.hash = self.hash.wrapping_mul(0x0100_0000_01b3);
        }
        // Separator so that ("ab","c") and ("a","bc") differ.
        self.hash ^= 0xff;
        self.hash = self.hash.wrapping_mul(0x0100_0000_01b3);
    }

    /// Ends the current row.
    fn end_row(&mut self) {
        self.rows += 1;
    }

    fn done(self, table: &str) -> TableDigest {
        TableDigest {
            table: table.to_owned(),
            rows: self.rows,
            hash: self.hash,
        }
    }
}

fn order_by(table: &str) -> &'static str {
    if table == "acl" {
        "entity_id, principal_id, access"
    } else {
        "id"
    }
}

/// Digests every sample table at `url` (PostgreSQL: each row's `::text`, so NaN, -0 and
/// exact numerics count; SQLite: each value's type and content). Streams: fine for millions
/// of rows.
pub async fn digest(url: &str) -> Result<Vec<TableDigest>> {
    match DatabaseUrl::parse(url)? {
        DatabaseUrl::Postgres(url) => {
            let client = pg_connect(&url).await?;
            let mut out = Vec::new();
            for t in TABLES {
                let sql = format!("SELECT x::text FROM {t} x ORDER BY {}", order_by(t));
                let stream = client
                    .query_raw(&sql, std::iter::empty::<i32>())
                    .await
                    .map_err(SampleError::pg(sql.clone()))?;
                futures::pin_mut!(stream);
                let mut digest = Running::new();
                while let Some(row) = stream
                    .try_next()
                    .await
                    .map_err(SampleError::pg(sql.clone()))?
                {
                    let text: String = row.get(0);
                    digest.write(text.as_bytes());
                    digest.end_row();
                }
                out.push(digest.done(t));
            }
            Ok(out)
        }
        DatabaseUrl::Sqlite(path) => tokio::task::spawn_blocking(move || {
            let conn = sqlite_open(&path)?;
            let mut out = Vec::new();
            for t in TABLES {
                let sql = format!(
                    "SELECT {} FROM {t} ORDER BY {}",
                    columns(t).join(", "),
                    order_by(t)
                );
                let ctx = || SampleError::sqlite(sql.clone());
                let mut stmt = conn.prepare(&sql).map_err(ctx())?;
                let ncols = stmt.column_count();
                let mut rows = stmt.query([]).map_err(ctx())?;
                let mut digest = Running::new();
                while let Some(row) = rows.next().map_err(ctx())? {
                    for i in 0..ncols {
                        let v: rusqlite::types::Value = row.get(i).map_err(ctx())?;
                        digest.write(format!("{v:?}").as_bytes());
                    }
                    digest.end_row();
                }
                out.push(digest.done(t));
            }
            Ok(out)
        })
        .await
        .map_err(|e| SampleError::Internal(format!("SQLite digest: {e}")))?,
    }
}
