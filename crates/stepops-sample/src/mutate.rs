//! Random changes to a sample database: updates of non-key columns, deletes (single rows and
//! contiguous key ranges, i.e. new key gaps) and inserts, scattered over the key space and
//! consistent with the foreign keys. Deterministic for a given database state and seed.

use crate::data::{self, TABLES, Val, columns};
use crate::dialect::{Dialect, Exec, PgExec, SqliteExec, pg_connect, sqlite_open};
use crate::error::{Result, SampleError};
use crate::rng::{Rng, mix};
use stepops_error::DatabaseUrl;

/// Fractions of each table's current row count to change (`0.001` = 0.1%). Any positive
/// fraction changes at least one row per table.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Fractions {
    /// Rows whose non-key columns are updated.
    pub update: f64,
    /// Rows deleted (about a fifth of them as contiguous key ranges).
    pub delete: f64,
    /// Rows inserted (new keys at the end for users/projects/entities; scattered through the
    /// key space for acl and events).
    pub insert: f64,
}

/// What one table went through.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TableChanges {
    /// The table.
    pub table: String,
    /// Rows updated (including children re-parented or detached by a delete).
    pub updated: u64,
    /// Rows deleted.
    pub deleted: u64,
    /// Rows inserted.
    pub inserted: u64,
}

/// Changes per table, in [`TABLES`] order.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MutateReport {
    /// One entry per table.
    pub tables: Vec<TableChanges>,
}

impl MutateReport {
    /// Total rows updated, deleted and inserted.
    pub fn totals(&self) -> (u64, u64, u64) {
        self.tables.iter().fold((0, 0, 0), |(u, d, i), t| {
            (u + t.updated, d + t.deleted, i + t.inserted)
        })
    }

    fn get(&mut self, table: &str) -> &mut TableChanges {
        self.tables
            .iter_mut()
            .find(|t| t.table == table)
            .expect("known table")
    }
}

/// Applies random inserts, updates and deletes to the sample at `url` in one transaction.
pub async fn mutate(url: &str, seed: u64, fractions: Fractions) -> Result<MutateReport> {
    for f in [fractions.update, fractions.delete, fractions.insert] {
        if !(0.0..=1.0).contains(&f) {
            return Err(SampleError::InvalidInput(format!(
                "mutation fractions must be between 0 and 1, got {f}"
            )));
        }
    }
    match DatabaseUrl::parse(url)? {
        DatabaseUrl::Postgres(url) => {
            let mut e = PgExec(pg_connect(&url).await?);
            run(&mut e, seed, fractions).await
        }
        DatabaseUrl::Sqlite(path) => {
            let handle = tokio::runtime::Handle::current();
            tokio::task::spawn_blocking(move || {
                let mut e = SqliteExec(sqlite_open(&path)?);
                handle.block_on(run(&mut e, seed, fractions))
            })
            .await
            .map_err(|e| SampleError::Internal(format!("SQLite mutate: {e}")))?
        }
    }
}

fn key_of(table: &str) -> &'static str {
    if table == "acl" { "entity_id" } else { "id" }
}

fn amount(count: i64, fraction: f64) -> u64 {
    if fraction <= 0.0 || count <= 0 {
        0
    } else {
        ((count as f64 * fraction).round() as u64).max(1)
    }
}

struct Stats {
    count: i64,
    min: i64,
    max: i64,
}

async fn stats<E: Exec>(e: &mut E, table: &str) -> Result<Stats> {
    let k = key_of(table);
    let count = e
        .query_i64(&format!("SELECT count(*) FROM {table}"), &[])
        .await?
        .unwrap_or(0);
    let min = e
        .query_i64(&format!("SELECT min({k}) FROM {table}"), &[])
        .await?
        .unwrap_or(0);
    let max = e
        .query_i64(&format!("SELECT max({k}) FROM {table}"), &[])
        .await?
        .unwrap_or(0);
    Ok(Stats { count, min, max })
}

/// The first existing key at or after `at` (wrapping to the last one before it).
async fn existing<E: Exec>(e: &mut E, table: &str, at: i64) -> Result<Option<i64>> {
    let k = key_of(table);
    let p = e.dialect().int(1);
    let after = e
        .query_i64(
            &format!("SELECT {k} FROM {table} WHERE {k} >= {p} ORDER BY {k} LIMIT 1"),
            &[Val::Int(at)],
        )
        .await?;
    if after.is_some() {
        return Ok(after);
    }
    e.query_i64(
        &format!("SELECT {k} FROM {table} WHERE {k} <= {p} ORDER BY {k} DESC LIMIT 1"),
        &[Val::Int(at)],
    )
    .await
}

