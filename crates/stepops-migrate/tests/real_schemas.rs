//! An ordinary application database migrates with no configuration: several schemas (two
//! holding a table of the same name, one with a dot and upper case in its name), keys of every
//! kind (uuid, text under different collations on the two sides, numeric, timestamptz, a
//! composite key, a table without a key holding duplicate rows), identity columns GENERATED
//! ALWAYS, enums, domains, composite and range types. A diverged destination (inserts, updates,
//! deletes, keys moved across chunk bounds, a unique value moved to another row) converges in
//! one run, a second run copies nothing, and an independent row-by-row dump finds no difference.
//! Real PostgreSQL servers started by the test harness.

use stepops_error::{ErrorName, Named};
use stepops_migrate::{Config, KeyKind, MigrateOptions, Migration, NoProgress, migrate};
use stepops_testkit::PgServer;
use tokio_postgres::Client;

async fn client(url: &str) -> Client {
    stepops_pg::connect(url).await.unwrap()
}

async fn exec(url: &str, sql: &str) {
    client(url)
        .await
        .batch_execute(sql)
        .await
        .unwrap_or_else(|e| panic!("{e:?}\n{sql}"));
}

/// Every table of `TABLES` as sorted row texts: independent of the engine's checksums.
async fn dump(url: &str) -> Vec<(String, Vec<String>)> {
    let c = client(url).await;
    c.batch_execute("SET TimeZone = 'UTC'; SET extra_float_digits = 3")
        .await
        .unwrap();
    let mut out = Vec::new();
    for t in TABLES {
        let rows = c
            .query(
                &format!("SELECT zz::text FROM {t} zz ORDER BY zz::text COLLATE \"C\""),
                &[],
            )
            .await
            .unwrap();
        out.push((t.to_owned(), rows.iter().map(|r| r.get(0)).collect()));
    }
    out
}

const TABLES: [&str; 13] = [
    "app.users",
    "app.tags",
    "app.prices",
    "app.readings",
    "app.memberships",
    "app.counters",
    "app.items",
    "audit.items",
    "audit.log",
    "app.shapes",
    "\"Odd.Schema\".\"Ünïcode \"\"T\"\"\"",
    "app.metrics",
    "app.handles",
];

/// The schema; `coll` is the collation of the text keys (different on the two sides).
fn ddl(coll: &str) -> String {
    format!(
        r#"CREATE SCHEMA app; CREATE SCHEMA audit; CREATE SCHEMA "Odd.Schema";
        CREATE TYPE app.mood AS ENUM ('sad', 'ok', 'happy');
        CREATE DOMAIN app.email AS text CHECK (VALUE LIKE '%@%');
        CREATE TYPE app.pair AS (a int, b text);
        CREATE TABLE app.users (id uuid PRIMARY KEY, email app.email NOT NULL, mood app.mood, moods app.mood[]);
        CREATE TABLE app.tags (name text COLLATE "{coll}" PRIMARY KEY, n int);
        CREATE TABLE app.prices (amount numeric PRIMARY KEY, label text);
        CREATE TABLE app.readings (at timestamptz PRIMARY KEY, v double precision);
        CREATE TABLE app.memberships (user_id uuid, role text COLLATE "{coll}", since date,
                                      PRIMARY KEY (user_id, role));
        CREATE TABLE app.counters (id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
                                   code text UNIQUE NOT NULL, v int);
        CREATE TABLE app.items (id int PRIMARY KEY, v text);
        CREATE TABLE audit.items (id int PRIMARY KEY, v text, w int);
        CREATE TABLE audit.log (at timestamptz, who text, what text);
        CREATE TABLE app.shapes (id int PRIMARY KEY, p app.pair, r int4range, ps app.pair[]);
        CREATE TABLE "Odd.Schema"."Ünïcode ""T""" (k text PRIMARY KEY, v int);
        CREATE TABLE app.metrics (id int, at date, v int, PRIMARY KEY (id, at)) PARTITION BY RANGE (at);
        CREATE TABLE app.metrics_2026a PARTITION OF app.metrics FOR VALUES FROM ('2026-01-01') TO ('2026-07-01');
        CREATE TABLE app.metrics_2026b PARTITION OF app.metrics FOR VALUES FROM ('2026-07-01') TO ('2027-01-01');
        CREATE EXTENSION citext SCHEMA app; CREATE EXTENSION hstore SCHEMA app;
        CREATE TABLE app.handles (handle app.citext PRIMARY KEY, attrs app.hstore);"#
    )
}

