//! `statemachine/migrate.asl.json` run by the project's own ASL interpreter (`stepops-asl`), with
//! the real validate/notify logic of this crate behind its Lambda tasks and an in-memory
//! "runner" behind its activity tasks (plan/copy/verify/set-status per
//! docs/dev/pipeline-steps.md, manifests written to the folder standing in for S3; `verify`
//! adds up the copy Map's ResultWriter files with the real runner's `round_totals`).
//!
//! Failures are not caught by the machine: the execution ends at the failing state (so that a
//! redrive resumes there) and the notification comes from Step Functions' status-change event
//! through template.yaml's rule. These tests check that the machine sends no notification of
//! its own on failure, and build the one the rule's notify call would send from the recorded
//! history with this crate's `request_from_status_change`.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

#[path = "../../stepops-pipeline/tests/corpus/mod.rs"]
mod corpus;

use chrono::Utc;
use futures::FutureExt;
use futures::future::BoxFuture;
use serde_json::{Value, json};
use stepops_asl::{
    Definition, ExecutionInfo, ExecutionResult, ExecutionStore, HistoryEvent, RunOptions, Snapshot,
    StoreError, TaskDispatcher, TaskError, TaskInvocation,
};
use stepops_error::TaskFailure;
use stepops_pipeline::{
    ExecutionHistory, HistoryItem, NotifyRequest, RunStatus, StackEnvironment, StatusChangeEvent,
    compose, request_from_status_change, validate_handler,
};
use tokio_util::sync::CancellationToken;

const ACTIVITY: &str = "arn:aws:states:eu-west-1:123456789012:activity:stepops-dev-migrate";
const VALIDATE: &str = "arn:aws:lambda:eu-west-1:123456789012:function:stepops-dev-validate-input";
const NOTIFY: &str = "arn:aws:lambda:eu-west-1:123456789012:function:stepops-dev-notify";
const BUCKET: &str = "stepops-dev-manifests";

fn definition() -> Definition {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../statemachine/migrate.asl.json");
    let mut text = std::fs::read_to_string(&path).expect("migrate.asl.json is readable");
    for (k, v) in [
        ("Environment", "dev"),
        ("MigrateActivityArn", ACTIVITY),
        ("ValidateInputFunctionArn", VALIDATE),
        ("NotifyFunctionArn", NOTIFY),
        ("ManifestBucketName", BUCKET),
    ] {
        text = text.replace(&format!("${{{k}}}"), v);
    }
    assert!(
        !text.contains("${"),
        "a placeholder is not in DefinitionSubstitutions"
    );
    Definition::parse(&text).expect("the stepops ASL interpreter loads migrate.asl.json")
}

type Table = BTreeMap<i64, String>;
type Db = BTreeMap<String, Table>;

/// The fake runner's world: two databases, the object store, and what happened.
struct World {
    source: Mutex<Db>,
    dest: Mutex<Db>,
    s3_root: PathBuf,
    stack: StackEnvironment,
    /// (state name, task input) of every activity task.
    activity_calls: Mutex<Vec<(String, Value)>>,
    notifications: Mutex<Vec<NotifyRequest>>,
    /// Changes the source once, at the first verify (the source stays writable).
    change_source_at_first_verify: Mutex<Option<(String, i64, String)>>,
    /// Copy attempts that fail with this error before succeeding.
    copy_failures: Mutex<Vec<&'static str>>,
    /// The source changes at every verify: never converges.
    always_changing: bool,
    /// The destination's status as set by set-status.
    dest_read_only: Mutex<bool>,
    /// set-status fails with this error.
    status_failure: Mutex<Option<&'static str>>,
    /// Added to every copy's rowsInserted (a migration of billions of rows).
    extra_rows_per_copy: u64,
    /// The execution's history.
    history: Arc<Recorded>,
}

impl World {
    fn new(dir: &Path, source: Db, dest: Db) -> Arc<World> {
        let stack = stepops_pipeline::stack_environment("dev", "secret:stepops/dev/*").unwrap();
        World::with_stack(dir, source, dest, stack)
    }

