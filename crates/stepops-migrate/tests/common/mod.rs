//! Test fixtures shared by the SQLite and PostgreSQL suites: a small schema with the shapes the
//! engine must handle (parents, a self-referencing table, a child table with a composite key,
//! sparse keys), random data and random divergence written as SQL for either dialect, and an
//! independent full comparison of rows.

#![allow(dead_code)]

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

/// Which SQL dialect to render.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dialect {
    Sqlite,
    Pg,
}

/// The tables, parents first.
pub const TABLES: [&str; 5] = ["users", "projects", "entities", "acl", "events"];

pub fn schema(d: Dialect) -> &'static str {
    match d {
        Dialect::Sqlite => {
            "CREATE TABLE users (id INTEGER PRIMARY KEY, name TEXT NOT NULL, email TEXT, active BOOLEAN, score REAL, avatar BLOB, created TEXT, prefs TEXT, uid TEXT, tags TEXT);
             CREATE TABLE projects (id INTEGER PRIMARY KEY, owner_id INTEGER REFERENCES users(id) ON DELETE CASCADE, title TEXT, budget NUMERIC, nums TEXT);
             CREATE TABLE entities (id INTEGER PRIMARY KEY, project_id INTEGER REFERENCES projects(id) ON DELETE CASCADE, parent_id INTEGER REFERENCES entities(id) ON DELETE CASCADE, name TEXT, body BLOB);
             CREATE TABLE acl (entity_id INTEGER NOT NULL REFERENCES entities(id) ON DELETE CASCADE, principal_id INTEGER NOT NULL, access TEXT NOT NULL, PRIMARY KEY (entity_id, principal_id, access));
             CREATE TABLE events (id INTEGER PRIMARY KEY, at TEXT, kind TEXT, payload TEXT, ratio REAL);"
        }
        Dialect::Pg => {
            "CREATE TABLE users (id bigint PRIMARY KEY, name text NOT NULL, email text, active boolean, score double precision, avatar bytea, created timestamptz, prefs jsonb, uid uuid, tags text[]);
             CREATE TABLE projects (id integer PRIMARY KEY, owner_id bigint REFERENCES users(id) ON DELETE CASCADE, title text, budget numeric(24,6), nums integer[]);
             CREATE TABLE entities (id bigint PRIMARY KEY, project_id integer REFERENCES projects(id) ON DELETE CASCADE, parent_id bigint REFERENCES entities(id) ON DELETE CASCADE, name text, body bytea);
             CREATE TABLE acl (entity_id bigint NOT NULL REFERENCES entities(id) ON DELETE CASCADE, principal_id bigint NOT NULL, access text NOT NULL, PRIMARY KEY (entity_id, principal_id, access));
             CREATE TABLE events (id bigint PRIMARY KEY, at timestamptz, kind text, payload jsonb, ratio double precision);"
        }
    }
}

/// Text with quotes, control characters, combining marks, CJK, emoji and right-to-left script.
pub fn text(rng: &mut StdRng) -> String {
    const PIECES: [&str; 14] = [
        "a",
        "Zoë",
        "O'Brien",
        "\"q\"",
        "\\",
        "\n",
        "\t",
        "日本語",
        "🦀",
        "e\u{301}",
        "مرحبا",
        " ",
        "%_",
        "\u{feff}",
    ];
    let n = rng.random_range(0..8);
    (0..n)
        .map(|_| PIECES[rng.random_range(0..PIECES.len())])
        .collect()
}

fn q(s: &str) -> String {
    format!("'{}'", s.replace('\'', "''"))
}

fn bytes(d: Dialect, rng: &mut StdRng) -> String {
    let n = rng.random_range(0..24);
    let hex: String = (0..n)
        .map(|_| format!("{:02x}", rng.random::<u8>()))
        .collect();
    match d {
        Dialect::Sqlite => format!("X'{hex}'"),
        Dialect::Pg => format!("decode('{hex}', 'hex')"),
    }
}

fn float(d: Dialect, rng: &mut StdRng) -> String {
    match rng.random_range(0..10) {
        0 => match d {
            Dialect::Sqlite => "9e999".into(),
            Dialect::Pg => "'Infinity'::float8".into(),
        },
        1 => match d {
            Dialect::Sqlite => "-9e999".into(),
            Dialect::Pg => "'-Infinity'::float8".into(),
        },
        2 => match d {
            Dialect::Sqlite => "NULL".into(), // SQLite stores NaN as NULL
            Dialect::Pg => "'NaN'::float8".into(),
        },
        3 => "NULL".into(),
        4 => "-0.0".into(),
        _ => format!(
            "{:e}",
            rng.random::<f64>() * 10f64.powi(rng.random_range(-300..300))
        ),
    }
}

