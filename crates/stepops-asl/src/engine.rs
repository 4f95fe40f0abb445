//! The executor: runs frames (the top level, Parallel branches, Map iterations) state by
//! state, records history events and keeps a resumable tree of frames (the snapshot).
//!
//! All mutable execution state lives in one [`Inner`] behind a mutex: the frame tree (`nodes`),
//! the event counter and the events not yet handed to the store. A recorder loop, running
//! beside the frames, hands pending events plus a snapshot of the tree to the
//! [`ExecutionStore`] (group commit: one call may carry several events).

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use chrono::{DateTime, SecondsFormat, Utc};
use futures::future::BoxFuture;
use futures::stream::{FuturesUnordered, StreamExt};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};
use stepops_asl_data::path::JsonPath;
use stepops_asl_data::{DataError, Scope};
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

use crate::definition::{Catcher, IntOrPath, Kind, Machine, PathField, State, StrOrPath, WaitSpec};
use crate::{
    Definition, ExecutionInfo, ExecutionResult, ExecutionStore, HistoryEvent, LoadError,
    RunOptions, Snapshot, TaskDispatcher,
};

/// Step Functions' payload limit (input, output, result): 256 KiB.
pub(crate) const PAYLOAD_LIMIT: usize = 256 * 1024;
const SNAPSHOT_VERSION: u32 = 1;

/// A state or execution failure: error name and cause, both optional as AWS allows.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Failure {
    pub error: Option<String>,
    pub cause: Option<String>,
}

impl Failure {
    pub fn new(error: impl Into<String>, cause: impl Into<String>) -> Self {
        Failure {
            error: Some(error.into()),
            cause: Some(cause.into()),
        }
    }
}

/// Why a frame stopped early.
#[derive(Debug, Clone)]
pub(crate) enum Stop {
    Failed(Failure),
    Cancelled,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
pub(crate) enum NodeStatus {
    #[default]
    Pending,
    Running,
    Succeeded,
    Failed,
    Aborted,
}

/// One frame of the execution tree: where it is, with what input and variables.
#[derive(Debug, Clone, Serialize, Deserialize, Default)]
pub(crate) struct Node {
    /// The current state (for a failed frame: the state that failed).
    pub state: String,
    /// The raw input of the current state.
    pub input: Value,
    /// This scope's own variables.
    #[serde(default, skip_serializing_if = "Map::is_empty")]
    pub vars: Map<String, Value>,
    #[serde(default)]
    pub entered: i64,
    #[serde(default)]
    pub last_event: i64,
    /// Retries used, per retrier of the current state.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub retries: Vec<u32>,
    #[serde(default)]
    pub status: NodeStatus,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub output: Option<Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cause: Option<String>,
    /// Child frames of the Map/Parallel state in flight (by item / branch index).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub children: Vec<u64>,
    /// Resolved Map settings of the Map state in flight (items already read, limits).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub map: Option<Value>,
    /// A Distributed Map child: its events are not in the parent's history (own counter).
    #[serde(default)]
    pub quiet: bool,
    #[serde(default)]
    pub local_events: i64,
}

/// The resumable state of an execution (what [`Snapshot`] carries).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct Tree {
    pub v: u32,
    pub input: Value,
    pub last_event_id: i64,
    pub next_node: u64,
    pub nodes: BTreeMap<u64, Node>,
    /// RUNNING, SUCCEEDED, FAILED, ABORTED, TIMED_OUT.
    pub status: String,
    #[serde(default)]
    pub redrive_pending: bool,
}

pub(crate) struct Inner {
    pub tree: Tree,
    pub pending: Vec<HistoryEvent>,
    /// The tree changed without a history event (a Distributed Map child's quiet progress).
    pub changed: bool,
    /// Batches the recorder has taken so far (see [`Persisted`]).
    pub taken: u64,
}

/// How far the recorder got: batches written to the store, or the store's failure (after
/// which nothing more is written and the execution is stopped).
#[derive(Debug, Clone, Default)]
pub(crate) struct Persisted {
    pub batches: u64,
    pub failed: Option<String>,
}

impl Inner {
    pub fn node(&mut self, id: u64) -> &mut Node {
        self.tree.nodes.entry(id).or_default()
    }

    /// Appends one event (unless the frame is quiet) and returns its id.
    pub fn emit(&mut self, node: u64, event_type: &str, key: Option<&str>, details: Value) -> i64 {
        let (quiet, prev) = {
            let n = self.node(node);
            (n.quiet, n.last_event)
        };
        if quiet {
            self.changed = true;
            let n = self.node(node);
            n.local_events += 1;
            return n.local_events;
        }
        self.tree.last_event_id += 1;
        let id = self.tree.last_event_id;
        let previous_event_id = if prev > 0 { prev } else { id - 1 };
        self.pending.push(HistoryEvent {
            id,
            previous_event_id,
            timestamp: Utc::now(),
            event_type: event_type.to_owned(),
            details_key: key.map(str::to_owned),
            details,
        });
        self.node(node).last_event = id;
        id
    }

    /// Removes a node and its descendants.
    pub fn drop_subtree(&mut self, id: u64) {
        if let Some(n) = self.tree.nodes.remove(&id) {
            for c in n.children {
                self.drop_subtree(c);
            }
        }
    }

    pub fn new_node(&mut self, node: Node) -> u64 {
        let id = self.tree.next_node;
        self.tree.next_node += 1;
        self.tree.nodes.insert(id, node);
        id
    }
}

