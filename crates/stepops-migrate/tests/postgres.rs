//! The engine over real PostgreSQL servers (started by `stepops-testkit`, one per test).

mod common;

use common::{Dialect, TABLES, fill, mutate, schema};
use std::time::{Duration, Instant};
use stepops_error::{ErrorName, Named};
use stepops_migrate::{Chunk, Config, MigrateOptions, Migration, NoProgress, migrate};
use stepops_testkit::{PgOptions, PgServer, TestCa};
use tokio_postgres::Client;

fn server() -> PgServer {
    PgServer::start().unwrap_or_else(|e| panic!("cannot start PostgreSQL for the tests: {e}"))
}

async fn client(url: &str) -> Client {
    stepops_pg::connect(url).await.unwrap()
}

async fn exec(url: &str, sql: &str) {
    client(url).await.batch_execute(sql).await.unwrap();
}

/// Every row of the fixture tables as text, ordered: an independent full comparison.
async fn dump(url: &str, tables: &[&str]) -> Vec<(String, Vec<String>)> {
    let c = client(url).await;
    c.batch_execute("SET TimeZone = 'UTC'; SET extra_float_digits = 3")
        .await
        .unwrap();
    let mut out = Vec::new();
    for t in tables {
        let rows = c
            .query(
                &format!("SELECT zz_row::text FROM {t} zz_row ORDER BY 1"),
                &[],
            )
            .await
            .unwrap();
        out.push((t.to_string(), rows.iter().map(|r| r.get(0)).collect()));
    }
    out
}

fn opts(chunk_rows: u64, jobs: usize) -> MigrateOptions {
    MigrateOptions {
        chunk_rows,
        jobs,
        ..MigrateOptions::default()
    }
}

