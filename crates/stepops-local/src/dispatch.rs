//! The [`TaskDispatcher`] of the local engine: Lambda (optimized integration and bare
//! function ARNs) through the in-process registry, activities, `.waitForTaskToken`, and
//! `states:startExecution` (plain, `.sync`, `.sync:2`).

use std::sync::{Arc, Mutex, Weak};
use std::time::{Duration, Instant};

use futures::future::BoxFuture;
use serde_json::{Value, json};
use stepops_asl::{TaskDispatcher, TaskError, TaskInvocation};

use crate::arn::states_resource;
use crate::engine::Engine;
use crate::lambda::{Invocation, invoke, invoke_result};
use crate::store::ExecutionRecord;
use crate::tasks::{HeartbeatFn, PickupFn, TaskOutcome, TaskWaiter};

const LAMBDA_INVOKE: &str = "arn:aws:states:::lambda:invoke";
const START_EXECUTION: &str = "arn:aws:states:::states:startExecution";
const DYNAMODB: &str = "arn:aws:states:::dynamodb:";

/// How a resource's integration waits.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Pattern {
    RequestResponse,
    WaitForTaskToken,
    Sync,
    Sync2,
}

fn split_pattern(resource: &str) -> (&str, Pattern) {
    if let Some(base) = resource.strip_suffix(".waitForTaskToken") {
        (base, Pattern::WaitForTaskToken)
    } else if let Some(base) = resource.strip_suffix(".sync:2") {
        (base, Pattern::Sync2)
    } else if let Some(base) = resource.strip_suffix(".sync") {
        (base, Pattern::Sync)
    } else {
        (resource, Pattern::RequestResponse)
    }
}

/// Dispatches Task states for one engine.
pub(crate) struct Dispatcher {
    engine: Weak<Engine>,
}

impl Dispatcher {
    pub(crate) fn new(engine: Weak<Engine>) -> Self {
        Dispatcher { engine }
    }
}

impl TaskDispatcher for Dispatcher {
    fn dispatch(&self, task: TaskInvocation) -> BoxFuture<'static, Result<Value, TaskError>> {
        if is_activity(&task.resource) {
            // HeartbeatSeconds (and ActivityStarted) begin when a worker takes the task, as in
            // AWS: `TaskHub::poll` beats at pickup.
            task.heartbeat.waiting_for_worker();
        }
        let engine = self.engine.upgrade();
        Box::pin(async move {
            let Some(engine) = engine else {
                return Err(TaskError::new(
                    "States.Runtime",
                    "The local engine has shut down.",
                ));
            };
            dispatch(engine, task).await
        })
    }
}

fn is_activity(resource: &str) -> bool {
    matches!(states_resource(resource), Some(("activity", _)))
}

fn runtime(cause: impl Into<String>) -> TaskError {
    TaskError::new("States.Runtime", cause)
}

fn heartbeat_fn(task: &TaskInvocation) -> HeartbeatFn {
    let hb = task.heartbeat.clone();
    Arc::new(move || hb.beat())
}

async fn wait_token(waiter: TaskWaiter) -> Result<Value, TaskError> {
    match waiter.wait().await {
        TaskOutcome::Success(v) => Ok(v),
        TaskOutcome::Failure { error, cause } => Err(TaskError::new(error, cause)),
    }
}

async fn dispatch(engine: Arc<Engine>, task: TaskInvocation) -> Result<Value, TaskError> {
    let (base, pattern) = split_pattern(&task.resource);
    if base == LAMBDA_INVOKE
        && matches!(
            pattern,
            Pattern::RequestResponse | Pattern::WaitForTaskToken
        )
    {
        return lambda_invoke(&engine, &task, pattern).await;
    }
    if let Some(action) = base.strip_prefix(DYNAMODB)
        && matches!(action, "putItem" | "getItem" | "deleteItem")
        && pattern == Pattern::RequestResponse
    {
        return engine.tables.call(action, &task.input);
    }
    if base == START_EXECUTION {
        return start_execution(&engine, &task, pattern).await;
    }
    if base.starts_with("arn:aws:lambda:")
        && base.contains(":function:")
        && pattern == Pattern::RequestResponse
    {
        let Some(handler) = engine.lambdas.resolve(base) else {
            return Err(function_not_found(&engine, base));
        };
        return match invoke(handler, base, task.input.clone()).await {
            Invocation::Ok(v) => Ok(v),
            Invocation::Err(e, c) => Err(TaskError::new(e, c)),
        };
    }
    if let Some(("activity", _)) = states_resource(base)
        && pattern == Pattern::RequestResponse
    {
        let last_beat: Arc<Mutex<Option<Instant>>> = Arc::default();
        let beat: HeartbeatFn = {
            let (hb, last) = (task.heartbeat.clone(), last_beat.clone());
            Arc::new(move || {
                *last.lock().expect("last beat") = Some(Instant::now());
                hb.beat()
            })
        };
        let pickup: PickupFn = {
            let (hb, last) = (task.heartbeat.clone(), last_beat.clone());
            Arc::new(move |worker: Option<&str>| {
                *last.lock().expect("last beat") = Some(Instant::now());
                hb.taken_by(worker)
            })
        };
        let waiter = engine
            .hub
            .schedule_activity(base, &task.task_token, &task.input, beat, pickup)
            .map_err(runtime)?;
        let mut watch = Abandoned {
            task: &task,
            activity: base,
            time_scale: engine.time_scale,
            last_beat,
            answered: false,
        };
        let outcome = wait_token(waiter).await;
        watch.answered = true;
        return outcome;
    }
    Err(runtime(format!(
        "The resource '{}' (state '{}') is not supported by the local engine. Supported: \
         arn:aws:states:::lambda:invoke[.waitForTaskToken], Lambda function ARNs, activity ARNs, \
         arn:aws:states:::states:startExecution[.sync|.sync:2|.waitForTaskToken], \
         arn:aws:states:::dynamodb:putItem|getItem|deleteItem.",
        task.resource, task.state_name
    )))
}

