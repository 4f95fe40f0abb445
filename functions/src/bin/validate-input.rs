//! Lambda `validate-input`: the execution input → the normalised input, or
//! `Stepops.InvalidInput` / `Stepops.WrongEnvironment` as the error type Step Functions catches.
//!
//! Configuration (environment variables, set by template.yaml): `STEPOPS_ENVIRONMENT` (`dev` or
//! `prod`) and `STEPOPS_ALLOWED_TARGETS` (`KIND:NAME` list, see `stepops_pipeline::stack_environment`).

use lambda_runtime::{Error, tracing};
use stepops_pipeline::validate_handler;

#[tokio::main]
async fn main() -> Result<(), Error> {
    tracing::init_default_subscriber();
    let stack = stepops_pipeline::stack_environment_from_lookup(|k| std::env::var(k).ok());
    stepops_lambda::serve("validate-input", stack, |event, stack| async move {
        validate_handler(&event.payload, &stack).inspect_err(|e| {
            tracing::info!(error = %e, "execution input refused");
        })
    })
    .await
}
