//! Errors of the local engine.

use stepops_error::{ErrorName, Named};

/// What went wrong starting or using the local engine.
#[derive(Debug, thiserror::Error)]
pub enum LocalError {
    /// `template.yaml` (or a definition file it names) could not be used.
    #[error("template {path}: {message}")]
    Template {
        /// The template file.
        path: String,
        /// What is wrong, and what to do.
        message: String,
    },
    /// A definition failed to load.
    #[error("state machine {name}: {message}")]
    Definition {
        /// The state machine's name (or file).
        name: String,
        /// What is wrong.
        message: String,
    },
    /// The SQLite store under the state directory failed.
    #[error("execution store {path}: {message}")]
    Store {
        /// The database file.
        path: String,
        /// The SQLite error.
        message: String,
    },
    /// The HTTP server could not start.
    #[error("cannot serve the Step Functions API on {addr}: {source}")]
    Bind {
        /// The address tried.
        addr: String,
        /// Why.
        source: std::io::Error,
    },
    /// A call through the library API was refused, as the HTTP API would refuse it.
    /// (Transparent: printed once, not again as its own source.)
    #[error(transparent)]
    Api(#[from] ApiError),
    /// Input/output on the state directory.
    #[error("{path}: {source}")]
    Io {
        /// The path.
        path: String,
        /// Why.
        source: std::io::Error,
    },
    /// `stepops local bench` could not run a measurement.
    #[error("benchmark: {0}")]
    Bench(String),
}

impl Named for LocalError {
    fn error_name(&self) -> ErrorName {
        match self {
            LocalError::Template { .. } | LocalError::Definition { .. } => ErrorName::InvalidInput,
            LocalError::Api(e) if e.kind.is_client_error() => ErrorName::InvalidInput,
            LocalError::Bind { .. } | LocalError::Io { .. } => ErrorName::Transient,
            _ => ErrorName::Internal,
        }
    }
}

/// The Step Functions API's error codes (the `__type` of a 400 answer).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[allow(missing_docs)]
pub enum ApiErrorKind {
    ActivityDoesNotExist,
    ExecutionAlreadyExists,
    ExecutionDoesNotExist,
    ExecutionNotRedrivable,
    InvalidArn,
    InvalidDefinition,
    InvalidExecutionInput,
    InvalidName,
    InvalidOutput,
    InvalidToken,
    StateMachineAlreadyExists,
    StateMachineDoesNotExist,
    TaskDoesNotExist,
    TaskTimedOut,
    ValidationException,
    UnknownOperationException,
    SerializationException,
    InternalFailure,
}

impl ApiErrorKind {
    /// The wire name (`__type`).
    pub fn as_str(self) -> &'static str {
        use ApiErrorKind::*;
        match self {
            ActivityDoesNotExist => "ActivityDoesNotExist",
            ExecutionAlreadyExists => "ExecutionAlreadyExists",
            ExecutionDoesNotExist => "ExecutionDoesNotExist",
            ExecutionNotRedrivable => "ExecutionNotRedrivable",
            InvalidArn => "InvalidArn",
            InvalidDefinition => "InvalidDefinition",
            InvalidExecutionInput => "InvalidExecutionInput",
            InvalidName => "InvalidName",
            InvalidOutput => "InvalidOutput",
            InvalidToken => "InvalidToken",
            StateMachineAlreadyExists => "StateMachineAlreadyExists",
            StateMachineDoesNotExist => "StateMachineDoesNotExist",
            TaskDoesNotExist => "TaskDoesNotExist",
            TaskTimedOut => "TaskTimedOut",
            ValidationException => "ValidationException",
            UnknownOperationException => "UnknownOperationException",
            SerializationException => "SerializationException",
            InternalFailure => "InternalFailure",
        }
    }

    /// 400 for the caller's mistakes, 500 for the engine's.
    pub fn is_client_error(self) -> bool {
        self != ApiErrorKind::InternalFailure
    }
}

/// An API error: `{"__type": kind, "message": message}`.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{}: {message}", kind.as_str())]
pub struct ApiError {
    /// The code.
    pub kind: ApiErrorKind,
    /// The human message.
    pub message: String,
}

impl ApiError {
    /// An error of this kind.
    pub fn new(kind: ApiErrorKind, message: impl Into<String>) -> Self {
        ApiError {
            kind,
            message: message.into(),
        }
    }
}
