//! EventBridge, as far as a local run of the template needs it: rules whose pattern matches
//! Step Functions' "Execution Status Change" events and whose target is a function of the
//! template. AWS sends such an event for every status change of a STANDARD execution
//! (`RUNNING` at start and at a redrive, then `SUCCEEDED`, `FAILED`, `TIMED_OUT` or `ABORTED`)
//! and EventBridge invokes the target with the whole event; the local engine does the same with
//! the function's in-process handler.
//!
//! Patterns: the subset of EventBridge's syntax these rules need, exact values (a list of
//! strings, numbers, booleans or `null`) on nested keys. A pattern that uses anything else
//! (`prefix`, `anything-but`, `numeric`, `exists`, `wildcard`, `$or`, …) and could match a Step
//! Functions event fails the template load, as does such a rule with a target the engine cannot
//! invoke (not a function of the template) or with a transformed input. Rules that cannot match
//! a Step Functions event (another `source`, another bus, schedules) are listed as
//! [`UnemulatedRule`]s and logged when the engine starts: nothing in a local run would trigger
//! them.

use std::collections::BTreeMap;

use chrono::{DateTime, SecondsFormat, Utc};
use serde_json::{Map, Value, json};

use crate::arn::Locality;
use crate::store::ExecutionRecord;

/// `source` of Step Functions events.
pub const STATES_SOURCE: &str = "aws.states";
/// `detail-type` of a Step Functions execution status change.
pub const STATUS_CHANGE: &str = "Step Functions Execution Status Change";

/// One node of a pattern.
#[derive(Clone, Debug, PartialEq)]
enum Node {
    /// The field must equal one of these values (an array field: one of its elements must).
    Values(Vec<Value>),
    /// The field must be an object matching every key.
    Object(BTreeMap<String, Node>),
    /// Syntax the local engine does not evaluate (a content filter, `$or`): why.
    Unsupported(String),
}

/// A validated EventBridge event pattern (the exact-value subset).
#[derive(Clone, Debug, PartialEq)]
pub struct EventPattern {
    root: BTreeMap<String, Node>,
}

impl EventPattern {
    /// Parses a pattern (the JSON object of `EventPattern` / SAM `Pattern`). Errors are
    /// patterns EventBridge itself would refuse (a bare value where a list is needed, an empty
    /// list, not an object); syntax that is valid but not supported locally is kept and
    /// reported by [`EventPattern::unsupported`].
    pub fn parse(v: &Value) -> Result<EventPattern, String> {
        match v {
            Value::Object(m) if !m.is_empty() => Ok(EventPattern {
                root: parse_object(m, "")?,
            }),
            Value::Object(_) => Err("the event pattern is empty".into()),
            other => Err(format!(
                "the event pattern must be a JSON object, got {other}"
            )),
        }
    }

    /// The first piece of syntax the local engine does not evaluate, with its path, if any.
    pub fn unsupported(&self) -> Option<String> {
        fn walk(m: &BTreeMap<String, Node>, path: &str) -> Option<String> {
            for (k, n) in m {
                let p = join(path, k);
                match n {
                    Node::Unsupported(why) => return Some(format!("at `{p}`: {why}")),
                    Node::Object(inner) => {
                        if let Some(x) = walk(inner, &p) {
                            return Some(x);
                        }
                    }
                    Node::Values(_) => {}
                }
            }
            None
        }
        walk(&self.root, "")
    }

    /// Whether the pattern can match a Step Functions execution status change at all: `false`
    /// when its `source` or `detail-type` lists exclude them (or its other top-level fields
    /// are not fields of such events). Unsupported syntax counts as "may match".
    pub fn may_match_status_changes(&self) -> bool {
        let admits = |key: &str, value: &str| match self.root.get(key) {
            None | Some(Node::Unsupported(_)) => true,
            Some(Node::Values(list)) => list.iter().any(|v| v.as_str() == Some(value)),
            Some(Node::Object(_)) => false,
        };
        admits("source", STATES_SOURCE) && admits("detail-type", STATUS_CHANGE)
    }

    /// Whether `event` matches (every key of the pattern; unsupported syntax never matches).
    pub fn matches(&self, event: &Value) -> bool {
        match event {
            Value::Object(m) => object_matches(&self.root, m),
            _ => false,
        }
    }

    /// The values the pattern allows at `path` (dotted keys), when it is an exact list.
    pub fn values_at(&self, path: &str) -> Option<Vec<Value>> {
        let mut node = None;
        let mut map = &self.root;
        for key in path.split('.') {
            let n = map.get(key)?;
            node = Some(n);
            if let Node::Object(inner) = n {
                map = inner;
            }
        }
        match node? {
            Node::Values(v) => Some(v.clone()),
            _ => None,
        }
    }
}

