//! What a step is: the [`StepHandler`] trait the runner drives, and [`StepError`], the failure
//! it reports to Step Functions as a `Stepops.*` name and a cause.
//!
//! # Cancel safety
//!
//! The runner *drops* a step's future when a heartbeat answers that the task timed out (or no
//! longer exists) and when a drain runs out of time. A handler must therefore leave nothing
//! half-done when its future is dropped at any `.await`: do a chunk's destination writes inside
//! one transaction that commits only at the end (dropping an uncommitted transaction rolls it
//! back), and give work that runs on blocking threads a [`CancelOnDrop`] flag to check between
//! batches.

use std::fmt;
use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use serde_json::Value;
use stepops_error::{ErrorName, Named, TaskFailure};

/// A failure a step reports: the name a state machine retries or catches on, and a cause that
/// says what was wrong and what to do. Build one from any [`Named`] error with `?`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StepError {
    /// The `Stepops.*` name.
    pub name: ErrorName,
    /// What happened and what to do. Never holds a secret.
    pub cause: String,
}

impl StepError {
    /// A failure with this name and cause.
    pub fn new(name: ErrorName, cause: impl Into<String>) -> Self {
        StepError {
            name,
            cause: cause.into(),
        }
    }

    /// `Stepops.InvalidInput`: the task's arguments are wrong.
    pub fn invalid_input(cause: impl Into<String>) -> Self {
        Self::new(ErrorName::InvalidInput, cause)
    }

    /// `Stepops.Transient`: worth retrying as is.
    pub fn transient(cause: impl Into<String>) -> Self {
        Self::new(ErrorName::Transient, cause)
    }

    /// `Stepops.Internal`: a bug or an unexpected state in stepops.
    pub fn internal(cause: impl Into<String>) -> Self {
        Self::new(ErrorName::Internal, cause)
    }

    /// The failure as Step Functions carries it.
    pub fn to_task_failure(&self) -> TaskFailure {
        TaskFailure {
            error: self.name.as_str().to_owned(),
            cause: self.cause.clone(),
        }
    }
}

impl fmt::Display for StepError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.name, self.cause)
    }
}

impl std::error::Error for StepError {}

impl<E: Named> From<E> for StepError {
    fn from(err: E) -> Self {
        let failure = TaskFailure::from_error(&err);
        StepError {
            name: err.error_name(),
            cause: failure.cause,
        }
    }
}

/// Runs the steps named in activity task inputs (`{"step": NAME, "args": {…}}`).
///
/// Implementations must be cancel-safe (see the module docs): the runner drops the returned
/// future when the task timed out on the Step Functions side or when a drain runs out of time.
pub trait StepHandler: Send + Sync + 'static {
    /// Runs `step` with `args` and returns the step's output (the `SendTaskSuccess` output).
    /// An unknown step is `Stepops.InvalidInput`.
    fn run(&self, step: &str, args: Value)
    -> impl Future<Output = Result<Value, StepError>> + Send;
}

impl<H: StepHandler> StepHandler for Arc<H> {
    fn run(
        &self,
        step: &str,
        args: Value,
    ) -> impl Future<Output = Result<Value, StepError>> + Send {
        (**self).run(step, args)
    }
}

/// A flag that turns true when this guard is dropped: hand [`CancelOnDrop::flag`] to blocking
/// work (a `spawn_blocking` closure) so that it stops between batches, without committing, when
/// the runner drops the step's future.
#[derive(Debug, Default)]
pub struct CancelOnDrop(Arc<AtomicBool>);

impl CancelOnDrop {
    /// A new, not yet cancelled, guard.
    pub fn new() -> Self {
        Self::default()
    }

    /// The shared flag: `load(Ordering::Relaxed)` is true once the guard was dropped.
    pub fn flag(&self) -> Arc<AtomicBool> {
        self.0.clone()
    }
}

impl Drop for CancelOnDrop {
    fn drop(&mut self) {
        self.0.store(true, Ordering::Relaxed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, thiserror::Error)]
    #[error("table foo has no key")]
    struct NoKey;
    impl Named for NoKey {
        fn error_name(&self) -> ErrorName {
            ErrorName::SchemaMismatch
        }
    }

    #[test]
    fn named_errors_convert_with_their_name() {
        fn step() -> Result<(), StepError> {
            Err(NoKey)?
        }
        let err = step().unwrap_err();
        assert_eq!(err.name, ErrorName::SchemaMismatch);
        assert_eq!(err.cause, "table foo has no key");
        assert_eq!(err.to_task_failure().error, "Stepops.SchemaMismatch");
    }

    #[test]
    fn cancel_on_drop_sets_the_flag() {
        let guard = CancelOnDrop::new();
        let flag = guard.flag();
        assert!(!flag.load(Ordering::Relaxed));
        drop(guard);
        assert!(flag.load(Ordering::Relaxed));
    }
}
