//! The run notification: a short text summary published to SNS and, optionally, posted to a
//! chat webhook.
//!
//! - [`request`]: what the notification is about (the state machine's request or a Step
//!   Functions status-change event completed from the history);
//! - [`compose`]: the text;
//! - [`publish`]: where it goes, the [`Publisher`] trait with its adapters beside it
//!   (`sns.rs`, `webhook.rs`, `memory.rs`).

mod compose;
mod publish;
mod request;

use chrono::{DateTime, Utc};
use serde::Serialize;

use crate::PipelineError;

pub use compose::compose;
pub use publish::{
    ChatWebhook, MemoryPublisher, Publisher, SnsPublisher, chat_webhook_from_secret,
    webhook_url_from_secret,
};
pub use request::{
    NotifyInput, NotifyRequest, RunStatus, STATES_SOURCE, STATUS_CHANGE, StatusChangeDetail,
    StatusChangeEvent, StepError, Summary, request_from_status_change,
};

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

/// Sends `message` to SNS and, when configured, to the chat webhook; says which channels took
/// it (every caller's one delivery loop: the migration's notifications, repository sync alerts).
pub async fn deliver<P: Publisher>(
    message: &Message,
    publisher: &P,
    webhook: Option<&ChatWebhook>,
) -> NotifyOutput {
    let mut out = NotifyOutput {
        delivered: Vec::new(),
        failed: Vec::new(),
    };
    match publisher.publish(message).await {
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
        match hook.post(message).await {
            Ok(()) => out.delivered.push("webhook".into()),
            Err(e) => {
                tracing::warn!(error = %e, "chat webhook failed");
                out.failed.push(e);
            }
        }
    }
    out
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
    let out = deliver(&message, publisher, webhook).await;
    if out.delivered.is_empty() {
        return Err(PipelineError::Undelivered(out.failed.join("; ")));
    }
    Ok(out)
}
