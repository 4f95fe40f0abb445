//! The run notification: a short text summary published to SNS and, optionally, posted to a
//! chat webhook.

use std::future::Future;
use std::time::Duration;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use stepops_secrets::SecretSource;

use crate::history::{ExecutionHistory, FailureFacts, failure_facts};
use crate::{PipelineError, redact};

/// How the run ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
pub enum RunStatus {
    /// Destination equals source (or a dry run finished).
    #[serde(rename = "SUCCEEDED")]
    Succeeded,
    /// A step failed; `error` and `failedStep` say which and why.
    #[serde(rename = "FAILED")]
    Failed,
    /// The execution ran past its `TimeoutSeconds`; `failedStep` is the state it was in.
    #[serde(rename = "TIMED_OUT")]
    TimedOut,
    /// Someone stopped the execution (`StopExecution`); `failedStep` is the state it was in.
    #[serde(rename = "ABORTED")]
    Aborted,
}

impl RunStatus {
    /// `SUCCEEDED` / `FAILED` / `TIMED_OUT` / `ABORTED`.
    pub const fn as_str(self) -> &'static str {
        match self {
            RunStatus::Succeeded => "SUCCEEDED",
            RunStatus::Failed => "FAILED",
            RunStatus::TimedOut => "TIMED_OUT",
            RunStatus::Aborted => "ABORTED",
        }
    }
}

/// What the run did (every field optional: the state machine sends what it knows).
#[derive(Debug, Clone, Default, PartialEq, Deserialize, Serialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Summary {
    /// Tables that needed copying (first round).
    pub tables: Option<u64>,
    /// Chunks planned, all rounds together.
    pub chunks: Option<u64>,
    /// Chunks whose copy results were counted into `rowsCopied`/`rowsDeleted` (equal to
    /// `chunks` when every round's result files could be read).
    pub chunks_copied: Option<u64>,
    /// Rows inserted into the destination.
    pub rows_copied: Option<u64>,
    /// Rows deleted from the destination before inserting.
    pub rows_deleted: Option<u64>,
    /// Rows the plan estimated to copy (first round).
    pub estimated_rows: Option<u64>,
    /// Rounds run (plan → copy → verify).
    pub rounds: Option<u64>,
    /// Wall-clock duration; computed from `startTime` when absent.
    pub duration_seconds: Option<f64>,
    /// A dry run: nothing was copied.
    pub dry_run: Option<bool>,
}

/// A Step Functions error as `Catch` hands it over (`{"Error": …, "Cause": …}`).
#[derive(Debug, Clone, Default, PartialEq, Deserialize, Serialize)]
pub struct StepError {
    /// The error name (`Stepops.NotConverged`, `States.HeartbeatTimeout`, …).
    #[serde(rename = "Error", default)]
    pub error: Option<String>,
    /// The cause: text, or for Lambda errors a JSON document with `errorMessage`.
    #[serde(rename = "Cause", default)]
    pub cause: Option<String>,
}

/// A notification about one run: built by the state machine (a success, an admin task's
/// outcome) or from a Step Functions status-change event and the execution's history
/// ([`request_from_status_change`]: every failure, timeout and abort of the migration).
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct NotifyRequest {
    /// How the run ended.
    pub status: RunStatus,
    /// The stack's environment.
    pub environment: String,
    /// The execution (`$$.Execution.Id`).
    pub execution_arn: String,
    /// What the run did.
    #[serde(default)]
    pub summary: Option<Summary>,
    /// Why it failed.
    #[serde(default)]
    pub error: Option<StepError>,
    /// The state that failed.
    #[serde(default)]
    pub failed_step: Option<String>,
    /// When the execution started (`$$.Execution.StartTime`), for the duration.
    #[serde(default)]
    pub start_time: Option<DateTime<Utc>>,
    /// What ran, in words (`migration`, `admin task`); by default taken from the state
    /// machine's name in `executionArn` (`…-admin` → `admin task`, else `migration`).
    #[serde(default)]
    pub workflow: Option<String>,
    /// Whether this execution put the destination read-only (`readOnlyDuringCopy`) and has not
    /// put it back: a failure notification then says so and how to undo it.
    #[serde(default)]
    pub destination_read_only: Option<bool>,
    /// An admin task's audit record (`statemachine/admin.asl.json`): its task, target, outcome
    /// and change are summarised.
    #[serde(default)]
    pub admin: Option<Value>,
    /// How often the execution was redriven before it ended this way.
    #[serde(default)]
    pub redrive_count: Option<u32>,
    /// Why the execution's history could not be read (the failed step is then unknown).
    #[serde(default)]
    pub history_error: Option<String>,
}

