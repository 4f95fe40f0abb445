//! [`ChatWebhook`]: the optional chat webhook, its URL read from a secret through the shared
//! secret source; the URL never appears in errors or logs.

use std::time::Duration;

use serde_json::Value;
use stepops_secrets::SecretSource;

use crate::PipelineError;
use crate::notify::Message;

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
