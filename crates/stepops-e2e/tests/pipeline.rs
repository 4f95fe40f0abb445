//! The whole pipeline with the runner: the project's real migrate.asl.json and template.yaml on
//! the local engine (through `stepops-embedded`), the real validate-input/notify logic, runner
//! workers in-process over HTTP; real SQLite files and a real PostgreSQL server. Checks
//! `set-status` (read-only destination during the copy) and the exact row counts that `verify`
//! reads from the copy Map's ResultWriter files.

use serde_json::{Value, json};
use stepops_embedded::{ALL_LOCAL_TARGETS, LocalPipeline, PipelineOptions, RunSummary};
use stepops_sample::{Fractions, SampleSpec};

async fn sample(url: &str, rows: u64, seed: u64) {
    stepops_sample::sample(
        url,
        SampleSpec {
            rows,
            seed,
            replace: false,
            progress: None,
        },
    )
    .await
    .expect("sample");
}

async fn make_stale(url: &str) {
    let f = Fractions {
        update: 0.03,
        delete: 0.02,
        insert: 0.02,
    };
    stepops_sample::mutate(url, 9, f).await.expect("mutate");
}

async fn assert_equal(source: &str, dest: &str) {
    let a = stepops_sample::digest(source).await.unwrap();
    let b = stepops_sample::digest(dest).await.unwrap();
    assert_eq!(a, b, "destination differs from source");
}

fn options(dir: &std::path::Path) -> PipelineOptions {
    let mut o = PipelineOptions::new(dir.join("stack"));
    o.allowed_targets = ALL_LOCAL_TARGETS.into();
    o
}

const STATUS: &str = r#"{"table": "stack_status", "column": "status", "readOnly": "READ_ONLY", "readWrite": "READ_WRITE"}"#;

fn input(source: &str, dest: &str, config: Value) -> Value {
    json!({
        "environment": "dev",
        "source": {"url": source},
        "dest": {"url": dest},
        "config": config,
        "chunkRows": 200,
        "maxConcurrency": 4,
        "readOnlyDuringCopy": true,
    })
}

/// The `set-status` tasks of the execution: (state, output) in order.
fn set_status_outputs(pipeline: &LocalPipeline, arn: &str) -> Vec<(String, Value)> {
    let history = pipeline.engine().history(arn).unwrap();
    let mut current = String::new();
    let mut out = Vec::new();
    for e in history {
        match e.event_type.as_str() {
            "TaskStateEntered" => {
                current = e.details["name"].as_str().unwrap_or_default().to_owned();
            }
            "ActivitySucceeded" if current.starts_with("SetDestination") => {
                let output: Value =
                    serde_json::from_str(e.details["output"].as_str().unwrap()).unwrap();
                out.push((current.clone(), output));
            }
            _ => {}
        }
    }
    out
}

fn assert_succeeded(s: &RunSummary) {
    assert!(
        s.succeeded(),
        "{} {:?} {:?} in {:?}",
        s.status,
        s.error,
        s.cause,
        s.failed_step
    );
}

/// The exact rows of the summary (read by `verify` from the ResultWriter files) agree with the
/// workers' own count of their copy outputs, and the notification prints them.
fn assert_exact_rows(pipeline: &LocalPipeline, s: &RunSummary) {
    let p = pipeline.progress();
    assert!(s.rows_copied > 0, "{s:?}");
    assert_eq!(
        (s.chunks_copied, s.rows_copied, s.rows_deleted),
        (p.chunks_copied, p.rows_inserted, p.rows_deleted),
        "summary vs the workers' counters: {s:?} {p:?}"
    );
    assert_eq!(s.chunks_copied, s.chunks);
    let text = &s.notifications[0].text;
    assert!(
        text.contains(&format!(
            "rows copied: {}, rows deleted: {}",
            s.rows_copied, s.rows_deleted
        )),
        "{text}"
    );
}