impl NotifyRequest {
    /// Parses the state machine's payload with a clear error.
    pub fn from_value(value: Value) -> Result<NotifyRequest, PipelineError> {
        serde_json::from_value(value).map_err(|e| PipelineError::InvalidNotification(e.to_string()))
    }
}

/// `source` of Step Functions' EventBridge events.
pub const STATES_SOURCE: &str = "aws.states";
/// `detail-type` of an execution status change.
pub const STATUS_CHANGE: &str = "Step Functions Execution Status Change";

/// The EventBridge event Step Functions sends when an execution's status changes (what the
/// template's rule hands the notify function; fields it does not need are ignored).
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
pub struct StatusChangeEvent {
    /// `aws.states`.
    pub source: String,
    /// `Step Functions Execution Status Change`.
    #[serde(rename = "detail-type")]
    pub detail_type: String,
    /// The execution, as `DescribeExecution` describes it.
    pub detail: StatusChangeDetail,
}

/// The `detail` of a [`StatusChangeEvent`].
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct StatusChangeDetail {
    /// The execution.
    pub execution_arn: String,
    /// Its state machine.
    #[serde(default)]
    pub state_machine_arn: Option<String>,
    /// `RUNNING`, `SUCCEEDED`, `FAILED`, `TIMED_OUT`, `ABORTED`.
    pub status: String,
    /// Start, epoch milliseconds.
    #[serde(default)]
    pub start_date: Option<i64>,
    /// End, epoch milliseconds.
    #[serde(default)]
    pub stop_date: Option<i64>,
    /// The execution input (JSON text; left out by AWS when too large).
    #[serde(default)]
    pub input: Option<String>,
    /// The execution's error.
    #[serde(default)]
    pub error: Option<String>,
    /// Its cause.
    #[serde(default)]
    pub cause: Option<String>,
    /// Redrives so far.
    #[serde(default)]
    pub redrive_count: Option<u32>,
}

/// What the notify function receives.
#[derive(Debug, Clone, PartialEq)]
pub enum NotifyInput {
    /// A request the state machine built (`NotifySuccess`, the admin machine).
    Request(NotifyRequest),
    /// A Step Functions status change (the template's EventBridge rule).
    StatusChange(StatusChangeEvent),
}

impl NotifyInput {
    /// Tells the two apart: an event has `source` `aws.states` and a `detail-type`.
    pub fn from_value(value: Value) -> Result<NotifyInput, PipelineError> {
        let is_event = value.get("detail-type").is_some()
            || value.get("source").and_then(Value::as_str) == Some(STATES_SOURCE);
        if !is_event {
            return NotifyRequest::from_value(value).map(NotifyInput::Request);
        }
        let event: StatusChangeEvent = serde_json::from_value(value).map_err(|e| {
            PipelineError::InvalidNotification(format!("not a Step Functions status change: {e}"))
        })?;
        if event.source != STATES_SOURCE || event.detail_type != STATUS_CHANGE {
            return Err(PipelineError::InvalidNotification(format!(
                "an event of source {:?} and detail-type {:?}: the notify function takes                  \"{STATUS_CHANGE}\" events of {STATES_SOURCE} only (check the rule's pattern)",
                event.source, event.detail_type
            )));
        }
        Ok(NotifyInput::StatusChange(event))
    }
}

