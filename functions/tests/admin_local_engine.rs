//! The admin state machine through the FULL local engine service: the project's `template.yaml`
//! loaded by `stepops-local` (so `AdminStateMachine`, its `DefinitionSubstitutions` and the
//! function names are what deploys), the admin function registered in-process as the Lambda
//! binary runs it (`stepops_admin::invoke`, errors by their `Stepops.*` name), executions started
//! and watched through the real `aws-sdk-sfn` client against the engine's endpoint, and a fake
//! Synapse on 127.0.0.1 that records every request.

use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use aws_sdk_sfn::config::{BehaviorVersion, Credentials, Region};
use aws_sdk_sfn::types::ExecutionStatus;
use serde_json::{Value, json};
use stepops_admin::{AdminSettings, LocalTokenSource, SynapseClient};
use stepops_local::{EngineConfig, LambdaError, LocalEngine, TemplateOptions, handler};
use stepops_testkit::http::{HttpServer, Recorded, Reply};

const TOKEN: &str = "syn-pat-local-engine-test-SECRET-93ad1";

/// One request as the fake service saw it.
#[derive(Debug, Clone)]
struct Seen {
    method: String,
    /// Path and query.
    uri: String,
    authorization: Option<String>,
}

/// A fake Synapse on 127.0.0.1 (the testkit's recording HTTP server): answers
/// `(status, body)` from the test's function, given the request and its 1-based number.
struct FakeSynapse {
    base_url: String,
    server: HttpServer,
}

impl FakeSynapse {
    async fn start(
        respond: impl Fn(&Seen, usize) -> (u16, String) + Send + Sync + 'static,
    ) -> Self {
        let count = AtomicUsize::new(0);
        let server = HttpServer::start(move |r| {
            let n = count.fetch_add(1, Ordering::SeqCst) + 1;
            let (status, body) = respond(&seen_of(r), n);
            Reply::new(status, "application/json", body)
        })
        .await;
        FakeSynapse {
            base_url: server.url().to_owned(),
            server,
        }
    }

    fn seen(&self) -> Vec<Seen> {
        self.server.requests().iter().map(seen_of).collect()
    }
}

fn seen_of(r: &Recorded) -> Seen {
    Seen {
        method: r.method.clone(),
        uri: match &r.query {
            Some(q) => format!("{}?{q}", r.path),
            None => r.path.clone(),
        },
        authorization: r.header("authorization").map(str::to_owned),
    }
}

/// The engine serving the project's template (dev stack), the admin function in-process, the
/// notify function recording its payloads, and an SDK client pointed at the engine.
struct Harness {
    _engine: LocalEngine,
    _dir: tempfile::TempDir,
    sfn: aws_sdk_sfn::Client,
    notifications: Arc<Mutex<Vec<Value>>>,
    admin_calls: Arc<AtomicUsize>,
    /// The stack's environment (`dev` or `prod`).
    environment: &'static str,
}

impl Harness {
    /// A dev stack.
    async fn start(synapse: &FakeSynapse) -> Self {
        Harness::start_in("dev", synapse).await
    }

