//! The admin state machine through the FULL local engine service: the project's `template.yaml`
//! loaded by `stepops-local` (so `AdminStateMachine`, its `DefinitionSubstitutions` and the
//! function names are what deploys), the admin function registered in-process as the Lambda
//! binary runs it (`stepops_admin::invoke`, errors by their `Stepops.*` name), executions started
//! and watched through the real `aws-sdk-sfn` client against the engine's endpoint, and a fake
//! Synapse on 127.0.0.1 that records every request.

use std::convert::Infallible;
use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use aws_sdk_sfn::config::{BehaviorVersion, Credentials, Region};
use aws_sdk_sfn::types::ExecutionStatus;
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;
use serde_json::{Value, json};
use stepops_admin::{AdminSettings, LocalTokenSource, SynapseClient};
use stepops_local::{EngineConfig, LambdaError, LocalEngine, TemplateOptions, handler};
use tokio::net::TcpListener;

const TOKEN: &str = "syn-pat-local-engine-test-SECRET-93ad1";

/// One request as the fake service saw it.
#[derive(Debug, Clone)]
struct Seen {
    method: String,
    /// Path and query.
    uri: String,
    authorization: Option<String>,
}

/// A fake Synapse on 127.0.0.1: answers `(status, body)` from the test's function.
struct FakeSynapse {
    base_url: String,
    seen: Arc<Mutex<Vec<Seen>>>,
}

impl FakeSynapse {
    async fn start(
        respond: impl Fn(&Seen, usize) -> (u16, String) + Send + Sync + 'static,
    ) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let seen: Arc<Mutex<Vec<Seen>>> = Arc::default();
        let respond = Arc::new(respond);
        let rec = seen.clone();
        tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                let rec = rec.clone();
                let respond = respond.clone();
                tokio::spawn(async move {
                    let svc = service_fn(move |req: Request<Incoming>| {
                        let rec = rec.clone();
                        let respond = respond.clone();
                        async move {
                            let (parts, body) = req.into_parts();
                            let _ = body.collect().await;
                            let s = Seen {
                                method: parts.method.to_string(),
                                uri: parts.uri.to_string(),
                                authorization: parts
                                    .headers
                                    .get("authorization")
                                    .and_then(|v| v.to_str().ok())
                                    .map(str::to_owned),
                            };
                            let n = {
                                let mut all = rec.lock().unwrap();
                                all.push(s.clone());
                                all.len()
                            };
                            let (status, body) = respond(&s, n);
                            Ok::<_, Infallible>(
                                Response::builder()
                                    .status(status)
                                    .header("content-type", "application/json")
                                    .body(Full::new(Bytes::from(body)))
                                    .unwrap(),
                            )
                        }
                    });
                    let _ = http1::Builder::new()
                        .serve_connection(TokioIo::new(stream), svc)
                        .await;
                });
            }
        });
        FakeSynapse {
            base_url: format!("http://{addr}"),
            seen,
        }
    }

    fn seen(&self) -> Vec<Seen> {
        self.seen.lock().unwrap().clone()
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
}

impl Harness {
    async fn start(synapse: &FakeSynapse) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let token_file = dir.path().join("admin-token");
        std::fs::write(&token_file, format!("{TOKEN}\n")).unwrap();
        // The function's settings as the template sets them (environment variables).
        let settings = AdminSettings::from_lookup(|k| match k {
            "STEPOPS_ENVIRONMENT" => Some("dev".into()),
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
        let environment = settings.environment;
        let admin_calls = Arc::new(AtomicUsize::new(0));
        let calls = admin_calls.clone();
        let admin = handler(move |event: Value| {
            let client = client.clone();
            calls.fetch_add(1, Ordering::SeqCst);
            async move {
                stepops_admin::invoke(&event, environment, &client)
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
        let template = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../template.yaml");
        let engine = LocalEngine::start(
            EngineConfig {
                template: Some(template),
                template_options: TemplateOptions {
                    parameter_overrides: [
                        ("Environment".to_string(), "dev".to_string()),
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
        }
    }

    /// The admin state machine's ARN, found by its deployed name through the API.
    async fn admin_arn(&self) -> String {
        let list = self.sfn.list_state_machines().send().await.unwrap();
        list.state_machines()
            .iter()
            .find(|m| m.name() == "stepops-dev-admin")
            .unwrap_or_else(|| panic!("no stepops-dev-admin in {list:?}"))
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

    fn notifications(&self) -> Vec<Value> {
        self.notifications.lock().unwrap().clone()
    }
}

fn output(d: &aws_sdk_sfn::operation::describe_execution::DescribeExecutionOutput) -> Value {
    serde_json::from_str(d.output().expect("a succeeded execution has output")).unwrap()
}

#[tokio::test]
async fn remove_user_succeeds_end_to_end_with_its_audit_record() {
    let bundle =
        json!({"userId": "3350396", "userProfile": {"userName": "jdoe"}, "isCertified": true});
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
    assert_eq!(audit["before"], bundle);
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
    let history = h
        .sfn
        .get_execution_history()
        .execution_arn(d.execution_arn())
        .max_results(1000)
        .send()
        .await
        .unwrap();
    assert!(history.events().len() > 10, "{history:?}");
    assert!(!format!("{history:?}").contains(TOKEN));
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
