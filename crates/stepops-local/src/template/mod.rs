//! `template.yaml` (SAM / CloudFormation) as the source of truth for local runs.
//!
//! [`load_template`] finds every state machine (`AWS::Serverless::StateMachine`,
//! `AWS::StepFunctions::StateMachine`), activity (`AWS::StepFunctions::Activity`) and function
//! (`AWS::Serverless::Function`, `AWS::Lambda::Function`), resolves the intrinsic functions the
//! definitions need (`Ref`, `Fn::GetAtt`, `Fn::Sub`, `Fn::Join`, `Fn::If` with `Conditions`,
//! `Fn::Equals`/`Not`/`And`/`Or`, `Fn::Select`, `Fn::Split`, `Fn::FindInMap`, `Fn::Base64`, in long and short
//! `!Tag` form) to local ARNs, and applies `DefinitionSubstitutions` to each definition file.
//! It also reads the EventBridge rules (`AWS::Events::Rule`, and `EventBridgeRule` /
//! `CloudWatchEvent` entries of a SAM resource's `Events`) that the engine runs on execution
//! status changes (see [`crate::events`]). [`resolve_resources`] resolves every resource the same
//! way, for checks of what a stack grants.
//!
//! Here: the loader and `DefinitionSubstitutions`; `intrinsics.rs` evaluates the intrinsic
//! functions, `rules.rs` reads the EventBridge rules, `state_machines.rs` a state machine's
//! definition and its substitutions.

mod intrinsics;
mod rules;
mod state_machines;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde_json::{Map, Value};

use crate::arn::Locality;
use crate::error::LocalError;
use crate::events::{EventRuleSpec, UnemulatedRule};

use intrinsics::Resolver;

/// How to read a template.
#[derive(Clone, Debug)]
pub struct TemplateOptions {
    /// `Parameters` values overriding their `Default` (e.g. `Environment=dev`).
    pub parameter_overrides: BTreeMap<String, String>,
    /// `AWS::StackName`; default: `stepops-local`.
    pub stack_name: String,
    /// Region and account of every ARN.
    pub locality: Locality,
}

impl Default for TemplateOptions {
    fn default() -> Self {
        TemplateOptions {
            parameter_overrides: BTreeMap::new(),
            stack_name: "stepops-local".into(),
            locality: Locality::default(),
        }
    }
}

/// A state machine found in the template.
#[derive(Clone, Debug, PartialEq)]
pub struct StateMachineSpec {
    /// Its logical id in `Resources`.
    pub logical_id: String,
    /// Its name (`Name` / `StateMachineName`, else the logical id).
    pub name: String,
    /// Its local ARN.
    pub arn: String,
    /// The definition JSON, substitutions applied.
    pub definition: String,
    /// The definition file (`DefinitionUri`), when it came from one.
    pub definition_path: Option<PathBuf>,
    /// `STANDARD` or `EXPRESS`.
    pub kind: String,
}

/// An activity found in the template.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ActivitySpec {
    /// Its logical id.
    pub logical_id: String,
    /// Its `Name`.
    pub name: String,
    /// Its local ARN.
    pub arn: String,
}

/// A Lambda function found in the template.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FunctionSpec {
    /// Its logical id (what handlers are usually registered by).
    pub logical_id: String,
    /// Its `FunctionName`, else the logical id.
    pub name: String,
    /// Its local ARN.
    pub arn: String,
}

/// What a template declares, resolved for local runs.
#[derive(Clone, Debug, PartialEq)]
pub struct LoadedTemplate {
    /// The template file.
    pub path: PathBuf,
    /// Effective parameter values (defaults and overrides).
    pub parameters: BTreeMap<String, Value>,
    /// State machines, in template order.
    pub state_machines: Vec<StateMachineSpec>,
    /// Activities, in template order.
    pub activities: Vec<ActivitySpec>,
    /// Functions, in template order.
    pub functions: Vec<FunctionSpec>,
    /// EventBridge rules the engine runs on execution status changes, in template order.
    pub event_rules: Vec<EventRuleSpec>,
    /// Rules (and schedules) nothing in a local run can trigger, with the reason.
    pub unemulated_rules: Vec<UnemulatedRule>,
    /// DynamoDB tables (the `dynamodb:` integrations' in-memory tables).
    pub tables: Vec<crate::dynamodb::TableSpec>,
}

/// The template at `path` as JSON with long-form intrinsics, and how to report its errors.
fn read_template(path: &Path) -> Result<Value, LocalError> {
    let err = |message: String| LocalError::Template {
        path: path.display().to_string(),
        message,
    };
    let text = std::fs::read_to_string(path).map_err(|e| {
        err(format!(
            "cannot read it ({e}); pass the path of your SAM template"
        ))
    })?;
    let mut yaml: serde_norway::Value =
        serde_norway::from_str(&text).map_err(|e| err(format!("not valid YAML: {e}")))?;
    yaml.apply_merge()
        .map_err(|e| err(format!("YAML merge keys (<<): {e}")))?;
    Ok(yaml_to_json(yaml))
}

