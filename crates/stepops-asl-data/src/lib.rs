//! The pure data layer of the Amazon States Language in JSONPath mode.
//!
//! * [`path`]: JSONPath (Jayway semantics, as AWS Step Functions uses) and `ResultPath` writes;
//! * [`template`]: payload templates (`Parameters`, `ResultSelector`, `ItemSelector`) with `.$` keys;
//! * [`intrinsic`]: every `States.*` intrinsic function;
//! * [`choice`]: Choice rules and all their operators;
//! * [`assign`]: `Assign` (variables) evaluation.
//!
//! Errors are [`DataError`]s that carry the Step Functions error name (`States.Runtime`,
//! `States.IntrinsicFailure`, …) and AWS's cause wording. The contract with the interpreter is
//! `docs/dev/asl-data-api.md`.

pub use serde_json::{Map, Value};

pub mod assign;
pub mod choice;
pub mod intrinsic;
pub mod path;
pub mod template;

/// A data-processing failure, named as Step Functions names it.
///
/// `error` is e.g. `"States.Runtime"`, `"States.IntrinsicFailure"`. `cause` is AWS's wording
/// without the "An error occurred while executing the state 'X' (entered at the event id #N). "
/// prefix, which the interpreter adds.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("{error}: {cause}")]
pub struct DataError {
    /// The Step Functions error name.
    pub error: String,
    /// AWS's cause text (without the state prefix).
    pub cause: String,
}

impl DataError {
    /// A `States.Runtime` error.
    pub fn runtime(cause: impl Into<String>) -> Self {
        DataError {
            error: "States.Runtime".to_owned(),
            cause: cause.into(),
        }
    }

    /// A `States.IntrinsicFailure` error.
    pub fn intrinsic(cause: impl Into<String>) -> Self {
        DataError {
            error: "States.IntrinsicFailure".to_owned(),
            cause: cause.into(),
        }
    }
}

impl stepops_error::Named for DataError {
    /// Data errors come from the definition or the data it processes: retrying the same input
    /// fails the same way.
    fn error_name(&self) -> stepops_error::ErrorName {
        stepops_error::ErrorName::InvalidInput
    }
}

/// What a path or template can see.
#[derive(Debug, Clone, Copy)]
pub struct Scope<'a> {
    /// `$`: the effective input of the step.
    pub input: &'a Value,
    /// `$$`: the context object (Execution, State, StateMachine, Task, Map).
    pub context: &'a Value,
    /// `$name`: variables (Assign).
    pub variables: &'a Map<String, Value>,
}

impl<'a> Scope<'a> {
    /// A scope with the given input, context and variables.
    pub fn new(input: &'a Value, context: &'a Value, variables: &'a Map<String, Value>) -> Self {
        Scope {
            input,
            context,
            variables,
        }
    }

    /// The same scope with another `$`.
    pub fn with_input(&self, input: &'a Value) -> Scope<'a> {
        Scope { input, ..*self }
    }
}

/// Renders a value as AWS renders JSON in causes (compact).
pub(crate) fn to_json(value: &Value) -> String {
    serde_json::to_string(value).unwrap_or_default()
}
