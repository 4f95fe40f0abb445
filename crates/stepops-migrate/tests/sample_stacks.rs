//! The engine over the `stepops sample` schema (crate `stepops-sample`): an empty destination,
//! then random divergence on both sides, compared with the sample crate's independent digest.

use stepops_migrate::{Config, MigrateOptions, Migration, NoProgress, migrate};
use stepops_sample::{Fractions, SampleSpec, create_schema, digest, mutate, sample};
use stepops_testkit::PgServer;

async fn scenario(src: &str, dst: &str, rows: u64) {
    sample(
        src,
        SampleSpec {
            rows,
            seed: 42,
            replace: false,
            progress: None,
        },
    )
    .await
    .unwrap();
    create_schema(dst).await.unwrap();

    let m = Migration::open(src, dst, &Config::default()).await.unwrap();
    let keys: Vec<(&str, &str)> = m
        .tables()
        .iter()
        // PostgreSQL names tables with their schema (public.users), SQLite without.
        .map(|t| (t.name.trim_start_matches("public."), t.range_key.as_str()))
        .collect();
    assert!(
        keys.contains(&("acl", "entity_id")),
        "acl's range key is found from its composite key: {keys:?}"
    );
    let pos = |t: &str| keys.iter().position(|(n, _)| *n == t).unwrap();
    assert!(pos("users") < pos("projects") && pos("projects") < pos("entities"));
    assert!(pos("entities") < pos("acl"));

    let opts = MigrateOptions {
        chunk_rows: rows / 7,
        jobs: 3,
        ..MigrateOptions::default()
    };
    let s = m.run(&opts, &NoProgress).await.unwrap();
    assert!(s.rows_copied >= rows * 9 / 10, "{s:?}");
    assert_eq!(digest(src).await.unwrap(), digest(dst).await.unwrap());

    // Heavy divergence (every bin differs), then light (a few scattered rows).
    for (round, fraction, light) in [(1u64, 0.02, false), (2, 0.0002, true)] {
        let f = Fractions {
            update: fraction,
            delete: fraction / 2.0,
            insert: fraction,
        };
        mutate(src, round * 10, f).await.unwrap();
        mutate(dst, round * 10 + 1, f).await.unwrap();
        assert_ne!(digest(src).await.unwrap(), digest(dst).await.unwrap());
        let s = migrate(src, dst, &Config::default(), &opts, &NoProgress)
            .await
            .unwrap();
        assert!(s.chunks > 0);
        if light {
            assert!(
                s.rows_copied < rows / 2,
                "scattered changes copy a fraction of the rows: {s:?}"
            );
        }
        assert_eq!(digest(src).await.unwrap(), digest(dst).await.unwrap());
    }
    let again = migrate(src, dst, &Config::default(), &opts, &NoProgress)
        .await
        .unwrap();
    assert_eq!(again.chunks, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sample_schema_on_sqlite_converges() {
    let dir = tempfile::tempdir().unwrap();
    let src = format!("sqlite:{}", dir.path().join("src.db").display());
    let dst = format!("sqlite:{}", dir.path().join("dst.db").display());
    scenario(&src, &dst, 20_000).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sample_schema_on_postgres_converges() {
    let pg = PgServer::start().unwrap();
    let src = pg.create_database("src").unwrap();
    let dst = pg.create_database("dst").unwrap();
    scenario(&src, &dst, 20_000).await;
}

/// Scattered single-row changes (0.1% updated, 0.01% deleted, 0.1% inserted) in a synced
/// sample: the plan refines each differing bin down to a few rows, so the re-sync copies a
/// small multiple of the changed rows in a few chunks (the whole-bin plan copied about half of
/// every table here), and the destination equals the source by the independent digest.
async fn scattered(src: &str, dst: &str, rows: u64) {
    sample(
        src,
        SampleSpec {
            rows,
            seed: 7,
            replace: false,
            progress: None,
        },
    )
    .await
    .unwrap();
    create_schema(dst).await.unwrap();
    let opts = MigrateOptions {
        jobs: 2,
        ..MigrateOptions::default()
    };
    migrate(src, dst, &Config::default(), &opts, &NoProgress)
        .await
        .unwrap();
    let report = mutate(
        src,
        99,
        Fractions {
            update: 0.001,
            delete: 0.0001,
            insert: 0.001,
        },
    )
    .await
    .unwrap();
    let (u, d, i) = report.totals();
    let changed = u + d + i;
    assert!(changed >= rows / 1_000, "{report:?}");

    let m = Migration::open(src, dst, &Config::default()).await.unwrap();
    let plan = m
        .plan(&stepops_migrate::PlanOptions::default())
        .await
        .unwrap();
    let tables = plan.differing_tables().len();
    assert!(
        plan.chunks.len() <= 2 * tables,
        "{} chunks for {changed} changed rows in {tables} tables",
        plan.chunks.len()
    );
    // Chunks list their differing ranges; every range lies inside its chunk, ascending.
    for c in &plan.chunks {
        let mut prev = None;
        for (lo, hi) in c.key_ranges() {
            assert!(c.min <= lo && lo <= hi && hi <= c.max, "{c:?}");
            assert!(prev.is_none_or(|p| p < lo), "{c:?}");
            prev = Some(hi);
        }
    }
    let s = m.run(&opts, &NoProgress).await.unwrap();
    eprintln!(
        "{changed} changed rows ({u} updated, {d} deleted, {i} inserted): {} chunks planned, {} rows copied of {rows}",
        plan.chunks.len(),
        s.rows_copied
    );
    assert!(
        s.rows_copied <= 40 * changed && s.rows_copied < rows / 20,
        "{changed} changed rows ({u} updated, {d} deleted, {i} inserted) re-copied {} of {rows} rows: {s:?}",
        s.rows_copied
    );
    assert!(s.rows_copied >= i, "{s:?}");
    assert_eq!(digest(src).await.unwrap(), digest(dst).await.unwrap());
    let again = migrate(src, dst, &Config::default(), &opts, &NoProgress)
        .await
        .unwrap();
    assert_eq!(again.chunks, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_scattered_changes_copy_few_rows() {
    let dir = tempfile::tempdir().unwrap();
    let src = format!("sqlite:{}", dir.path().join("src.db").display());
    let dst = format!("sqlite:{}", dir.path().join("dst.db").display());
    scattered(&src, &dst, 60_000).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pg_scattered_changes_copy_few_rows() {
    let pg = PgServer::start().unwrap();
    let src = pg.create_database("src").unwrap();
    let dst = pg.create_database("dst").unwrap();
    scattered(&src, &dst, 60_000).await;
}
