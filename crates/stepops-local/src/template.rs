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

use std::cell::RefCell;
use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};

use serde_json::{Map, Value};

use crate::arn::Locality;
use crate::error::LocalError;
use crate::events::{EventPattern, EventRuleSpec, RuleTarget, UnemulatedRule};

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
            _ => {}
        }
    }
    // Rules last: their targets are the functions found above.
    for (id, resource) in &resolver.resources {
        if !resolver.resource_enabled(id).map_err(err)? {
            continue;
        }
        let kind = resource.get("Type").and_then(Value::as_str).unwrap_or("");
        let in_res = |m: String| err(format!("resource {id}: {m}"));
        let rules = match kind {
            "AWS::Events::Rule" => resolver.events_rule(id, resource, &out.functions),
            "AWS::Serverless::Function" | "AWS::Lambda::Function" => {
                let me = out.functions.iter().find(|f| f.logical_id == *id).cloned();
                resolver.sam_events(id, resource, me.as_ref())
            }
            "AWS::Serverless::StateMachine" => resolver.sam_events(id, resource, None),
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
struct Resolver<'a> {
    options: &'a TemplateOptions,
    parameters: BTreeMap<String, Value>,
    resources: Vec<(String, &'a Value)>,
    conditions: Map<String, Value>,
    mappings: Map<String, Value>,
    condition_values: RefCell<HashMap<String, bool>>,
    /// `Fn::GetAtt` of an attribute local runs have no value for (a launch template's version)
    /// gives `LogicalId.Attribute` instead of an error ([`resolve_resources`]).
    placeholder_attributes: bool,
}

const NO_VALUE: &str = "AWS::NoValue";

impl<'a> Resolver<'a> {
    fn new(root: &'a Value, options: &'a TemplateOptions) -> Result<Self, String> {
        let resources = root
            .get("Resources")
            .and_then(Value::as_object)
            .ok_or("no `Resources` section: is this a SAM/CloudFormation template?")?
            .iter()
            .map(|(k, v)| (k.clone(), v))
            .collect();
        let declared = root
            .get("Parameters")
            .and_then(Value::as_object)
            .cloned()
            .unwrap_or_default();
        for key in options.parameter_overrides.keys() {
            if !declared.contains_key(key) {
                return Err(format!(
                    "parameter override {key} is not declared under `Parameters` (declared: {})",
                    declared.keys().cloned().collect::<Vec<_>>().join(", ")
                ));
            }
        }
        let mut parameters = BTreeMap::new();
        for (name, decl) in &declared {
            let value = match options.parameter_overrides.get(name) {
                Some(v) => Value::String(v.clone()),
                None => match decl.get("Default") {
                    Some(Value::String(s)) => Value::String(s.clone()),
                    Some(Value::Null) | None => continue, // an error only if used
                    Some(other) => Value::String(scalar_text(other)),
                },
            };
            if let (Some(allowed), Value::String(s)) =
                (decl.get("AllowedValues").and_then(Value::as_array), &value)
                && !allowed.iter().any(|a| scalar_text(a) == *s)
            {
                return Err(format!(
                    "parameter {name}={s} is not one of its AllowedValues {}",
                    Value::Array(allowed.clone())
                ));
            }
            let ty = decl.get("Type").and_then(Value::as_str).unwrap_or("String");
            let value = match (&value, ty) {
                (Value::String(s), t) if t == "CommaDelimitedList" || t.starts_with("List<") => {
                    Value::Array(
                        s.split(',')
                            .map(|p| Value::String(p.trim().into()))
                            .collect(),
                    )
                }
                _ => value,
            };
            parameters.insert(name.clone(), value);
        }
        Ok(Resolver {
            options,
            parameters,
            resources,
            conditions: root
                .get("Conditions")
                .and_then(Value::as_object)
                .cloned()
                .unwrap_or_default(),
            mappings: root
                .get("Mappings")
                .and_then(Value::as_object)
                .cloned()
                .unwrap_or_default(),
            condition_values: RefCell::new(HashMap::new()),
            placeholder_attributes: false,
        })
    }

    fn resource(&self, id: &str) -> Option<&'a Value> {
        self.resources
            .iter()
            .find(|(k, _)| k == id)
            .map(|(_, v)| *v)
    }

    fn resource_type(&self, id: &str) -> &'a str {
        self.resource(id)
            .and_then(|r| r.get("Type"))
            .and_then(Value::as_str)
            .unwrap_or("")
    }

    fn resource_enabled(&self, id: &str) -> Result<bool, String> {
        match self.resource(id).and_then(|r| r.get("Condition")) {
            Some(Value::String(c)) => self.condition(c),
            _ => Ok(true),
        }
    }

    fn condition(&self, name: &str) -> Result<bool, String> {
        if let Some(v) = self.condition_values.borrow().get(name) {
            return Ok(*v);
        }
        let body = self
            .conditions
            .get(name)
            .ok_or_else(|| format!("condition {name} is not declared under `Conditions`"))?;
        let v = self.eval_condition(body, 0)?;
        self.condition_values.borrow_mut().insert(name.into(), v);
        Ok(v)
    }

    fn eval_condition(&self, v: &Value, depth: usize) -> Result<bool, String> {
        if let Some((key, arg)) = single_key(v) {
            match key {
                "Condition" => {
                    let name = arg.as_str().ok_or("Condition takes a condition name")?;
                    if depth > 32 {
                        return Err(format!("condition {name} refers to itself"));
                    }
                    return self.condition(name);
                }
                "Fn::Equals" => {
                    let args = args_n(arg, 2, "Fn::Equals")?;
                    let a = self.eval(&args[0], depth + 1)?;
                    let b = self.eval(&args[1], depth + 1)?;
                    return Ok(opt_text(&a) == opt_text(&b));
                }
                "Fn::Not" => {
                    let args = args_n(arg, 1, "Fn::Not")?;
                    return Ok(!self.eval_condition(&args[0], depth + 1)?);
                }
                "Fn::And" | "Fn::Or" => {
                    let items = arg.as_array().ok_or(format!("{key} takes a list"))?;
                    let mut acc = key == "Fn::And";
                    for item in items {
                        let b = self.eval_condition(item, depth + 1)?;
                        acc = if key == "Fn::And" { acc && b } else { acc || b };
                    }
                    return Ok(acc);
                }
                _ => {}
            }
        }
        match self.eval(v, depth + 1)? {
            Some(Value::Bool(b)) => Ok(b),
            Some(Value::String(s)) if s == "true" || s == "false" => Ok(s == "true"),
            other => Err(format!(
                "a condition must be Fn::Equals/Not/And/Or or a Condition, got {}",
                other.unwrap_or(Value::Null)
            )),
        }
    }

    /// The name a resource is deployed under: its name property, else its logical id.
    fn resource_name(&self, id: &str) -> Result<String, String> {
        let resource = self
            .resource(id)
            .ok_or_else(|| format!("{id} is not a resource of the template"))?;
        let prop = match self.resource_type(id) {
            "AWS::Serverless::Function" | "AWS::Lambda::Function" => "FunctionName",
            "AWS::Serverless::StateMachine" => "Name",
            "AWS::StepFunctions::StateMachine" => "StateMachineName",
            "AWS::StepFunctions::Activity" => "Name",
            "AWS::SNS::Topic" => "TopicName",
            "AWS::SQS::Queue" => "QueueName",
            "AWS::S3::Bucket" => "BucketName",
            "AWS::IAM::Role" => "RoleName",
            _ => return Ok(id.to_string()),
        };
        match resource.get("Properties").and_then(|p| p.get(prop)) {
            None => Ok(if self.resource_type(id) == "AWS::S3::Bucket" {
                id.to_lowercase()
            } else {
                id.to_string()
            }),
            Some(v) => match self.eval(v, 8)? {
                Some(Value::String(s)) => Ok(s),
                Some(other) => Ok(scalar_text(&other)),
                None => Ok(id.to_string()),
            },
        }
    }

    fn reference(&self, name: &str, depth: usize) -> Result<Option<Value>, String> {
        let l = &self.options.locality;
        match name {
            "AWS::Region" => return Ok(Some(l.region.clone().into())),
            "AWS::AccountId" => return Ok(Some(l.account.clone().into())),
            "AWS::StackName" => return Ok(Some(self.options.stack_name.clone().into())),
            "AWS::StackId" => {
                return Ok(Some(
                    format!(
                        "arn:aws:cloudformation:{}:{}:stack/{}/local",
                        l.region, l.account, self.options.stack_name
                    )
                    .into(),
                ));
            }
            "AWS::Partition" => return Ok(Some("aws".into())),
            "AWS::URLSuffix" => return Ok(Some("amazonaws.com".into())),
            "AWS::NotificationARNs" => return Ok(Some(Value::Array(vec![]))),
            NO_VALUE => return Ok(None),
            _ => {}
        }
        if let Some(v) = self.parameters.get(name) {
            return Ok(Some(v.clone()));
        }
        if self.resource(name).is_none() {
            return Err(format!(
                "Ref {name}: neither a parameter with a value (give it a Default or an override) nor a resource"
            ));
        }
        if depth > 24 {
            return Err(format!("Ref {name}: circular reference"));
        }
        let rname = self.resource_name(name)?;
        let value = match self.resource_type(name) {
            "AWS::StepFunctions::Activity" => l.activity_arn(&rname),
            "AWS::Serverless::StateMachine" | "AWS::StepFunctions::StateMachine" => {
                l.state_machine_arn(&rname)
            }
            "AWS::SNS::Topic" => format!("arn:aws:sns:{}:{}:{rname}", l.region, l.account),
            "AWS::SQS::Queue" => format!(
                "https://sqs.{}.amazonaws.com/{}/{rname}",
                l.region, l.account
            ),
            _ => rname,
        };
        Ok(Some(Value::String(value)))
    }

    fn get_att(&self, id: &str, attr: &str) -> Result<Value, String> {
        let l = &self.options.locality;
        if self.resource(id).is_none() {
            // The role SAM generates for a function or state machine without `Role`.
            let sam_role = id.strip_suffix("Role").is_some_and(|owner| {
                matches!(
                    self.resource_type(owner),
                    "AWS::Serverless::Function" | "AWS::Serverless::StateMachine"
                )
            });
            if sam_role && attr == "Arn" {
                return Ok(Value::String(format!(
                    "arn:aws:iam::{}:role/{id}",
                    l.account
                )));
            }
            return Err(format!("Fn::GetAtt {id}.{attr}: no resource {id}"));
        }
        let name = self.resource_name(id)?;
        let ty = self.resource_type(id);
        let v = match (ty, attr) {
            ("AWS::Serverless::Function" | "AWS::Lambda::Function", "Arn") => l.function_arn(&name),
            ("AWS::StepFunctions::Activity", "Arn") => l.activity_arn(&name),
            ("AWS::Serverless::StateMachine" | "AWS::StepFunctions::StateMachine", "Arn") => {
                l.state_machine_arn(&name)
            }
            (_, "Name" | "FunctionName" | "TopicName" | "QueueName" | "StateMachineName") => name,
            ("AWS::SNS::Topic", "TopicArn") => {
                format!("arn:aws:sns:{}:{}:{name}", l.region, l.account)
            }
            ("AWS::SQS::Queue", "Arn") => format!("arn:aws:sqs:{}:{}:{name}", l.region, l.account),
            ("AWS::SQS::Queue", "QueueUrl") => format!(
                "https://sqs.{}.amazonaws.com/{}/{name}",
                l.region, l.account
            ),
            ("AWS::S3::Bucket", "Arn") => format!("arn:aws:s3:::{name}"),
            ("AWS::S3::Bucket", "DomainName") => format!("{name}.s3.amazonaws.com"),
            ("AWS::IAM::Role", "Arn") => format!("arn:aws:iam::{}:role/{name}", l.account),
            ("AWS::EC2::SecurityGroup", "GroupId") => format!("sg-{id}"),
            (_, "Arn") => format!("arn:aws:local:{}:{}:{id}", l.region, l.account),
            _ if self.placeholder_attributes => format!("{id}.{attr}"),
            _ => {
                return Err(format!(
                    "Fn::GetAtt {id}.{attr} ({ty}) is not supported by the local engine"
                ));
            }
        };
        Ok(Value::String(v))
    }

    /// Evaluates a value; `None` is `AWS::NoValue`.
    fn eval(&self, v: &Value, depth: usize) -> Result<Option<Value>, String> {
        if depth > 64 {
            return Err("intrinsic functions nested too deeply (circular?)".into());
        }
        let d = depth + 1;
        if let Some((key, arg)) = single_key(v) {
            match key {
                "Ref" => {
                    let name = arg.as_str().ok_or("Ref takes a name")?;
                    return self.reference(name, d);
                }
                "Fn::GetAtt" => {
                    let (id, attr) = match arg {
                        Value::String(s) => s
                            .split_once('.')
                            .map(|(a, b)| (a.to_string(), b.to_string()))
                            .ok_or(format!("Fn::GetAtt {s}: expected LogicalId.Attribute"))?,
                        Value::Array(a) if a.len() == 2 => {
                            let attr = self.eval_text(&a[1], d)?;
                            (scalar_text(&a[0]), attr)
                        }
                        _ => return Err("Fn::GetAtt takes LogicalId.Attribute".into()),
                    };
                    return self.get_att(&id, &attr).map(Some);
                }
                "Fn::Sub" => return self.sub(arg, d).map(|s| Some(Value::String(s))),
                "Fn::Join" => {
                    let args = args_n(arg, 2, "Fn::Join")?;
                    let delim = scalar_text(&args[0]);
                    let list = match self.eval(&args[1], d)? {
                        Some(Value::Array(items)) => items,
                        other => return Err(format!("Fn::Join needs a list, got {other:?}")),
                    };
                    let parts: Vec<String> = list.iter().map(scalar_text).collect();
                    return Ok(Some(Value::String(parts.join(&delim))));
                }
                "Fn::If" => {
                    let args = args_n(arg, 3, "Fn::If")?;
                    let name = args[0]
                        .as_str()
                        .ok_or("Fn::If takes a condition name first")?;
                    let branch = if self.condition(name)? {
                        &args[1]
                    } else {
                        &args[2]
                    };
                    return self.eval(branch, d);
                }
                "Fn::Equals" | "Fn::Not" | "Fn::And" | "Fn::Or" | "Condition" => {
                    return self.eval_condition(v, d).map(|b| Some(Value::Bool(b)));
                }
                "Fn::Select" => {
                    let args = args_n(arg, 2, "Fn::Select")?;
                    let index: usize = self
                        .eval_text(&args[0], d)?
                        .parse()
                        .map_err(|_| "Fn::Select needs a numeric index")?;
                    return match self.eval(&args[1], d)? {
                        Some(Value::Array(items)) => items
                            .get(index)
                            .cloned()
                            .map(Some)
                            .ok_or(format!("Fn::Select index {index} out of range")),
                        _ => Err("Fn::Select needs a list".into()),
                    };
                }
                "Fn::Split" => {
                    let args = args_n(arg, 2, "Fn::Split")?;
                    let delim = scalar_text(&args[0]);
                    let s = self.eval_text(&args[1], d)?;
                    return Ok(Some(Value::Array(
                        s.split(delim.as_str())
                            .map(|p| Value::String(p.into()))
                            .collect(),
                    )));
                }
                "Fn::Base64" => {
                    use base64::Engine as _;
                    let text = self.eval_text(arg, d)?;
                    let encoded = base64::engine::general_purpose::STANDARD.encode(text);
                    return Ok(Some(Value::String(encoded)));
                }
                "Fn::FindInMap" => {
                    let args = args_n(arg, 3, "Fn::FindInMap")?;
                    let keys: Vec<String> = args
                        .iter()
                        .map(|a| self.eval_text(a, d))
                        .collect::<Result<_, _>>()?;
                    return self
                        .mappings
                        .get(&keys[0])
                        .and_then(|m| m.get(&keys[1]))
                        .and_then(|m| m.get(&keys[2]))
                        .cloned()
                        .map(Some)
                        .ok_or(format!("Fn::FindInMap {}: no such entry", keys.join(".")));
                }
                k if k.starts_with("Fn::") => {
                    return Err(format!(
                        "{k} is not supported by the local engine's template reader"
                    ));
                }
                _ => {}
            }
        }
        match v {
            Value::Array(items) => {
                let mut out = Vec::with_capacity(items.len());
                for item in items {
                    if let Some(x) = self.eval(item, d)? {
                        out.push(x);
                    }
                }
                Ok(Some(Value::Array(out)))
            }
            Value::Object(m) => {
                let mut out = Map::new();
                for (k, item) in m {
                    if let Some(x) = self.eval(item, d)? {
                        out.insert(k.clone(), x);
                    }
                }
                Ok(Some(Value::Object(out)))
            }
            other => Ok(Some(other.clone())),
        }
    }

    fn eval_text(&self, v: &Value, depth: usize) -> Result<String, String> {
        Ok(opt_text(&self.eval(v, depth)?))
    }

    /// `Fn::Sub`: `"text ${Name} ${Res.Attr} ${!Literal}"` or `[text, {vars}]`.
    fn sub(&self, arg: &Value, depth: usize) -> Result<String, String> {
        let (text, vars) = match arg {
            Value::String(s) => (s.clone(), Map::new()),
            Value::Array(a) if a.len() == 2 => {
                let text = a[0].as_str().ok_or("Fn::Sub: first item must be text")?;
                let vars = a[1].as_object().cloned().unwrap_or_default();
                (text.to_string(), vars)
            }
            _ => return Err("Fn::Sub takes a string or [string, {variables}]".into()),
        };
        let mut out = String::new();
        let mut rest = text.as_str();
        while let Some(start) = rest.find("${") {
            out.push_str(&rest[..start]);
            let after = &rest[start + 2..];
            let end = after
                .find('}')
                .ok_or(format!("Fn::Sub: unclosed ${{ in {text:?}"))?;
            let name = &after[..end];
            if let Some(literal) = name.strip_prefix('!') {
                out.push_str("${");
                out.push_str(literal);
                out.push('}');
            } else if let Some(v) = vars.get(name) {
                out.push_str(&self.eval_text(v, depth)?);
            } else if let Some((id, attr)) = name.split_once('.')
                && !name.starts_with("AWS::")
            {
                out.push_str(&scalar_text(&self.get_att(id, attr)?));
            } else {
                out.push_str(&opt_text(&self.reference(name, depth)?));
            }
            rest = &after[end + 1..];
        }
        out.push_str(rest);
        Ok(out)
    }

    /// An `AWS::Events::Rule`.
    fn events_rule(
        &self,
        id: &str,
        resource: &Value,
        functions: &[FunctionSpec],
    ) -> Result<Vec<FoundRule>, String> {
        let empty = Value::Object(Map::new());
        let props = resource.get("Properties").unwrap_or(&empty);
        let not_run = |reason: String| {
            Ok(vec![Err(UnemulatedRule {
                id: id.to_owned(),
                reason,
            })])
        };
        let Some(raw) = props.get("EventPattern") else {
            return not_run(
                "a schedule rule (no EventPattern): schedules do not run locally; start \
                 executions yourself"
                    .into(),
            );
        };
        let Some(pattern) = self.rule_pattern(raw, props.get("EventBusName"))? else {
            return not_run(self.bus_reason(props.get("EventBusName"))?);
        };
        if !pattern.may_match_status_changes() {
            return not_run(irrelevant_reason());
        }
        if let Some(why) = pattern.unsupported() {
            return Err(unsupported_message(&why));
        }
        if let Some(state) = props.get("State") {
            let state = self.eval_text(state, 0)?;
            if state == "DISABLED" {
                return not_run("State is DISABLED (AWS delivers nothing either)".into());
            }
        }
        let targets = match props.get("Targets") {
            None => Vec::new(),
            Some(t) => match self.eval(t, 0)? {
                Some(Value::Array(items)) => items,
                None => Vec::new(),
                Some(other) => return Err(format!("Targets must be a list, got {other}")),
            },
        };
        if targets.is_empty() {
            return not_run("no Targets".into());
        }
        let mut found = Vec::new();
        for t in &targets {
            let tid = t.get("Id").map(scalar_text).unwrap_or_default();
            for key in ["Input", "InputPath", "InputTransformer"] {
                if t.get(key).is_some() {
                    return Err(transformed_input_message(&format!("target {tid}"), key));
                }
            }
            let arn = t.get("Arn").map(scalar_text).unwrap_or_default();
            let Some(f) = functions.iter().find(|f| f.arn == arn) else {
                return Err(format!(
                    "target {tid} ({arn}) is not a function of this template: the local engine \
                     delivers Step Functions status changes to the template's functions only"
                ));
            };
            found.push(RuleTarget {
                logical_id: f.logical_id.clone(),
                name: f.name.clone(),
                arn: f.arn.clone(),
            });
        }
        Ok(vec![Ok(EventRuleSpec {
            id: id.to_owned(),
            pattern,
            targets: found,
        })])
    }

    /// The rules of a SAM resource's `Events` (its `EventBridgeRule` / `CloudWatchEvent`
    /// entries; schedules are listed as not run). `target` is the function itself, or `None`
    /// for a state machine (whose rules the engine cannot run).
    fn sam_events(
        &self,
        id: &str,
        resource: &Value,
        target: Option<&FunctionSpec>,
    ) -> Result<Vec<FoundRule>, String> {
        let Some(events) = resource
            .get("Properties")
            .and_then(|p| p.get("Events"))
            .and_then(Value::as_object)
        else {
            return Ok(Vec::new());
        };
        let mut out = Vec::new();
        for (name, ev) in events {
            let rule_id = format!("{id}.{name}");
            let not_run = |reason: String| {
                Err(UnemulatedRule {
                    id: rule_id.clone(),
                    reason,
                })
            };
            let kind = ev.get("Type").map(|t| self.eval_text(t, 0)).transpose()?;
            let empty = Value::Object(Map::new());
            let props = ev.get("Properties").unwrap_or(&empty);
            match kind.as_deref().unwrap_or("") {
                "Schedule" | "ScheduleV2" => {
                    out.push(not_run(
                        "a schedule: schedules do not run locally; start executions yourself"
                            .into(),
                    ));
                }
                "EventBridgeRule" | "CloudWatchEvent" => {
                    let in_event = |m: String| format!("Events.{name}: {m}");
                    let raw = props
                        .get("Pattern")
                        .ok_or_else(|| in_event("an EventBridgeRule needs a Pattern".into()))?;
                    let Some(pattern) = self
                        .rule_pattern(raw, props.get("EventBusName"))
                        .map_err(in_event)?
                    else {
                        out.push(not_run(self.bus_reason(props.get("EventBusName"))?));
                        continue;
                    };
                    if !pattern.may_match_status_changes() {
                        out.push(not_run(irrelevant_reason()));
                        continue;
                    }
                    if let Some(why) = pattern.unsupported() {
                        return Err(in_event(unsupported_message(&why)));
                    }
                    let disabled = match (props.get("State"), props.get("Enabled")) {
                        (Some(s), _) => self.eval_text(s, 0)? == "DISABLED",
                        (None, Some(e)) => self.eval_text(e, 0)? == "false",
                        _ => false,
                    };
                    if disabled {
                        out.push(not_run("disabled (AWS delivers nothing either)".into()));
                        continue;
                    }
                    for key in ["Input", "InputPath", "InputTransformer"] {
                        if props.get(key).is_some() {
                            return Err(in_event(transformed_input_message("the rule", key)));
                        }
                    }
                    let Some(f) = target else {
                        return Err(in_event(
                            "a rule targeting a state machine: the local engine delivers Step \
                             Functions status changes to the template's functions only"
                                .into(),
                        ));
                    };
                    out.push(Ok(EventRuleSpec {
                        id: rule_id.clone(),
                        pattern,
                        targets: vec![RuleTarget {
                            logical_id: f.logical_id.clone(),
                            name: f.name.clone(),
                            arn: f.arn.clone(),
                        }],
                    }));
                }
                _ => {} // Api, SQS, S3, …: not EventBridge rules.
            }
        }
        Ok(out)
    }

    /// The pattern of a rule on the default bus; `None` for a rule on another bus (Step
    /// Functions sends its events to the default bus).
    fn rule_pattern(
        &self,
        raw: &Value,
        bus: Option<&Value>,
    ) -> Result<Option<EventPattern>, String> {
        if let Some(b) = bus {
            let b = self.eval_text(b, 0)?;
            if !(b.is_empty() || b == "default" || b.ends_with(":event-bus/default")) {
                return Ok(None);
            }
        }
        let value = match self.eval(raw, 0)? {
            Some(Value::String(text)) => serde_json::from_str(&text)
                .map_err(|e| format!("EventPattern is a string but not JSON: {e}"))?,
            Some(v) => v,
            None => Value::Null,
        };
        EventPattern::parse(&value).map(Some)
    }

    fn bus_reason(&self, bus: Option<&Value>) -> Result<String, String> {
        let b = bus.map(|b| self.eval_text(b, 0)).transpose()?;
        Ok(format!(
            "on event bus {}: Step Functions sends its events to the default bus",
            b.unwrap_or_default()
        ))
    }

    fn state_machine(
        &self,
        id: &str,
        resource: &Value,
        name: &str,
        base: &Path,
    ) -> Result<StateMachineSpec, String> {
        let empty = Value::Object(Map::new());
        let props = resource.get("Properties").unwrap_or(&empty);
        let mut definition_path = None;
        let definition: Value = if let Some(uri) = props.get("DefinitionUri") {
            match self.eval(uri, 0)? {
                Some(Value::String(rel)) => {
                    let p = base.join(&rel);
                    let text = std::fs::read_to_string(&p).map_err(|e| {
                        format!(
                            "DefinitionUri {rel}: cannot read {} ({e}); paths are relative to the template",
                            p.display()
                        )
                    })?;
                    let v = serde_json::from_str(&text)
                        .map_err(|e| format!("DefinitionUri {rel}: not valid JSON: {e}"))?;
                    definition_path = Some(p);
                    v
                }
                _ => {
                    return Err("DefinitionUri as an S3 location is not supported locally; \
                         give a path relative to the template"
                        .into());
                }
            }
        } else if let Some(def) = props.get("Definition") {
            self.eval(def, 0)?.unwrap_or(Value::Null)
        } else if let Some(s) = props.get("DefinitionString") {
            let text = self.eval_text(s, 0)?;
            serde_json::from_str(&text).map_err(|e| format!("DefinitionString: not JSON: {e}"))?
        } else {
            return Err(
                "no DefinitionUri, Definition or DefinitionString: nothing to run".to_string(),
            );
        };
        let mut subs = BTreeMap::new();
        if let Some(s) = props.get("DefinitionSubstitutions") {
            match self.eval(s, 0)? {
                Some(Value::Object(m)) => {
                    for (k, v) in m {
                        subs.insert(k, scalar_text(&v));
                    }
                }
                None => {}
                Some(other) => {
                    return Err(format!(
                        "DefinitionSubstitutions must be a map, got {other}"
                    ));
                }
            }
        }
        let definition = substitute(definition, &subs)?;
        let kind = props
            .get("Type")
            .or_else(|| props.get("StateMachineType"))
            .map(|v| self.eval_text(v, 0))
            .transpose()?
            .unwrap_or_else(|| "STANDARD".into());
        Ok(StateMachineSpec {
            logical_id: id.to_string(),
            name: name.to_string(),
            arn: self.options.locality.state_machine_arn(name),
            definition: serde_json::to_string_pretty(&definition).expect("JSON serialises"),
            definition_path,
            kind,
        })
    }
}

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

