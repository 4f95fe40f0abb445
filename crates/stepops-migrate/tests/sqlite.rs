//! The engine over real SQLite files.

mod common;

use common::{Dialect, assert_same, fill, mutate, schema, sqlite_dump};
use std::path::{Path, PathBuf};
use stepops_error::{ErrorName, Named};
use stepops_migrate::{
    Chunk, Config, MigrateOptions, Migration, NoProgress, Plan, PlanOptions, copy_chunk, migrate,
    plan, verify,
};

fn url(p: &Path) -> String {
    format!("sqlite:{}", p.display())
}

fn create(path: &Path, sql: &str) {
    let conn = rusqlite::Connection::open(path).unwrap();
    conn.execute_batch(sql).unwrap();
}

fn exec(path: &Path, sql: &str) {
    let conn = rusqlite::Connection::open(path).unwrap();
    conn.execute_batch(sql).unwrap();
}

fn opts(chunk_rows: u64, jobs: usize) -> MigrateOptions {
    MigrateOptions {
        chunk_rows,
        jobs,
        ..MigrateOptions::default()
    }
}

fn pair(dir: &Path, rows: usize, seed: u64, dest_copy: bool) -> (PathBuf, PathBuf) {
    let src = dir.join("src.db");
    let dst = dir.join("dst.db");
    create(&src, schema(Dialect::Sqlite));
    exec(&src, &fill(Dialect::Sqlite, seed, rows));
    if dest_copy {
        std::fs::copy(&src, &dst).unwrap();
    } else {
        create(&dst, schema(Dialect::Sqlite));
    }
    (src, dst)
}

