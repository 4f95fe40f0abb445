//! The Synapse stack's errors, each mapped to a documented `Stepops.*` name. Messages name the
//! stack by its redacted base URL and never carry the service key's secret.

use stepops_error::{ErrorName, Named};

/// Everything that can go wrong talking to the service or migrating between two of its stacks.
#[derive(Debug, thiserror::Error)]
pub enum SynapseError {
    /// A URL or configuration value is invalid; nothing was sent.
    #[error("{0}")]
    InvalidInput(String),
    /// HTTP 401 or 403: the service key or secret was refused.
    #[error(
        "{stack}: HTTP {status} on {what}: the service key was refused ({message}). Check the key and the secret in the stack's Secrets Manager secret and that the key is an admin key of this stack"
    )]
    Unauthorized {
        /// Redacted base URL.
        stack: String,
        /// 401 or 403.
        status: u16,
        /// The request.
        what: String,
        /// The service's reason.
        message: String,
    },
    /// 5xx, a refused connection or a timeout: worth retrying.
    #[error(
        "{stack}: {what}: {reason}; retried with backoff (check the stack is up if it persists)"
    )]
    Unavailable {
        /// Redacted base URL.
        stack: String,
        /// The request.
        what: String,
        /// Status or transport error.
        reason: String,
    },
    /// The service answered in a shape stepops cannot read.
    #[error(
        "{stack}: {what}: unexpected answer: {reason}. The stack may run an incompatible version of the service"
    )]
    Malformed {
        /// Redacted base URL.
        stack: String,
        /// The request.
        what: String,
        /// What was wrong.
        reason: String,
    },
    /// An asynchronous admin job ended FAILED.
    #[error(
        "{stack}: admin job {job_id} ({what}) FAILED on the service: {message}. Fix the cause on the service, then redrive: the chunk resumes from its recorded state"
    )]
    JobFailed {
        /// Redacted base URL.
        stack: String,
        /// The job's id.
        job_id: String,
        /// The request (`backup NODE [1, 100]`).
        what: String,
        /// The service's `errorMessage`.
        message: String,
    },
    /// Any other 4xx answer.
    #[error("{stack}: HTTP {status} on {what}: {message}")]
    Refused {
        /// Redacted base URL.
        stack: String,
        /// The status.
        status: u16,
        /// The request.
        what: String,
        /// The service's reason.
        message: String,
    },
    /// Source and destination do not list the same types.
    #[error("type mismatch: {0}")]
    TypeMismatch(String),
    /// The chunk journal (the object store) failed.
    #[error("chunk journal: {0}")]
    Journal(String),
}

impl Named for SynapseError {
    fn error_name(&self) -> ErrorName {
        match self {
            SynapseError::InvalidInput(_) => ErrorName::InvalidInput,
            SynapseError::Unauthorized { .. } => ErrorName::Unauthorized,
            SynapseError::Unavailable { .. } | SynapseError::Journal(_) => ErrorName::Transient,
            SynapseError::Malformed { .. } | SynapseError::JobFailed { .. } => {
                ErrorName::ServiceFailed
            }
            SynapseError::Refused { status: 404, .. } => ErrorName::NotFound,
            SynapseError::Refused {
                status: 409 | 412, ..
            } => ErrorName::Conflict,
            SynapseError::Refused { .. } => ErrorName::ServiceFailed,
            SynapseError::TypeMismatch(_) => ErrorName::SchemaMismatch,
        }
    }
}

/// Results of this crate.
pub type Result<T, E = SynapseError> = std::result::Result<T, E>;