/// Logs an activity task that the execution gave up on before a worker answered it (its
/// dispatch future is dropped): a heartbeat timeout (the worker went silent: it died, or lost
/// the network), a `TimeoutSeconds`, a stop, or the engine shutting down. The history of a
/// Distributed Map's iterations is not kept (as in AWS, where they are child executions), so this
/// line is how a local run shows a chunk that timed out and was retried.
struct Abandoned<'a> {
    task: &'a TaskInvocation,
    activity: &'a str,
    time_scale: f64,
    last_beat: Arc<Mutex<Option<Instant>>>,
    answered: bool,
}

impl Drop for Abandoned<'_> {
    fn drop(&mut self) {
        if self.answered {
            return;
        }
        let (execution, state, activity) = (
            self.task.execution.execution_arn.as_str(),
            self.task.state_name.as_str(),
            self.activity,
        );
        let silent = self
            .last_beat
            .lock()
            .map(|l| l.map(|t| t.elapsed()))
            .unwrap_or_default();
        let limit = self
            .task
            .heartbeat_seconds
            .map(|h| Duration::from_secs_f64(h as f64 * self.time_scale));
        match (silent, limit) {
            (Some(silent), Some(limit))
                if self.time_scale > 0.0 && silent >= limit.mul_f64(0.9) =>
            {
                tracing::info!(
                    execution,
                    state,
                    activity,
                    silent_ms = silent.as_millis() as u64,
                    "activity task timed out on heartbeat (States.HeartbeatTimeout): its worker went silent; the state's Retry decides what happens next"
                )
            }
            (None, _) => tracing::info!(
                execution,
                state,
                activity,
                "activity task abandoned before a worker took it (timeout, stop or shutdown)"
            ),
            _ => tracing::info!(
                execution,
                state,
                activity,
                "activity task abandoned by the execution while a worker held it (timeout, stop or shutdown)"
            ),
        }
    }
}

fn function_not_found(engine: &Engine, function: &str) -> TaskError {
    let arn = if function.starts_with("arn:") {
        function.to_string()
    } else {
        engine
            .locality
            .function_arn(crate::arn::lambda_function_name(function).0)
    };
    TaskError::new(
        "Lambda.ResourceNotFoundException",
        format!(
            "Function not found: {arn} (Service: AWSLambda; Status Code: 404; Error Code: \
             ResourceNotFoundException). Local engine: no handler is registered under that name \
             or its template logical id (registered: {}).",
            engine.lambdas.names().join(", ")
        ),
    )
}

async fn lambda_invoke(
    engine: &Arc<Engine>,
    task: &TaskInvocation,
    pattern: Pattern,
) -> Result<Value, TaskError> {
    let function = match task.input.get("FunctionName") {
        Some(Value::String(f)) => f.clone(),
        _ => {
            return Err(runtime(format!(
                "State '{}': arn:aws:states:::lambda:invoke needs Parameters.FunctionName (a string).",
                task.state_name
            )));
        }
    };
    let payload = match task.input.get("Payload") {
        None | Some(Value::Null) => json!({}),
        Some(p) => p.clone(),
    };
    let Some(handler) = engine.lambdas.resolve(&function) else {
        return Err(function_not_found(engine, &function));
    };
    let request_id = uuid::Uuid::new_v4().to_string();
    if pattern == Pattern::WaitForTaskToken {
        let waiter = engine.hub.register(&task.task_token, heartbeat_fn(task));
        if let Invocation::Err(e, c) = invoke(handler, &function, payload).await {
            return Err(TaskError::new(e, c));
        }
        return wait_token(waiter).await;
    }
    if task.input.get("InvocationType").and_then(Value::as_str) == Some("Event") {
        let f = function.clone();
        tokio::spawn(async move {
            if let Invocation::Err(e, c) = invoke(handler, &f, payload).await {
                tracing::warn!(function = %f, error = %e, cause = %c, "asynchronous Lambda invocation failed");
            }
        });
        return Ok(invoke_result(
            Value::String(String::new()),
            &request_id,
            202,
        ));
    }
    match invoke(handler, &function, payload).await {
        Invocation::Ok(v) => Ok(invoke_result(v, &request_id, 200)),
        Invocation::Err(e, c) => Err(TaskError::new(e, c)),
    }
}

