//! Intrinsic functions (`States.*`).

use crate::{DataError, Scope, Value};

/// Parses and evaluates one intrinsic call, e.g. `States.Format('{} {}', $.a, $$.b)`.
pub fn evaluate(expression: &str, scope: &Scope) -> Result<Value, DataError> {
    let _ = scope;
    Err(DataError::intrinsic(format!(
        "not implemented yet: {expression}"
    )))
}

/// Whether the text is an intrinsic function call (`States.Name(…)`).
pub fn is_intrinsic(expression: &str) -> bool {
    expression.trim_start().starts_with("States.")
}
