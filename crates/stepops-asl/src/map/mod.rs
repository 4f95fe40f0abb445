//! Parallel and Map states (inline and distributed), with the local-folder stand-in for S3
//! used by Distributed Map's `ItemReader` and `ResultWriter`.
//! The local S3 stand-in is `s3.rs`, the CSV item reader `csv.rs`.

mod csv;
mod s3;

use std::sync::Arc;

use serde_json::{Map, Value, json};
use stepops_asl_data::Scope;
use tokio_util::sync::CancellationToken;

use crate::definition::{IntOrPath, Machine, MapSpec, NumOrPath};
use s3::{read_items, write_results};

use crate::executor::{Exec, Failure, Node, NodeStatus, StateContext, Stop, to_json};

/// Resolved settings of a Map state in flight (kept in the snapshot).
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
struct MapRun {
    max_concurrency: u64,
    tolerated_count: Option<u64>,
    tolerated_percentage: Option<f64>,
    map_run_arn: Option<String>,
    /// Times the Map Run was redriven (RedriveExecution of the parent).
    #[serde(default)]
    redrive_count: u32,
    /// Redriven and not yet resumed: the next run emits `MapRunRedriven`.
    #[serde(default)]
    redriven: bool,
}

/// An integer given as a JSON number or as a string holding one (AWS accepts both).
fn as_int(v: &Value) -> Option<i64> {
    match v {
        Value::Number(n) => n.as_i64(),
        Value::String(s) => s.trim().parse().ok(),
        _ => None,
    }
}

fn as_float(v: &Value) -> Option<f64> {
    match v {
        Value::Number(n) => n.as_f64(),
        Value::String(s) => s.trim().parse().ok().filter(|f: &f64| f.is_finite()),
        _ => None,
    }
}

fn shown(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        other => to_json(other),
    }
}

impl Exec {
    fn child_nodes(
        &self,
        cx: &StateContext,
        inputs: Vec<Value>,
        starts: &[String],
        quiet: bool,
    ) -> Vec<u64> {
        let mut g = self.lock();
        let parent_quiet = g.node(cx.node).quiet;
        let ids: Vec<u64> = inputs
            .into_iter()
            .zip(starts.iter().cycle())
            .map(|(input, start)| {
                let quiet = quiet || parent_quiet;
                g.new_node(Node {
                    state: start.clone(),
                    input,
                    quiet,
                    // A child execution's own history starts with ExecutionStarted (#1).
                    local_events: i64::from(quiet),
                    status: NodeStatus::Pending,
                    ..Node::default()
                })
            })
            .collect();
        g.node(cx.node).children = ids.clone();
        ids
    }

    pub(crate) async fn run_parallel(
        self: Arc<Self>,
        cx: &StateContext,
        branches: &[Arc<Machine>],
        eff: &Value,
        cancel: &CancellationToken,
    ) -> Result<Value, Stop> {
        let input = match &cx.state.parameters {
            Some(p) => cx.template(p, eff)?,
            None => eff.clone(),
        };
        self.emit(cx.node, "ParallelStateStarted", None, json!({}));
        let existing = self.lock().node(cx.node).children.clone();
        let ids = if existing.len() == branches.len() {
            existing
        } else {
            let starts: Vec<String> = branches.iter().map(|b| b.start_at.clone()).collect();
            self.child_nodes(cx, vec![input; branches.len()], &starts, false)
        };
        let list: Vec<(u64, Arc<Machine>)> =
            ids.into_iter().zip(branches.iter().cloned()).collect();
        let mut first: Option<Failure> = None;
        let results = self
            .run_children(
                list,
                cx.outer.clone(),
                0,
                cancel,
                |_| {},
                |_, r| match r {
                    Ok(_) => true,
                    Err(Stop::Failed(f)) => {
                        if first.is_none() {
                            first = Some(f.clone());
                        }
                        false
                    }
                    Err(Stop::Cancelled) => true,
                },
            )
            .await;
        if let Some(f) = first {
            self.emit(cx.node, "ParallelStateFailed", None, json!({}));
            return Err(Stop::Failed(f));
        }
        if cancel.is_cancelled() || results.iter().any(|r| !matches!(r, Some(Ok(_)))) {
            self.emit(cx.node, "ParallelStateAborted", None, json!({}));
            return Err(Stop::Cancelled);
        }
        self.emit(cx.node, "ParallelStateSucceeded", None, json!({}));
        Ok(Value::Array(
            results
                .into_iter()
                .map(|r| r.and_then(Result::ok).unwrap_or(Value::Null))
                .collect(),
        ))
    }