fn join(path: &str, key: &str) -> String {
    if path.is_empty() {
        key.to_owned()
    } else {
        format!("{path}.{key}")
    }
}

fn parse_object(m: &Map<String, Value>, path: &str) -> Result<BTreeMap<String, Node>, String> {
    let mut out = BTreeMap::new();
    for (k, v) in m {
        let p = join(path, k);
        let node = if k.starts_with('$') {
            Node::Unsupported(format!(
                "`{k}` (combining patterns) is not supported by the local engine"
            ))
        } else {
            match v {
                Value::Array(items) if items.is_empty() => {
                    return Err(format!("`{p}`: an empty list matches nothing"));
                }
                Value::Array(items) => match items.iter().find(|i| i.is_object() || i.is_array()) {
                    Some(filter) => Node::Unsupported(format!(
                        "the content filter {filter} is not supported by the local engine, \
                             which matches exact values only (lists of strings, numbers, \
                             booleans or null)"
                    )),
                    None => Node::Values(items.clone()),
                },
                Value::Object(inner) if inner.is_empty() => {
                    return Err(format!("`{p}`: an empty object matches nothing"));
                }
                Value::Object(inner) => Node::Object(parse_object(inner, &p)?),
                other => {
                    return Err(format!(
                        "`{p}`: EventBridge needs a list of values here, e.g. [{other}]"
                    ));
                }
            }
        };
        out.insert(k.clone(), node);
    }
    Ok(out)
}

fn object_matches(pattern: &BTreeMap<String, Node>, event: &Map<String, Value>) -> bool {
    pattern.iter().all(|(k, node)| {
        let Some(v) = event.get(k) else {
            return false;
        };
        match node {
            Node::Unsupported(_) => false,
            Node::Object(inner) => v.as_object().is_some_and(|m| object_matches(inner, m)),
            Node::Values(list) => match v {
                Value::Array(items) => items.iter().any(|x| list.iter().any(|a| same(a, x))),
                x => list.iter().any(|a| same(a, x)),
            },
        }
    })
}

fn same(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Number(x), Value::Number(y)) => x.as_f64() == y.as_f64(),
        _ => a == b,
    }
}

/// What a rule's target is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TargetKind {
    /// A Lambda function: invoked asynchronously with the event.
    Function,
    /// A state machine: an execution started with the event as its input.
    StateMachine,
}

/// A function a rule invokes, or a state machine it starts.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RuleTarget {
    /// Function or state machine.
    pub kind: TargetKind,
    /// Its logical id.
    pub logical_id: String,
    /// Its name.
    pub name: String,
    /// Its local ARN.
    pub arn: String,
}

/// A rule the local engine runs: on every execution status change matching `pattern`, each
/// target function is invoked with the event, and each target state machine started with it.
#[derive(Clone, Debug, PartialEq)]
pub struct EventRuleSpec {
    /// Where it is declared: `LogicalId` (`AWS::Events::Rule`) or `Function.EventName` (a SAM
    /// function's `Events`).
    pub id: String,
    /// The rule's pattern.
    pub pattern: EventPattern,
    /// The functions it invokes and the state machines it starts.
    pub targets: Vec<RuleTarget>,
}

impl EventRuleSpec {
    /// One line for logs: what it matches and what it invokes.
    pub fn describe(&self) -> String {
        let list = |path: &str| {
            self.pattern.values_at(path).map(|v| {
                v.iter()
                    .map(|x| {
                        x.as_str()
                            .map(str::to_owned)
                            .unwrap_or_else(|| x.to_string())
                    })
                    .collect::<Vec<_>>()
                    .join("|")
            })
        };
        let mut what = Vec::new();
        if let Some(s) = list("detail.status") {
            what.push(format!("status {s}"));
        }
        if let Some(m) = list("detail.stateMachineArn") {
            what.push(format!("of {m}"));
        }
        format!(
            "rule {}: Step Functions status changes{} -> {}",
            self.id,
            if what.is_empty() {
                String::new()
            } else {
                format!(" ({})", what.join(" "))
            },
            self.targets
                .iter()
                .map(|t| t.logical_id.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        )
    }
}

/// A rule of the template that nothing in a local run can trigger, and why.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct UnemulatedRule {
    /// Where it is declared (as [`EventRuleSpec::id`]).
    pub id: String,
    /// Why it is not run locally.
    pub reason: String,
}

