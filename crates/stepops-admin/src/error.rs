//! The one error type of the admin tasks, mapped onto the documented `Stepops.*` names.

use stepops_error::{ErrorName, Named};

/// Everything an admin task can fail with. Messages say what was wrong and what to do; they
/// never contain the admin token (the client scrubs it from any text the service sends back).
#[derive(Debug, thiserror::Error)]
pub enum AdminError {
    /// The request (execution input or CLI arguments) is invalid. Nothing was sent.
    #[error("invalid input: {0}")]
    InvalidInput(String),

    /// The request names another environment than the stack's own. Nothing was sent.
    #[error(
        "wrong environment: the request is for `{requested}` but this stack serves `{stack}`; start the execution in the `{requested}` stack"
    )]
    WrongEnvironment {
        /// The environment the request names.
        requested: String,
        /// The stack's own environment.
        stack: String,
    },

    /// A prod request lacks `"confirm"` naming its target, or a request's `confirm` names
    /// another target. Nothing was sent.
    #[error("not confirmed: {0}")]
    NotConfirmed(String),

    /// The service refused the credentials (HTTP 401/403), or the token could not be read.
    #[error("unauthorized: {0}")]
    Unauthorized(String),

    /// The object (user, client, entity, feature, secret) does not exist (HTTP 404).
    #[error("not found: {0}")]
    NotFound(String),

    /// The object changed underneath (HTTP 409/412, for example a stale etag).
    #[error("conflict: {0}")]
    Conflict(String),

    /// Worth retrying: HTTP 5xx, a timeout, a connection failure, throttling.
    #[error("transient failure: {0}")]
    Transient(String),

    /// The service rejected the request for another reason (other HTTP 4xx).
    #[error("rejected by the service: {0}")]
    Rejected(String),

    /// A bug or an unexpected answer (a 2xx with a body that is not the documented JSON).
    #[error("internal error: {0}")]
    Internal(String),
}

impl AdminError {
    /// Shorthand for [`AdminError::InvalidInput`].
    pub fn invalid(msg: impl Into<String>) -> Self {
        AdminError::InvalidInput(msg.into())
    }
}

impl Named for AdminError {
    fn error_name(&self) -> ErrorName {
        match self {
            AdminError::InvalidInput(_) | AdminError::Rejected(_) => ErrorName::InvalidInput,
            AdminError::WrongEnvironment { .. } => ErrorName::WrongEnvironment,
            AdminError::NotConfirmed(_) => ErrorName::NotConfirmed,
            AdminError::Unauthorized(_) => ErrorName::Unauthorized,
            AdminError::NotFound(_) => ErrorName::NotFound,
            AdminError::Conflict(_) => ErrorName::Conflict,
            AdminError::Transient(_) => ErrorName::Transient,
            AdminError::Internal(_) => ErrorName::Internal,
        }
    }
}