/// One running execution.
pub(crate) struct Exec {
    pub info: ExecutionInfo,
    pub tasks: Arc<dyn TaskDispatcher>,
    pub options: RunOptions,
    pub inner: Mutex<Inner>,
    pub dirty: Notify,
    /// What the recorder has persisted ([`Exec::flush`] waits on it).
    pub persisted: tokio::sync::watch::Sender<Persisted>,
    /// Cancelled by the recorder when the store fails: stops every frame.
    pub abort: CancellationToken,
    /// Wakes the recorder from its pause between snapshots: a task waits in [`Exec::flush`],
    /// or the run is over.
    pub urgent: Notify,
    pub ctx_execution: Value,
    /// `ctx_execution` without `Input` (for states that cannot read it).
    pub ctx_execution_lite: Value,
    pub ctx_state_machine: Value,
}

pub(crate) fn ts(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Millis, true)
}

pub(crate) fn to_json(v: &Value) -> String {
    serde_json::to_string(v).unwrap_or_default()
}

fn payload(key: &str, v: &Value) -> Value {
    let mut m = Map::new();
    m.insert(key.to_owned(), Value::String(to_json(v)));
    m.insert(format!("{key}Details"), json!({"truncated": false}));
    Value::Object(m)
}

impl Exec {
    pub fn lock(&self) -> MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub fn emit(&self, node: u64, event_type: &str, key: Option<&str>, details: Value) -> i64 {
        let id = self.lock().emit(node, event_type, key, details);
        self.dirty.notify_one();
        id
    }

    /// Waits until everything emitted so far is in the store. Task states call it before
    /// dispatching, so that no task runs whose scheduling is not persisted. `Err` carries the
    /// store's failure (the recorder is stopping the execution).
    pub async fn flush(&self) -> Result<(), String> {
        let target = {
            let g = self.lock();
            g.taken + u64::from(!g.pending.is_empty() || g.changed)
        };
        self.dirty.notify_one();
        self.urgent.notify_one();
        let mut rx = self.persisted.subscribe();
        match rx
            .wait_for(|p| p.failed.is_some() || p.batches >= target)
            .await
        {
            Ok(p) => p.failed.clone().map_or(Ok(()), Err),
            Err(_) => Ok(()),
        }
    }

    /// Scales a duration in seconds by `time_scale`.
    pub fn scaled(&self, seconds: f64) -> Duration {
        let s = seconds * self.options.time_scale;
        if s.is_finite() && s > 0.0 {
            Duration::from_secs_f64(s.min(1.0e9))
        } else {
            Duration::ZERO
        }
    }

    /// A timeout: `None` when time is not simulated (time_scale 0 disables timeouts).
    pub fn timeout(&self, seconds: u64) -> Option<Duration> {
        if self.options.time_scale > 0.0 {
            Some(self.scaled(seconds as f64))
        } else {
            None
        }
    }

    /// Sleeps (scaled), or returns `Err(Cancelled)` when cancelled first.
    pub async fn sleep(&self, d: Duration, cancel: &CancellationToken) -> Result<(), Stop> {
        if d.is_zero() {
            tokio::task::yield_now().await;
            return if cancel.is_cancelled() {
                Err(Stop::Cancelled)
            } else {
                Ok(())
            };
        }
        tokio::select! {
            _ = tokio::time::sleep(d) => Ok(()),
            _ = cancel.cancelled() => Err(Stop::Cancelled),
        }
    }

    /// The context object `$$` for a state (Null when the state never reads it).
    pub fn context(&self, state: &State, entered: DateTime<Utc>, retry_count: u32) -> Value {
        if !state.uses_context {
            return Value::Null;
        }
        let execution = if state.uses_execution_input {
            self.ctx_execution.clone()
        } else {
            self.ctx_execution_lite.clone()
        };
        json!({
            "Execution": execution,
            "State": {"EnteredTime": ts(entered), "Name": state.name, "RetryCount": retry_count},
            "StateMachine": self.ctx_state_machine.clone(),
        })
    }
}

/// Everything the data processing of one state needs: the state, its node in the frame tree,
/// the Context object and the variables in scope.
pub(crate) struct StateContext {
    pub state: Arc<State>,
    pub node: u64,
    pub entered: i64,
    pub context: Value,
    pub vars: Map<String, Value>,
    /// Variables visible to child frames (outer + this frame's).
    pub outer: Arc<Map<String, Value>>,
}

impl StateContext {
    pub fn scope<'a>(&'a self, input: &'a Value) -> Scope<'a> {
        Scope::new(input, &self.context, &self.vars)
    }

    /// A States.Runtime-style failure with AWS's prefix naming the state.
    pub fn fail(&self, e: DataError) -> Stop {
        Stop::Failed(Failure::new(e.error, self.prefixed(&e.cause)))
    }

    pub fn runtime(&self, cause: impl AsRef<str>) -> Stop {
        Stop::Failed(Failure::new(
            "States.Runtime",
            self.prefixed(cause.as_ref()),
        ))
    }

    pub fn prefixed(&self, cause: &str) -> String {
        format!(
            "An error occurred while executing the state '{}' (entered at the event id #{}). {cause}",
            self.state.name, self.entered
        )
    }

    pub fn input_path(&self, raw: &Value) -> Result<Value, Stop> {
        match &self.state.input_path {
            PathField::Default => Ok(raw.clone()),
            PathField::Null => Ok(Value::Object(Map::new())),
            PathField::Path(p) => read_or_invalid(p, &self.scope(raw)).map_err(|c| self.runtime(c)),
        }
    }

    pub fn output_path(&self, value: Value) -> Result<Value, Stop> {
        match &self.state.output_path {
            PathField::Default => Ok(value),
            PathField::Null => Ok(Value::Object(Map::new())),
            PathField::Path(p) => {
                read_or_invalid(p, &self.scope(&value)).map_err(|c| self.runtime(c))
            }
        }
    }

