//! Lambda `notify`: a run's outcome → one SNS message (and a chat webhook post when configured);
//! returns `{delivered, failed}`. The outcome is the state machine's own request (a migration's
//! success, an admin task) or a Step Functions status-change event from template.yaml's
//! `MigrationEnded` rule (every failure, timeout and abort), whose failed step is read from the
//! execution's history (`states:GetExecutionHistory`).
//!
//! Configuration (environment variables, set by template.yaml): `STEPOPS_TOPIC_ARN` (required),
//! `STEPOPS_ENVIRONMENT` (the stack's environment, for events) and
//! `STEPOPS_CHAT_WEBHOOK_SECRET` (optional: the Secrets Manager secret holding the webhook URL,
//! read once per cold start).

use lambda_runtime::{Error, tracing};
use serde_json::Value;
use stepops_pipeline::{
    ChatWebhook, ENV_ENVIRONMENT, ENV_TOPIC_ARN, ENV_WEBHOOK_SECRET, NotifyOutput, PipelineError,
    SfnHistory, SnsPublisher, chat_webhook_from_secret, notify_handler,
};
use stepops_secrets::AwsSecretSource;

/// What every invocation shares: built once per container.
struct Clients {
    sns: SnsPublisher,
    history: SfnHistory,
    environment: Option<String>,
    webhook: Option<ChatWebhook>,
    /// Why the configured webhook could not be set up (reported in every output).
    webhook_problem: Option<String>,
}

#[tokio::main]
async fn main() -> Result<(), Error> {
    tracing::init_default_subscriber();
    let config = aws_config::load_from_env().await;
    stepops_lambda::serve(
        "notify",
        build(&config).await,
        |event, clients| async move { handle(event.payload, &clients).await },
    )
    .await
}

async fn build(config: &aws_config::SdkConfig) -> Result<Clients, PipelineError> {
    let topic = std::env::var(ENV_TOPIC_ARN)
        .ok()
        .filter(|t| !t.is_empty())
        .ok_or_else(|| PipelineError::Misconfigured(format!("{ENV_TOPIC_ARN} is not set")))?;
    let secret = std::env::var(ENV_WEBHOOK_SECRET)
        .ok()
        .filter(|s| !s.is_empty());
    let (webhook, webhook_problem) = match secret {
        None => (None, None),
        Some(name) => match chat_webhook_from_secret(&AwsSecretSource::new(config), &name).await {
            Ok(hook) => (Some(hook), None),
            Err(e) => {
                tracing::error!(error = %e, secret = %name, "chat webhook disabled");
                (None, Some(format!("webhook: {e}")))
            }
        },
    };
    Ok(Clients {
        sns: SnsPublisher::new(aws_sdk_sns::Client::new(config), topic),
        history: SfnHistory::new(aws_sdk_sfn::Client::new(config)),
        environment: std::env::var(ENV_ENVIRONMENT).ok(),
        webhook,
        webhook_problem,
    })
}

async fn handle(payload: Value, clients: &Clients) -> Result<NotifyOutput, PipelineError> {
    let (_req, mut out) = notify_handler(
        payload,
        &clients.sns,
        clients.webhook.as_ref(),
        &clients.history,
        clients.environment.as_deref(),
    )
    .await?;
    if let Some(problem) = &clients.webhook_problem {
        out.failed.push(problem.clone());
    }
    Ok(out)
}