/// Every resource of the template at `path` as CloudFormation would see it for `options`
/// (parameter values, conditions, mappings): the intrinsic functions the reader knows resolved,
/// `AWS::NoValue` dropped, resources whose `Condition` is false left out, attributes local runs
/// have no value for given as `LogicalId.Attribute`. Keyed by logical id.
/// For checks of what a stack grants (IAM, key and topic policies, security groups); local runs
/// use [`load_template`].
pub fn resolve_resources(
    path: &Path,
    options: &TemplateOptions,
) -> Result<BTreeMap<String, Value>, LocalError> {
    let err = |message: String| LocalError::Template {
        path: path.display().to_string(),
        message,
    };
    let root = read_template(path)?;
    let mut resolver = Resolver::new(&root, options).map_err(err)?;
    resolver.placeholder_attributes = true;
    let mut out = BTreeMap::new();
    for (id, resource) in &resolver.resources {
        if !resolver.resource_enabled(id).map_err(err)? {
            continue;
        }
        let value = resolver
            .eval(resource, 0)
            .map_err(|m| err(format!("resource {id}: {m}")))?;
        out.insert(id.clone(), value.unwrap_or(Value::Null));
    }
    Ok(out)
}

/// Reads `path` and resolves its state machines, activities and functions.
pub fn load_template(path: &Path, options: &TemplateOptions) -> Result<LoadedTemplate, LocalError> {
    let err = |message: String| LocalError::Template {
        path: path.display().to_string(),
        message,
    };
    let root = read_template(path)?;
    let base = path.parent().unwrap_or(Path::new(".")).to_path_buf();
    let resolver = Resolver::new(&root, options).map_err(err)?;

    let mut out = LoadedTemplate {
        path: path.to_path_buf(),
        parameters: resolver.parameters.clone(),
        state_machines: Vec::new(),
        activities: Vec::new(),
        functions: Vec::new(),
        event_rules: Vec::new(),
        unemulated_rules: Vec::new(),
        tables: Vec::new(),
    };
    for (id, resource) in &resolver.resources {
        if !resolver.resource_enabled(id).map_err(err)? {
            continue;
        }
        let kind = resource.get("Type").and_then(Value::as_str).unwrap_or("");
        let in_res = |m: String| err(format!("resource {id}: {m}"));
        match kind {
            "AWS::Serverless::StateMachine" | "AWS::StepFunctions::StateMachine" => {
                let name = resolver.resource_name(id).map_err(in_res)?;
                let spec = resolver
                    .state_machine(id, resource, &name, &base)
                    .map_err(in_res)?;
                out.state_machines.push(spec);
            }
            "AWS::StepFunctions::Activity" => {
                let name = resolver.resource_name(id).map_err(in_res)?;
                out.activities.push(ActivitySpec {
                    logical_id: id.clone(),
                    arn: options.locality.activity_arn(&name),
                    name,
                });
            }
            "AWS::Serverless::Function" | "AWS::Lambda::Function" => {
                let name = resolver.resource_name(id).map_err(in_res)?;
                out.functions.push(FunctionSpec {
                    logical_id: id.clone(),
                    arn: options.locality.function_arn(&name),
                    name,
                });
            }
            "AWS::DynamoDB::Table" => {
                let name = resolver.resource_name(id).map_err(in_res)?;
                let schema = resource
                    .pointer("/Properties/KeySchema")
                    .and_then(Value::as_array)
                    .ok_or_else(|| in_res("a table needs Properties.KeySchema".into()))?;
                let mut key: Vec<(bool, String)> = Vec::new();
                for k in schema {
                    let attr = k.get("AttributeName").and_then(Value::as_str);
                    let kind = k.get("KeyType").and_then(Value::as_str);
                    match (attr, kind) {
                        (Some(a), Some(t @ ("HASH" | "RANGE"))) => {
                            key.push((t == "RANGE", a.to_owned()))
                        }
                        _ => {
                            return Err(in_res(
                                "KeySchema entries need AttributeName and KeyType HASH/RANGE"
                                    .into(),
                            ));
                        }
                    }
                }
                key.sort();
                out.tables.push(crate::dynamodb::TableSpec {
                    logical_id: id.clone(),
                    name,
                    key: key.into_iter().map(|(_, a)| a).collect(),
                });
            }
            _ => {}
        }
    }
    // Rules last: their targets are the functions and state machines found above.
    for (id, resource) in &resolver.resources {
        if !resolver.resource_enabled(id).map_err(err)? {
            continue;
        }
        let kind = resource.get("Type").and_then(Value::as_str).unwrap_or("");
        let in_res = |m: String| err(format!("resource {id}: {m}"));
        let rules = match kind {
            "AWS::Events::Rule" => {
                resolver.events_rule(id, resource, &out.functions, &out.state_machines)
            }
            "AWS::Serverless::Function" => {
                match out.functions.iter().find(|f| f.logical_id == *id) {
                    Some(f) => resolver.sam_events(id, resource, rules::function_target(f)),
                    None => continue,
                }
            }
            "AWS::Serverless::StateMachine" => {
                match out.state_machines.iter().find(|m| m.logical_id == *id) {
                    Some(m) => resolver.sam_events(id, resource, rules::machine_target(m)),
                    None => continue,
                }
            }
            _ => continue,
        }
        .map_err(in_res)?;
        for rule in rules {
            match rule {
                Ok(r) => out.event_rules.push(r),
                Err(u) => out.unemulated_rules.push(u),
            }
        }
    }
    Ok(out)
}

