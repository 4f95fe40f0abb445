//! `notify`: the message text, the SNS Publish request (aws-smithy-mocks on the real client),
//! and the chat webhook against a real HTTP server on 127.0.0.1.

use std::sync::{Arc, Mutex};

use aws_sdk_sns::Client;
use aws_sdk_sns::operation::publish::{PublishError, PublishOutput};
use aws_smithy_mocks::{mock, mock_client};
use chrono::{TimeZone, Utc};
use serde_json::{Value, json};
use stepops_error::{ChunkFailure, Named, ReleaseOutcome};
use stepops_pipeline::{
    ChatWebhook, ExecutionHistory, HistoryItem, NoHistory, NotifyRequest, STATUS_CHANGE,
    SfnHistory, SnsPublisher, StepError, chat_webhook_from_secret, compose, notify,
    webhook_url_from_secret,
};
use stepops_secrets::MemorySecretSource;
use stepops_testkit::http::{HttpServer, Reply};

const TOPIC: &str = "arn:aws:sns:eu-west-1:123456789012:stepops-dev-notifications";
const EXEC: &str = "arn:aws:states:eu-west-1:123456789012:execution:stepops-dev-migrate:weekly-1";

fn succeeded() -> NotifyRequest {
    NotifyRequest::from_value(json!({
        "status": "SUCCEEDED",
        "environment": "dev",
        "executionArn": EXEC,
        "summary": {"tables": 12, "chunks": 340, "rowsCopied": 1234567, "rowsDeleted": 89, "rounds": 2},
        "startTime": "2026-11-20T10:00:00Z"
    }))
    .unwrap()
}

fn failed() -> NotifyRequest {
    NotifyRequest::from_value(json!({
        "status": "FAILED",
        "environment": "prod",
        "executionArn": EXEC,
        "error": {"Error": "Stepops.NotConverged", "Cause": "still different after 5 rounds: users (source postgres://app:hunter2@db/main)"},
        "failedStep": "Verify",
        "startTime": "2026-11-20T10:00:00Z"
    }))
    .unwrap()
}

fn now() -> chrono::DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 11, 21, 16, 2, 3).unwrap()
}

#[test]
fn a_success_summary_names_tables_chunks_rows_and_duration() {
    let m = compose(&succeeded(), now());
    assert_eq!(m.subject, "[stepops dev] migration succeeded");
    assert!(m.text.contains("SUCCEEDED in dev"), "{}", m.text);
    assert!(m.text.contains("tables: 12, chunks: 340, rows copied: 1234567, rows deleted: 89, rounds: 2, duration: 30h 02m 03s"), "{}", m.text);
    assert!(m.text.contains(EXEC));
    assert!(
        m.text
            .contains("https://eu-west-1.console.aws.amazon.com/states/")
    );
}

#[test]
fn row_counts_that_miss_chunks_say_so() {
    let mut req = succeeded();
    let summary = req.summary.as_mut().unwrap();
    summary.chunks_copied = Some(340);
    assert!(!compose(&req, now()).text.contains("row counts cover"));
    req.summary.as_mut().unwrap().chunks_copied = Some(300);
    let text = compose(&req, now()).text;
    assert!(
        text.contains("The row counts cover 300 of 340 chunks"),
        "{text}"
    );
}

