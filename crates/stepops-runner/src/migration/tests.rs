//! Unit tests of `migration.rs`.

use super::*;
use crate::secrets::SecretError;
use crate::store::LocalFolderStore;
use std::sync::Mutex;
use std::time::Duration;

struct NoSecrets;
impl SecretSource for NoSecrets {
    async fn secret(&self, name: &str) -> Result<Secret, SecretError> {
        Err(SecretError::NotFound(format!("secret {name}")))
    }
    async fn parameter(&self, name: &str) -> Result<Secret, SecretError> {
        Err(SecretError::NotFound(format!("parameter {name}")))
    }
}

#[derive(Default)]
struct FakeEngine {
    calls: Mutex<Vec<String>>,
    differing: Vec<String>,
}
impl MigrationEngine for FakeEngine {
    async fn plan(&self, stacks: Stacks<'_>, r: &PlanRequest) -> Result<PlanOutcome, StepError> {
        self.calls.lock().unwrap().push(format!(
            "plan {} {} {} {} dry={} baseline={}",
            stacks.source.expose(),
            stacks.dest.expose(),
            r.chunk_rows,
            r.round,
            r.dry_run,
            r.baseline.as_ref().map_or("none".into(), |b| b.to_string())
        ));
        Ok(PlanOutcome {
            tables: vec![TableSummary {
                table: "users".into(),
                chunks: 2,
                estimated_rows: 15,
            }],
            chunks: vec![
                ChunkSpec {
                    table: "users".into(),
                    min: 1,
                    max: 10,
                    estimated_rows: 10,
                    ranges: Vec::new(),
                    keys: Vec::new(),
                    whole_table: false,
                },
                ChunkSpec {
                    table: "users".into(),
                    min: 11,
                    max: 20,
                    estimated_rows: 5,
                    ranges: Vec::new(),
                    keys: Vec::new(),
                    whole_table: false,
                },
            ],
            tracking: r
                .baseline
                .as_ref()
                .map(|_| json!({"slot": "s", "next": true})),
            source_stamp: None,
        })
    }
    async fn copy_chunk(&self, _: Stacks<'_>, chunk: &ChunkSpec) -> Result<CopyOutcome, StepError> {
        self.calls
            .lock()
            .unwrap()
            .push(format!("copy {}", chunk.table));
        Ok(CopyOutcome {
            rows_deleted: 1,
            rows_inserted: chunk.estimated_rows,
        })
    }
    async fn verify(
        &self,
        _: Stacks<'_>,
        _: VerifyRequest<'_>,
    ) -> Result<VerifyOutcome, StepError> {
        Ok(VerifyOutcome {
            differing_tables: self.differing.clone(),
            sequences_synced: u32::from(self.differing.is_empty()),
            compared_copied_only: false,
        })
    }
    async fn set_read_only(
        &self,
        t: &Secret,
        config: &Value,
        read_only: bool,
    ) -> Result<StatusOutcome, StepError> {
        self.calls
            .lock()
            .unwrap()
            .push(format!("set-status {} {config} {read_only}", t.expose()));
        Ok(StatusOutcome {
            read_only,
            mechanism: "statusTable".into(),
            changed: true,
        })
    }
}

fn handler(
    engine: FakeEngine,
    root: &std::path::Path,
) -> MigrationHandler<FakeEngine, NoSecrets, LocalFolderStore> {
    MigrationHandler::new(
        engine,
        Arc::new(Resolver::new(NoSecrets, Duration::from_secs(60))),
        LocalFolderStore::new(root),
    )
}

fn base() -> Value {
    json!({"environment": "dev", "source": {"url": "sqlite:/tmp/s.db"},
           "dest": {"url": "sqlite:/tmp/d.db"}, "config": {"exclude": ["audit_log"]}})
}