    fn resolve_map(&self, cx: &StateContext, spec: &MapSpec, eff: &Value) -> Result<MapRun, Stop> {
        let scope = cx.scope(eff);
        let max_concurrency = match &spec.max_concurrency {
            None => 0,
            Some(IntOrPath::Literal(n)) => *n,
            Some(IntOrPath::Path(p)) => {
                let v = p.read(&scope).unwrap_or(Value::Null);
                as_int(&v).and_then(|n| u64::try_from(n).ok()).ok_or_else(|| {
                    cx.runtime(format!(
                        "The MaxConcurrencyPath field refers to value \"{}\" which is not a valid integer: {}",
                        shown(&v),
                        p.as_str()
                    ))
                })?
            }
        };
        let tolerated_count = match &spec.tolerated_count {
            None => None,
            Some(NumOrPath::Literal(n)) => Some(*n as u64),
            Some(NumOrPath::Path(p)) => {
                let v = p.read(&scope).unwrap_or(Value::Null);
                match as_int(&v) {
                    Some(n) if n < 0 => {
                        return Err(cx.runtime("ToleratedFailureCount cannot be negative."));
                    }
                    Some(n) => Some(n as u64),
                    None => {
                        return Err(cx.runtime(format!(
                            "The ToleratedFailureCountPath field refers to value \"{}\" which is not a valid integer: {}",
                            shown(&v),
                            p.as_str()
                        )));
                    }
                }
            }
        };
        let tolerated_percentage = match &spec.tolerated_percentage {
            None => None,
            Some(NumOrPath::Literal(n)) => Some(*n),
            Some(NumOrPath::Path(p)) => {
                let v = p.read(&scope).unwrap_or(Value::Null);
                match as_float(&v) {
                    Some(n) if !(0.0..=100.0).contains(&n) => {
                        return Err(
                            cx.runtime("ToleratedFailurePercentage must be between 0 and 100.")
                        );
                    }
                    Some(n) => Some(n),
                    None => {
                        return Err(cx.runtime(format!(
                            "The ToleratedFailurePercentagePath field refers to value \"{}\" which is not a valid float: {}",
                            shown(&v),
                            p.as_str()
                        )));
                    }
                }
            }
        };
        let map_run_arn = spec.distributed.then(|| {
            let i = &self.info;
            let base = i
                .state_machine_arn
                .replacen(":stateMachine:", ":mapRun:", 1);
            format!(
                "{base}/{}:{}",
                spec.label.as_deref().unwrap_or(&cx.state.name),
                uuid::Uuid::new_v4()
            )
        });
        Ok(MapRun {
            max_concurrency,
            tolerated_count,
            tolerated_percentage,
            map_run_arn,
            redrive_count: 0,
            redriven: false,
        })
    }