    /// A stack of `environment` (`dev` or `prod`).
    async fn start_in(environment: &'static str, synapse: &FakeSynapse) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let token_file = dir.path().join("admin-token");
        std::fs::write(&token_file, format!("{TOKEN}\n")).unwrap();
        // The function's settings as the template sets them (environment variables).
        let settings = AdminSettings::from_lookup(|k| match k {
            "STEPOPS_ENVIRONMENT" => Some(environment.into()),
            "STEPOPS_SYNAPSE_ENDPOINT" => Some(synapse.base_url.clone()),
            "STEPOPS_HTTP_TIMEOUT_SECONDS" => Some("5".into()),
            _ => None,
        })
        .unwrap();
        let mut config = settings.client;
        config.system_proxy = false;
        let client = Arc::new(
            SynapseClient::new(config, LocalTokenSource::new(None, Some(token_file))).unwrap(),
        );
        let stack = settings.environment;
        let admin_calls = Arc::new(AtomicUsize::new(0));
        let calls = admin_calls.clone();
        let admin = handler(move |event: Value| {
            let client = client.clone();
            calls.fetch_add(1, Ordering::SeqCst);
            async move {
                stepops_admin::invoke(&event, stack, &client)
                    .await
                    .map_err(|e| LambdaError::from_named(&e))
            }
        });
        let notifications: Arc<Mutex<Vec<Value>>> = Arc::default();
        let rec = notifications.clone();
        let notify = handler(move |event: Value| {
            rec.lock().unwrap().push(event);
            async move { Ok(json!({"delivered": ["test"], "failed": []})) }
        });
        let template = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../template.yaml");
        let engine = LocalEngine::start(
            EngineConfig {
                template: Some(template),
                template_options: TemplateOptions {
                    parameter_overrides: [
                        ("Environment".to_string(), environment.to_string()),
                        ("SynapseEndpoint".to_string(), synapse.base_url.clone()),
                    ]
                    .into(),
                    ..TemplateOptions::default()
                },
                time_scale: 0.0,
                port: Some(0),
                ..EngineConfig::new(dir.path().join("state"))
            }
            .with_lambda("AdminFunction", admin)
            .with_lambda("NotifyFunction", notify),
        )
        .await
        .unwrap();
        let endpoint = engine.endpoint().expect("the engine serves its API");
        let sfn = aws_sdk_sfn::Client::from_conf(
            aws_sdk_sfn::Config::builder()
                .behavior_version(BehaviorVersion::latest())
                .region(Region::new("us-east-1"))
                .credentials_provider(Credentials::new("test", "test", None, None, "test"))
                .endpoint_url(endpoint)
                .build(),
        );
        Harness {
            _engine: engine,
            _dir: dir,
            sfn,
            notifications,
            admin_calls,
            environment,
        }
    }

    /// The admin state machine's ARN, found by its deployed name through the API.
    async fn admin_arn(&self) -> String {
        let list = self.sfn.list_state_machines().send().await.unwrap();
        let name = format!("stepops-{}-admin", self.environment);
        list.state_machines()
            .iter()
            .find(|m| m.name() == name)
            .unwrap_or_else(|| panic!("no {name} in {list:?}"))
            .state_machine_arn()
            .to_owned()
    }

