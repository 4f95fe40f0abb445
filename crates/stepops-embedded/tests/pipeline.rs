//! End to end: the project's real migrate.asl.json and template.yaml on the local engine, the
//! real validate-input/notify logic and the real runner code in-process (over HTTP through
//! aws-sdk-sfn), on SQLite files and PostgreSQL. The destination is compared with the source
//! independently of the migration engine (`stepops_sample::digest`: every row, in key order).

use std::time::Duration;

use serde_json::{Value, json};
use stepops_embedded::{ALL_LOCAL_TARGETS, LocalPipeline, PipelineOptions, RunSummary};
use stepops_sample::{Fractions, SampleSpec};

async fn sample(url: &str, rows: u64) {
    stepops_sample::sample(
        url,
        SampleSpec {
            rows,
            seed: 3,
            replace: false,
            progress: None,
        },
    )
    .await
    .expect("sample source");
}

async fn make_stale(url: &str) {
    let report = stepops_sample::mutate(
        url,
        9,
        Fractions {
            update: 0.03,
            delete: 0.02,
            insert: 0.02,
        },
    )
    .await
    .expect("mutate");
    let (u, d, i) = report.totals();
    assert!(u > 0 && d > 0 && i > 0, "the destination must be stale");
}

async fn assert_equal(source: &str, dest: &str) {
    let a = stepops_sample::digest(source).await.unwrap();
    let b = stepops_sample::digest(dest).await.unwrap();
    assert_eq!(a.len(), 5);
    assert_eq!(a, b, "destination differs from source");
}

async fn assert_differ(source: &str, dest: &str) {
    let a = stepops_sample::digest(source).await.unwrap();
    let b = stepops_sample::digest(dest).await.unwrap();
    assert_ne!(a, b, "the test needs a stale destination");
}

fn input(source: &str, dest: &str, chunk_rows: u64) -> Value {
    json!({
        "environment": "dev",
        "source": {"url": source},
        "dest": {"url": dest},
        "chunkRows": chunk_rows,
        "maxConcurrency": 4,
    })
}

