//! The Step Functions JSON API (`application/x-amz-json-1.0`, `X-Amz-Target:
//! AWSStepFunctions.<Op>`) on 127.0.0.1, with the Secrets Manager (`secretsmanager.`) and
//! CloudWatch Logs (`Logs_20140328.`, [`crate::logs`]) stand-ins. SigV4 headers are accepted and
//! not checked.
//!
//! Bounded as a service on a developer's machine must be: request bodies of at most
//! [`MAX_BODY`] (larger: 413, nothing read further), payload fields of at most AWS's 256 KiB
//! (`ValidationException`), a `Host` that names a loopback address (anything else, as a page
//! rebinding its DNS name to 127.0.0.1 would send: 403), and headers that arrive within
//! [`HEADER_TIMEOUT`].

use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use chrono::{DateTime, Utc};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use serde_json::{Map, Value, json};
use tokio::net::TcpListener;

use crate::engine::Engine;
use crate::error::{ApiError, ApiErrorKind};
use crate::store::ExecutionRecord;

const CONTENT_TYPE: &str = "application/x-amz-json-1.0";

/// The largest request body read: AWS's 256 KiB payloads with room for JSON escaping.
pub const MAX_BODY: usize = 1024 * 1024;

/// AWS's limit on a payload field (an execution's input, a task's output), in UTF-8 bytes.
pub const MAX_PAYLOAD: usize = 256 * 1024;

/// How long a client may take to send its request headers.
pub const HEADER_TIMEOUT: Duration = Duration::from_secs(10);

/// The free-text fields of the operations and AWS's limit on each: payloads in UTF-8 bytes,
/// `cause` and `error` in characters.
const FIELD_LIMITS: &[(&str, usize, bool)] = &[
    ("input", MAX_PAYLOAD, true),
    ("output", MAX_PAYLOAD, true),
    ("cause", 32_768, false),
    ("error", 256, false),
];

/// Accepts connections until the engine shuts down.
pub(crate) async fn serve(listener: TcpListener, engine: Arc<Engine>) {
    let shutdown = engine.shutdown.clone();
    loop {
        let (stream, _) = tokio::select! {
            r = listener.accept() => match r {
                Ok(x) => x,
                Err(e) => {
                    tracing::warn!(error = %e, "accept failed");
                    continue;
                }
            },
            _ = shutdown.cancelled() => return,
        };
        let engine = engine.clone();
        let shutdown = shutdown.clone();
        tokio::spawn(async move {
            let service = hyper::service::service_fn(move |req| {
                let engine = engine.clone();
                async move { Ok::<_, Infallible>(handle(engine, req).await) }
            });
            let conn = hyper::server::conn::http1::Builder::new()
                .timer(hyper_util::rt::TokioTimer::new())
                .header_read_timeout(HEADER_TIMEOUT)
                .serve_connection(TokioIo::new(stream), service);
            tokio::select! {
                r = conn => if let Err(e) = r {
                    tracing::debug!(error = %e, "connection ended with an error");
                },
                _ = shutdown.cancelled() => {}
            }
        });
    }
}

fn respond(status: StatusCode, body: Value) -> Response<Full<Bytes>> {
    Response::builder()
        .status(status)
        .header("content-type", CONTENT_TYPE)
        .header("x-amzn-requestid", uuid::Uuid::new_v4().to_string())
        .body(Full::new(Bytes::from(body.to_string())))
        .expect("valid response")
}

fn error_response(e: &ApiError) -> Response<Full<Bytes>> {
    let status = if e.kind.is_client_error() {
        StatusCode::BAD_REQUEST
    } else {
        StatusCode::INTERNAL_SERVER_ERROR
    };
    respond(
        status,
        json!({"__type": e.kind.as_str(), "message": e.message}),
    )
}