    /// Starts an execution with `input` and polls DescribeExecution until it ends.
    async fn run(
        &self,
        input: Value,
    ) -> aws_sdk_sfn::operation::describe_execution::DescribeExecutionOutput {
        let arn = self.admin_arn().await;
        let started = self
            .sfn
            .start_execution()
            .state_machine_arn(arn)
            .input(input.to_string())
            .send()
            .await
            .unwrap();
        for _ in 0..600 {
            let d = self
                .sfn
                .describe_execution()
                .execution_arn(started.execution_arn())
                .send()
                .await
                .unwrap();
            if d.status() != &ExecutionStatus::Running {
                return d;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("the execution did not end within 30 s");
    }

    /// The execution's whole history.
    async fn history(&self, arn: &str) -> Vec<aws_sdk_sfn::types::HistoryEvent> {
        let out = self
            .sfn
            .get_execution_history()
            .execution_arn(arn)
            .max_results(1000)
            .send()
            .await
            .unwrap();
        assert!(out.next_token().is_none(), "more than 1,000 events");
        out.events().to_vec()
    }

    fn notifications(&self) -> Vec<Value> {
        self.notifications.lock().unwrap().clone()
    }
}

fn output(d: &aws_sdk_sfn::operation::describe_execution::DescribeExecutionOutput) -> Value {
    serde_json::from_str(d.output().expect("a succeeded execution has output")).unwrap()
}

#[tokio::test]
async fn remove_user_succeeds_end_to_end_with_its_audit_record() {
    let bundle = json!({"userId": "3350396",
        "userProfile": {"userName": "jdoe", "firstName": "Janet", "emails": ["janet.doe@example.org"]},
        "isCertified": true});
    let body = bundle.to_string();
    let synapse = FakeSynapse::start(move |s, _| match (s.method.as_str(), s.uri.as_str()) {
        ("GET", "/repo/v1/user/3350396/bundle?mask=127") => (200, body.clone()),
        ("POST", "/repo/v1/admin/redact/user/3350396") => (200, String::new()),
        _ => (400, json!({"reason": "unexpected"}).to_string()),
    })
    .await;
    let h = Harness::start(&synapse).await;
    let d = h
        .run(json!({"environment": "dev", "task": "remove-user", "args": {"userId": "3350396"}, "dryRun": false}))
        .await;
    assert_eq!(d.status(), &ExecutionStatus::Succeeded, "{d:?}");
    let audit = output(&d);
    assert_eq!(audit["task"], "remove-user");
    assert_eq!(audit["target"], "user:3350396");
    assert_eq!(audit["environment"], "dev");
    assert_eq!(audit["outcome"], "done");
    assert_eq!(audit["dryRun"], false);
    // Ids and which parts the bundle had; none of the profile.
    assert_eq!(
        audit["before"],
        json!({"userId": "3350396", "parts": ["userProfile", "isCertified"]})
    );
    assert_eq!(audit["after"], json!({"redacted": true}));
    assert_eq!(audit["executionId"], d.execution_arn());
    assert_eq!(
        audit["requests"],
        json!([
            {"request": "GET /repo/v1/user/3350396/bundle?mask=127", "sent": true},
            {"request": "POST /repo/v1/admin/redact/user/3350396", "sent": true}
        ])
    );
    let seen = synapse.seen();
    assert_eq!(seen.len(), 2, "{seen:?}");
    for s in &seen {
        assert_eq!(
            s.authorization.as_deref(),
            Some(&*format!("Bearer {TOKEN}"))
        );
    }
    assert!(!d.output().unwrap().contains(TOKEN));
    // Nor anywhere in the execution's history (inputs and outputs of every state).
    let history = h.history(d.execution_arn()).await;
    assert!(history.len() > 10, "{history:?}");
    let texts = texts_without_the_token(&history);
    // The same extraction does see what the history holds: the execution's input, the
    // Lambda's payloads and answers, the states' inputs and outputs, the audit record.
    let seen = |field: &str, needle: &str| {
        texts
            .iter()
            .any(|(f, t)| f.as_str() == field && t.contains(needle))
    };
    for (field, needle) in [
        ("ExecutionStarted.input", "3350396"),
        ("TaskScheduled.parameters", "\"action\":\"run\""),
        ("TaskSucceeded.output", "\"redacted\":true"),
        ("StateEntered.input", "remove-user"),
        ("StateExited.output", "\"parts\":[\"userProfile\""),
        ("ExecutionSucceeded.output", "user:3350396"),
    ] {
        assert!(
            seen(field, needle),
            "no {field} holding {needle}: {texts:?}"
        );
    }
    // The user's personal data is in no event of the history, nor in the notification.
    for personal in ["jdoe", "Janet", "janet.doe@example.org"] {
        assert!(
            !texts.iter().any(|(_, t)| t.contains(personal)),
            "{personal} in the history: {texts:?}"
        );
        assert!(
            !d.output().unwrap().contains(personal),
            "{personal} in the output"
        );
        let notes = serde_json::to_string(&h.notifications()).unwrap();
        assert!(!notes.contains(personal), "{personal} notified: {notes}");
    }
    // And it would catch the token in any of them (a made-up event holding it).
    let planted = aws_sdk_sfn::types::HistoryEvent::builder()
        .timestamp(aws_sdk_sfn::primitives::DateTime::from_secs(0))
        .r#type(aws_sdk_sfn::types::HistoryEventType::TaskScheduled)
        .id(1)
        .task_scheduled_event_details(
            aws_sdk_sfn::types::TaskScheduledEventDetails::builder()
                .resource_type("lambda")
                .resource("invoke")
                .region("us-east-1")
                .parameters(format!("{{\"token\":\"{TOKEN}\"}}"))
                .build()
                .unwrap(),
        )
        .build()
        .unwrap();
    assert!(!format!("{planted:?}").contains(TOKEN), "Debug redacts it");
    assert!(event_texts(&planted).iter().any(|(_, t)| t.contains(TOKEN)));
    let notes = h.notifications();
    assert_eq!(notes.len(), 1, "{notes:?}");
    assert_eq!(notes[0]["status"], "SUCCEEDED");
    assert_eq!(notes[0]["admin"], audit);
}

#[tokio::test]
async fn dry_run_sends_only_the_read() {
    let synapse = FakeSynapse::start(|s, _| match s.method.as_str() {
        "GET" => (
            200,
            json!({"feature": "MULTIPART_AUTO_CLEANUP", "enabled": true}).to_string(),
        ),
        _ => (500, String::new()),
    })
    .await;
    let h = Harness::start(&synapse).await;
    let d = h
        .run(json!({"environment": "dev", "task": "set-feature", "args": {"feature": "MULTIPART_AUTO_CLEANUP", "enabled": false}, "dryRun": true}))
        .await;
    assert_eq!(d.status(), &ExecutionStatus::Succeeded, "{d:?}");
    let audit = output(&d);
    assert_eq!(audit["outcome"], "dry-run");
    assert_eq!(audit["after"], Value::Null);
    assert_eq!(audit["requests"][1]["sent"], false);
    let seen = synapse.seen();
    assert_eq!(seen.len(), 1, "{seen:?}");
    assert_eq!(
        seen[0].uri,
        "/repo/v1/admin/feature/MULTIPART_AUTO_CLEANUP/status"
    );
}

#[tokio::test]
async fn transient_errors_are_retried_until_success() {
    // 503, then 502, then success: RunTask retries Stepops.Transient (time scale 0: no waiting).
    let synapse = FakeSynapse::start(|_, n| match n {
        1 => (503, json!({"reason": "down for maintenance"}).to_string()),
        2 => (502, String::new()),
        _ => (200, String::new()),
    })
    .await;
    let h = Harness::start(&synapse).await;
    let d = h
        .run(json!({"environment": "dev", "task": "reenable-user", "args": {"userId": 42}}))
        .await;
    assert_eq!(d.status(), &ExecutionStatus::Succeeded, "{d:?}");
    let seen = synapse.seen();
    assert_eq!(seen.len(), 3, "{seen:?}");
    assert!(
        seen.iter()
            .all(|s| s.method == "PUT" && s.uri == "/repo/v1/admin/resetuserstatus/42")
    );
    // Validate once, RunTask three times.
    assert_eq!(h.admin_calls.load(Ordering::SeqCst), 4);
    assert_eq!(output(&d)["after"], json!({"statusReset": true}));
}

#[tokio::test]
async fn transient_errors_end_in_failure_after_max_attempts() {
    let synapse = FakeSynapse::start(|_, _| (500, String::new())).await;
    let h = Harness::start(&synapse).await;
    let d = h
        .run(json!({"environment": "dev", "task": "make-public", "args": {"entityId": "syn123"}}))
        .await;
    assert_eq!(d.status(), &ExecutionStatus::Failed, "{d:?}");
    assert_eq!(d.error(), Some("Stepops.Transient"));
    // RunTask's Retry: MaxAttempts 4 → 5 attempts in all.
    assert_eq!(synapse.seen().len(), 5);
}

#[tokio::test]
async fn not_found_is_not_retried() {
    let synapse =
        FakeSynapse::start(|_, _| (404, json!({"reason": "user 9 does not exist"}).to_string()))
            .await;
    let h = Harness::start(&synapse).await;
    let d = h
        .run(json!({"environment": "dev", "task": "decertify-user", "args": {"userId": "9"}}))
        .await;
    assert_eq!(d.status(), &ExecutionStatus::Failed, "{d:?}");
    assert_eq!(d.error(), Some("Stepops.NotFound"));
    assert!(
        d.cause().unwrap_or_default().contains("404"),
        "{:?}",
        d.cause()
    );
    let seen = synapse.seen();
    assert_eq!(seen.len(), 1, "{seen:?}");
    assert_eq!(seen[0].uri, "/repo/v1/user/9/bundle?mask=8");
    // The failure's error and cause are in the history (where the check looks), the token is
    // not.
    let texts = texts_without_the_token(&h.history(d.execution_arn()).await);
    assert!(
        texts
            .iter()
            .any(|(f, t)| f == "TaskFailed.cause" && t.contains("user 9 does not exist")),
        "{texts:?}"
    );
    assert!(
        texts
            .iter()
            .any(|(f, t)| f == "ExecutionFailed.error" && t == "Stepops.NotFound"),
        "{texts:?}"
    );
    let notes = h.notifications();
    assert_eq!(notes.len(), 1);
    assert_eq!(notes[0]["status"], "FAILED");
    assert_eq!(notes[0]["failedStep"], "RunTask");
}

#[tokio::test]
async fn wrong_environment_is_refused_before_any_request() {
    let synapse = FakeSynapse::start(|_, _| (200, "{}".into())).await;
    let h = Harness::start(&synapse).await;
    let d = h
        .run(json!({"environment": "prod", "task": "reenable-user", "args": {"userId": "42"}}))
        .await;
    assert_eq!(d.status(), &ExecutionStatus::Failed, "{d:?}");
    assert_eq!(d.error(), Some("Stepops.WrongEnvironment"));
    assert!(synapse.seen().is_empty());
    assert_eq!(h.admin_calls.load(Ordering::SeqCst), 1, "only Validate ran");
    let notes = h.notifications();
    assert_eq!(notes.len(), 1);
    assert_eq!(notes[0]["failedStep"], "Validate");

    // An injection attempt fails validation the same way, with nothing sent.
    let d = h
        .run(json!({"environment": "dev", "task": "reenable-user", "args": {"userId": "42/../../admin"}}))
        .await;
    assert_eq!(d.error(), Some("Stepops.InvalidInput"));
    assert!(synapse.seen().is_empty());
}

/// A prod stack's machine refuses an input whose `confirm` is missing or names another target
/// (a console start cannot skip the confirmation `stepops admin` asks for): the execution fails
/// `Stepops.NotConfirmed` in `Validate`, nothing reaches the service; with the target typed
/// again it runs.
#[tokio::test]
async fn prod_runs_need_the_target_confirmed_in_the_input() {
    let synapse = FakeSynapse::start(|s, _| match (s.method.as_str(), s.uri.as_str()) {
        ("PUT", "/repo/v1/admin/resetuserstatus/42") => (200, String::new()),
        _ => (400, json!({"reason": "unexpected"}).to_string()),
    })
    .await;
    let h = Harness::start_in("prod", &synapse).await;
    let base = json!({"environment": "prod", "task": "reenable-user", "args": {"userId": "42"}});
    for confirm in [None, Some(json!("43")), Some(json!(" ")), Some(json!(null))] {
        let mut input = base.clone();
        if let Some(c) = &confirm {
            input["confirm"] = c.clone();
        }
        let calls = h.admin_calls.load(Ordering::SeqCst);
        let d = h.run(input).await;
        assert_eq!(d.status(), &ExecutionStatus::Failed, "{confirm:?}: {d:?}");
        assert_eq!(d.error(), Some("Stepops.NotConfirmed"), "{confirm:?}");
        // The cause is the Lambda's error document; its message says what to add.
        let cause = d.cause().unwrap_or_default();
        let message = serde_json::from_str::<Value>(cause)
            .ok()
            .and_then(|v| v["errorMessage"].as_str().map(str::to_owned))
            .unwrap_or_else(|| cause.to_owned());
        assert!(
            message.contains("\"confirm\": \"42\""),
            "{confirm:?}: {message}"
        );
        assert_eq!(
            h.admin_calls.load(Ordering::SeqCst),
            calls + 1,
            "only Validate ran"
        );
    }
    assert!(synapse.seen().is_empty(), "{:?}", synapse.seen());
    let notes = h.notifications();
    assert_eq!(notes.len(), 4);
    assert!(notes.iter().all(|n| n["failedStep"] == "Validate"));

    let mut confirmed = base.clone();
    confirmed["confirm"] = json!("42");
    let d = h.run(confirmed).await;
    assert_eq!(d.status(), &ExecutionStatus::Succeeded, "{d:?}");
    assert_eq!(output(&d)["outcome"], "done");
    let seen = synapse.seen();
    assert_eq!(seen.len(), 1, "{seen:?}");
    assert_eq!(seen[0].uri, "/repo/v1/admin/resetuserstatus/42");
}

/// The raw texts of `history`'s events (see [`event_texts`]), checked to hold no trace of the
/// token. The SDK's `Debug` of a history redacts inputs and outputs, so searching it proves
/// nothing.
fn texts_without_the_token(history: &[aws_sdk_sfn::types::HistoryEvent]) -> Vec<(String, String)> {
    let texts: Vec<(String, String)> = history.iter().flat_map(event_texts).collect();
    assert!(!texts.is_empty());
    for (field, text) in &texts {
        assert!(!text.contains(TOKEN), "the token is in {field}: {text}");
    }
    texts
}

/// Every text a history event carries, as `(Event.field, text)`: inputs, outputs, parameters,
/// errors and causes of every kind of event the Step Functions API defines (the SDK's `Debug`
/// prints `*** Sensitive Data Redacted ***` for most of them).
fn event_texts(e: &aws_sdk_sfn::types::HistoryEvent) -> Vec<(String, String)> {
    let mut out: Vec<(String, String)> = Vec::new();
    let mut add = |event: &str, field: &str, text: Option<&str>| {
        if let Some(t) = text {
            out.push((format!("{event}.{field}"), t.to_owned()));
        }
    };
    macro_rules! error_cause {
        ($details:expr, $name:literal) => {
            if let Some(d) = $details {
                add($name, "error", d.error());
                add($name, "cause", d.cause());
            }
        };
    }
    if let Some(d) = e.execution_started_event_details() {
        add("ExecutionStarted", "input", d.input());
        add("ExecutionStarted", "roleArn", d.role_arn());
    }
    if let Some(d) = e.execution_succeeded_event_details() {
        add("ExecutionSucceeded", "output", d.output());
    }
    error_cause!(e.execution_failed_event_details(), "ExecutionFailed");
    error_cause!(e.execution_aborted_event_details(), "ExecutionAborted");
    error_cause!(e.execution_timed_out_event_details(), "ExecutionTimedOut");
    if let Some(d) = e.state_entered_event_details() {
        add("StateEntered", "name", Some(d.name()));
        add("StateEntered", "input", d.input());
    }
    if let Some(d) = e.state_exited_event_details() {
        add("StateExited", "name", Some(d.name()));
        add("StateExited", "output", d.output());
        for (k, v) in d.assigned_variables().into_iter().flatten() {
            add("StateExited", "assignedVariables", Some(k.as_str()));
            add("StateExited", "assignedVariables", Some(v.as_str()));
        }
    }
    if let Some(d) = e.task_scheduled_event_details() {
        add("TaskScheduled", "resource", Some(d.resource()));
        add("TaskScheduled", "parameters", Some(d.parameters()));
    }
    if let Some(d) = e.task_started_event_details() {
        add("TaskStarted", "resource", Some(d.resource()));
    }
    if let Some(d) = e.task_submitted_event_details() {
        add("TaskSubmitted", "output", d.output());
    }
    if let Some(d) = e.task_succeeded_event_details() {
        add("TaskSucceeded", "output", d.output());
    }
    error_cause!(e.task_failed_event_details(), "TaskFailed");
    error_cause!(e.task_start_failed_event_details(), "TaskStartFailed");
    error_cause!(e.task_submit_failed_event_details(), "TaskSubmitFailed");
    error_cause!(e.task_timed_out_event_details(), "TaskTimedOut");
    if let Some(d) = e.lambda_function_scheduled_event_details() {
        add("LambdaFunctionScheduled", "resource", Some(d.resource()));
        add("LambdaFunctionScheduled", "input", d.input());
    }
    if let Some(d) = e.lambda_function_succeeded_event_details() {
        add("LambdaFunctionSucceeded", "output", d.output());
    }
    error_cause!(
        e.lambda_function_failed_event_details(),
        "LambdaFunctionFailed"
    );
    error_cause!(
        e.lambda_function_schedule_failed_event_details(),
        "LambdaFunctionScheduleFailed"
    );
    error_cause!(
        e.lambda_function_start_failed_event_details(),
        "LambdaFunctionStartFailed"
    );
    error_cause!(
        e.lambda_function_timed_out_event_details(),
        "LambdaFunctionTimedOut"
    );
    if let Some(d) = e.activity_scheduled_event_details() {
        add("ActivityScheduled", "resource", Some(d.resource()));
        add("ActivityScheduled", "input", d.input());
    }
    if let Some(d) = e.activity_started_event_details() {
        add("ActivityStarted", "workerName", d.worker_name());
    }
    if let Some(d) = e.activity_succeeded_event_details() {
        add("ActivitySucceeded", "output", d.output());
    }
    error_cause!(e.activity_failed_event_details(), "ActivityFailed");
    error_cause!(
        e.activity_schedule_failed_event_details(),
        "ActivityScheduleFailed"
    );
    error_cause!(e.activity_timed_out_event_details(), "ActivityTimedOut");
    for d in [
        e.map_iteration_started_event_details(),
        e.map_iteration_succeeded_event_details(),
        e.map_iteration_failed_event_details(),
        e.map_iteration_aborted_event_details(),
    ]
    .into_iter()
    .flatten()
    {
        add("MapIteration", "name", d.name());
    }
    if let Some(d) = e.map_run_started_event_details() {
        add("MapRunStarted", "mapRunArn", d.map_run_arn());
    }
    error_cause!(e.map_run_failed_event_details(), "MapRunFailed");
    if let Some(d) = e.evaluation_failed_event_details() {
        add("EvaluationFailed", "error", d.error());
        add("EvaluationFailed", "cause", d.cause());
        add("EvaluationFailed", "location", d.location());
        add("EvaluationFailed", "state", Some(d.state()));
    }
    out
}