#[test]
fn a_failure_says_what_the_release_machine_did_with_the_destination() {
    let mut req = failed();
    req.destination_read_only = Some(true);
    let outcome = |released: bool, reason: &str| ReleaseOutcome {
        released,
        read_only: Some(!released),
        reason: reason.into(),
        chunk_failure: None,
    };
    req.release = Some(outcome(true, "put back READ_WRITE after the failure"));
    let text = compose(&req, now()).text;
    assert!(
        text.contains("The destination is READ-WRITE again"),
        "{text}"
    );
    assert!(!text.contains("READ-ONLY"), "{text}");

    req.release = Some(outcome(
        false,
        "the config asks it to stay read-only (synapse.remainReadOnly)",
    ));
    let text = compose(&req, now()).text;
    assert!(
        text.contains("The destination is still READ-ONLY: the config asks it to stay"),
        "{text}"
    );
    assert!(!text.contains("ALTER DATABASE"), "{text}");

    req.release = Some(outcome(
        false,
        "a database destination stays read-only after a failure",
    ));
    let text = compose(&req, now()).text;
    assert!(
        text.contains("default_transaction_read_only = off"),
        "{text}"
    );

    req.release = None;
    req.release_error = Some(StepError {
        error: Some("States.Timeout".into()),
        cause: Some("no runner took the task".into()),
    });
    let text = compose(&req, now()).text;
    assert!(
        text.contains("putting it back read-write after the failure failed (States.Timeout"),
        "{text}"
    );
    // A run that never put it read-only: nothing to say, whatever the release step did.
    req.destination_read_only = Some(false);
    let text = compose(&req, now()).text;
    assert!(!text.contains("READ-"), "{text}");
}

/// A chunk that failed for good shows on the execution as the Map's threshold error only; the
/// release step's record of it names the chunk's own error in the subject and the text.
#[test]
fn a_failed_chunk_s_own_error_replaces_the_map_s_threshold_error() {
    let mut req = failed();
    req.failed_step = Some("CopyChunks".into());
    req.error = Some(StepError {
        error: Some("States.ExceedToleratedFailureThreshold".into()),
        cause: Some("The specified tolerated failure threshold was exceeded".into()),
    });
    req.release = Some(ReleaseOutcome {
        chunk_failure: Some(ChunkFailure {
            table: "NODE".into(),
            min: 1,
            max: 100,
            error: "Stepops.ServiceFailed".into(),
            cause: "restore job 7 FAILED: Lock wait timeout exceeded".into(),
        }),
        ..ReleaseOutcome::default()
    });
    let m = compose(&req, now());
    assert!(
        m.subject.ends_with("FAILED: Stepops.ServiceFailed"),
        "{}",
        m.subject
    );
    assert!(
        m.text.contains("error: Stepops.ServiceFailed\n"),
        "{}",
        m.text
    );
    assert!(
        m.text.contains(
            "in chunk: NODE [1, 100] (the copy Map reported States.ExceedToleratedFailureThreshold)"
        ),
        "{}",
        m.text
    );
    assert!(
        m.text.contains("cause: restore job 7 FAILED: Lock wait"),
        "{}",
        m.text
    );
}

#[test]
fn a_failure_says_when_the_destination_was_left_read_only() {
    let mut req = failed();
    assert!(!compose(&req, now()).text.contains("READ-ONLY"));
    req.destination_read_only = Some(false);
    assert!(!compose(&req, now()).text.contains("READ-ONLY"));
    req.destination_read_only = Some(true);
    let text = compose(&req, now()).text;
    assert!(
        text.contains("The destination is still READ-ONLY"),
        "{text}"
    );
    assert!(
        text.contains("default_transaction_read_only = off"),
        "{text}"
    );
    // The state machine's field name.
    let v = json!({"status": "FAILED", "environment": "dev", "executionArn": EXEC,
                   "destinationReadOnly": true, "failedStep": "CopyChunks"});
    assert_eq!(
        NotifyRequest::from_value(v).unwrap().destination_read_only,
        Some(true)
    );
}

#[test]
fn a_failure_names_the_error_the_step_and_redrive_without_secrets() {
    let m = compose(&failed(), now());
    assert_eq!(
        m.subject,
        "[stepops prod] migration FAILED: Stepops.NotConverged"
    );
    assert!(
        m.text.contains("FAILED in prod at step \"Verify\""),
        "{}",
        m.text
    );
    assert!(m.text.contains("error: Stepops.NotConverged"));
    assert!(m.text.contains("cause: still different after 5 rounds"));
    assert!(m.text.contains("redrive-execution --execution-arn"));
    assert!(!m.text.contains("hunter2"), "{}", m.text);
    assert!(m.text.contains("postgres://app:***@db/main"));
}