    pub fn template(&self, tpl: &Value, input: &Value) -> Result<Value, Stop> {
        stepops_asl_data::template::evaluate(tpl, &self.scope(input)).map_err(|e| self.fail(e))
    }

    pub fn result_path(&self, rp: &PathField, raw: &Value, result: Value) -> Result<Value, Stop> {
        match rp {
            PathField::Default => Ok(result),
            PathField::Null => Ok(raw.clone()),
            PathField::Path(p) => {
                stepops_asl_data::path::write(raw.clone(), p, result).map_err(|e| self.fail(e))
            }
        }
    }

    pub fn assign(
        &self,
        assign: Option<&Value>,
        input: &Value,
    ) -> Result<Map<String, Value>, Stop> {
        match assign {
            None => Ok(Map::new()),
            Some(a) => {
                stepops_asl_data::assign::evaluate(a, &self.scope(input)).map_err(|e| self.fail(e))
            }
        }
    }
}

/// AWS's "Invalid path" cause for InputPath/OutputPath/ItemsPath that match nothing.
fn read_or_invalid(p: &JsonPath, scope: &Scope) -> Result<Value, String> {
    p.read(scope).ok_or_else(|| {
        format!(
            "Invalid path '{}' : No results for path: {}",
            p.as_str(),
            p.normalized()
        )
    })
}

/// What a state hands to the frame when it completes.
pub(crate) struct Step {
    pub output: Value,
    pub next: Option<String>,
    pub assigned: Map<String, Value>,
}

/// Whether an `ErrorEquals` list matches an error name.
pub(crate) fn error_matches(names: &[String], error: Option<&str>) -> bool {
    let e = error.unwrap_or("");
    if e == "States.Runtime" {
        return false;
    }
    names.iter().any(|n| {
        n == e
            || (n == "States.ALL" && e != "States.DataLimitExceeded")
            || (n == "States.TaskFailed"
                && !matches!(e, "States.Timeout" | "States.DataLimitExceeded"))
    })
}

/// ISO-8601 extended offset date-time, as Wait's Timestamp requires.
pub(crate) fn parse_timestamp(s: &str) -> Option<DateTime<Utc>> {
    let b = s.as_bytes();
    if b.len() < 20 || b[10] != b'T' {
        return None;
    }
    DateTime::parse_from_rfc3339(s)
        .ok()
        .map(|d| d.with_timezone(&Utc))
}

