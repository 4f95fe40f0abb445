//! [`SfnError`]: what can go wrong talking to Step Functions or CloudFormation, named with the
//! documented `Stepops.*` names so that the CLI maps it to its exit code.

use std::time::Duration;

use aws_sdk_sfn::error::{DisplayErrorContext, ProvideErrorMetadata, SdkError};
use stepops_error::{ErrorName, Named};

/// A failed Step Functions or CloudFormation call, or an answer that is not what was asked.
#[derive(Debug, thiserror::Error)]
pub enum SfnError {
    /// The service call failed; `name` says how (network, credentials, a missing object, …).
    #[error("{operation} failed: {message}")]
    Call {
        /// The API operation (`StartExecution`, `DescribeStacks`, …).
        operation: &'static str,
        /// The SDK's description, with the service's error code and message.
        message: String,
        /// The documented name the failure maps to.
        name: ErrorName,
    },
    /// The stack, output or state machine asked for does not exist.
    #[error("{0}")]
    NotFound(String),
    /// Several state machines match; the caller must name one.
    #[error("{0}")]
    Ambiguous(String),
    /// The state machine found does not carry the environment asked for.
    #[error("{0}")]
    WrongEnvironment(String),
    /// The execution was still running when the wait's limit was reached.
    #[error(
        "gave up waiting after {} s; the execution {arn} is still running (it was not stopped)",
        waited.as_secs()
    )]
    StillRunning {
        /// The execution.
        arn: String,
        /// How long was waited.
        waited: Duration,
    },
    /// The execution's output is not JSON.
    #[error("the execution {arn}'s output is not JSON: {source}")]
    Output {
        /// The execution.
        arn: String,
        /// The parse error.
        source: serde_json::Error,
    },
}

impl SfnError {
    /// Names an SDK failure of `operation` from its kind and the service's error code.
    pub fn call<E, R>(operation: &'static str, err: SdkError<E, R>) -> SfnError
    where
        E: ProvideErrorMetadata + std::error::Error + 'static,
        R: std::fmt::Debug,
    {
        let name = match &err {
            SdkError::DispatchFailure(_)
            | SdkError::TimeoutError(_)
            | SdkError::ResponseError(_) => ErrorName::Transient,
            _ => name_of_code(err.code().unwrap_or(""), err.message().unwrap_or("")),
        };
        SfnError::Call {
            operation,
            message: DisplayErrorContext(&err).to_string(),
            name,
        }
    }
}

/// The documented name of a service error code (Step Functions' and CloudFormation's).
fn name_of_code(code: &str, message: &str) -> ErrorName {
    match code {
        "ThrottlingException"
        | "Throttling"
        | "ServiceUnavailable"
        | "InternalFailure"
        | "RequestTimeout" => ErrorName::Transient,
        "AccessDeniedException"
        | "AccessDenied"
        | "UnrecognizedClientException"
        | "InvalidClientTokenId"
        | "ExpiredToken"
        | "ExpiredTokenException"
        | "InvalidSignatureException"
        | "SignatureDoesNotMatch" => ErrorName::Unauthorized,
        "ExecutionDoesNotExist" | "StateMachineDoesNotExist" | "ActivityDoesNotExist" => {
            ErrorName::NotFound
        }
        // CloudFormation answers a missing stack with a ValidationError.
        "ValidationError" if message.contains("does not exist") => ErrorName::NotFound,
        "ExecutionAlreadyExists" => ErrorName::Conflict,
        "InvalidArn"
        | "InvalidName"
        | "InvalidExecutionInput"
        | "ValidationException"
        | "ValidationError" => ErrorName::InvalidInput,
        _ => ErrorName::Internal,
    }
}

impl Named for SfnError {
    fn error_name(&self) -> ErrorName {
        match self {
            SfnError::Call { name, .. } => *name,
            SfnError::NotFound(_) => ErrorName::NotFound,
            SfnError::Ambiguous(_) => ErrorName::InvalidInput,
            SfnError::WrongEnvironment(_) => ErrorName::WrongEnvironment,
            SfnError::StillRunning { .. } => ErrorName::Transient,
            SfnError::Output { .. } => ErrorName::Internal,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn service_codes_map_to_their_documented_names() {
        let cases = [
            ("ThrottlingException", "", ErrorName::Transient),
            ("AccessDeniedException", "", ErrorName::Unauthorized),
            ("ExpiredToken", "", ErrorName::Unauthorized),
            ("ExecutionDoesNotExist", "", ErrorName::NotFound),
            (
                "ValidationError",
                "Stack with id x does not exist",
                ErrorName::NotFound,
            ),
            (
                "ValidationError",
                "1 validation error detected",
                ErrorName::InvalidInput,
            ),
            ("ExecutionAlreadyExists", "", ErrorName::Conflict),
            ("InvalidArn", "", ErrorName::InvalidInput),
            ("SomethingNew", "", ErrorName::Internal),
        ];
        for (code, message, want) in cases {
            assert_eq!(name_of_code(code, message), want, "{code}: {message}");
        }
    }
}