/// The same data on both sides before they diverge.
const FILL: &str = r#"
    INSERT INTO app.users SELECT md5('u' || g)::uuid, 'u' || g || '@x.org',
        (ARRAY['sad','ok','happy'])[1 + g % 3]::app.mood, ARRAY['ok'::app.mood]
        FROM generate_series(1, 3000) g;
    INSERT INTO app.tags SELECT t, g FROM generate_series(1, 700) g,
        LATERAL (SELECT (ARRAY['Zoë','zoe','Éclair','eclair','ábc','Abc','abc','_x','ß','Straße'])[1 + g % 10] || g AS t) s;
    INSERT INTO app.prices SELECT g / 7.0, 'p' || g FROM generate_series(1, 1500) g;
    INSERT INTO app.readings SELECT timestamptz '2026-01-01 00:00:00+00' + g * interval '37 seconds', g / 3.0
        FROM generate_series(1, 1500) g;
    INSERT INTO app.memberships SELECT md5('u' || (g % 300))::uuid, r, date '2026-01-01' + g
        FROM generate_series(1, 900) g, LATERAL (SELECT (ARRAY['admin','Admin','réader','writer'])[1 + g % 4] || (g / 300) AS r) s;
    INSERT INTO app.counters (code, v) SELECT 'c' || g, g FROM generate_series(1, 400) g;
    INSERT INTO app.items SELECT g, 'app ' || g FROM generate_series(1, 500) g;
    INSERT INTO audit.items SELECT g, 'audit ' || g, g FROM generate_series(1, 500) g;
    INSERT INTO audit.log SELECT timestamptz '2026-02-01 00:00:00+00' + (g % 50) * interval '1 hour', 'w' || (g % 7), 'did ' || (g % 11)
        FROM generate_series(1, 600) g;
    INSERT INTO app.shapes SELECT g, ROW(g, 'b' || g)::app.pair, int4range(g, g + 10), ARRAY[ROW(g, 'x')::app.pair]
        FROM generate_series(1, 300) g;
    INSERT INTO "Odd.Schema"."Ünïcode ""T""" SELECT 'k' || g, g FROM generate_series(1, 200) g;
    INSERT INTO app.metrics SELECT g, date '2026-01-01' + (g % 360), g FROM generate_series(1, 900) g;
    INSERT INTO app.handles SELECT (ARRAY['Bob','alice','Zoë'])[1 + g % 3] || g, ('k=>' || g)::app.hstore FROM generate_series(1, 300) g;
"#;

/// Changes on the source after the destination was filled.
const SOURCE_CHANGES: &str = r#"
    INSERT INTO app.users SELECT md5('new' || g)::uuid, 'n' || g || '@x.org', 'happy', NULL FROM generate_series(1, 40) g;
    UPDATE app.users SET mood = 'sad' WHERE id IN (SELECT id FROM app.users ORDER BY id LIMIT 25);
    DELETE FROM app.users WHERE id IN (SELECT id FROM app.users ORDER BY id DESC LIMIT 10);
    UPDATE app.tags SET name = 'moved ' || name WHERE n % 97 = 0;
    UPDATE app.tags SET n = -n WHERE n % 53 = 0;
    INSERT INTO app.tags VALUES ('ZZZ new', 1), ('aaa new', 2), ('Ωmega', 3);
    UPDATE app.prices SET amount = amount + 1000 WHERE label IN ('p5', 'p500', 'p1499');
    DELETE FROM app.prices WHERE label = 'p9';
    UPDATE app.readings SET v = v + 1 WHERE extract(minute FROM at)::int % 13 = 0;
    INSERT INTO app.readings VALUES ('2025-12-31 23:00:00+00', -1), ('2030-01-01 00:00:00+00', 99);
    UPDATE app.memberships SET since = since + 1 WHERE role LIKE 'Admin%';
    DELETE FROM app.memberships WHERE role = 'writer1';
    INSERT INTO app.memberships VALUES (md5('u1')::uuid, 'Éditor', '2026-03-01');
    UPDATE app.counters SET code = 'moved' WHERE id = 10;
    UPDATE app.counters SET code = 'c10' WHERE id = 20;
    INSERT INTO app.counters (code, v) VALUES ('late', 1);
    UPDATE app.items SET v = 'changed' WHERE id = 7;
    DELETE FROM audit.items WHERE id BETWEEN 100 AND 120;
    INSERT INTO audit.log SELECT at, who, what FROM audit.log WHERE who = 'w3' LIMIT 5;
    UPDATE app.shapes SET p = ROW(0, 'zero')::app.pair, r = int4range(0, 1) WHERE id = 42;
    UPDATE "Odd.Schema"."Ünïcode ""T""" SET v = 0 WHERE k = 'k17';
    UPDATE app.metrics SET at = at + 200 WHERE id % 101 = 0 AND at < '2026-06-01';
    UPDATE app.handles SET attrs = 'k=>changed' WHERE handle::text = 'Bob3';
