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

use std::sync::Arc;

use lambda_runtime::{Diagnostic, Error, LambdaEvent, service_fn, tracing};
use serde_json::Value;
use stepops_error::TaskFailure;
use stepops_pipeline::{
    ChatWebhook, ENV_ENVIRONMENT, ENV_TOPIC_ARN, ENV_WEBHOOK_SECRET, NotifyOutput, PipelineError,
    SfnHistory, SnsPublisher, notify_handler, webhook_url_from_secret,
};

struct Clients {
    sns: Option<SnsPublisher>,
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
    let sns = std::env::var(ENV_TOPIC_ARN)
        .ok()
        .filter(|t| !t.is_empty())
        .map(|topic| SnsPublisher::new(aws_sdk_sns::Client::new(&config), topic));
    let (webhook, webhook_problem) = match std::env::var(ENV_WEBHOOK_SECRET)
        .ok()
        .filter(|s| !s.is_empty())
    {
        None => (None, None),
        Some(name) => match load_webhook(&config, &name).await {
            Ok(hook) => (Some(hook), None),
            Err(e) => {
                tracing::error!(error = %e, secret = %name, "chat webhook disabled");
                (None, Some(format!("webhook: {e}")))
            }
        },
    };
    let clients = Arc::new(Clients {
        sns,
        history: SfnHistory::new(aws_sdk_sfn::Client::new(&config)),
        environment: std::env::var(ENV_ENVIRONMENT).ok(),
        webhook,
        webhook_problem,
    });
    lambda_runtime::run(service_fn(move |event: LambdaEvent<Value>| {
        let clients = clients.clone();
        async move { handle(event.payload, &clients).await }
    }))
    .await
}

async fn load_webhook(
    config: &aws_config::SdkConfig,
    secret: &str,
) -> Result<ChatWebhook, PipelineError> {
    let value = aws_sdk_secretsmanager::Client::new(config)
        .get_secret_value()
        .secret_id(secret)
        .send()
        .await
        .map_err(|e| {
            PipelineError::Misconfigured(format!(
                "cannot read the chat webhook secret `{secret}`: {}",
                aws_sdk_secretsmanager::error::DisplayErrorContext(&e)
            ))
        })?;
    let text = value.secret_string().ok_or_else(|| {
        PipelineError::Misconfigured(format!("the secret `{secret}` has no string value"))
    })?;
    ChatWebhook::new(webhook_url_from_secret(text)?)
}

async fn handle(payload: Value, clients: &Clients) -> Result<NotifyOutput, Diagnostic> {
    let Some(sns) = clients.sns.as_ref() else {
        return Err(diagnostic(&PipelineError::Misconfigured(format!(
            "{ENV_TOPIC_ARN} is not set"
        ))));
    };
    let (_req, mut out) = notify_handler(
        payload,
        sns,
        clients.webhook.as_ref(),
        &clients.history,
        clients.environment.as_deref(),
    )
    .await
    .map_err(|e| diagnostic(&e))?;
    if let Some(problem) = &clients.webhook_problem {
        out.failed.push(problem.clone());
    }
    Ok(out)
}

fn diagnostic(err: &PipelineError) -> Diagnostic {
    let f = TaskFailure::from_error(err);
    Diagnostic {
        error_type: f.error,
        error_message: f.cause,
    }
}