/// Builds the notification for a status change: the status, error and cause from the event,
/// the failed step and whether the destination was left read-only from the execution's
/// history (read through `history`; if it cannot be read the notification still goes out,
/// saying so). `environment` is the stack's own (the function's `STEPOPS_ENVIRONMENT`); without
/// it, the execution input's `environment`.
pub async fn request_from_status_change<H: ExecutionHistory>(
    event: &StatusChangeEvent,
    history: &H,
    environment: Option<&str>,
) -> Result<NotifyRequest, PipelineError> {
    let d = &event.detail;
    let status = match d.status.as_str() {
        "FAILED" => RunStatus::Failed,
        "TIMED_OUT" => RunStatus::TimedOut,
        "ABORTED" => RunStatus::Aborted,
        "SUCCEEDED" => RunStatus::Succeeded,
        other => {
            return Err(PipelineError::InvalidNotification(format!(
                "status {other} is not how a run ends: the rule's pattern should list FAILED, \
                 TIMED_OUT and ABORTED"
            )));
        }
    };
    let environment = environment
        .filter(|e| !e.is_empty())
        .map(str::to_owned)
        .or_else(|| {
            let input: Value = serde_json::from_str(d.input.as_deref()?).ok()?;
            input.get("environment")?.as_str().map(str::to_owned)
        })
        .unwrap_or_else(|| "unknown".into());
    let migration = !machine_name(&d.execution_arn).contains("admin");
    let (facts, history_error) = match history.history(&d.execution_arn).await {
        Ok(events) => (failure_facts(&events), None),
        Err(e) => {
            tracing::warn!(execution = %d.execution_arn, error = %e, "cannot read the execution history: the failed step is unknown");
            (FailureFacts::default(), Some(e))
        }
    };
    let error = d.error.clone().or(facts.error.clone());
    let cause = d.cause.clone().or(facts.cause.clone());
    Ok(NotifyRequest {
        status,
        environment,
        execution_arn: d.execution_arn.clone(),
        summary: None,
        error: (error.is_some() || cause.is_some()).then_some(StepError { error, cause }),
        failed_step: facts.failed_step.clone(),
        start_time: d
            .start_date
            .and_then(DateTime::<Utc>::from_timestamp_millis),
        workflow: None,
        destination_read_only: (migration && history_error.is_none())
            .then_some(facts.destination_read_only),
        admin: None,
        redrive_count: d.redrive_count.or(Some(facts.redrives)).filter(|n| *n > 0),
        history_error,
    })
}

/// The state machine's name in an execution ARN (`arn:aws:states:R:A:execution:MACHINE:NAME`).
fn machine_name(execution_arn: &str) -> &str {
    execution_arn.split(':').nth(6).unwrap_or("")
}

/// A composed notification.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Message {
    /// One line, at most 100 ASCII characters (SNS e-mail subject).
    pub subject: String,
    /// The full text.
    pub text: String,
    /// `SUCCEEDED` / `FAILED`, also sent as an SNS message attribute (for filter policies).
    pub status: String,
    /// The environment, also sent as an SNS message attribute.
    pub environment: String,
}

/// What `notify` returns to the state machine.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct NotifyOutput {
    /// Channels that accepted the message (`sns`, `webhook`).
    pub delivered: Vec<String>,
    /// Channels that refused it, with the reason (never the webhook URL).
    pub failed: Vec<String>,
}

/// Publishes a message somewhere (SNS in AWS; a recorder in tests or the local engine).
pub trait Publisher: Send + Sync {
    /// Publishes `message`; returns the message id, or why it failed.
    fn publish(&self, message: &Message) -> impl Future<Output = Result<String, String>> + Send;
}

/// [`Publisher`] over an SNS topic.
#[derive(Debug, Clone)]
pub struct SnsPublisher {
    client: aws_sdk_sns::Client,
    topic_arn: String,
}

impl SnsPublisher {
    /// Publishes to `topic_arn` through `client`.
    pub fn new(client: aws_sdk_sns::Client, topic_arn: impl Into<String>) -> Self {
        SnsPublisher {
            client,
            topic_arn: topic_arn.into(),
        }
    }
}