impl Exec {
    /// Runs one frame from its current state to its end.
    pub fn run_frame(
        self: Arc<Self>,
        machine: Arc<Machine>,
        id: u64,
        outer: Arc<Map<String, Value>>,
        cancel: CancellationToken,
    ) -> BoxFuture<'static, Result<Value, Stop>> {
        Box::pin(async move {
            {
                let mut g = self.lock();
                let n = g.node(id);
                // Resumed after the frame had already finished (a crash before the parent
                // recorded it): its result stands.
                if n.status == NodeStatus::Succeeded {
                    return Ok(n.output.clone().unwrap_or(Value::Null));
                }
                n.status = NodeStatus::Running;
            }
            loop {
                if cancel.is_cancelled() {
                    self.lock().node(id).status = NodeStatus::Aborted;
                    return Err(Stop::Cancelled);
                }
                let (state_name, input, own_vars, retries) = {
                    let mut g = self.lock();
                    let n = g.node(id);
                    (
                        n.state.clone(),
                        n.input.clone(),
                        n.vars.clone(),
                        n.retries.iter().sum::<u32>(),
                    )
                };
                let Some(state) = machine.states.get(&state_name).cloned() else {
                    let f = Failure::new(
                        "States.Runtime",
                        format!(
                            "the snapshot names state '{state_name}', which the definition does not have"
                        ),
                    );
                    self.finish_failed(id, &f);
                    return Err(Stop::Failed(f));
                };
                let entered_time = Utc::now();
                let entered = {
                    let mut g = self.lock();
                    let e = g.emit(
                        id,
                        &format!("{}StateEntered", state.type_name()),
                        Some("stateEnteredEventDetails"),
                        {
                            let mut d = payload("input", &input);
                            d["name"] = Value::String(state.name.clone());
                            d
                        },
                    );
                    g.node(id).entered = e;
                    e
                };
                self.dirty.notify_one();
                let mut vars = (*outer).clone();
                vars.extend(own_vars);
                let child_outer = Arc::new(vars.clone());
                let cx = StateContext {
                    context: self.context(&state, entered_time, retries),
                    state: state.clone(),
                    node: id,
                    entered,
                    vars,
                    outer: child_outer,
                };
                let result = self.clone().run_state(&cx, input, cancel.clone()).await;
                let result = match result {
                    Ok(step) => {
                        let size = serde_json::to_vec(&step.output)
                            .map(|v| v.len())
                            .unwrap_or(0);
                        if size > PAYLOAD_LIMIT {
                            Err(Stop::Failed(Failure::new(
                                "States.DataLimitExceeded",
                                format!(
                                    "The state/task '{}' returned a result with a size exceeding the maximum number of bytes service limit.",
                                    state.name
                                ),
                            )))
                        } else {
                            Ok(step)
                        }
                    }
                    Err(e) => Err(e),
                };
                match result {
                    Ok(step) => {
                        let mut g = self.lock();
                        let mut details = payload("output", &step.output);
                        details["name"] = Value::String(state.name.clone());
                        if !step.assigned.is_empty() {
                            let assigned: Map<String, Value> = step
                                .assigned
                                .iter()
                                .map(|(k, v)| (k.clone(), Value::String(to_json(v))))
                                .collect();
                            details["assignedVariables"] = Value::Object(assigned);
                            details["assignedVariablesDetails"] = json!({"truncated": false});
                        }
                        g.emit(
                            id,
                            &format!("{}StateExited", state.type_name()),
                            Some("stateExitedEventDetails"),
                            details,
                        );
                        let children = {
                            let n = g.node(id);
                            n.vars.extend(step.assigned);
                            n.retries.clear();
                            n.map = None;
                            std::mem::take(&mut n.children)
                        };
                        for c in children {
                            g.drop_subtree(c);
                        }
                        let n = g.node(id);
                        match step.next {
                            Some(next) => {
                                n.state = next;
                                n.input = step.output;
                            }
                            None => {
                                n.status = NodeStatus::Succeeded;
                                n.input = Value::Null;
                                n.vars.clear();
                                n.output = Some(step.output.clone());
                                drop(g);
                                self.dirty.notify_one();
                                return Ok(step.output);
                            }
                        }
                        drop(g);
                        self.dirty.notify_one();
                    }
                    Err(Stop::Failed(f)) => {
                        self.finish_failed(id, &f);
                        return Err(Stop::Failed(f));
                    }
                    Err(Stop::Cancelled) => {
                        self.lock().node(id).status = NodeStatus::Aborted;
                        self.dirty.notify_one();
                        return Err(Stop::Cancelled);
                    }
                }
                // Let the recorder (and sibling frames) run between transitions.
                tokio::task::yield_now().await;
            }
        })
    }

    fn finish_failed(&self, id: u64, f: &Failure) {
        let mut g = self.lock();
        let n = g.node(id);
        n.status = NodeStatus::Failed;
        n.error = f.error.clone();
        n.cause = f.cause.clone();
        drop(g);
        self.dirty.notify_one();
    }

    /// Runs one state (with its Retry/Catch) and returns where to go next.
    async fn run_state(
        self: Arc<Self>,
        cx: &StateContext,
        raw: Value,
        cancel: CancellationToken,
    ) -> Result<Step, Stop> {
        let state = cx.state.clone();
        match &state.kind {
            Kind::Pass { result } => {
                let eff = cx.input_path(&raw)?;
                let eff = match &state.parameters {
                    Some(p) => cx.template(p, &eff)?,
                    None => eff,
                };
                let result = result.clone().unwrap_or(eff);
                let out = cx.result_path(&state.result_path, &raw, result.clone())?;
                let out = cx.output_path(out)?;
                let assigned = cx.assign(state.assign.as_ref(), &result)?;
                Ok(Step {
                    output: out,
                    next: state.next.clone(),
                    assigned,
                })
            }
            Kind::Succeed => {
                let eff = cx.input_path(&raw)?;
                let out = cx.output_path(eff)?;
                Ok(Step {
                    output: out,
                    next: None,
                    assigned: Map::new(),
                })
            }
            Kind::Fail { error, cause } => {
                let scope = cx.scope(&raw);
                let resolve = |f: &Option<StrOrPath>| -> Result<Option<String>, Stop> {
                    match f {
                        None => Ok(None),
                        Some(StrOrPath::Literal(s)) => Ok(Some(s.clone())),
                        Some(StrOrPath::Path { field, expr }) => {
                            let v = if stepops_asl_data::intrinsic::is_intrinsic(expr) {
                                stepops_asl_data::intrinsic::evaluate(expr, &scope)
                                    .map_err(|e| cx.fail(e))?
                            } else {
                                let p =
                                    JsonPath::parse(expr).map_err(|e| cx.runtime(e.to_string()))?;
                                p.read(&scope).ok_or_else(|| {
                                    cx.fail(stepops_asl_data::template::path_not_found(
                                        &p, field, &scope,
                                    ))
                                })?
                            };
                            Ok(Some(match v {
                                Value::String(s) => s,
                                other => to_json(&other),
                            }))
                        }
                    }
                };
                let error = resolve(error)?;
                let cause = resolve(cause)?;
                Err(Stop::Failed(Failure { error, cause }))
            }
            Kind::Choice { choices, default } => {
                let eff = cx.input_path(&raw)?;
                let mut chosen: Option<(String, Option<&Value>)> = None;
                for (rule, assign) in choices {
                    if rule.matches(&cx.scope(&eff)).map_err(|e| cx.fail(e))? {
                        chosen =
                            Some((rule.next().unwrap_or_default().to_owned(), assign.as_ref()));
                        break;
                    }
                }
                let (next, assign) = match chosen {
                    Some(c) => c,
                    None => match default {
                        Some(d) => (d.clone(), None),
                        None => {
                            return Err(Stop::Failed(Failure::new(
                                "States.NoChoiceMatched",
                                cx.prefixed("No Matches!"),
                            )));
                        }
                    },
                };
                let out = cx.output_path(eff.clone())?;
                // The state's Assign applies whatever the outcome; a matched rule's own Assign
                // is evaluated against the same values and wins on conflicts.
                let mut assigned = cx.assign(state.assign.as_ref(), &eff)?;
                assigned.extend(cx.assign(assign, &eff)?);
                Ok(Step {
                    output: out,
                    next: Some(next),
                    assigned,
                })
            }
            Kind::Wait(spec) => {
                let eff = cx.input_path(&raw)?;
                let d = self.wait_duration(cx, spec, &eff)?;
                self.sleep(d, &cancel).await?;
                let out = cx.output_path(eff.clone())?;
                let assigned = cx.assign(state.assign.as_ref(), &eff)?;
                Ok(Step {
                    output: out,
                    next: state.next.clone(),
                    assigned,
                })
            }
            Kind::Task(_) | Kind::Parallel { .. } | Kind::Map(_) => {
                self.run_with_retry(cx, raw, cancel).await
            }
        }
    }

    fn wait_duration(
        &self,
        cx: &StateContext,
        spec: &WaitSpec,
        eff: &Value,
    ) -> Result<Duration, Stop> {
        let until = |t: DateTime<Utc>| {
            let secs = (t - Utc::now()).num_milliseconds().max(0) as f64 / 1000.0;
            self.scaled(secs)
        };
        match spec {
            WaitSpec::Seconds(n) => Ok(self.scaled(*n as f64)),
            WaitSpec::Timestamp(s) => Ok(parse_timestamp(s).map(until).unwrap_or_default()),
            WaitSpec::SecondsPath(p) => {
                let v = read_or_invalid(p, &cx.scope(eff)).map_err(|c| cx.runtime(c))?;
                let shown = match &v {
                    Value::String(s) => s.clone(),
                    other => to_json(other),
                };
                if let Some(n) = v.as_i64() {
                    if n < 0 {
                        return Err(cx.runtime(format!(
                            "The SecondsPath parameter references a negative value: {} == {shown}",
                            p.as_str()
                        )));
                    }
                    return Ok(self.scaled(n as f64));
                }
                if let Some(n) = v.as_u64() {
                    return Ok(self.scaled(n as f64));
                }
                Err(cx.runtime(format!(
                    "The SecondsPath parameter cannot be parsed as a long value: {} == {shown}",
                    p.as_str()
                )))
            }
            WaitSpec::TimestampPath(p) => {
                let v = read_or_invalid(p, &cx.scope(eff)).map_err(|c| cx.runtime(c))?;
                let shown = match &v {
                    Value::String(s) => s.clone(),
                    other => to_json(other),
                };
                match v.as_str().and_then(parse_timestamp) {
                    Some(t) => Ok(until(t)),
                    None => Err(cx.runtime(format!(
                        "The TimestampPath parameter does not reference a valid ISO-8601 extended offset date-time format string: {} == {shown}",
                        p.as_str()
                    ))),
                }
            }
        }
    }

    /// Task, Parallel and Map: attempts with Retry, then Catch.
    async fn run_with_retry(
        self: Arc<Self>,
        cx: &StateContext,
        raw: Value,
        cancel: CancellationToken,
    ) -> Result<Step, Stop> {
        let state = cx.state.clone();
        let eff = cx.input_path(&raw)?;
        loop {
            let attempt = match &state.kind {
                Kind::Task(spec) => self.clone().run_task(cx, spec, &eff, &cancel).await,
                Kind::Parallel { branches } => {
                    self.clone().run_parallel(cx, branches, &eff, &cancel).await
                }
                Kind::Map(spec) => self.clone().run_map(cx, spec, &eff, &cancel).await,
                _ => unreachable!("only Task, Parallel and Map retry"),
            };
            match attempt {
                Ok(result) => {
                    let selected = match &state.result_selector {
                        Some(sel) => cx.template(sel, &result)?,
                        None => result,
                    };
                    let out = cx.result_path(&state.result_path, &raw, selected.clone())?;
                    let out = cx.output_path(out)?;
                    let assigned = cx.assign(state.assign.as_ref(), &selected)?;
                    return Ok(Step {
                        output: out,
                        next: state.next.clone(),
                        assigned,
                    });
                }
                Err(Stop::Cancelled) => return Err(Stop::Cancelled),
                Err(Stop::Failed(f)) => {
                    if let Some(delay) = self.retry_delay(cx, &f) {
                        // A retried Map/Parallel runs again from scratch.
                        {
                            let mut g = self.lock();
                            let children = std::mem::take(&mut g.node(cx.node).children);
                            g.node(cx.node).map = None;
                            for c in children {
                                g.drop_subtree(c);
                            }
                        }
                        self.dirty.notify_one();
                        self.sleep(delay, &cancel).await?;
                        continue;
                    }
                    if let Some(c) = state
                        .catch
                        .iter()
                        .find(|c| error_matches(&c.error_equals, f.error.as_deref()))
                    {
                        return self.caught(cx, c, &raw, f);
                    }
                    return Err(Stop::Failed(f));
                }
            }
        }
    }

    fn caught(
        &self,
        cx: &StateContext,
        c: &Catcher,
        raw: &Value,
        f: Failure,
    ) -> Result<Step, Stop> {
        let mut err = Map::new();
        if let Some(e) = f.error {
            err.insert("Error".into(), Value::String(e));
        }
        if let Some(c) = f.cause {
            err.insert("Cause".into(), Value::String(c));
        }
        let err = Value::Object(err);
        let out = cx.result_path(&c.result_path, raw, err.clone())?;
        let assigned = cx.assign(c.assign.as_ref(), &err)?;
        {
            let mut g = self.lock();
            let children = std::mem::take(&mut g.node(cx.node).children);
            for ch in children {
                g.drop_subtree(ch);
            }
        }
        Ok(Step {
            output: out,
            next: Some(c.next.clone()),
            assigned,
        })
    }

    /// The delay before the next attempt, or None when no retrier applies (or they ran out).
    fn retry_delay(&self, cx: &StateContext, f: &Failure) -> Option<Duration> {
        let (i, r) = cx
            .state
            .retry
            .iter()
            .enumerate()
            .find(|(_, r)| error_matches(&r.error_equals, f.error.as_deref()))?;
        let mut g = self.lock();
        let n = g.node(cx.node);
        if n.retries.len() < cx.state.retry.len() {
            n.retries.resize(cx.state.retry.len(), 0);
        }
        let used = n.retries[i];
        if used >= r.max_attempts {
            return None;
        }
        n.retries[i] += 1;
        drop(g);
        let mut delay = r.interval_seconds * r.backoff_rate.powi(used as i32);
        if let Some(max) = r.max_delay_seconds {
            delay = delay.min(max);
        }
        if r.full_jitter {
            delay *= rand::random::<f64>();
        }
        Some(self.scaled(delay))
    }

    /// Resolves an integer field given literally or by path (Task timeouts).
    pub fn int_field(
        &self,
        cx: &StateContext,
        f: &Option<IntOrPath>,
        input: &Value,
        name: &str,
    ) -> Result<Option<u64>, Stop> {
        match f {
            None => Ok(None),
            Some(IntOrPath::Literal(n)) => Ok(Some(*n)),
            Some(IntOrPath::Path(p)) => {
                let v = read_or_invalid(p, &cx.scope(input)).map_err(|c| cx.runtime(c))?;
                match v.as_u64() {
                    Some(n) if n > 0 => Ok(Some(n)),
                    _ => Err(cx.runtime(format!(
                        "The {name}Path field refers to value \"{}\" which is not a valid positive integer: {}",
                        match &v {
                            Value::String(s) => s.clone(),
                            o => to_json(o),
                        },
                        p.as_str()
                    ))),
                }
            }
        }
    }

    /// Runs child frames (Parallel branches or Map items) with at most `limit` at once.
    /// Each result is reported to `on_done` as it arrives; returning `false` from it cancels
    /// the rest (fail fast). Results come back by index; skipped ones are `None`.
    #[allow(clippy::type_complexity)]
    pub async fn run_children(
        self: &Arc<Self>,
        children: Vec<(u64, Arc<Machine>)>,
        outer: Arc<Map<String, Value>>,
        limit: usize,
        cancel: &CancellationToken,
        mut on_start: impl FnMut(usize),
        mut on_done: impl FnMut(usize, &Result<Value, Stop>) -> bool,
    ) -> Vec<Option<Result<Value, Stop>>> {
        let token = cancel.child_token();
        let mut results: Vec<Option<Result<Value, Stop>>> = vec![None; children.len()];
        let mut todo = Vec::new();
        {
            let g = self.lock();
            for (i, (id, _)) in children.iter().enumerate() {
                match g.tree.nodes.get(id).map(|n| n.status) {
                    Some(NodeStatus::Succeeded) => {
                        results[i] =
                            Some(Ok(g.tree.nodes[id].output.clone().unwrap_or(Value::Null)));
                    }
                    Some(NodeStatus::Failed) => {
                        let n = &g.tree.nodes[id];
                        results[i] = Some(Err(Stop::Failed(Failure {
                            error: n.error.clone(),
                            cause: n.cause.clone(),
                        })));
                    }
                    _ => todo.push(i),
                }
            }
        }
        // Earlier failures (resume of a tolerant Map) are reported first.
        for (i, r) in results.iter().enumerate() {
            if let Some(r) = r
                && r.is_err()
                && !on_done(i, r)
            {
                token.cancel();
            }
        }
        let limit = if limit == 0 { usize::MAX } else { limit };
        let mut running = FuturesUnordered::new();
        let mut next = 0;
        loop {
            while running.len() < limit && next < todo.len() && !token.is_cancelled() {
                let i = todo[next];
                next += 1;
                let (id, m) = children[i].clone();
                on_start(i);
                let fut = self.clone().run_frame(m, id, outer.clone(), token.clone());
                running.push(async move { (i, fut.await) });
            }
            let Some((i, r)) = running.next().await else {
                break;
            };
            if !on_done(i, &r) {
                token.cancel();
            }
            results[i] = Some(r);
        }
        results
    }
}

