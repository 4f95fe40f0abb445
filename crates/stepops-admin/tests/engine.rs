//! `statemachine/admin.asl.json` run by the stepops ASL interpreter, with the admin function
//! in-process (as the local engine runs it) and the local HTTP stand-in as the service: retries
//! happen only on `Stepops.Transient`, every failure is notified and ends in the named `Fail`.

mod common;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use chrono::Utc;
use common::{ListTokens, MockSynapse, Recorded, Reply, SECRET};
use futures::future::BoxFuture;
use serde_json::{Value, json};
use stepops_admin::{Environment, SynapseClient};
use stepops_asl::{
    Definition, ExecutionInfo, ExecutionResult, ExecutionStore, HistoryEvent, RunOptions, Snapshot,
    StoreError, TaskDispatcher, TaskError, TaskInvocation,
};
use stepops_error::TaskFailure;
use tokio_util::sync::CancellationToken;

const ADMIN_ARN: &str = "arn:aws:lambda:us-east-1:000000000000:function:stepops-dev-admin";
const NOTIFY_ARN: &str = "arn:aws:lambda:us-east-1:000000000000:function:stepops-dev-notify";
const EXECUTION_ARN: &str = "arn:aws:states:us-east-1:000000000000:execution:stepops-dev-admin:t1";

fn definition() -> Arc<Definition> {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../statemachine/admin.asl.json"
    );
    let text = std::fs::read_to_string(path)
        .unwrap()
        .replace("${AdminFunctionArn}", ADMIN_ARN)
        .replace("${NotifyFunctionArn}", NOTIFY_ARN)
        .replace("${Environment}", "dev");
    Arc::new(
        Definition::parse(&text)
            .unwrap_or_else(|e| panic!("the interpreter refuses the definition: {e}")),
    )
}

/// Runs the admin function in-process and records the notifications.
struct Dispatcher {
    client: Arc<SynapseClient<ListTokens>>,
    notifications: Mutex<Vec<Value>>,
    admin_calls: AtomicUsize,
    notify_fails: bool,
}

impl TaskDispatcher for Dispatcher {
    fn dispatch(&self, task: TaskInvocation) -> BoxFuture<'static, Result<Value, TaskError>> {
        assert_eq!(task.resource, "arn:aws:states:::lambda:invoke");
        let function = task.input["FunctionName"]
            .as_str()
            .unwrap_or_default()
            .to_owned();
        let payload = task.input["Payload"].clone();
        let wrap =
            |p: Value| json!({"Payload": p, "StatusCode": 200, "ExecutedVersion": "$LATEST"});
        if function == NOTIFY_ARN {
            // The real notify function's parser (unknown fields refused) accepts the payload, and
            // the message it composes names the task and never holds the token.
            let req = stepops_pipeline::NotifyRequest::from_value(payload.clone())
                .unwrap_or_else(|e| panic!("notify refuses {payload}: {e}"));
            assert!(payload["startTime"].is_string());
            let message = stepops_pipeline::compose(&req, Utc::now());
            if payload["status"] == "SUCCEEDED" {
                assert!(message.text.contains("remove-user"), "{}", message.text);
            }
            assert!(!message.text.contains(SECRET) && !message.subject.contains(SECRET));
            self.notifications.lock().unwrap().push(payload);
            let result = if self.notify_fails {
                Err(TaskError::new(
                    "Stepops.InvalidInput",
                    "no topic configured",
                ))
            } else {
                Ok(wrap(json!({"delivered": ["sns"]})))
            };
            return Box::pin(async move { result });
        }
        assert_eq!(function, ADMIN_ARN, "state {}", task.state_name);
        self.admin_calls.fetch_add(1, Ordering::SeqCst);
        let client = self.client.clone();
        Box::pin(async move {
            stepops_admin::invoke(&payload, Environment::Dev, &client)
                .await
                .map(wrap)
                .map_err(|e| {
                    let f = TaskFailure::from_error(&e);
                    TaskError::new(f.error, f.cause)
                })
        })
    }
}

struct NoStore;

