//! Task states: one attempt = one `TaskDispatcher::dispatch`, bounded by TimeoutSeconds and
//! HeartbeatSeconds, with the history events AWS emits for the resource's kind.

use std::sync::Arc;

use serde_json::{Map, Value, json};
use tokio_util::sync::CancellationToken;

use crate::definition::TaskSpec;
use crate::executor::{Exec, Failure, PAYLOAD_LIMIT, StateContext, Stop, to_json};
use crate::{Heartbeat, TaskInvocation};

/// How history names a resource's events.
enum ResourceKind {
    /// `…:activity:NAME`: Activity* events.
    Activity,
    /// `arn:aws:lambda:…:function:NAME`: LambdaFunction* events.
    Lambda,
    /// `arn:aws:states:::service:action[.pattern]`: Task* events with resourceType/resource.
    Service { service: String, action: String },
}

fn kind(resource: &str) -> ResourceKind {
    let parts: Vec<&str> = resource.splitn(7, ':').collect();
    if parts.len() >= 6 && parts[2] == "states" && parts[5] == "activity" {
        return ResourceKind::Activity;
    }
    if parts.len() >= 6 && parts[2] == "lambda" && parts[5] == "function" {
        return ResourceKind::Lambda;
    }
    if parts.len() >= 7 && parts[2] == "states" {
        return ResourceKind::Service {
            service: parts[5].to_owned(),
            action: parts[6].to_owned(),
        };
    }
    ResourceKind::Service {
        service: "unknown".into(),
        action: resource.to_owned(),
    }
}

fn with_payload(mut d: Map<String, Value>, key: &str, v: &Value) -> Value {
    d.insert(key.to_owned(), Value::String(to_json(v)));
    d.insert(format!("{key}Details"), json!({"truncated": false}));
    Value::Object(d)
}

