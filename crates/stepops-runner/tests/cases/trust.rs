//! The runner trusts no task: the real `stepops-runner` binary in AWS mode (no `endpoint`; the
//! SDK pointed at the loopback fake by `AWS_ENDPOINT_URL`), configured as the template's user
//! data configures a dev runner, is handed tasks a rogue or mistaken execution could schedule
//! on its activity. Each is refused with its named error and neither PostgreSQL database sees a
//! single connection (the server logs every connection: `log_connections`), nor is a secret
//! read. A permitted task afterwards connects to both, so the measure itself can fail.
//! Also: a hung heartbeat or answer is abandoned after `answer_timeout_seconds`.

use super::binary::{runner, sigterm, wait_exit};
use super::common::{Answer, FakeSfn};
use super::{ARN, TestSteps, options, start};
use serde_json::{Value, json};
use std::sync::Arc;
use std::time::{Duration, Instant};
use stepops_testkit::{PgOptions, PgServer};

/// Connections the server accepted to `database` so far (from its log).
fn connections(pg: &PgServer, database: &str) -> usize {
    pg.log_tail(usize::MAX)
        .lines()
        .filter(|l| {
            l.contains("connection authorized") && l.contains(&format!("database={database}"))
        })
        .count()
}

/// Transactions `database` committed or rolled back, as the server counts them (read from
/// the `postgres` database, so reading does not count).
fn transactions(pg: &PgServer, database: &str) -> i64 {
    pg.psql(
        "postgres",
        &format!(
            "SELECT pg_stat_force_next_flush(); SELECT pg_stat_clear_snapshot(); \
             SELECT xact_commit + xact_rollback FROM pg_stat_database WHERE datname = '{database}'"
        ),
    )
    .unwrap()
    .lines()
    .last()
    .unwrap()
    .trim()
    .parse()
    .unwrap()
}

