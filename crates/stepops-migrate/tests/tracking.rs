//! Change tracking over real PostgreSQL servers with `wal_level = logical` (stepops-testkit):
//! the slot and the marker, incremental comparisons that read only the changed rows, changes
//! made while a run copies, rows moving between parents, and every way a baseline can become
//! untrustworthy (each must fall back to a full comparison, never miss a change). Equality is
//! always checked with the sample crate's independent digest, not stepops' checksums.

use stepops_error::{ErrorName, Named};
use stepops_migrate::{
    Config, MigrateOptions, Migration, NoProgress, PlanOptions, TrackingConfig, migrate,
};
use stepops_sample::{Fractions, SampleSpec, create_schema, digest, mutate, sample};
use stepops_testkit::{PgOptions, PgServer};
use tokio_postgres::{Client, NoTls};

fn logical_server() -> PgServer {
    PgServer::start_with(PgOptions {
        settings: vec![
            ("wal_level".into(), "logical".into()),
            ("max_replication_slots".into(), "10".into()),
            ("max_wal_senders".into(), "10".into()),
        ],
        ..PgOptions::default()
    })
    .unwrap_or_else(|e| panic!("cannot start PostgreSQL for the tests: {e}"))
}

async fn client(url: &str) -> Client {
    let (c, conn) = tokio_postgres::connect(url, NoTls).await.unwrap();
    tokio::spawn(conn);
    c
}

async fn exec(url: &str, sql: &str) {
    client(url).await.batch_execute(sql).await.unwrap();
}

fn tracked(slot: &str) -> Config {
    Config {
        change_tracking: Some(TrackingConfig {
            slot: slot.into(),
            full_check: false,
        }),
        ..Config::default()
    }
}

fn opts() -> MigrateOptions {
    MigrateOptions {
        chunk_rows: 2_000,
        jobs: 3,
        ..MigrateOptions::default()
    }
}

async fn sampled(pg: &PgServer, rows: u64) -> (String, String) {
    let src = pg.create_database("src").unwrap();
    let dst = pg.create_database("dst").unwrap();
    sample(
        &src,
        SampleSpec {
            rows,
            seed: 7,
            replace: false,
            progress: None,
        },
    )
    .await
    .unwrap();
    create_schema(&dst).await.unwrap();
    (src, dst)
}

/// `(confirmed_flush_lsn, exists)` of a slot, as text.
async fn slot_lsn(src: &str, slot: &str) -> Option<String> {
    client(src)
        .await
        .query_opt(
            "SELECT confirmed_flush_lsn::text FROM pg_replication_slots WHERE slot_name = $1",
            &[&slot],
        )
        .await
        .unwrap()
        .map(|r| r.get(0))
}

async fn marker(dst: &str, slot: &str) -> Option<serde_json::Value> {
    let c = client(dst).await;
    let exists: bool = c
        .query_one("SELECT to_regclass('stepops.sync_state') IS NOT NULL", &[])
        .await
        .unwrap()
        .get(0);
    if !exists {
        return None;
    }
    c.query_opt(
        "SELECT state::text FROM stepops.sync_state WHERE slot = $1",
        &[&slot],
    )
    .await
    .unwrap()
    .map(|r| serde_json::from_str(r.get::<_, &str>(0)).unwrap())
}

async fn plan_dry(src: &str, dst: &str, config: &Config) -> stepops_migrate::Plan {
    Migration::open(src, dst, config)
        .await
        .unwrap()
        .plan(&PlanOptions {
            chunk_rows: 2_000,
            dry_run: true,
            ..PlanOptions::default()
        })
        .await
        .unwrap()
}