    /// The items of a Map state, after ItemReader/ItemsPath, ItemSelector and ItemBatcher.
    fn map_items(
        &self,
        cx: &StateContext,
        spec: &MapSpec,
        eff: &Value,
    ) -> Result<Vec<Value>, Stop> {
        let scope = cx.scope(eff);
        let items: Vec<Value> = if let Some(reader) = &spec.item_reader {
            read_items(self, cx, reader, eff).map_err(|cause| {
                Stop::Failed(Failure::new("States.ItemReaderFailed", cx.prefixed(&cause)))
            })?
        } else {
            let v = match &spec.items_path {
                None => eff.clone(),
                Some(p) => p.read(&scope).ok_or_else(|| {
                    cx.runtime(format!(
                        "Invalid path '{}' : No results for path: {}",
                        p.as_str(),
                        p.normalized()
                    ))
                })?,
            };
            match v {
                Value::Array(a) => a,
                other => {
                    return Err(cx.runtime(format!(
                        "Item(s) at ItemsPath '{}' must be a JSON array, got {}",
                        spec.items_path.as_ref().map(|p| p.as_str()).unwrap_or("$"),
                        to_json(&other)
                    )));
                }
            }
        };
        let items = match &spec.item_selector {
            None => items,
            Some(sel) => {
                let mut out = Vec::with_capacity(items.len());
                for (i, item) in items.into_iter().enumerate() {
                    let mut ctx = cx.context.clone();
                    ctx["Map"] = json!({"Item": {"Index": i, "Value": item}});
                    let s = Scope::new(eff, &ctx, &cx.vars);
                    out.push(
                        stepops_asl_data::template::evaluate(sel, &s).map_err(|e| cx.fail(e))?,
                    );
                }
                out
            }
        };
        let Some(b) = &spec.item_batcher else {
            return Ok(items);
        };
        let resolve = |f: &Option<IntOrPath>, name: &str| -> Result<Option<u64>, Stop> {
            match f {
                None => Ok(None),
                Some(IntOrPath::Literal(n)) => Ok(Some(*n)),
                Some(IntOrPath::Path(p)) => {
                    let v = p.read(&scope).unwrap_or(Value::Null);
                    as_int(&v).filter(|n| *n > 0).map(|n| Some(n as u64)).ok_or_else(|| {
                        cx.runtime(format!(
                            "The {name}Path field refers to value \"{}\" which is not a valid integer: {}",
                            shown(&v),
                            p.as_str()
                        ))
                    })
                }
            }
        };
        let max_items = resolve(&b.max_items, "MaxItemsPerBatch")?.unwrap_or(u64::MAX) as usize;
        let max_bytes =
            resolve(&b.max_bytes, "MaxInputBytesPerBatch")?.unwrap_or(u64::MAX) as usize;
        let batch_input = match &b.batch_input {
            Some(t) => Some(cx.template(t, eff)?),
            None => None,
        };
        let mut batches = Vec::new();
        let mut cur: Vec<Value> = Vec::new();
        let mut cur_bytes = 0usize;
        for item in items {
            let sz = to_json(&item).len() + 1;
            if !cur.is_empty() && (cur.len() >= max_items || cur_bytes + sz > max_bytes) {
                batches.push(std::mem::take(&mut cur));
                cur_bytes = 0;
            }
            cur_bytes += sz;
            cur.push(item);
        }
        if !cur.is_empty() {
            batches.push(cur);
        }
        Ok(batches
            .into_iter()
            .map(|items| {
                let mut m = Map::new();
                if let Some(bi) = &batch_input {
                    m.insert("BatchInput".into(), bi.clone());
                }
                m.insert("Items".into(), Value::Array(items));
                Value::Object(m)
            })
            .collect())
    }

