//! The pipeline's errors, each mapped to a documented `Stepops.*` name.

use stepops_error::{ErrorName, Named};

/// Why a pipeline step refused or failed.
#[derive(Debug, thiserror::Error)]
pub enum PipelineError {
    /// The execution input is invalid; every problem found is listed. Nothing was touched.
    #[error("invalid execution input: {}. See docs/execution-input.md", .problems.join("; "))]
    InvalidInput {
        /// One line per problem, naming the field.
        problems: Vec<String>,
    },
    /// The input names another environment, or a target of another environment, than the
    /// stack's own. Nothing was touched.
    #[error(
        "{message}. Nothing was touched: start the execution on the stack of the target's own environment"
    )]
    WrongEnvironment {
        /// What is in the wrong place.
        message: String,
    },
    /// The function's own configuration (environment variables, secret) is wrong: a deployment
    /// problem, not an input problem.
    #[error("the stack is misconfigured: {0}. Fix the template's parameters and redeploy")]
    Misconfigured(String),
    /// The notify request (built by the state machine) is malformed.
    #[error("invalid notification request: {0}")]
    InvalidNotification(String),
    /// No notification channel accepted the message.
    #[error("the notification was not delivered: {0}")]
    Undelivered(String),
}

impl Named for PipelineError {
    fn error_name(&self) -> ErrorName {
        match self {
            PipelineError::InvalidInput { .. } => ErrorName::InvalidInput,
            PipelineError::WrongEnvironment { .. } => ErrorName::WrongEnvironment,
            PipelineError::Misconfigured(_) => ErrorName::Internal,
            PipelineError::InvalidNotification(_) => ErrorName::InvalidInput,
            PipelineError::Undelivered(_) => ErrorName::Transient,
        }
    }
}
