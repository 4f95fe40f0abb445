//! The DynamoDB optimized integration (`arn:aws:states:::dynamodb:putItem`, `getItem`,
//! `deleteItem`, request-response) over in-memory tables: the tables of the template
//! (`AWS::DynamoDB::Table`, keyed by their `KeySchema`), kept for the engine's life. Enough of
//! DynamoDB for conditional writes (a lock): items in the attribute-value format (`{"S": …}`,
//! `{"N": …}`, `{"BOOL": …}`), and a `ConditionExpression` of `attribute_exists(a)`,
//! `attribute_not_exists(a)`, `a = :v`, `a <> :v`, `a < :v` and `a > :v` terms (order: numbers
//! for `N`, byte order for `S`, as DynamoDB compares) joined by `AND` / `OR` (`AND` binds
//! tighter; no parentheses), with `ExpressionAttributeNames` and `ExpressionAttributeValues`.
//! A failed condition is `DynamoDB.ConditionalCheckFailedException`, an unknown table
//! `DynamoDB.ResourceNotFoundException`, anything else the engine cannot evaluate
//! `DynamoDB.ValidationException`, as in AWS.

use std::collections::BTreeMap;
use std::sync::Mutex;

use serde_json::{Map, Value, json};
use stepops_asl::TaskError;

/// A table of the template: its name and its key attributes (hash, then range).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TableSpec {
    /// Its logical id.
    pub logical_id: String,
    /// Its `TableName`.
    pub name: String,
    /// The `KeySchema`'s attribute names.
    pub key: Vec<String>,
}

/// One table: its key attributes and its items by key.
type Table = (Vec<String>, BTreeMap<String, Map<String, Value>>);

/// The engine's tables.
#[derive(Debug, Default)]
pub(crate) struct Tables {
    tables: Mutex<BTreeMap<String, Table>>,
}

fn validation(cause: impl Into<String>) -> TaskError {
    TaskError::new("DynamoDB.ValidationException", cause)
}

impl Tables {
    /// Declares the template's tables (existing items are kept).
    pub(crate) fn declare(&self, specs: &[TableSpec]) {
        let mut t = self.tables.lock().expect("tables lock");
        for s in specs {
            t.entry(s.name.clone())
                .or_insert_with(|| (s.key.clone(), BTreeMap::new()));
        }
    }

    /// Runs `putItem`, `getItem` or `deleteItem` with the state's `Parameters`.
    pub(crate) fn call(&self, action: &str, params: &Value) -> Result<Value, TaskError> {
        let table = params
            .get("TableName")
            .and_then(Value::as_str)
            .ok_or_else(|| validation("TableName is required (a string)."))?;
        let mut tables = self.tables.lock().expect("tables lock");
        let Some((key_names, items)) = tables.get_mut(table) else {
            return Err(TaskError::new(
                "DynamoDB.ResourceNotFoundException",
                format!(
                    "Requested resource not found: Table: {table} not found (the local engine \
                     knows the template's AWS::DynamoDB::Table resources)"
                ),
            ));
        };
        let source = if action == "putItem" { "Item" } else { "Key" };
        let given = params
            .get(source)
            .and_then(Value::as_object)
            .ok_or_else(|| {
                validation(format!(
                    "{source} is required (an object of attribute values)."
                ))
            })?;
        let key = key_of(key_names, given, action != "putItem")?;
        let current = items.get(&key);
        if let Some(expr) = params.get("ConditionExpression") {
            let expr = expr
                .as_str()
                .ok_or_else(|| validation("ConditionExpression must be a string."))?;
            if !condition(expr, params, current)? {
                return Err(TaskError::new(
                    "DynamoDB.ConditionalCheckFailedException",
                    "The conditional request failed (Service: DynamoDb, Status Code: 400, \
                     Error Code: ConditionalCheckFailedException)",
                ));
            }
        }
        match action {
            "putItem" => {
                items.insert(key, given.clone());
                Ok(json!({}))
            }
            "deleteItem" => {
                items.remove(&key);
                Ok(json!({}))
            }
            _ => Ok(match current {
                Some(item) => json!({"Item": item}),
                None => json!({}),
            }),
        }
    }
}