/// Whether a `Host` header names this machine (`localhost`, `*.localhost`, 127.0.0.0/8,
/// `[::1]`, with or without a port). A request without one (HTTP/1.0) is taken as local.
fn loopback_host(host: Option<&str>) -> bool {
    let Some(host) = host else { return true };
    let name = match host.strip_prefix('[') {
        Some(rest) => rest.split(']').next().unwrap_or(""),
        None => host.rsplit_once(':').map_or(host, |(h, _)| h),
    };
    let name = name.trim_end_matches('.').to_ascii_lowercase();
    name == "localhost"
        || name.ends_with(".localhost")
        || name
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
}

/// A refusal before the request is read (not a Step Functions error shape of an operation).
fn refuse(status: StatusCode, kind: &str, message: String) -> Response<Full<Bytes>> {
    respond(status, json!({"__type": kind, "message": message}))
}

async fn handle(engine: Arc<Engine>, req: Request<Incoming>) -> Response<Full<Bytes>> {
    let host = req
        .headers()
        .get(hyper::header::HOST)
        .map(|v| v.to_str().unwrap_or("?"));
    if !loopback_host(host) {
        return refuse(
            StatusCode::FORBIDDEN,
            "AccessDeniedException",
            format!(
                "the local engine answers requests for loopback host names only (localhost, \
                 127.0.0.1, [::1]), not Host {:?}",
                host.unwrap_or("")
            ),
        );
    }
    let target = req
        .headers()
        .get("x-amz-target")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_string();
    let body = match http_body_util::Limited::new(req.into_body(), MAX_BODY)
        .collect()
        .await
    {
        Ok(b) => b.to_bytes(),
        Err(e) if e.is::<http_body_util::LengthLimitError>() => {
            return refuse(
                StatusCode::PAYLOAD_TOO_LARGE,
                "RequestEntityTooLargeException",
                format!("the request body is larger than {MAX_BODY} bytes"),
            );
        }
        Err(e) => {
            return error_response(&ApiError::new(
                ApiErrorKind::SerializationException,
                format!("cannot read the request body: {e}"),
            ));
        }
    };
    let input: Value = if body.is_empty() {
        json!({})
    } else {
        match serde_json::from_slice(&body) {
            Ok(v) => v,
            Err(e) => {
                return error_response(&ApiError::new(
                    ApiErrorKind::SerializationException,
                    format!("the request body is not JSON: {e}"),
                ));
            }
        }
    };
    if let Some(op) = target.strip_prefix("secretsmanager.") {
        return secrets_manager(&engine, op, &input);
    }
    if let Some(op) = target.strip_prefix("Logs_20140328.") {
        let (status, body) = match engine.logs.call(op, &input) {
            Ok(v) => (StatusCode::OK, v),
            Err((kind, message)) => (
                StatusCode::BAD_REQUEST,
                json!({"__type": kind, "message": message}),
            ),
        };
        return json_11(status, body);
    }
    let Some(op) = target.strip_prefix("AWSStepFunctions.") else {
        return error_response(&ApiError::new(
            ApiErrorKind::UnknownOperationException,
            format!(
                "missing or foreign X-Amz-Target header {target:?}; expected AWSStepFunctions.<Operation>"
            ),
        ));
    };
    tracing::debug!(op, "api call");
    if let Some((field, max, _)) = FIELD_LIMITS.iter().find(|(f, max, bytes)| {
        str_field(&input, f)
            .is_some_and(|v| if *bytes { v.len() } else { v.chars().count() } > *max)
    }) {
        return error_response(&ApiError::new(
            ApiErrorKind::ValidationException,
            format!(
                "1 validation error detected: Value at '{field}' failed to satisfy constraint: \
                 Member must have length less than or equal to {max}"
            ),
        ));
    }
    match call(&engine, op, &input).await {
        Ok(v) => respond(StatusCode::OK, v),
        Err(e) => error_response(&e),
    }
}

