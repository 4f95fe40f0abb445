//! The executor: runs frames (the top level, Parallel branches, Map iterations) state by
//! state, records history events and keeps a resumable tree of frames (the snapshot).
//!
//! All mutable execution state lives in one [`Inner`] behind a mutex: the frame tree (`nodes`),
//! the event counter and the events not yet handed to the store. A recorder loop, running
//! beside the frames, hands pending events plus a snapshot of the tree to the
//! [`ExecutionStore`] (group commit: one call may carry several events).
//!
//! Here: the frame tree, the execution's shared state and a state's data step
//! ([`StateContext`]); `stepping.rs` runs frames state by state with retries and catches,
//! `driving.rs` drives one execution to its end, `recorder.rs` hands events and snapshots to
//! the store, `redrive.rs` prepares a redrive.

mod driving;
mod recorder;
mod redrive;
mod stepping;

pub(crate) use driving::run;
pub(crate) use redrive::redrive;

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
    /// Cancelled when the state's execution or branch stops.
    pub cancel: CancellationToken,
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
