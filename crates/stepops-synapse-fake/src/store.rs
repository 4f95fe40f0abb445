//! The fake's tables (SQLite): primary rows `(type, id, etag, body)` and secondary rows
//! `(type, owner, seq, body)` owned by a primary row, and the service's operations on them:
//! counts, optimal ranges, batch checksums with the service's formula, backup to a file and
//! restore from one. Ranges are `[min, max)`: the fake reads `maximumId` as exclusive.

use std::collections::BTreeMap;
use std::path::Path;

use rusqlite::{Connection, params};
use serde_json::{Value, json};

/// One primary type and its secondary types.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TypeDef {
    /// The primary type's name.
    pub name: String,
    /// Its secondary types (backed up and restored with it).
    pub secondaries: Vec<String>,
}

impl TypeDef {
    /// A primary type with secondaries.
    pub fn new(name: &str, secondaries: &[&str]) -> TypeDef {
        TypeDef {
            name: name.into(),
            secondaries: secondaries.iter().map(|s| (*s).to_owned()).collect(),
        }
    }
}

/// Opens (creating) the tables.
pub fn open(path: Option<&Path>) -> rusqlite::Result<Connection> {
    let c = match path {
        Some(p) => Connection::open(p)?,
        None => Connection::open_in_memory()?,
    };
    c.execute_batch(
        "PRAGMA journal_mode=WAL; PRAGMA synchronous=OFF;
         CREATE TABLE IF NOT EXISTS primary_rows(type TEXT NOT NULL, id INTEGER NOT NULL, etag TEXT, body TEXT NOT NULL, PRIMARY KEY(type, id)) WITHOUT ROWID;
         CREATE TABLE IF NOT EXISTS secondary_rows(type TEXT NOT NULL, owner INTEGER NOT NULL, seq INTEGER NOT NULL, body TEXT NOT NULL, PRIMARY KEY(type, owner, seq)) WITHOUT ROWID;",
    )?;
    Ok(c)
}

/// `CRC32(CONCAT(id, '@', IFNULL(etag, 'NULL'), '@@', salt))`, as the service computes it.
pub fn row_crc(id: i64, etag: Option<&str>, salt: &str) -> u32 {
    crc32fast::hash(format!("{id}@{}@@{salt}", etag.unwrap_or("NULL")).as_bytes())
}

/// `{type, count: null, minid, maxid}` of each type.
pub fn counts(c: &Connection, types: &[String]) -> rusqlite::Result<Vec<Value>> {
    let mut out = Vec::new();
    for t in types {
        let (min, max): (Option<i64>, Option<i64>) = c.query_row(
            "SELECT MIN(id), MAX(id) FROM primary_rows WHERE type = ?1",
            [t],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )?;
        out.push(json!({"type": t, "count": null, "minid": min, "maxid": max}));
    }
    Ok(out)
}

fn ids(
    c: &Connection,
    t: &str,
    min: i64,
    max: i64,
) -> rusqlite::Result<Vec<(i64, Option<String>)>> {
    let mut st = c.prepare_cached(
        "SELECT id, etag FROM primary_rows WHERE type = ?1 AND id >= ?2 AND id < ?3 ORDER BY id",
    )?;
    st.query_map(params![t, min, max], |r| Ok((r.get(0)?, r.get(1)?)))?
        .collect()
}

/// Contiguous ranges covering `[min, max)`, each starting at a row and holding `rows` rows.
pub fn optimal_ranges(
    c: &Connection,
    t: &str,
    min: i64,
    max: i64,
    rows: i64,
) -> rusqlite::Result<Vec<Value>> {
    let ids = ids(c, t, min, max)?;
    let starts: Vec<i64> = ids
        .iter()
        .step_by(rows.max(1) as usize)
        .map(|r| r.0)
        .collect();
    Ok(starts
        .iter()
        .enumerate()
        .map(|(i, s)| json!({"minimumId": s, "maximumId": starts.get(i + 1).copied().unwrap_or(max)}))
        .collect())
}

/// Bins of `[min, max)` by `(id - min) DIV batch`: count, `SUM%BIT_XOR` of the row CRCs, ids.
pub fn batch_checksums(
    c: &Connection,
    t: &str,
    salt: &str,
    min: i64,
    max: i64,
    batch: i64,
) -> rusqlite::Result<Vec<Value>> {
    let mut bins: BTreeMap<i64, (i64, u64, u32, i64, i64)> = BTreeMap::new();
    for (id, etag) in ids(c, t, min, max)? {
        let crc = row_crc(id, etag.as_deref(), salt);
        let b = bins
            .entry((id - min) / batch.max(1))
            .or_insert((0, 0, 0, id, id));
        b.0 += 1;
        b.1 += u64::from(crc);
        b.2 ^= crc;
        b.4 = id;
    }
    Ok(bins
        .into_iter()
        .map(|(n, (count, sum, xor, lo, hi))| {
            json!({"binNumber": n, "count": count, "checksum": format!("{sum}%{xor}"), "minimumId": lo, "maximumId": hi})
        })
        .collect())
}