/// Runs (or resumes) one execution.
#[allow(clippy::too_many_arguments)]
pub(crate) async fn run(
    definition: Arc<Definition>,
    info: ExecutionInfo,
    input: Value,
    resume: Option<crate::Snapshot>,
    tasks: Arc<dyn TaskDispatcher>,
    store: Arc<dyn ExecutionStore>,
    options: RunOptions,
    stop: crate::StopSignal,
) -> ExecutionResult {
    let machine = definition.machine.clone();
    let mut fresh = false;
    let tree = match resume.map(|s| serde_json::from_value::<Tree>(s.0)) {
        Some(Ok(t)) => t,
        Some(Err(e)) => {
            return ExecutionResult::Failed {
                error: Some("States.Runtime".into()),
                cause: Some(format!("the execution snapshot cannot be resumed: {e}")),
            };
        }
        None => {
            fresh = true;
            let mut nodes = BTreeMap::new();
            nodes.insert(
                0,
                Node {
                    state: machine.start_at.clone(),
                    input: input.clone(),
                    ..Node::default()
                },
            );
            Tree {
                v: SNAPSHOT_VERSION,
                input: input.clone(),
                last_event_id: 0,
                next_node: 1,
                nodes,
                status: "RUNNING".into(),
                redrive_pending: false,
            }
        }
    };
    // A snapshot of an execution that already ended: report its end again.
    if tree.status != "RUNNING" {
        return ended_result(&tree);
    }
    let exec_input = tree.input.clone();
    let exec = Arc::new(Exec {
        ctx_execution: json!({
            "Id": info.execution_arn,
            "Input": exec_input,
            "StartTime": ts(info.start_time),
            "Name": info.name,
            "RoleArn": info.role_arn,
            "RedriveCount": info.redrive_count,
        }),
        ctx_execution_lite: json!({
            "Id": info.execution_arn,
            "StartTime": ts(info.start_time),
            "Name": info.name,
            "RoleArn": info.role_arn,
            "RedriveCount": info.redrive_count,
        }),
        ctx_state_machine: json!({"Id": info.state_machine_arn, "Name": info.state_machine_name}),
        info,
        tasks,
        options,
        inner: Mutex::new(Inner {
            tree,
            pending: Vec::new(),
            changed: false,
            taken: 0,
        }),
        dirty: Notify::new(),
        persisted: tokio::sync::watch::Sender::new(Persisted::default()),
        abort: stop.token().child_token(),
        urgent: Notify::new(),
    });
    {
        let mut g = exec.lock();
        if fresh {
            let mut d = payload("input", &exec_input);
            d["roleArn"] = Value::String(exec.info.role_arn.clone());
            d["stateMachineArn"] = Value::String(exec.info.state_machine_arn.clone());
            g.emit(
                0,
                "ExecutionStarted",
                Some("executionStartedEventDetails"),
                d,
            );
        }
        if g.tree.redrive_pending {
            g.tree.redrive_pending = false;
            let d = json!({"redriveCount": exec.info.redrive_count});
            g.emit(
                0,
                "ExecutionRedriven",
                Some("executionRedrivenEventDetails"),
                d,
            );
        }
    }
    let done = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let main = {
        let exec = exec.clone();
        let done = done.clone();
        async move {
            let abort = exec.abort.clone();
            let r = drive(
                &exec,
                machine,
                definition.timeout_seconds,
                exec_input,
                abort,
                &stop,
            )
            .await;
            done.store(true, std::sync::atomic::Ordering::SeqCst);
            exec.dirty.notify_one();
            exec.urgent.notify_one();
            r
        }
    };
    let recorder = record_loop(exec.clone(), store, done);
    let (result, ()) = futures::join!(main, recorder);
    // The store failed: whatever the frames did after that is not persisted, so it does not
    // count. The store keeps the last transition it recorded, from which a redrive resumes.
    if let Some(e) = exec.persisted.borrow().failed.clone() {
        return ExecutionResult::Failed {
            error: Some("States.Runtime".into()),
            cause: Some(store_failure_cause(&e)),
        };
    }
    result
}

