//! Loading and validating a definition into typed states.
//!
//! Every state is checked against the fields its type allows; paths and templates are parsed
//! here (once), so a definition that loads can only fail at run time on data. Anything this
//! interpreter does not implement fails the load with [`LoadError::Unsupported`].

use std::collections::{BTreeSet, HashMap, HashSet};
use std::sync::Arc;

use serde_json::{Map, Value};
use stepops_asl_data::choice::Rule;
use stepops_asl_data::path::JsonPath;

use crate::LoadError;

/// A parsed and validated state machine definition (JSONPath ASL).
#[derive(Debug)]
pub struct Definition {
    pub(crate) machine: Arc<Machine>,
    pub(crate) timeout_seconds: Option<u64>,
}

/// One state machine body: the top level, a Parallel branch or a Map's ItemProcessor.
#[derive(Debug)]
pub(crate) struct Machine {
    pub start_at: String,
    pub states: HashMap<String, Arc<State>>,
}

/// `InputPath` / `OutputPath` / `ResultPath`: absent (`$`), `null`, or a path.
#[derive(Debug, Clone)]
pub(crate) enum PathField {
    Default,
    Null,
    Path(JsonPath),
}

#[derive(Debug)]
pub(crate) struct State {
    pub name: String,
    pub kind: Kind,
    pub input_path: PathField,
    pub output_path: PathField,
    pub parameters: Option<Value>,
    pub result_selector: Option<Value>,
    pub result_path: PathField,
    pub assign: Option<Value>,
    pub next: Option<String>,
    pub retry: Vec<Retrier>,
    pub catch: Vec<Catcher>,
    /// Whether the state refers to the context object `$$` at all.
    pub uses_context: bool,
    /// Whether it may read `$$.Execution.Input` (copied into the context only then).
    pub uses_execution_input: bool,
}

impl State {
    /// The prefix of history event types: "Pass", "Task", "Map", …
    pub fn type_name(&self) -> &'static str {
        match &self.kind {
            Kind::Pass { .. } => "Pass",
            Kind::Task(_) => "Task",
            Kind::Choice { .. } => "Choice",
            Kind::Wait(_) => "Wait",
            Kind::Succeed => "Succeed",
            Kind::Fail { .. } => "Fail",
            Kind::Parallel { .. } => "Parallel",
            Kind::Map(_) => "Map",
        }
    }
}

#[derive(Debug)]
pub(crate) enum Kind {
    Pass {
        result: Option<Value>,
    },
    Task(TaskSpec),
    Choice {
        /// Each top-level rule with its own `Assign` (used instead of the state's when it matches).
        choices: Vec<(Rule, Option<Value>)>,
        default: Option<String>,
    },
    Wait(WaitSpec),
    Succeed,
    Fail {
        error: Option<StrOrPath>,
        cause: Option<StrOrPath>,
    },
    Parallel {
        branches: Vec<Arc<Machine>>,
    },
    Map(Box<MapSpec>),
}

/// A literal string, or a path / intrinsic call (`ErrorPath`, `CausePath`).
#[derive(Debug)]
pub(crate) enum StrOrPath {
    Literal(String),
    Path { field: &'static str, expr: String },
}

/// An integer given literally or through a `…Path` field.
#[derive(Debug, Clone)]
pub(crate) enum IntOrPath {
    Literal(u64),
    Path(JsonPath),
}

#[derive(Debug)]
pub(crate) struct TaskSpec {
    pub resource: String,
    pub timeout: Option<IntOrPath>,
    pub heartbeat: Option<IntOrPath>,
}

#[derive(Debug)]
pub(crate) enum WaitSpec {
    Seconds(u64),
    Timestamp(String),
    SecondsPath(JsonPath),
    TimestampPath(JsonPath),
}

#[derive(Debug, Clone)]
pub(crate) struct Retrier {
    pub error_equals: Vec<String>,
    pub interval_seconds: f64,
    pub max_attempts: u32,
    pub backoff_rate: f64,
    pub max_delay_seconds: Option<f64>,
    pub full_jitter: bool,
}

#[derive(Debug, Clone)]
pub(crate) struct Catcher {
    pub error_equals: Vec<String>,
    pub next: String,
    pub result_path: PathField,
    pub assign: Option<Value>,
}

#[derive(Debug)]
pub(crate) struct MapSpec {
    pub processor: Arc<Machine>,
    pub distributed: bool,
    pub items_path: Option<JsonPath>,
    pub item_selector: Option<Value>,
    pub max_concurrency: Option<IntOrPath>,
    pub item_reader: Option<ItemReader>,
    pub item_batcher: Option<ItemBatcher>,
    pub tolerated_percentage: Option<NumOrPath>,
    pub tolerated_count: Option<NumOrPath>,
    pub result_writer: Option<ResultWriter>,
    pub label: Option<String>,
}

/// A number given literally (validated at load) or through a path (validated at run time).
#[derive(Debug, Clone)]
pub(crate) enum NumOrPath {
    Literal(f64),
    Path(JsonPath),
}

#[derive(Debug)]
pub(crate) struct ItemReader {
    /// `getObject` or `listObjectsV2`.
    pub resource: String,
    pub parameters: Value,
    /// `ReaderConfig` as given (InputType, CSVHeaderLocation, CSVHeaders, MaxItems, …).
    pub config: Map<String, Value>,
}

#[derive(Debug)]
pub(crate) struct ItemBatcher {
    pub max_items: Option<IntOrPath>,
    pub max_bytes: Option<IntOrPath>,
    pub batch_input: Option<Value>,
}

#[derive(Debug)]
pub(crate) struct ResultWriter {
    pub parameters: Value,
}

fn invalid(msg: impl Into<String>) -> LoadError {
    LoadError::Invalid(msg.into())
}

fn unsupported(msg: impl Into<String>) -> LoadError {
    LoadError::Unsupported(msg.into())
}

impl Definition {
    /// Parses and validates (schema, reachable states, Next/Default targets exist, terminal
    /// states, unsupported features such as JSONata refused) with errors naming the state.
    pub fn parse(json: &str) -> Result<Definition, LoadError> {
        let raw: Value = serde_json::from_str(json).map_err(|e| LoadError::Json(e.to_string()))?;
        let obj = raw
            .as_object()
            .ok_or_else(|| invalid("the definition must be a JSON object"))?;
        check_query_language(obj, "the state machine")?;
        allow_fields(
            obj,
            &[
                "Comment",
                "StartAt",
                "States",
                "TimeoutSeconds",
                "Version",
                "QueryLanguage",
            ],
            "the state machine",
        )?;
        let timeout_seconds = match obj.get("TimeoutSeconds") {
            None => None,
            Some(v) => Some(v.as_u64().filter(|n| *n > 0).ok_or_else(|| {
                invalid("the state machine's TimeoutSeconds must be a positive integer")
            })?),
        };
        if let Some(v) = obj.get("Version")
            && v != "1.0"
        {
            return Err(invalid("the state machine's Version must be \"1.0\""));
        }
        let machine = parse_machine(obj, "the state machine", false)?;
        Ok(Definition {
            machine,
            timeout_seconds,
        })
    }