impl Publisher for SnsPublisher {
    async fn publish(&self, message: &Message) -> Result<String, String> {
        use aws_sdk_sns::types::MessageAttributeValue;
        let attr = |v: &str| {
            MessageAttributeValue::builder()
                .data_type("String")
                .string_value(v)
                .build()
                .map_err(|e| e.to_string())
        };
        let out = self
            .client
            .publish()
            .topic_arn(&self.topic_arn)
            .subject(&message.subject)
            .message(&message.text)
            .message_attributes("status", attr(&message.status)?)
            .message_attributes("environment", attr(&message.environment)?)
            .send()
            .await
            .map_err(|e| {
                format!(
                    "SNS Publish to {} failed: {}",
                    self.topic_arn,
                    aws_sdk_sns::error::DisplayErrorContext(&e)
                )
            })?;
        Ok(out.message_id().unwrap_or_default().to_owned())
    }
}

/// [`Publisher`] that keeps messages in memory and logs them: for the local engine and tests.
#[derive(Debug, Default)]
pub struct MemoryPublisher {
    messages: std::sync::Mutex<Vec<Message>>,
}

impl MemoryPublisher {
    /// Every message published so far.
    pub fn messages(&self) -> Vec<Message> {
        self.messages.lock().expect("not poisoned").clone()
    }
}

impl Publisher for MemoryPublisher {
    async fn publish(&self, message: &Message) -> Result<String, String> {
        tracing::info!(subject = %message.subject, text = %message.text, "notification");
        let mut all = self.messages.lock().expect("not poisoned");
        all.push(message.clone());
        Ok(format!("local-{}", all.len()))
    }
}

/// A chat webhook (Slack, Teams, Mattermost, Chime-style incoming webhooks): POSTs
/// `{"text": …}` as JSON. The URL is a secret: it never appears in errors or logs.
#[derive(Debug, Clone)]
pub struct ChatWebhook {
    client: reqwest::Client,
    url: String,
}

impl ChatWebhook {
    /// A webhook posting to `url` (validated by [`webhook_url_from_secret`]).
    pub fn new(url: impl Into<String>) -> Result<ChatWebhook, PipelineError> {
        let client = reqwest::Client::builder()
            .timeout(Duration::from_secs(10))
            .build()
            .map_err(|e| PipelineError::Misconfigured(format!("HTTP client: {e}")))?;
        Ok(ChatWebhook {
            client,
            url: url.into(),
        })
    }

    /// Posts `message.text`.
    pub async fn post(&self, message: &Message) -> Result<(), String> {
        let body = serde_json::json!({ "text": message.text });
        let resp = self
            .client
            .post(&self.url)
            .json(&body)
            .send()
            .await
            .map_err(|e| format!("chat webhook: {}", e.without_url()))?;
        let status = resp.status();
        if !status.is_success() {
            return Err(format!("chat webhook answered HTTP {status}"));
        }
        Ok(())
    }
}

/// The chat webhook held by the secret `name` of `source` (the notify function's
/// `STEPOPS_CHAT_WEBHOOK_SECRET`), read through the shared [`SecretSource`] as every other
/// secret; the URL is never part of an error.
pub async fn chat_webhook_from_secret<S: SecretSource>(
    source: &S,
    name: &str,
) -> Result<ChatWebhook, PipelineError> {
    let value = source.secret(name).await.map_err(|e| {
        PipelineError::Misconfigured(format!("cannot read the chat webhook secret: {e}"))
    })?;
    ChatWebhook::new(webhook_url_from_secret(value.expose())?)
}