    fn with_stack(dir: &Path, source: Db, dest: Db, stack: StackEnvironment) -> Arc<World> {
        Arc::new(World {
            source: Mutex::new(source),
            dest: Mutex::new(dest),
            s3_root: dir.to_path_buf(),
            stack,
            activity_calls: Mutex::default(),
            notifications: Mutex::default(),
            change_source_at_first_verify: Mutex::default(),
            copy_failures: Mutex::default(),
            always_changing: false,
            dest_read_only: Mutex::default(),
            status_failure: Mutex::default(),
            extra_rows_per_copy: 0,
            history: Arc::default(),
        })
    }

    fn steps(&self) -> Vec<String> {
        self.activity_calls
            .lock()
            .unwrap()
            .iter()
            .map(|(s, i)| format!("{s}:{}", i["step"].as_str().unwrap_or("?")))
            .collect()
    }

    /// Bins of 10 keys whose rows differ: (table, bin) → rows in the source bin.
    fn differing(&self) -> Vec<(String, i64, u64)> {
        let (s, d) = (self.source.lock().unwrap(), self.dest.lock().unwrap());
        let mut out = Vec::new();
        let empty = Table::new();
        let tables: std::collections::BTreeSet<_> = s.keys().chain(d.keys()).cloned().collect();
        for t in tables {
            let (st, dt) = (s.get(&t).unwrap_or(&empty), d.get(&t).unwrap_or(&empty));
            let bins: std::collections::BTreeSet<i64> = st
                .keys()
                .chain(dt.keys())
                .map(|k| k.div_euclid(10))
                .collect();
            for b in bins {
                let r = b * 10..=b * 10 + 9;
                let a: Vec<_> = st.range(r.clone()).collect();
                let c: Vec<_> = dt.range(r).collect();
                if a != c {
                    out.push((t.clone(), b, a.len() as u64));
                }
            }
        }
        out
    }