#[tokio::test]
async fn plan_writes_the_manifest_and_answers_the_contract() {
    let dir = tempfile::tempdir().unwrap();
    let h = handler(FakeEngine::default(), dir.path());
    let mut args = base();
    args["chunkRows"] = json!(10);
    args["round"] = json!(2);
    args["manifest"] = json!({"bucket": "stepops", "prefix": "runs/exec-1/"});
    let out = h.run("plan", args).await.unwrap();
    assert_eq!(
        out,
        json!({"round": 2, "chunks": 2, "estimatedRows": 15, "inSync": false,
               "tables": [{"table": "users", "chunks": 2, "estimatedRows": 15}],
               "manifest": {"bucket": "stepops", "key": "runs/exec-1/round-2.jsonl"},
               "tracking": null, "sourceStamp": null})
    );
    let text =
        std::fs::read_to_string(dir.path().join("stepops/runs/exec-1/round-2.jsonl")).unwrap();
    let lines: Vec<Value> = text
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(
        lines[0],
        json!({"table": "users", "min": 1, "max": 10, "estimatedRows": 10})
    );
    assert_eq!(lines.len(), 2);
    assert_eq!(
        h.engine.calls.lock().unwrap()[0],
        "plan sqlite:/tmp/s.db sqlite:/tmp/d.db 10 2 dry=false baseline=none"
    );
}

#[tokio::test]
async fn plan_passes_dry_run_and_the_baseline_and_answers_the_next_one() {
    let dir = tempfile::tempdir().unwrap();
    let h = handler(FakeEngine::default(), dir.path());
    let mut args = base();
    args["chunkRows"] = json!(10);
    args["round"] = json!(3);
    args["manifest"] = json!({"bucket": "stepops", "prefix": "p"});
    args["dryRun"] = json!(true);
    args["baseline"] = json!({"slot": "s"});
    let out = h.run("plan", args.clone()).await.unwrap();
    assert_eq!(out["tracking"], json!({"slot": "s", "next": true}));
    assert_eq!(
        h.engine.calls.lock().unwrap()[0],
        "plan sqlite:/tmp/s.db sqlite:/tmp/d.db 10 3 dry=true baseline={\"slot\":\"s\"}"
    );
    for (key, bad) in [("baseline", json!("x")), ("dryRun", json!("yes"))] {
        let mut a = args.clone();
        a[key] = bad;
        let e = h.run("plan", a).await.unwrap_err();
        assert_eq!(e.name, ErrorName::InvalidInput, "{key}");
        assert!(e.cause.contains(key), "{}", e.cause);
    }
}

#[tokio::test]
async fn copy_and_set_status_answer_the_contract() {
    let dir = tempfile::tempdir().unwrap();
    let h = handler(FakeEngine::default(), dir.path());
    let mut args = base();
    args["chunk"] = json!({"table": "users", "min": 1, "max": 10, "estimatedRows": 7});
    let out = h.run("copy", args).await.unwrap();
    assert_eq!(out["rowsInserted"], 7);
    assert_eq!(out["rowsDeleted"], 1);
    assert_eq!(out["table"], "users");
    assert!(out["durationMs"].is_u64());
    let out = h
        .run(
            "set-status",
            json!({"environment": "dev", "target": {"url": "sqlite:/tmp/d.db"}, "readOnly": true,
                   "config": {"status": {"table": "s"}}}),
        )
        .await
        .unwrap();
    assert_eq!(
        out,
        json!({"readOnly": true, "mechanism": "statusTable", "changed": true})
    );
    assert_eq!(
        h.engine.calls.lock().unwrap().last().unwrap(),
        r#"set-status sqlite:/tmp/d.db {"status":{"table":"s"}} true"#
    );
}

