//! Deferred index builds on real PostgreSQL (stepops-testkit): a load into empty destination
//! tables drops their secondary indexes (recorded first) and builds them before comparing
//! again; after a crash in between they are still recorded and a later run builds them; a
//! role that does not own the tables, `deferIndexes: false` and a destination that is not empty
//! keep them in place. The indexes afterwards are exactly those of before (pg_indexes), and the
//! data equals the source's (independent digest).

use stepops_migrate::{Config, MigrateOptions, Migration, NoProgress, PlanOptions, migrate};
use stepops_sample::{SampleSpec, create_schema, digest, sample};
use stepops_testkit::PgServer;
use tokio_postgres::NoTls;

async fn indexes(url: &str) -> Vec<(String, String)> {
    let (c, conn) = tokio_postgres::connect(url, NoTls).await.unwrap();
    tokio::spawn(conn);
    c.query(
        "SELECT indexname::text, indexdef FROM pg_indexes WHERE schemaname = 'public' \
         AND tablename NOT LIKE 'stepops%' ORDER BY 1",
        &[],
    )
    .await
    .unwrap()
    .iter()
    .map(|r| (r.get(0), r.get(1)))
    .collect()
}

async fn recorded(pg: &PgServer, db: &str) -> usize {
    let out = pg
        .psql(
            db,
            "SELECT CASE WHEN to_regclass('stepops.deferred_indexes') IS NULL THEN 0 \
             ELSE (SELECT count(*) FROM stepops.deferred_indexes) END",
        )
        .unwrap();
    out.trim().parse().unwrap()
}

async fn setup(pg: &PgServer) -> (String, String) {
    let src = pg.create_database("src").unwrap();
    let dst = pg.create_database("dst").unwrap();
    sample(
        &src,
        SampleSpec {
            rows: 20_000,
            seed: 5,
            replace: false,
            progress: None,
        },
    )
    .await
    .unwrap();
    create_schema(&dst).await.unwrap();
    (src, dst)
}

