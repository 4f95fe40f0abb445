//! Lambda `repo-sync`: the schedule's event `{"definitions": [...]}` (docs/repo-sync.md) → each
//! branch synced to its S3 prefix, an alert when anything changed or failed; returns the
//! reports. Configuration (set by template.yaml): `STEPOPS_ENVIRONMENT`, `STEPOPS_TOPIC_ARN`,
//! `STEPOPS_CHAT_WEBHOOK_SECRET` (optional). GitHub tokens are kept while the Lambda is warm.

use std::sync::Arc;

use lambda_runtime::{Diagnostic, Error, LambdaEvent, service_fn, tracing};
use serde_json::Value;
use stepops_error::TaskFailure;
use stepops_pipeline::{
    ChatWebhook, ENV_ENVIRONMENT, ENV_TOPIC_ARN, ENV_WEBHOOK_SECRET, SnsPublisher,
    webhook_url_from_secret,
};
use stepops_reposync::service::{Alerts, Installations, run_all};
use stepops_reposync::{SyncError, parse_definitions, read_secret};

struct State {
    config: aws_config::SdkConfig,
    sns: SnsPublisher,
    webhook: Option<ChatWebhook>,
    environment: String,
    installations: Installations,
}

#[tokio::main]
async fn main() -> Result<(), Error> {
    tracing::init_default_subscriber();
    let config = aws_config::load_from_env().await;
    let topic = std::env::var(ENV_TOPIC_ARN).map_err(|_| format!("{ENV_TOPIC_ARN} is not set"))?;
    let webhook = match std::env::var(ENV_WEBHOOK_SECRET)
        .ok()
        .filter(|s| !s.is_empty())
    {
        Some(name) => match read_secret(&config, name)
            .await
            .map(|v| webhook_url_from_secret(&v))
        {
            Ok(Ok(url)) => ChatWebhook::new(url).ok(),
            _ => {
                tracing::error!("chat webhook disabled: its secret cannot be read or holds no URL");
                None
            }
        },
        None => None,
    };
    let state = Arc::new(State {
        sns: SnsPublisher::new(aws_sdk_sns::Client::new(&config), topic),
        webhook,
        environment: std::env::var(ENV_ENVIRONMENT).unwrap_or_else(|_| "unknown".into()),
        installations: Installations::default(),
        config,
    });
    lambda_runtime::run(service_fn(move |event: LambdaEvent<Value>| {
        let state = state.clone();
        async move {
            handle(event.payload, &state)
                .await
                .map_err(|e| diagnostic(&e))
        }
    }))
    .await
}

async fn handle(payload: Value, state: &State) -> Result<Value, SyncError> {
    let defs = parse_definitions(&payload.to_string())?;
    let alerts = Alerts {
        publisher: &state.sns,
        webhook: state.webhook.as_ref(),
        environment: &state.environment,
    };
    let s3 = aws_sdk_s3::config::Builder::from(&state.config);
    let secret = |name| read_secret(&state.config, name);
    let reports = run_all(
        &defs,
        &s3,
        secret,
        &state.installations,
        Some(alerts),
        &std::env::temp_dir(),
    )
    .await?;
    Ok(serde_json::json!({ "reports": reports }))
}

fn diagnostic(err: &SyncError) -> Diagnostic {
    let f = TaskFailure::from_error(err);
    Diagnostic {
        error_type: f.error,
        error_message: f.cause,
    }
}