#[test]
fn lambda_error_causes_are_unwrapped_and_dry_runs_say_so() {
    let req = NotifyRequest::from_value(json!({
        "status": "FAILED", "environment": "dev", "executionArn": "local:1",
        "error": {"Error": "Stepops.WrongEnvironment", "Cause": "{\"errorType\":\"Stepops.WrongEnvironment\",\"errorMessage\":\"the input's environment is `prod`\"}"},
        "failedStep": "Validate input"
    })).unwrap();
    let m = compose(&req, now());
    assert!(
        m.text.contains("cause: the input's environment is `prod`"),
        "{}",
        m.text
    );
    assert!(!m.text.contains("console:"));

    let dry = NotifyRequest::from_value(json!({
        "status": "SUCCEEDED", "environment": "dev", "executionArn": "local:2",
        "summary": {"chunks": 7, "estimatedRows": 700, "dryRun": true, "durationSeconds": 3.2}
    }))
    .unwrap();
    let m = compose(&dry, now());
    assert_eq!(m.subject, "[stepops dev] migration (dry run) succeeded");
    assert!(
        m.text
            .contains("chunks: 7, rows planned: 700, duration: 3s"),
        "{}",
        m.text
    );
    assert!(m.text.contains("Nothing was copied"));
}

#[test]
fn admin_tasks_are_named_as_such_with_their_audit_record() {
    let req = NotifyRequest::from_value(json!({
        "status": "SUCCEEDED", "environment": "prod",
        "executionArn": "arn:aws:states:eu-west-1:1:execution:stepops-prod-admin:e1",
        "admin": {"task": "remove-user", "target": "user:3350396", "outcome": "done",
                  "dryRun": false, "change": "deactivate user 3350396", "requests": []}
    }))
    .unwrap();
    let m = compose(&req, now());
    assert_eq!(m.subject, "[stepops prod] admin task succeeded");
    assert!(
        m.text
            .contains("task: remove-user, target: user:3350396, outcome: done"),
        "{}",
        m.text
    );
    assert!(m.text.contains("change: deactivate user 3350396"));

    let failed = NotifyRequest::from_value(json!({
        "status": "FAILED", "environment": "dev",
        "executionArn": "arn:aws:states:eu-west-1:1:execution:stepops-dev-admin:e2",
        "error": {"Error": "Stepops.NotFound", "Cause": "no user 1"}, "failedStep": "RunTask"
    }))
    .unwrap();
    let m = compose(&failed, now());
    assert_eq!(
        m.subject,
        "[stepops dev] admin task FAILED: Stepops.NotFound"
    );
}

#[test]
fn malformed_requests_are_refused() {
    for bad in [
        json!({"status": "OK", "environment": "dev", "executionArn": "x"}),
        json!({"status": "FAILED", "environment": "dev"}),
        json!({"status": "FAILED", "environment": "dev", "executionArn": "x", "extra": 1}),
        json!({"status": "SUCCEEDED", "environment": "dev", "executionArn": "x", "summary": {"rowz": 1}}),
    ] {
        let err = NotifyRequest::from_value(bad.clone()).unwrap_err();
        assert_eq!(err.error_name().as_str(), "Stepops.InvalidInput", "{bad}");
    }
}