"#;

/// Changes on the destination that the migration must undo.
const DEST_CHANGES: &str = r#"
    INSERT INTO app.users VALUES ('00000000-0000-0000-0000-000000000001', 'stray@x.org', 'ok', NULL);
    DELETE FROM app.tags WHERE n % 89 = 0;
    INSERT INTO app.tags VALUES ('dest only', 0);
    DELETE FROM app.readings WHERE v > 400;
    DELETE FROM audit.log WHERE who = 'w5';
    INSERT INTO audit.log VALUES (NULL, 'ghost', NULL), (NULL, 'ghost', NULL);
    UPDATE "Odd.Schema"."Ünïcode ""T""" SET v = 1 WHERE k = 'k18';
"#;

fn opts() -> MigrateOptions {
    MigrateOptions {
        chunk_rows: 97,
        jobs: 3,
        ..MigrateOptions::default()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_application_schema_migrates_with_no_configuration() {
    let pg = PgServer::start().unwrap();
    let src = pg.create_database("src").unwrap();
    let dst = pg.create_database("dst").unwrap();
    exec(&src, &ddl("C")).await;
    exec(&dst, &ddl("und-x-icu")).await;
    exec(&src, FILL).await;
    exec(&dst, FILL).await;
    exec(&src, SOURCE_CHANGES).await;
    exec(&dst, DEST_CHANGES).await;
    assert_ne!(dump(&src).await, dump(&dst).await);

    let config = Config::default();
    let m = Migration::open(&src, &dst, &config).await.unwrap();
    let kinds: Vec<(&str, KeyKind, &str)> = m
        .tables()
        .iter()
        .map(|t| (t.name.as_str(), t.key, t.range_key.as_str()))
        .collect();
    for expected in [
        ("app.users", KeyKind::Ordered, "id"),
        ("app.tags", KeyKind::Ordered, "name"),
        ("app.memberships", KeyKind::Ordered, "user_id, role"),
        ("app.counters", KeyKind::Integer, "id"),
        ("audit.log", KeyKind::Whole, ""),
        (
            "\"Odd.Schema\".\"Ünïcode \"\"T\"\"\"",
            KeyKind::Ordered,
            "k",
        ),
        ("app.metrics", KeyKind::Ordered, "id, at"),
        ("app.handles", KeyKind::Ordered, "handle"),
    ] {
        assert!(kinds.contains(&expected), "{expected:?} in {kinds:?}");
    }
    assert_eq!(m.tables().len(), TABLES.len(), "{kinds:?}");
    let plan = m
        .plan(&stepops_migrate::PlanOptions {
            chunk_rows: 97,
            dry_run: true,
            ..Default::default()
        })
        .await
        .unwrap();
    for line in plan.to_manifest().lines() {
        assert!(line.len() < 256 * 1024, "a manifest line fits a payload");
    }
    let mut differing = plan.differing_tables();
    differing.sort();
    let mut all: Vec<String> = TABLES.iter().map(|t| t.to_string()).collect();
    all.sort();
    assert_eq!(differing, all, "every table was changed on one side");
    // Scattered changes in a keyed table are found key by key, not as whole bins or tables.
    let users = plan.tables.iter().find(|t| t.table == "app.users").unwrap();
    assert!(
        users.estimated_rows < 300,
        "about 75 of 3,000 users differ: {users:?}"
    );
    let whole = plan.chunks.iter().filter(|c| c.whole_table).count();
    assert_eq!(whole, 1, "the table without a key is one whole-table chunk");

    let summary = migrate(&src, &dst, &config, &opts(), &NoProgress)
        .await
        .unwrap();
    assert!(summary.rows_copied > 0, "{summary:?}");
    assert_eq!(dump(&src).await, dump(&dst).await, "row by row, all equal");
    // Sequences of identity columns were synced.
    let next: i64 = client(&dst)
        .await
        .query_one(
            "SELECT nextval(pg_get_serial_sequence('app.counters', 'id'))",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert!(
        next > 401,
        "identity sequence moved past the copied keys: {next}"
    );

    let again = migrate(&src, &dst, &config, &opts(), &NoProgress)
        .await
        .unwrap();
    assert_eq!(
        (again.chunks, again.rows_copied, again.rows_deleted),
        (0, 0, 0),
        "a second run copies nothing: {again:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn schemas_and_patterns_select_and_bad_ones_are_refused() {
    let pg = PgServer::start().unwrap();
    let src = pg.create_database("src").unwrap();
    let dst = pg.create_database("dst").unwrap();
    exec(&src, &ddl("C")).await;
    exec(&dst, &ddl("C")).await;
    exec(&src, FILL).await;
    let before = dump(&dst).await;
    let names = |c: &str| {
        let (src, dst) = (src.clone(), dst.clone());
        let c = Config::from_yaml(c).unwrap();
        async move {
            Migration::open(&src, &dst, &c).await.map(|m| {
                m.tables()
                    .iter()
                    .map(|t| t.name.clone())
                    .collect::<Vec<_>>()
            })
        }
    };
    let mut audit = names("include: [\"audit.*\"]").await.unwrap();
    audit.sort();
    assert_eq!(audit, ["audit.items", "audit.log"]);
    let only_app = names("schemas: [app]\nexclude: [\"*.item?\", app.shapes]")
        .await
        .unwrap();
    assert!(
        only_app.iter().all(|n| n.starts_with("app.")),
        "{only_app:?}"
    );
    assert!(
        !only_app
            .iter()
            .any(|n| n == "app.items" || n == "app.shapes")
    );
    let odd = names("include: ['\"Odd.Schema\".*']").await.unwrap();
    assert_eq!(odd, ["\"Odd.Schema\".\"Ünïcode \"\"T\"\"\""]);

    for (yaml, name, says) in [
        (
            "include: [users]",
            ErrorName::InvalidInput,
            "include: users",
        ),
        ("schemas: [nope]", ErrorName::InvalidInput, "names nope"),
        (
            "tables: {app.users: {rangeKey: nope}}",
            ErrorName::InvalidInput,
            "not one of its columns",
        ),
        (
            "include: [\"a.b.c\"]",
            ErrorName::InvalidInput,
            "more than one unquoted dot",
        ),
    ] {
        let e = match Config::from_yaml(yaml) {
            Err(e) => stepops_migrate::MigrateError::from(e),
            Ok(c) => migrate(&src, &dst, &c, &opts(), &NoProgress)
                .await
                .unwrap_err(),
        };
        assert_eq!(e.error_name(), name, "{yaml}: {e}");
        assert!(e.to_string().contains(says), "{yaml}: {e}");
    }
    // A database with no table at all: never "in sync".
    let empty = pg.create_database("empty").unwrap();
    let e = migrate(&empty, &dst, &Config::default(), &opts(), &NoProgress)
        .await
        .unwrap_err();
    assert_eq!(e.error_name(), ErrorName::NotFound, "{e}");
    assert!(e.to_string().contains("no table to migrate"), "{e}");
    assert_eq!(dump(&dst).await, before, "nothing written");
}

/// Large objects are not migrated: a table holding `oid` columns is refused up front, unless
/// excluded.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn large_object_columns_are_refused_unless_excluded() {
    let pg = PgServer::start().unwrap();
    let src = pg.create_database("src").unwrap();
    let dst = pg.create_database("dst").unwrap();
    let ddl =
        "CREATE TABLE docs (id int PRIMARY KEY, body oid); CREATE TABLE t (id int PRIMARY KEY);";
    exec(&src, ddl).await;
    exec(&dst, ddl).await;
    exec(&src, "INSERT INTO t VALUES (1)").await;
    let e = migrate(&src, &dst, &Config::default(), &opts(), &NoProgress)
        .await
        .unwrap_err();
    assert_eq!(e.error_name(), ErrorName::SchemaMismatch, "{e}");
    assert!(
        e.to_string()
            .contains("public.docs has large-object columns (body)"),
        "{e}"
    );
    let c = Config::from_yaml("exclude: [docs]").unwrap();
    let s = migrate(&src, &dst, &c, &opts(), &NoProgress).await.unwrap();
    assert_eq!(s.rows_copied, 1);
}

/// SQLite: text and composite primary keys, a `WITHOUT ROWID` table, a table without a key
/// holding duplicate rows: the same algorithm, converged in one run, then a no-op.
#[tokio::test]
async fn sqlite_text_composite_and_keyless_tables_converge() {
    let dir = tempfile::tempdir().unwrap();
    let (src, dst) = (dir.path().join("src.db"), dir.path().join("dst.db"));
    let ddl = "CREATE TABLE tags (name TEXT PRIMARY KEY NOT NULL, n INTEGER);
        CREATE TABLE member (user_id TEXT NOT NULL, role TEXT NOT NULL, since TEXT, PRIMARY KEY (user_id, role)) WITHOUT ROWID;
        CREATE TABLE log (at TEXT, who TEXT, what TEXT);
        CREATE TABLE plain (id INTEGER PRIMARY KEY, v TEXT);";
    let fill = "WITH RECURSIVE g(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM g WHERE i < 800)
        INSERT INTO tags SELECT (CASE i % 4 WHEN 0 THEN 'Zoë' WHEN 1 THEN 'zoe' WHEN 2 THEN 'Éclair' ELSE 'abc' END) || i, i FROM g;
        WITH RECURSIVE g(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM g WHERE i < 600)
        INSERT INTO member SELECT 'u' || (i % 150), (CASE i % 4 WHEN 0 THEN 'admin' WHEN 1 THEN 'Admin' WHEN 2 THEN 'réader' ELSE 'w' END) || (i / 150), 'd' || i FROM g;
        WITH RECURSIVE g(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM g WHERE i < 300)
        INSERT INTO log SELECT 'h' || (i % 20), 'w' || (i % 3), 'x' FROM g;
        INSERT INTO plain VALUES (1, 'a'), (2, 'b');";
    for (path, extra) in [
        (&src, "UPDATE tags SET n = -n WHERE n % 37 = 0; UPDATE tags SET name = 'moved ' || name WHERE n % 101 = 0;
                DELETE FROM member WHERE role = 'w1'; INSERT INTO member VALUES ('u1', 'Éditor', 'new');
                INSERT INTO log SELECT * FROM log WHERE who = 'w1' LIMIT 3;"),
        (&dst, "DELETE FROM tags WHERE n % 41 = 0; INSERT INTO tags VALUES ('dest only', 0);
                DELETE FROM log WHERE who = 'w2'; INSERT INTO log VALUES (NULL, 'ghost', NULL), (NULL, 'ghost', NULL);"),
    ] {
        let c = rusqlite::Connection::open(path).unwrap();
        c.execute_batch(ddl).unwrap();
        c.execute_batch(fill).unwrap();
        c.execute_batch(extra).unwrap();
    }
    let dump = |p: &std::path::Path| -> Vec<String> {
        let c = rusqlite::Connection::open(p).unwrap();
        let mut out = Vec::new();
        for (t, cols) in [
            ("tags", "name, n"),
            ("member", "user_id, role, since"),
            ("log", "at, who, what"),
            ("plain", "id, v"),
        ] {
            let mut st = c
                .prepare(&format!("SELECT '{t}:' || json_array({cols}) FROM {t}"))
                .unwrap();
            let mut rows: Vec<String> = st
                .query_map([], |r| r.get(0))
                .unwrap()
                .map(Result::unwrap)
                .collect();
            rows.sort();
            out.extend(rows);
        }
        out
    };
    assert_ne!(dump(&src), dump(&dst));
    let (s, d) = (
        format!("sqlite:{}", src.display()),
        format!("sqlite:{}", dst.display()),
    );
    let m = Migration::open(&s, &d, &Config::default()).await.unwrap();
    let kinds: Vec<(&str, KeyKind)> = m
        .tables()
        .iter()
        .map(|t| (t.name.as_str(), t.key))
        .collect();
    for k in [
        ("tags", KeyKind::Ordered),
        ("member", KeyKind::Ordered),
        ("log", KeyKind::Whole),
        ("plain", KeyKind::Integer),
    ] {
        assert!(kinds.contains(&k), "{k:?} in {kinds:?}");
    }
    migrate(&s, &d, &Config::default(), &opts(), &NoProgress)
        .await
        .unwrap();
    assert_eq!(dump(&src), dump(&dst));
    let again = migrate(&s, &d, &Config::default(), &opts(), &NoProgress)
        .await
        .unwrap();
    assert_eq!((again.chunks, again.rows_copied), (0, 0), "{again:?}");
}