#[tokio::test]
async fn verify_loops_then_fails_not_converged() {
    let dir = tempfile::tempdir().unwrap();
    let engine = FakeEngine {
        differing: vec!["users".into()],
        ..Default::default()
    };
    let h = handler(engine, dir.path());
    let mut args = base();
    args["round"] = json!(1);
    args["maxRounds"] = json!(3);
    let out = h.run("verify", args.clone()).await.unwrap();
    assert_eq!(
        out,
        json!({"converged": false, "round": 1, "differingTables": ["users"], "sequencesSynced": 0,
               "comparedCopiedOnly": false})
    );
    args["round"] = json!(3);
    let err = h.run("verify", args).await.unwrap_err();
    assert_eq!(err.name, ErrorName::NotConverged);
    assert!(err.cause.contains("users"), "{}", err.cause);
}

#[tokio::test]
async fn verify_adds_up_the_round_s_copy_results() {
    let dir = tempfile::tempdir().unwrap();
    let h = handler(FakeEngine::default(), dir.path());
    let child = |out: Value| json!({"Name": "0", "Status": "SUCCEEDED", "Output": out.to_string()});
    h.store
        .put(
            "bkt",
            "results/x/round-2/run/SUCCEEDED_0.json",
            json!([
                child(json!({"rowsInserted": 40, "rowsDeleted": 2})),
                child(json!({"rowsInserted": 2, "rowsDeleted": 9}))
            ])
            .to_string()
            .into_bytes(),
        )
        .await
        .unwrap();
    h.store
        .put(
            "bkt",
            "results/x/round-2/run/manifest.json",
            json!({"DestinationBucket": "bkt", "ResultFiles": {"SUCCEEDED": [
                {"Key": "results/x/round-2/run/SUCCEEDED_0.json", "Size": 1}], "FAILED": []}})
            .to_string()
            .into_bytes(),
        )
        .await
        .unwrap();
    let mut args = base();
    args["round"] = json!(2);
    args["maxRounds"] = json!(3);
    args["results"] = json!({"Bucket": "bkt", "Key": "results/x/round-2/run/manifest.json"});
    // The run's totals before this round: beyond 32 bits (States.MathAdd's limit).
    args["totals"] = json!({"tables": 3, "chunksCopied": 40,
                            "rowsCopied": 5_000_000_000_u64, "rowsDeleted": 7});
    let out = h.run("verify", args.clone()).await.unwrap();
    assert_eq!(
        out,
        json!({"converged": true, "round": 2, "differingTables": [], "sequencesSynced": 1, "comparedCopiedOnly": false,
               "chunksCopied": 2, "rowsCopied": 42, "rowsDeleted": 11,
               "totals": {"chunksCopied": 42, "rowsCopied": 5_000_000_042_u64,
                          "rowsDeleted": 18}})
    );
    args.as_object_mut().unwrap().remove("totals");
    // Results that cannot be read count as nothing, without failing the step.
    args["results"] = json!({"Bucket": "bkt", "Key": "results/x/round-9/run/manifest.json"});
    let out = h.run("verify", args.clone()).await.unwrap();
    assert_eq!(
        (&out["chunksCopied"], &out["rowsCopied"]),
        (&json!(0), &json!(0))
    );
    // No `results` (a state machine without ResultWriter): no counts.
    args.as_object_mut().unwrap().remove("results");
    let out = h.run("verify", args.clone()).await.unwrap();
    assert!(out.get("rowsCopied").is_none(), "{out}");
    args["results"] = json!({"Bucket": "bkt"});
    let err = h.run("verify", args.clone()).await.unwrap_err();
    assert_eq!(err.name, ErrorName::InvalidInput);
    args["results"] = json!({"Bucket": "bkt", "Key": "results/x/round-2/run/manifest.json"});
    args["totals"] = json!({"rowsCopied": -1});
    let err = h.run("verify", args).await.unwrap_err();
    assert!(err.cause.contains("totals.rowsCopied"), "{}", err.cause);
}