    async fn activity(&self, state: &str, input: &Value) -> Result<Value, TaskError> {
        self.activity_calls
            .lock()
            .unwrap()
            .push((state.to_owned(), input.clone()));
        let args = &input["args"];
        assert_eq!(args["environment"], "dev", "{state}: {input}");
        match input["step"].as_str().unwrap() {
            "set-status" => {
                assert_eq!(args["target"], json!({"secret": "stepops/dev/dest-db"}));
                assert!(args["config"].is_object(), "{args}");
                if let Some(err) = *self.status_failure.lock().unwrap() {
                    return Err(TaskError::new(err, "simulated set-status failure"));
                }
                let ro = args["readOnly"].as_bool().unwrap();
                let changed =
                    std::mem::replace(&mut *self.dest_read_only.lock().unwrap(), ro) != ro;
                Ok(json!({"readOnly": ro, "mechanism": "statusTable", "changed": changed}))
            }
            "plan" => {
                assert_eq!(args["source"], json!({"secret": "stepops/dev/source-db"}));
                assert!(args["chunkRows"].is_u64() && args["config"].is_object());
                let bucket = args["manifest"]["bucket"].as_str().unwrap();
                let prefix = args["manifest"]["prefix"].as_str().unwrap();
                let key = format!("{prefix}/manifest.jsonl");
                // The change-tracking baseline chain: round 1 starts from none (the marker),
                // every later round from the previous round's plan.
                let round = args["round"].as_u64().unwrap();
                let want = if round == 1 {
                    Value::Null
                } else {
                    json!({"plannedRound": round - 1})
                };
                assert_eq!(args["baseline"], want, "plan round {round}");
                assert!(args["dryRun"].is_boolean(), "plan gets dryRun: {args}");
                let diff = self.differing();
                let mut lines = String::new();
                let mut tables: BTreeMap<String, (u64, u64)> = BTreeMap::new();
                for (t, b, rows) in &diff {
                    lines.push_str(
                        &json!({"table": t, "min": b * 10, "max": b * 10 + 9, "estimatedRows": rows})
                            .to_string(),
                    );
                    lines.push('\n');
                    let e = tables.entry(t.clone()).or_default();
                    e.0 += 1;
                    e.1 += rows;
                }
                let file = self.s3_root.join(bucket).join(&key);
                std::fs::create_dir_all(file.parent().unwrap()).unwrap();
                std::fs::write(&file, lines).unwrap();
                Ok(json!({
                    "round": args["round"],
                    "chunks": diff.len(),
                    "estimatedRows": diff.iter().map(|d| d.2).sum::<u64>(),
                    "inSync": diff.is_empty(),
                    "tables": tables.iter().map(|(t, (c, r))| json!({"table": t, "chunks": c, "estimatedRows": r})).collect::<Vec<_>>(),
                    "manifest": {"bucket": bucket, "key": key},
                    "tracking": {"plannedRound": round},
                    "sourceStamp": null
                }))
            }
            "copy" => {
                if let Some(err) = self.copy_failures.lock().unwrap().pop() {
                    return Err(TaskError::new(err, "simulated"));
                }
                let c = &args["chunk"];
                let (t, min, max) = (
                    c["table"].as_str().unwrap(),
                    c["min"].as_i64().unwrap(),
                    c["max"].as_i64().unwrap(),
                );
                let rows: Vec<(i64, String)> = self
                    .source
                    .lock()
                    .unwrap()
                    .get(t)
                    .map(|tb| tb.range(min..=max).map(|(k, v)| (*k, v.clone())).collect())
                    .unwrap_or_default();
                let mut dest = self.dest.lock().unwrap();
                let dt = dest.entry(t.to_owned()).or_default();
                let before = dt.range(min..=max).count();
                dt.retain(|k, _| !(min..=max).contains(k));
                let inserted = rows.len() as u64 + self.extra_rows_per_copy;
                dt.extend(rows);
                Ok(
                    json!({"table": t, "min": min, "max": max, "rowsDeleted": before, "rowsInserted": inserted, "durationMs": 1}),
                )
            }
            "verify" => {
                assert_eq!(
                    args["baseline"],
                    json!({"plannedRound": args["round"]}),
                    "verify gets its round's plan as the baseline"
                );
                if let Some((t, k, v)) = self.change_source_at_first_verify.lock().unwrap().take() {
                    self.source
                        .lock()
                        .unwrap()
                        .entry(t)
                        .or_default()
                        .insert(k, v);
                }
                if self.always_changing {
                    let n = self.activity_calls.lock().unwrap().len() as i64;
                    self.source
                        .lock()
                        .unwrap()
                        .entry("users".into())
                        .or_default()
                        .insert(1000 + n, "new".into());
                }
                let diff = self.differing();
                let round = args["round"].as_u64().unwrap();
                let max = args["maxRounds"].as_u64().unwrap();
                // The round's copy results, from the Map's ResultWriter files, by the runner's
                // own reader.
                let results = &args["results"];
                let store = stepops_runner::LocalFolderStore::new(&self.s3_root);
                let totals = stepops_runner::round_totals(
                    &store,
                    results["Bucket"]
                        .as_str()
                        .expect("verify gets results.Bucket"),
                    results["Key"].as_str().expect("verify gets results.Key"),
                )
                .await
                .expect("the ResultWriter files are readable");
                let before = |k: &str| args["totals"][k].as_u64().expect("verify gets totals");
                let counts = json!({"chunksCopied": totals.chunks_copied,
                    "rowsCopied": totals.rows_copied, "rowsDeleted": totals.rows_deleted,
                    "totals": {
                        "chunksCopied": before("chunksCopied") + totals.chunks_copied,
                        "rowsCopied": before("rowsCopied") + totals.rows_copied,
                        "rowsDeleted": before("rowsDeleted") + totals.rows_deleted}});
                let mut tables: Vec<_> = diff.iter().map(|d| d.0.clone()).collect();
                tables.dedup();
                let with = |mut v: Value| {
                    for (k, x) in counts.as_object().unwrap() {
                        v[k] = x.clone();
                    }
                    v
                };
                if diff.is_empty() {
                    Ok(with(
                        json!({"converged": true, "round": round, "differingTables": []}),
                    ))
                } else if round < max {
                    Ok(with(
                        json!({"converged": false, "round": round, "differingTables": tables}),
                    ))
                } else {
                    Err(TaskError::new(
                        "Stepops.NotConverged",
                        format!(
                            "still different after {round} rounds: {}",
                            tables.join(", ")
                        ),
                    ))
                }
            }
            other => panic!("unknown step {other}"),
        }
    }