/// Reads the webhook URL out of a secret's value: either the URL itself or a JSON object
/// `{"url": "…"}`. Only `https://` URLs are accepted (plain `http://` only to loopback, for
/// tests).
pub fn webhook_url_from_secret(secret_value: &str) -> Result<String, PipelineError> {
    let trimmed = secret_value.trim();
    let url = if trimmed.starts_with('{') {
        let v: Value = serde_json::from_str(trimmed).map_err(|_| {
            PipelineError::Misconfigured(
                "the chat webhook secret is JSON but not valid JSON".into(),
            )
        })?;
        v.get("url")
            .and_then(Value::as_str)
            .ok_or_else(|| {
                PipelineError::Misconfigured(
                    "the chat webhook secret is a JSON object without a string `url`".into(),
                )
            })?
            .to_owned()
    } else {
        trimmed.to_owned()
    };
    let loopback = [
        "http://127.0.0.1:",
        "http://127.0.0.1/",
        "http://localhost:",
        "http://[::1]:",
    ];
    if url.starts_with("https://") || loopback.iter().any(|p| url.starts_with(p)) {
        Ok(url)
    } else {
        Err(PipelineError::Misconfigured(
            "the chat webhook secret does not hold an https:// URL (or {\"url\": \"https://…\"})"
                .into(),
        ))
    }
}

/// Composes the notification for `req`; `now` gives the duration when the summary has none.
pub fn compose(req: &NotifyRequest, now: DateTime<Utc>) -> Message {
    let env = &req.environment;
    let summary = req.summary.clone().unwrap_or_default();
    let admin = req.admin.as_ref().and_then(Value::as_object);
    let dry = summary.dry_run == Some(true)
        || admin.and_then(|a| a.get("dryRun")?.as_bool()) == Some(true);
    let workflow = req.workflow.clone().unwrap_or_else(|| {
        let machine = machine_name(&req.execution_arn);
        if machine.contains("admin") || admin.is_some() {
            "admin task".to_owned()
        } else {
            "migration".to_owned()
        }
    });
    let what = if dry {
        format!("{workflow} (dry run)")
    } else {
        workflow
    };
    let duration = summary.duration_seconds.or_else(|| {
        req.start_time
            .map(|s| (now - s).num_milliseconds().max(0) as f64 / 1000.0)
    });
    let mut lines = Vec::new();
    let subject;
    match req.status {
        RunStatus::Succeeded => {
            subject = format!("[stepops {env}] {what} succeeded");
            lines.push(format!("stepops {what} SUCCEEDED in {env}."));
            let mut facts = Vec::new();
            if let Some(t) = summary.tables {
                facts.push(format!("tables: {t}"));
            }
            if let Some(c) = summary.chunks {
                facts.push(format!("chunks: {c}"));
            }
            let partial = match (summary.chunks_copied, summary.chunks) {
                (Some(counted), Some(planned)) if !dry && counted < planned => {
                    Some((counted, planned))
                }
                _ => None,
            };
            if let Some(r) = summary.rows_copied {
                facts.push(format!("rows copied: {r}"));
            }
            if let Some(r) = summary.rows_deleted {
                facts.push(format!("rows deleted: {r}"));
            }
            if let Some(r) = summary.estimated_rows {
                facts.push(format!("rows planned: {r}"));
            }
            if let Some(r) = summary.rounds {
                facts.push(format!("rounds: {r}"));
            }
            if let Some(d) = duration {
                facts.push(format!("duration: {}", human_duration(d)));
            }
            if let Some(a) = admin {
                for key in ["task", "target", "outcome"] {
                    if let Some(v) = a.get(key).and_then(Value::as_str) {
                        facts.push(format!("{key}: {v}"));
                    }
                }
            }
            if !facts.is_empty() {
                lines.push(facts.join(", "));
            }
            if let Some((counted, planned)) = partial
                && (summary.rows_copied.is_some() || summary.rows_deleted.is_some())
            {
                lines.push(format!(
                    "The row counts cover {counted} of {planned} chunks: the other chunks' copy \
                     results could not be read (see the runner's log)."
                ));
            }
            if let Some(change) = admin.and_then(|a| a.get("change")?.as_str()) {
                lines.push(format!("change: {}", redact(change)));
            }
            if dry && admin.is_some() {
                lines.push("Nothing was changed (dryRun).".into());
            } else if dry {
                lines.push("Nothing was copied (dryRun).".into());
            } else if summary.chunks == Some(0) {
                lines.push("The destination was already in sync: nothing to copy.".into());
            }
        }
        RunStatus::Failed | RunStatus::TimedOut | RunStatus::Aborted => {
            let step_name = req.failed_step.as_deref();
            let step = step_name
                .map(|s| format!("\"{s}\""))
                .unwrap_or_else(|| "an unknown step".into());
            let err = req.error.clone().unwrap_or_default();
            let name = err.error.as_deref().unwrap_or("(no error name)");
            let (verb, why) = match req.status {
                RunStatus::TimedOut => (
                    "TIMED OUT",
                    " (it ran past the state machine's TimeoutSeconds and was stopped)",
                ),
                RunStatus::Aborted => ("was ABORTED", " (someone stopped it: StopExecution)"),
                _ => ("FAILED", ""),
            };
            subject = match req.status {
                RunStatus::Aborted => format!("[stepops {env}] {what} ABORTED"),
                status => format!("[stepops {env}] {what} {}: {name}", status.as_str()),
            };
            lines.push(format!(
                "stepops {what} {verb} in {env} at step {step}{why}."
            ));
            if let Some(n) = req.redrive_count {
                lines.push(format!("It had been redriven {n} time(s)."));
            }
            if step_name.is_none()
                && let Some(e) = &req.history_error
            {
                lines.push(format!(
                    "(The failed step is unknown: the execution history could not be read: {}.)",
                    redact(e)
                ));
            }
            lines.push(format!("error: {name}"));
            if let Some(cause) = err.cause.as_deref() {
                lines.push(format!("cause: {}", redact(&unwrap_cause(cause))));
            }
            if let Some(d) = duration {
                lines.push(format!("after: {}", human_duration(d)));
            }
            if req.destination_read_only == Some(true) {
                lines.push(
                    "The destination is still READ-ONLY: this run put it read-only \
                     (readOnlyDuringCopy) and stopped before putting it back, so that no client \
                     writes to a half-copied database. It is put back read-write at the end of a \
                     successful run: fix the cause and start the execution again with the same \
                     input. To release it without migrating, set the config's status table to \
                     its readWrite value, or on PostgreSQL without one run `ALTER DATABASE <db> \
                     SET default_transaction_read_only = off`."
                        .to_owned(),
                );
            }
            lines.push(next_step(req, step_name, admin.is_some()));
        }
    }
    lines.push(format!("execution: {}", req.execution_arn));
    if let Some(url) = console_url(&req.execution_arn) {
        lines.push(format!("console: {url}"));
    }
    Message {
        subject: sns_subject(&subject),
        text: lines.join("\n"),
        status: req.status.as_str().to_owned(),
        environment: env.clone(),
    }
}