fn ts(d: Dialect, rng: &mut StdRng) -> String {
    let s = format!(
        "{:04}-{:02}-{:02} {:02}:{:02}:{:02}.{:06}+{:02}",
        rng.random_range(1..9999),
        rng.random_range(1..13),
        rng.random_range(1..29),
        rng.random_range(0..24),
        rng.random_range(0..60),
        rng.random_range(0..60),
        rng.random_range(0..1_000_000),
        rng.random_range(0..12)
    );
    match d {
        Dialect::Sqlite => q(&s),
        Dialect::Pg => format!("{}::timestamptz", q(&s)),
    }
}

fn json(d: Dialect, rng: &mut StdRng) -> String {
    let j = serde_json::json!({"k": text(rng), "n": rng.random::<i32>(), "a": [1.5, null, true]});
    match d {
        Dialect::Sqlite => q(&j.to_string()),
        Dialect::Pg => format!("{}::jsonb", q(&j.to_string())),
    }
}

fn uuid(d: Dialect, rng: &mut StdRng) -> String {
    let v: u128 = rng.random();
    let h = format!("{v:032x}");
    let s = format!(
        "{}-{}-{}-{}-{}",
        &h[..8],
        &h[8..12],
        &h[12..16],
        &h[16..20],
        &h[20..]
    );
    match d {
        Dialect::Sqlite => q(&s),
        Dialect::Pg => format!("{}::uuid", q(&s)),
    }
}

/// `NULL` one time in ten, else the value.
macro_rules! opt {
    ($rng:expr, $v:expr) => {{
        let v: String = $v;
        if $rng.random_bool(0.1) {
            "NULL".to_string()
        } else {
            v
        }
    }};
}

/// One row's `INSERT … ON CONFLICT DO NOTHING` for `table` with key `id` (for acl: entity id).
pub fn insert(d: Dialect, rng: &mut StdRng, table: &str, id: i64) -> String {
    match table {
        "users" => {
            let tags = match d {
                Dialect::Sqlite => q(&format!("[{:?}]", text(rng))),
                Dialect::Pg => format!("ARRAY[{}, NULL, {}]::text[]", q(&text(rng)), q("ü")),
            };
            let vals = [
                id.to_string(),
                q(&text(rng)),
                opt!(rng, q(&format!("{}@example.org", text(rng)))),
                opt!(
                    rng,
                    if rng.random_bool(0.5) {
                        "true"
                    } else {
                        "false"
                    }
                    .into()
                ),
                float(d, rng),
                opt!(rng, bytes(d, rng)),
                opt!(rng, ts(d, rng)),
                opt!(rng, json(d, rng)),
                opt!(rng, uuid(d, rng)),
                opt!(rng, tags),
            ];
            format!(
                "INSERT INTO users VALUES ({}) ON CONFLICT DO NOTHING;\n",
                vals.join(", ")
            )
        }
        "projects" => {
            let nums = match d {
                Dialect::Sqlite => q("[1,2]"),
                Dialect::Pg => format!("ARRAY[{}, NULL, -1]::integer[]", rng.random::<i32>()),
            };
            let budget = format!(
                "{}.{:06}",
                rng.random_range(-999_999_999_999i64..999_999_999_999),
                rng.random_range(0..1_000_000)
            );
            format!(
                "INSERT INTO projects SELECT {id}, (SELECT max(id) FROM users WHERE id <= {owner}), {}, {}, {} WHERE true ON CONFLICT DO NOTHING;\n",
                opt!(rng, q(&text(rng))),
                opt!(rng, budget),
                opt!(rng, nums),
                owner = rng.random_range(0..2000)
            )
        }
        "entities" => format!(
            "INSERT INTO entities SELECT {id}, (SELECT max(id) FROM projects WHERE id <= {p}), (SELECT id FROM entities WHERE id = {parent}), {}, {} WHERE true ON CONFLICT DO NOTHING;\n",
            q(&text(rng)),
            opt!(rng, bytes(d, rng)),
            p = rng.random_range(0..2000),
            parent = id - rng.random_range(1..50)
        ),
        "acl" => {
            const ACCESS: [&str; 4] = ["read", "write", "admin", "dürfen"];
            format!(
                "INSERT INTO acl SELECT id, {}, {} FROM entities WHERE id = {id} ON CONFLICT DO NOTHING;\n",
                rng.random_range(1..20),
                q(ACCESS[rng.random_range(0..4)])
            )
        }
        "events" => format!(
            "INSERT INTO events VALUES ({id}, {}, {}, {}, {}) ON CONFLICT DO NOTHING;\n",
            opt!(rng, ts(d, rng)),
            q(&text(rng)),
            opt!(rng, json(d, rng)),
            float(d, rng)
        ),
        other => panic!("unknown table {other}"),
    }
}