/// The event AWS sends to EventBridge when `record`'s status changed (the `detail` holds what
/// `DescribeExecution` answers).
pub fn status_change_event(locality: &Locality, record: &ExecutionRecord) -> Value {
    let millis = |d: &DateTime<Utc>| json!(d.timestamp_millis());
    let opt_millis = |d: &Option<DateTime<Utc>>| d.as_ref().map(millis).unwrap_or(Value::Null);
    let redrivable = matches!(record.status.as_str(), "FAILED" | "TIMED_OUT" | "ABORTED");
    let detail = json!({
        "executionArn": record.arn,
        "stateMachineArn": record.state_machine_arn,
        "name": record.name,
        "status": record.status,
        "startDate": millis(&record.start_date),
        "stopDate": opt_millis(&record.stop_date),
        "input": record.input,
        "inputDetails": {"included": true},
        "output": record.output,
        "outputDetails": if record.output.is_some() { json!({"included": true}) } else { Value::Null },
        "error": record.error,
        "cause": record.cause,
        "redriveCount": record.redrive_count,
        "redriveDate": opt_millis(&record.redrive_date),
        "redriveStatus": if redrivable { "REDRIVABLE" } else { "NOT_REDRIVABLE" },
        "redriveStatusReason": if redrivable {
            Value::Null
        } else {
            json!(format!("Execution is {} and cannot be redriven", record.status))
        },
    });
    json!({
        "version": "0",
        "id": uuid::Uuid::new_v4().to_string(),
        "detail-type": STATUS_CHANGE,
        "source": STATES_SOURCE,
        "account": locality.account,
        "time": Utc::now().to_rfc3339_opts(SecondsFormat::Secs, true),
        "region": locality.region,
        "resources": [record.arn],
        "detail": detail,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pattern(v: Value) -> EventPattern {
        EventPattern::parse(&v).unwrap()
    }

    fn event(status: &str, machine: &str) -> Value {
        json!({
            "source": STATES_SOURCE,
            "detail-type": STATUS_CHANGE,
            "resources": ["arn:x"],
            "detail": {"status": status, "stateMachineArn": machine, "redriveCount": 0, "error": null}
        })
    }

    #[test]
    fn exact_values_on_nested_keys() {
        let p = pattern(json!({
            "source": ["aws.states"],
            "detail-type": [STATUS_CHANGE],
            "detail": {"status": ["FAILED", "TIMED_OUT", "ABORTED"], "stateMachineArn": ["m1"]}
        }));
        assert!(p.unsupported().is_none());
        assert!(p.may_match_status_changes());
        assert!(p.matches(&event("FAILED", "m1")));
        assert!(p.matches(&event("ABORTED", "m1")));
        assert!(!p.matches(&event("SUCCEEDED", "m1")));
        assert!(!p.matches(&event("RUNNING", "m1")));
        assert!(!p.matches(&event("FAILED", "m2")));
        assert!(
            !p.matches(&json!({"source": "aws.states"})),
            "missing keys do not match"
        );
        // Array fields match when one element does; numbers by value; null matches null.
        assert!(pattern(json!({"resources": ["arn:x"]})).matches(&event("FAILED", "m1")));
        assert!(pattern(json!({"detail": {"redriveCount": [0.0]}})).matches(&event("X", "m")));
        assert!(pattern(json!({"detail": {"error": [null]}})).matches(&event("X", "m")));
        assert_eq!(
            p.values_at("detail.status").unwrap(),
            vec![json!("FAILED"), json!("TIMED_OUT"), json!("ABORTED")]
        );
    }

    #[test]
    fn relevance_and_unsupported_syntax() {
        let ec2 = pattern(
            json!({"source": ["aws.ec2"], "detail": {"state": [{"anything-but": "running"}]}}),
        );
        assert!(!ec2.may_match_status_changes());
        assert!(ec2.unsupported().unwrap().contains("anything-but"));
        let other_type = pattern(
            json!({"source": ["aws.states"], "detail-type": ["Step Functions State Machine Version State Change"]}),
        );
        assert!(!other_type.may_match_status_changes());
        let prefix = pattern(json!({"source": [{"prefix": "aws."}]}));
        assert!(
            prefix.may_match_status_changes(),
            "cannot tell: counts as relevant"
        );
        let or = pattern(json!({"source": ["aws.states"], "$or": [{"a": ["b"]}]}));
        let why = or.unsupported().unwrap();
        assert!(why.contains("$or"), "{why}");
        assert!(!or.matches(&event("FAILED", "m")));
    }

    #[test]
    fn invalid_patterns_are_refused() {
        for (bad, says) in [
            (json!({"source": "aws.states"}), "needs a list"),
            (json!({"source": []}), "empty list"),
            (json!({}), "empty"),
            (json!(["aws.states"]), "JSON object"),
            (json!({"detail": {}}), "empty object"),
        ] {
            let e = EventPattern::parse(&bad).unwrap_err();
            assert!(e.contains(says), "{bad}: {e}");
        }
    }
}