/// Sends the notification to SNS and, when configured, to the chat webhook. Fails (with
/// `Stepops.Transient`, so the state machine retries) only when no channel accepted it.
pub async fn notify<P: Publisher>(
    req: &NotifyRequest,
    publisher: &P,
    webhook: Option<&ChatWebhook>,
    now: DateTime<Utc>,
) -> Result<NotifyOutput, PipelineError> {
    let message = compose(req, now);
    let mut out = NotifyOutput {
        delivered: Vec::new(),
        failed: Vec::new(),
    };
    match publisher.publish(&message).await {
        Ok(id) => {
            tracing::info!(message_id = %id, status = %message.status, "published to SNS");
            out.delivered.push("sns".into());
        }
        Err(e) => {
            tracing::warn!(error = %e, "SNS publish failed");
            out.failed.push(format!("sns: {e}"));
        }
    }
    if let Some(hook) = webhook {
        match hook.post(&message).await {
            Ok(()) => out.delivered.push("webhook".into()),
            Err(e) => {
                tracing::warn!(error = %e, "chat webhook failed");
                out.failed.push(e);
            }
        }
    }
    if out.delivered.is_empty() {
        return Err(PipelineError::Undelivered(out.failed.join("; ")));
    }
    Ok(out)
}

/// What to do after a failure, timeout or abort.
fn next_step(req: &NotifyRequest, step: Option<&str>, admin_record: bool) -> String {
    let arn = &req.execution_arn;
    let admin = admin_record || machine_name(arn).contains("admin");
    if admin {
        return "Admin tasks are idempotent: fix the cause and start the task again (a redrive \
                of this execution would only repeat its failure)."
            .into();
    }
    if step == Some("ValidateInput") {
        return "The input was refused before anything was touched: correct it and start a new \
                execution (a redrive re-uses the same input and would fail again)."
            .into();
    }
    let at = match step {
        Some("CopyChunks") => "resumes at \"CopyChunks\", where only the chunks that did not \
                               succeed are copied again (copying a chunk is idempotent)"
            .to_owned(),
        Some(s) => format!("resumes at \"{s}\""),
        None => "resumes at the step that did not succeed".to_owned(),
    };
    let limit = if req.status == RunStatus::TimedOut {
        " A redrive also restarts the execution's time limit."
    } else {
        ""
    };
    format!(
        "Fix the cause, then redrive: the execution {at}; the steps that succeeded are not run \
         again.{limit} aws stepfunctions redrive-execution --execution-arn {arn}"
    )
}

