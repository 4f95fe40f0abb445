//! The run notification: a short text summary published to SNS and, optionally, posted to a
//! chat webhook.

use std::future::Future;
use std::time::Duration;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::{PipelineError, redact};

/// How the run ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "UPPERCASE")]
pub enum RunStatus {
    /// Destination equals source (or a dry run finished).
    Succeeded,
    /// A step failed; `error` and `failedStep` say which and why.
    Failed,
}

impl RunStatus {
    /// `SUCCEEDED` / `FAILED`.
    pub const fn as_str(self) -> &'static str {
        match self {
            RunStatus::Succeeded => "SUCCEEDED",
            RunStatus::Failed => "FAILED",
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

/// The notify function's input, built by the state machine.
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
}

impl NotifyRequest {
    /// Parses the state machine's payload with a clear error.
    pub fn from_value(value: Value) -> Result<NotifyRequest, PipelineError> {
        serde_json::from_value(value).map_err(|e| PipelineError::InvalidNotification(e.to_string()))
    }
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
        let machine = req.execution_arn.split(':').nth(6).unwrap_or("");
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
        RunStatus::Failed => {
            let step = req.failed_step.as_deref().unwrap_or("an unknown step");
            let err = req.error.clone().unwrap_or_default();
            let name = err.error.as_deref().unwrap_or("(no error name)");
            subject = format!("[stepops {env}] {what} FAILED: {name}");
            lines.push(format!(
                "stepops {what} FAILED in {env} at step \"{step}\"."
            ));
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
            lines.push(format!(
                "To resume after fixing the cause (only failed chunks run again): \
                 aws stepfunctions redrive-execution --execution-arn {}",
                req.execution_arn
            ));
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