#[tokio::test]
async fn a_dev_runner_refuses_foreign_targets_without_touching_a_database() {
    let pg = PgServer::start_with(PgOptions {
        superuser_password: Some(format!("pw{}trust", std::process::id())),
        settings: vec![("log_connections".into(), "on".into())],
        ..PgOptions::default()
    })
    .unwrap_or_else(|e| panic!("{e}"));
    let src = pg.create_database("src").unwrap();
    let dst = pg.create_database("dst").unwrap();
    let schema = "CREATE TABLE items(id bigint PRIMARY KEY, name text NOT NULL);";
    pg.psql(
        "src",
        &format!(
            "{schema} INSERT INTO items SELECT g, 'item ' || g FROM generate_series(1, 500) g;"
        ),
    )
    .unwrap();
    pg.psql("dst", schema).unwrap();

    let fake = FakeSfn::start(Duration::from_secs(60)).await;
    fake.set_secret("stepops/dev/source-db", &src);
    fake.set_secret("stepops/dev/dest-db", &dst);
    // The same databases under names this runner must refuse.
    fake.set_secret("stepops/prod/dest-db", &dst);
    fake.set_secret("team-x/db", &dst);

    let dir = tempfile::tempdir().unwrap();
    let config = format!(
        "activities: [{ARN}]\nenvironment: dev\n\
         allowed_targets: secret:stepops/dev/source-db,secret:stepops/dev/dest-db\n\
         object_store_root: {}\nheartbeat_seconds: 1\ndrain_timeout_seconds: 2\n",
        dir.path().join("s3").display()
    );
    let mut child = runner(
        dir.path(),
        &config,
        &[("AWS_ENDPOINT_URL", &fake.endpoint())],
    )
    .spawn()
    .unwrap();

    let before = (
        connections(&pg, "src"),
        connections(&pg, "dst"),
        transactions(&pg, "src"),
        transactions(&pg, "dst"),
    );
    let plan = |source: Value, dest: Value| {
        json!({"step": "plan", "args": {"environment": "dev", "source": source, "dest": dest,
               "config": {}, "chunkRows": 1000, "round": 1,
               "manifest": {"bucket": "b", "prefix": "p"}}})
    };
    let dev_source = json!({"secret": "stepops/dev/source-db"});
    let cases = [
        (
            "a prod secret",
            plan(
                dev_source.clone(),
                json!({"secret": "stepops/prod/dest-db"}),
            ),
            "Stepops.WrongEnvironment",
            "a prod target, but this stack is `dev`",
        ),
        (
            "an unlisted secret",
            plan(dev_source.clone(), json!({"secret": "team-x/db"})),
            "Stepops.InvalidInput",
            "not configured for this dev stack",
        ),
        (
            "a url target in AWS mode",
            plan(
                dev_source.clone(),
                json!({"url": format!("postgres://postgres@127.0.0.1:{}/dst", pg.port())}),
            ),
            "Stepops.InvalidInput",
            "url targets are for local runs",
        ),
        (
            "a missing environment",
            json!({"step": "set-status", "args": {"target": {"secret": "stepops/dev/dest-db"},
                   "readOnly": true, "config": {}}}),
            "Stepops.InvalidInput",
            "no string argument `environment`",
        ),
    ];
    for (what, task, error, says) in &cases {
        let token = fake.push(ARN, task.clone());
        match fake.wait_answer(&token, Duration::from_secs(30)).await {
            Answer::Failure { error: e, cause } => {
                assert_eq!(e, *error, "{what}: {cause}");
                assert!(cause.contains(says), "{what}: {cause}");
            }
            other => panic!("{what}: expected a failure, got {other:?}"),
        }
    }
    let after = (
        connections(&pg, "src"),
        connections(&pg, "dst"),
        transactions(&pg, "src"),
        transactions(&pg, "dst"),
    );
    assert_eq!(
        after, before,
        "(connections src, dst; transactions src, dst)"
    );
    assert_eq!(
        fake.secret_reads(),
        0,
        "no secret was read for a refused task"
    );

    // The control: an allowed task reads both secrets and connects to both databases.
    let token = fake.push(
        ARN,
        plan(dev_source, json!({"secret": "stepops/dev/dest-db"})),
    );
    let answer = fake.wait_answer(&token, Duration::from_secs(60)).await;
    assert!(matches!(answer, Answer::Success(_)), "{answer:?}");
    assert!(fake.secret_reads() >= 2);
    assert!(connections(&pg, "src") > before.0, "{}", pg.log_tail(20));
    assert!(connections(&pg, "dst") > before.1, "{}", pg.log_tail(20));
    assert!(transactions(&pg, "src") > before.2);

    sigterm(&child);
    assert!(
        wait_exit(&mut child, Duration::from_secs(15))
            .await
            .success()
    );
}

#[tokio::test]
async fn a_hung_heartbeat_or_answer_is_abandoned_after_the_answer_timeout() {
    let fake = FakeSfn::start(Duration::from_secs(2)).await;
    let mut opts = options(2, 300);
    opts.answer_timeout = Duration::from_secs(1);
    let runner = start(&fake, opts, Arc::new(TestSteps::default()));
    fake.hang_next("SendTaskHeartbeat", 1);
    fake.hang_next("SendTaskSuccess", 1);
    let started = Instant::now();
    let token = fake.push(ARN, json!({"step": "sleep", "args": {"ms": 2500}}));
    assert_eq!(
        fake.wait_answer(&token, Duration::from_secs(15)).await,
        Answer::Success(json!({"slept": 2500}))
    );
    let elapsed = started.elapsed();
    // The first heartbeat hung (the fake holds it two minutes); the runner gave up on it after
    // one second and kept heartbeating.
    let beats = fake.heartbeats(&token);
    assert!(beats.len() >= 3, "{} heartbeats", beats.len());
    // The first answer hung too: abandoned after one second and sent again.
    assert_eq!(fake.answer_attempts(&token), 2);
    assert!(elapsed < Duration::from_secs(8), "{elapsed:?}");
    let report = runner.stop().await;
    assert_eq!(report.succeeded, 1);
}