impl ExecutionStore for NoStore {
    fn record(&self, _: &str, _: &[HistoryEvent], _: &Snapshot) -> Result<(), StoreError> {
        Ok(())
    }
}

struct Outcome {
    result: ExecutionResult,
    notifications: Vec<Value>,
    admin_calls: usize,
    requests: Vec<Recorded>,
}

async fn execute(
    input: Value,
    respond: impl Fn(&Recorded) -> Reply + Send + Sync + 'static,
    notify_fails: bool,
) -> Outcome {
    let server = MockSynapse::start(respond).await;
    let dispatcher = Arc::new(Dispatcher {
        client: Arc::new(server.client(ListTokens::new(&[SECRET]))),
        notifications: Mutex::default(),
        admin_calls: AtomicUsize::new(0),
        notify_fails,
    });
    let info = ExecutionInfo {
        execution_arn: EXECUTION_ARN.into(),
        name: "t1".into(),
        state_machine_arn: "arn:aws:states:us-east-1:000000000000:stateMachine:stepops-dev-admin"
            .into(),
        state_machine_name: "stepops-dev-admin".into(),
        role_arn: "arn:aws:iam::000000000000:role/stepops-dev-admin".into(),
        start_time: Utc::now(),
        redrive_count: 0,
    };
    let result = stepops_asl::run(
        definition(),
        info,
        input,
        None,
        dispatcher.clone(),
        Arc::new(NoStore),
        RunOptions {
            time_scale: 0.0,
            ..Default::default()
        },
        CancellationToken::new(),
    )
    .await;
    Outcome {
        result,
        notifications: dispatcher.notifications.lock().unwrap().clone(),
        admin_calls: dispatcher.admin_calls.load(Ordering::SeqCst),
        requests: server.requests(),
    }
}

fn failed_with(result: &ExecutionResult) -> (String, String) {
    match result {
        ExecutionResult::Failed { error, cause } => (
            error.clone().unwrap_or_default(),
            cause.clone().unwrap_or_default(),
        ),
        other => panic!("expected a failure, got {other:?}"),
    }
}

fn remove_user(env: &str, dry_run: bool) -> Value {
    json!({"environment": env, "task": "remove-user", "args": {"userId": "3350396"}, "dryRun": dry_run})
}

fn ok_service(r: &Recorded) -> Reply {
    match r.method.as_str() {
        "GET" => Reply::json(
            200,
            json!({"userId": "3350396", "userProfile": {"userName": "alice"}}),
        ),
        _ => Reply::empty(200),
    }
}

#[tokio::test]
async fn a_task_runs_and_its_audit_record_is_the_output() {
    let out = execute(remove_user("dev", false), ok_service, false).await;
    let ExecutionResult::Succeeded { output } = &out.result else {
        panic!("{:?}", out.result);
    };
    assert_eq!(output["outcome"], "done");
    assert_eq!(output["task"], "remove-user");
    assert_eq!(output["executionId"], EXECUTION_ARN);
    assert_eq!(out.admin_calls, 2, "validate, then run");
    assert_eq!(out.requests.len(), 2);
    assert_eq!(out.notifications.len(), 1);
    let n = &out.notifications[0];
    assert_eq!(n["status"], "SUCCEEDED");
    assert_eq!(n["environment"], "dev");
    assert_eq!(n["executionArn"], EXECUTION_ARN);
    assert_eq!(&n["admin"], output);
    assert!(
        !serde_json::to_string(&out.notifications)
            .unwrap()
            .contains(SECRET)
    );
}

#[tokio::test]
async fn a_dry_run_only_reads() {
    let out = execute(remove_user("dev", true), ok_service, false).await;
    let ExecutionResult::Succeeded { output } = &out.result else {
        panic!("{:?}", out.result);
    };
    assert_eq!(output["outcome"], "dry-run");
    assert!(out.requests.iter().all(|r| r.method == "GET"));
    assert_eq!(out.requests.len(), 1);
}