fn options(dir: &std::path::Path) -> PipelineOptions {
    let mut o = PipelineOptions::new(dir.join("stack"));
    o.allowed_targets = ALL_LOCAL_TARGETS.into();
    o
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

/// Runs, checks equality, runs again: the second run plans and copies nothing.
async fn migrate_twice(pipeline: &LocalPipeline, source: &str, dest: &str, chunk_rows: u64) {
    assert_differ(source, dest).await;
    let arn = pipeline
        .start_migration(&input(source, dest, chunk_rows))
        .unwrap();
    let first = pipeline.wait(&arn).await.unwrap();
    assert_succeeded(&first);
    assert!(
        first.chunks > 0 && first.chunks_copied == first.chunks,
        "{first:?}"
    );
    assert!(first.rows_copied > 0, "{first:?}");
    assert_eq!(first.tables, 5);
    assert_eq!(first.notifications.len(), 1);
    assert!(first.notifications[0].subject.contains("succeeded"));
    assert_equal(source, dest).await;

    pipeline.reset_progress();
    let arn = pipeline
        .start_migration(&input(source, dest, chunk_rows))
        .unwrap();
    let second = pipeline.wait(&arn).await.unwrap();
    assert_succeeded(&second);
    assert_eq!(second.chunks, 0, "{second:?}");
    assert_eq!(second.chunks_copied, 0);
    assert_eq!(second.rows_copied + second.rows_deleted, 0);
    assert_equal(source, dest).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sqlite_end_to_end_then_a_second_run_copies_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let source = format!("sqlite:{}", dir.path().join("source.db").display());
    let dest = format!("sqlite:{}", dir.path().join("dest.db").display());
    sample(&source, 4_000).await;
    std::fs::copy(dir.path().join("source.db"), dir.path().join("dest.db")).unwrap();
    make_stale(&dest).await;

    let pipeline = LocalPipeline::start(options(dir.path())).await.unwrap();
    migrate_twice(&pipeline, &source, &dest, 200).await;
    pipeline.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn postgresql_end_to_end_then_a_second_run_copies_nothing() {
    let pg = stepops_testkit::PgServer::start().expect(
        "PostgreSQL server binaries are needed (initdb, postgres): install postgresql (scripts/install-deps.sh)",
    );
    let source = pg.create_database("src").unwrap();
    let dest = pg.create_database("dst").unwrap();
    sample(&source, 4_000).await;
    // The destination: an older seed's sample, then changed (rows differ everywhere).
    stepops_sample::sample(
        &dest,
        SampleSpec {
            rows: 3_500,
            seed: 3,
            replace: false,
            progress: None,
        },
    )
    .await
    .unwrap();
    make_stale(&dest).await;

    let dir = tempfile::tempdir().unwrap();
    let pipeline = LocalPipeline::start(options(dir.path())).await.unwrap();
    migrate_twice(&pipeline, &source, &dest, 200).await;
    pipeline.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_worker_killed_mid_copy_loses_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let source = format!("sqlite:{}", dir.path().join("source.db").display());
    let dest = format!("sqlite:{}", dir.path().join("dest.db").display());
    sample(&source, 6_000).await;
    std::fs::copy(dir.path().join("source.db"), dir.path().join("dest.db")).unwrap();
    make_stale(&dest).await;
    assert_differ(&source, &dest).await;

    // 60 s HeartbeatSeconds become 3 s, Retry intervals 0.5 s; workers heartbeat every 300 ms.
    let mut o = options(dir.path());
    o.time_scale = 0.05;
    o.heartbeat_interval = Duration::from_millis(300);
    o.workers = 2;
    o.concurrency_per_worker = 2;
    let mut pipeline = LocalPipeline::start(o).await.unwrap();
    let arn = pipeline
        .start_migration(&input(&source, &dest, 100))
        .unwrap();

    // Wait until copies are under way, then kill a worker as a crash would (its running steps
    // are dropped, nothing answered), and start a replacement later.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    loop {
        let p = pipeline.progress();
        if p.chunks_copied >= 3 {
            assert!(
                p.chunks_copied < p.chunks_planned,
                "the copy ended before the kill: {p:?}"
            );
            break;
        }
        assert!(tokio::time::Instant::now() < deadline, "no progress: {p:?}");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let killed = pipeline.kill_worker(0).unwrap();
    let killed_again = pipeline.kill_worker(0).unwrap();
    assert_ne!(killed, killed_again);
    assert_eq!(pipeline.workers(), 0);
    tokio::time::sleep(Duration::from_millis(500)).await;
    let at_kill = pipeline.progress();
    assert!(
        at_kill.copies_started > at_kill.chunks_copied,
        "no copy was running when the workers were killed: {at_kill:?}"
    );
    pipeline.add_worker();
    pipeline.add_worker();

    let summary = tokio::time::timeout(Duration::from_secs(120), pipeline.wait(&arn))
        .await
        .expect("the execution ends")
        .unwrap();
    assert_succeeded(&summary);
    let end = pipeline.progress();
    // The execution counts each chunk once (its succeeded Map child); the workers' own count
    // may be higher: a worker killed after its copy committed but before it answered has
    // counted a copy that the retry repeats (harmless: copies are idempotent).
    assert_eq!(
        summary.chunks_copied, end.chunks_planned,
        "{summary:?} {end:?}"
    );
    assert!(end.chunks_copied >= end.chunks_planned, "{end:?}");
    assert!(end.copies_started > summary.chunks_copied, "{end:?}");
    assert_equal(&source, &dest).await;

    // Nothing duplicated or lost, and nothing left to do: a second run plans 0 chunks.
    pipeline.reset_progress();
    let arn = pipeline
        .start_migration(&input(&source, &dest, 100))
        .unwrap();
    let second = pipeline.wait(&arn).await.unwrap();
    assert_succeeded(&second);
    assert_eq!(second.chunks, 0, "{second:?}");
    pipeline.shutdown().await;
}

/// Change tracking through the real state machine: the plan's `tracking` reaches `verify` and
/// the next round as `baseline`, the first run records the destination's marker, a run after
/// a few source changes compares and copies only those, and a run after it copies nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn postgresql_with_change_tracking_copies_only_what_the_source_changed() {
    let pg = stepops_testkit::PgServer::start_with(stepops_testkit::PgOptions {
        settings: vec![("wal_level".into(), "logical".into())],
        ..Default::default()
    })
    .expect("PostgreSQL server binaries are needed (initdb, postgres): install postgresql (scripts/install-deps.sh)");
    let source = pg.create_database("src").unwrap();
    let dest = pg.create_database("dst").unwrap();
    sample(&source, 6_000).await;
    stepops_sample::create_schema(&dest).await.unwrap();
    let tracked = |chunk_rows: u64| {
        let mut i = input(&source, &dest, chunk_rows);
        i["config"] = json!({"changeTracking": {"slot": "stepops_e2e"}});
        i
    };
    let dir = tempfile::tempdir().unwrap();
    let pipeline = LocalPipeline::start(options(dir.path())).await.unwrap();

    let arn = pipeline.start_migration(&tracked(500)).unwrap();
    let first = pipeline.wait(&arn).await.unwrap();
    assert_succeeded(&first);
    assert_eq!(first.rows_copied, 6_000, "{first:?}");
    assert_equal(&source, &dest).await;
    let marker = pg
        .psql("dst", "SELECT state->>'slot' FROM stepops.sync_state")
        .unwrap();
    assert_eq!(marker.trim(), "stepops_e2e");

    let changed = stepops_sample::mutate(
        &source,
        5,
        Fractions {
            update: 0.003,
            delete: 0.002,
            insert: 0.003,
        },
    )
    .await
    .unwrap();
    let (u, d, i) = changed.totals();
    pipeline.reset_progress();
    let arn = pipeline.start_migration(&tracked(500)).unwrap();
    let second = pipeline.wait(&arn).await.unwrap();
    assert_succeeded(&second);
    assert_equal(&source, &dest).await;
    assert!(
        second.rows_copied + second.rows_deleted <= 8 * (u + d + i),
        "{second:?} for {u} updated, {d} deleted, {i} inserted"
    );
    // The Verify task got the Plan's tracking state as its baseline.
    let history = pipeline.engine().history(&arn).unwrap();
    let verify_input = history
        .iter()
        .find(|e| e.event_type == "TaskStateEntered" && e.details["name"] == "Verify")
        .map(|e| serde_json::from_str::<Value>(e.details["input"].as_str().unwrap()).unwrap())
        .expect("a Verify state");
    assert_eq!(
        verify_input["plan"]["tracking"]["slot"], "stepops_e2e",
        "{verify_input}"
    );

    pipeline.reset_progress();
    let arn = pipeline.start_migration(&tracked(500)).unwrap();
    let third = pipeline.wait(&arn).await.unwrap();
    assert_succeeded(&third);
    assert_eq!(third.chunks, 0, "{third:?}");
    pipeline.shutdown().await;
}

/// A converged run through the real migrate.asl.json syncs the destination's sequences: after
/// it, the next default key of every serial and identity column is past the largest key the
/// source holds (also a key inserted explicitly past the source's own sequence), and
/// `Verify`'s output says how many were synced.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn postgresql_pipeline_syncs_sequences_when_converged() {
    let pg = stepops_testkit::PgServer::start()
        .expect("PostgreSQL server binaries are needed (initdb, postgres): install postgresql (scripts/install-deps.sh)");
    let source = pg.create_database("src").unwrap();
    let dest = pg.create_database("dst").unwrap();
    sample(&source, 1_000).await;
    stepops_sample::create_schema(&dest).await.unwrap();
    let keyed = "CREATE TABLE orders(id bigserial PRIMARY KEY, note text NOT NULL);
         CREATE TABLE tickets(id int GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY, note text);";
    pg.psql("src", keyed).unwrap();
    pg.psql("dst", keyed).unwrap();
    pg.psql(
        "src",
        "INSERT INTO orders(note) SELECT 'o' || g FROM generate_series(1, 700) g;
         INSERT INTO orders(id, note) VALUES (5000, 'explicit key past the sequence');
         INSERT INTO tickets(note) SELECT 't' || g FROM generate_series(1, 300) g;",
    )
    .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let pipeline = LocalPipeline::start(options(dir.path())).await.unwrap();
    let arn = pipeline
        .start_migration(&input(&source, &dest, 250))
        .unwrap();
    let summary = pipeline.wait(&arn).await.unwrap();
    assert_succeeded(&summary);
    assert_equal(&source, &dest).await;
    let next = pg
        .psql(
            "dst",
            "SELECT nextval(pg_get_serial_sequence('orders', 'id')) || ' ' || \
             nextval(pg_get_serial_sequence('tickets', 'id'))",
        )
        .unwrap();
    let next: Vec<i64> = next
        .split_whitespace()
        .map(|v| v.parse().unwrap())
        .collect();
    assert!(next[0] > 5000, "orders' next key {} collides", next[0]);
    assert!(next[1] > 300, "tickets' next key {} collides", next[1]);
    let history = pipeline.engine().history(&arn).unwrap();
    let synced: Vec<Value> = history
        .iter()
        .filter(|e| e.event_type == "TaskStateExited" && e.details["name"] == "Verify")
        .filter_map(|e| serde_json::from_str::<Value>(e.details["output"].as_str()?).ok())
        .filter_map(|o| o["verify"]["sequencesSynced"].as_u64().map(Value::from))
        .collect();
    assert!(
        synced.iter().any(|n| n.as_u64() >= Some(2)),
        "Verify's output reports the synced sequences: {synced:?}"
    );
    pipeline.shutdown().await;
}

