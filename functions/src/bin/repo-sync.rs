//! Lambda `repo-sync`: the schedule's event `{"definitions": [...]}` (docs/repo-sync.md) → each
//! branch synced to its S3 prefix, an alert when anything changed or failed; returns the
//! reports. Configuration (set by template.yaml): `STEPOPS_ENVIRONMENT`, `STEPOPS_TOPIC_ARN`,
//! `STEPOPS_CHAT_WEBHOOK_SECRET` (optional). GitHub tokens are kept while the Lambda is warm.

use std::sync::Arc;

// The runtime is started directly rather than through `stepops_lambda::serve`: the sync's
// future holds borrows across awaits that the compiler cannot prove `Send` for every
// lifetime, which `serve` requires.

use lambda_runtime::{Error, LambdaEvent, service_fn, tracing};
use serde_json::Value;
use stepops_pipeline::{
    ChatWebhook, ENV_ENVIRONMENT, ENV_TOPIC_ARN, ENV_WEBHOOK_SECRET, SnsPublisher,
    chat_webhook_from_secret,
};
use stepops_reposync::service::{Alerts, Installations, run_all};
use stepops_reposync::{SyncError, parse_definitions, read_secret};
use stepops_secrets::AwsSecretSource;

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
        None => None,
        Some(name) => match chat_webhook_from_secret(&AwsSecretSource::new(&config), &name).await {
            Ok(hook) => Some(hook),
            Err(e) => {
                tracing::error!(error = %e, secret = %name, "chat webhook disabled");
                None
            }
        },
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
                .map_err(|e| stepops_lambda::diagnostic(&e))
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
