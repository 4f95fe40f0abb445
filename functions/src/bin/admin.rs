//! Lambda `admin` of `statemachine/admin.asl.json`: the event `{"action": "validate" | "run",
//! "request": INPUT, "executionId"?, "startedBy"?}` → `stepops_admin::invoke`, whose errors are
//! reported with their `Stepops.*` name as `errorType` (what the state machine retries/catches).
//!
//! Configuration (environment variables, set by template.yaml; see `AdminSettings`):
//! `STEPOPS_ENVIRONMENT`, `STEPOPS_SYNAPSE_ENDPOINT`, `STEPOPS_ADMIN_SECRET` (default
//! `stepops/ENV/synapse-admin-pat`), `STEPOPS_HTTP_TIMEOUT_SECONDS`, and optionally
//! `STEPOPS_ADMIN_RECORDS_BUCKET` / `STEPOPS_ADMIN_RECORDS_KMS_KEY` (where `remove-user` keeps
//! the profile it removes, in S3 with SSE-KMS; unset: kept nowhere). The admin token is read from
//! Secrets Manager on first use, cached for the container's life, and read again once on a 401.
//!
//! Each invocation's requests (token reads, a refresh and the retry after a 401 included) end
//! by the invocation's deadline minus `stepops_admin::LAMBDA_MARGIN`: a task cut off there fails
//! `Stepops.Transient` with its audit record, never with the Lambda's own timeout.
//!
//! Logs: `stepops_admin::logging::init_lambda` (lambda_runtime's level and format settings;
//! the audit record's line carries `"audit": true` and the record as a JSON object).

#![recursion_limit = "256"]

use lambda_runtime::{Error, tracing};
use stepops_admin::{
    AdminError, AdminSettings, Environment, SecretsManagerTokenSource, SynapseClient,
};
use stepops_store::{AnyStore, S3Store};

/// What every invocation shares: built once per container.
struct Admin {
    environment: Environment,
    client: SynapseClient<SecretsManagerTokenSource>,
}

#[tokio::main]
async fn main() -> Result<(), Error> {
    stepops_admin::logging::init_lambda();
    stepops_lambda::serve("admin", build().await, |event, admin| async move {
        let deadline = stepops_admin::invocation_deadline(event.context.deadline());
        stepops_admin::invoke_until(&event.payload, admin.environment, &admin.client, deadline)
            .await
    })
    .await
}

async fn build() -> Result<Admin, AdminError> {
    let settings = AdminSettings::from_env()?;
    let config = aws_config::load_from_env().await;
    let tokens = SecretsManagerTokenSource::new(
        aws_sdk_secretsmanager::Client::new(&config),
        settings.secret_name.clone(),
    );
    let records = settings.profile_records(AnyStore::S3(S3Store::from_config(&config)));
    let client = SynapseClient::new(settings.client, tokens)?.with_profile_records(records);
    tracing::info!(
        environment = %settings.environment,
        endpoint = %client.base_url(),
        secret = %settings.secret_name,
        profile_records = settings.records_bucket.as_deref().unwrap_or("(not kept)"),
        "admin function ready"
    );
    Ok(Admin {
        environment: settings.environment,
        client,
    })
}