/// The Secrets Manager stand-in (`application/x-amz-json-1.1`): `GetSecretValue` of the values
/// in [`crate::EngineConfig::secrets`]. The value is never logged.
fn secrets_manager(engine: &Engine, op: &str, input: &Value) -> Response<Full<Bytes>> {
    let fail = |kind: &str, message: String| {
        json_11(
            StatusCode::BAD_REQUEST,
            json!({"__type": kind, "message": message}),
        )
    };
    if op != "GetSecretValue" {
        return fail(
            "UnknownOperationException",
            format!(
                "the local engine's Secrets Manager stand-in implements GetSecretValue only, not {op}"
            ),
        );
    }
    let Some(id) = str_field(input, "SecretId") else {
        return fail("InvalidParameterException", "SecretId is required".into());
    };
    // By name, or by an ARN ending in `:secret:NAME`.
    let name = id.rsplit_once(":secret:").map_or(id, |(_, n)| n);
    tracing::debug!(secret = name, "GetSecretValue");
    let Some(value) = engine.secrets.get(name) else {
        return fail(
            "ResourceNotFoundException",
            format!(
                "Secrets Manager can't find the specified secret {name:?} (local engine: give it with --secret NAME=VALUE)"
            ),
        );
    };
    json_11(
        StatusCode::OK,
        json!({
            "ARN": format!(
                "arn:aws:secretsmanager:{}:{}:secret:{name}",
                engine.locality.region, engine.locality.account
            ),
            "Name": name,
            "SecretString": value,
            "VersionId": "local",
            "VersionStages": ["AWSCURRENT"],
            "CreatedDate": 0,
        }),
    )
}

/// A response of an `application/x-amz-json-1.1` service (Secrets Manager, CloudWatch Logs).
fn json_11(status: StatusCode, body: Value) -> Response<Full<Bytes>> {
    let mut r = respond(status, body);
    r.headers_mut().insert(
        hyper::header::CONTENT_TYPE,
        hyper::header::HeaderValue::from_static("application/x-amz-json-1.1"),
    );
    r
}

fn epoch(d: &DateTime<Utc>) -> Value {
    json!(d.timestamp_millis() as f64 / 1000.0)
}

/// The string field `key` of a request body.
fn str_field<'a>(input: &'a Value, key: &str) -> Option<&'a str> {
    input.get(key).and_then(Value::as_str)
}

fn required<'a>(input: &'a Value, key: &str) -> Result<&'a str, ApiError> {
    str_field(input, key).ok_or_else(|| {
        ApiError::new(
            ApiErrorKind::ValidationException,
            format!("1 validation error detected: Value null at '{key}' failed to satisfy constraint: Member must not be null"),
        )
    })
}

/// `maxResults`: 100 when absent or 0, at most 1000.
fn page_size(input: &Value) -> usize {
    input
        .get("maxResults")
        .and_then(Value::as_u64)
        .filter(|n| *n > 0)
        .unwrap_or(100)
        .min(1000) as usize
}

/// Offset pagination: `(start, page size)`.
fn page(input: &Value) -> Result<(usize, usize), ApiError> {
    let size = page_size(input);
    let start = match str_field(input, "nextToken") {
        None | Some("") => 0,
        Some(t) => t.parse().map_err(|_| {
            ApiError::new(
                ApiErrorKind::ValidationException,
                "Invalid Token: nextToken",
            )
        })?,
    };
    Ok((start, size))
}

fn paged(items: Vec<Value>, key: &str, start: usize, size: usize) -> Value {
    let total = items.len();
    let page: Vec<Value> = items.into_iter().skip(start).take(size).collect();
    let mut out = Map::new();
    out.insert(key.into(), Value::Array(page));
    if start + size < total {
        out.insert("nextToken".into(), json!((start + size).to_string()));
    }
    Value::Object(out)
}

fn redrive_status(r: &ExecutionRecord) -> (&'static str, Option<String>) {
    match r.status.as_str() {
        "FAILED" | "TIMED_OUT" | "ABORTED" => ("REDRIVABLE", None),
        "RUNNING" => (
            "NOT_REDRIVABLE",
            Some("Execution is RUNNING and cannot be redriven".into()),
        ),
        _ => (
            "NOT_REDRIVABLE",
            Some(format!("Execution is {} and cannot be redriven", r.status)),
        ),
    }
}

