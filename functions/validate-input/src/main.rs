//! Lambda `validate-input`: the execution input → the normalised input, or
//! `Stepops.InvalidInput` / `Stepops.WrongEnvironment` as the error type Step Functions catches.
//!
//! Configuration (environment variables, set by template.yaml): `STEPOPS_ENVIRONMENT` (`dev` or
//! `prod`) and `STEPOPS_ALLOWED_TARGETS` (`KIND:NAME` list, see `stepops_pipeline::stack_environment`).

use std::sync::Arc;

use lambda_runtime::{Diagnostic, Error, LambdaEvent, service_fn};
use serde_json::Value;
use stepops_error::TaskFailure;
use stepops_pipeline::{PipelineError, StackEnvironment, validate_handler};

#[tokio::main]
async fn main() -> Result<(), Error> {
    lambda_runtime::tracing::init_default_subscriber();
    // A misconfigured stack answers every invocation with a named error instead of crashing
    // the runtime, so the state machine's Catch reports it.
    let stack = Arc::new(stepops_pipeline::stack_environment_from_lookup(|k| {
        std::env::var(k).ok()
    }));
    if let Err(e) = stack.as_ref() {
        lambda_runtime::tracing::error!(error = %e, "validate-input is misconfigured");
    }
    lambda_runtime::run(service_fn(move |event: LambdaEvent<Value>| {
        let stack = stack.clone();
        async move { handle(&event.payload, &stack) }
    }))
    .await
}

fn handle(
    input: &Value,
    stack: &Result<StackEnvironment, PipelineError>,
) -> Result<Value, Diagnostic> {
    let stack = stack.as_ref().map_err(diagnostic)?;
    validate_handler(input, stack).map_err(|e| {
        lambda_runtime::tracing::info!(error = %e, "execution input refused");
        diagnostic(&e)
    })
}

fn diagnostic(err: &PipelineError) -> Diagnostic {
    let f = TaskFailure::from_error(err);
    Diagnostic {
        error_type: f.error,
        error_message: f.cause,
    }
}