async fn random_existing<E: Exec>(e: &mut E, r: &mut Rng, table: &str) -> Result<Option<i64>> {
    let s = stats_cached(e, table).await?;
    if s.count == 0 {
        return Ok(None);
    }
    existing(e, table, r.range(s.min, s.max)).await
}

async fn stats_cached<E: Exec>(e: &mut E, table: &str) -> Result<Stats> {
    // min/max only (cheap with the key index); count is not needed here.
    let k = key_of(table);
    let min = e
        .query_i64(&format!("SELECT min({k}) FROM {table}"), &[])
        .await?;
    let max = e
        .query_i64(&format!("SELECT max({k}) FROM {table}"), &[])
        .await?;
    Ok(match (min, max) {
        (Some(min), Some(max)) => Stats { count: 1, min, max },
        _ => Stats {
            count: 0,
            min: 0,
            max: 0,
        },
    })
}

fn set(row: &mut [Val], table: &str, column: &str, v: Val) {
    let i = columns(table)
        .iter()
        .position(|c| *c == column)
        .expect("known column");
    row[i] = v;
}

fn insert_sql(d: Dialect, table: &str) -> String {
    let cols = columns(table);
    let ps: Vec<String> = cols
        .iter()
        .enumerate()
        .map(|(i, c)| d.param(i + 1, table, c))
        .collect();
    format!(
        "INSERT INTO {table} ({}) VALUES ({}) ON CONFLICT DO NOTHING",
        cols.join(", "),
        ps.join(", ")
    )
}

