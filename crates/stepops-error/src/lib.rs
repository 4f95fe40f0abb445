//! stepops' shared vocabulary: the error names stepops reports, and the few concepts every
//! layer speaks of.
//!
//! - [`ErrorName`], [`Named`], [`TaskFailure`]: every failure a stepops step can report carries
//!   one of the names below. State machines `Retry` on [`ErrorName::Transient`] (and on
//!   `States.HeartbeatTimeout` / `States.Timeout`) and `Catch` the rest; the names are part of
//!   the public interface and documented once, in `docs/errors.md`. Domain error types implement
//!   [`Named`] so that a runner, a Lambda handler or the CLI can turn any of them into
//!   `{"error": name, "cause": message}` without knowing the type.
//! - [`Environment`] (`dev`, `prod`).
//! - [`TargetRef`], the database a step names (`{"secret": NAME}`, `{"parameter": NAME}`,
//!   `{"url": URL}`), and [`StackEnvironment`], the stack's allow-list that validate-input and
//!   the runner both check it against.
//! - [`DatabaseUrl`] and [`redact`], the one redactor of credentials in text.
//! - [`MigrationConfig`], the migration's configuration, read by the engine and validate-input.

pub mod config;
pub mod environment;
pub mod names;
pub mod release;
pub mod target;
pub mod url;

pub use config::{
    ConfigProblem, MigrationConfig, StatusConfig, TableConfig, TrackingConfig,
    synapse_key_parameters,
};
pub use environment::Environment;
pub use release::{ChunkFailure, ReleaseOutcome};
pub use target::{
    AllowedTarget, StackEnvironment, TARGET_SHAPE, TargetKind, TargetRef, TargetRefusal,
    json_type_name,
};
pub use url::{DatabaseUrl, UrlError, check_inline_url, has_inline_password, redact};

use std::fmt;

/// A stable, documented error name (`Stepops.*`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ErrorName {
    /// Worth retrying as is: a network failure, a timeout, a 5xx, a serialisation failure, a
    /// lock conflict, a database that is restarting.
    Transient,
    /// The input (execution input, CLI arguments, configuration file) is invalid. Fix the input;
    /// retrying the same input fails the same way. Nothing was changed.
    InvalidInput,
    /// A target belongs to another environment than the stack's own (for example a prod
    /// database from a dev stack). Nothing was changed.
    WrongEnvironment,
    /// The source and destination do not have the same shape (missing table, different columns
    /// or column types, no usable key). Nothing was changed.
    SchemaMismatch,
    /// Credentials were refused (wrong password, expired or revoked token, missing privilege).
    Unauthorized,
    /// A TLS connection could not be made as the URL asks (certificate not trusted, wrong host
    /// name, a server without TLS under `sslmode=require`, a server that refuses plaintext).
    /// Fix the URL's `ssl*` parameters or the server; retrying fails the same way.
    TlsFailed,
    /// The named object (user, client, entity, secret, table) does not exist.
    NotFound,
    /// The object changed underneath (stale etag, concurrent update). Re-read and try again.
    Conflict,
    /// Another run holds what this one needs (a destination's lease): the cause names it.
    /// Wait for it to end, or stop it; retrying at once fails the same way.
    Busy,
    /// A migration did not converge within its round limit: the source kept changing.
    NotConverged,
    /// A prod admin task was started without `"confirm"` naming its target (the target typed
    /// again), or with one that names another target. Nothing was sent.
    NotConfirmed,
    /// An ops job's command ended with a non-zero exit code (or a signal), or its outcome is
    /// unknown (a non-idempotent step whose runner died while it ran): the cause says which,
    /// with the exit code and the command's last output lines, secrets masked.
    JobFailed,
    /// An ops job's step ran past its timeout: its whole process group was stopped (TERM, a
    /// grace period, then KILL).
    JobTimedOut,
    /// A remote service failed a request it accepted (an asynchronous job ended FAILED) or
    /// answered in a shape stepops cannot read; the cause carries the service's message.
    /// Not retried: the same request usually fails the same way.
    ServiceFailed,
    /// A bug or an unexpected state in stepops itself. Report it.
    Internal,
}

impl ErrorName {
    /// All names, in documentation order.
    pub const ALL: [ErrorName; 15] = [
        ErrorName::Transient,
        ErrorName::InvalidInput,
        ErrorName::WrongEnvironment,
        ErrorName::SchemaMismatch,
        ErrorName::Unauthorized,
        ErrorName::TlsFailed,
        ErrorName::NotFound,
        ErrorName::Conflict,
        ErrorName::Busy,
        ErrorName::NotConverged,
        ErrorName::NotConfirmed,
        ErrorName::JobFailed,
        ErrorName::JobTimedOut,
        ErrorName::ServiceFailed,
        ErrorName::Internal,
    ];

