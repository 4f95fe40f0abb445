//! Verifying only what was copied, over real PostgreSQL and SQLite: after the copies, only the
//! copied key ranges are compared again when the source was not written since the plan, in
//! cut-over mode (`cutOver: true`) and in an untracked run alike. Each single-row change (first,
//! middle and last bin, a key moved between bins, a row deleted and inserted again) is found by
//! the first comparison and converges with one comparison of the whole tables; a source
//! written during the run fails `Stepops.Conflict` in cut-over mode and is compared in full
//! otherwise. Equality is checked by reading every row in key order on both sides, never with
//! stepops' own checksums.

use std::path::Path;

use stepops_error::{ErrorName, Named};
use stepops_migrate::{Config, MigrateOptions, Migration, NoProgress, PlanOptions};
use stepops_testkit::PgServer;
use tokio_postgres::NoTls;

const ROWS: i64 = 200_000;

/// The changes, each applied alone on a source equal to its destination: (what, SQL, rows
/// that differ). A row deleted and inserted again with the same values leaves the
/// tables equal: nothing may be copied.
const CHANGES: [(&str, &str, u64); 5] = [
    ("first bin", "UPDATE t SET a = a + 1 WHERE id = 1", 1),
    (
        "middle bin",
        "UPDATE t SET b = b || 'x' WHERE id = 100000",
        1,
    ),
    ("last bin", "UPDATE t SET a = a + 7 WHERE id = 200000", 1),
    (
        "key moved between bins",
        "UPDATE t SET id = 250001 WHERE id = 50001",
        1,
    ),
    (
        "deleted and inserted again with the same values",
        "DELETE FROM t WHERE id = 7; INSERT INTO t (id, a, b) VALUES (7, 7 * 31 % 1000, 'row-7')",
        0,
    ),
];

/// Cut-over mode; every write of these tests reaches the statistics before the test goes on
/// ([`pg_exec`]), so a second is enough to wait for other transactions' counts.
fn cut_over() -> Config {
    Config {
        cut_over: Some(true),
        cut_over_settle_seconds: Some(1),
        ..Config::default()
    }
}

/// An untracked run without cutOver (the stamp is checked without waiting).
fn untracked() -> Config {
    Config::default()
}

fn opts() -> MigrateOptions {
    MigrateOptions {
        chunk_rows: 5_000,
        jobs: 2,
        ..MigrateOptions::default()
    }
}

/// Runs `sql` in a fresh session whose write statistics reach the server's before this
/// returns (the server flushes them before it answers, as it was told to).
async fn pg_exec(url: &str, sql: &str) {
    let (c, conn) = tokio_postgres::connect(url, NoTls).await.unwrap();
    let conn = tokio::spawn(conn);
    c.batch_execute(&format!("SELECT pg_stat_force_next_flush(); {sql}"))
        .await
        .unwrap();
    drop(c);
    let _ = conn.await;
}

/// Every row, read in key order; the session is closed before this returns (an untracked
/// run's check would take a session still open for a possible writer).
async fn pg_rows(url: &str) -> String {
    let (c, conn) = tokio_postgres::connect(url, NoTls).await.unwrap();
    let conn = tokio::spawn(conn);
    let row = c
        .query_one(
            "SELECT count(*)::text || ':' || md5(string_agg(t::text, ',' ORDER BY id)) FROM t",
            &[],
        )
        .await
        .unwrap();
    drop(c);
    let _ = conn.await;
    row.get(0)
}

const PG_FILL: &str = "CREATE TABLE t (id bigint PRIMARY KEY, a int NOT NULL, b text);
     INSERT INTO t SELECT g, g * 31 % 1000, 'row-' || g FROM generate_series(1, 200000) g;";

