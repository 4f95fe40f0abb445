//! `Assign` (variables) evaluation in JSONPath mode.
//!
//! `Assign` is an object whose top-level keys name variables. A key ending in `.$` takes the
//! value of a path or intrinsic call; other values are templates (nested `.$` keys are evaluated
//! as in `Parameters`). Every assignment sees the values from before the state: the caller passes
//! the old variables in the scope and merges the result afterwards.

use crate::{DataError, Map, Scope, Value, template, to_json};

/// Maximum total size (bytes of JSON) of the variables one `Assign` may set, as AWS limits it.
pub const MAX_ASSIGN_BYTES: usize = 256 * 1024;

/// Evaluates an `Assign` object; every assignment sees the values from before.
pub fn evaluate(assign: &Value, scope: &Scope) -> Result<Map<String, Value>, DataError> {
    let Value::Object(m) = assign else {
        return Err(DataError::runtime(format!(
            "The field 'Assign' must be an object, got {}",
            to_json(assign)
        )));
    };
    let mut out = Map::with_capacity(m.len());
    for (key, value) in m {
        let (name, v) = match key.strip_suffix(".$") {
            Some(name) => (name, template::evaluate_dynamic(key, value, scope)?),
            None => (key.as_str(), template::evaluate(value, scope)?),
        };
        out.insert(name.to_owned(), v);
    }
    let size = to_json(&Value::Object(out.clone())).len();
    if size > MAX_ASSIGN_BYTES {
        return Err(DataError {
            error: "States.DataLimitExceeded".to_owned(),
            cause: format!(
                "The variables assigned have a size of {size} bytes, more than the {MAX_ASSIGN_BYTES} bytes allowed"
            ),
        });
    }
    Ok(out)
}

/// Validates an `Assign` object at load time: an object whose keys are valid variable names and
/// whose values are valid templates.
pub fn validate(assign: &Value) -> Result<(), String> {
    let Value::Object(m) = assign else {
        return Err(format!(
            "'Assign' must be an object, got {}",
            to_json(assign)
        ));
    };
    for (key, value) in m {
        let name = key.strip_suffix(".$").unwrap_or(key);
        let mut chars = name.chars();
        let valid = chars.next().is_some_and(|c| c.is_alphabetic() || c == '_')
            && chars.all(|c| c.is_alphanumeric() || c == '_');
        if !valid {
            return Err(format!(
                "'{name}' is not a valid variable name (a letter or '_' followed by letters, digits or '_')"
            ));
        }
        template::validate(&Value::Object(Map::from_iter([(
            key.clone(),
            value.clone(),
        )])))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn assigns_see_old_values() {
        let input = json!({"answer": 42});
        let vars: Map<String, Value> = serde_json::from_value(json!({"x": 1})).unwrap();
        let scope = Scope::new(&input, &Value::Null, &vars);
        let out = evaluate(
            &json!({"x": 2, "old.$": "$x", "a.$": "$.answer", "const": "$.not.a.path",
                    "nested": {"f.$": "States.Format('{}', $x)"}}),
            &scope,
        )
        .unwrap();
        assert_eq!(
            Value::Object(out),
            json!({"x": 2, "old": 1, "a": 42, "const": "$.not.a.path", "nested": {"f": "1"}})
        );
    }

    #[test]
    fn errors() {
        let input = json!({});
        let vars = Map::new();
        let scope = Scope::new(&input, &Value::Null, &vars);
        assert!(evaluate(&json!([1]), &scope).is_err());
        assert_eq!(
            evaluate(&json!({"a.$": "$.b"}), &scope).unwrap_err().error,
            "States.Runtime"
        );
        assert!(validate(&json!({"1bad": 1})).is_err());
        assert!(validate(&json!({"ok.$": "$.a", "also_ok": {"n.$": "$$"}})).is_ok());
        assert!(validate(&json!({"bad.$": "nope"})).is_err());
    }
}