#[tokio::test]
async fn sns_gets_one_publish_with_subject_text_and_attributes() {
    /// topic, subject, message, status attribute, environment attribute
    type Seen = Arc<Mutex<Vec<(String, String, String, String, String)>>>;
    let seen: Seen = Arc::default();
    let seen2 = seen.clone();
    let rule = mock!(Client::publish)
        .match_requests(move |req| {
            let attrs = req.message_attributes().cloned().unwrap_or_default();
            let attr = |k: &str| {
                attrs
                    .get(k)
                    .map(|a| format!("{}={}", a.data_type(), a.string_value().unwrap_or("")))
                    .unwrap_or_default()
            };
            seen2.lock().unwrap().push((
                req.topic_arn().unwrap_or_default().to_owned(),
                req.subject().unwrap_or_default().to_owned(),
                req.message().unwrap_or_default().to_owned(),
                attr("status"),
                attr("environment"),
            ));
            true
        })
        .then_output(|| PublishOutput::builder().message_id("m-1").build());
    let client = mock_client!(aws_sdk_sns, [&rule]);
    let publisher = SnsPublisher::new(client, TOPIC);

    let out = notify(&failed(), &publisher, None, now()).await.unwrap();
    assert_eq!(out.delivered, vec!["sns"]);
    assert!(out.failed.is_empty());
    assert_eq!(rule.num_calls(), 1);
    let seen = seen.lock().unwrap();
    let (topic, subject, message, status, env) = &seen[0];
    assert_eq!(topic, TOPIC);
    assert_eq!(
        subject,
        "[stepops prod] migration FAILED: Stepops.NotConverged"
    );
    assert!(message.contains("at step \"Verify\""));
    assert!(!message.contains("hunter2"));
    assert_eq!(status, "String=FAILED");
    assert_eq!(env, "String=prod");
}

#[tokio::test]
async fn an_sns_failure_without_webhook_is_a_transient_error() {
    let rule = mock!(Client::publish).then_error(|| {
        PublishError::generic(
            aws_sdk_sns::error::ErrorMetadata::builder()
                .code("Throttling")
                .message("slow down")
                .build(),
        )
    });
    let client = mock_client!(aws_sdk_sns, [&rule]);
    let err = notify(&succeeded(), &SnsPublisher::new(client, TOPIC), None, now())
        .await
        .unwrap_err();
    assert_eq!(err.error_name().as_str(), "Stepops.Transient");
    assert!(err.to_string().contains("Throttling"), "{err}");
}

/// A webhook on 127.0.0.1 answering `status`, and its URL (with a secret-looking path).
async fn webhook_server(status: u16) -> (String, HttpServer) {
    let server = HttpServer::start(move |_| Reply::new(status, "text/plain", "ok")).await;
    (format!("{}/hooks/T0/secret-token", server.url()), server)
}

#[tokio::test]
async fn the_webhook_gets_the_same_text_as_json() {
    let (url, server) = webhook_server(200).await;
    let rule =
        mock!(Client::publish).then_output(|| PublishOutput::builder().message_id("m").build());
    let client = mock_client!(aws_sdk_sns, [&rule]);
    let hook =
        ChatWebhook::new(webhook_url_from_secret(&format!("{{\"url\": \"{url}\"}}")).unwrap())
            .unwrap();

    let out = notify(
        &succeeded(),
        &SnsPublisher::new(client, TOPIC),
        Some(&hook),
        now(),
    )
    .await
    .unwrap();
    assert_eq!(out.delivered, vec!["sns", "webhook"]);
    let seen = server.requests();
    assert_eq!(seen.len(), 1);
    assert_eq!(seen[0].method, "POST");
    assert_eq!(seen[0].path, "/hooks/T0/secret-token");
    assert_eq!(seen[0].header("content-type"), Some("application/json"));
    assert_eq!(
        seen[0].json()["text"].as_str().unwrap(),
        compose(&succeeded(), now()).text
    );
}

