//! Errors of the sample generator, named for Step Functions and the CLI.

use stepops_error::{ErrorName, Named};

/// A failure of `sample`, `create_schema` or `mutate`.
#[derive(Debug, thiserror::Error)]
pub enum SampleError {
    /// Bad arguments (URL, row count) or a destination that already has the tables.
    #[error("{0}")]
    InvalidInput(String),
    /// PostgreSQL refused or failed.
    #[error("PostgreSQL: {context}: {source}")]
    Postgres {
        /// What was being done (statement or step).
        context: String,
        /// The driver's error.
        source: tokio_postgres::Error,
    },
    /// A connection could not be made: invalid TLS settings, or a TLS failure.
    #[error("PostgreSQL: {context}: {source}")]
    Connect {
        /// What was being done.
        context: String,
        /// Why.
        source: stepops_pg::ConnectError,
    },
    /// SQLite failed.
    #[error("SQLite: {context}: {source}")]
    Sqlite {
        /// What was being done.
        context: String,
        /// The driver's error.
        source: rusqlite::Error,
    },
    /// A worker task died.
    #[error("internal: {0}")]
    Internal(String),
}

impl From<stepops_error::UrlError> for SampleError {
    fn from(e: stepops_error::UrlError) -> Self {
        SampleError::InvalidInput(e.0)
    }
}

impl SampleError {
    pub(crate) fn pg(context: String) -> impl FnOnce(tokio_postgres::Error) -> SampleError {
        move |source| SampleError::Postgres { context, source }
    }

    pub(crate) fn connect(context: String) -> impl FnOnce(stepops_pg::ConnectError) -> SampleError {
        move |source| match source {
            stepops_pg::ConnectError::Postgres(source) => SampleError::Postgres { context, source },
            source => SampleError::Connect { context, source },
        }
    }

    pub(crate) fn sqlite(context: String) -> impl FnOnce(rusqlite::Error) -> SampleError {
        move |source| SampleError::Sqlite { context, source }
    }
}

impl Named for SampleError {
    fn error_name(&self) -> ErrorName {
        match self {
            SampleError::InvalidInput(_) => ErrorName::InvalidInput,
            SampleError::Postgres { source, .. } => match source.code().map(|c| c.code()) {
                Some(c) if c.starts_with("28") || c == "42501" => ErrorName::Unauthorized,
                Some("3D000") | Some("42P01") => ErrorName::NotFound,
                Some(c) if c.starts_with("08") || c.starts_with("57P") || c == "40001" => {
                    ErrorName::Transient
                }
                Some("42P07") => ErrorName::InvalidInput,
                Some(_) => ErrorName::Internal,
                None => ErrorName::Transient, // connection-level failure (refused, closed)
            },
            SampleError::Connect { source, .. } => match source {
                stepops_pg::ConnectError::Tls(_) => ErrorName::TlsFailed,
                _ => ErrorName::InvalidInput,
            },
            SampleError::Sqlite { .. } | SampleError::Internal(_) => ErrorName::Internal,
        }
    }
}

/// The crate's result type.
pub type Result<T, E = SampleError> = std::result::Result<T, E>;
