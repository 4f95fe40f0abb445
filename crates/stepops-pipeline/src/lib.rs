//! The migration pipeline's Lambda logic, knowing nothing of Lambda.
//!
//! Two steps of `statemachine/migrate.asl.json` run as Lambdas (`stepops-fn-validate-input`,
//! `stepops-fn-notify` in `functions/`); the binaries only build clients and call into this crate, and the local
//! engine calls the very same functions in-process.
//!
//! - [`validate_input`]: the execution input → the normalised input later states use, or
//!   `Stepops.InvalidInput` / `Stepops.WrongEnvironment` (the environment guard: a target not
//!   configured for the stack's own environment is refused before anything is touched).
//! - [`notify`]: a run's outcome → one SNS message and, optionally, a chat webhook post. The
//!   outcome is either the state machine's own request (a success, an admin task) or a Step
//!   Functions status-change event from the template's EventBridge rule (every failure,
//!   timeout and abort of the migration), completed from the execution's history
//!   ([`ExecutionHistory`], [`SfnHistory`]).
//!
//! The contract these follow is `docs/dev/pipeline-steps.md`; users read
//! `docs/execution-input.md`.

mod error;
mod history;
mod input;
mod notify;

pub use error::PipelineError;
pub use history::{
    ExecutionHistory, FailureFacts, HistoryItem, NoHistory, READ_ONLY_STATE, READ_WRITE_STATE,
    SfnHistory, failure_facts,
};
pub use input::{
    Limits, NormalisedInput, stack_environment, stack_environment_from_lookup, validate_input,
};
pub use notify::{
    ChatWebhook, MemoryPublisher, Message, NotifyInput, NotifyOutput, NotifyRequest, Publisher,
    RunStatus, STATES_SOURCE, STATUS_CHANGE, SnsPublisher, StatusChangeDetail, StatusChangeEvent,
    StepError, Summary, chat_webhook_from_secret, compose, deliver, notify,
    request_from_status_change, webhook_url_from_secret,
};
pub use stepops_error::{
    AllowedTarget, Environment, StackEnvironment, TargetKind, TargetRef, redact,
};

use serde_json::Value;

/// The `validate-input` handler on JSON values, as the Lambda binary and the local engine call
/// it: the execution input → the normalised input.
pub fn validate_handler(input: &Value, stack: &StackEnvironment) -> Result<Value, PipelineError> {
    let normalised = validate_input(input, stack)?;
    Ok(serde_json::to_value(normalised).expect("the normalised input serialises"))
}

/// The `notify` handler on JSON values, as the Lambda binary and the local engine call it: the
/// state machine's payload or a status-change event → the request it became and
/// `{delivered, failed}`. `history` reads the execution's history for events; `environment`
/// is the stack's own (`STEPOPS_ENVIRONMENT`).
pub async fn notify_handler<P: Publisher, H: ExecutionHistory>(
    payload: Value,
    publisher: &P,
    webhook: Option<&ChatWebhook>,
    history: &H,
    environment: Option<&str>,
) -> Result<(NotifyRequest, NotifyOutput), PipelineError> {
    let req = match NotifyInput::from_value(payload)? {
        NotifyInput::Request(r) => *r,
        NotifyInput::StatusChange(event) => {
            request_from_status_change(&event, history, environment).await?
        }
    };
    let out = notify(&req, publisher, webhook, chrono::Utc::now()).await?;
    Ok((req, out))
}

/// Environment variable holding the stack's own environment (`dev` or `prod`).
pub const ENV_ENVIRONMENT: &str = "STEPOPS_ENVIRONMENT";
/// Environment variable holding the targets this stack may use (see [`stack_environment`]).
pub const ENV_ALLOWED_TARGETS: &str = "STEPOPS_ALLOWED_TARGETS";
/// Environment variable holding the SNS topic the notify function publishes to.
pub const ENV_TOPIC_ARN: &str = "STEPOPS_TOPIC_ARN";
/// Environment variable naming the Secrets Manager secret that holds the chat webhook URL
/// (empty or unset: no webhook).
pub const ENV_WEBHOOK_SECRET: &str = "STEPOPS_CHAT_WEBHOOK_SECRET";