/// A rule found in the template: run locally, or not (and why).
type FoundRule = Result<EventRuleSpec, UnemulatedRule>;

/// YAML (with `!Tag` short forms) to JSON with long-form intrinsics (`{"Fn::Sub": …}`).
fn yaml_to_json(v: serde_norway::Value) -> Value {
    use serde_norway::Value as Y;
    match v {
        Y::Null => Value::Null,
        Y::Bool(b) => Value::Bool(b),
        Y::Number(n) => {
            if let Some(i) = n.as_i64() {
                Value::from(i)
            } else if let Some(u) = n.as_u64() {
                Value::from(u)
            } else {
                n.as_f64().map(Value::from).unwrap_or(Value::Null)
            }
        }
        Y::String(s) => Value::String(s),
        Y::Sequence(items) => Value::Array(items.into_iter().map(yaml_to_json).collect()),
        Y::Mapping(m) => {
            let mut out = Map::new();
            for (k, v) in m {
                let key = match yaml_to_json(k) {
                    Value::String(s) => s,
                    other => other.to_string(),
                };
                out.insert(key, yaml_to_json(v));
            }
            Value::Object(out)
        }
        Y::Tagged(t) => {
            let tag = t.tag.to_string();
            let tag = tag.trim_start_matches('!');
            let key = match tag {
                "Ref" | "Condition" => tag.to_string(),
                _ => format!("Fn::{tag}"),
            };
            let mut out = Map::new();
            out.insert(key, yaml_to_json(t.value));
            Value::Object(out)
        }
    }
}

/// Evaluates intrinsic functions against one template.
/// Replaces `${Key}` in every string of `definition` with `subs[Key]`; an unknown key fails.
pub fn substitute(definition: Value, subs: &BTreeMap<String, String>) -> Result<Value, String> {
    Ok(match definition {
        Value::String(s) => Value::String(substitute_str(&s, subs)?),
        Value::Array(items) => Value::Array(
            items
                .into_iter()
                .map(|v| substitute(v, subs))
                .collect::<Result<_, _>>()?,
        ),
        Value::Object(m) => {
            let mut out = Map::new();
            for (k, v) in m {
                out.insert(substitute_str(&k, subs)?, substitute(v, subs)?);
            }
            Value::Object(out)
        }
        other => other,
    })
}

fn substitute_str(s: &str, subs: &BTreeMap<String, String>) -> Result<String, String> {
    if !s.contains("${") {
        return Ok(s.to_string());
    }
    let mut out = String::new();
    let mut rest = s;
    while let Some(start) = rest.find("${") {
        out.push_str(&rest[..start]);
        let after = &rest[start + 2..];
        let Some(end) = after.find('}') else {
            out.push_str(&rest[start..]);
            return Ok(out);
        };
        let key = &after[..end];
        match subs.get(key) {
            Some(v) => out.push_str(v),
            None => {
                return Err(format!(
                    "the definition uses ${{{key}}} but DefinitionSubstitutions has no {key} (has: {})",
                    subs.keys().cloned().collect::<Vec<_>>().join(", ")
                ));
            }
        }
        rest = &after[end + 1..];
    }
    out.push_str(rest);
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn substitutes_placeholders() {
        let mut subs = BTreeMap::new();
        subs.insert("A".to_string(), "arn:x".to_string());
        let v = serde_json::json!({"Resource": "${A}", "Other": "pre-${A}-post", "n": 1});
        let out = substitute(v, &subs).unwrap();
        assert_eq!(out["Resource"], "arn:x");
        assert_eq!(out["Other"], "pre-arn:x-post");
        let err = substitute(serde_json::json!("${B}"), &subs).unwrap_err();
        assert!(err.contains("${B}"), "{err}");
    }
}