    fn lambda(&self, input: &Value) -> Result<Value, TaskError> {
        let payload = input["Payload"].clone();
        let function = input["FunctionName"].as_str().unwrap();
        let result = if function == VALIDATE {
            validate_handler(&payload, &self.stack).map_err(|e| TaskFailure::from_error(&e))
        } else if function == NOTIFY {
            // The state machine's payload must be what the notify function accepts.
            let req = NotifyRequest::from_value(payload.clone())
                .unwrap_or_else(|e| panic!("notify payload refused: {e}: {payload}"));
            let _ = compose(&req, Utc::now());
            self.notifications.lock().unwrap().push(req);
            Ok(json!({"delivered": ["sns"], "failed": []}))
        } else {
            panic!("unknown function {function}");
        };
        match result {
            Ok(v) => Ok(json!({"StatusCode": 200, "Payload": v})),
            Err(f) => Err(TaskError::new(
                f.error.clone(),
                json!({"errorType": f.error, "errorMessage": f.cause}).to_string(),
            )),
        }
    }
}

struct Dispatcher(Arc<World>);

impl TaskDispatcher for Dispatcher {
    fn dispatch(&self, task: TaskInvocation) -> BoxFuture<'static, Result<Value, TaskError>> {
        let world = self.0.clone();
        async move {
            if task.resource == ACTIVITY {
                assert_eq!(task.heartbeat_seconds, Some(60), "{}", task.state_name);
                assert!(task.timeout_seconds.is_some(), "{}", task.state_name);
                world.activity(&task.state_name, &task.input).await
            } else if task.resource == "arn:aws:states:::lambda:invoke" {
                world.lambda(&task.input)
            } else {
                panic!("unexpected resource {}", task.resource)
            }
        }
        .boxed()
    }
}

/// Keeps the history.
#[derive(Default)]
struct Recorded(Mutex<Vec<HistoryEvent>>);
impl ExecutionStore for Recorded {
    fn record(&self, _: &str, events: &[HistoryEvent], _: &Snapshot) -> Result<(), StoreError> {
        self.0.lock().unwrap().extend_from_slice(events);
        Ok(())
    }
}

/// The recorded history as `GetExecutionHistory` would give it to the notify function.
impl ExecutionHistory for Recorded {
    async fn history(&self, _arn: &str) -> Result<Vec<HistoryItem>, String> {
        Ok(self
            .0
            .lock()
            .unwrap()
            .iter()
            .map(|e| HistoryItem {
                event_type: e.event_type.clone(),
                state: e.details["name"].as_str().map(str::to_owned),
                error: e.details["error"].as_str().map(str::to_owned),
                cause: e.details["cause"].as_str().map(str::to_owned),
            })
            .collect())
    }
}

const EXECUTION: &str = "arn:aws:states:eu-west-1:123456789012:execution:stepops-dev-migrate:t1";

/// The notification the template's rule makes the notify function send for `r` (a failure),
/// after checking that the machine itself sent none.
async fn failure_notification(world: &World, r: &ExecutionResult) -> NotifyRequest {
    let ExecutionResult::Failed { error, cause } = r else {
        panic!("expected a failure, got {r:?}");
    };
    assert!(
        world.notifications.lock().unwrap().is_empty(),
        "the machine notifies no failure itself (no Catch)"
    );
    let event: StatusChangeEvent = serde_json::from_value(json!({
        "source": "aws.states",
        "detail-type": "Step Functions Execution Status Change",
        "detail": {"executionArn": EXECUTION, "status": "FAILED", "error": error, "cause": cause,
                   "startDate": Utc::now().timestamp_millis()}
    }))
    .unwrap();
    let history = world.history.clone();
    request_from_status_change(&event, history.as_ref(), Some("dev"))
        .await
        .unwrap()
}

async fn run(world: &Arc<World>, input: Value) -> ExecutionResult {
    let info = ExecutionInfo {
        execution_arn: EXECUTION.into(),
        name: "t1".into(),
        state_machine_arn: "arn:aws:states:eu-west-1:123456789012:stateMachine:stepops-dev-migrate"
            .into(),
        state_machine_name: "stepops-dev-migrate".into(),
        role_arn: "arn:aws:iam::123456789012:role/r".into(),
        start_time: Utc::now(),
        redrive_count: 0,
    };
    let run = stepops_asl::run(
        Arc::new(definition()),
        info,
        input,
        None,
        Arc::new(Dispatcher(world.clone())),
        world.history.clone(),
        RunOptions {
            time_scale: 0.0,
            s3_root: Some(world.s3_root.clone()),
        },
        CancellationToken::new(),
    );
    tokio::time::timeout(std::time::Duration::from_secs(60), run)
        .await
        .expect("the execution ends")
}

