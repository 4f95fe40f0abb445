//! The migration pipeline's Lambda logic, knowing nothing of Lambda.
//!
//! Two steps of `statemachine/migrate.asl.json` run as Lambdas (`functions/validate-input`,
//! `functions/notify`); the binaries only build clients and call into this crate, and the local
//! engine calls the very same functions in-process.
//!
//! - [`validate_input`]: the execution input → the normalised input later states use, or
//!   `Stepops.InvalidInput` / `Stepops.WrongEnvironment` (the environment guard: a target not
//!   configured for the stack's own environment is refused before anything is touched).
//! - [`notify`]: a run's outcome → one SNS message and, optionally, a chat webhook post.
//!
//! The contract these follow is `docs/dev/pipeline-steps.md`; users read
//! `docs/execution-input.md`.

mod error;
mod input;
mod notify;
mod redact;

pub use error::PipelineError;
pub use input::{
    AllowedTarget, Environment, Limits, NormalisedInput, StackEnvironment, Target, TargetKind,
    valid_slot_name, validate_input,
};
pub use notify::{
    ChatWebhook, MemoryPublisher, Message, NotifyOutput, NotifyRequest, Publisher, RunStatus,
    SnsPublisher, StepError, Summary, compose, notify, webhook_url_from_secret,
};
pub use redact::redact;

use serde_json::Value;

/// The `validate-input` handler on JSON values, as the Lambda binary and the local engine call
/// it: the execution input → the normalised input.
pub fn validate_handler(input: &Value, stack: &StackEnvironment) -> Result<Value, PipelineError> {
    let normalised = validate_input(input, stack)?;
    Ok(serde_json::to_value(normalised).expect("the normalised input serialises"))
}

/// The `notify` handler on JSON values, as the Lambda binary and the local engine call it:
/// the state machine's payload → `{delivered, failed}`.
pub async fn notify_handler<P: Publisher>(
    payload: Value,
    publisher: &P,
    webhook: Option<&ChatWebhook>,
) -> Result<Value, PipelineError> {
    let req = NotifyRequest::from_value(payload)?;
    let out = notify(&req, publisher, webhook, chrono::Utc::now()).await?;
    Ok(serde_json::to_value(out).expect("the output serialises"))
}

/// Environment variable holding the stack's own environment (`dev` or `prod`).
pub const ENV_ENVIRONMENT: &str = "STEPOPS_ENVIRONMENT";
/// Environment variable holding the targets this stack may use (see [`StackEnvironment::parse`]).
pub const ENV_ALLOWED_TARGETS: &str = "STEPOPS_ALLOWED_TARGETS";
/// Environment variable holding the SNS topic the notify function publishes to.
pub const ENV_TOPIC_ARN: &str = "STEPOPS_TOPIC_ARN";
/// Environment variable naming the Secrets Manager secret that holds the chat webhook URL
/// (empty or unset: no webhook).
pub const ENV_WEBHOOK_SECRET: &str = "STEPOPS_CHAT_WEBHOOK_SECRET";