async fn run<E: Exec>(e: &mut E, seed: u64, f: Fractions) -> Result<MutateReport> {
    let mut report = MutateReport {
        tables: TABLES
            .iter()
            .map(|t| TableChanges {
                table: (*t).to_owned(),
                ..TableChanges::default()
            })
            .collect(),
    };
    let mut before = Vec::new();
    for t in TABLES {
        before.push(stats(e, t).await?);
    }
    let d = e.dialect();
    let r = &mut Rng::new(mix(&[seed, 0x6d75_7461_7465]));
    // Values for new and updated rows come from the generators under another seed.
    let vseed = mix(&[seed, 0x76616c]);
    e.batch("BEGIN").await?;

    // Updates of non-key columns.
    for (t, s) in TABLES.iter().zip(&before) {
        for _ in 0..amount(s.count, f.update) {
            let Some(key) = existing(e, t, r.range(s.min, s.max)).await? else {
                break;
            };
            let (sql, params) = match *t {
                "users" => {
                    let row = data::user(vseed, key);
                    let name = match &row[3] {
                        Val::Text(n) => format!("{n} (edited {})", r.below(1000)),
                        _ => "edited".into(),
                    };
                    (
                        format!(
                            "UPDATE users SET display_name = {}, balance = {} WHERE id = {}",
                            d.param(1, t, "display_name"),
                            d.param(2, t, "balance"),
                            d.int(3)
                        ),
                        vec![Val::Text(name), row[6].clone(), Val::Int(key)],
                    )
                }
                "projects" => (
                    format!(
                        "UPDATE projects SET name = {}, public = NOT public WHERE id = {}",
                        d.param(1, t, "name"),
                        d.int(2)
                    ),
                    vec![
                        Val::Text(format!("renamed {}", r.below(1 << 30))),
                        Val::Int(key),
                    ],
                ),
                "entities" => {
                    let row = data::entity(vseed, key, 1);
                    (
                        format!(
                            "UPDATE entities SET name = {}, version = version + 1, \
                             modified_at = {} WHERE id = {}",
                            d.param(1, t, "name"),
                            d.param(2, t, "modified_at"),
                            d.int(3)
                        ),
                        vec![row[3].clone(), row[8].clone(), Val::Int(key)],
                    )
                }
                "acl" => (
                    format!(
                        "UPDATE acl SET granted_at = {} WHERE entity_id = {}",
                        d.param(1, t, "granted_at"),
                        d.int(2)
                    ),
                    vec![Val::Ts(r.range(0, 1 << 50)), Val::Int(key)],
                ),
                _ => {
                    let row = data::event(vseed, key, 1);
                    (
                        format!(
                            "UPDATE events SET payload = {}, ratio = {} WHERE id = {}",
                            d.param(1, t, "payload"),
                            d.param(2, t, "ratio"),
                            d.int(3)
                        ),
                        vec![row[3].clone(), Val::F32(r.unit() as f32), Val::Int(key)],
                    )
                }
            };
            let n = e.execute(&sql, &params).await?;
            report.get(t).updated += n;
        }
    }

    // Inserts, parents first.
    for (t, s) in TABLES.iter().zip(&before) {
        let sql = insert_sql(d, t);
        for i in 0..amount(s.count.max(1), f.insert) as i64 {
            let fresh = s.max + 1 + i;
            let row = match *t {
                "users" => data::user(vseed, fresh),
                "projects" => {
                    let mut row = data::project(vseed, fresh, 1);
                    let Some(owner) = random_existing(e, r, "users").await? else {
                        break;
                    };
                    set(&mut row, t, "owner_id", Val::Int(owner));
                    row
                }
                "entities" => {
                    let mut row = data::entity(vseed, fresh, 1);
                    let Some(project) = random_existing(e, r, "projects").await? else {
                        break;
                    };
                    set(&mut row, t, "project_id", Val::Int(project));
                    if !matches!(row[2], Val::Null) {
                        let parent = random_existing(e, r, "entities").await?;
                        set(&mut row, t, "parent_id", parent.map_or(Val::Null, Val::Int));
                    }
                    row
                }
                "acl" => {
                    let (Some(entity), Some(user)) = (
                        random_existing(e, r, "entities").await?,
                        random_existing(e, r, "users").await?,
                    ) else {
                        break;
                    };
                    let mut row = data::acl(vseed, entity, 1, 1).remove(0);
                    set(&mut row, t, "principal_id", Val::Int(user));
                    set(
                        &mut row,
                        t,
                        "access",
                        Val::Text((*r.pick(&["read", "write", "admin", "owner"])).to_owned()),
                    );
                    row
                }
                _ => {
                    // Scattered through the sparse key space (or after it when empty).
                    let id = if s.count > 0 {
                        r.range(s.min, s.max)
                    } else {
                        fresh
                    };
                    let mut row = data::event(vseed, id, 1);
                    let user = if r.chance(0.1) {
                        None
                    } else {
                        random_existing(e, r, "users").await?
                    };
                    set(&mut row, t, "user_id", user.map_or(Val::Null, Val::Int));
                    row
                }
            };
            report.get(t).inserted += e.execute(&sql, &row).await?;
        }
    }

    // Deletes, children first; about a fifth as contiguous ranges (new key gaps).
    // Projects are never deleted (each one usually still has entities).
    for t in ["events", "acl", "entities", "users"] {
        let s = stats(e, t).await?;
        let target = amount(s.count, f.delete);
        let mut deleted = 0u64;
        let mut attempts = 0;
        while deleted < target && attempts < target * 4 + 10 && s.count > 0 {
            attempts += 1;
            let Some(lo) = existing(e, t, r.range(s.min, s.max)).await? else {
                break;
            };
            let hi = if r.chance(0.2) && target - deleted > 4 {
                let k = key_of(t);
                let p = d.int(1);
                e.query_i64(
                    &format!("SELECT {k} FROM {t} WHERE {k} >= {p} ORDER BY {k} LIMIT 1 OFFSET 4"),
                    &[Val::Int(lo)],
                )
                .await?
                .unwrap_or(lo)
            } else {
                lo
            };
            let range = [Val::Int(lo), Val::Int(hi)];
            let (a, b) = (d.int(1), d.int(2));
            match t {
                "entities" => {
                    let n = e
                        .execute(
                            &format!(
                                "UPDATE entities SET parent_id = NULL \
                                 WHERE parent_id BETWEEN {a} AND {b}"
                            ),
                            &range,
                        )
                        .await?;
                    report.get("entities").updated += n;
                    let n = e
                        .execute(
                            &format!("DELETE FROM acl WHERE entity_id BETWEEN {a} AND {b}"),
                            &range,
                        )
                        .await?;
                    report.get("acl").deleted += n;
                }
                "users" => {
                    let n = e
                        .execute(
                            &format!(
                                "UPDATE events SET user_id = NULL WHERE user_id BETWEEN {a} AND {b}"
                            ),
                            &range,
                        )
                        .await?;
                    report.get("events").updated += n;
                    let n = e
                        .execute(
                            &format!("DELETE FROM acl WHERE principal_id BETWEEN {a} AND {b}"),
                            &range,
                        )
                        .await?;
                    report.get("acl").deleted += n;
                }
                _ => {}
            }
            let guard = if t == "users" {
                " AND NOT EXISTS (SELECT 1 FROM projects p WHERE p.owner_id = users.id)"
            } else {
                ""
            };
            let k = key_of(t);
            let n = e
                .execute(
                    &format!("DELETE FROM {t} WHERE {k} BETWEEN {a} AND {b}{guard}"),
                    &range,
                )
                .await?;
            deleted += n;
            report.get(t).deleted += n;
        }
    }
    e.batch("COMMIT").await?;
    Ok(report)
}