impl Exec {
    /// One attempt of a Task state. Returns the raw result.
    pub(crate) async fn run_task(
        self: Arc<Self>,
        cx: &StateContext,
        spec: &TaskSpec,
        eff: &Value,
        cancel: &CancellationToken,
    ) -> Result<Value, Stop> {
        let token = format!(
            "{}{}",
            uuid::Uuid::new_v4().simple(),
            uuid::Uuid::new_v4().simple()
        );
        let mut context = cx.context.clone();
        context["Task"] = json!({ "Token": token });
        let retry_count: u32 = self.lock().node(cx.node).retries.iter().sum();
        context["State"]["RetryCount"] = json!(retry_count);
        let scope = stepops_asl_data::Scope::new(eff, &context, &cx.vars);
        let input = match &cx.state.parameters {
            Some(p) => stepops_asl_data::template::evaluate(p, &scope).map_err(|e| cx.fail(e))?,
            None => eff.clone(),
        };
        let name = &cx.state.name;
        if to_json(&input).len() > PAYLOAD_LIMIT {
            return Err(Stop::Failed(Failure::new(
                "States.DataLimitExceeded",
                format!(
                    "The state/task '{name}' has an input with a size exceeding the maximum number of bytes service limit."
                ),
            )));
        }
        let timeout = self.int_field(cx, &spec.timeout, eff, "TimeoutSeconds")?;
        let heartbeat = self.int_field(cx, &spec.heartbeat, eff, "HeartbeatSeconds")?;
        if let (Some(t), Some(h)) = (timeout, heartbeat)
            && h >= t
        {
            return Err(cx.runtime(format!(
                "HeartbeatSeconds ({h}) must be smaller than TimeoutSeconds ({t})."
            )));
        }
        let resource = spec.resource.clone();
        let rk = kind(&resource);
        let (prefix, base): (&str, Map<String, Value>) = match &rk {
            ResourceKind::Activity => ("Activity", {
                let mut m = Map::new();
                m.insert("resource".into(), Value::String(resource.clone()));
                m
            }),
            ResourceKind::Lambda => ("LambdaFunction", {
                let mut m = Map::new();
                m.insert("resource".into(), Value::String(resource.clone()));
                m
            }),
            ResourceKind::Service { service, action } => ("Task", {
                let mut m = Map::new();
                m.insert("resourceType".into(), Value::String(service.clone()));
                m.insert("resource".into(), Value::String(action.clone()));
                m
            }),
        };
        let lower = |p: &str| {
            let mut c = p.chars();
            match c.next() {
                Some(f) => f.to_lowercase().collect::<String>() + c.as_str(),
                None => String::new(),
            }
        };
        let key = |suffix: &str| format!("{}{suffix}EventDetails", lower(prefix));
        let node = cx.node;
        {
            let mut d = base.clone();
            if let Some(t) = timeout {
                d.insert("timeoutInSeconds".into(), json!(t));
            }
            if let Some(h) = heartbeat {
                d.insert("heartbeatInSeconds".into(), json!(h));
            }
            let details = if prefix == "Task" {
                d.insert(
                    "region".into(),
                    Value::String(region_of(&self.info.state_machine_arn)),
                );
                d.insert("parameters".into(), Value::String(to_json(&input)));
                Value::Object(d)
            } else {
                with_payload(d, "input", &input)
            };
            self.emit(
                node,
                &format!("{prefix}Scheduled"),
                Some(&key("Scheduled")),
                details,
            );
        }
        let started_key = if prefix == "LambdaFunction" {
            None
        } else {
            Some(key("Started"))
        };
        let hb = Heartbeat::new();
        let emit_started = || {
            let started = if prefix == "Task" {
                Value::Object(base.clone())
            } else if prefix == "Activity" {
                // As AWS: the `workerName` the poller sent with GetActivityTask, if any.
                match hb.worker() {
                    Some(w) => json!({ "workerName": w }),
                    None => json!({}),
                }
            } else {
                json!({})
            };
            self.emit(
                node,
                &format!("{prefix}Started"),
                started_key.as_deref(),
                started,
            );
        };

        let invocation = TaskInvocation {
            resource: resource.clone(),
            input,
            task_token: token,
            heartbeat: hb.clone(),
            heartbeat_seconds: heartbeat,
            timeout_seconds: timeout,
            execution: self.info.clone(),
            state_name: name.clone(),
        };
        // No task runs before its scheduling is persisted (a store failure stops the
        // execution instead: `run` reports it).
        tokio::select! {
            r = self.flush() => if r.is_err() { return Err(Stop::Cancelled) },
            _ = cancel.cancelled() => return Err(Stop::Cancelled),
        }
        let fut = self.tasks.dispatch(invocation);
        // An activity nobody has picked up yet starts (event and heartbeat timer) at its first
        // beat; anything else starts now.
        let waiting = hb.is_waiting_for_worker();
        if !waiting {
            emit_started();
        }
        let timeout_d = timeout.and_then(|t| self.timeout(t));
        let heartbeat_d = heartbeat.and_then(|h| self.timeout(h));
        let timer = async {
            match timeout_d {
                Some(d) => tokio::time::sleep(d).await,
                None => std::future::pending().await,
            }
        };
        let hb_watch = async {
            if waiting {
                hb.wait().await;
                emit_started();
            }
            match heartbeat_d {
                Some(d) => loop {
                    tokio::select! {
                        _ = hb.wait() => continue,
                        _ = tokio::time::sleep(d) => break,
                    }
                },
                None => std::future::pending().await,
            }
        };
        let outcome: Result<Value, Failure> = tokio::select! {
            r = fut => r.map_err(|e| Failure::new(e.error, e.cause)),
            _ = timer => Err(Failure::new("States.Timeout", format!(
                "The task did not finish within TimeoutSeconds ({} s).", timeout.unwrap_or_default()))),
            _ = hb_watch => Err(Failure::new("States.HeartbeatTimeout", format!(
                "The task sent no heartbeat within HeartbeatSeconds ({} s).", heartbeat.unwrap_or_default()))),
            _ = cancel.cancelled() => return Err(Stop::Cancelled),
        };
        match outcome {
            Ok(v) => {
                if to_json(&v).len() > PAYLOAD_LIMIT {
                    let f = Failure::new(
                        "States.DataLimitExceeded",
                        format!(
                            "The state/task '{name}' returned a result with a size exceeding the maximum number of bytes service limit."
                        ),
                    );
                    self.task_failed(node, prefix, &base, &f, false);
                    return Err(Stop::Failed(f));
                }
                let d = with_payload(
                    if prefix == "Task" {
                        base.clone()
                    } else {
                        Map::new()
                    },
                    "output",
                    &v,
                );
                self.emit(
                    node,
                    &format!("{prefix}Succeeded"),
                    Some(&key("Succeeded")),
                    d,
                );
                Ok(v)
            }
            Err(f) => {
                let timed_out = matches!(
                    f.error.as_deref(),
                    Some("States.Timeout") | Some("States.HeartbeatTimeout")
                );
                self.task_failed(node, prefix, &base, &f, timed_out);
                Err(Stop::Failed(f))
            }
        }
    }

    fn task_failed(
        &self,
        node: u64,
        prefix: &str,
        base: &Map<String, Value>,
        f: &Failure,
        timed_out: bool,
    ) {
        let mut d = if prefix == "Task" {
            base.clone()
        } else {
            Map::new()
        };
        if let Some(e) = &f.error {
            d.insert("error".into(), Value::String(e.clone()));
        }
        if let Some(c) = &f.cause {
            d.insert("cause".into(), Value::String(c.clone()));
        }
        let what = if timed_out { "TimedOut" } else { "Failed" };
        let lower = {
            let mut c = prefix.chars();
            c.next()
                .map(|f| f.to_lowercase().collect::<String>() + c.as_str())
                .unwrap_or_default()
        };
        self.emit(
            node,
            &format!("{prefix}{what}"),
            Some(&format!("{lower}{what}EventDetails")),
            Value::Object(d),
        );
    }
}

fn region_of(arn: &str) -> String {
    arn.split(':')
        .nth(3)
        .filter(|r| !r.is_empty())
        .unwrap_or("us-east-1")
        .to_owned()
}
