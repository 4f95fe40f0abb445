//! Loading and validating a definition.

use serde_json::Value;

use crate::LoadError;

/// A parsed and validated state machine definition (JSONPath ASL).
#[derive(Debug, Clone)]
pub struct Definition {
    pub(crate) raw: Value,
}

impl Definition {
    /// Parses and validates (schema, reachable states, Next/Default targets exist, terminal
    /// states, unsupported features such as JSONata refused) with errors naming the state.
    pub fn parse(json: &str) -> Result<Definition, LoadError> {
        let raw: Value = serde_json::from_str(json).map_err(|e| LoadError::Json(e.to_string()))?;
        Ok(Definition { raw })
    }

    /// The definition's `TimeoutSeconds` (execution-level), if any.
    pub fn timeout_seconds(&self) -> Option<u64> {
        self.raw.get("TimeoutSeconds").and_then(Value::as_u64)
    }

    /// Every distinct Task `Resource` the definition uses (activity ARNs, Lambda ARNs, …),
    /// for the engine to check or register before running.
    pub fn task_resources(&self) -> Vec<String> {
        Vec::new()
    }
}