#[tokio::test]
async fn not_converged_does_not_point_at_read_only_destination() {
    let dir = tempfile::tempdir().unwrap();
    let engine = FakeEngine {
        differing: vec!["events".into()],
        ..Default::default()
    };
    let h = handler(engine, dir.path());
    let mut args = base();
    args["round"] = json!(2);
    args["maxRounds"] = json!(2);
    let err = h.run("verify", args).await.unwrap_err();
    assert_eq!(err.name, ErrorName::NotConverged);
    assert!(
        !err.cause.contains("make the source read-only"),
        "{}",
        err.cause
    );
    assert!(
        err.cause
            .contains("only keeps other clients from writing to the destination")
    );
}

#[tokio::test]
async fn bad_arguments_are_named() {
    let dir = tempfile::tempdir().unwrap();
    let h = handler(FakeEngine::default(), dir.path());
    let cases = [
        (
            "copy",
            json!({"source": {"url": "sqlite:a"}}),
            ErrorName::InvalidInput,
            "environment",
        ),
        ("nope", base(), ErrorName::InvalidInput, "unknown step"),
        (
            "copy",
            base(),
            ErrorName::InvalidInput,
            "missing argument `chunk`",
        ),
        ("plan", base(), ErrorName::InvalidInput, "chunkRows"),
        (
            "verify",
            {
                let mut a = base();
                a["round"] = json!(1);
                a["maxRounds"] = json!(2);
                a["source"] = json!({"secret": "stepops/dev/missing"});
                a
            },
            ErrorName::NotFound,
            "secret stepops/dev/missing",
        ),
        (
            "verify",
            {
                let mut a = base();
                a["round"] = json!(1);
                a["maxRounds"] = json!(2);
                a["dest"] = json!({"url": "postgres://u:hunter2@h/db"});
                a
            },
            ErrorName::InvalidInput,
            "password inline",
        ),
    ];
    for (step, args, name, text) in cases {
        let err = h.run(step, args).await.unwrap_err();
        assert_eq!(err.name, name, "{step}: {err}");
        assert!(err.cause.contains(text), "{step}: {err}");
        assert!(!err.cause.contains("hunter2"));
    }
}

#[test]
fn manifest_keys() {
    assert_eq!(manifest_key("", 1), "round-1.jsonl");
    assert_eq!(manifest_key("a/b/", 3), "a/b/round-3.jsonl");
    assert_eq!(manifest_key("/a", 3), "a/round-3.jsonl");
}

/// A Synapse stack whose service key is kept in its own SSM parameter: the runner joins it to
/// the secret's URL (which holds only the secret); a key parameter that is not a string is
/// refused by name.
#[tokio::test]
async fn a_synapse_service_key_parameter_joins_the_secret_url() {
    let dir = tempfile::tempdir().unwrap();
    let secrets = stepops_secrets::MemorySecretSource::new()
        .with_secret(
            "stepops/dev/dest-db",
            "synapse+https://:S3cr-et@repo-staging.staging.sagebase.org/repo/v1",
        )
        .with_parameter("/stepops/dev/synapse-key", "migration admin");
    let h = MigrationHandler::new(
        FakeEngine::default(),
        Arc::new(Resolver::new(secrets, Duration::from_secs(60))),
        LocalFolderStore::new(dir.path()),
    );
    let mut args = json!({"environment": "dev", "target": {"secret": "stepops/dev/dest-db"},
                          "config": {"synapse": {"destKeyParameter": "/stepops/dev/synapse-key"}},
                          "readOnly": true});
    h.run("set-status", args.clone()).await.unwrap();
    assert!(
        h.engine.calls.lock().unwrap()[0].starts_with(
            "set-status synapse+https://migration%20admin:S3cr-et@repo-staging.staging.sagebase.org/repo/v1 "
        ),
        "{:?}",
        h.engine.calls.lock().unwrap()
    );
    args["config"]["synapse"]["destKeyParameter"] = json!(7);
    let e = h.run("set-status", args).await.unwrap_err();
    assert_eq!(e.name, ErrorName::InvalidInput);
    assert!(e.cause.contains("destKeyParameter"), "{}", e.cause);
}