    /// The wire name, as state machines see it in `ErrorEquals`.
    pub const fn as_str(self) -> &'static str {
        match self {
            ErrorName::Transient => "Stepops.Transient",
            ErrorName::InvalidInput => "Stepops.InvalidInput",
            ErrorName::WrongEnvironment => "Stepops.WrongEnvironment",
            ErrorName::SchemaMismatch => "Stepops.SchemaMismatch",
            ErrorName::Unauthorized => "Stepops.Unauthorized",
            ErrorName::TlsFailed => "Stepops.TlsFailed",
            ErrorName::NotFound => "Stepops.NotFound",
            ErrorName::Conflict => "Stepops.Conflict",
            ErrorName::Busy => "Stepops.Busy",
            ErrorName::NotConverged => "Stepops.NotConverged",
            ErrorName::NotConfirmed => "Stepops.NotConfirmed",
            ErrorName::JobFailed => "Stepops.JobFailed",
            ErrorName::JobTimedOut => "Stepops.JobTimedOut",
            ErrorName::ServiceFailed => "Stepops.ServiceFailed",
            ErrorName::Internal => "Stepops.Internal",
        }
    }

    /// Parses a wire name back (`"Stepops.Transient"` → `Transient`).
    pub fn parse(name: &str) -> Option<ErrorName> {
        ErrorName::ALL.into_iter().find(|n| n.as_str() == name)
    }

    /// Whether a state machine should retry this error.
    pub const fn is_retryable(self) -> bool {
        matches!(self, ErrorName::Transient)
    }

    /// The process exit code the CLI uses for this error (2 for bad input, as most tools do).
    pub const fn exit_code(self) -> i32 {
        match self {
            ErrorName::InvalidInput | ErrorName::WrongEnvironment | ErrorName::NotConfirmed => 2,
            ErrorName::Transient => 75,    // EX_TEMPFAIL
            ErrorName::Unauthorized => 77, // EX_NOPERM
            _ => 1,
        }
    }
}

impl fmt::Display for ErrorName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// An error that knows its [`ErrorName`].
pub trait Named: std::error::Error {
    /// The name a state machine retries or catches on.
    fn error_name(&self) -> ErrorName;
}

/// An error as Step Functions carries it: a name and a human cause.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TaskFailure {
    /// The `error` field (`Stepops.*`, or `States.*` for engine errors).
    pub error: String,
    /// The `cause` field: what was wrong and what to do.
    pub cause: String,
}

impl TaskFailure {
    /// Builds a failure from any named error, with its full source chain in the cause.
    pub fn from_error<E: Named + ?Sized>(err: &E) -> Self {
        let mut cause = err.to_string();
        let mut source = err.source();
        while let Some(s) = source {
            let text = s.to_string();
            if !cause.contains(&text) {
                cause.push_str(": ");
                cause.push_str(&text);
            }
            source = s.source();
        }
        TaskFailure {
            error: err.error_name().as_str().to_owned(),
            cause,
        }
    }
}

impl fmt::Display for TaskFailure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.error, self.cause)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug)]
    struct Inner;
    impl fmt::Display for Inner {
        fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("connection refused")
        }
    }
    impl std::error::Error for Inner {}

    #[derive(Debug)]
    struct Outer(Inner);
    impl fmt::Display for Outer {
        fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("cannot reach source database")
        }
    }
    impl std::error::Error for Outer {
        fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
            Some(&self.0)
        }
    }
    impl Named for Outer {
        fn error_name(&self) -> ErrorName {
            ErrorName::Transient
        }
    }

    #[test]
    fn names_round_trip_and_are_unique() {
        for name in ErrorName::ALL {
            assert_eq!(ErrorName::parse(name.as_str()), Some(name));
            assert!(name.as_str().starts_with("Stepops."));
        }
        let mut all: Vec<_> = ErrorName::ALL.iter().map(|n| n.as_str()).collect();
        all.sort();
        all.dedup();
        assert_eq!(all.len(), ErrorName::ALL.len());
        assert_eq!(ErrorName::parse("States.ALL"), None);
    }

    #[test]
    fn only_transient_is_retryable() {
        let retryable: Vec<_> = ErrorName::ALL
            .into_iter()
            .filter(|n| n.is_retryable())
            .collect();
        assert_eq!(retryable, vec![ErrorName::Transient]);
    }

    #[test]
    fn task_failure_carries_the_source_chain() {
        let f = TaskFailure::from_error(&Outer(Inner));
        assert_eq!(f.error, "Stepops.Transient");
        assert_eq!(f.cause, "cannot reach source database: connection refused");
    }
}