fn sqlite_status(path: &std::path::Path) -> String {
    rusqlite::Connection::open(path)
        .unwrap()
        .query_row("SELECT status FROM stack_status", [], |r| r.get(0))
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sqlite_read_only_during_copy_through_the_status_table() {
    let dir = tempfile::tempdir().unwrap();
    let (src_path, dst_path) = (dir.path().join("source.db"), dir.path().join("dest.db"));
    let source = format!("sqlite:{}", src_path.display());
    let dest = format!("sqlite:{}", dst_path.display());
    sample(&source, 3_000, 3).await;
    std::fs::copy(&src_path, &dst_path).unwrap();
    make_stale(&dest).await;
    rusqlite::Connection::open(&dst_path)
        .unwrap()
        .execute_batch(
            "CREATE TABLE stack_status (id INTEGER PRIMARY KEY, status TEXT NOT NULL);
             INSERT INTO stack_status VALUES (1, 'READ_WRITE');",
        )
        .unwrap();

    let pipeline = LocalPipeline::start(options(dir.path())).await.unwrap();
    let config: Value = json!({"status": serde_json::from_str::<Value>(STATUS).unwrap()});
    let arn = pipeline
        .start_migration(&input(&source, &dest, config.clone()))
        .unwrap();
    let s = pipeline.wait(&arn).await.unwrap();
    assert_succeeded(&s);
    assert_equal(&source, &dest).await;
    assert_eq!(
        set_status_outputs(&pipeline, &arn),
        vec![
            (
                "SetDestinationReadOnly".to_owned(),
                json!({"readOnly": true, "mechanism": "statusTable", "changed": true})
            ),
            (
                "SetDestinationReadWrite".to_owned(),
                json!({"readOnly": false, "mechanism": "statusTable", "changed": true})
            ),
        ]
    );
    assert_eq!(sqlite_status(&dst_path), "READ_WRITE", "ends read-write");
    assert_exact_rows(&pipeline, &s);

    // A failure after the destination went read-only leaves it read-only, and the notification
    // says so: a range key that is not a column fails the plan.
    let mut bad = config;
    bad["tables"] = json!({"users": {"rangeKey": "no_such_column"}});
    let arn = pipeline
        .start_migration(&input(&source, &dest, bad))
        .unwrap();
    let f = pipeline.wait(&arn).await.unwrap();
    assert_eq!(f.status, "FAILED", "{f:?}");
    assert_eq!(f.failed_step.as_deref(), Some("Plan"));
    assert_eq!(sqlite_status(&dst_path), "READ_ONLY", "left read-only");
    let text = &f.notifications[0].text;
    assert!(
        text.contains("The destination is still READ-ONLY"),
        "{text}"
    );
    pipeline.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn postgres_read_only_during_copy_through_the_database_default() {
    let pg = stepops_testkit::PgServer::start().expect(
        "PostgreSQL server binaries are needed (initdb, postgres): install postgresql (scripts/install-deps.sh)",
    );
    let source = pg.create_database("src").unwrap();
    let dest = pg.create_database("dst").unwrap();
    sample(&source, 3_000, 3).await;
    sample(&dest, 2_500, 3).await;
    make_stale(&dest).await;

    let dir = tempfile::tempdir().unwrap();
    let pipeline = LocalPipeline::start(options(dir.path())).await.unwrap();
    let arn = pipeline
        .start_migration(&input(&source, &dest, json!({})))
        .unwrap();
    let s = pipeline.wait(&arn).await.unwrap();
    assert_succeeded(&s);
    // plan, copy and verify wrote and read while new sessions of other clients were read-only.
    assert_equal(&source, &dest).await;
    let outputs = set_status_outputs(&pipeline, &arn);
    assert_eq!(outputs.len(), 2, "{outputs:?}");
    assert_eq!(
        outputs[0].1,
        json!({"readOnly": true, "mechanism": "databaseDefault", "changed": true})
    );
    assert_eq!(outputs[1].1["readOnly"], false);
    // Read-write again for everyone: the database-level setting is off.
    assert_eq!(
        pg.psql(
            "dst",
            "SELECT setconfig::text FROM pg_db_role_setting WHERE setdatabase = \
             (SELECT oid FROM pg_database WHERE datname = 'dst')"
        )
        .unwrap(),
        "{default_transaction_read_only=off}"
    );
    pg.psql("dst", "CREATE TABLE written_after (id int)")
        .unwrap();
    assert_exact_rows(&pipeline, &s);
    pipeline.shutdown().await;
}