async fn pair(pg: &PgServer, rows: usize, seed: u64, dest_copy: bool) -> (String, String) {
    let src = pg.create_database("src").unwrap();
    let dst = pg.create_database("dst").unwrap();
    exec(&src, schema(Dialect::Pg)).await;
    exec(&dst, schema(Dialect::Pg)).await;
    let data = fill(Dialect::Pg, seed, rows);
    exec(&src, &data).await;
    if dest_copy {
        exec(&dst, &data).await;
    }
    (src, dst)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pg_randomised_divergence_converges_and_second_run_copies_nothing() {
    let pg = server();
    let (src, dst) = pair(&pg, 3000, 21, true).await;
    for (round, chunk_rows) in [(1u64, 60u64), (2, 50_000), (3, 9)] {
        exec(&src, &mutate(Dialect::Pg, round * 10, 250, 600)).await;
        exec(&dst, &mutate(Dialect::Pg, round * 10 + 1, 250, 600)).await;
        assert_ne!(dump(&src, &TABLES).await, dump(&dst, &TABLES).await);
        let s = migrate(
            &src,
            &dst,
            &Config::default(),
            &opts(chunk_rows, 3),
            &NoProgress,
        )
        .await
        .unwrap();
        assert!(s.chunks > 0);
        common::assert_same(&dump(&src, &TABLES).await, &dump(&dst, &TABLES).await);
        let again = migrate(
            &src,
            &dst,
            &Config::default(),
            &opts(chunk_rows, 2),
            &NoProgress,
        )
        .await
        .unwrap();
        assert_eq!(again.chunks, 0, "a second run copies nothing");
    }
    // Foreign keys still hold on the destination (they were not enforced while copying).
    let c = client(&dst).await;
    let orphans: i64 = c
        .query_one(
            "SELECT (SELECT count(*) FROM acl a WHERE NOT EXISTS (SELECT 1 FROM entities e WHERE e.id = a.entity_id))
                  + (SELECT count(*) FROM entities e WHERE e.parent_id IS NOT NULL AND NOT EXISTS (SELECT 1 FROM entities p WHERE p.id = e.parent_id))",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(orphans, 0);
}

/// A server that accepts TCP over TLS only (as Amazon RDS with `rds.force_ssl=1`): plaintext is
/// refused with `Stepops.TlsFailed` and what to add; with `verify-full` the migration runs over
/// TLS and the destination equals the source row by row.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pg_migration_over_tls_with_verify_full() {
    let ca = TestCa::new();
    let pg = PgServer::start_with(PgOptions {
        tls: Some(ca.server_tls(&["localhost"], true)),
        ..PgOptions::default()
    })
    .unwrap_or_else(|e| panic!("{e}"));
    let dir = tempfile::tempdir().unwrap();
    let ca_file = dir.path().join("rds-like-ca.pem");
    std::fs::write(&ca_file, ca.cert_pem()).unwrap();
    let tls_url = |plain: &str| {
        format!(
            "{}?sslmode=verify-full&sslrootcert={}&hostaddr=127.0.0.1",
            plain.replace("@127.0.0.1:", "@localhost:"),
            ca_file.display()
        )
    };
    let (src_plain, dst_plain) = (
        pg.create_database("src").unwrap(),
        pg.create_database("dst").unwrap(),
    );
    let (src, dst) = (tls_url(&src_plain), tls_url(&dst_plain));
    exec(&src, schema(Dialect::Pg)).await;
    exec(&dst, schema(Dialect::Pg)).await;
    exec(&src, &fill(Dialect::Pg, 5, 1500)).await;

    let e = migrate(
        &format!("{src_plain}?sslmode=disable"),
        &dst,
        &Config::default(),
        &opts(200, 2),
        &NoProgress,
    )
    .await
    .unwrap_err();
    assert_eq!(e.error_name(), ErrorName::TlsFailed, "{e}");
    assert!(e.to_string().contains("add sslmode=require"), "{e}");

    let s = migrate(&src, &dst, &Config::default(), &opts(200, 2), &NoProgress)
        .await
        .unwrap();
    assert!(s.chunks > 0);
    common::assert_same(&dump(&src, &TABLES).await, &dump(&dst, &TABLES).await);
    let c = client(&dst).await;
    let encrypted: bool = c
        .query_one(
            "SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert!(encrypted);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pg_empty_destination_and_emptied_source() {
    let pg = server();
    let (src, dst) = pair(&pg, 2000, 5, false).await;
    let seqs = "CREATE TABLE serials (id bigserial PRIMARY KEY, v text);
                CREATE TABLE idents (id int GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY, v text);";
    exec(&src, seqs).await;
    exec(&dst, seqs).await;
    exec(&src, "INSERT INTO serials (v) SELECT 'x' FROM generate_series(1, 7); INSERT INTO idents (v) SELECT 'y' FROM generate_series(1, 9)").await;
    let s = migrate(&src, &dst, &Config::default(), &opts(100, 4), &NoProgress)
        .await
        .unwrap();
    assert!(s.rows_copied >= 1500, "{s:?}");
    assert_eq!(s.rows_deleted, 0);
    assert_eq!(s.sequences_synced, 2);
    // New rows on the destination get fresh ids.
    let c = client(&dst).await;
    let a: i64 = c
        .query_one("INSERT INTO serials (v) VALUES ('new') RETURNING id", &[])
        .await
        .unwrap()
        .get(0);
    let b: i32 = c
        .query_one("INSERT INTO idents (v) VALUES ('new') RETURNING id", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!((a, b), (8, 10));
    c.batch_execute("DELETE FROM serials WHERE v = 'new'; DELETE FROM idents WHERE v = 'new'")
        .await
        .unwrap();
    common::assert_same(&dump(&src, &TABLES).await, &dump(&dst, &TABLES).await);
    exec(&src, "TRUNCATE users, projects, entities, acl, events").await;
    let s = migrate(&src, &dst, &Config::default(), &opts(100, 4), &NoProgress)
        .await
        .unwrap();
    assert_eq!(s.rows_copied, 0);
    assert!(s.rows_deleted >= 1500);
    common::assert_same(&dump(&src, &TABLES).await, &dump(&dst, &TABLES).await);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pg_values_round_trip_exactly() {
    let pg = server();
    let src = pg.create_database("src").unwrap();
    let dst = pg.create_database("dst").unwrap();
    let ddl = "CREATE TYPE mood AS ENUM ('sad', 'ok', 'happy');
        CREATE TABLE v (id bigint PRIMARY KEY, t text, b bytea, f8 double precision, f4 real,
        n numeric, ts timestamptz, tsz timestamp, d date, j jsonb, js json, u uuid, ia integer[],
        ta text[], m2 integer[][], ok boolean, iv interval, m mood, c char(3), x xml, inet_col inet,
        r int4range);";
    exec(&src, ddl).await;
    exec(&dst, ddl).await;
    exec(
        &src,
        r#"INSERT INTO v VALUES
        (-9223372036854775808, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL),
        (0, '', '', 0, 0, 0, 'epoch', 'epoch', 'epoch', '{}', '{}', '00000000-0000-0000-0000-000000000000', '{}', '{}', '{}', false, '0', 'sad', '', '', '::1', 'empty'),
        (1, E'Zoë 日本語 🦀 e\u0301 مرحبا '' " \\ \n\t\u00a0\ufeff', '\x00ff10deadbeef', 'NaN', 'Infinity', 'NaN',
         'infinity', '-infinity', '-infinity', '{"a": [1, 2.50, {"b": "ü\u00e9x"}], "n": null, "big": 123456789012345678901234567890}',
         '{"dup": 1, "dup": 2,   "sp": " ", "nul": "\u0000"}', 'a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11', '{1,NULL,-3}', '{"a,b","NULL",NULL,"ü"}', '{{1,2},{3,NULL}}', true,
         '1 year 2 mons -3 days 04:05:06.789', 'happy', 'ab', '<a x="1">t</a>', '10.1.2.3/8', '[1,5)'),
        (2, 'x', '\x', '-Infinity', '-Infinity', '-123456789012345678901234567890.000000000000000000001',
         '1999-12-31 23:59:59.999999+13:45', '2000-01-01 00:00:00.000001', '4713-01-01 BC', '[1e400]', '[]', 'ffffffff-ffff-ffff-ffff-ffffffffffff', '{2147483647,-2147483648}', '{}', '{}', NULL,
         '-178000000 years', 'ok', 'abc', '<b/>', '2001:db8::1', '(,)'),
        (3, 'y', NULL, '-0', '1.17549435e-38', '1e-1000', '2026-11-22 04:00:00+00', NULL, NULL, 'null', 'null', NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL),
        (4, 'z', NULL, 2.2250738585072014e-308, 3.4028235e38, 5e-324, NULL, NULL, NULL, '"str"', '"str"', NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL),
        (9223372036854775807, 'max', NULL, 4.9406564584124654e-324, -0.0, 'Infinity', NULL, NULL, NULL, '1.0', '1.0', NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL)"#,
    )
    .await;
    let s = migrate(&src, &dst, &Config::default(), &opts(2, 2), &NoProgress)
        .await
        .unwrap();
    assert_eq!(s.rows_copied, 7);
    assert_eq!(dump(&src, &["v"]).await, dump(&dst, &["v"]).await);
    // Binary equality too: the bytes each value is stored as.
    let q = "SELECT string_agg(md5(coalesce(float8send(f8)::text, '') || coalesce(float4send(f4)::text, '') || coalesce(numeric_send(n)::text, '') || coalesce(b::text, '') || coalesce(jsonb_send(j)::text, '')), ',' ORDER BY id) FROM v";
    let a: String = client(&src).await.query_one(q, &[]).await.unwrap().get(0);
    let b: String = client(&dst).await.query_one(q, &[]).await.unwrap().get(0);
    assert_eq!(a, b);
    let again = migrate(&src, &dst, &Config::default(), &opts(2, 2), &NoProgress)
        .await
        .unwrap();
    assert_eq!(again.chunks, 0, "equal values checksum equally");
}

/// Every kind of change is seen, also those the types' own equality ignores.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pg_checksums_see_changes_that_equality_ignores() {
    let pg = server();
    let src = pg.create_database("src").unwrap();
    let dst = pg.create_database("dst").unwrap();
    let ddl = "CREATE TABLE c (id bigint PRIMARY KEY, n numeric, j jsonb, i interval, f double precision, t text, b bytea, ts timestamptz, a int[]);
               CREATE TABLE plain (id bigint PRIMARY KEY, v bigint, t text);";
    let data = "INSERT INTO c SELECT g, 1.0, '{\"x\": 1.0}', '1 day', 0, 'a', '\\x00', '2020-01-01 00:00:00+00', '{1,2}' FROM generate_series(1, 3000) g;
                INSERT INTO plain SELECT g, g, 'v' || g FROM generate_series(1, 3000) g;";
    for url in [&src, &dst] {
        exec(url, ddl).await;
        exec(url, data).await;
    }
    let cfg = Config::default();
    let changes = [
        ("c", "UPDATE c SET n = 1.00 WHERE id = 11"),
        ("c", "UPDATE c SET j = '{\"x\": 1.00}' WHERE id = 222"),
        ("c", "UPDATE c SET i = '24 hours' WHERE id = 333"),
        ("c", "UPDATE c SET f = '-0' WHERE id = 444"),
        ("c", "UPDATE c SET t = 'a ' WHERE id = 555"),
        ("c", "UPDATE c SET b = '\\x0000' WHERE id = 666"),
        (
            "c",
            "UPDATE c SET ts = ts + interval '1 microsecond' WHERE id = 777",
        ),
        ("c", "UPDATE c SET a = '{1,2,NULL}' WHERE id = 888"),
        ("plain", "UPDATE plain SET v = v + 1 WHERE id = 2999"),
        ("plain", "UPDATE plain SET t = NULL WHERE id = 1"),
    ];
    for (table, sql) in changes {
        exec(&src, sql).await;
        let p = stepops_migrate::plan(&src, &dst, &cfg, &stepops_migrate::PlanOptions::default())
            .await
            .unwrap();
        assert_eq!(p.differing_tables(), [format!("public.{table}")], "{sql}");
        assert_eq!(p.chunks.len(), 1, "{sql}");
        assert!(
            p.chunks[0].estimated_rows <= 200,
            "{sql}: {:?}",
            p.chunks[0]
        );
        let s = migrate(&src, &dst, &cfg, &opts(50_000, 1), &NoProgress)
            .await
            .unwrap();
        assert_eq!(s.chunks, 1, "{sql}");
    }
    assert_eq!(
        dump(&src, &["c", "plain"]).await,
        dump(&dst, &["c", "plain"]).await
    );
}

/// Crash safety: a copy interrupted mid-chunk (its task aborted, or its server session
/// terminated) leaves the destination untouched; a re-run converges without loss or duplicates.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pg_interrupted_copy_leaves_destination_untouched_and_rerun_converges() {
    let pg = server();
    let src = pg.create_database("src").unwrap();
    let dst = pg.create_database("dst").unwrap();
    let ddl = "CREATE TABLE big (id bigint PRIMARY KEY, v text, w bytea);
               CREATE TABLE kid (big_id bigint REFERENCES big(id), n int, PRIMARY KEY (big_id, n));";
    exec(&src, ddl).await;
    exec(&dst, ddl).await;
    exec(
        &src,
        "INSERT INTO big SELECT i, 'row ' || i || repeat('x', 100), sha256(i::text::bytea) FROM generate_series(1, 400000) i;
         INSERT INTO kid SELECT i, 1 FROM generate_series(1, 400000, 7) i;",
    )
    .await;
    exec(&dst, "INSERT INTO big VALUES (5, 'old', NULL), (999999, 'gone', NULL); INSERT INTO kid VALUES (5, 9)").await;
    let tables = ["big", "kid"];
    let before = dump(&dst, &tables).await;
    let m = Migration::open(&src, &dst, &Config::default())
        .await
        .unwrap();
    let chunk = Chunk {
        table: "public.big".into(),
        min: 1,
        max: 1_000_000,
        estimated_rows: 400_000,
        ranges: Vec::new(),
        keys: Vec::new(),
        whole_table: false,
    };

    // 1. The task is dropped mid-copy (as when a runner dies): its connection goes away.
    let started = Instant::now();
    let r = tokio::time::timeout(Duration::from_millis(150), m.copy_chunk(&chunk)).await;
    assert!(
        r.is_err(),
        "the copy must still be running after 150 ms to test this"
    );
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(
        dump(&dst, &tables).await,
        before,
        "an aborted chunk changes nothing"
    );

    // 2. The destination session is killed by the server while copying.
    let killer = client(&dst).await;
    let copy = tokio::spawn({
        let src = src.clone();
        let dst = dst.clone();
        let chunk = chunk.clone();
        async move { stepops_migrate::copy_chunk(&src, &dst, &Config::default(), &chunk).await }
    });
    let mut killed = false;
    while !copy.is_finished() && started.elapsed() < Duration::from_secs(60) {
        let n: i64 = killer
            .query_one(
                "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity WHERE datname = 'dst' AND query LIKE 'COPY%' AND pid <> pg_backend_pid()",
                &[],
            )
            .await
            .unwrap()
            .get(0);
        if n > 0 {
            killed = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    assert!(killed, "never caught the copy running");
    let err = copy.await.unwrap().unwrap_err();
    assert_eq!(err.error_name(), ErrorName::Transient, "{err}");
    assert_eq!(
        dump(&dst, &tables).await,
        before,
        "a killed chunk changes nothing"
    );

    // 3. A re-run converges: nothing lost, nothing duplicated.
    let s = migrate(
        &src,
        &dst,
        &Config::default(),
        &opts(50_000, 2),
        &NoProgress,
    )
    .await
    .unwrap();
    assert!(s.rows_copied >= 400_000);
    common::assert_same(&dump(&src, &tables).await, &dump(&dst, &tables).await);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pg_bad_inputs_give_named_errors_and_write_nothing() {
    let pg = PgServer::start_with_password_auth().unwrap();
    let (src, dst) = pair(&pg, 300, 2, false).await;
    let before = dump(&dst, &TABLES).await;
    let o = opts(100, 2);
    let run = |s: String, d: String, c: Config| {
        let o = o.clone();
        async move { migrate(&s, &d, &c, &o, &NoProgress).await.unwrap_err() }
    };
    let password = pg.superuser_password().unwrap().to_owned();
    let check = |e: &stepops_migrate::MigrateError, name: ErrorName, needle: &str| {
        let text = e.to_string();
        assert_eq!(e.error_name(), name, "{text}");
        assert!(text.contains(needle), "{text} should mention {needle}");
        assert!(!text.contains(&password), "password leaked: {text}");
        assert!(!text.contains("s3cret-wrong"), "password leaked: {text}");
    };

    // Unreachable: nothing listens on port 1.
    let e = run(
        src.clone(),
        "postgres://postgres:s3cret-wrong@127.0.0.1:1/dst".into(),
        Config::default(),
    )
    .await;
    check(&e, ErrorName::Transient, "cannot reach");
    // Wrong password.
    let e = run(
        src.clone(),
        pg.url_for("postgres", "s3cret-wrong", "dst"),
        Config::default(),
    )
    .await;
    check(&e, ErrorName::Unauthorized, "password");
    // Missing database.
    let e = run(src.clone(), pg.database_url("nope"), Config::default()).await;
    check(&e, ErrorName::NotFound, "nope");
    // Mixed engines.
    let e = run(
        src.clone(),
        "sqlite:/tmp/whatever.db".into(),
        Config::default(),
    )
    .await;
    check(&e, ErrorName::InvalidInput, "same engine");

    // Missing table, different type: one message naming both.
    exec(&src, "CREATE TABLE extra (id int PRIMARY KEY); CREATE TABLE typed (id int PRIMARY KEY, v text); CREATE TABLE tags (name text PRIMARY KEY);").await;
    exec(&dst, "CREATE TABLE typed (id int PRIMARY KEY, v varchar(10)); CREATE TABLE tags (name text PRIMARY KEY);").await;
    let before_all = dump(&dst, &TABLES).await;
    let e = run(src.clone(), dst.clone(), Config::default()).await;
    check(
        &e,
        ErrorName::SchemaMismatch,
        "extra is missing on the destination",
    );
    check(
        &e,
        ErrorName::SchemaMismatch,
        "v is text on the source but character varying(10)",
    );
    check(
        &e,
        ErrorName::SchemaMismatch,
        "public.typed has different columns",
    );
    exec(&src, "DROP TABLE extra, typed, tags").await;
    exec(&dst, "DROP TABLE typed, tags").await;

    // A role without the right to disable triggers on the destination.
    pg.create_role("plain", "plainpw").unwrap();
    pg.psql(
        "dst",
        "GRANT SELECT, INSERT, DELETE ON ALL TABLES IN SCHEMA public TO plain",
    )
    .unwrap();
    let e = run(
        src.clone(),
        pg.url_for("plain", "plainpw", "dst"),
        Config::default(),
    )
    .await;
    check(&e, ErrorName::Unauthorized, "session_replication_role");
    assert!(!e.to_string().contains("plainpw"), "{e}");
    // Granting exactly what docs/migration.md says makes it work.
    pg.psql(
        "postgres",
        "GRANT SET ON PARAMETER session_replication_role TO plain",
    )
    .unwrap();
    pg.psql("dst", "REVOKE DELETE ON acl FROM plain").unwrap();
    let e = run(
        src.clone(),
        pg.url_for("plain", "plainpw", "dst"),
        Config::default(),
    )
    .await;
    check(&e, ErrorName::Unauthorized, "DELETE on public.acl");

    assert_eq!(dump(&dst, &TABLES).await, before, "nothing was written");
    assert_eq!(before_all, before);
    pg.psql("dst", "GRANT DELETE ON acl TO plain").unwrap();
    let s = migrate(
        &src,
        &pg.url_for("plain", "plainpw", "dst"),
        &Config::default(),
        &o,
        &NoProgress,
    )
    .await
    .unwrap();
    assert!(s.rows_copied > 0);
    common::assert_same(&dump(&src, &TABLES).await, &dump(&dst, &TABLES).await);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn pg_children_moving_between_parents_in_separate_chunks() {
    let pg = server();
    let src = pg.create_database("src").unwrap();
    let dst = pg.create_database("dst").unwrap();
    let schema = "CREATE TABLE parent (id bigint PRIMARY KEY, name text UNIQUE);
        CREATE TABLE child (id bigint PRIMARY KEY, parent_id bigint NOT NULL, note text);
        CREATE INDEX child_parent ON child (parent_id);";
    exec(&src, schema).await;
    exec(&dst, schema).await;
    exec(
        &src,
        "INSERT INTO parent SELECT g, 'p' || g FROM generate_series(1, 100) g;
         INSERT INTO child SELECT g, 1 + g % 100, 'c' || g FROM generate_series(1, 1000) g;",
    )
    .await;
    let cfg = Config::from_yaml("tables: {child: {rangeKey: parent_id}}").unwrap();
    migrate(&src, &dst, &cfg, &opts(20, 1), &NoProgress)
        .await
        .unwrap();
    // Children of parent 2 move to parent 90 and back-and-forth between far parents; two
    // parents far apart swap their unique names.
    exec(
        &src,
        "UPDATE child SET parent_id = 90 WHERE parent_id = 2;
         UPDATE child SET parent_id = 3 WHERE id IN (89, 189);
         UPDATE parent SET name = 'tmp' WHERE id = 1; UPDATE parent SET name = 'p1' WHERE id = 99;
         UPDATE parent SET name = 'p99' WHERE id = 1;",
    )
    .await;
    for jobs in [1, 3] {
        migrate(&src, &dst, &cfg, &opts(20, jobs), &NoProgress)
            .await
            .unwrap_or_else(|e| panic!("jobs {jobs}: {e}"));
        assert_eq!(
            dump(&src, &["parent", "child"]).await,
            dump(&dst, &["parent", "child"]).await
        );
        exec(
            &src,
            "UPDATE child SET parent_id = 1 + (parent_id + 37) % 100 WHERE id % 7 = 0",
        )
        .await;
    }
}

/// A copy the destination refuses (a CHECK constraint, a unique key the source breaks): the
/// error names the SQLSTATE, table and constraint, never the row's values (PostgreSQL's
/// `detail` quotes them: `Failing row contains (…)`, `Key (email)=(…)`).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pg_refused_rows_are_never_quoted_in_errors() {
    let pg = server();
    let src = pg.create_database("src").unwrap();
    let dst = pg.create_database("dst").unwrap();
    exec(
        &src,
        "CREATE TABLE people(id bigint PRIMARY KEY, email text NOT NULL);
         INSERT INTO people VALUES (1, 'alice.private@example.com'), (2, 'bob@example.com');",
    )
    .await;
    exec(
        &dst,
        "CREATE TABLE people(id bigint PRIMARY KEY, email text NOT NULL
             CONSTRAINT no_private CHECK (email NOT LIKE '%private%'));",
    )
    .await;
    let e = migrate(&src, &dst, &Config::default(), &opts(100, 1), &NoProgress)
        .await
        .unwrap_err();
    let text = e.to_string();
    assert!(text.contains("SQLSTATE 23514"), "{text}");
    assert!(text.contains("no_private"), "{text}");
    assert!(
        !text.contains("alice"),
        "a row's value in the error: {text}"
    );
    assert!(!text.contains("Failing row"), "{text}");
}

/// Step Functions delivers a task at least once: the same chunk handed to two workers at the
/// same time. Both copies succeed (they take turns on the range), and the destination equals
/// the source. Without the turn-taking the second failed with a duplicate key.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn pg_the_same_chunk_copied_twice_at_once_succeeds_both_times() {
    let pg = server();
    let (src, dst) = pair(&pg, 2000, 9, false).await;
    let config = Config::default();
    let plan = stepops_migrate::plan(
        &src,
        &dst,
        &config,
        &stepops_migrate::PlanOptions {
            chunk_rows: 400,
            ..Default::default()
        },
    )
    .await
    .unwrap();
    assert!(plan.chunks.len() > 3, "{}", plan.chunks.len());
    for chunk in &plan.chunks {
        let (a, b) = tokio::join!(
            stepops_migrate::copy_chunk(&src, &dst, &config, chunk),
            stepops_migrate::copy_chunk(&src, &dst, &config, chunk)
        );
        let (a, b) = (a.unwrap(), b.unwrap());
        assert_eq!(a.rows_inserted, b.rows_inserted, "{}", chunk.table);
    }
    let v = stepops_migrate::verify(&src, &dst, &config, 1, 1, None)
        .await
        .unwrap();
    assert!(v.converged, "{v:?}");
    common::assert_same(&dump(&src, &TABLES).await, &dump(&dst, &TABLES).await);
}

/// A range key that allows NULL is refused before anything is written (rows whose key is NULL,
/// here on both sides, would be in no range and never compared nor copied).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pg_nullable_range_key_is_refused() {
    let pg = server();
    let src = pg.create_database("src").unwrap();
    let dst = pg.create_database("dst").unwrap();
    let ddl = "CREATE TABLE notes(id bigint, body text);";
    exec(&src, ddl).await;
    exec(&dst, ddl).await;
    exec(
        &src,
        "INSERT INTO notes VALUES (1, 'a'), (NULL, 'source only');",
    )
    .await;
    exec(&dst, "INSERT INTO notes VALUES (NULL, 'destination only');").await;
    let before = dump(&dst, &["notes"]).await;
    let config = Config::from_yaml("tables: {notes: {rangeKey: id}}").unwrap();
    let e = migrate(&src, &dst, &config, &opts(10, 1), &NoProgress)
        .await
        .unwrap_err();
    assert_eq!(e.error_name(), ErrorName::SchemaMismatch, "{e}");
    assert!(e.to_string().contains("range key id allows NULL"), "{e}");
    assert_eq!(dump(&dst, &["notes"]).await, before, "nothing written");
}

/// One writer per destination: a run's lease refuses another run (Stepops.Busy naming the
/// holder), is renewed by its own run, lapses after its time, and is released only by its run.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pg_destination_lease_admits_one_run_at_a_time() {
    use stepops_migrate::lease;
    let pg = server();
    let dst = pg.create_database("dst").unwrap();
    let (a, b) = (
        "arn:aws:states:eu-west-1:1:execution:m:a",
        "arn:…:execution:m:b",
    );
    let short = Duration::from_secs(2);
    lease::hold(&dst, a, short).await.unwrap();
    lease::hold(&dst, a, short).await.unwrap();
    let e = lease::hold(&dst, b, short).await.unwrap_err();
    assert_eq!(e.error_name(), ErrorName::Busy, "{e}");
    assert!(e.to_string().contains(a), "names the holder: {e}");
    let holder = lease::holder(&dst).await.unwrap().unwrap();
    assert_eq!(holder.run, a);
    assert!(holder.holder.ends_with(&format!("/{}", std::process::id())));
    assert!(
        !lease::release(&dst, b).await.unwrap(),
        "only its run releases it"
    );
    // Not renewed: it lapses, and the other run takes it.
    tokio::time::sleep(short + Duration::from_millis(500)).await;
    lease::hold(&dst, b, short).await.unwrap();
    assert_eq!(lease::holder(&dst).await.unwrap().unwrap().run, b);
    assert!(lease::release(&dst, b).await.unwrap());
    assert_eq!(lease::holder(&dst).await.unwrap(), None);
    lease::hold(&dst, a, short).await.unwrap();
}

/// A step's statement that runs past its `statementTimeouts` limit is cancelled by the server
/// and fails `Stepops.Transient` (retried by the machine), instead of holding the step for
/// hours; the config key is checked like the others.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pg_a_statement_past_its_step_timeout_is_transient() {
    let pg = server();
    let (src, dst) = pair(&pg, 300, 3, false).await;
    let config = Config::from_yaml("statementTimeouts: {copy: 1}").unwrap();
    assert_eq!(config.statement_timeouts().copy, 1);
    assert_eq!(config.statement_timeouts().plan, 6 * 3600, "default kept");
    let plan = stepops_migrate::plan(&src, &dst, &config, &Default::default())
        .await
        .unwrap();
    let chunk = plan.chunks.first().expect("a chunk to copy").clone();
    // Another session holds the destination table (lock_timeout is 60 s): the copy's first
    // statement waits past the 1 s limit and is cancelled.
    let blocker = stepops_pg::connect(&dst).await.unwrap();
    blocker
        .batch_execute(&format!(
            "BEGIN; LOCK TABLE {} IN ACCESS EXCLUSIVE MODE",
            chunk.table
        ))
        .await
        .unwrap();
    let started = std::time::Instant::now();
    let e = stepops_migrate::copy_chunk(&src, &dst, &config, &chunk)
        .await
        .unwrap_err();
    assert_eq!(e.error_name(), ErrorName::Transient, "{e}");
    assert!(
        started.elapsed() < Duration::from_secs(30),
        "{:?}",
        started.elapsed()
    );
    blocker.batch_execute("ROLLBACK").await.unwrap();
    stepops_migrate::copy_chunk(&src, &dst, &config, &chunk)
        .await
        .unwrap();
    let e = Config::from_yaml("statementTimeouts: {copy: 9999999}").unwrap_err();
    assert!(e.to_string().contains("statementTimeouts.copy"), "{e}");
}