fn irrelevant_reason() -> String {
    "its pattern matches no Step Functions execution status change (source aws.states, \
     detail-type \"Step Functions Execution Status Change\"): nothing in a local run sends \
     such events"
        .into()
}

fn unsupported_message(why: &str) -> String {
    format!(
        "its event pattern may match Step Functions status changes but {why}; rewrite it with \
         exact values (e.g. \"detail\": {{\"status\": [\"FAILED\", \"TIMED_OUT\"]}}) or run it \
         in AWS only"
    )
}

fn transformed_input_message(what: &str, key: &str) -> String {
    format!(
        "{what} sets {key}: the local engine delivers the Step Functions event unchanged and \
         does not transform it; remove {key} (the target then gets the whole event, as the \
         notify function expects)"
    )
}

fn single_key(v: &Value) -> Option<(&str, &Value)> {
    match v {
        Value::Object(m) if m.len() == 1 => m.iter().next().map(|(k, v)| (k.as_str(), v)),
        _ => None,
    }
}

fn args_n<'v>(arg: &'v Value, n: usize, f: &str) -> Result<&'v [Value], String> {
    match arg {
        Value::Array(a) if a.len() == n => Ok(a),
        _ => Err(format!("{f} takes a list of {n} items")),
    }
}

fn scalar_text(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        Value::Null => String::new(),
        Value::Array(items) => items.iter().map(scalar_text).collect::<Vec<_>>().join(","),
        other => other.to_string(),
    }
}

fn opt_text(v: &Option<Value>) -> String {
    v.as_ref().map(scalar_text).unwrap_or_default()
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
