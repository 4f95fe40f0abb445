//! Loading and validating a definition into typed states.
//!
//! Every state is checked against the fields its type allows; paths and templates are parsed
//! here (once), so a definition that loads can only fail at run time on data. Anything this
//! interpreter does not implement fails the load with [`LoadError::Unsupported`].
//!
//! Here: the typed definition, the machine and the shared field readers; `state.rs` parses
//! one state by its type, `retry.rs` its `Retry` and `Catch`, `map.rs` a Map state.

mod map;
mod retry;
mod state;

use std::collections::{BTreeSet, HashMap, HashSet};
use std::sync::Arc;

use serde_json::{Map, Value};
use stepops_asl_data::choice::Rule;
use stepops_asl_data::path::JsonPath;

use crate::LoadError;
use state::parse_state;

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

/// A nested machine's object (a Parallel branch, a Map's ItemProcessor): `label` names where it
/// stands (for "must be an object"), `what` names it in the other errors; it may hold the
/// fields of a machine and `extra`.
fn nested_machine<'a>(
    value: &'a Value,
    label: &str,
    what: &str,
    extra: &[&str],
) -> Result<&'a Map<String, Value>, LoadError> {
    let obj = value
        .as_object()
        .ok_or_else(|| invalid(format!("{label} must be an object")))?;
    check_query_language(obj, what)?;
    let mut allowed = vec!["Comment", "StartAt", "States"];
    allowed.extend_from_slice(extra);
    allowed.push("QueryLanguage");
    allow_fields(obj, &allowed, what)?;
    Ok(obj)
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