    pub(crate) async fn run_map(
        self: Arc<Self>,
        cx: &StateContext,
        spec: &MapSpec,
        eff: &Value,
        cancel: &CancellationToken,
    ) -> Result<Value, Stop> {
        let (existing, saved) = {
            let mut g = self.lock();
            let n = g.node(cx.node);
            (n.children.clone(), n.map.clone())
        };
        let (ids, run) = match saved.and_then(|v| serde_json::from_value::<MapRun>(v).ok()) {
            Some(run) => (existing, run),
            None => {
                let run = self.resolve_map(cx, spec, eff)?;
                let items = self.map_items(cx, spec, eff)?;
                let ids = self.child_nodes(
                    cx,
                    items,
                    std::slice::from_ref(&spec.processor.start_at),
                    spec.distributed,
                );
                self.lock().node(cx.node).map = serde_json::to_value(&run).ok();
                (ids, run)
            }
        };
        let total = ids.len();
        let node = cx.node;
        let name = cx.state.name.clone();
        self.emit(
            node,
            "MapStateStarted",
            Some("mapStateStartedEventDetails"),
            json!({ "length": total }),
        );
        if let Some(arn) = &run.map_run_arn {
            if run.redriven {
                // As in AWS: the parent's redrive redrives the failed Map Run (same ARN); only
                // its unsuccessful children run again.
                self.emit(
                    node,
                    "MapRunRedriven",
                    Some("mapRunRedrivenEventDetails"),
                    json!({ "mapRunArn": arn, "redriveCount": run.redrive_count }),
                );
                let mut resumed = run.clone();
                resumed.redriven = false;
                self.lock().node(node).map = serde_json::to_value(&resumed).ok();
            } else {
                self.emit(
                    node,
                    "MapRunStarted",
                    Some("mapRunStartedEventDetails"),
                    json!({ "mapRunArn": arn }),
                );
            }
        }
        let distributed = spec.distributed;
        let limit = match (run.max_concurrency, distributed) {
            (0, true) => 1000,
            (n, _) => n as usize,
        };
        // Distributed children are separate executions: they do not see this scope's variables.
        let outer = if distributed {
            Arc::new(Map::new())
        } else {
            cx.outer.clone()
        };
        let list: Vec<(u64, Arc<Machine>)> =
            ids.iter().map(|id| (*id, spec.processor.clone())).collect();
        let mut first: Option<Failure> = None;
        let mut failed = 0u64;
        let mut exceeded = false;
        let exceeds = |failed: u64| -> bool {
            if failed == 0 {
                return false;
            }
            let by_count = run.tolerated_count.map(|c| failed > c);
            let by_pct = run
                .tolerated_percentage
                .map(|p| (failed as f64) * 100.0 / (total.max(1) as f64) > p);
            match (by_count, by_pct) {
                (None, None) => true,
                (Some(a), None) => a,
                (None, Some(b)) => b,
                (Some(a), Some(b)) => a || b,
            }
        };
        let this = self.clone();
        let results = self
            .run_children(
                list,
                outer,
                limit,
                cancel,
                |i| {
                    if !distributed {
                        this.emit(
                            node,
                            "MapIterationStarted",
                            Some("mapIterationStartedEventDetails"),
                            json!({"name": name, "index": i}),
                        );
                    }
                },
                |i, r| {
                    let (ty, ok) = match r {
                        Ok(_) => ("MapIterationSucceeded", true),
                        Err(Stop::Failed(f)) => {
                            failed += 1;
                            if first.is_none() {
                                first = Some(f.clone());
                            }
                            let ok = distributed && !exceeds(failed);
                            if !ok {
                                exceeded = true;
                            }
                            ("MapIterationFailed", ok)
                        }
                        Err(Stop::Cancelled) => ("MapIterationAborted", true),
                    };
                    if !distributed {
                        let key = format!(
                            "mapIteration{}EventDetails",
                            ty.trim_start_matches("MapIteration")
                        );
                        this.emit(node, ty, Some(&key), json!({"name": name, "index": i}));
                    }
                    ok
                },
            )
            .await;
        if exceeded {
            let f = if distributed {
                Failure::new(
                    "States.ExceedToleratedFailureThreshold",
                    "The specified tolerated failure threshold was exceeded",
                )
            } else {
                first.unwrap_or(Failure {
                    error: None,
                    cause: None,
                })
            };
            if distributed {
                self.emit(
                    node,
                    "MapRunFailed",
                    Some("mapRunFailedEventDetails"),
                    json!({"error": f.error, "cause": f.cause}),
                );
            }
            self.emit(node, "MapStateFailed", None, json!({}));
            return Err(Stop::Failed(f));
        }
        if cancel.is_cancelled()
            || results
                .iter()
                .any(|r| matches!(r, None | Some(Err(Stop::Cancelled))))
        {
            if distributed {
                self.emit(node, "MapRunAborted", None, json!({}));
            }
            self.emit(node, "MapStateAborted", None, json!({}));
            return Err(Stop::Cancelled);
        }
        let outputs: Vec<Value> = results
            .into_iter()
            .map(|r| match r {
                Some(Ok(v)) => v,
                Some(Err(Stop::Failed(f))) => json!({"Error": f.error, "Cause": f.cause}),
                _ => Value::Null,
            })
            .collect();
        let result = match (&spec.result_writer, &run.map_run_arn) {
            (Some(w), Some(arn)) => {
                let statuses: Vec<(Value, Option<Value>, NodeStatus)> = {
                    let g = self.lock();
                    ids.iter()
                        .map(|id| {
                            let n = g.tree.nodes.get(id);
                            (
                                n.map(|n| n.input.clone()).unwrap_or(Value::Null),
                                n.and_then(|n| n.output.clone()),
                                n.map(|n| n.status).unwrap_or_default(),
                            )
                        })
                        .collect()
                };
                write_results(
                    self.as_ref(),
                    cx,
                    &w.parameters,
                    eff,
                    arn,
                    &outputs,
                    &statuses,
                )
                .map_err(|cause| {
                    Stop::Failed(Failure::new(
                        "States.ResultWriterFailed",
                        cx.prefixed(&cause),
                    ))
                })?
            }
            _ => Value::Array(outputs),
        };
        if let Some(arn) = &run.map_run_arn {
            self.emit(node, "MapRunSucceeded", None, json!({ "mapRunArn": arn }));
        }
        self.emit(node, "MapStateSucceeded", None, json!({}));
        Ok(result)
    }
}

/// For RedriveExecution: marks a Map state's saved run (`Node::map`) as redriven.
pub(crate) fn mark_redriven(map: &mut Value) {
    if let Ok(mut run) = serde_json::from_value::<MapRun>(map.clone())
        && run.map_run_arn.is_some()
    {
        run.redrive_count += 1;
        run.redriven = true;
        if let Ok(v) = serde_json::to_value(&run) {
            *map = v;
        }
    }
}