/// The notify function reads its webhook through the shared secret source; a missing or
/// unusable secret is named without its value.
#[tokio::test]
async fn the_webhook_comes_from_the_secret_source() {
    let (url, server) = webhook_server(200).await;
    let source = MemorySecretSource::new()
        .with_secret(
            "stepops/dev/chat-webhook",
            format!("{{\"url\": \"{url}\"}}"),
        )
        .with_secret(
            "stepops/dev/plain-http",
            "http://hooks.example/secret-token",
        );
    let hook = chat_webhook_from_secret(&source, "stepops/dev/chat-webhook")
        .await
        .unwrap();
    hook.post(&compose(&failed(), now())).await.unwrap();
    assert_eq!(server.requests().len(), 1);

    let missing = chat_webhook_from_secret(&source, "stepops/dev/nope")
        .await
        .unwrap_err();
    assert!(
        missing
            .to_string()
            .contains("secret stepops/dev/nope does not exist"),
        "{missing}"
    );
    let plain = chat_webhook_from_secret(&source, "stepops/dev/plain-http")
        .await
        .unwrap_err();
    assert!(plain.to_string().contains("https://"), "{plain}");
    assert!(!plain.to_string().contains("secret-token"), "{plain}");
}

#[tokio::test]
async fn a_failing_webhook_is_reported_without_its_url_and_sns_still_counts() {
    let (url, _server) = webhook_server(500).await;
    let rule =
        mock!(Client::publish).then_output(|| PublishOutput::builder().message_id("m").build());
    let client = mock_client!(aws_sdk_sns, [&rule]);
    let hook = ChatWebhook::new(url.clone()).unwrap();
    let out = notify(
        &failed(),
        &SnsPublisher::new(client, TOPIC),
        Some(&hook),
        now(),
    )
    .await
    .unwrap();
    assert_eq!(out.delivered, vec!["sns"]);
    assert_eq!(
        out.failed,
        vec!["chat webhook answered HTTP 500 Internal Server Error"]
    );

    // Nothing listening: a connection error, still without the secret URL.
    let closed = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let dead = ChatWebhook::new(format!("http://127.0.0.1:{closed}/hooks/secret-token")).unwrap();
    let fail = mock!(Client::publish).then_error(|| {
        PublishError::generic(
            aws_sdk_sns::error::ErrorMetadata::builder()
                .code("AuthorizationError")
                .build(),
        )
    });
    let client = mock_client!(aws_sdk_sns, [&fail]);
    let err = notify(
        &failed(),
        &SnsPublisher::new(client, TOPIC),
        Some(&dead),
        now(),
    )
    .await
    .unwrap_err();
    let text = err.to_string();
    assert_eq!(err.error_name().as_str(), "Stepops.Transient");
    assert!(
        text.contains("AuthorizationError") && text.contains("chat webhook"),
        "{text}"
    );
    assert!(!text.contains("secret-token"), "{text}");
}

#[tokio::test]
async fn the_json_handler_serves_the_local_engine_with_a_memory_publisher() {
    let publisher = stepops_pipeline::MemoryPublisher::default();
    let payload = serde_json::to_value(failed()).unwrap();
    let none = NoHistory("not needed".into());
    let (req, out) = stepops_pipeline::notify_handler(payload, &publisher, None, &none, None)
        .await
        .unwrap();
    assert_eq!(req, failed());
    assert_eq!(out.delivered, vec!["sns"]);
    let msgs = publisher.messages();
    assert_eq!(msgs.len(), 1);
    assert!(msgs[0].text.contains("FAILED in prod"));
    let err =
        stepops_pipeline::notify_handler(json!({"status": "?"}), &publisher, None, &none, None)
            .await
            .unwrap_err();
    assert_eq!(err.error_name().as_str(), "Stepops.InvalidInput");
}