fn input(extra: Value) -> Value {
    let mut v = json!({
        "environment": "dev",
        "source": {"secret": "stepops/dev/source-db"},
        "dest": {"secret": "stepops/dev/dest-db"},
        "config": {"exclude": ["audit_log"]},
        "maxConcurrency": 4
    });
    for (k, x) in extra.as_object().unwrap() {
        v[k] = x.clone();
    }
    v
}

fn db(tables: &[(&str, &[(i64, &str)])]) -> Db {
    tables
        .iter()
        .map(|(t, rows)| {
            (
                t.to_string(),
                rows.iter().map(|(k, v)| (*k, v.to_string())).collect(),
            )
        })
        .collect()
}

fn stale_pair() -> (Db, Db) {
    let source = db(&[
        ("users", &[(1, "a"), (2, "b"), (15, "c"), (31, "d")]),
        ("projects", &[(5, "p"), (6, "q")]),
    ]);
    let dest = db(&[
        ("users", &[(1, "a"), (2, "B-old"), (40, "gone")]),
        ("projects", &[(5, "p"), (6, "q")]),
    ]);
    (source, dest)
}

#[tokio::test]
async fn a_stale_destination_is_copied_verified_and_notified_with_read_only_around_it() {
    let dir = tempfile::tempdir().unwrap();
    let (s, d) = stale_pair();
    let world = World::new(dir.path(), s, d);
    let r = run(&world, input(json!({"readOnlyDuringCopy": true}))).await;
    assert!(matches!(r, ExecutionResult::Succeeded { .. }), "{r:?}");
    assert_eq!(*world.dest.lock().unwrap(), *world.source.lock().unwrap());

    let steps = world.steps();
    assert_eq!(steps.first().unwrap(), "SetDestinationReadOnly:set-status");
    assert_eq!(steps[1], "Plan:plan");
    assert_eq!(
        steps.iter().filter(|s| *s == "CopyChunk:copy").count(),
        4,
        "bins users/0, users/1, users/3, users/4: {steps:?}"
    );
    assert_eq!(
        &steps[steps.len() - 2..],
        ["Verify:verify", "SetDestinationReadWrite:set-status"]
    );
    let calls = world.activity_calls.lock().unwrap();
    assert_eq!(calls[0].1["args"]["readOnly"], true);
    assert_eq!(calls.last().unwrap().1["args"]["readOnly"], false);
    assert_eq!(
        calls.last().unwrap().1["args"]["config"],
        json!({"exclude": ["audit_log"]})
    );
    assert!(!*world.dest_read_only.lock().unwrap(), "ends read-write");
    // Verify is told where the copy Map's ResultWriter put the round's results.
    let verify = calls.iter().find(|c| c.0 == "Verify").unwrap();
    let results_key = verify.1["args"]["results"]["Key"].as_str().unwrap();
    assert!(
        results_key.starts_with("results/t1/round-1/") && results_key.ends_with("/manifest.json"),
        "{results_key}"
    );
    // The copy child gets the targets and config from the execution input, and its chunk.
    let copy = calls.iter().find(|c| c.0 == "CopyChunk").unwrap();
    assert_eq!(copy.1["args"]["config"], json!({"exclude": ["audit_log"]}));
    assert!(copy.1["args"]["chunk"]["table"].is_string());
    // The plan's manifest prefix is per execution and round.
    assert_eq!(
        calls[1].1["args"]["manifest"],
        json!({"bucket": BUCKET, "prefix": "manifests/t1/round-1"})
    );
    drop(calls);

    let notes = world.notifications.lock().unwrap();
    assert_eq!(notes.len(), 1);
    let n = &notes[0];
    assert_eq!(n.status, RunStatus::Succeeded);
    assert_eq!(n.environment, "dev");
    let s = n.summary.clone().unwrap();
    assert_eq!(
        (s.tables, s.chunks, s.estimated_rows, s.rounds),
        (Some(1), Some(4), Some(4), Some(1))
    );
    // Exact rows: users 2 (B-old) replaced, 15 and 31 inserted, 40 deleted.
    assert_eq!(
        (s.chunks_copied, s.rows_copied, s.rows_deleted),
        (Some(4), Some(4), Some(3))
    );
    let text = compose(n, Utc::now()).text;
    assert!(text.contains("rows copied: 4, rows deleted: 3"), "{text}");
    assert!(n.start_time.is_some());
    // Copy results were written by the Map's ResultWriter.
    assert!(dir.path().join(BUCKET).join("results/t1/round-1").exists());
}