fn opts() -> MigrateOptions {
    MigrateOptions {
        chunk_rows: 3_000,
        jobs: 2,
        ..MigrateOptions::default()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_load_into_empty_tables_builds_their_secondary_indexes_after() {
    let pg = PgServer::start().unwrap();
    let (src, dst) = setup(&pg).await;
    let before = indexes(&dst).await;
    assert!(before.len() >= 10, "{before:?}");

    // Step by step: the plan drops what the load does not need, and records it.
    let m = Migration::open(&src, &dst, &Config::default())
        .await
        .unwrap();
    let plan = m
        .plan(&PlanOptions {
            chunk_rows: 3_000,
            ..PlanOptions::default()
        })
        .await
        .unwrap();
    let deferred: usize = plan.tables.iter().map(|t| t.deferred_indexes).sum();
    assert_eq!(deferred, 5, "{:?}", plan.tables);
    let during = indexes(&dst).await;
    assert_eq!(during.len(), before.len() - 5);
    for kept in [
        "users_pkey",
        "users_user_name_key",
        "acl_pkey",
        "entities_pkey",
        "events_pkey",
    ] {
        assert!(
            during.iter().any(|(n, _)| n == kept),
            "{kept} kept: {during:?}"
        );
    }
    assert_eq!(recorded(&pg, "dst").await, 5);

    // A crash after half the copies: the next run finishes and builds them.
    for c in plan.chunks.iter().step_by(2) {
        m.copy_chunk(c).await.unwrap();
    }
    drop(m);
    assert_eq!(
        indexes(&dst).await.len(),
        before.len() - 5,
        "still deferred"
    );
    let s = migrate(&src, &dst, &Config::default(), &opts(), &NoProgress)
        .await
        .unwrap();
    assert!(s.chunks > 0);
    assert_eq!(
        indexes(&dst).await,
        before,
        "the same indexes, the same definitions"
    );
    assert_eq!(recorded(&pg, "dst").await, 0);
    assert_eq!(digest(&src).await.unwrap(), digest(&dst).await.unwrap());

    // The destination is not empty any more: nothing is dropped by the next plan.
    let m = Migration::open(&src, &dst, &Config::default())
        .await
        .unwrap();
    let plan = m.plan(&PlanOptions::default()).await.unwrap();
    assert!(plan.tables.iter().all(|t| t.deferred_indexes == 0));
    assert_eq!(indexes(&dst).await, before);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn verify_builds_deferred_indexes_and_the_opt_out_and_non_owners_keep_them() {
    let pg = PgServer::start().unwrap();
    let (src, dst) = setup(&pg).await;
    let before = indexes(&dst).await;

    // The runner's steps: plan (defers), copy every chunk, verify (builds, then compares).
    let cfg = Config::default();
    let plan = stepops_migrate::plan(&src, &dst, &cfg, &PlanOptions::default())
        .await
        .unwrap();
    assert!(indexes(&dst).await.len() < before.len());
    for c in &plan.chunks {
        stepops_migrate::copy_chunk(&src, &dst, &cfg, c)
            .await
            .unwrap();
    }
    let v = stepops_migrate::verify(&src, &dst, &cfg, 1, 3, None)
        .await
        .unwrap();
    assert!(v.converged, "{v:?}");
    assert_eq!(indexes(&dst).await, before);

    // deferIndexes: false keeps them.
    let dst2 = pg.create_database("dst2").unwrap();
    create_schema(&dst2).await.unwrap();
    let off = Config::from_yaml("deferIndexes: false").unwrap();
    let plan = stepops_migrate::plan(&src, &dst2, &off, &PlanOptions::default())
        .await
        .unwrap();
    assert!(plan.tables.iter().all(|t| t.deferred_indexes == 0));
    assert_eq!(indexes(&dst2).await, before);

    // A destination role that may write the tables but does not own them keeps them too.
    let dst3 = pg.create_database("dst3").unwrap();
    create_schema(&dst3).await.unwrap();
    pg.create_role("loader", "pw").unwrap();
    pg.psql(
        "dst3",
        "GRANT SELECT, INSERT, DELETE ON ALL TABLES IN SCHEMA public TO loader; \
         GRANT USAGE, CREATE ON SCHEMA public TO loader; \
         GRANT UPDATE ON ALL SEQUENCES IN SCHEMA public TO loader; \
         GRANT SET ON PARAMETER session_replication_role TO loader;",
    )
    .unwrap();
    let loader = pg.url_for("loader", "pw", "dst3");
    let s = migrate(&src, &loader, &cfg, &opts(), &NoProgress)
        .await
        .unwrap();
    assert_eq!(s.rows_copied, 20_000);
    assert_eq!(indexes(&dst3).await, before);
    assert_eq!(digest(&src).await.unwrap(), digest(&dst3).await.unwrap());
}

/// stepops' own state lives in the schema `stepops`, used only while stepops' role owns it: a
/// schema of that name created by another role is refused (Stepops.Unauthorized naming its
/// owner), and a record planted in stepops' table is never run unless it is one CREATE INDEX
/// of the recorded index on the recorded table.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn own_schema_of_another_role_and_planted_records_are_refused() {
    use stepops_error::{ErrorName, Named};
    let pg = PgServer::start().unwrap_or_else(|e| panic!("{e}"));
    let (src, dst) = setup(&pg).await;
    pg.create_role("intruder", "pw").unwrap();
    pg.psql("dst", "CREATE SCHEMA stepops AUTHORIZATION intruder")
        .unwrap();
    let e = migrate(&src, &dst, &Config::default(), &opts(), &NoProgress)
        .await
        .unwrap_err();
    assert_eq!(e.error_name(), ErrorName::Unauthorized, "{e}");
    assert!(e.to_string().contains("owned by the role intruder"), "{e}");

    // Empty again, so that the load defers indexes and records them in stepops' own schema.
    pg.psql(
        "dst",
        "DROP SCHEMA stepops; TRUNCATE users, projects, entities, acl, events CASCADE",
    )
    .unwrap();
    migrate(&src, &dst, &Config::default(), &opts(), &NoProgress)
        .await
        .unwrap();
    assert_eq!(digest(&src).await.unwrap(), digest(&dst).await.unwrap());
    let owner = pg
        .psql(
            "dst",
            "SELECT pg_get_userbyid(nspowner) FROM pg_namespace WHERE nspname = 'stepops'",
        )
        .unwrap();
    assert_eq!(owner.trim(), "postgres", "stepops created its own schema");

    // A planted record: a second statement, or another table's index.
    let before = indexes(&dst).await;
    pg.psql(
        "dst",
        "INSERT INTO stepops.deferred_indexes (index_name, table_name, definition) VALUES
           ('public.planted', 'public.users', 'CREATE INDEX planted ON public.users USING btree (id); DROP TABLE acl')",
    )
    .unwrap();
    let e = migrate(&src, &dst, &Config::default(), &opts(), &NoProgress)
        .await
        .unwrap_err();
    assert_eq!(e.error_name(), ErrorName::Internal, "{e}");
    assert!(e.to_string().contains("refused"), "{e}");
    let acl = pg
        .psql("dst", "SELECT to_regclass('acl') IS NOT NULL")
        .unwrap();
    assert_eq!(acl.trim(), "t", "the planted statement ran");
    assert_eq!(indexes(&dst).await, before);
}