/// The history of a migration that put the destination read-only, planned, and failed in the
/// copy Map, redriven once and failing there again.
fn copy_failed_history() -> Vec<HistoryItem> {
    let mut h = vec![HistoryItem::new("ExecutionStarted")];
    for s in ["ValidateInput", "SetDestinationReadOnly", "Plan"] {
        h.push(HistoryItem::state("TaskStateEntered", s));
        h.push(HistoryItem::state("TaskStateExited", s));
    }
    h.push(HistoryItem::state("MapStateEntered", "CopyChunks"));
    h.push(HistoryItem::new("MapRunFailed"));
    h.push(HistoryItem {
        error: Some("States.ExceedToleratedFailureThreshold".into()),
        cause: Some("The specified tolerated failure threshold was exceeded".into()),
        ..HistoryItem::new("ExecutionFailed")
    });
    h
}

struct Fixed(Result<Vec<HistoryItem>, String>);
impl ExecutionHistory for Fixed {
    async fn history(&self, arn: &str) -> Result<Vec<HistoryItem>, String> {
        assert_eq!(arn, EXEC);
        self.0.clone()
    }
}

fn status_event(status: &str, extra: Value) -> Value {
    let mut detail = json!({
        "executionArn": EXEC,
        "stateMachineArn": "arn:aws:states:eu-west-1:123456789012:stateMachine:stepops-dev-migrate",
        "name": "weekly-1", "status": status,
        "startDate": 1_795_600_000_000_i64, "stopDate": 1_795_600_600_000_i64,
        "input": "{\"environment\": \"dev\"}", "inputDetails": {"included": true},
        "output": null, "outputDetails": null, "redriveCount": 0,
        "redriveStatus": "REDRIVABLE"
    });
    for (k, v) in extra.as_object().unwrap() {
        detail[k] = v.clone();
    }
    json!({"version": "0", "id": "e-1", "detail-type": "Step Functions Execution Status Change",
           "source": "aws.states", "account": "123456789012", "time": "2026-11-25T10:10:00Z",
           "region": "eu-west-1", "resources": [EXEC], "detail": detail})
}

#[tokio::test]
async fn a_status_change_event_becomes_a_failure_naming_the_step_from_the_history() {
    let publisher = stepops_pipeline::MemoryPublisher::default();
    let history = Fixed(Ok(copy_failed_history()));
    let event = status_event(
        "FAILED",
        json!({"error": "States.ExceedToleratedFailureThreshold", "cause": "The specified tolerated failure threshold was exceeded"}),
    );
    let (req, _) = stepops_pipeline::notify_handler(event, &publisher, None, &history, Some("dev"))
        .await
        .unwrap();
    assert_eq!(req.status, stepops_pipeline::RunStatus::Failed);
    assert_eq!(req.failed_step.as_deref(), Some("CopyChunks"));
    assert_eq!(req.destination_read_only, Some(true));
    assert_eq!(req.environment, "dev");
    assert_eq!(
        req.start_time.unwrap().timestamp_millis(),
        1_795_600_000_000
    );
    let text = &publisher.messages()[0].text;
    assert!(
        text.contains("FAILED in dev at step \"CopyChunks\""),
        "{text}"
    );
    assert!(
        text.contains("error: States.ExceedToleratedFailureThreshold"),
        "{text}"
    );
    assert!(
        text.contains("The destination is still READ-ONLY"),
        "{text}"
    );
    assert!(
        text.contains("resumes at \"CopyChunks\", where only the chunks that did not succeed"),
        "{text}"
    );
    assert!(
        text.contains(&format!("redrive-execution --execution-arn {EXEC}")),
        "{text}"
    );

    // Older events carry no error: the history's ExecutionFailed gives it. The environment
    // falls back to the input's.
    let (req, _) = stepops_pipeline::notify_handler(
        status_event("FAILED", json!({})),
        &publisher,
        None,
        &history,
        None,
    )
    .await
    .unwrap();
    assert_eq!(
        req.error.unwrap().error.as_deref(),
        Some("States.ExceedToleratedFailureThreshold")
    );
    assert_eq!(req.environment, "dev");
}

