//! The migration steps end to end through the runner with the real engine (stepops-migrate) on
//! SQLite files: the test plays the state machine (plan → copy each manifest line → verify).

use super::common::{Answer, FakeSfn};
use super::{ARN, options};
use serde_json::{Value, json};
use std::time::Duration;
use stepops_runner::local_migration_runner;
use tokio_util::sync::CancellationToken;

fn make_db(path: &std::path::Path, rows: &[(i64, &str)], posts: &[(i64, i64, &str)]) {
    let c = rusqlite::Connection::open(path).unwrap();
    c.execute_batch(
        "CREATE TABLE users(id INTEGER PRIMARY KEY, name TEXT NOT NULL);
         CREATE TABLE posts(id INTEGER PRIMARY KEY, user_id INTEGER NOT NULL REFERENCES users(id), body TEXT);",
    )
    .unwrap();
    c.execute_batch("BEGIN").unwrap();
    for (id, name) in rows {
        c.execute(
            "INSERT INTO users VALUES (?1, ?2)",
            rusqlite::params![id, name],
        )
        .unwrap();
    }
    for (id, user, body) in posts {
        c.execute(
            "INSERT INTO posts VALUES (?1, ?2, ?3)",
            rusqlite::params![id, user, body],
        )
        .unwrap();
    }
    c.execute_batch("COMMIT").unwrap();
}

fn dump(path: &std::path::Path) -> Vec<String> {
    let c = rusqlite::Connection::open(path).unwrap();
    let mut out = Vec::new();
    for q in [
        "SELECT 'u', id, name, NULL FROM users ORDER BY id",
        "SELECT 'p', id, user_id, body FROM posts ORDER BY id",
    ] {
        let mut st = c.prepare(q).unwrap();
        let rows = st
            .query_map([], |r| {
                Ok(format!(
                    "{}|{}|{:?}|{:?}",
                    r.get::<_, String>(0)?,
                    r.get::<_, i64>(1)?,
                    r.get::<_, rusqlite::types::Value>(2)?,
                    r.get::<_, rusqlite::types::Value>(3)?
                ))
            })
            .unwrap();
        out.extend(rows.map(Result::unwrap));
    }
    out
}

async fn step(fake: &FakeSfn, input: Value) -> Result<Value, (String, String)> {
    let t = fake.push(ARN, input);
    match fake.wait_answer(&t, Duration::from_secs(30)).await {
        Answer::Success(v) => Ok(v),
        Answer::Failure { error, cause } => Err((error, cause)),
    }
}

#[tokio::test]
async fn plan_copy_verify_on_sqlite_through_the_runner() {
    let dir = tempfile::tempdir().unwrap();
    let (src, dst) = (dir.path().join("source.db"), dir.path().join("dest.db"));
    let users: Vec<(i64, String)> = (1..=250).map(|i| (i, format!("user {i}"))).collect();
    let users_ref: Vec<(i64, &str)> = users.iter().map(|(i, n)| (*i, n.as_str())).collect();
    let posts: Vec<(i64, i64, &str)> = (1..=400).map(|i| (i, (i % 250) + 1, "hello")).collect();
    make_db(&src, &users_ref, &posts);
    // Stale destination: fewer users, one changed, an extra post.
    let mut stale = users_ref[..180].to_vec();
    stale[10].1 = "changed";
    make_db(&dst, &stale, &[(1, 2, "hello"), (9999, 1, "orphan")]);

    let fake = FakeSfn::start(Duration::from_secs(5)).await;
    let store_root = dir.path().join("s3");
    let stop = CancellationToken::new();
    let runner = local_migration_runner(&fake.endpoint(), options(4, 5_000), &store_root);
    let handle = tokio::spawn(runner.run(stop.clone().cancelled_owned()));

    let common = json!({
        "environment": "dev",
        "source": {"url": format!("sqlite:{}", src.display())},
        "dest": {"url": format!("sqlite:{}", dst.display())},
        "config": {},
    });
    let with = |extra: Value| {
        let mut args = common.clone();
        for (k, v) in extra.as_object().unwrap() {
            args[k] = v.clone();
        }
        args
    };

    for round in 1..=2u32 {
        let plan = step(
            &fake,
            json!({"step": "plan", "args": with(json!({"chunkRows": 50, "round": round,
                "manifest": {"bucket": "stepops", "prefix": "runs/e1"}}))}),
        )
        .await
        .unwrap();
        let key = plan["manifest"]["key"].as_str().unwrap();
        let manifest = std::fs::read_to_string(store_root.join("stepops").join(key)).unwrap();
        let chunks: Vec<Value> = manifest
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        assert_eq!(plan["chunks"].as_u64().unwrap() as usize, chunks.len());
        if round == 2 {
            assert_eq!(plan["inSync"], json!(true), "{plan}");
            assert!(chunks.is_empty());
            break;
        }
        assert_eq!(plan["inSync"], json!(false));
        assert!(chunks.len() >= 2, "{plan}");
        // The Map: copy every chunk, a few at a time.
        let tokens: Vec<String> = chunks
            .iter()
            .map(|c| {
                fake.push(
                    ARN,
                    json!({"step": "copy", "args": with(json!({"chunk": c}))}),
                )
            })
            .collect();
        for t in &tokens {
            match fake.wait_answer(t, Duration::from_secs(30)).await {
                Answer::Success(out) => assert!(out["rowsInserted"].is_u64(), "{out}"),
                other => panic!("copy failed: {other:?}"),
            }
        }
        let v = step(
            &fake,
            json!({"step": "verify", "args": with(json!({"round": round, "maxRounds": 3}))}),
        )
        .await
        .unwrap();
        assert_eq!(
            v,
            json!({"converged": true, "round": round, "differingTables": [], "sequencesSynced": 0,
                   "comparedCopiedOnly": false})
        );
    }
    assert_eq!(dump(&src), dump(&dst));

    // Named failures from the engine: a missing table in the config, an absent file.
    let (error, cause) = step(
        &fake,
        json!({"step": "verify", "args": with(json!({"round": 1, "maxRounds": 3,
            "config": {"include": ["users"], "bogus": 1}}))}),
    )
    .await
    .unwrap_err();
    assert_eq!(error, "Stepops.InvalidInput", "{cause}");
    assert!(cause.contains("config"), "{cause}");
    // A chunk naming a table outside the migration (a hand-edited or foreign manifest line).
    let before = dump(&dst);
    let (error, cause) = step(
        &fake,
        json!({"step": "copy", "args": with(json!({"chunk":
            {"table": "not_migrated", "min": 1, "max": 10, "estimatedRows": 10}}))}),
    )
    .await
    .unwrap_err();
    assert_eq!(error, "Stepops.InvalidInput", "{cause}");
    assert!(
        cause.contains("\"not_migrated\"") && cause.contains("not part of this migration"),
        "{cause}"
    );
    assert_eq!(dump(&dst), before, "a refused chunk wrote nothing");
    stop.cancel();
    handle.await.unwrap();
}
