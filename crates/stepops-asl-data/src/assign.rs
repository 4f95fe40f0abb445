//! `Assign` (variables) evaluation in JSONPath mode.

use crate::{DataError, Map, Scope, Value};

/// Evaluates an `Assign` object; every assignment sees the values from before.
pub fn evaluate(assign: &Value, scope: &Scope) -> Result<Map<String, Value>, DataError> {
    let _ = scope;
    match assign {
        Value::Object(m) => Ok(m.clone()),
        _ => Err(DataError::runtime("Assign must be an object")),
    }
}