/// Cut-over mode through the real migrate.asl.json: the plan records the source's write
/// stamp, the runner reads the round's manifest back and `Verify` compares only the copied
/// ranges (its output says so); the destination ends equal to the source.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn postgresql_cut_over_run_verifies_only_the_copied_ranges() {
    let pg = stepops_testkit::PgServer::start()
        .expect("PostgreSQL server binaries are needed (initdb, postgres): install postgresql (scripts/install-deps.sh)");
    let source = pg.create_database("src").unwrap();
    let dest = pg.create_database("dst").unwrap();
    sample(&source, 2_000).await;
    sample(&dest, 2_000).await;
    make_stale(&dest).await;
    assert_differ(&source, &dest).await;
    let dir = tempfile::tempdir().unwrap();
    let pipeline = LocalPipeline::start(options(dir.path())).await.unwrap();
    let mut run = input(&source, &dest, 250);
    run["config"] = json!({"cutOver": true});
    let arn = pipeline.start_migration(&run).unwrap();
    let summary = pipeline.wait(&arn).await.unwrap();
    assert_succeeded(&summary);
    assert_equal(&source, &dest).await;
    let history = pipeline.engine().history(&arn).unwrap();
    let verified: Vec<Value> = history
        .iter()
        .filter(|e| e.event_type == "TaskStateExited" && e.details["name"] == "Verify")
        .filter_map(|e| serde_json::from_str::<Value>(e.details["output"].as_str()?).ok())
        .map(|o| o["verify"].clone())
        .collect();
    assert!(!verified.is_empty(), "Verify ran");
    for v in &verified {
        assert_eq!(v["comparedCopiedOnly"], json!(true), "{v}");
    }
    assert_eq!(verified.last().unwrap()["converged"], json!(true));
    pipeline.shutdown().await;
}