#[tokio::test]
async fn timeouts_and_aborts_notify_and_an_unreadable_history_still_notifies() {
    let publisher = stepops_pipeline::MemoryPublisher::default();
    let mut h = copy_failed_history();
    h.truncate(6); // in Plan
    let (req, _) = stepops_pipeline::notify_handler(
        status_event(
            "TIMED_OUT",
            json!({"error": "States.Timeout", "redriveCount": 1}),
        ),
        &publisher,
        None,
        &Fixed(Ok(h.clone())),
        Some("prod"),
    )
    .await
    .unwrap();
    assert_eq!(req.failed_step.as_deref(), Some("Plan"));
    let m = &publisher.messages()[0];
    assert_eq!(
        m.subject,
        "[stepops prod] migration TIMED_OUT: States.Timeout"
    );
    assert_eq!(m.status, "TIMED_OUT");
    assert!(
        m.text.contains("TIMED OUT in prod at step \"Plan\""),
        "{}",
        m.text
    );
    assert!(m.text.contains("redriven 1 time(s)"), "{}", m.text);
    assert!(
        m.text.contains("restarts the execution's time limit"),
        "{}",
        m.text
    );

    stepops_pipeline::notify_handler(
        status_event("ABORTED", json!({})),
        &publisher,
        None,
        &Fixed(Ok(h)),
        Some("prod"),
    )
    .await
    .unwrap();
    assert_eq!(
        publisher.messages()[1].subject,
        "[stepops prod] migration ABORTED"
    );

    let (req, _) = stepops_pipeline::notify_handler(
        status_event("FAILED", json!({"error": "Stepops.Internal"})),
        &publisher,
        None,
        &Fixed(Err("AccessDeniedException: not allowed".into())),
        Some("prod"),
    )
    .await
    .unwrap();
    assert_eq!(req.failed_step, None);
    assert_eq!(req.destination_read_only, None, "unknown, not false");
    let text = &publisher.messages()[2].text;
    assert!(
        text.contains("at step an unknown step") || text.contains("an unknown step"),
        "{text}"
    );
    assert!(
        text.contains("the execution history could not be read: AccessDeniedException"),
        "{text}"
    );
}

#[tokio::test]
async fn events_the_rule_should_not_send_are_refused() {
    let publisher = stepops_pipeline::MemoryPublisher::default();
    let history = Fixed(Ok(Vec::new()));
    for (bad, says) in [
        (status_event("RUNNING", json!({})), "is not how a run ends"),
        (
            {
                let mut e = status_event("FAILED", json!({}));
                e["detail-type"] = json!("Step Functions State Machine Version State Change");
                e
            },
            "detail-type",
        ),
        (
            json!({"source": "aws.states", "detail-type": STATUS_CHANGE}),
            "not a Step Functions status change",
        ),
    ] {
        let err = stepops_pipeline::notify_handler(bad, &publisher, None, &history, Some("dev"))
            .await
            .unwrap_err();
        assert_eq!(err.error_name().as_str(), "Stepops.InvalidInput");
        assert!(err.to_string().contains(says), "{err}");
    }
    assert!(publisher.messages().is_empty());
}