/// `set-status` read-only records what it changed; `release` puts a Synapse destination back
/// read-write once, leaves a database read-only, refuses another environment's record, and a
/// redriven step puts a released destination read-only again.
#[tokio::test]
async fn release_undoes_only_what_the_run_recorded() {
    let dir = tempfile::tempdir().unwrap();
    let secrets = stepops_secrets::MemorySecretSource::new()
        .with_secret(
            "stepops/dev/stack",
            "synapse+https://k:S@repo-staging.staging.sagebase.org/repo/v1",
        )
        .with_secret("stepops/dev/db", "postgres://u:p@db/main");
    let h = MigrationHandler::new(
        FakeEngine::default(),
        Arc::new(Resolver::new(secrets, Duration::from_secs(60))),
        LocalFolderStore::new(dir.path()),
    );
    let record = |run: &str| json!({"bucket": "m", "key": format!("status/{run}.json")});
    let release = |run: &str| json!({"environment": "dev", "statusRecord": record(run)});
    let set = |target: &str, run: &str| {
        json!({"environment": "dev", "target": {"secret": target}, "config": {},
               "readOnly": true, "statusRecord": record(run)})
    };
    let calls = |h: &MigrationHandler<FakeEngine, _, _>| h.engine.calls.lock().unwrap().len();

    // A run that never set the status: nothing to undo.
    let out = h.run("release", release("none")).await.unwrap();
    assert_eq!(
        out,
        json!({"released": false, "readOnly": null,
                           "reason": "this run did not put the destination read-only"})
    );

    // A database stays read-only.
    h.run("set-status", set("stepops/dev/db", "db"))
        .await
        .unwrap();
    assert!(dir.path().join("m/status/db.json").exists());
    let before = calls(&h);
    let out = h.run("release", release("db")).await.unwrap();
    assert_eq!(out["released"], false);
    assert_eq!(out["readOnly"], true);
    assert_eq!(calls(&h), before, "nothing asked of the database");

    // A Synapse stack goes back read-write, once.
    h.run("set-status", set("stepops/dev/stack", "syn"))
        .await
        .unwrap();
    let out = h.run("release", release("syn")).await.unwrap();
    assert_eq!(
        (out["released"].clone(), out["readOnly"].clone()),
        (json!(true), json!(false))
    );
    assert!(
        h.engine
            .calls
            .lock()
            .unwrap()
            .last()
            .unwrap()
            .ends_with(" false")
    );
    let before = calls(&h);
    h.run("release", release("syn")).await.unwrap();
    assert_eq!(calls(&h), before, "a second release changes nothing");

    // A redriven copy of that run puts it read-only again first, once.
    let copy = json!({"environment": "dev", "source": {"secret": "stepops/dev/stack"},
                      "dest": {"secret": "stepops/dev/stack"}, "config": {},
                      "chunk": {"table": "NODE", "min": 1, "max": 10, "estimatedRows": 10},
                      "statusRecord": record("syn")});
    h.run("copy", copy.clone()).await.unwrap();
    let log = h.engine.calls.lock().unwrap().clone();
    assert!(
        log[before].starts_with("set-status synapse+https://") && log[before].ends_with(" true"),
        "{log:?}"
    );
    assert!(log[before + 1].starts_with("copy"), "{log:?}");
    h.run("copy", copy).await.unwrap();
    assert!(h.engine.calls.lock().unwrap()[before + 2].starts_with("copy"));

    // Another environment's record is refused, nothing changed.
    let mut theirs = release("syn");
    theirs["environment"] = json!("prod");
    h.run("set-status", set("stepops/dev/stack", "syn"))
        .await
        .unwrap();
    let e = h.run("release", theirs).await.unwrap_err();
    assert_eq!(e.name, ErrorName::WrongEnvironment);
}