/// One writer per destination through the real migrate.asl.json: while a run copies, a second
/// execution against the same destination fails fast at Plan with Stepops.Busy naming the
/// first (nothing of it is copied); the first succeeds and releases the lease, and a run after
/// it proceeds.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn postgresql_second_run_on_a_destination_is_refused_while_the_first_holds_it() {
    let pg = stepops_testkit::PgServer::start()
        .expect("PostgreSQL server binaries are needed (initdb, postgres): install postgresql (scripts/install-deps.sh)");
    let source = pg.create_database("src").unwrap();
    let dest = pg.create_database("dst").unwrap();
    sample(&source, 12_000).await;
    stepops_sample::create_schema(&dest).await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let pipeline = LocalPipeline::start(options(dir.path())).await.unwrap();
    let mut slow = input(&source, &dest, 100);
    slow["maxConcurrency"] = json!(1);
    let first = pipeline.start_migration(&slow).unwrap();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    while pipeline.progress().chunks_copied < 2 {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the first run never copied"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let second = pipeline
        .start_migration(&input(&source, &dest, 100))
        .unwrap();
    let refused = pipeline.wait(&second).await.unwrap();
    assert_eq!(refused.status, "FAILED", "{refused:?}");
    assert_eq!(
        refused.error.as_deref(),
        Some("Stepops.Busy"),
        "{refused:?}"
    );
    assert_eq!(refused.failed_step.as_deref(), Some("Plan"), "{refused:?}");
    let cause = refused.cause.clone().unwrap_or_default();
    assert!(
        cause.contains(&first),
        "the cause names the holder: {cause}"
    );
    let done = pipeline.wait(&first).await.unwrap();
    assert_succeeded(&done);
    assert_equal(&source, &dest).await;
    let left = pg
        .psql("dst", "SELECT count(*) FROM stepops.lease")
        .unwrap();
    assert_eq!(left.trim(), "0", "the converged run released its lease");
    pipeline.reset_progress();
    let third = pipeline
        .start_migration(&input(&source, &dest, 100))
        .unwrap();
    assert_succeeded(&pipeline.wait(&third).await.unwrap());
    pipeline.shutdown().await;
}