/// The fields `DescribeExecution` and `ListExecutions` both give, redrive counts included.
fn execution_summary(r: &ExecutionRecord) -> Map<String, Value> {
    let mut m = Map::new();
    m.insert("executionArn".into(), json!(r.arn));
    m.insert("stateMachineArn".into(), json!(r.state_machine_arn));
    m.insert("name".into(), json!(r.name));
    m.insert("status".into(), json!(r.status));
    m.insert("startDate".into(), epoch(&r.start_date));
    if let Some(d) = &r.stop_date {
        m.insert("stopDate".into(), epoch(d));
    }
    m.insert("redriveCount".into(), json!(r.redrive_count));
    if let Some(d) = &r.redrive_date {
        m.insert("redriveDate".into(), epoch(d));
    }
    m
}

fn describe_execution(r: &ExecutionRecord) -> Value {
    let mut m = execution_summary(r);
    m.insert("input".into(), json!(r.input));
    m.insert("inputDetails".into(), json!({"included": true}));
    if let Some(o) = &r.output {
        m.insert("output".into(), json!(o));
        m.insert("outputDetails".into(), json!({"included": true}));
    }
    if let Some(e) = &r.error {
        m.insert("error".into(), json!(e));
    }
    if let Some(c) = &r.cause {
        m.insert("cause".into(), json!(c));
    }
    let (status, reason) = redrive_status(r);
    m.insert("redriveStatus".into(), json!(status));
    if let Some(reason) = reason {
        m.insert("redriveStatusReason".into(), json!(reason));
    }
    Value::Object(m)
}

fn list_item(r: &ExecutionRecord) -> Value {
    Value::Object(execution_summary(r))
}

/// A stored `stepops_asl::HistoryEvent` in the API's shape.
fn api_event(stored: &str, include_data: bool) -> Option<Value> {
    let e: stepops_asl::HistoryEvent = serde_json::from_str(stored).ok()?;
    let mut m = Map::new();
    m.insert("timestamp".into(), epoch(&e.timestamp));
    m.insert("type".into(), json!(e.event_type));
    m.insert("id".into(), json!(e.id));
    m.insert("previousEventId".into(), json!(e.previous_event_id));
    if let Some(key) = e.details_key {
        let mut details = e.details;
        if !include_data && let Some(d) = details.as_object_mut() {
            for k in ["input", "output", "result", "parameters"] {
                d.remove(k);
            }
        }
        m.insert(key, details);
    }
    Some(Value::Object(m))
}

/// `GetActivityTask` with [`crate::EngineConfig::abandoned_polls_take_tasks`]: the poll runs on
/// its own task, so it outlives its connection, as AWS's may: when the client has gone (the
/// runner was killed while polling), a task it takes is lost until its heartbeat times out.
async fn held_poll(
    engine: &Arc<Engine>,
    arn: &str,
    wait: Duration,
    worker: Option<&str>,
) -> Result<Option<crate::tasks::ActivityTask>, ApiError> {
    let (tx, rx) = tokio::sync::oneshot::channel();
    let (hub, shutdown) = (engine.hub.clone(), engine.shutdown.clone());
    let (arn, worker) = (arn.to_owned(), worker.map(str::to_owned));
    tokio::spawn(async move {
        let task = tokio::select! {
            t = hub.poll(&arn, wait, worker.as_deref()) => t,
            _ = shutdown.cancelled() => Ok(None),
        };
        if let Err(Ok(Some(lost))) = tx.send(task) {
            tracing::info!(
                activity = %arn,
                worker = worker.as_deref().unwrap_or(""),
                token_end = &lost.task_token[lost.task_token.len().saturating_sub(12)..],
                "activity task handed to a poll whose client has gone (as AWS may): nobody works \
                 on it; it is lost until its HeartbeatSeconds run out"
            );
        }
    });
    rx.await.unwrap_or(Ok(None))
}