/// The AWS side of the history reader: GetExecutionHistory pages through the real client
/// (aws-smithy-mocks), without execution data.
#[tokio::test]
async fn sfn_history_reads_every_page() {
    use aws_sdk_sfn::operation::get_execution_history::GetExecutionHistoryOutput;
    use aws_sdk_sfn::types::{
        ExecutionFailedEventDetails, HistoryEvent, HistoryEventType, StateEnteredEventDetails,
    };
    let ts = aws_smithy_types::DateTime::from_secs(1_795_600_000);
    let entered = move |id, name: &str| {
        HistoryEvent::builder()
            .id(id)
            .timestamp(ts)
            .r#type(HistoryEventType::TaskStateEntered)
            .state_entered_event_details(
                StateEnteredEventDetails::builder()
                    .name(name)
                    .build()
                    .unwrap(),
            )
            .build()
            .unwrap()
    };
    let first = mock!(aws_sdk_sfn::Client::get_execution_history)
        .match_requests(|r| {
            r.next_token().is_none()
                && r.include_execution_data() == Some(false)
                && r.execution_arn() == Some(EXEC)
        })
        .then_output(move || {
            GetExecutionHistoryOutput::builder()
                .events(entered(1, "Plan"))
                .next_token("page-2")
                .build()
                .unwrap()
        });
    let second = mock!(aws_sdk_sfn::Client::get_execution_history)
        .match_requests(|r| r.next_token() == Some("page-2"))
        .then_output(move || {
            GetExecutionHistoryOutput::builder()
                .events(
                    HistoryEvent::builder()
                        .id(2)
                        .timestamp(ts)
                        .r#type(HistoryEventType::ExecutionFailed)
                        .execution_failed_event_details(
                            ExecutionFailedEventDetails::builder()
                                .error("Stepops.Unauthorized")
                                .cause("password refused")
                                .build(),
                        )
                        .build()
                        .unwrap(),
                )
                .build()
                .unwrap()
        });
    let client = mock_client!(
        aws_sdk_sfn,
        aws_smithy_mocks::RuleMode::MatchAny,
        [&first, &second]
    );
    let items = SfnHistory::new(client).history(EXEC).await.unwrap();
    assert_eq!(
        items,
        vec![
            HistoryItem::state("TaskStateEntered", "Plan"),
            HistoryItem {
                error: Some("Stepops.Unauthorized".into()),
                cause: Some("password refused".into()),
                ..HistoryItem::new("ExecutionFailed")
            }
        ]
    );
    assert_eq!((first.num_calls(), second.num_calls()), (1, 1));
    let f = stepops_pipeline::failure_facts(&items);
    assert_eq!(f.failed_step.as_deref(), Some("Plan"));
}

#[test]
fn webhook_secrets_must_hold_an_https_url() {
    assert_eq!(
        webhook_url_from_secret(" https://hooks.example/x \n").unwrap(),
        "https://hooks.example/x"
    );
    assert_eq!(
        webhook_url_from_secret(r#"{"url":"https://hooks.example/y"}"#).unwrap(),
        "https://hooks.example/y"
    );
    for bad in [
        "http://hooks.example/x",
        "hooks.example",
        "{\"href\":\"https://x\"}",
        "{not json",
    ] {
        let err = webhook_url_from_secret(bad).unwrap_err();
        assert_eq!(err.error_name().as_str(), "Stepops.Internal", "{bad}");
        assert!(!err.to_string().contains("hooks.example"), "{err}");
    }
}

#[test]
fn a_relationalize_summary_gives_its_counts_and_failed_archives() {
    let req = NotifyRequest::from_value(json!({
        "status": "SUCCEEDED",
        "environment": "dev",
        "workflow": "relationalize",
        "executionArn": "arn:aws:states:eu-west-1:123456789012:execution:stepops-dev-relationalize:backfill",
        "relationalize": {
            "archives": 200, "succeeded": 199, "failed": 1, "documents": 400, "invalid": 10,
            "rows": 1800,
            "failures": [{"archive": "s3://b/archives/x.zip", "error": "Stepops.InvalidInput",
                          "cause": "archive s3://b/archives/x.zip is not a readable ZIP"}],
            "conflicts": []
        }
    }))
    .unwrap();
    let m = compose(&req, now());
    assert_eq!(m.subject, "[stepops dev] relationalize succeeded");
    assert!(
        m.text.contains(
            "archives: 200, documents: 400, invalid (quarantined): 10, archives failed: 1, rows: 1800"
        ),
        "{}",
        m.text
    );
    assert!(
        m.text
            .contains("- s3://b/archives/x.zip: Stepops.InvalidInput: archive s3://b/archives/x.zip is not a readable ZIP"),
        "{}",
        m.text
    );
}
