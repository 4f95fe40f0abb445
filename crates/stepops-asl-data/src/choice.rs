//! Choice rules.

use crate::{DataError, Scope, Value};

/// A parsed Choice rule (top-level rules carry `Next`; nested ones in And/Or/Not do not).
#[derive(Debug, Clone, PartialEq)]
pub struct Rule {
    next: Option<String>,
}

impl Rule {
    /// Parses one rule object; `top_level` requires `Next`.
    pub fn parse(value: &Value, top_level: bool) -> Result<Rule, String> {
        let next = value.get("Next").and_then(Value::as_str).map(str::to_owned);
        if top_level && next.is_none() {
            return Err("a top-level Choice rule needs a string 'Next'".to_owned());
        }
        Ok(Rule { next })
    }

    /// The `Next` state of a top-level rule.
    pub fn next(&self) -> Option<&str> {
        self.next.as_deref()
    }

    /// Evaluates the rule against the step's input (and variables, context).
    pub fn matches(&self, scope: &Scope) -> Result<bool, DataError> {
        let _ = scope;
        Ok(false)
    }
}