fn light() -> Fractions {
    Fractions {
        update: 0.002,
        delete: 0.001,
        insert: 0.002,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn first_run_records_a_marker_then_runs_compare_only_the_changes() {
    let pg = logical_server();
    let (src, dst) = sampled(&pg, 20_000).await;
    let cfg = tracked("t_first");

    // A dry run creates nothing.
    let p = plan_dry(&src, &dst, &cfg).await;
    assert!(
        p.tracking.is_none() && p.chunks.len() > 1,
        "{:?}",
        p.tracking
    );
    assert_eq!(slot_lsn(&src, "t_first").await, None);
    assert_eq!(marker(&dst, "t_first").await, None);

    // First run: slot created, full comparison (one-sided: a copy), then a tracked
    // verification against the plan's baseline, and the marker.
    let s = migrate(&src, &dst, &cfg, &opts(), &NoProgress)
        .await
        .unwrap();
    assert_eq!(digest(&src).await.unwrap(), digest(&dst).await.unwrap());
    assert_eq!(s.rows_copied, 20_000, "{s:?}");
    let first_lsn = slot_lsn(&src, "t_first").await.expect("the slot exists");
    let m = marker(&dst, "t_first")
        .await
        .expect("a marker was recorded");
    assert_eq!(m["slot"], "t_first");
    assert_eq!(m["database"], "src");
    assert_eq!(m["tables"].as_array().unwrap().len(), 5);

    // Nothing changed: every table is compared from its (zero) changed keys.
    let p = plan_dry(&src, &dst, &cfg).await;
    assert!(p.in_sync());
    assert!(
        p.tables.iter().all(|t| t.changed_keys == Some(0)),
        "{:?}",
        p.tables
    );

    // Changes on the source: only their keys are compared and copied.
    let changed = mutate(&src, 11, light()).await.unwrap();
    let (u, d, i) = changed.totals();
    let changed_rows = u + d + i;
    assert!(changed_rows > 50, "{changed:?}");
    let p = plan_dry(&src, &dst, &cfg).await;
    assert!(
        p.tables.iter().all(|t| t.changed_keys.is_some()),
        "{:?}",
        p.tables
    );
    let keys: u64 = p.tables.iter().filter_map(|t| t.changed_keys).sum();
    assert!(
        keys >= changed_rows / 2 && keys <= changed_rows * 3,
        "{keys} keys for {changed_rows} changed rows"
    );
    assert!(!p.in_sync());
    assert!(
        p.estimated_rows() <= changed_rows * 4,
        "{} rows planned for {changed_rows} changed",
        p.estimated_rows()
    );
    let s = migrate(&src, &dst, &cfg, &opts(), &NoProgress)
        .await
        .unwrap();
    assert_eq!(digest(&src).await.unwrap(), digest(&dst).await.unwrap());
    assert!(s.rows_copied + s.rows_deleted <= changed_rows * 8, "{s:?}");
    let second_lsn = slot_lsn(&src, "t_first").await.unwrap();
    assert_ne!(first_lsn, second_lsn, "the slot advanced");

    // Right after: nothing to do, nothing copied.
    let s = migrate(&src, &dst, &cfg, &opts(), &NoProgress)
        .await
        .unwrap();
    assert_eq!(s.chunks, 0, "{s:?}");

    // The slot and marker can be inspected and dropped.
    let st = stepops_migrate::tracking_status(&src, &dst, &cfg)
        .await
        .unwrap();
    assert!(st.usable, "{st:?}");
    assert!(st.retained_bytes.is_some());
    assert_eq!(
        stepops_migrate::stop_tracking(&src, &dst, &cfg)
            .await
            .unwrap(),
        (true, true)
    );
    assert_eq!(slot_lsn(&src, "t_first").await, None);
    assert_eq!(marker(&dst, "t_first").await, None);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn changes_made_while_copying_are_found_by_the_tracked_verification() {
    let pg = logical_server();
    let (src, dst) = sampled(&pg, 12_000).await;
    let cfg = tracked("t_busy");
    migrate(&src, &dst, &cfg, &opts(), &NoProgress)
        .await
        .unwrap();

    // A round by hand, with the source changing between the plan and the verification.
    mutate(&src, 21, light()).await.unwrap();
    let m = Migration::open(&src, &dst, &cfg).await.unwrap();
    let plan = m
        .plan(&PlanOptions {
            chunk_rows: 500,
            ..PlanOptions::default()
        })
        .await
        .unwrap();
    assert!(!plan.in_sync());
    for c in &plan.chunks {
        m.copy_chunk(c).await.unwrap();
    }
    mutate(&src, 22, light()).await.unwrap();
    let v = m.verify(1, 5, plan.tracking.as_ref()).await.unwrap();
    assert!(!v.converged, "changes after the plan are seen: {v:?}");
    let before = marker(&dst, "t_busy").await.unwrap();

    // Round 2 from round 1's baseline, then a verification that converges.
    let plan2 = m
        .plan(&PlanOptions {
            chunk_rows: 500,
            round: 2,
            baseline: plan.tracking.clone(),
            ..PlanOptions::default()
        })
        .await
        .unwrap();
    assert!(!plan2.in_sync());
    assert!(plan2.tables.iter().all(|t| t.changed_keys.is_some()));
    for c in &plan2.chunks {
        m.copy_chunk(c).await.unwrap();
    }
    let v = m.verify(2, 5, plan2.tracking.as_ref()).await.unwrap();
    assert!(v.converged, "{v:?}");
    assert_eq!(digest(&src).await.unwrap(), digest(&dst).await.unwrap());
    let after = marker(&dst, "t_busy").await.unwrap();
    assert_ne!(before["snapshot"], after["snapshot"], "a new marker");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_crash_between_copies_loses_nothing() {
    let pg = logical_server();
    let (src, dst) = sampled(&pg, 12_000).await;
    let cfg = tracked("t_crash");
    migrate(&src, &dst, &cfg, &opts(), &NoProgress)
        .await
        .unwrap();
    mutate(&src, 31, light()).await.unwrap();

    // Plan and copy only half of the chunks, then "crash": the marker is the old one.
    let m = Migration::open(&src, &dst, &cfg).await.unwrap();
    let plan = m
        .plan(&PlanOptions {
            chunk_rows: 50,
            ..PlanOptions::default()
        })
        .await
        .unwrap();
    assert!(plan.chunks.len() >= 2, "{}", plan.chunks.len());
    for c in plan.chunks.iter().step_by(2) {
        m.copy_chunk(c).await.unwrap();
    }
    drop(m);
    mutate(&src, 32, light()).await.unwrap();
    migrate(&src, &dst, &cfg, &opts(), &NoProgress)
        .await
        .unwrap();
    assert_eq!(digest(&src).await.unwrap(), digest(&dst).await.unwrap());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn untrustworthy_baselines_fall_back_to_a_full_comparison() {
    let pg = logical_server();
    let (src, dst) = sampled(&pg, 8_000).await;
    let cfg = tracked("t_trust");
    migrate(&src, &dst, &cfg, &opts(), &NoProgress)
        .await
        .unwrap();

    // 1. The slot is dropped and the source changes before a new slot exists: those changes
    //    are in no slot. The new slot is past the marker, so everything is compared.
    exec(&src, "SELECT pg_drop_replication_slot('t_trust')").await;
    mutate(&src, 41, light()).await.unwrap();
    exec(
        &src,
        "SELECT pg_create_logical_replication_slot('t_trust', 'test_decoding')",
    )
    .await;
    let st = stepops_migrate::tracking_status(&src, &dst, &cfg)
        .await
        .unwrap();
    assert!(
        !st.usable && st.reason.as_deref().unwrap().contains("past"),
        "{st:?}"
    );
    let p = plan_dry(&src, &dst, &cfg).await;
    assert!(
        p.tables.iter().all(|t| t.changed_keys.is_none()),
        "{:?}",
        p.tables
    );
    migrate(&src, &dst, &cfg, &opts(), &NoProgress)
        .await
        .unwrap();
    assert_eq!(digest(&src).await.unwrap(), digest(&dst).await.unwrap());

    // 2. A truncated table is compared in full, the others from their changes.
    exec(&src, "TRUNCATE events").await;
    let p = plan_dry(&src, &dst, &cfg).await;
    for t in &p.tables {
        assert_eq!(
            t.changed_keys.is_none(),
            t.table == "public.events",
            "{t:?}"
        );
    }
    migrate(&src, &dst, &cfg, &opts(), &NoProgress)
        .await
        .unwrap();
    assert_eq!(digest(&src).await.unwrap(), digest(&dst).await.unwrap());

    // 3. A change made on the destination is not in the source's slot (the documented
    //    assumption): a tracked run does not see it, a full check does.
    exec(&dst, "UPDATE users SET display_name = 'changed on the destination' WHERE id = (SELECT min(id) FROM users)").await;
    let s = migrate(&src, &dst, &cfg, &opts(), &NoProgress)
        .await
        .unwrap();
    assert_eq!(s.chunks, 0);
    assert_ne!(digest(&src).await.unwrap(), digest(&dst).await.unwrap());
    let mut full = cfg.clone();
    full.change_tracking.as_mut().unwrap().full_check = true;
    let s = migrate(&src, &dst, &full, &opts(), &NoProgress)
        .await
        .unwrap();
    assert_eq!(s.chunks, 1, "{s:?}");
    assert_eq!(digest(&src).await.unwrap(), digest(&dst).await.unwrap());

    // 4. A marker of another source database is not trusted.
    let other = pg.create_database("other").unwrap();
    sample(
        &other,
        SampleSpec {
            rows: 2_000,
            seed: 9,
            replace: false,
            progress: None,
        },
    )
    .await
    .unwrap();
    let err = Migration::open(&other, &dst, &cfg)
        .await
        .unwrap()
        .plan(&PlanOptions::default())
        .await
        .unwrap_err();
    // The slot name is taken by the database src: refused, not reused.
    assert_eq!(err.error_name(), ErrorName::InvalidInput, "{err}");
    assert!(err.to_string().contains("belongs to database"), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn child_rows_that_move_between_parents_are_found_on_the_destination() {
    let pg = logical_server();
    let src = pg.create_database("src").unwrap();
    let dst = pg.create_database("dst").unwrap();
    let schema = "CREATE TABLE parent (id bigint PRIMARY KEY, name text);
        CREATE TABLE child (id bigint PRIMARY KEY, parent_id bigint NOT NULL REFERENCES parent(id), note text);
        CREATE INDEX child_parent ON child (parent_id);";
    exec(&src, schema).await;
    exec(&dst, schema).await;
    exec(
        &src,
        "INSERT INTO parent SELECT g, 'p' || g FROM generate_series(1, 200) g;
         INSERT INTO child SELECT g, 1 + g % 200, 'c' || g FROM generate_series(1, 2000) g;",
    )
    .await;
    let mut cfg = tracked("t_child");
    cfg.tables.insert(
        "child".into(),
        stepops_migrate::TableConfig {
            range_key: Some("parent_id".into()),
        },
    );
    migrate(&src, &dst, &cfg, &opts(), &NoProgress)
        .await
        .unwrap();

    // Children move to other parents (only their new parent id is in the change), and some
    // are deleted (only their own id is): the destination's copies are found by primary key.
    exec(
        &src,
        "UPDATE child SET parent_id = 7 WHERE id IN (10, 11, 12);
         DELETE FROM child WHERE id IN (20, 21);
         UPDATE child SET id = id + 100000 WHERE id = 30;",
    )
    .await;
    let p = plan_dry(&src, &dst, &cfg).await;
    let child = p.tables.iter().find(|t| t.table == "public.child").unwrap();
    assert!(child.changed_keys.unwrap() >= 5, "{child:?}");
    migrate(&src, &dst, &cfg, &opts(), &NoProgress)
        .await
        .unwrap();
    let rows = |url: String| async move {
        let c = client(&url).await;
        c.query("SELECT id, parent_id, note FROM child ORDER BY id", &[])
            .await
            .unwrap()
            .iter()
            .map(|r| {
                (
                    r.get::<_, i64>(0),
                    r.get::<_, i64>(1),
                    r.get::<_, Option<String>>(2),
                )
            })
            .collect::<Vec<_>>()
    };
    assert_eq!(rows(src.clone()).await, rows(dst.clone()).await);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn bad_setups_are_refused_before_anything_is_written() {
    // A source without logical decoding.
    let pg = PgServer::start().unwrap();
    let (src, dst) = sampled(&pg, 1_000).await;
    let err = migrate(&src, &dst, &tracked("t_bad"), &opts(), &NoProgress)
        .await
        .unwrap_err();
    assert_eq!(err.error_name(), ErrorName::InvalidInput, "{err}");
    assert!(err.to_string().contains("wal_level = logical"), "{err}");
    let count: i64 = client(&dst)
        .await
        .query_one("SELECT count(*) FROM users", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(count, 0, "nothing was copied");

    // A source role without REPLICATION.
    let pg = logical_server();
    let (src, dst) = sampled(&pg, 1_000).await;
    pg.create_role("reader", "pw").unwrap();
    exec(
        &src,
        "GRANT SELECT ON ALL TABLES IN SCHEMA public TO reader",
    )
    .await;
    let reader = pg.url_for("reader", "pw", "src");
    let err = migrate(&reader, &dst, &tracked("t_bad"), &opts(), &NoProgress)
        .await
        .unwrap_err();
    assert_eq!(err.error_name(), ErrorName::Unauthorized, "{err}");
    assert!(err.to_string().contains("REPLICATION"), "{err}");
    assert!(!err.to_string().contains(":pw@"), "no password in {err}");

    // SQLite stacks, and a bad slot name.
    let dir = tempfile::tempdir().unwrap();
    let a = format!("sqlite:{}", dir.path().join("a.db").display());
    let b = format!("sqlite:{}", dir.path().join("b.db").display());
    sample(
        &a,
        SampleSpec {
            rows: 100,
            seed: 1,
            replace: false,
            progress: None,
        },
    )
    .await
    .unwrap();
    create_schema(&b).await.unwrap();
    let err = Migration::open(&a, &b, &tracked("t_sqlite"))
        .await
        .err()
        .unwrap();
    assert_eq!(err.error_name(), ErrorName::InvalidInput);
    assert!(err.to_string().contains("PostgreSQL"), "{err}");
    let err = Migration::open(&src, &dst, &tracked("Bad-Name"))
        .await
        .err()
        .unwrap();
    assert_eq!(err.error_name(), ErrorName::InvalidInput, "{err}");
}
