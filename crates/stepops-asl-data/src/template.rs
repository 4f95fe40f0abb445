//! Payload templates (`Parameters`, `ResultSelector`, `ItemSelector`, `Arguments`).
//!
//! A key ending in `.$` holds a path (`$…`, `$$…`, `$var…`) or an intrinsic call; its result is
//! stored under the key without the suffix. Other values are copied, recursing through objects
//! and arrays.

use crate::path::{JsonPath, Root};
use crate::{DataError, Map, Scope, Value, intrinsic, to_json};

/// Evaluates a payload template, recursively through objects and arrays.
pub fn evaluate(template: &Value, scope: &Scope) -> Result<Value, DataError> {
    match template {
        Value::Object(m) => {
            let mut out = Map::with_capacity(m.len());
            for (key, value) in m {
                if let Some(name) = key.strip_suffix(".$") {
                    let v = evaluate_dynamic(key, value, scope)?;
                    out.insert(name.to_owned(), v);
                } else {
                    out.insert(key.clone(), evaluate(value, scope)?);
                }
            }
            Ok(Value::Object(out))
        }
        Value::Array(a) => Ok(Value::Array(
            a.iter()
                .map(|v| evaluate(v, scope))
                .collect::<Result<_, _>>()?,
        )),
        other => Ok(other.clone()),
    }
}

/// Evaluates the value of one `.$` field (`field` is the key with its suffix, for causes).
pub fn evaluate_dynamic(field: &str, value: &Value, scope: &Scope) -> Result<Value, DataError> {
    let Value::String(expr) = value else {
        return Err(DataError::runtime(format!(
            "The value of the field '{field}' must be a string holding a JSONPath or an intrinsic function, got {}",
            to_json(value)
        )));
    };
    if intrinsic::is_intrinsic(expr) {
        return intrinsic::evaluate_for_field(expr, Some(field), scope);
    }
    let path = JsonPath::parse(expr).map_err(|e| {
        DataError::runtime(format!(
            "The value for the field '{field}' must be a valid JSONPath or a valid intrinsic function call: {e}"
        ))
    })?;
    path.read(scope)
        .ok_or_else(|| path_not_found(&path, field, scope))
}

/// AWS's cause for a path in a `.$` field (or `ErrorPath`, `CausePath`, …) that matches nothing.
pub fn path_not_found(path: &JsonPath, field: &str, scope: &Scope) -> DataError {
    match path.root() {
        Root::Variable(name) if !scope.variables.contains_key(name) => DataError::runtime(format!(
            "The JSONPath '{}' specified for the field '{field}' could not be found: the variable '{name}' is not assigned",
            path.as_str()
        )),
        _ => DataError::runtime(format!(
            "The JSONPath '{}' specified for the field '{field}' could not be found in the input '{}'",
            path.as_str(),
            to_json(scope.input)
        )),
    }
}

/// Validates a template at load time (every `.$` value is a valid path or intrinsic call).
pub fn validate(template: &Value) -> Result<(), String> {
    match template {
        Value::Object(m) => {
            for (key, value) in m {
                if let Some(name) = key.strip_suffix(".$") {
                    if m.contains_key(name) {
                        return Err(format!(
                            "The fields '{name}' and '{key}' would both produce the field '{name}'"
                        ));
                    }
                    validate_dynamic(key, value)?;
                } else {
                    validate(value)?;
                }
            }
            Ok(())
        }
        Value::Array(a) => a.iter().try_for_each(validate),
        _ => Ok(()),
    }
}

fn validate_dynamic(key: &str, value: &Value) -> Result<(), String> {
    let Value::String(expr) = value else {
        return Err(format!(
            "The value of the field '{key}' must be a string holding a JSONPath or an intrinsic function call, got {}",
            to_json(value)
        ));
    };
    if intrinsic::is_intrinsic(expr) {
        intrinsic::validate(expr)
            .map_err(|e| format!("The field '{key}' holds an invalid intrinsic function call: {e}"))
    } else {
        JsonPath::parse(expr).map(|_| ()).map_err(|e| {
            format!("The value for the field '{key}' must be a valid JSONPath or intrinsic function call: {e}")
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn evaluates_nested_templates() {
        let input = json!({"a": 1, "list": [1, 2]});
        let ctx = json!({"Execution": {"Id": "id-1"}});
        let vars: Map<String, Value> = serde_json::from_value(json!({"v": {"w": 3}})).unwrap();
        let scope = Scope::new(&input, &ctx, &vars);
        let t = json!({
            "lit": "x",
            "a.$": "$.a",
            "id.$": "$$.Execution.Id",
            "var.$": "$v.w",
            "n": {"deep.$": "$.list[*]", "arr": [{"x.$": "$.a"}, 5]},
            "f.$": "States.Format('{}-{}', $.a, $v.w)",
            "Comment": "kept"
        });
        assert!(validate(&t).is_ok());
        assert_eq!(
            evaluate(&t, &scope).unwrap(),
            json!({"lit": "x", "a": 1, "id": "id-1", "var": 3,
                   "n": {"deep": [1, 2], "arr": [{"x": 1}, 5]}, "f": "1-3", "Comment": "kept"})
        );
    }

    #[test]
    fn missing_path_cause() {
        let input = json!({"int-literal": 0});
        let vars = Map::new();
        let scope = Scope::new(&input, &Value::Null, &vars);
        let e = evaluate(&json!({"value.$": "$.no_such_jsonpath"}), &scope).unwrap_err();
        assert_eq!(e.error, "States.Runtime");
        assert_eq!(
            e.cause,
            "The JSONPath '$.no_such_jsonpath' specified for the field 'value.$' could not be found in the input '{\"int-literal\":0}'"
        );
    }

    #[test]
    fn validation_errors() {
        assert!(validate(&json!({"a.$": 1})).is_err());
        assert!(validate(&json!({"a.$": "nope"})).is_err());
        assert!(validate(&json!({"a": [{"b.$": "States.Bad()"}]})).is_err());
        assert!(validate(&json!({"a": "not a path, fine"})).is_ok());
        assert!(validate(&json!({"a": 1, "a.$": "$.a"})).is_err());
    }
}