/// Both ways of verifying only the copied ranges: cut-over mode, and an untracked run.
fn modes() -> [(&'static str, Config); 2] {
    [("cutOver", cut_over()), ("untracked", untracked())]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pg_finds_every_single_row_change_and_converges_comparing_only_the_copies() {
    let pg = PgServer::start().unwrap_or_else(|e| panic!("cannot start PostgreSQL: {e}"));
    for (mode, config) in modes() {
        let src = pg.create_database(&format!("src_{mode}")).unwrap();
        let dst = pg.create_database(&format!("dst_{mode}")).unwrap();
        pg_exec(&src, PG_FILL).await;
        pg_exec(&dst, PG_FILL).await;
        for (what, sql, rows) in CHANGES {
            pg_exec(&src, sql).await;
            let differs = pg_rows(&src).await != pg_rows(&dst).await;
            assert_eq!(differs, rows > 0, "{mode}, {what}: the tables differ");
            let m = Migration::open(&src, &dst, &config).await.unwrap();
            let plan = m.plan(&PlanOptions::default()).await.unwrap();
            for chunk in &plan.chunks {
                m.copy_chunk(chunk).await.unwrap();
            }
            let (again, copied_only) = m.compare_after_copies(&plan, 5_000).await.unwrap();
            assert!(again.in_sync(), "{mode}, {what}: {again:?}");
            assert!(copied_only, "{mode}, {what}: the source stayed quiet");
            assert_eq!(
                pg_rows(&src).await,
                pg_rows(&dst).await,
                "{mode}, {what}: converged"
            );
            // Differing bins are refined down to a few rows (the engine's leaf size), not to one.
            let copied = plan.estimated_rows();
            assert!(
                copied >= rows && copied <= 128 * rows,
                "{mode}, {what}: only the changed row's neighbourhood moves: {plan:?}"
            );
        }
    }
}

/// An untracked run whose source is written while it copies: the verification compares both
/// sides in full and finds the new change (cut-over mode would fail, below), and the whole
/// loop converges.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pg_untracked_run_with_a_source_written_meanwhile_compares_in_full() {
    let pg = PgServer::start().unwrap_or_else(|e| panic!("cannot start PostgreSQL: {e}"));
    let src = pg.create_database("src").unwrap();
    let dst = pg.create_database("dst").unwrap();
    pg_exec(&src, PG_FILL).await;
    pg_exec(&dst, PG_FILL).await;
    pg_exec(&src, "UPDATE t SET a = 0 WHERE id = 3").await;
    let m = Migration::open(&src, &dst, &untracked()).await.unwrap();
    let plan = m.plan(&PlanOptions::default()).await.unwrap();
    assert!(
        plan.source_stamp.is_some(),
        "an untracked plan records the stamp"
    );
    for chunk in &plan.chunks {
        m.copy_chunk(chunk).await.unwrap();
    }
    pg_exec(&src, "UPDATE t SET a = 1 WHERE id = 150000").await;
    let (again, copied_only) = m.compare_after_copies(&plan, 5_000).await.unwrap();
    assert!(!copied_only, "a written source is compared in full");
    assert_eq!(again.tables[0].source.count, ROWS as u64, "{again:?}");
    assert!(
        again
            .chunks
            .iter()
            .any(|c| c.min <= 150_000 && 150_000 <= c.max),
        "the write made after the plan is found: {again:?}"
    );
    let summary = m.run(&opts(), &NoProgress).await.unwrap();
    assert_eq!(summary.rounds, 1, "{summary:?}");
    assert_eq!(pg_rows(&src).await, pg_rows(&dst).await);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pg_cut_over_compares_only_the_copied_ranges_and_refuses_a_written_source() {
    let pg = PgServer::start().unwrap_or_else(|e| panic!("cannot start PostgreSQL: {e}"));
    let src = pg.create_database("src").unwrap();
    let dst = pg.create_database("dst").unwrap();
    pg_exec(&src, PG_FILL).await;
    pg_exec(&dst, PG_FILL).await;
    pg_exec(&src, "UPDATE t SET a = 0 WHERE id IN (3, 90000)").await;
    let m = Migration::open(&src, &dst, &cut_over()).await.unwrap();
    let plan = m.plan(&PlanOptions::default()).await.unwrap();
    assert!(plan.source_stamp.is_some());
    let copied = plan.estimated_rows();
    assert!((2..=256).contains(&copied), "{copied}");
    for chunk in &plan.chunks {
        m.copy_chunk(chunk).await.unwrap();
    }
    let again = m.compare_copied(&plan, 5_000).await.unwrap();
    assert!(again.in_sync(), "{again:?}");
    // Only the copied keys were compared: as many keys as rows copied, no row statistics.
    assert_eq!(again.tables.len(), 1);
    assert_eq!(again.tables[0].changed_keys, Some(copied));
    assert_eq!(again.tables[0].source.count, 0);

    // The source is written after the plan: the copies cannot prove anything.
    let plan = m.plan(&PlanOptions::default()).await.unwrap();
    pg_exec(&src, "UPDATE t SET a = 1 WHERE id = 123456").await;
    let err = m.compare_copied(&plan, 5_000).await.unwrap_err();
    assert_eq!(err.error_name(), ErrorName::Conflict, "{err}");
    assert!(err.to_string().contains("without cutOver"), "{err}");

    // A TRUNCATE counts no deleted rows, but gives the table new files: seen too.
    pg_exec(&dst, "TRUNCATE t").await;
    let m = Migration::open(&dst, &src, &cut_over()).await.unwrap();
    let plan = m.plan(&PlanOptions::default()).await.unwrap();
    pg_exec(&dst, "TRUNCATE t").await;
    let err = m.compare_copied(&plan, 5_000).await.unwrap_err();
    assert_eq!(err.error_name(), ErrorName::Conflict, "{err}");
}

/// A writer's row counts reach the statistics after its commit (PostgreSQL defers them when
/// the session reported less than a second before): the check waits for them when the
/// server's transaction id moved, or a transaction was running at the plan, so such a write
/// is still found.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pg_a_write_whose_counts_arrive_late_is_still_found() {
    // Two servers: the destination's writes must not move the source's transaction ids.
    let start = || PgServer::start().unwrap_or_else(|e| panic!("cannot start PostgreSQL: {e}"));
    let (pg_src, pg_dst) = (start(), start());
    let src = pg_src.create_database("src").unwrap();
    let dst = pg_dst.create_database("dst").unwrap();
    pg_exec(&src, PG_FILL).await;
    // No autovacuum on the source: its ANALYZE would take transaction ids of its own.
    pg_exec(
        &src,
        "CREATE TABLE scratch (n int); ALTER TABLE t SET (autovacuum_enabled = off); \
         ALTER TABLE scratch SET (autovacuum_enabled = off); ANALYZE",
    )
    .await;
    pg_exec(&dst, PG_FILL).await;
    let config = Config {
        cut_over: Some(true),
        cut_over_settle_seconds: Some(11),
        exclude: vec!["scratch".into()],
        ..Config::default()
    };
    let m = Migration::open(&src, &dst, &config).await.unwrap();
    let plan = m.plan(&PlanOptions::default()).await.unwrap();
    assert!(plan.in_sync(), "{plan:?}");
    // One session writes twice within a second: the first write's counts are reported at
    // once, the second's are held back (up to 10 s while the session idles).
    let (writer, conn) = tokio_postgres::connect(&src, NoTls).await.unwrap();
    tokio::spawn(conn);
    writer
        .batch_execute("INSERT INTO scratch VALUES (1)")
        .await
        .unwrap();
    writer
        .batch_execute("UPDATE t SET a = a + 1 WHERE id = 42")
        .await
        .unwrap();
    // An untracked run does not wait for the held-back counts: it compares in full at once,
    // and finds the write.
    let untracked_config = Config {
        exclude: vec!["scratch".into()],
        ..untracked()
    };
    let untracked = Migration::open(&src, &dst, &untracked_config)
        .await
        .unwrap();
    let started = std::time::Instant::now();
    let (again, copied_only) = untracked.compare_after_copies(&plan, 5_000).await.unwrap();
    assert!(!copied_only && !again.in_sync(), "{again:?}");
    assert!(
        started.elapsed() < std::time::Duration::from_secs(8),
        "it did not wait"
    );
    let err = m.compare_copied(&plan, 5_000).await.unwrap_err();
    assert_eq!(err.error_name(), ErrorName::Conflict, "{err}");

    // A transaction that began writing before the plan and commits after it, once a newer
    // one has finished: the plan did not see its row, and its commit does not move the
    // snapshot's horizon (one past the newest finished transaction).
    pg_exec(&dst, "UPDATE t SET a = a + 1 WHERE id = 42").await;
    // (The insert reports the session's counts; the commit, less than a second later, is held
    // back.)
    writer
        .batch_execute("INSERT INTO scratch VALUES (2)")
        .await
        .unwrap();
    writer
        .batch_execute("BEGIN; UPDATE t SET a = a + 1 WHERE id = 43")
        .await
        .unwrap();
    // A newer transaction finishes meanwhile: the horizon moves past the writer's id.
    pg_exec(&src, "SELECT txid_current()").await;
    let plan = m.plan(&PlanOptions::default()).await.unwrap();
    assert!(plan.in_sync(), "{plan:?}");
    writer.batch_execute("COMMIT").await.unwrap();
    let err = m.compare_copied(&plan, 5_000).await.unwrap_err();
    assert_eq!(err.error_name(), ErrorName::Conflict, "{err}");
    drop(writer);
}

#[tokio::test]
async fn cut_over_and_change_tracking_are_refused_together() {
    let dir = tempfile::tempdir().unwrap();
    let (src, dst) = sqlite_pair(dir.path());
    let config: Config =
        serde_json::from_str(r#"{"cutOver": true, "changeTracking": {"slot": "s"}}"#).unwrap();
    let err = match Migration::open(&src, &dst, &config).await {
        Err(e) => e,
        Ok(_) => panic!("cutOver with changeTracking must be refused"),
    };
    assert_eq!(err.error_name(), ErrorName::InvalidInput, "{err}");
    assert!(
        err.to_string().contains("cutOver and changeTracking"),
        "{err}"
    );
}

fn sqlite_exec(path: &str, sql: &str) {
    let conn = rusqlite::Connection::open(path.trim_start_matches("sqlite:")).unwrap();
    conn.execute_batch(sql).unwrap();
}

fn sqlite_rows(path: &str) -> String {
    let conn = rusqlite::Connection::open(path.trim_start_matches("sqlite:")).unwrap();
    conn.query_row(
        "SELECT count(*) || ':' || group_concat(id || '|' || a || '|' || coalesce(b, '~'), ',') \
         FROM (SELECT * FROM t ORDER BY id)",
        [],
        |r| r.get(0),
    )
    .unwrap()
}

/// The table has a column named `b`: the engine's bin queries must not take it for their own
/// bin number (SQLite resolves `GROUP BY b` to the column, which once repeated one range a
/// hundred times in a plan).
fn sqlite_pair(dir: &Path) -> (String, String) {
    let fill = format!(
        "CREATE TABLE t (id INTEGER PRIMARY KEY, a INTEGER NOT NULL, b TEXT);
         WITH RECURSIVE g(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM g WHERE n < {ROWS})
         INSERT INTO t SELECT n, n * 31 % 1000, 'row-' || n FROM g;"
    );
    let src = format!("sqlite:{}", dir.join("src.db").display());
    let dst = format!("sqlite:{}", dir.join("dst.db").display());
    sqlite_exec(&src, &fill);
    std::fs::copy(dir.join("src.db"), dir.join("dst.db")).unwrap();
    (src, dst)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_finds_every_single_row_change_and_checks_the_source_stayed_quiet() {
    for (mode, config) in modes() {
        let dir = tempfile::tempdir().unwrap();
        let (src, dst) = sqlite_pair(dir.path());
        for (what, sql, rows) in CHANGES {
            sqlite_exec(&src, sql);
            let differs = sqlite_rows(&src) != sqlite_rows(&dst);
            assert_eq!(differs, rows > 0, "{mode}, {what}: the tables differ");
            let m = Migration::open(&src, &dst, &config).await.unwrap();
            let summary = m.run(&opts(), &NoProgress).await.unwrap();
            assert_eq!(
                sqlite_rows(&src),
                sqlite_rows(&dst),
                "{mode}, {what}: converged"
            );
            assert_eq!(
                summary.rounds as u64,
                rows.min(1),
                "{mode}, {what}: {summary:?}"
            );
            // Differing bins are refined down to a few rows (the engine's leaf size), not to one.
            assert!(
                summary.rows_copied >= rows && summary.rows_copied <= 128 * rows,
                "{mode}, {what}: only the changed row's neighbourhood moves: {summary:?}"
            );
            // The same again step by step: the comparison after the copies covers only them.
            sqlite_exec(&src, "UPDATE t SET a = a + 1 WHERE id = 99999");
            let plan = m.plan(&PlanOptions::default()).await.unwrap();
            for chunk in &plan.chunks {
                m.copy_chunk(chunk).await.unwrap();
            }
            let (again, copied_only) = m.compare_after_copies(&plan, 5_000).await.unwrap();
            assert!(again.in_sync() && copied_only, "{mode}, {what}: {again:?}");
            assert_eq!(sqlite_rows(&src), sqlite_rows(&dst), "{mode}, {what}");
        }
        // Written after the plan: cut-over mode refuses, an untracked run compares in full.
        let m = Migration::open(&src, &dst, &config).await.unwrap();
        sqlite_exec(&src, "UPDATE t SET a = 5 WHERE id = 42");
        let plan = m.plan(&PlanOptions::default()).await.unwrap();
        for chunk in &plan.chunks {
            m.copy_chunk(chunk).await.unwrap();
        }
        sqlite_exec(&src, "UPDATE t SET a = 6 WHERE id = 43");
        match m.compare_after_copies(&plan, 5_000).await {
            Err(err) => {
                assert_eq!(mode, "cutOver", "{err}");
                assert_eq!(err.error_name(), ErrorName::Conflict, "{err}");
            }
            Ok((again, copied_only)) => {
                assert_eq!(mode, "untracked", "{again:?}");
                assert!(!copied_only && !again.in_sync(), "{again:?}");
                assert!(
                    again.chunks.iter().any(|c| c.min <= 43 && 43 <= c.max),
                    "{again:?}"
                );
            }
        }
    }
}