async fn call(engine: &Arc<Engine>, op: &str, input: &Value) -> Result<Value, ApiError> {
    match op {
        "CreateActivity" => {
            let (arn, created) = engine.create_activity(required(input, "name")?)?;
            Ok(json!({"activityArn": arn, "creationDate": epoch(&created)}))
        }
        "ListActivities" => {
            let (start, size) = page(input)?;
            let items = engine
                .hub
                .activities()
                .iter()
                .map(|a| json!({"activityArn": a.arn, "name": a.name, "creationDate": epoch(&a.created)}))
                .collect();
            Ok(paged(items, "activities", start, size))
        }
        "DescribeActivity" => {
            let arn = required(input, "activityArn")?;
            let a = engine.hub.activity(arn).ok_or_else(|| {
                ApiError::new(
                    ApiErrorKind::ActivityDoesNotExist,
                    format!("Activity Does Not Exist: '{arn}'"),
                )
            })?;
            Ok(json!({"activityArn": a.arn, "name": a.name, "creationDate": epoch(&a.created)}))
        }
        "DeleteActivity" => {
            engine.delete_activity(required(input, "activityArn")?)?;
            Ok(json!({}))
        }
        "GetActivityTask" => {
            let arn = required(input, "activityArn")?;
            let worker = str_field(input, "workerName");
            let wait = engine.poll_timeout.min(Duration::from_secs(60));
            let task = if engine.abandoned_polls_take_tasks {
                held_poll(engine, arn, wait, worker).await?
            } else {
                // This future is dropped when the client goes away: the poll ends with it.
                let poll = engine.hub.poll(arn, wait, worker);
                tokio::select! {
                    t = poll => t?,
                    _ = engine.shutdown.cancelled() => None,
                }
            };
            Ok(match task {
                Some(t) => json!({"taskToken": t.task_token, "input": t.input}),
                None => json!({}),
            })
        }
        "SendTaskSuccess" => {
            let output = required(input, "output")?;
            engine.hub.succeed(required(input, "taskToken")?, output)?;
            Ok(json!({}))
        }
        "SendTaskFailure" => {
            engine.hub.fail(
                required(input, "taskToken")?,
                str_field(input, "error").unwrap_or(""),
                str_field(input, "cause").unwrap_or(""),
            )?;
            Ok(json!({}))
        }
        "SendTaskHeartbeat" => {
            engine.hub.heartbeat(required(input, "taskToken")?)?;
            Ok(json!({}))
        }
        "StartExecution" | "StartSyncExecution" => {
            let (arn, start) = engine.start_execution(
                required(input, "stateMachineArn")?,
                str_field(input, "name"),
                str_field(input, "input"),
            )?;
            if op == "StartSyncExecution" {
                let r = engine.wait(&arn).await?;
                let mut d = describe_execution(&r);
                if let Some(m) = d.as_object_mut() {
                    m.retain(|k, _| !k.starts_with("redrive"));
                }
                return Ok(d);
            }
            Ok(json!({"executionArn": arn, "startDate": epoch(&start)}))
        }
        "DescribeExecution" => Ok(describe_execution(
            &engine.execution(required(input, "executionArn")?)?,
        )),
        "StopExecution" => {
            let d = engine.stop_execution(
                required(input, "executionArn")?,
                str_field(input, "error").map(str::to_string),
                str_field(input, "cause").map(str::to_string),
            )?;
            Ok(json!({"stopDate": epoch(&d)}))
        }
        "ListExecutions" => {
            let machine = required(input, "stateMachineArn")?;
            engine.machine(machine)?;
            let (start, size) = page(input)?;
            let items = engine
                .store
                .executions(Some(machine), str_field(input, "statusFilter"))
                .map_err(|e| ApiError::new(ApiErrorKind::InternalFailure, e.to_string()))?
                .iter()
                .filter(|r| match str_field(input, "redriveFilter") {
                    Some("REDRIVEN") => r.redrive_count > 0,
                    Some("NOT_REDRIVEN") => r.redrive_count == 0,
                    _ => true,
                })
                .map(list_item)
                .collect();
            Ok(paged(items, "executions", start, size))
        }
        "GetExecutionHistory" => {
            let arn = required(input, "executionArn")?;
            engine.execution(arn)?;
            let size = page_size(input);
            let reverse = input
                .get("reverseOrder")
                .and_then(Value::as_bool)
                .unwrap_or(false);
            let include = input
                .get("includeExecutionData")
                .and_then(Value::as_bool)
                .unwrap_or(true);
            let after: i64 = match str_field(input, "nextToken") {
                None | Some("") => 0,
                Some(t) => t.parse().map_err(|_| {
                    ApiError::new(ApiErrorKind::InvalidToken, "Invalid Token: nextToken")
                })?,
            };
            let rows = engine
                .store
                .events(arn, after, size + 1, reverse)
                .map_err(|e| ApiError::new(ApiErrorKind::InternalFailure, e.to_string()))?;
            let more = rows.len() > size;
            let rows = &rows[..rows.len().min(size)];
            let events: Vec<Value> = rows
                .iter()
                .filter_map(|(_, e)| api_event(e, include))
                .collect();
            let mut out = json!({"events": events});
            if more && let Some((last, _)) = rows.last() {
                out["nextToken"] = json!(last.to_string());
            }
            Ok(out)
        }
        "RedriveExecution" => {
            let d = engine.redrive_execution(required(input, "executionArn")?)?;
            Ok(json!({"redriveDate": epoch(&d)}))
        }
        "ListStateMachines" => {
            let (start, size) = page(input)?;
            let items = engine
                .machines()
                .iter()
                .map(|m| {
                    json!({
                        "stateMachineArn": m.record.arn,
                        "name": m.record.name,
                        "type": m.record.kind,
                        "creationDate": epoch(&m.record.created),
                    })
                })
                .collect();
            Ok(paged(items, "stateMachines", start, size))
        }
        "DescribeStateMachine" => {
            let m = engine.machine(required(input, "stateMachineArn")?)?;
            Ok(json!({
                "stateMachineArn": m.record.arn,
                "name": m.record.name,
                "status": "ACTIVE",
                "definition": m.record.definition,
                "roleArn": m.record.role_arn,
                "type": m.record.kind,
                "creationDate": epoch(&m.record.created),
            }))
        }
        "DescribeStateMachineForExecution" => {
            let r = engine.execution(required(input, "executionArn")?)?;
            let m = engine.machine(&r.state_machine_arn).ok();
            Ok(json!({
                "stateMachineArn": r.state_machine_arn,
                "name": m.as_ref().map(|m| m.record.name.clone()).unwrap_or_default(),
                "definition": r.definition,
                "roleArn": m.as_ref().map(|m| m.record.role_arn.clone()).unwrap_or_default(),
                "updateDate": epoch(&r.start_date),
            }))
        }
        "ListTagsForResource" => {
            required(input, "resourceArn")?;
            Ok(json!({"tags": []}))
        }
        "CreateStateMachine" => {
            let (arn, created) = engine.create_state_machine(
                required(input, "name")?,
                required(input, "definition")?,
                str_field(input, "roleArn")
                    .unwrap_or("arn:aws:iam::123456789012:role/stepops-local"),
                str_field(input, "type").unwrap_or("STANDARD"),
            )?;
            Ok(json!({"stateMachineArn": arn, "creationDate": epoch(&created)}))
        }
        other => Err(ApiError::new(
            ApiErrorKind::UnknownOperationException,
            format!(
                "The local engine does not implement AWSStepFunctions.{other}. Implemented: \
                 CreateActivity, ListActivities, DescribeActivity, DeleteActivity, GetActivityTask, \
                 SendTaskSuccess, SendTaskFailure, SendTaskHeartbeat, StartExecution, \
                 StartSyncExecution, DescribeExecution, StopExecution, ListExecutions, \
                 GetExecutionHistory, RedriveExecution, ListStateMachines, DescribeStateMachine, \
                 DescribeStateMachineForExecution, CreateStateMachine, ListTagsForResource."
            ),
        )),
    }
}