    /// The definition's `TimeoutSeconds` (execution-level), if any.
    pub fn timeout_seconds(&self) -> Option<u64> {
        self.timeout_seconds
    }

    /// Every distinct Task `Resource` the definition uses (activity ARNs, Lambda ARNs, …),
    /// nested states included, for the engine to check or register before running.
    pub fn task_resources(&self) -> Vec<String> {
        let mut out = BTreeSet::new();
        collect_resources(&self.machine, &mut out);
        out.into_iter().collect()
    }
}

fn collect_resources(m: &Machine, out: &mut BTreeSet<String>) {
    for s in m.states.values() {
        match &s.kind {
            Kind::Task(t) => {
                out.insert(t.resource.clone());
            }
            Kind::Parallel { branches } => branches.iter().for_each(|b| collect_resources(b, out)),
            Kind::Map(spec) => collect_resources(&spec.processor, out),
            _ => {}
        }
    }
}

fn check_query_language(obj: &Map<String, Value>, what: &str) -> Result<(), LoadError> {
    match obj.get("QueryLanguage") {
        None => Ok(()),
        Some(Value::String(s)) if s == "JSONPath" => Ok(()),
        Some(Value::String(s)) if s == "JSONata" => Err(unsupported(format!(
            "{what} sets QueryLanguage \"JSONata\"; the local engine implements JSONPath only"
        ))),
        Some(other) => Err(invalid(format!(
            "{what} has an invalid QueryLanguage {other} (expected \"JSONPath\" or \"JSONata\")"
        ))),
    }
}

fn allow_fields(obj: &Map<String, Value>, allowed: &[&str], what: &str) -> Result<(), LoadError> {
    const JSONATA: [&str; 3] = ["Arguments", "Output", "Items"];
    for key in obj.keys() {
        if !allowed.contains(&key.as_str()) {
            if JSONATA.contains(&key.as_str()) {
                return Err(unsupported(format!(
                    "{what} uses the JSONata field '{key}'; the local engine implements JSONPath only"
                )));
            }
            return Err(invalid(format!(
                "{what}: field '{key}' is not supported here"
            )));
        }
    }
    Ok(())
}

fn parse_machine(
    obj: &Map<String, Value>,
    what: &str,
    nested: bool,
) -> Result<Arc<Machine>, LoadError> {
    let start_at = obj
        .get("StartAt")
        .and_then(Value::as_str)
        .ok_or_else(|| invalid(format!("{what} has no StartAt string")))?
        .to_owned();
    let states_obj = obj
        .get("States")
        .and_then(Value::as_object)
        .ok_or_else(|| invalid(format!("{what} has no States object")))?;
    if states_obj.is_empty() {
        return Err(invalid(format!("{what} has an empty States object")));
    }
    let _ = nested;
    let mut states = HashMap::new();
    for (name, body) in states_obj {
        if name.is_empty() || name.chars().count() > 80 {
            return Err(invalid(format!(
                "state name '{name}' must be 1 to 80 characters long"
            )));
        }
        let state = parse_state(name, body)?;
        states.insert(name.clone(), Arc::new(state));
    }
    if !states.contains_key(&start_at) {
        return Err(invalid(format!(
            "{what}: StartAt '{start_at}' is not a state of its States"
        )));
    }
    // Transition targets exist.
    for s in states.values() {
        let mut targets: Vec<&str> = Vec::new();
        if let Some(n) = &s.next {
            targets.push(n);
        }
        if let Kind::Choice { choices, default } = &s.kind {
            targets.extend(choices.iter().filter_map(|(r, _)| r.next()));
            if let Some(d) = default {
                targets.push(d);
            }
        }
        targets.extend(s.catch.iter().map(|c| c.next.as_str()));
        for t in targets {
            if !states.contains_key(t) {
                return Err(invalid(format!(
                    "state '{}' transitions to '{t}', which is not a state of {what}",
                    s.name
                )));
            }
        }
    }
    // Every state reachable from StartAt.
    let mut seen: HashSet<&str> = HashSet::new();
    let mut todo = vec![start_at.as_str()];
    while let Some(n) = todo.pop() {
        if !seen.insert(n) {
            continue;
        }
        let s = &states[n];
        if let Some(x) = &s.next {
            todo.push(x);
        }
        if let Kind::Choice { choices, default } = &s.kind {
            todo.extend(choices.iter().filter_map(|(r, _)| r.next()));
            if let Some(d) = default {
                todo.push(d);
            }
        }
        todo.extend(s.catch.iter().map(|c| c.next.as_str()));
    }
    let mut unreachable: Vec<&String> = states
        .keys()
        .filter(|k| !seen.contains(k.as_str()))
        .collect();
    if !unreachable.is_empty() {
        unreachable.sort();
        return Err(invalid(format!(
            "state '{}' of {what} is not reachable from StartAt '{start_at}'",
            unreachable[0]
        )));
    }
    Ok(Arc::new(Machine { start_at, states }))
}

fn path_field(obj: &Map<String, Value>, key: &str, state: &str) -> Result<PathField, LoadError> {
    match obj.get(key) {
        None => Ok(PathField::Default),
        Some(Value::Null) => Ok(PathField::Null),
        Some(Value::String(s)) => Ok(PathField::Path(parse_path(s, key, state)?)),
        Some(other) => Err(invalid(format!(
            "state '{state}': {key} must be a string or null, not {other}"
        ))),
    }
}

fn parse_path(text: &str, field: &str, state: &str) -> Result<JsonPath, LoadError> {
    JsonPath::parse(text).map_err(|e| {
        invalid(format!(
            "state '{state}': {field} '{text}' is not a valid JSONPath: {e}"
        ))
    })
}

fn reference_path(text: &str, field: &str, state: &str) -> Result<JsonPath, LoadError> {
    let p = parse_path(text, field, state)?;
    if !p.is_reference() {
        return Err(invalid(format!(
            "state '{state}': {field} '{text}' must be a Reference Path (no wildcards, filters or slices)"
        )));
    }
    Ok(p)
}

fn template(obj: &Map<String, Value>, key: &str, state: &str) -> Result<Option<Value>, LoadError> {
    match obj.get(key) {
        None => Ok(None),
        Some(v) => {
            stepops_asl_data::template::validate(v)
                .map_err(|e| invalid(format!("state '{state}': {key}: {e}")))?;
            Ok(Some(v.clone()))
        }
    }
}

fn opt_str(obj: &Map<String, Value>, key: &str, state: &str) -> Result<Option<String>, LoadError> {
    match obj.get(key) {
        None => Ok(None),
        Some(Value::String(s)) => Ok(Some(s.clone())),
        Some(other) => Err(invalid(format!(
            "state '{state}': {key} must be a string, not {other}"
        ))),
    }
}

fn int_or_path(
    obj: &Map<String, Value>,
    key: &str,
    path_key: &str,
    state: &str,
    min: u64,
) -> Result<Option<IntOrPath>, LoadError> {
    match (obj.get(key), obj.get(path_key)) {
        (Some(_), Some(_)) => Err(invalid(format!(
            "state '{state}': {key} and {path_key} are mutually exclusive"
        ))),
        (Some(v), None) => {
            let n = v.as_u64().filter(|n| *n >= min).ok_or_else(|| {
                invalid(format!(
                    "state '{state}': {key} must be an integer >= {min}, not {v}"
                ))
            })?;
            Ok(Some(IntOrPath::Literal(n)))
        }
        (None, Some(Value::String(p))) => {
            Ok(Some(IntOrPath::Path(reference_path(p, path_key, state)?)))
        }
        (None, Some(other)) => Err(invalid(format!(
            "state '{state}': {path_key} must be a path string, not {other}"
        ))),
        (None, None) => Ok(None),
    }
}

fn parse_state(name: &str, body: &Value) -> Result<State, LoadError> {
    let obj = body
        .as_object()
        .ok_or_else(|| invalid(format!("state '{name}' must be a JSON object")))?;
    let what = format!("state '{name}'");
    check_query_language(obj, &what)?;
    let ty = obj
        .get("Type")
        .and_then(Value::as_str)
        .ok_or_else(|| invalid(format!("state '{name}' has no Type")))?;
    let common: &[&str] = &["Type", "Comment", "QueryLanguage"];
    let io_in: &[&str] = &["InputPath", "OutputPath"];
    let flow: &[&str] = &["Next", "End"];
    let mut allowed: Vec<&str> = common.to_vec();
    match ty {
        "Pass" => {
            allowed.extend(io_in);
            allowed.extend(flow);
            allowed.extend(["Parameters", "Result", "ResultPath", "Assign"]);
        }
        "Task" => {
            allowed.extend(io_in);
            allowed.extend(flow);
            allowed.extend([
                "Resource",
                "Parameters",
                "ResultSelector",
                "ResultPath",
                "Retry",
                "Catch",
                "TimeoutSeconds",
                "TimeoutSecondsPath",
                "HeartbeatSeconds",
                "HeartbeatSecondsPath",
                "Assign",
                "Credentials",
            ]);
        }
        "Choice" => {
            allowed.extend(io_in);
            allowed.extend(["Choices", "Default", "Assign"]);
        }
        "Wait" => {
            allowed.extend(io_in);
            allowed.extend(flow);
            allowed.extend([
                "Seconds",
                "Timestamp",
                "SecondsPath",
                "TimestampPath",
                "Assign",
            ]);
        }
        "Succeed" => allowed.extend(io_in),
        "Fail" => allowed.extend(["Error", "Cause", "ErrorPath", "CausePath"]),
        "Parallel" => {
            allowed.extend(io_in);
            allowed.extend(flow);
            allowed.extend([
                "Branches",
                "Parameters",
                "ResultSelector",
                "ResultPath",
                "Retry",
                "Catch",
                "Assign",
            ]);
        }
        "Map" => {
            allowed.extend(io_in);
            allowed.extend(flow);
            allowed.extend([
                "ItemProcessor",
                "Iterator",
                "ItemsPath",
                "ItemSelector",
                "Parameters",
                "MaxConcurrency",
                "MaxConcurrencyPath",
                "ItemReader",
                "ItemBatcher",
                "ToleratedFailurePercentage",
                "ToleratedFailurePercentagePath",
                "ToleratedFailureCount",
                "ToleratedFailureCountPath",
                "ResultWriter",
                "Label",
                "ResultSelector",
                "ResultPath",
                "Retry",
                "Catch",
                "Assign",
            ]);
        }
        other => {
            return Err(invalid(format!(
                "state '{name}' has an unknown Type '{other}' (expected Task, Pass, Choice, Wait, Succeed, Fail, Parallel or Map)"
            )));
        }
    }
    allow_fields(obj, &allowed, &what)?;
    if obj.contains_key("Credentials") {
        return Err(unsupported(format!(
            "state '{name}' uses Credentials (cross-account roles); the local engine has no IAM"
        )));
    }

    // Transitions.
    let next = opt_str(obj, "Next", name)?;
    let end = match obj.get("End") {
        None => false,
        Some(Value::Bool(b)) => *b,
        Some(other) => {
            return Err(invalid(format!(
                "state '{name}': End must be a boolean, not {other}"
            )));
        }
    };
    let has_flow = allowed.contains(&"Next");
    if has_flow {
        match (&next, end) {
            (Some(_), true) => {
                return Err(invalid(format!(
                    "state '{name}' has both Next and End: true; use one"
                )));
            }
            (None, false) => {
                return Err(invalid(format!(
                    "state '{name}' has neither Next nor End: true (a {ty} state must say where to go)"
                )));
            }
            _ => {}
        }
    }

    let input_path = path_field(obj, "InputPath", name)?;
    let output_path = path_field(obj, "OutputPath", name)?;
    let mut result_path = path_field(obj, "ResultPath", name)?;
    if let PathField::Path(p) = &result_path
        && !p.is_reference()
    {
        return Err(invalid(format!(
            "state '{name}': ResultPath '{}' must be a Reference Path",
            p.as_str()
        )));
    }
    let parameters = template(obj, "Parameters", name)?;
    let result_selector = template(obj, "ResultSelector", name)?;
    let assign = match obj.get("Assign") {
        None => None,
        Some(v @ Value::Object(_)) => {
            stepops_asl_data::template::validate(v)
                .map_err(|e| invalid(format!("state '{name}': Assign: {e}")))?;
            Some(v.clone())
        }
        Some(other) => {
            return Err(invalid(format!(
                "state '{name}': Assign must be an object, not {other}"
            )));
        }
    };
    let retry = parse_retry(obj, name)?;
    let (uses_context, uses_execution_input) = context_needs(body);
    let catch = parse_catch(obj, name)?;

    let kind = match ty {
        "Pass" => Kind::Pass {
            result: obj.get("Result").cloned(),
        },
        "Task" => {
            let resource = obj
                .get("Resource")
                .and_then(Value::as_str)
                .ok_or_else(|| invalid(format!("Task state '{name}' has no Resource string")))?
                .to_owned();
            if !resource.starts_with("arn:") {
                return Err(invalid(format!(
                    "Task state '{name}': Resource '{resource}' is not an ARN (was a ${{Placeholder}} left unsubstituted?)"
                )));
            }
            let timeout = int_or_path(obj, "TimeoutSeconds", "TimeoutSecondsPath", name, 1)?;
            let heartbeat = int_or_path(obj, "HeartbeatSeconds", "HeartbeatSecondsPath", name, 1)?;
            if let (Some(IntOrPath::Literal(t)), Some(IntOrPath::Literal(h))) =
                (&timeout, &heartbeat)
                && h >= t
            {
                return Err(invalid(format!(
                    "Task state '{name}': HeartbeatSeconds ({h}) must be smaller than TimeoutSeconds ({t})"
                )));
            }
            Kind::Task(TaskSpec {
                resource,
                timeout,
                heartbeat,
            })
        }
        "Choice" => {
            let list = obj
                .get("Choices")
                .and_then(Value::as_array)
                .filter(|a| !a.is_empty())
                .ok_or_else(|| {
                    invalid(format!(
                        "Choice state '{name}' needs a non-empty Choices array"
                    ))
                })?;
            let mut choices = Vec::new();
            for (i, r) in list.iter().enumerate() {
                let rule = Rule::parse(r, true)
                    .map_err(|e| invalid(format!("Choice state '{name}': Choices[{i}]: {e}")))?;
                let assign = r.get("Assign").cloned();
                if let Some(a) = &assign {
                    stepops_asl_data::template::validate(a).map_err(|e| {
                        invalid(format!("Choice state '{name}': Choices[{i}].Assign: {e}"))
                    })?;
                }
                choices.push((rule, assign));
            }
            Kind::Choice {
                choices,
                default: opt_str(obj, "Default", name)?,
            }
        }
        "Wait" => {
            let mut forms = Vec::new();
            if let Some(v) = obj.get("Seconds") {
                let n = v.as_u64().ok_or_else(|| {
                    invalid(format!(
                        "Wait state '{name}': Seconds must be a non-negative integer, not {v}"
                    ))
                })?;
                forms.push(WaitSpec::Seconds(n));
            }
            if let Some(v) = obj.get("Timestamp") {
                let s = v.as_str().ok_or_else(|| {
                    invalid(format!("Wait state '{name}': Timestamp must be a string"))
                })?;
                if crate::engine::parse_timestamp(s).is_none() {
                    return Err(invalid(format!(
                        "Wait state '{name}': Timestamp '{s}' is not an ISO-8601 extended offset date-time"
                    )));
                }
                forms.push(WaitSpec::Timestamp(s.to_owned()));
            }
            if let Some(s) = opt_str(obj, "SecondsPath", name)? {
                forms.push(WaitSpec::SecondsPath(reference_path(
                    &s,
                    "SecondsPath",
                    name,
                )?));
            }
            if let Some(s) = opt_str(obj, "TimestampPath", name)? {
                forms.push(WaitSpec::TimestampPath(reference_path(
                    &s,
                    "TimestampPath",
                    name,
                )?));
            }
            if forms.len() != 1 {
                return Err(invalid(format!(
                    "Wait state '{name}' needs exactly one of Seconds, Timestamp, SecondsPath, TimestampPath"
                )));
            }
            Kind::Wait(forms.pop().expect("one form"))
        }
        "Succeed" => Kind::Succeed,
        "Fail" => {
            let error = str_or_path(obj, "Error", "ErrorPath", name)?;
            let cause = str_or_path(obj, "Cause", "CausePath", name)?;
            Kind::Fail { error, cause }
        }
        "Parallel" => {
            let list = obj
                .get("Branches")
                .and_then(Value::as_array)
                .filter(|a| !a.is_empty())
                .ok_or_else(|| {
                    invalid(format!(
                        "Parallel state '{name}' needs a non-empty Branches array"
                    ))
                })?;
            let mut branches = Vec::new();
            for (i, b) in list.iter().enumerate() {
                let bo = b.as_object().ok_or_else(|| {
                    invalid(format!(
                        "Parallel state '{name}': Branches[{i}] must be an object"
                    ))
                })?;
                let what = format!("branch {i} of Parallel state '{name}'");
                check_query_language(bo, &what)?;
                allow_fields(
                    bo,
                    &["Comment", "StartAt", "States", "QueryLanguage"],
                    &what,
                )?;
                branches.push(parse_machine(bo, &what, true)?);
            }
            Kind::Parallel { branches }
        }
        "Map" => Kind::Map(Box::new(parse_map(obj, name, &mut result_path)?)),
        _ => unreachable!("type checked above"),
    };
    // Fields only some types accept in practice.
    if matches!(kind, Kind::Map(_))
        && obj.contains_key("Parameters")
        && obj.contains_key("ItemSelector")
    {
        return Err(invalid(format!(
            "Map state '{name}' has both Parameters and ItemSelector; use ItemSelector"
        )));
    }
    let parameters = if matches!(kind, Kind::Map(_)) {
        None
    } else {
        parameters
    };
    Ok(State {
        name: name.to_owned(),
        kind,
        input_path,
        output_path,
        parameters,
        result_selector,
        result_path,
        assign,
        next,
        retry,
        catch,
        uses_context,
        uses_execution_input,
    })
}

fn str_or_path(
    obj: &Map<String, Value>,
    key: &'static str,
    path_key: &'static str,
    state: &str,
) -> Result<Option<StrOrPath>, LoadError> {
    match (opt_str(obj, key, state)?, opt_str(obj, path_key, state)?) {
        (Some(_), Some(_)) => Err(invalid(format!(
            "Fail state '{state}': {key} and {path_key} are mutually exclusive"
        ))),
        (Some(s), None) => Ok(Some(StrOrPath::Literal(s))),
        (None, Some(p)) => {
            if !stepops_asl_data::intrinsic::is_intrinsic(&p) {
                parse_path(&p, path_key, state)?;
            }
            Ok(Some(StrOrPath::Path {
                field: path_key,
                expr: p,
            }))
        }
        (None, None) => Ok(None),
    }
}

fn error_equals(obj: &Map<String, Value>, what: &str) -> Result<Vec<String>, LoadError> {
    let list = obj
        .get("ErrorEquals")
        .and_then(Value::as_array)
        .filter(|a| !a.is_empty())
        .ok_or_else(|| invalid(format!("{what} needs a non-empty ErrorEquals array")))?;
    let names: Vec<String> = list
        .iter()
        .map(|v| {
            v.as_str()
                .map(str::to_owned)
                .ok_or_else(|| invalid(format!("{what}: ErrorEquals holds a non-string {v}")))
        })
        .collect::<Result<_, _>>()?;
    if names.iter().any(|n| n == "States.ALL") && names.len() > 1 {
        return Err(invalid(format!(
            "{what}: States.ALL must appear alone in its ErrorEquals"
        )));
    }
    Ok(names)
}

fn number(obj: &Map<String, Value>, key: &str, what: &str) -> Result<Option<f64>, LoadError> {
    match obj.get(key) {
        None => Ok(None),
        Some(v) => v
            .as_f64()
            .map(Some)
            .ok_or_else(|| invalid(format!("{what}: {key} must be a number, not {v}"))),
    }
}

fn parse_retry(obj: &Map<String, Value>, state: &str) -> Result<Vec<Retrier>, LoadError> {
    let Some(v) = obj.get("Retry") else {
        return Ok(Vec::new());
    };
    let list = v
        .as_array()
        .ok_or_else(|| invalid(format!("state '{state}': Retry must be an array")))?;
    let mut out = Vec::new();
    for (i, r) in list.iter().enumerate() {
        let what = format!("state '{state}': Retry[{i}]");
        let ro = r
            .as_object()
            .ok_or_else(|| invalid(format!("{what} must be an object")))?;
        allow_fields(
            ro,
            &[
                "ErrorEquals",
                "IntervalSeconds",
                "MaxAttempts",
                "BackoffRate",
                "MaxDelaySeconds",
                "JitterStrategy",
                "Comment",
            ],
            &what,
        )?;
        let error_equals = error_equals(ro, &what)?;
        if error_equals.iter().any(|e| e == "States.ALL") && i + 1 != list.len() {
            return Err(invalid(format!(
                "{what}: a retrier with States.ALL must be the last one"
            )));
        }
        let interval_seconds = number(ro, "IntervalSeconds", &what)?.unwrap_or(1.0);
        if interval_seconds < 1.0 || interval_seconds.fract() != 0.0 {
            return Err(invalid(format!(
                "{what}: IntervalSeconds must be a positive integer"
            )));
        }
        let max_attempts = match ro.get("MaxAttempts") {
            None => 3,
            Some(v) => v
                .as_u64()
                .and_then(|n| u32::try_from(n).ok())
                .ok_or_else(|| {
                    invalid(format!(
                        "{what}: MaxAttempts must be a non-negative integer"
                    ))
                })?,
        };
        let backoff_rate = number(ro, "BackoffRate", &what)?.unwrap_or(2.0);
        if backoff_rate < 1.0 {
            return Err(invalid(format!("{what}: BackoffRate must be at least 1.0")));
        }
        let max_delay_seconds = number(ro, "MaxDelaySeconds", &what)?;
        if let Some(d) = max_delay_seconds
            && (d <= 0.0 || d.fract() != 0.0)
        {
            return Err(invalid(format!(
                "{what}: MaxDelaySeconds must be a positive integer"
            )));
        }
        let full_jitter = match ro.get("JitterStrategy").and_then(Value::as_str) {
            None | Some("NONE") => {
                if ro.get("JitterStrategy").is_some_and(|v| !v.is_string()) {
                    return Err(invalid(format!(
                        "{what}: JitterStrategy must be FULL or NONE"
                    )));
                }
                false
            }
            Some("FULL") => true,
            Some(other) => {
                return Err(invalid(format!(
                    "{what}: JitterStrategy '{other}' must be FULL or NONE"
                )));
            }
        };
        out.push(Retrier {
            error_equals,
            interval_seconds,
            max_attempts,
            backoff_rate,
            max_delay_seconds,
            full_jitter,
        });
    }
    Ok(out)
}

fn parse_catch(obj: &Map<String, Value>, state: &str) -> Result<Vec<Catcher>, LoadError> {
    let Some(v) = obj.get("Catch") else {
        return Ok(Vec::new());
    };
    let list = v
        .as_array()
        .ok_or_else(|| invalid(format!("state '{state}': Catch must be an array")))?;
    let mut out = Vec::new();
    for (i, c) in list.iter().enumerate() {
        let what = format!("state '{state}': Catch[{i}]");
        let co = c
            .as_object()
            .ok_or_else(|| invalid(format!("{what} must be an object")))?;
        allow_fields(
            co,
            &["ErrorEquals", "Next", "ResultPath", "Assign", "Comment"],
            &what,
        )?;
        let error_equals = error_equals(co, &what)?;
        if error_equals.iter().any(|e| e == "States.ALL") && i + 1 != list.len() {
            return Err(invalid(format!(
                "{what}: a catcher with States.ALL must be the last one"
            )));
        }
        let next = co
            .get("Next")
            .and_then(Value::as_str)
            .ok_or_else(|| invalid(format!("{what} has no Next")))?
            .to_owned();
        let result_path = path_field(co, "ResultPath", state)?;
        let assign = co.get("Assign").cloned();
        if let Some(a) = &assign {
            stepops_asl_data::template::validate(a)
                .map_err(|e| invalid(format!("{what}: Assign: {e}")))?;
        }
        out.push(Catcher {
            error_equals,
            next,
            result_path,
            assign,
        });
    }
    Ok(out)
}

fn parse_map(
    obj: &Map<String, Value>,
    name: &str,
    _result_path: &mut PathField,
) -> Result<MapSpec, LoadError> {
    let (proc_val, legacy) = match (obj.get("ItemProcessor"), obj.get("Iterator")) {
        (Some(_), Some(_)) => {
            return Err(invalid(format!(
                "Map state '{name}' has both ItemProcessor and Iterator; use ItemProcessor"
            )));
        }
        (Some(p), None) => (p, false),
        (None, Some(p)) => (p, true),
        (None, None) => {
            return Err(invalid(format!("Map state '{name}' has no ItemProcessor")));
        }
    };
    let po = proc_val.as_object().ok_or_else(|| {
        invalid(format!(
            "Map state '{name}': ItemProcessor must be an object"
        ))
    })?;
    let what = format!("the ItemProcessor of Map state '{name}'");
    check_query_language(po, &what)?;
    allow_fields(
        po,
        &[
            "Comment",
            "StartAt",
            "States",
            "ProcessorConfig",
            "QueryLanguage",
        ],
        &what,
    )?;
    let mut distributed = false;
    if let Some(pc) = po.get("ProcessorConfig") {
        let pc = pc
            .as_object()
            .ok_or_else(|| invalid(format!("{what}: ProcessorConfig must be an object")))?;
        allow_fields(pc, &["Mode", "ExecutionType"], &what)?;
        match pc.get("Mode").and_then(Value::as_str) {
            None | Some("INLINE") => {}
            Some("DISTRIBUTED") => distributed = true,
            Some(other) => {
                return Err(invalid(format!(
                    "{what}: ProcessorConfig.Mode '{other}' must be INLINE or DISTRIBUTED"
                )));
            }
        }
        match pc.get("ExecutionType").and_then(Value::as_str) {
            None | Some("STANDARD") | Some("EXPRESS") => {}
            Some(other) => {
                return Err(invalid(format!(
                    "{what}: ProcessorConfig.ExecutionType '{other}' must be STANDARD or EXPRESS"
                )));
            }
        }
        if distributed && pc.get("ExecutionType").is_none() {
            return Err(invalid(format!(
                "{what}: a DISTRIBUTED Map needs ProcessorConfig.ExecutionType (STANDARD or EXPRESS)"
            )));
        }
    }
    let _ = legacy;
    let processor = parse_machine(po, &what, true)?;

    let items_path = match obj.get("ItemsPath") {
        None => None,
        Some(Value::String(s)) => Some(reference_path(s, "ItemsPath", name)?),
        Some(other) => {
            return Err(invalid(format!(
                "Map state '{name}': ItemsPath must be a string, not {other}"
            )));
        }
    };
    let item_selector = match template(obj, "ItemSelector", name)? {
        Some(v) => Some(v),
        None => template(obj, "Parameters", name)?,
    };
    let max_concurrency = int_or_path(obj, "MaxConcurrency", "MaxConcurrencyPath", name, 0)?;
    let distributed_only = [
        "ItemReader",
        "ItemBatcher",
        "ToleratedFailurePercentage",
        "ToleratedFailurePercentagePath",
        "ToleratedFailureCount",
        "ToleratedFailureCountPath",
        "ResultWriter",
        "Label",
    ];
    if !distributed && let Some(k) = distributed_only.iter().find(|k| obj.contains_key(**k)) {
        return Err(invalid(format!(
            "Map state '{name}': {k} is only valid with ProcessorConfig.Mode DISTRIBUTED"
        )));
    }
    let tolerated_percentage = num_or_path(
        obj,
        "ToleratedFailurePercentage",
        "ToleratedFailurePercentagePath",
        name,
    )?;
    if let Some(NumOrPath::Literal(p)) = &tolerated_percentage
        && !(0.0..=100.0).contains(p)
    {
        return Err(invalid(format!(
            "Map state '{name}': ToleratedFailurePercentage must be between 0 and 100"
        )));
    }
    let tolerated_count = num_or_path(
        obj,
        "ToleratedFailureCount",
        "ToleratedFailureCountPath",
        name,
    )?;
    if let Some(NumOrPath::Literal(c)) = &tolerated_count
        && (*c < 0.0 || c.fract() != 0.0)
    {
        return Err(invalid(format!(
            "Map state '{name}': ToleratedFailureCount must be a non-negative integer"
        )));
    }
    let label = opt_str(obj, "Label", name)?;
    if let Some(l) = &label
        && (l.chars().count() > 40
            || l.chars()
                .any(|c| c.is_whitespace() || "<>{}[]?*\"#%\\^|~`$&,;:/".contains(c)))
    {
        return Err(invalid(format!(
            "Map state '{name}': Label '{l}' must be at most 40 characters without whitespace or special characters"
        )));
    }
    let item_reader = match obj.get("ItemReader") {
        None => None,
        Some(v) => Some(parse_item_reader(v, name)?),
    };
    let item_batcher = match obj.get("ItemBatcher") {
        None => None,
        Some(v) => {
            let bo = v.as_object().ok_or_else(|| {
                invalid(format!("Map state '{name}': ItemBatcher must be an object"))
            })?;
            let what = format!("Map state '{name}': ItemBatcher");
            allow_fields(
                bo,
                &[
                    "MaxItemsPerBatch",
                    "MaxItemsPerBatchPath",
                    "MaxInputBytesPerBatch",
                    "MaxInputBytesPerBatchPath",
                    "BatchInput",
                ],
                &what,
            )?;
            let max_items = int_or_path(bo, "MaxItemsPerBatch", "MaxItemsPerBatchPath", name, 1)?;
            let max_bytes = int_or_path(
                bo,
                "MaxInputBytesPerBatch",
                "MaxInputBytesPerBatchPath",
                name,
                1,
            )?;
            if max_items.is_none() && max_bytes.is_none() {
                return Err(invalid(format!(
                    "{what} needs MaxItemsPerBatch or MaxInputBytesPerBatch (or their Path forms)"
                )));
            }
            let batch_input = template(bo, "BatchInput", name)?;
            Some(ItemBatcher {
                max_items,
                max_bytes,
                batch_input,
            })
        }
    };
    let result_writer = match obj.get("ResultWriter") {
        None => None,
        Some(v) => {
            let ro = v.as_object().ok_or_else(|| {
                invalid(format!(
                    "Map state '{name}': ResultWriter must be an object"
                ))
            })?;
            let what = format!("Map state '{name}': ResultWriter");
            allow_fields(ro, &["Resource", "Parameters", "WriterConfig"], &what)?;
            if ro.contains_key("WriterConfig") {
                return Err(unsupported(format!(
                    "{what}: WriterConfig (result transformation) is not implemented by the local engine"
                )));
            }
            let res = ro.get("Resource").and_then(Value::as_str).unwrap_or("");
            if res != "arn:aws:states:::s3:putObject" {
                return Err(unsupported(format!(
                    "{what}: Resource '{res}' (the local engine writes results only with arn:aws:states:::s3:putObject)"
                )));
            }
            let parameters = template(ro, "Parameters", name)?.unwrap_or(Value::Null);
            Some(ResultWriter { parameters })
        }
    };
    Ok(MapSpec {
        processor,
        distributed,
        items_path,
        item_selector,
        max_concurrency,
        item_reader,
        item_batcher,
        tolerated_percentage,
        tolerated_count,
        result_writer,
        label,
    })
}

fn num_or_path(
    obj: &Map<String, Value>,
    key: &str,
    path_key: &str,
    state: &str,
) -> Result<Option<NumOrPath>, LoadError> {
    match (obj.get(key), obj.get(path_key)) {
        (Some(_), Some(_)) => Err(invalid(format!(
            "Map state '{state}': {key} and {path_key} are mutually exclusive"
        ))),
        (Some(v), None) => Ok(Some(NumOrPath::Literal(v.as_f64().ok_or_else(|| {
            invalid(format!(
                "Map state '{state}': {key} must be a number, not {v}"
            ))
        })?))),
        (None, Some(Value::String(p))) => {
            Ok(Some(NumOrPath::Path(reference_path(p, path_key, state)?)))
        }
        (None, Some(other)) => Err(invalid(format!(
            "Map state '{state}': {path_key} must be a path string, not {other}"
        ))),
        (None, None) => Ok(None),
    }
}

fn parse_item_reader(v: &Value, name: &str) -> Result<ItemReader, LoadError> {
    let what = format!("Map state '{name}': ItemReader");
    let ro = v
        .as_object()
        .ok_or_else(|| invalid(format!("{what} must be an object")))?;
    allow_fields(ro, &["Resource", "Parameters", "ReaderConfig"], &what)?;
    let res = ro.get("Resource").and_then(Value::as_str).unwrap_or("");
    let resource = match res {
        "arn:aws:states:::s3:getObject" => "getObject",
        "arn:aws:states:::s3:listObjectsV2" => "listObjectsV2",
        other => {
            return Err(unsupported(format!(
                "{what}: Resource '{other}' (the local engine reads items with arn:aws:states:::s3:getObject or arn:aws:states:::s3:listObjectsV2 over its local S3 folder)"
            )));
        }
    };
    let parameters = template(ro, "Parameters", name)?.unwrap_or(Value::Object(Map::new()));
    let config = match ro.get("ReaderConfig") {
        None => Map::new(),
        Some(Value::Object(c)) => c.clone(),
        Some(_) => return Err(invalid(format!("{what}: ReaderConfig must be an object"))),
    };
    allow_fields(
        &config,
        &[
            "InputType",
            "CSVHeaderLocation",
            "CSVHeaders",
            "CSVDelimiter",
            "MaxItems",
            "MaxItemsPath",
            "ManifestType",
        ],
        &format!("{what}.ReaderConfig"),
    )?;
    match config.get("InputType").and_then(Value::as_str) {
        None if resource == "listObjectsV2" => {}
        Some("JSON") | Some("JSONL") | Some("CSV") => {}
        Some("MANIFEST") | Some("PARQUET") => {
            return Err(unsupported(format!(
                "{what}: ReaderConfig.InputType {} is not implemented by the local engine (use JSON, JSONL or CSV)",
                config["InputType"]
            )));
        }
        _ if resource == "getObject" => {
            return Err(invalid(format!(
                "{what}: ReaderConfig.InputType must be JSON, JSONL or CSV for s3:getObject"
            )));
        }
        Some(other) => {
            return Err(invalid(format!(
                "{what}: unknown ReaderConfig.InputType '{other}'"
            )));
        }
        None => {}
    }
    Ok(ItemReader {
        resource: resource.to_owned(),
        parameters,
        config,
    })
}

/// Whether a state's JSON mentions `$$`, and whether it may read `$$.Execution.Input` (a
/// reference to `$$`, `$$.Execution` or `$$..x` as a whole counts as reading it).
fn context_needs(body: &Value) -> (bool, bool) {
    let text = body.to_string();
    let mut any = false;
    let mut input = false;
    for (i, _) in text.match_indices("$$") {
        any = true;
        let rest = &text[i + 2..];
        let exec_whole = rest
            .strip_prefix(".Execution")
            .is_some_and(|r| !r.starts_with('.'));
        if rest.starts_with(".Execution.Input")
            || exec_whole
            || !rest.starts_with('.')
            || rest.starts_with("..")
        {
            input = true;
        }
    }
    (any, input)
}