#[tokio::test]
async fn transient_failures_are_retried_and_then_succeed() {
    let writes = Arc::new(AtomicUsize::new(0));
    let w = writes.clone();
    let out = execute(
        remove_user("dev", false),
        move |r: &Recorded| {
            if r.method == "POST" && w.fetch_add(1, Ordering::SeqCst) < 2 {
                return Reply::json(503, json!({"reason": "stack is restarting"}));
            }
            ok_service(r)
        },
        false,
    )
    .await;
    assert!(
        matches!(out.result, ExecutionResult::Succeeded { .. }),
        "{:?}",
        out.result
    );
    assert_eq!(
        out.admin_calls,
        1 + 3,
        "validate, then three attempts of RunTask"
    );
    let methods: Vec<&str> = out.requests.iter().map(|r| r.method.as_str()).collect();
    assert_eq!(
        methods,
        ["GET", "POST", "GET", "POST", "GET", "POST"],
        "each attempt re-reads"
    );
}

#[tokio::test]
async fn transient_failures_that_persist_fail_after_the_retries() {
    let out = execute(
        remove_user("dev", false),
        |_: &Recorded| Reply::json(502, json!({"reason": "bad gateway"})),
        false,
    )
    .await;
    let (error, cause) = failed_with(&out.result);
    assert_eq!(error, "Stepops.Transient");
    assert!(cause.contains("502"), "{cause}");
    assert_eq!(out.admin_calls, 1 + 5, "validate, then 1 + MaxAttempts 4");
    assert_eq!(out.notifications.len(), 1);
    assert_eq!(out.notifications[0]["status"], "FAILED");
    assert_eq!(out.notifications[0]["failedStep"], "RunTask");
}

#[tokio::test]
async fn other_errors_are_not_retried_and_end_in_the_named_fail() {
    for (status, name) in [
        (404, "Stepops.NotFound"),
        (403, "Stepops.Unauthorized"),
        (409, "Stepops.Conflict"),
        (400, "Stepops.InvalidInput"),
    ] {
        let out = execute(
            remove_user("dev", false),
            move |_: &Recorded| Reply::json(status, json!({"reason": "no"})),
            false,
        )
        .await;
        let (error, _) = failed_with(&out.result);
        assert_eq!(error, name, "HTTP {status}");
        assert_eq!(
            out.admin_calls, 2,
            "HTTP {status}: validate, one run, no retry"
        );
        assert_eq!(out.requests.len(), 1, "HTTP {status}");
        let n = &out.notifications[0];
        assert_eq!(n["status"], "FAILED");
        assert_eq!(n["failedStep"], "RunTask");
        assert_eq!(n["error"]["Error"], name);
    }
}

#[tokio::test]
async fn invalid_input_fails_in_validate_without_any_request() {
    for (input, name) in [
        (remove_user("prod", false), "Stepops.WrongEnvironment"),
        (
            json!({"environment": "dev", "task": "remove-user", "args": {"userId": "1/../x"}}),
            "Stepops.InvalidInput",
        ),
        (json!("remove-user 1"), "Stepops.InvalidInput"),
        (
            json!({"environment": "dev", "task": "nope"}),
            "Stepops.InvalidInput",
        ),
    ] {
        let out = execute(input.clone(), ok_service, false).await;
        let (error, cause) = failed_with(&out.result);
        assert_eq!(error, name, "{input}: {cause}");
        assert_eq!(out.admin_calls, 1, "{input}: validation is not retried");
        assert!(
            out.requests.is_empty(),
            "{input}: nothing reaches the service"
        );
        assert_eq!(out.notifications.len(), 1);
        assert_eq!(out.notifications[0]["failedStep"], "Validate");
        assert_eq!(out.notifications[0]["environment"], "dev");
    }
}

#[tokio::test]
async fn a_failed_notification_does_not_fail_a_task_that_succeeded() {
    let out = execute(remove_user("dev", false), ok_service, true).await;
    let ExecutionResult::Succeeded { output } = &out.result else {
        panic!("{:?}", out.result);
    };
    assert_eq!(output["outcome"], "done");
    // On the failure path, a failed notification still ends in the task's own error.
    let out = execute(
        remove_user("dev", false),
        |_: &Recorded| Reply::json(404, json!({"reason": "no such user"})),
        true,
    )
    .await;
    assert_eq!(failed_with(&out.result).0, "Stepops.NotFound");
}