fn file_bytes(p: &Path) -> Vec<u8> {
    std::fs::read(p).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_randomised_divergence_converges_and_second_run_copies_nothing() {
    for seed in 1..=4u64 {
        let dir = tempfile::tempdir().unwrap();
        let dest_copy = seed % 2 == 0;
        let (src, dst) = pair(dir.path(), 2000, seed, dest_copy);
        exec(&src, &mutate(Dialect::Sqlite, seed * 100, 300, 400));
        exec(&dst, &mutate(Dialect::Sqlite, seed * 100 + 1, 300, 400));
        let chunk_rows = [7, 50, 333, 50_000][seed as usize - 1];
        let summary = migrate(
            &url(&src),
            &url(&dst),
            &Config::default(),
            &opts(chunk_rows, 1 + seed as usize % 3),
            &NoProgress,
        )
        .await
        .unwrap();
        assert!(
            summary.chunks > 0,
            "seed {seed}: diverged stacks need chunks"
        );
        assert_same(&sqlite_dump(&src), &sqlite_dump(&dst));

        let again = migrate(
            &url(&src),
            &url(&dst),
            &Config::default(),
            &opts(chunk_rows, 2),
            &NoProgress,
        )
        .await
        .unwrap();
        assert_eq!(again.chunks, 0, "seed {seed}: a second run copies nothing");
        assert_eq!(again.rows_copied, 0);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_update_of_a_non_key_column_is_found() {
    let dir = tempfile::tempdir().unwrap();
    let (src, dst) = pair(dir.path(), 3000, 7, true);
    exec(
        &src,
        "UPDATE entities SET name = name || 'x' WHERE id = 333",
    );
    let p = plan(
        &url(&src),
        &url(&dst),
        &Config::default(),
        &PlanOptions::default(),
    )
    .await
    .unwrap();
    assert_eq!(p.differing_tables(), ["entities"]);
    assert_eq!(p.chunks.len(), 1);
    let c = &p.chunks[0];
    assert!(c.min <= 333 && 333 <= c.max);
    assert!(
        c.estimated_rows <= 200,
        "fine bins keep a one-row change small: {c:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_steps_run_on_their_own_from_a_manifest() {
    let dir = tempfile::tempdir().unwrap();
    let (src, dst) = pair(dir.path(), 1500, 11, false);
    let (s, d) = (url(&src), url(&dst));
    let cfg = Config::default();
    let p = plan(
        &s,
        &d,
        &cfg,
        &PlanOptions {
            chunk_rows: 40,
            round: 1,
            ..Default::default()
        },
    )
    .await
    .unwrap();
    assert!(p.chunks.len() > 10);
    let out = serde_json::to_value(p.output()).unwrap();
    assert_eq!(out["chunks"], p.chunks.len());
    assert_eq!(out["inSync"], false);
    assert_eq!(out["estimatedRows"], p.estimated_rows());
    assert_eq!(out["tables"].as_array().unwrap().len(), 5);
    let manifest = p.to_manifest();
    assert_eq!(manifest.lines().count(), p.chunks.len());
    let chunks = Plan::chunks_from_manifest(&manifest).unwrap();
    assert_eq!(chunks, p.chunks);
    // Parents first: every table's chunks come after its parents'.
    let order: Vec<&str> = chunks.iter().map(|c| c.table.as_str()).collect();
    let first = |t: &str| order.iter().position(|x| *x == t).unwrap();
    assert!(first("users") < first("projects") && first("projects") < first("entities"));
    assert!(first("entities") < first("acl"));
    // Chunks stay near the target, for dense (users) and sparse (events) keys alike.
    for c in chunks.iter().filter(|c| c.table != "acl") {
        assert!(c.estimated_rows <= 40, "{c:?}");
    }
    assert!(chunks.iter().filter(|c| c.table == "users").count() >= 150 / 40);
    let not_yet = verify(&s, &d, &cfg, 1, 3, None).await.unwrap();
    assert!(!not_yet.converged);
    // Copy twice each (idempotence), via JSON, each on a fresh connection.
    for line in manifest.lines() {
        let chunk: Chunk = serde_json::from_str(line).unwrap();
        let a = copy_chunk(&s, &d, &cfg, &chunk).await.unwrap();
        let b = copy_chunk(&s, &d, &cfg, &chunk).await.unwrap();
        assert_eq!(a.rows_inserted, b.rows_inserted);
        assert_eq!(b.rows_deleted, b.rows_inserted);
    }
    let done = verify(&s, &d, &cfg, 1, 3, None).await.unwrap();
    assert!(done.converged, "{done:?}");
    assert_same(&sqlite_dump(&src), &sqlite_dump(&dst));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_not_converged_names_the_tables() {
    let dir = tempfile::tempdir().unwrap();
    let (src, dst) = pair(dir.path(), 500, 3, true);
    exec(&dst, "DELETE FROM events");
    let err = verify(&url(&src), &url(&dst), &Config::default(), 2, 2, None)
        .await
        .unwrap_err();
    assert_eq!(err.error_name(), ErrorName::NotConverged);
    assert!(err.to_string().contains("events"), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_values_round_trip_exactly() {
    let dir = tempfile::tempdir().unwrap();
    let src = dir.path().join("s.db");
    let dst = dir.path().join("d.db");
    let ddl = "CREATE TABLE v (id INTEGER PRIMARY KEY, t TEXT, b BLOB, r REAL, n NUMERIC, i INTEGER, any_col);";
    create(&src, ddl);
    create(&dst, ddl);
    exec(
        &src,
        "INSERT INTO v VALUES
         (-9223372036854775808, NULL, NULL, NULL, NULL, NULL, NULL),
         (0, '', X'', 0.0, 0, 0, ''),
         (1, 'Zoë 日本語 🦀 e\u{301} مرحبا '' \" \\ ' || char(10) || char(0) || 'after-nul', X'00FF10', 9e999, '12345678901234567890.123456789', 9223372036854775807, X'01'),
         (2, 'x', X'DEADBEEF', -9e999, 1.5, -1, 3.25),
         (3, 'y', NULL, -0.0, 'not a number', NULL, 7),
         (9223372036854775807, 'max', NULL, 5e-324, NULL, NULL, NULL);",
    );
    let cfg = Config::default();
    let summary = migrate(&url(&src), &url(&dst), &cfg, &opts(2, 2), &NoProgress)
        .await
        .unwrap();
    assert!(summary.rows_copied >= 6);
    let dump = |p: &Path| {
        let c = rusqlite::Connection::open(p).unwrap();
        let mut s = c
            .prepare("SELECT id, t, b, r, n, i, any_col, typeof(n), typeof(any_col), hex(t) FROM v ORDER BY id")
            .unwrap();
        s.query_map([], |r| {
            Ok((0..10)
                .map(|i| format!("{:?}", r.get::<_, rusqlite::types::Value>(i).unwrap()))
                .collect::<Vec<_>>())
        })
        .unwrap()
        .collect::<Result<Vec<_>, _>>()
        .unwrap()
    };
    assert_eq!(dump(&src), dump(&dst));
    assert_eq!(dump(&dst).len(), 6);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_bad_inputs_give_named_errors_and_write_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let (src, dst) = pair(dir.path(), 200, 5, false);
    let before = file_bytes(&dst);
    let cfg = Config::default();
    let o = opts(100, 2);
    let run = |s: String, d: String, c: Config| {
        let o = o.clone();
        async move { migrate(&s, &d, &c, &o, &NoProgress).await.unwrap_err() }
    };

    let missing = dir.path().join("nope.db");
    let e = run(url(&missing), url(&dst), cfg.clone()).await;
    assert_eq!(e.error_name(), ErrorName::NotFound, "{e}");

    let e = run(
        url(&src),
        "postgres://u:hunter2@127.0.0.1:1/x".into(),
        cfg.clone(),
    )
    .await;
    assert_eq!(e.error_name(), ErrorName::InvalidInput, "{e}");
    assert!(e.to_string().contains("same engine"), "{e}");
    assert!(!e.to_string().contains("hunter2"), "{e}");

    let e = run("mysql://x".into(), url(&dst), cfg.clone()).await;
    assert_eq!(e.error_name(), ErrorName::InvalidInput, "{e}");

    let e = run(url(&src), url(&src), cfg.clone()).await;
    assert_eq!(e.error_name(), ErrorName::InvalidInput, "{e}");

    // A table missing on the destination.
    exec(
        &src,
        "CREATE TABLE extra (id INTEGER PRIMARY KEY, v TEXT); INSERT INTO extra VALUES (1, 'a');",
    );
    let e = run(url(&src), url(&dst), cfg.clone()).await;
    assert_eq!(e.error_name(), ErrorName::SchemaMismatch, "{e}");
    assert!(e.to_string().contains("extra is missing"), "{e}");
    exec(&src, "DROP TABLE extra");

    // Different column types.
    exec(&src, "CREATE TABLE typed (id INTEGER PRIMARY KEY, v TEXT)");
    exec(&dst, "CREATE TABLE typed (id INTEGER PRIMARY KEY, v BLOB)");
    let e = run(url(&src), url(&dst), cfg.clone()).await;
    assert_eq!(e.error_name(), ErrorName::SchemaMismatch, "{e}");
    assert!(
        e.to_string().contains("v is TEXT on the source but BLOB"),
        "{e}"
    );
    exec(&src, "DROP TABLE typed");
    exec(&dst, "DROP TABLE typed");

    // A rangeKey of a type without an order, then a pattern that matches nothing.
    exec(&src, "CREATE TABLE tags (name TEXT PRIMARY KEY)");
    exec(&dst, "CREATE TABLE tags (name TEXT PRIMARY KEY)");
    let before_tags = file_bytes(&dst);
    let e = run(
        url(&src),
        url(&dst),
        Config::from_yaml("tables: {tags: {rangeKey: nope}}").unwrap(),
    )
    .await;
    assert_eq!(e.error_name(), ErrorName::InvalidInput, "{e}");
    assert!(
        e.to_string().contains("tags: the configured rangeKey nope"),
        "{e}"
    );
    assert_eq!(file_bytes(&dst), before_tags, "nothing written");
    let excl = Config::from_yaml("exclude: [tags]").unwrap();
    let e = run(
        url(&src),
        url(&dst),
        Config::from_yaml("include: [ghost]").unwrap(),
    )
    .await;
    assert_eq!(e.error_name(), ErrorName::InvalidInput, "{e}");
    exec(&src, "DROP TABLE tags");
    exec(&dst, "DROP TABLE tags");
    assert_ne!(
        file_bytes(&dst),
        before,
        "(the test itself changed the file)"
    );
    let before = file_bytes(&dst);

    // Not a database at all.
    let junk = dir.path().join("junk.db");
    std::fs::write(
        &junk,
        "this is not a database, just some text long enough to be a header",
    )
    .unwrap();
    let e = run(url(&src), url(&junk), cfg.clone()).await;
    assert_eq!(e.error_name(), ErrorName::InvalidInput, "{e}");
    assert_eq!(file_bytes(&dst), before);

    // And with all of that fixed, it works.
    migrate(&url(&src), &url(&dst), &excl, &o, &NoProgress)
        .await
        .unwrap();
    assert_same(&sqlite_dump(&src), &sqlite_dump(&dst));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_config_range_key_and_include() {
    let dir = tempfile::tempdir().unwrap();
    let (src, dst) = pair(dir.path(), 500, 9, false);
    let cfg = Config::from_yaml(
        "include: [users, entities, acl]\ntables:\n  acl:\n    range_key: principal_id\n",
    )
    .unwrap();
    let m = Migration::open(&url(&src), &url(&dst), &cfg).await.unwrap();
    let names: Vec<_> = m
        .tables()
        .iter()
        .map(|t| (t.name.as_str(), t.range_key.as_str()))
        .collect();
    // users and entities are unrelated once projects is left out: ties go by name.
    assert_eq!(
        names,
        [("entities", "id"), ("acl", "principal_id"), ("users", "id")]
    );
    m.run(&opts(30, 2), &NoProgress).await.unwrap();
    let count = |p: &Path, t: &str| -> i64 {
        rusqlite::Connection::open(p)
            .unwrap()
            .query_row(&format!("SELECT count(*) FROM {t}"), [], |r| r.get(0))
            .unwrap()
    };
    assert_eq!(count(&dst, "acl"), count(&src, "acl"));
    assert_eq!(count(&dst, "projects"), 0, "not included");
}

/// Crash safety: a child process (this test binary, re-executed) copies one large chunk and is
/// killed with SIGKILL mid-transaction; the destination is either untouched or complete, never
/// partial, and a re-run converges.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_kill_mid_chunk_then_rerun_converges() {
    let dir = tempfile::tempdir().unwrap();
    let src = dir.path().join("src.db");
    let dst = dir.path().join("dst.db");
    let ddl = "CREATE TABLE big (id INTEGER PRIMARY KEY, v TEXT, w BLOB);";
    create(&src, ddl);
    create(&dst, ddl);
    exec(
        &src,
        "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 400000)
         INSERT INTO big SELECT i, 'row ' || i || ' ' || hex(randomblob(20)), randomblob(64) FROM n;",
    );
    exec(
        &dst,
        "INSERT INTO big VALUES (5, 'old', NULL), (999999, 'gone', NULL)",
    );
    let before = sqlite_dump_big(&dst);
    let mut killed_mid_transaction = false;
    for delay_ms in [150u64, 60, 300, 30, 500, 10] {
        let mut child = std::process::Command::new(std::env::current_exe().unwrap())
            .args(["--ignored", "--exact", "crash_child", "--nocapture"])
            .env("STEPOPS_CRASH_SRC", url(&src))
            .env("STEPOPS_CRASH_DST", url(&dst))
            .stdout(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        let mut out = std::io::BufReader::new(child.stdout.take().unwrap());
        let mut line = String::new();
        loop {
            line.clear();
            assert!(
                std::io::BufRead::read_line(&mut out, &mut line).unwrap() > 0,
                "child ended early"
            );
            if line.contains("COPYING") {
                break;
            }
        }
        std::thread::sleep(std::time::Duration::from_millis(delay_ms));
        let hot_journal = dir.path().join("dst.db-journal").exists();
        child.kill().unwrap();
        let status = child.wait().unwrap();
        let after = sqlite_dump_big(&dst);
        assert!(
            after == before || after == sqlite_dump_big(&src),
            "destination must be either untouched or complete, got {} rows",
            after.len()
        );
        if hot_journal && !status.success() && after == before {
            killed_mid_transaction = true;
            break;
        }
    }
    assert!(
        killed_mid_transaction,
        "never managed to kill the child mid-transaction"
    );
    let s = migrate(
        &url(&src),
        &url(&dst),
        &Config::default(),
        &opts(1_000_000, 1),
        &NoProgress,
    )
    .await
    .unwrap();
    assert_eq!(s.chunks, 1);
    assert_eq!(sqlite_dump_big(&dst), sqlite_dump_big(&src));
}

fn sqlite_dump_big(p: &Path) -> Vec<(i64, String, Option<Vec<u8>>)> {
    let c = rusqlite::Connection::open(p).unwrap();
    let mut s = c.prepare("SELECT id, v, w FROM big ORDER BY id").unwrap();
    s.query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap()
}

/// The child half of [`sqlite_kill_mid_chunk_then_rerun_converges`] (run only by it).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "helper process for sqlite_kill_mid_chunk_then_rerun_converges"]
async fn crash_child() {
    let src = std::env::var("STEPOPS_CRASH_SRC").expect("run by the crash test only");
    let dst = std::env::var("STEPOPS_CRASH_DST").unwrap();
    let m = Migration::open(&src, &dst, &Config::default())
        .await
        .unwrap();
    let p = m
        .plan(&PlanOptions {
            chunk_rows: 1_000_000,
            round: 1,
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(p.chunks.len(), 1);
    println!("COPYING");
    m.copy_chunk(&p.chunks[0]).await.unwrap();
    println!("DONE");
}

/// A child table keyed by its parent id (not unique): refinement narrows ranges over that key
/// but never splits one key's rows, even when one key holds far more rows than a leaf; the
/// differing keys' rows are copied whole, the rest not at all; manifest lines with `ranges`
/// round-trip and each chunk copies idempotently on its own.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_refinement_never_splits_a_range_key_value() {
    let dir = tempfile::tempdir().unwrap();
    let (src, dst) = (dir.path().join("src.db"), dir.path().join("dst.db"));
    let ddl = "CREATE TABLE parent (id INTEGER PRIMARY KEY, name TEXT);
        CREATE TABLE child (parent_id INTEGER NOT NULL REFERENCES parent(id), n INTEGER NOT NULL,
          v TEXT, PRIMARY KEY (parent_id, n));";
    create(&src, ddl);
    create(&dst, ddl);
    // 2,000 parents with 5 children each, parent 700 with 600 children.
    let mut fill = String::from("BEGIN;");
    for p in 1..=2_000 {
        fill.push_str(&format!("INSERT INTO parent VALUES ({p}, 'p{p}');"));
        for n in 0..if p == 700 { 600 } else { 5 } {
            fill.push_str(&format!("INSERT INTO child VALUES ({p}, {n}, 'v{p}.{n}');"));
        }
    }
    fill.push_str("COMMIT;");
    exec(&src, &fill);
    exec(&dst, &fill);
    // One row of the big group, one row of a small one, and a row only the destination has.
    exec(
        &src,
        "UPDATE child SET v = 'changed' WHERE parent_id = 700 AND n = 599;
         UPDATE child SET v = 'changed' WHERE parent_id = 1500 AND n = 2;",
    );
    exec(&dst, "INSERT INTO child VALUES (1800, 99, 'extra');");
    let (s, d) = (url(&src), url(&dst));
    let cfg = Config::default();
    let p = plan(&s, &d, &cfg, &PlanOptions::default()).await.unwrap();
    let child: Vec<&Chunk> = p.chunks.iter().filter(|c| c.table == "child").collect();
    assert_eq!(child.len(), 1, "{:?}", p.chunks);
    let ranges = child[0].key_ranges();
    for key in [700, 1500, 1800] {
        assert!(
            ranges.iter().any(|&(lo, hi)| lo <= key && key <= hi),
            "key {key} not covered by {ranges:?}"
        );
    }
    // Few keys besides the three differing ones: the big group stays whole, not its bin.
    let keys: i64 = ranges.iter().map(|(lo, hi)| hi - lo + 1).sum();
    assert!(keys <= 3 * 16, "{ranges:?}");
    let manifest = p.to_manifest();
    assert!(manifest.contains("\"ranges\""), "{manifest}");
    for chunk in Plan::chunks_from_manifest(&manifest).unwrap() {
        let a = copy_chunk(&s, &d, &cfg, &chunk).await.unwrap();
        let b = copy_chunk(&s, &d, &cfg, &chunk).await.unwrap();
        assert_eq!(a.rows_inserted, b.rows_inserted);
        if chunk.table == "child" {
            // Parent 700's 600 rows move together; far fewer than the table's 10,595.
            assert!(a.rows_inserted >= 600 && a.rows_inserted < 1_000, "{a:?}");
        }
    }
    assert!(verify(&s, &d, &cfg, 1, 3, None).await.unwrap().converged);
    let dump = |p: &Path| {
        let c = rusqlite::Connection::open(p).unwrap();
        c.prepare("SELECT parent_id, n, v FROM child ORDER BY 1, 2")
            .unwrap()
            .query_map([], |r| {
                Ok((
                    r.get::<_, i64>(0)?,
                    r.get::<_, i64>(1)?,
                    r.get::<_, String>(2)?,
                ))
            })
            .unwrap()
            .collect::<rusqlite::Result<Vec<_>>>()
            .unwrap()
    };
    assert_eq!(dump(&src), dump(&dst));
    // A chunk whose ranges overlap is refused before anything is written.
    let bad = Chunk {
        table: "child".into(),
        min: 1,
        max: 10,
        estimated_rows: 1,
        ranges: vec![[1, 5], [5, 10]],
        keys: Vec::new(),
        whole_table: false,
    };
    let e = copy_chunk(&s, &d, &cfg, &bad).await.unwrap_err();
    assert_eq!(e.error_name(), ErrorName::InvalidInput);
}

/// A child table cut by a range key that is not part of its primary key, and a unique name:
/// rows that moved between ranges collide with the destination's copies in another chunk.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_rows_moving_between_ranges_on_unique_keys() {
    let dir = tempfile::tempdir().unwrap();
    let (src, dst) = (dir.path().join("s.db"), dir.path().join("d.db"));
    let schema = "CREATE TABLE parent (id INTEGER PRIMARY KEY, name TEXT UNIQUE);
        CREATE TABLE child (id INTEGER PRIMARY KEY, parent_id INTEGER NOT NULL, note TEXT);
        CREATE INDEX child_parent ON child (parent_id);";
    create(&src, schema);
    create(&dst, schema);
    exec(
        &src,
        "WITH RECURSIVE g(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM g WHERE x < 1000)
         INSERT INTO child SELECT x, 1 + x % 100, 'c' || x FROM g;
         WITH RECURSIVE g(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM g WHERE x < 100)
         INSERT INTO parent SELECT x, 'p' || x FROM g;",
    );
    let cfg = Config::from_yaml("tables: {child: {rangeKey: parent_id}}").unwrap();
    migrate(&url(&src), &url(&dst), &cfg, &opts(20, 1), &NoProgress)
        .await
        .unwrap();
    exec(
        &src,
        "UPDATE child SET parent_id = 90 WHERE parent_id = 2;
         UPDATE child SET parent_id = 3 WHERE id IN (89, 189);
         UPDATE parent SET name = 'tmp' WHERE id = 1; UPDATE parent SET name = 'p1' WHERE id = 99;
         UPDATE parent SET name = 'p99' WHERE id = 1;",
    );
    for jobs in [1, 3] {
        migrate(&url(&src), &url(&dst), &cfg, &opts(20, jobs), &NoProgress)
            .await
            .unwrap_or_else(|e| panic!("jobs {jobs}: {e}"));
        let rows = |p: &Path| {
            let c = rusqlite::Connection::open(p).unwrap();
            let mut out = Vec::new();
            for sql in [
                "SELECT id || ':' || name FROM parent ORDER BY id",
                "SELECT id || ':' || parent_id || ':' || note FROM child ORDER BY id",
            ] {
                let mut st = c.prepare(sql).unwrap();
                let v: Vec<String> = st
                    .query_map([], |r| r.get(0))
                    .unwrap()
                    .map(|r| r.unwrap())
                    .collect();
                out.push(v);
            }
            out
        };
        assert_eq!(rows(&src), rows(&dst), "jobs {jobs}");
        exec(
            &src,
            "UPDATE child SET parent_id = 1 + (parent_id + 37) % 100 WHERE id % 7 = 0",
        );
    }
}

/// A range key that allows NULL is refused before anything is read or written: rows whose key
/// is NULL (here on both sides) would be in no range, never compared nor copied, and the run
/// would report converged.
#[tokio::test]
async fn sqlite_nullable_range_key_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let (src, dst) = (dir.path().join("s.db"), dir.path().join("d.db"));
    let ddl = "CREATE TABLE notes(id INTEGER, body TEXT);";
    create(&src, ddl);
    create(&dst, ddl);
    exec(
        &src,
        "INSERT INTO notes VALUES (1, 'a'), (NULL, 'only on the source');",
    );
    exec(
        &dst,
        "INSERT INTO notes VALUES (NULL, 'only on the destination');",
    );
    let rows = |p: &Path| -> Vec<String> {
        let c = rusqlite::Connection::open(p).unwrap();
        let mut st = c
            .prepare("SELECT quote(id) || ',' || quote(body) FROM notes ORDER BY 1")
            .unwrap();
        st.query_map([], |r| r.get(0))
            .unwrap()
            .map(Result::unwrap)
            .collect()
    };
    let before = rows(&dst);
    let config = Config::from_yaml("tables: {notes: {rangeKey: id}}").unwrap();
    let e = migrate(&url(&src), &url(&dst), &config, &opts(10, 1), &NoProgress)
        .await
        .unwrap_err();
    assert_eq!(e.error_name(), ErrorName::SchemaMismatch, "{e}");
    assert!(e.to_string().contains("range key id allows NULL"), "{e}");
    assert_eq!(rows(&dst), before, "nothing written");
}

/// A copy killed with SIGKILL in the middle of its transaction leaves a hot journal
/// (`dst.db-journal`), which a read-only connection may not roll back
/// (`SQLITE_READONLY_ROLLBACK`). A child process (this test binary, re-executed) opens a write
/// transaction on the destination, rewrites half of it with a tiny page cache (so the file
/// itself is already half-written), says so and is killed. Then schema discovery (read-only
/// opens), the plan and the copy all succeed: the interrupted transaction is rolled back first,
/// and the destination ends equal to the source.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_hot_journal_of_a_killed_writer_is_rolled_back_not_refused() {
    let dir = tempfile::tempdir().unwrap();
    let src = dir.path().join("src.db");
    let dst = dir.path().join("dst.db");
    let ddl = "CREATE TABLE big (id INTEGER PRIMARY KEY, v TEXT, w BLOB);";
    create(&src, ddl);
    exec(
        &src,
        "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 20000)
         INSERT INTO big SELECT i, 'row ' || i, randomblob(200) FROM n;",
    );
    std::fs::copy(&src, &dst).unwrap();
    exec(&dst, "DELETE FROM big WHERE id % 7 = 0");
    let before = sqlite_dump_big(&dst);

    let mut child = std::process::Command::new(std::env::current_exe().unwrap())
        .args(["--ignored", "--exact", "hot_journal_child", "--nocapture"])
        .env("STEPOPS_HOT_JOURNAL_DB", &dst)
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut out = std::io::BufReader::new(child.stdout.take().unwrap());
    let mut line = String::new();
    while !line.contains("IN_TRANSACTION") {
        line.clear();
        assert!(
            std::io::BufRead::read_line(&mut out, &mut line).unwrap() > 0,
            "the child ended before holding its transaction"
        );
    }
    child.kill().unwrap(); // SIGKILL
    assert!(!child.wait().unwrap().success());
    let journal = dir.path().join("dst.db-journal");
    assert!(
        std::fs::metadata(&journal).is_ok_and(|m| m.len() > 0),
        "the killed writer left no hot journal"
    );
    // What a read-only connection gets from it (what schema discovery used to fail on).
    let ro =
        rusqlite::Connection::open_with_flags(&dst, rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY)
            .unwrap();
    let refused = ro
        .query_row("SELECT count(*) FROM big", [], |r| r.get::<_, i64>(0))
        .unwrap_err();
    assert_eq!(
        refused.sqlite_error().map(|e| e.extended_code),
        Some(rusqlite::ffi::SQLITE_READONLY_ROLLBACK),
        "{refused}"
    );
    drop(ro);

    // Schema discovery (both sides read-only) rolls the interrupted transaction back.
    let m = Migration::open(&url(&src), &url(&dst), &Config::default())
        .await
        .unwrap();
    assert!(!journal.exists(), "the hot journal was not rolled back");
    assert_eq!(
        sqlite_dump_big(&dst),
        before,
        "the rollback restored the last commit"
    );
    let p = m
        .plan(&PlanOptions {
            chunk_rows: 1_000_000,
            round: 1,
            ..Default::default()
        })
        .await
        .unwrap();
    for chunk in &p.chunks {
        copy_chunk(&url(&src), &url(&dst), &Config::default(), chunk)
            .await
            .unwrap();
    }
    assert_eq!(sqlite_dump_big(&dst), sqlite_dump_big(&src));
}

/// The child half of [`sqlite_hot_journal_of_a_killed_writer_is_rolled_back_not_refused`]:
/// holds a half-written write transaction until it is killed.
#[test]
#[ignore = "helper process for sqlite_hot_journal_of_a_killed_writer_is_rolled_back_not_refused"]
fn hot_journal_child() {
    let db = std::env::var("STEPOPS_HOT_JOURNAL_DB").expect("run by the hot-journal test only");
    let conn = rusqlite::Connection::open(db).unwrap();
    conn.execute_batch(
        "PRAGMA cache_size = 8; BEGIN IMMEDIATE; UPDATE big SET v = 'half-written' WHERE id % 2 = 0;",
    )
    .unwrap();
    println!("IN_TRANSACTION");
    std::thread::sleep(std::time::Duration::from_secs(600));
}