/// The cause of an execution stopped because its progress could not be persisted.
pub(crate) fn store_failure_cause(e: &str) -> String {
    format!(
        "The execution's progress could not be persisted ({e}); it was stopped so that no \
         step runs unrecorded. Fix the store (disk space, permissions, the database file) and \
         redrive the execution: it resumes from the last transition that was persisted."
    )
}

fn ended_result(tree: &Tree) -> ExecutionResult {
    let root = tree.nodes.get(&0);
    match tree.status.as_str() {
        "SUCCEEDED" => ExecutionResult::Succeeded {
            output: root.and_then(|n| n.output.clone()).unwrap_or(Value::Null),
        },
        "ABORTED" => ExecutionResult::Aborted,
        "TIMED_OUT" => ExecutionResult::TimedOut,
        _ => ExecutionResult::Failed {
            error: root.and_then(|n| n.error.clone()),
            cause: root.and_then(|n| n.cause.clone()),
        },
    }
}

async fn drive(
    exec: &Arc<Exec>,
    machine: Arc<Machine>,
    timeout: Option<u64>,
    input: Value,
    stop: CancellationToken,
    signal: &crate::StopSignal,
) -> ExecutionResult {
    let size = serde_json::to_vec(&input).map(|v| v.len()).unwrap_or(0);
    let token = stop.child_token();
    let frame = exec
        .clone()
        .run_frame(machine, 0, Arc::new(Map::new()), token.clone());
    let outcome = if size > PAYLOAD_LIMIT {
        Err(Some(Failure::new(
            "States.DataLimitExceeded",
            "The execution input exceeds the maximum number of bytes service limit.",
        )))
    } else {
        let timer = async {
            match timeout.and_then(|t| exec.timeout(t)) {
                Some(d) => tokio::time::sleep(d).await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            r = frame => r.map_err(|s| match s { Stop::Failed(f) => Some(f), Stop::Cancelled => None }),
            _ = timer => {
                token.cancel();
                let mut g = exec.lock();
                g.tree.status = "TIMED_OUT".into();
                g.emit(0, "ExecutionTimedOut", Some("executionTimedOutEventDetails"),
                    json!({"error": "States.Timeout", "cause": "The execution timed out (the state machine's TimeoutSeconds elapsed)."}));
                drop(g);
                exec.dirty.notify_one();
                return ExecutionResult::TimedOut;
            }
        }
    };
    let mut g = exec.lock();
    let result = match outcome {
        Ok(output) => {
            g.tree.status = "SUCCEEDED".into();
            g.emit(
                0,
                "ExecutionSucceeded",
                Some("executionSucceededEventDetails"),
                payload("output", &output),
            );
            ExecutionResult::Succeeded { output }
        }
        Err(Some(f)) => {
            g.tree.status = "FAILED".into();
            {
                let n = g.node(0);
                n.status = NodeStatus::Failed;
                n.error = f.error.clone();
                n.cause = f.cause.clone();
            }
            let mut d = Map::new();
            if let Some(e) = &f.error {
                d.insert("error".into(), Value::String(e.clone()));
            }
            if let Some(c) = &f.cause {
                d.insert("cause".into(), Value::String(c.clone()));
            }
            g.emit(
                0,
                "ExecutionFailed",
                Some("executionFailedEventDetails"),
                Value::Object(d),
            );
            ExecutionResult::Failed {
                error: f.error,
                cause: f.cause,
            }
        }
        Err(None) => {
            g.tree.status = "ABORTED".into();
            // As AWS: the error and cause given to StopExecution, in the event.
            let (error, cause) = signal.reason();
            let mut d = Map::new();
            if let Some(e) = error {
                d.insert("error".into(), Value::String(e));
            }
            if let Some(c) = cause {
                d.insert("cause".into(), Value::String(c));
            }
            g.emit(
                0,
                "ExecutionAborted",
                Some("executionAbortedEventDetails"),
                Value::Object(d),
            );
            ExecutionResult::Aborted
        }
    };
    drop(g);
    exec.dirty.notify_one();
    result
}

/// Group commit. After each write the recorder waits before taking the next batch (unless a
/// task waits to be dispatched, see [`Exec::flush`], or the run is over): at least
/// [`PACE_MIN`], so that a fast run commits once per millisecond rather than once per
/// transition, and `PACE_FACTOR × t` after a snapshot that took `t` to take (under the
/// execution's lock), so that snapshotting a large tree (a Map with thousands of items) holds
/// the lock at most a fifth of the time however fast the store is; at most [`PACE_MAX`].
const PACE_MIN: Duration = Duration::from_millis(1);
const PACE_FACTOR: u32 = 4;
const PACE_MAX: Duration = Duration::from_millis(250);

/// Pauses between the attempts of a failing store write.
const STORE_RETRY_PAUSES: [Duration; 2] = [Duration::from_millis(100), Duration::from_millis(400)];

/// Hands pending events and the latest snapshot to the store until the run is over.
///
/// A write that still fails after [`STORE_RETRY_PAUSES`] stops the execution: the failure goes
/// to [`Exec::persisted`] (tasks waiting in [`Exec::flush`] are not dispatched), every frame is
/// cancelled through [`Exec::abort`], nothing more is written, and `run` reports
/// `States.Runtime` naming the store's error. The store keeps the last batch it wrote.
async fn record_loop(
    exec: Arc<Exec>,
    store: Arc<dyn ExecutionStore>,
    done: Arc<std::sync::atomic::AtomicBool>,
) {
    let mut broken = false;
    let mut pace = Duration::ZERO;
    loop {
        if !pace.is_zero() {
            tokio::select! {
                _ = tokio::time::sleep(pace) => {}
                _ = exec.urgent.notified() => {}
            }
            pace = Duration::ZERO;
        }
        let finished = done.load(std::sync::atomic::Ordering::SeqCst);
        let batch = {
            let mut g = exec.lock();
            if g.pending.is_empty() && !g.changed {
                None
            } else {
                g.changed = false;
                g.taken += 1;
                let events = std::mem::take(&mut g.pending);
                let snap = if broken {
                    Value::Null
                } else {
                    let started = std::time::Instant::now();
                    let snap = serde_json::to_value(&g.tree).unwrap_or(Value::Null);
                    if !finished {
                        pace = (started.elapsed() * PACE_FACTOR).clamp(PACE_MIN, PACE_MAX);
                    }
                    snap
                };
                Some((g.taken, events, snap))
            }
        };
        let Some((n, events, snap)) = batch else {
            if finished {
                return;
            }
            exec.dirty.notified().await;
            continue;
        };
        if broken {
            continue;
        }
        match write_batch(&exec, &store, events, Snapshot(snap)).await {
            Ok(()) => exec.persisted.send_modify(|p| p.batches = n),
            Err(e) => {
                tracing::error!(
                    execution = %exec.info.execution_arn,
                    error = %e,
                    "could not record execution progress; stopping the execution"
                );
                broken = true;
                exec.persisted.send_modify(|p| p.failed = Some(e));
                exec.abort.cancel();
            }
        }
    }
}

/// One `ExecutionStore::record` call (off the async threads), retried after short pauses.
async fn write_batch(
    exec: &Exec,
    store: &Arc<dyn ExecutionStore>,
    events: Vec<HistoryEvent>,
    snapshot: Snapshot,
) -> Result<(), String> {
    let batch = Arc::new((events, snapshot));
    let mut pauses = STORE_RETRY_PAUSES.iter();
    loop {
        let (store, batch) = (store.clone(), batch.clone());
        let arn = exec.info.execution_arn.clone();
        let r = tokio::task::spawn_blocking(move || store.record(&arn, &batch.0, &batch.1)).await;
        let e = match r {
            Ok(Ok(())) => return Ok(()),
            Ok(Err(e)) => e.to_string(),
            Err(e) => format!("the store panicked while recording: {e}"),
        };
        match pauses.next() {
            Some(p) => {
                tracing::warn!(execution = %exec.info.execution_arn, error = %e, "could not record execution progress; trying again");
                tokio::time::sleep(*p).await;
            }
            None => return Err(e),
        }
    }
}

/// For RedriveExecution: resets what did not succeed so that `run` re-runs only that.
pub(crate) fn redrive(snapshot: &Snapshot) -> Result<Snapshot, LoadError> {
    let mut tree: Tree = serde_json::from_value(snapshot.0.clone())
        .map_err(|e| LoadError::Snapshot(format!("not a stepops-asl snapshot: {e}")))?;
    match tree.status.as_str() {
        // RUNNING: the last persisted progress of an execution that was stopped because the
        // store failed (the service records it FAILED); it resumes from there.
        "FAILED" | "TIMED_OUT" | "ABORTED" | "RUNNING" => {}
        other => {
            return Err(LoadError::Snapshot(format!(
                "only a FAILED, TIMED_OUT or ABORTED execution can be redriven (this one is {other})"
            )));
        }
    }
    fn reset(tree: &mut Tree, id: u64) {
        let Some(n) = tree.nodes.get_mut(&id) else {
            return;
        };
        if n.status == NodeStatus::Succeeded {
            return;
        }
        let fresh_start = n.status == NodeStatus::Pending;
        n.status = if fresh_start {
            NodeStatus::Pending
        } else {
            NodeStatus::Running
        };
        n.error = None;
        n.cause = None;
        n.retries.clear();
        if let Some(map) = n.map.as_mut() {
            crate::map::mark_redriven(map);
        }
        let children = n.children.clone();
        for c in children {
            reset(tree, c);
        }
    }
    reset(&mut tree, 0);
    tree.status = "RUNNING".into();
    tree.redrive_pending = true;
    let v = serde_json::to_value(&tree).map_err(|e| LoadError::Snapshot(e.to_string()))?;
    Ok(Snapshot(v))
}