fn key_of(names: &[String], given: &Map<String, Value>, exact: bool) -> Result<String, TaskError> {
    let mut key = Vec::new();
    for n in names {
        let v = given.get(n).ok_or_else(|| {
            validation(format!(
                "One of the required keys was not given a value: {n}"
            ))
        })?;
        key.push(v.clone());
    }
    if exact && given.len() != names.len() {
        return Err(validation(
            "The provided key element does not match the schema",
        ));
    }
    Ok(Value::Array(key).to_string())
}

/// Evaluates `expr` against the item currently stored (`None`: no item).
fn condition(
    expr: &str,
    params: &Value,
    item: Option<&Map<String, Value>>,
) -> Result<bool, TaskError> {
    let names = params.get("ExpressionAttributeNames");
    let values = params.get("ExpressionAttributeValues");
    let name = |token: &str| -> Result<String, TaskError> {
        if token.starts_with('#') {
            names
                .and_then(|n| n.get(token))
                .and_then(Value::as_str)
                .map(str::to_owned)
                .ok_or_else(|| validation(format!("An expression attribute name used in the document path is not defined; attribute name: {token}")))
        } else {
            Ok(token.to_owned())
        }
    };
    let attr = |token: &str| -> Result<Option<Value>, TaskError> {
        Ok(item.and_then(|i| i.get(&name(token).ok()?).cloned()))
    };
    let mut any = false;
    for disjunct in split_word(expr, "OR") {
        let mut all = true;
        for term in split_word(&disjunct, "AND") {
            let term = term.trim();
            let result = if let Some(arg) = call_arg(term, "attribute_not_exists") {
                attr(arg)?.is_none()
            } else if let Some(arg) = call_arg(term, "attribute_exists") {
                attr(arg)?.is_some()
            } else if let Some((l, op, r)) = comparison(term) {
                let want = values
                    .and_then(|v| v.get(r))
                    .cloned()
                    .ok_or_else(|| validation(format!("An expression attribute value used in expression is not defined; attribute value: {r}")))?;
                let have = attr(l)?;
                let equal = have.as_ref() == Some(&want);
                match op {
                    "=" => equal,
                    "<>" => have.is_some() && !equal,
                    _ => match have.as_ref().and_then(|h| order(h, &want)) {
                        Some(o) => (op == "<" && o.is_lt()) || (op == ">" && o.is_gt()),
                        None => false,
                    },
                }
            } else {
                return Err(validation(format!(
                    "Invalid ConditionExpression for the local engine: `{term}` (it supports \
                     attribute_exists(a), attribute_not_exists(a), a = :v, a <> :v joined by AND/OR)"
                )));
            };
            all &= result;
        }
        any |= all;
    }
    Ok(any)
}

fn split_word(s: &str, word: &str) -> Vec<String> {
    let mut parts = vec![String::new()];
    for token in s.split_whitespace() {
        if token.eq_ignore_ascii_case(word) {
            parts.push(String::new());
        } else {
            let last = parts.last_mut().expect("one part");
            if !last.is_empty() {
                last.push(' ');
            }
            last.push_str(token);
        }
    }
    parts
}

fn call_arg<'a>(term: &'a str, func: &str) -> Option<&'a str> {
    term.strip_prefix(func)?
        .trim()
        .strip_prefix('(')?
        .strip_suffix(')')
        .map(str::trim)
}

/// DynamoDB's order of two scalar attribute values of one type.
fn order(a: &Value, b: &Value) -> Option<std::cmp::Ordering> {
    if let (Some(x), Some(y)) = (
        a.get("S").and_then(Value::as_str),
        b.get("S").and_then(Value::as_str),
    ) {
        return Some(x.as_bytes().cmp(y.as_bytes()));
    }
    let num = |v: &Value| v.get("N").and_then(Value::as_str)?.parse::<f64>().ok();
    num(a)?.partial_cmp(&num(b)?)
}