#[tokio::test]
async fn a_second_run_copies_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let (s, _) = stale_pair();
    let world = World::new(dir.path(), s.clone(), s);
    let r = run(&world, input(json!({}))).await;
    assert!(matches!(r, ExecutionResult::Succeeded { .. }), "{r:?}");
    assert_eq!(world.steps(), vec!["Plan:plan"]);
    let s = world.notifications.lock().unwrap()[0]
        .summary
        .clone()
        .unwrap();
    assert_eq!(s.chunks, Some(0));
    assert_eq!((s.rows_copied, s.rows_deleted), (Some(0), Some(0)));
}

#[tokio::test]
async fn a_source_that_changes_during_the_copy_takes_another_round() {
    let dir = tempfile::tempdir().unwrap();
    let (s, d) = stale_pair();
    let world = World::new(dir.path(), s, d);
    *world.change_source_at_first_verify.lock().unwrap() =
        Some(("projects".into(), 77, "late".into()));
    // Two transient failures and one heartbeat timeout on copies are retried.
    *world.copy_failures.lock().unwrap() = vec![
        "Stepops.Transient",
        "States.HeartbeatTimeout",
        "Stepops.Transient",
    ];
    let r = run(&world, input(json!({}))).await;
    assert!(matches!(r, ExecutionResult::Succeeded { .. }), "{r:?}");
    assert_eq!(*world.dest.lock().unwrap(), *world.source.lock().unwrap());
    let plans: Vec<_> = world
        .activity_calls
        .lock()
        .unwrap()
        .iter()
        .filter(|c| c.0 == "Plan")
        .map(|c| {
            (
                c.1["args"]["round"].clone(),
                c.1["args"]["manifest"]["prefix"].clone(),
            )
        })
        .collect();
    assert_eq!(
        plans,
        vec![
            (json!(1), json!("manifests/t1/round-1")),
            (json!(2), json!("manifests/t1/round-2"))
        ]
    );
    let s = world.notifications.lock().unwrap()[0]
        .summary
        .clone()
        .unwrap();
    assert_eq!((s.chunks, s.rounds), (Some(5), Some(2)), "4 chunks, then 1");
    // Retried copies count once (their last attempt); round 2 inserted projects/77.
    assert_eq!(
        (s.chunks_copied, s.rows_copied, s.rows_deleted),
        (Some(5), Some(5), Some(3))
    );
}

#[tokio::test]
async fn a_dry_run_plans_and_copies_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let (s, d) = stale_pair();
    let world = World::new(dir.path(), s, d.clone());
    let r = run(
        &world,
        input(json!({"dryRun": true, "readOnlyDuringCopy": true})),
    )
    .await;
    assert!(matches!(r, ExecutionResult::Succeeded { .. }), "{r:?}");
    assert_eq!(world.steps(), vec!["Plan:plan"]);
    let plan_args = world.activity_calls.lock().unwrap()[0].1.clone();
    assert_eq!(plan_args["args"]["dryRun"], json!(true), "{plan_args}");
    assert_eq!(*world.dest.lock().unwrap(), d);
    let s = world.notifications.lock().unwrap()[0]
        .summary
        .clone()
        .unwrap();
    assert_eq!((s.dry_run, s.chunks), (Some(true), Some(4)));
}

#[tokio::test]
async fn a_prod_target_from_dev_fails_in_validate_before_any_step_and_notifies() {
    let dir = tempfile::tempdir().unwrap();
    let (s, d) = stale_pair();
    let world = World::new(dir.path(), s, d.clone());
    let r = run(
        &world,
        input(json!({"dest": {"secret": "stepops/prod/dest-db"}})),
    )
    .await;
    match &r {
        ExecutionResult::Failed { error, cause } => {
            assert_eq!(error.as_deref(), Some("Stepops.WrongEnvironment"));
            assert!(cause.as_deref().unwrap().contains("a prod target"));
        }
        other => panic!("expected failure, got {other:?}"),
    }
    assert!(world.steps().is_empty(), "no runner step ran");
    assert_eq!(*world.dest.lock().unwrap(), d);
    let n = failure_notification(&world, &r).await;
    assert_eq!(n.status, RunStatus::Failed);
    assert_eq!(n.failed_step.as_deref(), Some("ValidateInput"));
    assert_eq!(n.destination_read_only, Some(false));
    assert_eq!(
        n.error.as_ref().unwrap().error.as_deref(),
        Some("Stepops.WrongEnvironment")
    );
    let text = compose(&n, Utc::now()).text;
    assert!(text.contains("start a new execution"), "{text}");
}