/// Redrive, as an operator does it: a copy fails permanently on some chunks (a trigger on the
/// destination refuses inserts into `events`), the execution fails AT the copy Map (no Catch in
/// migrate.asl.json), the template's EventBridge rule makes the notify function send a failure
/// naming `CopyChunks` (read from the history through aws-sdk-sfn); the cause is removed and
/// `RedriveExecution` (the real SDK against the engine's API) resumes the Map Run: only the chunks
/// that had not succeeded are copied, the run succeeds, and the destination equals the source.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_failed_copy_is_notified_and_a_redrive_copies_only_the_chunks_that_did_not_succeed() {
    let dir = tempfile::tempdir().unwrap();
    let dest_path = dir.path().join("dest.db");
    let source = format!("sqlite:{}", dir.path().join("source.db").display());
    let dest = format!("sqlite:{}", dest_path.display());
    sample(&source, 4_000).await;
    std::fs::copy(dir.path().join("source.db"), &dest_path).unwrap();
    make_stale(&dest).await;
    assert_differ(&source, &dest).await;
    let block = rusqlite::Connection::open(&dest_path).unwrap();
    block
        .execute_batch(
            "CREATE TRIGGER refuse_events BEFORE INSERT ON events
             BEGIN SELECT RAISE(ABORT, 'inserts into events are refused (test)'); END;",
        )
        .unwrap();

    let pipeline = LocalPipeline::start(options(dir.path())).await.unwrap();
    // One chunk at a time: the chunks before the first refused one succeed, the rest never start.
    let mut run = input(&source, &dest, 200);
    run["maxConcurrency"] = json!(1);
    let arn = pipeline.start_migration(&run).unwrap();
    let failed = pipeline.wait(&arn).await.unwrap();
    assert_eq!(failed.status, "FAILED", "{failed:?}");
    assert_eq!(
        failed.error.as_deref(),
        Some("States.ExceedToleratedFailureThreshold")
    );
    assert_eq!(
        failed.failed_step.as_deref(),
        Some("CopyChunks"),
        "{failed:?}"
    );
    assert_eq!(failed.destination_read_only, Some(false));
    assert_eq!(failed.notifications.len(), 1, "{:?}", failed.notifications);
    let note = &failed.notifications[0];
    assert!(note.subject.contains("FAILED"), "{}", note.subject);
    assert!(
        note.text.contains("at step \"CopyChunks\"")
            && note.text.contains("redrive-execution --execution-arn"),
        "{}",
        note.text
    );
    // The notification came from the release machine that the rule started, as in AWS.
    let deliveries = pipeline.engine().deliveries();
    assert!(
        deliveries
            .iter()
            .any(|d| d.rule == "ReleaseStateMachine.MigrationEnded"
                && d.execution_arn == arn
                && d.status == "FAILED"
                && d.result.is_ok()),
        "{deliveries:?}"
    );
    let before: Vec<_> = pipeline.copied_chunks();
    assert!(
        !before.is_empty(),
        "some chunks succeeded before the failure"
    );
    assert!(
        before.iter().all(|c| c.0 != "events"),
        "no events chunk was copied: {before:?}"
    );

    // Remove the cause, then redrive through the Step Functions API.
    block.execute_batch("DROP TRIGGER refuse_events").unwrap();
    drop(block);
    let sfn = stepops_runner::local_sfn_client(pipeline.endpoint());
    sfn.redrive_execution()
        .execution_arn(&arn)
        .send()
        .await
        .expect("RedriveExecution");
    let done = pipeline.wait(&arn).await.unwrap();
    assert_succeeded(&done);
    assert_eq!(done.failed_step, None);
    assert_equal(&source, &dest).await;

    // Only what had not succeeded was copied again: the chunks copied after the redrive are
    // disjoint from those before, and together they are the plan's chunks, each once.
    let all = pipeline.copied_chunks();
    let after = &all[before.len()..];
    assert!(!after.is_empty());
    for c in after {
        assert!(
            !before.contains(c),
            "{c:?} succeeded before and was copied again"
        );
    }
    assert!(after.iter().any(|c| c.0 == "events"));
    assert_eq!(all.len() as u64, done.chunks, "{done:?}");
    assert_eq!(
        done.chunks_copied, done.chunks,
        "the Map Run's results count every chunk once"
    );
    assert_eq!(
        done.rounds, 1,
        "the redrive resumed round 1's copy, it did not plan again"
    );
    // The history: one plan, the Map Run redriven (not started again).
    let history = pipeline.engine().history(&arn).unwrap();
    let count = |t: &str| history.iter().filter(|e| e.event_type == t).count();
    assert_eq!(count("ExecutionRedriven"), 1);
    assert_eq!(count("MapRunStarted"), 1);
    assert_eq!(count("MapRunRedriven"), 1);
    let plans = history
        .iter()
        .filter(|e| e.event_type == "TaskStateEntered" && e.details["name"] == "Plan")
        .count();
    assert_eq!(plans, 1);
    // The failure and then the success were notified.
    assert_eq!(done.notifications.len(), 2);
    assert!(done.notifications[1].subject.contains("succeeded"));
    pipeline.shutdown().await;
}