fn comparison(term: &str) -> Option<(&str, &str, &str)> {
    for op in ["<>", "=", "<", ">"] {
        if let Some((l, r)) = term.split_once(op) {
            return Some((l.trim(), op, r.trim()));
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tables() -> Tables {
        let t = Tables::default();
        t.declare(&[TableSpec {
            logical_id: "Locks".into(),
            name: "locks".into(),
            key: vec!["group".into()],
        }]);
        t
    }

    fn put(t: &Tables, holder: &str) -> Result<Value, TaskError> {
        t.call(
            "putItem",
            &json!({
                "TableName": "locks",
                "Item": {"group": {"S": "dev/deploy"}, "execution": {"S": holder}},
                "ConditionExpression": "attribute_not_exists(#g) OR #e = :me",
                "ExpressionAttributeNames": {"#g": "group", "#e": "execution"},
                "ExpressionAttributeValues": {":me": {"S": holder}}
            }),
        )
    }

    #[test]
    fn a_conditional_put_is_a_lock() {
        let t = tables();
        put(&t, "a").unwrap();
        put(&t, "a").unwrap();
        let err = put(&t, "b").unwrap_err();
        assert_eq!(err.error, "DynamoDB.ConditionalCheckFailedException");
        let release = |who: &str| {
            t.call(
                "deleteItem",
                &json!({
                    "TableName": "locks",
                    "Key": {"group": {"S": "dev/deploy"}},
                    "ConditionExpression": "#e = :me",
                    "ExpressionAttributeNames": {"#e": "execution"},
                    "ExpressionAttributeValues": {":me": {"S": who}}
                }),
            )
        };
        assert!(release("b").is_err());
        // An expired lease is taken over.
        let lease = |who: &str, until: &str, now: &str| {
            t.call(
                "putItem",
                &json!({
                    "TableName": "locks",
                    "Item": {"group": {"S": "dev/lease"}, "execution": {"S": who}, "until": {"S": until}},
                    "ConditionExpression": "attribute_not_exists(#g) OR #e = :me OR #u < :now",
                    "ExpressionAttributeNames": {"#g": "group", "#e": "execution", "#u": "until"},
                    "ExpressionAttributeValues": {":me": {"S": who}, ":now": {"S": now}}
                }),
            )
        };
        lease("x", "2026-01-01T10:00:00.000Z", "2026-01-01T09:00:00.000Z").unwrap();
        assert!(lease("y", "2026-01-01T12:00:00.000Z", "2026-01-01T09:59:59.999Z").is_err());
        lease("y", "2026-01-01T12:00:00.000Z", "2026-01-01T10:00:00.001Z").unwrap();
        release("a").unwrap();
        put(&t, "b").unwrap();
        let got = t
            .call(
                "getItem",
                &json!({"TableName": "locks", "Key": {"group": {"S": "dev/deploy"}}}),
            )
            .unwrap();
        assert_eq!(got["Item"]["execution"], json!({"S": "b"}));
    }

    #[test]
    fn unknown_tables_and_expressions_are_refused_as_aws_does() {
        let t = tables();
        let e = t
            .call("putItem", &json!({"TableName": "nope", "Item": {}}))
            .unwrap_err();
        assert_eq!(e.error, "DynamoDB.ResourceNotFoundException");
        let e = t
            .call(
                "putItem",
                &json!({"TableName": "locks", "Item": {"group": {"S": "g"}}, "ConditionExpression": "size(a) > 1"}),
            )
            .unwrap_err();
        assert_eq!(e.error, "DynamoDB.ValidationException");
        let e = t
            .call(
                "putItem",
                &json!({"TableName": "locks", "Item": {"x": {"S": "g"}}}),
            )
            .unwrap_err();
        assert!(e.cause.contains("group"), "{}", e.cause);
    }
}