#[tokio::test]
async fn inputs_that_are_not_objects_still_fail_with_a_notification() {
    let dir = tempfile::tempdir().unwrap();
    let world = World::new(dir.path(), Db::new(), Db::new());
    let r = run(&world, json!("go")).await;
    assert!(
        matches!(&r, ExecutionResult::Failed { error: Some(e), .. } if e == "Stepops.InvalidInput"),
        "{r:?}"
    );
    let n = failure_notification(&world, &r).await;
    assert_eq!(n.failed_step.as_deref(), Some("ValidateInput"));
}

/// The validate-input corpus of `tests/data/bad-inputs.json`, each case as an execution of the
/// real machine: it fails at ValidateInput with the case's error name and cause, before any
/// runner step, with no notification of the machine's own, and with the failed step named in
/// the notification the template's rule sends.
#[tokio::test]
async fn every_bad_input_of_the_corpus_fails_the_execution_in_validate_before_any_step() {
    let (stack, cases) = corpus::bad_inputs();
    let mut failures = Vec::new();
    for case in &cases {
        let name = &case.name;
        let dir = tempfile::tempdir().unwrap();
        let (s, d) = stale_pair();
        let world = World::with_stack(dir.path(), s, d.clone(), stack.clone());
        let r = run(&world, case.input.clone()).await;
        let ExecutionResult::Failed { error, cause } = &r else {
            failures.push(format!("{name}: the execution did not fail: {r:?}"));
            continue;
        };
        let cause = cause.as_deref().unwrap_or_default();
        let message = serde_json::from_str::<Value>(cause)
            .ok()
            .and_then(|c| c["errorMessage"].as_str().map(str::to_owned))
            .unwrap_or_default();
        failures.extend(case.mismatch(error.as_deref().unwrap_or_default(), &message));
        if cause.contains("hunter2") {
            failures.push(format!("{name}: the cause leaks a password"));
        }
        if !world.steps().is_empty() {
            failures.push(format!("{name}: runner steps ran: {:?}", world.steps()));
        }
        if *world.dest.lock().unwrap() != d {
            failures.push(format!("{name}: the destination changed"));
        }
        let n = failure_notification(&world, &r).await;
        if n.failed_step.as_deref() != Some("ValidateInput") {
            failures.push(format!("{name}: failed step {:?}", n.failed_step));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[tokio::test]
async fn a_source_that_never_settles_fails_not_converged_at_the_round_limit() {
    let dir = tempfile::tempdir().unwrap();
    let (s, d) = stale_pair();
    let mut w = World::new(dir.path(), s, d);
    Arc::get_mut(&mut w).unwrap().always_changing = true;
    let r = run(
        &w,
        input(json!({"maxRounds": 3, "readOnlyDuringCopy": true})),
    )
    .await;
    assert!(
        matches!(&r, ExecutionResult::Failed { error: Some(e), .. } if e == "Stepops.NotConverged"),
        "{r:?}"
    );
    assert_eq!(
        w.steps().iter().filter(|s| *s == "Verify:verify").count(),
        3
    );
    assert!(
        !w.steps()
            .contains(&"SetDestinationReadWrite:set-status".to_owned()),
        "stays read-only on failure"
    );
    assert!(*w.dest_read_only.lock().unwrap());
    let n = failure_notification(&w, &r).await;
    assert_eq!(n.failed_step.as_deref(), Some("Verify"));
    assert_eq!(n.destination_read_only, Some(true));
    let text = compose(&n, Utc::now()).text;
    assert!(text.contains("still different after 3 rounds"), "{text}");
    assert!(
        text.contains("The destination is still READ-ONLY"),
        "{text}"
    );
}

#[tokio::test]
async fn a_chunk_that_keeps_failing_fails_the_map_and_notifies_copy_chunks() {
    let dir = tempfile::tempdir().unwrap();
    let (s, d) = stale_pair();
    let world = World::new(dir.path(), s, d);
    *world.copy_failures.lock().unwrap() = vec!["Stepops.SchemaMismatch"];
    let r = run(&world, input(json!({"maxConcurrency": 1}))).await;
    let n = failure_notification(&world, &r).await;
    assert_eq!(n.failed_step.as_deref(), Some("CopyChunks"));
    assert!(!world.steps().contains(&"Verify:verify".to_owned()));
    let text = compose(&n, Utc::now()).text;
    assert!(
        text.contains("only the chunks that did not succeed are copied again"),
        "{text}"
    );
}

#[tokio::test]
async fn a_failed_copy_after_read_only_leaves_it_read_only_and_says_so() {
    let dir = tempfile::tempdir().unwrap();
    let (s, d) = stale_pair();
    let world = World::new(dir.path(), s, d);
    *world.copy_failures.lock().unwrap() = vec!["Stepops.SchemaMismatch"];
    let r = run(
        &world,
        input(json!({"maxConcurrency": 1, "readOnlyDuringCopy": true})),
    )
    .await;
    assert!(
        matches!(&r, ExecutionResult::Failed { error: Some(e), .. } if e == "States.ExceedToleratedFailureThreshold"),
        "{r:?}"
    );
    assert_eq!(world.steps()[0], "SetDestinationReadOnly:set-status");
    assert!(
        !world
            .steps()
            .contains(&"SetDestinationReadWrite:set-status".to_owned())
    );
    assert!(*world.dest_read_only.lock().unwrap(), "left read-only");
    let n = failure_notification(&world, &r).await;
    assert_eq!(n.failed_step.as_deref(), Some("CopyChunks"));
    assert_eq!(n.destination_read_only, Some(true));
    let text = compose(&n, Utc::now()).text;
    assert!(
        text.contains("The destination is still READ-ONLY"),
        "{text}"
    );
}

#[tokio::test]
async fn a_failed_copy_without_read_only_does_not_mention_it() {
    let dir = tempfile::tempdir().unwrap();
    let (s, d) = stale_pair();
    let world = World::new(dir.path(), s, d);
    *world.copy_failures.lock().unwrap() = vec!["Stepops.SchemaMismatch"];
    let r = run(&world, input(json!({"maxConcurrency": 1}))).await;
    let n = failure_notification(&world, &r).await;
    assert_eq!(n.destination_read_only, Some(false));
    assert!(!compose(&n, Utc::now()).text.contains("READ-ONLY"));
}

#[tokio::test]
async fn a_refused_set_status_stops_before_the_plan_and_notifies() {
    let dir = tempfile::tempdir().unwrap();
    let (s, d) = stale_pair();
    let world = World::new(dir.path(), s, d.clone());
    *world.status_failure.lock().unwrap() = Some("Stepops.InvalidInput");
    let r = run(&world, input(json!({"readOnlyDuringCopy": true}))).await;
    assert!(
        matches!(&r, ExecutionResult::Failed { error: Some(e), .. } if e == "Stepops.InvalidInput"),
        "{r:?}"
    );
    assert_eq!(world.steps(), vec!["SetDestinationReadOnly:set-status"]);
    assert_eq!(*world.dest.lock().unwrap(), d);
    let n = failure_notification(&world, &r).await;
    assert_eq!(n.failed_step.as_deref(), Some("SetDestinationReadOnly"));
    assert_eq!(n.destination_read_only, Some(false));
}

#[tokio::test]
async fn row_totals_beyond_32_bits_reach_the_notification() {
    let dir = tempfile::tempdir().unwrap();
    let (s, d) = stale_pair();
    let mut w = World::new(dir.path(), s, d);
    Arc::get_mut(&mut w).unwrap().extra_rows_per_copy = 3_000_000_000;
    let r = run(&w, input(json!({}))).await;
    assert!(matches!(r, ExecutionResult::Succeeded { .. }), "{r:?}");
    let s = w.notifications.lock().unwrap()[0].summary.clone().unwrap();
    assert_eq!(s.rows_copied, Some(4 + 4 * 3_000_000_000));
    assert_eq!(s.rows_deleted, Some(3));
}