fn millis(d: &chrono::DateTime<chrono::Utc>) -> Value {
    json!(d.timestamp_millis())
}

/// The `.sync` / `.sync:2` output: DescribeExecution's fields in PascalCase.
fn describe_output(r: &ExecutionRecord, json_io: bool) -> Value {
    let io = |s: &Option<String>| -> Value {
        match s {
            None => Value::Null,
            Some(t) if json_io => serde_json::from_str(t).unwrap_or(Value::String(t.clone())),
            Some(t) => Value::String(t.clone()),
        }
    };
    let mut out = json!({
        "ExecutionArn": r.arn,
        "Input": io(&Some(r.input.clone())),
        "InputDetails": {"Included": true},
        "Name": r.name,
        "RedriveCount": r.redrive_count,
        "StartDate": millis(&r.start_date),
        "StateMachineArn": r.state_machine_arn,
        "Status": r.status,
    });
    let m = out.as_object_mut().expect("object");
    if let Some(d) = &r.stop_date {
        m.insert("StopDate".into(), millis(d));
    }
    if r.output.is_some() {
        m.insert("Output".into(), io(&r.output));
        m.insert("OutputDetails".into(), json!({"Included": true}));
    }
    if let Some(e) = &r.error {
        m.insert("Error".into(), json!(e));
    }
    if let Some(c) = &r.cause {
        m.insert("Cause".into(), json!(c));
    }
    out
}

/// Stops a `.sync` child execution when the parent's Task attempt is abandoned.
struct StopChildOnDrop {
    engine: Arc<Engine>,
    arn: String,
    armed: bool,
}

impl Drop for StopChildOnDrop {
    fn drop(&mut self) {
        if self.armed && !self.engine.shutdown.is_cancelled() {
            let _ = self.engine.stop_execution(
                &self.arn,
                Some("States.Aborted".into()),
                Some("The parent execution's task was stopped or timed out.".into()),
            );
        }
    }
}

async fn start_execution(
    engine: &Arc<Engine>,
    task: &TaskInvocation,
    pattern: Pattern,
) -> Result<Value, TaskError> {
    let machine = task
        .input
        .get("StateMachineArn")
        .and_then(Value::as_str)
        .ok_or_else(|| {
            runtime(format!(
                "State '{}': states:startExecution needs Parameters.StateMachineArn.",
                task.state_name
            ))
        })?
        .to_string();
    let input = match task.input.get("Input") {
        None | Some(Value::Null) => "{}".to_string(),
        Some(Value::String(s)) => s.clone(),
        Some(v) => v.to_string(),
    };
    let name = task.input.get("Name").and_then(Value::as_str);
    let waiter = (pattern == Pattern::WaitForTaskToken)
        .then(|| engine.hub.register(&task.task_token, heartbeat_fn(task)));
    let (arn, start) = engine
        .start_execution(&machine, name, Some(&input))
        .map_err(|e| TaskError::new(format!("StepFunctions.{}", e.kind.as_str()), e.message))?;
    match pattern {
        Pattern::RequestResponse => Ok(json!({"ExecutionArn": arn, "StartDate": millis(&start)})),
        Pattern::WaitForTaskToken => wait_token(waiter.expect("registered")).await,
        Pattern::Sync | Pattern::Sync2 => {
            let mut guard = StopChildOnDrop {
                engine: engine.clone(),
                arn: arn.clone(),
                armed: true,
            };
            let record = engine
                .wait(&arn)
                .await
                .map_err(|e| runtime(e.to_string()))?;
            guard.armed = false;
            let out = describe_output(&record, pattern == Pattern::Sync2);
            match record.status.as_str() {
                "SUCCEEDED" => Ok(out),
                "TIMED_OUT" => Err(TaskError::new("States.Timeout", out.to_string())),
                _ => Err(TaskError::new("States.TaskFailed", out.to_string())),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn patterns() {
        assert_eq!(
            split_pattern("arn:aws:states:::states:startExecution.sync:2"),
            (START_EXECUTION, Pattern::Sync2)
        );
        assert_eq!(
            split_pattern("arn:aws:states:::lambda:invoke.waitForTaskToken"),
            (LAMBDA_INVOKE, Pattern::WaitForTaskToken)
        );
        assert_eq!(
            split_pattern(LAMBDA_INVOKE),
            (LAMBDA_INVOKE, Pattern::RequestResponse)
        );
    }
}