/// Lambda causes arrive as `{"errorType":…,"errorMessage":…}`: keep the message.
fn unwrap_cause(cause: &str) -> String {
    serde_json::from_str::<Value>(cause)
        .ok()
        .and_then(|v| v.get("errorMessage")?.as_str().map(str::to_owned))
        .unwrap_or_else(|| cause.to_owned())
}

fn console_url(execution_arn: &str) -> Option<String> {
    // arn:aws:states:REGION:ACCOUNT:execution:MACHINE:NAME
    let mut parts = execution_arn.split(':');
    let (Some("arn"), Some(partition), Some("states"), Some(region)) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return None;
    };
    if partition != "aws" || region.is_empty() {
        return None;
    }
    Some(format!(
        "https://{region}.console.aws.amazon.com/states/home?region={region}#/v2/executions/details/{execution_arn}"
    ))
}

fn human_duration(seconds: f64) -> String {
    let total = seconds.round() as u64;
    let (h, m, s) = (total / 3600, (total % 3600) / 60, total % 60);
    if h > 0 {
        format!("{h}h {m:02}m {s:02}s")
    } else if m > 0 {
        format!("{m}m {s:02}s")
    } else {
        format!("{s}s")
    }
}

/// SNS subjects: ASCII, no line breaks, at most 100 characters.
fn sns_subject(text: &str) -> String {
    let cleaned: String = text
        .chars()
        .map(|c| {
            if c.is_ascii() && !c.is_ascii_control() {
                c
            } else {
                ' '
            }
        })
        .collect();
    if cleaned.len() <= 100 {
        cleaned
    } else {
        format!("{}...", &cleaned[..97])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_read_well() {
        assert_eq!(human_duration(4.4), "4s");
        assert_eq!(human_duration(125.0), "2m 05s");
        assert_eq!(human_duration(30.0 * 3600.0 + 61.0), "30h 01m 01s");
    }

    #[test]
    fn subjects_fit_sns() {
        let s = sns_subject(&format!("ä\n{}", "x".repeat(200)));
        assert_eq!(s.len(), 100);
        assert!(s.is_ascii() && !s.contains('\n'));
    }

    #[test]
    fn console_links_only_for_aws_arns() {
        assert!(
            console_url("arn:aws:states:eu-west-1:123456789012:execution:m:e")
                .unwrap()
                .starts_with("https://eu-west-1.console.aws.amazon.com/states/")
        );
        assert_eq!(console_url("arn:aws:states:::execution:m:e"), None);
        assert_eq!(console_url("local:exec"), None);
    }

    #[test]
    fn lambda_causes_are_unwrapped() {
        assert_eq!(
            unwrap_cause(r#"{"errorType":"Stepops.InvalidInput","errorMessage":"bad"}"#),
            "bad"
        );
        assert_eq!(unwrap_cause("plain"), "plain");
    }
}
