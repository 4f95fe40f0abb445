//! Driving one execution: run (or resume) its top frame, pace the recorder, end with the
//! result.

use super::recorder::record_loop;
use super::*;

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