/// SQL that fills a fresh schema with about `n` rows in all.
pub fn fill(d: Dialect, seed: u64, n: usize) -> String {
    let mut rng = StdRng::seed_from_u64(seed);
    let mut sql = String::from("BEGIN;\n");
    let per = (n / 5).max(1) as i64;
    for id in 1..=per / 2 {
        sql += &insert(d, &mut rng, "users", id);
    }
    for id in 1..=per / 2 {
        sql += &insert(d, &mut rng, "projects", id);
    }
    for id in 1..=per {
        sql += &insert(d, &mut rng, "entities", id);
    }
    for _ in 0..per {
        let e = rng.random_range(1..=per);
        sql += &insert(d, &mut rng, "acl", e);
    }
    // Sparse keys: a dense cluster, then huge gaps, including negative keys.
    let mut id = -1_000_000_000_000i64;
    for i in 0..per {
        id += if i % 10 == 0 {
            rng.random_range(1..1_000_000_000_000)
        } else {
            rng.random_range(1..5)
        };
        sql += &insert(d, &mut rng, "events", id);
    }
    sql += "COMMIT;\n";
    sql
}

/// SQL for `ops` random inserts, updates of non-key columns and deletes over all tables.
pub fn mutate(d: Dialect, seed: u64, ops: usize, max_id: i64) -> String {
    let mut rng = StdRng::seed_from_u64(seed);
    let mut sql = String::from("BEGIN;\n");
    for _ in 0..ops {
        let table = TABLES[rng.random_range(0..TABLES.len())];
        let id = if table == "events" && rng.random_bool(0.3) {
            rng.random_range(-2_000_000_000_000i64..2_000_000_000_000)
        } else {
            rng.random_range(1..max_id * 2)
        };
        match rng.random_range(0..3) {
            0 => sql += &insert(d, &mut rng, table, id),
            1 => {
                let set = match table {
                    "users" => format!("name = {}", q(&text(&mut rng))),
                    "projects" => format!("title = {}", q(&text(&mut rng))),
                    "entities" => format!("body = {}", bytes(d, &mut rng)),
                    "acl" => format!("access = access || {}", q("+")),
                    _ => format!("ratio = {}", float(d, &mut rng)),
                };
                let key = if table == "acl" { "entity_id" } else { "id" };
                let target = if table == "events" {
                    format!("(SELECT min(id) FROM events WHERE id >= {id})")
                } else {
                    id.to_string()
                };
                sql += &format!("UPDATE {table} SET {set} WHERE {key} = {target};\n");
            }
            _ => {
                let key = if table == "acl" { "entity_id" } else { "id" };
                let target = if table == "events" {
                    format!("(SELECT max(id) FROM events WHERE id <= {id})")
                } else {
                    id.to_string()
                };
                sql += &format!("DELETE FROM {table} WHERE {key} = {target};\n");
            }
        }
    }
    sql += "COMMIT;\n";
    sql
}

/// Every row of every table of a SQLite file, rendered exactly and ordered by all columns.
pub fn sqlite_dump(path: &std::path::Path) -> Vec<(String, Vec<String>)> {
    let conn = rusqlite::Connection::open(path).unwrap();
    TABLES
        .iter()
        .map(|t| {
            let stmt = conn.prepare(&format!("SELECT * FROM {t}")).unwrap();
            let n = stmt.column_count();
            let order: Vec<String> = (1..=n).map(|i| i.to_string()).collect();
            let mut stmt = conn
                .prepare(&format!("SELECT * FROM {t} ORDER BY {}", order.join(", ")))
                .unwrap();
            let rows = stmt
                .query_map([], |r| {
                    let vals: Vec<String> = (0..n)
                        .map(|i| format!("{:?}", r.get::<_, rusqlite::types::Value>(i).unwrap()))
                        .collect();
                    Ok(vals.join("|"))
                })
                .unwrap()
                .collect::<Result<Vec<_>, _>>()
                .unwrap();
            (t.to_string(), rows)
        })
        .collect()
}

/// Asserts two dumps are equal, naming the first difference.
pub fn assert_same(a: &[(String, Vec<String>)], b: &[(String, Vec<String>)]) {
    for ((t, x), (_, y)) in a.iter().zip(b) {
        if x != y {
            let first = x
                .iter()
                .zip(y)
                .position(|(p, q)| p != q)
                .unwrap_or(x.len().min(y.len()));
            panic!(
                "table {t} differs: {} rows vs {} rows; first difference at row {first}: {:?} vs {:?}",
                x.len(),
                y.len(),
                x.get(first),
                y.get(first)
            );
        }
    }
}
