//! The intrinsic functions of a template (`Ref`, `Fn::GetAtt`, `Fn::Sub`, `Fn::Join`,
//! `Fn::If` with `Conditions`, `Fn::Select`, `Fn::Split`, `Fn::FindInMap`, `Fn::Base64`, …)
//! evaluated against its parameters, resources, conditions and mappings.

use std::cell::RefCell;
use std::collections::{BTreeMap, HashMap};

use serde_json::{Map, Value};

use super::TemplateOptions;

/// Evaluates intrinsic functions against one template.
pub(super) struct Resolver<'a> {
    pub(super) options: &'a TemplateOptions,
    pub(super) parameters: BTreeMap<String, Value>,
    pub(super) resources: Vec<(String, &'a Value)>,
    pub(super) conditions: Map<String, Value>,
    pub(super) mappings: Map<String, Value>,
    pub(super) condition_values: RefCell<HashMap<String, bool>>,
    /// `Fn::GetAtt` of an attribute local runs have no value for (a launch template's version)
    /// gives `LogicalId.Attribute` instead of an error ([`resolve_resources`]).
    pub(super) placeholder_attributes: bool,
}

pub(super) const NO_VALUE: &str = "AWS::NoValue";

impl<'a> Resolver<'a> {
    pub(super) fn new(root: &'a Value, options: &'a TemplateOptions) -> Result<Self, String> {
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

    pub(super) fn resource(&self, id: &str) -> Option<&'a Value> {
        self.resources
            .iter()
            .find(|(k, _)| k == id)
            .map(|(_, v)| *v)
    }

    pub(super) fn resource_type(&self, id: &str) -> &'a str {
        self.resource(id)
            .and_then(|r| r.get("Type"))
            .and_then(Value::as_str)
            .unwrap_or("")
    }

    pub(super) fn resource_enabled(&self, id: &str) -> Result<bool, String> {
        match self.resource(id).and_then(|r| r.get("Condition")) {
            Some(Value::String(c)) => self.condition(c),
            _ => Ok(true),
        }
    }

    pub(super) fn condition(&self, name: &str) -> Result<bool, String> {
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

    pub(super) fn eval_condition(&self, v: &Value, depth: usize) -> Result<bool, String> {
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
    pub(super) fn resource_name(&self, id: &str) -> Result<String, String> {
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
            "AWS::DynamoDB::Table" => "TableName",
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

    pub(super) fn reference(&self, name: &str, depth: usize) -> Result<Option<Value>, String> {
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

    pub(super) fn get_att(&self, id: &str, attr: &str) -> Result<Value, String> {
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
    pub(super) fn eval(&self, v: &Value, depth: usize) -> Result<Option<Value>, String> {
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

    pub(super) fn eval_text(&self, v: &Value, depth: usize) -> Result<String, String> {
        Ok(opt_text(&self.eval(v, depth)?))
    }

    /// `Fn::Sub`: `"text ${Name} ${Res.Attr} ${!Literal}"` or `[text, {vars}]`.
    pub(super) fn sub(&self, arg: &Value, depth: usize) -> Result<String, String> {
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
}

pub(super) fn irrelevant_reason() -> String {
    "its pattern matches no Step Functions execution status change (source aws.states, \
     detail-type \"Step Functions Execution Status Change\"): nothing in a local run sends \
     such events"
        .into()
}

pub(super) fn unsupported_message(why: &str) -> String {
    format!(
        "its event pattern may match Step Functions status changes but {why}; rewrite it with \
         exact values (e.g. \"detail\": {{\"status\": [\"FAILED\", \"TIMED_OUT\"]}}) or run it \
         in AWS only"
    )
}

pub(super) fn transformed_input_message(what: &str, key: &str) -> String {
    format!(
        "{what} sets {key}: the local engine delivers the Step Functions event unchanged and \
         does not transform it; remove {key} (the target then gets the whole event, as the \
         notify function expects)"
    )
}

pub(super) fn single_key(v: &Value) -> Option<(&str, &Value)> {
    match v {
        Value::Object(m) if m.len() == 1 => m.iter().next().map(|(k, v)| (k.as_str(), v)),
        _ => None,
    }
}

pub(super) fn args_n<'v>(arg: &'v Value, n: usize, f: &str) -> Result<&'v [Value], String> {
    match arg {
        Value::Array(a) if a.len() == n => Ok(a),
        _ => Err(format!("{f} takes a list of {n} items")),
    }
}

pub(super) fn scalar_text(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        Value::Null => String::new(),
        Value::Array(items) => items.iter().map(scalar_text).collect::<Vec<_>>().join(","),
        other => other.to_string(),
    }
}

pub(super) fn opt_text(v: &Option<Value>) -> String {
    v.as_ref().map(scalar_text).unwrap_or_default()
}
