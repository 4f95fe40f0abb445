//! The start-up every stepops Lambda binary (`functions/src/bin/*`) shares, so that their `main`s only
//! build what the function needs and name the library call that handles an event.
//!
//! - [`serve`]: runs the Lambda runtime with a state built once per container. A state that
//!   could not be built (a misconfigured stack) is logged once and answers every invocation
//!   with its named error, instead of crashing the runtime: the state machine's `Retry`/`Catch`
//!   and the notification then name it.
//! - [`diagnostic`]: any [`Named`] error as the runtime's error document, `errorType` being its
//!   `Stepops.*` name (what `ErrorEquals` matches) and `errorMessage` its cause with the
//!   source chain.
//!
//! ```no_run
//! # #[derive(Debug, thiserror::Error)] #[error("x")] struct MyError;
//! # impl stepops_error::Named for MyError {
//! #     fn error_name(&self) -> stepops_error::ErrorName { stepops_error::ErrorName::Internal }
//! # }
//! # async fn demo() -> Result<(), lambda_runtime::Error> {
//! let setup: Result<String, MyError> = Ok("dev".to_owned());
//! stepops_lambda::serve("echo", setup, |event, env| async move {
//!     Ok::<_, MyError>(serde_json::json!({"environment": *env, "input": event.payload}))
//! })
//! .await
//! # }
//! ```

use std::future::Future;
use std::sync::Arc;

use lambda_runtime::{Diagnostic, LambdaEvent, service_fn, tracing};
use serde::Serialize;
use serde_json::Value;
use stepops_error::{Named, TaskFailure};

/// `err` as the Lambda runtime reports it: `errorType` its `Stepops.*` name, `errorMessage`
/// its cause.
pub fn diagnostic<E: Named + ?Sized>(err: &E) -> Diagnostic {
    let failure = TaskFailure::from_error(err);
    Diagnostic {
        error_type: failure.error,
        error_message: failure.cause,
    }
}

/// Runs the Lambda runtime for the function `function`: every event goes to `handler` with
/// the container's state `setup`; when `setup` failed, every event is answered with its error.
pub async fn serve<S, E, H, Fut, O, HE>(
    function: &'static str,
    setup: Result<S, E>,
    handler: H,
) -> Result<(), lambda_runtime::Error>
where
    S: Send + Sync + 'static,
    E: Named + Send + Sync + 'static,
    H: Fn(LambdaEvent<Value>, Arc<S>) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Result<O, HE>> + Send,
    O: Serialize,
    HE: Named,
{
    if let Err(e) = &setup {
        tracing::error!(error = %e, "the {function} function is misconfigured");
    }
    let setup = Arc::new(setup.map(Arc::new));
    let handler = Arc::new(handler);
    lambda_runtime::run(service_fn(move |event: LambdaEvent<Value>| {
        let setup = setup.clone();
        let handler = handler.clone();
        async move {
            let state = setup.as_ref().as_ref().map_err(diagnostic)?.clone();
            handler(event, state).await.map_err(|e| diagnostic(&e))
        }
    }))
    .await
}

#[cfg(test)]
mod tests {
    use super::*;
    use stepops_error::ErrorName;

    #[derive(Debug, thiserror::Error)]
    #[error("the topic is not set")]
    struct Unset(#[source] std::io::Error);

    impl Named for Unset {
        fn error_name(&self) -> ErrorName {
            ErrorName::InvalidInput
        }
    }

    #[test]
    fn a_named_error_becomes_its_name_and_cause_chain() {
        let d = diagnostic(&Unset(std::io::Error::other("STEPOPS_TOPIC_ARN is empty")));
        assert_eq!(d.error_type, "Stepops.InvalidInput");
        assert_eq!(
            d.error_message,
            "the topic is not set: STEPOPS_TOPIC_ARN is empty"
        );
    }
}
