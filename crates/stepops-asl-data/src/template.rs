//! Payload templates (`Parameters`, `ResultSelector`, `ItemSelector`, `Arguments`).

use crate::{DataError, Scope, Value};

/// Evaluates a payload template, recursively through objects and arrays.
pub fn evaluate(template: &Value, scope: &Scope) -> Result<Value, DataError> {
    let _ = scope;
    Ok(template.clone())
}

/// Validates a template at load time (every `.$` value is a valid path or intrinsic call).
pub fn validate(template: &Value) -> Result<(), String> {
    let _ = template;
    Ok(())
}
