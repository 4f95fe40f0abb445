//! The migration's errors, each mapped to a documented `Stepops.*` name.

use stepops_error::{ErrorName, Named};

/// Everything that can go wrong in a migration. Messages never contain a password: every URL
/// in them has been through [`crate::redact_url`].
#[derive(Debug, thiserror::Error)]
pub enum MigrateError {
    /// A URL, option or configuration file is invalid.
    #[error("{0}")]
    InvalidInput(String),
    /// The database could not be reached (network, server down, restarting).
    #[error("cannot reach {target}: {reason}. Check the host, port and that the server runs")]
    Unreachable {
        /// Redacted URL.
        target: String,
        /// What the driver said.
        reason: String,
    },
    /// Credentials refused or a privilege missing.
    #[error("{target}: {reason}")]
    Unauthorized {
        /// Redacted URL.
        target: String,
        /// What was refused and what to grant.
        reason: String,
    },
    /// A TLS failure retrying cannot fix (untrusted certificate, wrong host name, a server
    /// without TLS under `sslmode=require`, a server that refuses plaintext).
    #[error("{target}: {reason}")]
    Tls {
        /// Redacted URL.
        target: String,
        /// Which failure, and what to change.
        reason: String,
    },
    /// Another run holds the destination (its lease): the message names it.
    #[error("{0}")]
    Busy(String),
    /// A database (or SQLite file) does not exist.
    #[error("{target}: {reason}")]
    NotFound {
        /// Redacted URL.
        target: String,
        /// What is missing.
        reason: String,
    },
    /// Source and destination differ in shape, or a table has no usable range key.
    #[error("schema mismatch: {0}")]
    SchemaMismatch(String),
    /// The source kept changing: still different after the round limit.
    #[error(
        "not converged after {rounds} round(s): still different: {}. Run again at a quieter time, raise --max-rounds, or make the source read-only",
        tables.join(", ")
    )]
    NotConverged {
        /// Rounds of copying done.
        rounds: u32,
        /// Tables still different.
        tables: Vec<String>,
    },
    /// A database error worth retrying (serialisation failure, deadlock, lost connection).
    #[error("{target}: {reason} (transient, retry)")]
    Transient {
        /// Redacted URL.
        target: String,
        /// What happened.
        reason: String,
    },
    /// The state a step relies on was broken by someone else (a cut-over's source was
    /// written during the run). Retrying does not help; the message says what to do.
    #[error("{0}")]
    Conflict(String),
    /// Anything unexpected: a bug or a database error that retrying will not fix.
    #[error("{0}")]
    Internal(String),
}

impl Named for MigrateError {
    fn error_name(&self) -> ErrorName {
        match self {
            MigrateError::InvalidInput(_) => ErrorName::InvalidInput,
            MigrateError::Unreachable { .. } | MigrateError::Transient { .. } => {
                ErrorName::Transient
            }
            MigrateError::Unauthorized { .. } => ErrorName::Unauthorized,
            MigrateError::Tls { .. } => ErrorName::TlsFailed,
            MigrateError::Busy(_) => ErrorName::Busy,
            MigrateError::NotFound { .. } => ErrorName::NotFound,
            MigrateError::SchemaMismatch(_) => ErrorName::SchemaMismatch,
            MigrateError::NotConverged { .. } => ErrorName::NotConverged,
            MigrateError::Conflict(_) => ErrorName::Conflict,
            MigrateError::Internal(_) => ErrorName::Internal,
        }
    }
}

/// Result with [`MigrateError`].
pub type Result<T, E = MigrateError> = std::result::Result<T, E>;

impl From<stepops_error::ConfigProblem> for MigrateError {
    fn from(e: stepops_error::ConfigProblem) -> Self {
        MigrateError::InvalidInput(e.0)
    }
}

impl From<stepops_error::UrlError> for MigrateError {
    fn from(e: stepops_error::UrlError) -> Self {
        MigrateError::InvalidInput(e.0)
    }
}

impl From<tokio::task::JoinError> for MigrateError {
    fn from(e: tokio::task::JoinError) -> Self {
        MigrateError::Internal(format!("a worker task failed: {e}"))
    }
}