/// A checksum of every column of every row of `def` (its primary rows and their secondaries),
/// as the service's full-table checksum covers the rows' contents, not only ids and etags.
pub fn table_checksum(c: &Connection, def: &TypeDef) -> rusqlite::Result<String> {
    const PRIMARY: &str = "SELECT ?1 || '@' || id || '@' || IFNULL(etag, 'NULL') || '@' || body \
                           FROM primary_rows WHERE type = ?1 ORDER BY id";
    const SECONDARY: &str = "SELECT ?1 || '@' || owner || '@' || seq || '@' || body \
                             FROM secondary_rows WHERE type = ?1 ORDER BY owner, seq";
    let mut hasher = crc32fast::Hasher::new();
    let tables =
        std::iter::once((PRIMARY, &def.name)).chain(def.secondaries.iter().map(|s| (SECONDARY, s)));
    for (sql, t) in tables {
        let mut st = c.prepare_cached(sql)?;
        let mut rows = st.query(params![t])?;
        while let Some(r) = rows.next()? {
            hasher.update(r.get::<_, String>(0)?.as_bytes());
            hasher.update(b"\n");
        }
    }
    Ok(hasher.finalize().to_string())
}

/// Writes `[min, max)` of `def` (its primary rows and their secondaries) to `file`; returns the
/// number of primary rows.
pub fn backup(
    c: &Connection,
    def: &TypeDef,
    min: i64,
    max: i64,
    file: &Path,
) -> anyhow::Result<i64> {
    let mut prim = c.prepare_cached("SELECT id, etag, body FROM primary_rows WHERE type = ?1 AND id >= ?2 AND id < ?3 ORDER BY id")?;
    let rows: Vec<Value> = prim
        .query_map(params![def.name, min, max], |r| {
            Ok(json!({"id": r.get::<_, i64>(0)?, "etag": r.get::<_, Option<String>>(1)?, "body": r.get::<_, String>(2)?}))
        })?
        .collect::<rusqlite::Result<_>>()?;
    let mut sec = Vec::new();
    for s in &def.secondaries {
        let mut st = c.prepare_cached("SELECT owner, seq, body FROM secondary_rows WHERE type = ?1 AND owner >= ?2 AND owner < ?3")?;
        for r in st.query_map(params![s, min, max], |r| {
            Ok(json!({"type": s, "owner": r.get::<_, i64>(0)?, "seq": r.get::<_, i64>(1)?, "body": r.get::<_, String>(2)?}))
        })? {
            sec.push(r?);
        }
    }
    let n = rows.len() as i64;
    std::fs::write(
        file,
        serde_json::to_vec(&json!({"type": def.name, "primary": rows, "secondary": sec}))?,
    )?;
    Ok(n)
}

/// In one transaction: deletes `[min, max)` of `def` (primary rows and their secondaries) and
/// inserts the backup's rows; returns the primary rows written.
pub fn restore(
    c: &mut Connection,
    def: &TypeDef,
    min: i64,
    max: i64,
    file: &Path,
) -> anyhow::Result<i64> {
    let backup: Value = serde_json::from_slice(
        &std::fs::read(file).map_err(|e| anyhow::anyhow!("backup file {}: {e}", file.display()))?,
    )?;
    if backup["type"] != json!(def.name) {
        anyhow::bail!(
            "backup file is of type {}, not {}",
            backup["type"],
            def.name
        );
    }
    let tx = c.transaction()?;
    tx.execute(
        "DELETE FROM primary_rows WHERE type = ?1 AND id >= ?2 AND id < ?3",
        params![def.name, min, max],
    )?;
    for s in &def.secondaries {
        tx.execute(
            "DELETE FROM secondary_rows WHERE type = ?1 AND owner >= ?2 AND owner < ?3",
            params![s, min, max],
        )?;
    }
    let mut n = 0;
    {
        let mut ins = tx.prepare_cached(
            "INSERT OR REPLACE INTO primary_rows(type, id, etag, body) VALUES (?1, ?2, ?3, ?4)",
        )?;
        for r in backup["primary"].as_array().into_iter().flatten() {
            ins.execute(params![
                def.name,
                r["id"].as_i64(),
                r["etag"].as_str(),
                r["body"].as_str().unwrap_or("")
            ])?;
            n += 1;
        }
        let mut ins = tx.prepare_cached(
            "INSERT OR REPLACE INTO secondary_rows(type, owner, seq, body) VALUES (?1, ?2, ?3, ?4)",
        )?;
        for r in backup["secondary"].as_array().into_iter().flatten() {
            ins.execute(params![
                r["type"].as_str(),
                r["owner"].as_i64(),
                r["seq"].as_i64(),
                r["body"].as_str().unwrap_or("")
            ])?;
        }
    }
    tx.commit()?;
    Ok(n)
}

/// Every row, in order: the fake's whole content, for equality checks.
pub fn dump(c: &Connection) -> rusqlite::Result<Vec<String>> {
    let mut out = Vec::new();
    let mut st = c.prepare(
        "SELECT type, id, IFNULL(etag, 'NULL'), body FROM primary_rows ORDER BY type, id",
    )?;
    for r in st.query_map([], |r| {
        Ok(format!(
            "P {} {} {} {}",
            r.get::<_, String>(0)?,
            r.get::<_, i64>(1)?,
            r.get::<_, String>(2)?,
            r.get::<_, String>(3)?
        ))
    })? {
        out.push(r?);
    }
    let mut st =
        c.prepare("SELECT type, owner, seq, body FROM secondary_rows ORDER BY type, owner, seq")?;
    for r in st.query_map([], |r| {
        Ok(format!(
            "S {} {} {} {}",
            r.get::<_, String>(0)?,
            r.get::<_, i64>(1)?,
            r.get::<_, i64>(2)?,
            r.get::<_, String>(3)?
        ))
    })? {
        out.push(r?);
    }
    Ok(out)
}
