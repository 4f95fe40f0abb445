//! The CloudWatch Logs stand-in (`application/x-amz-json-1.1`, `X-Amz-Target:
//! Logs_20140328.<Operation>`): `CreateLogGroup`, `CreateLogStream`, `PutLogEvents`,
//! `GetLogEvents` and `DescribeLogStreams`, in memory, so that a runner's job output shipped
//! with the real SDK lands somewhere a test or `aws logs get-log-events --endpoint-url` can
//! read it back. A stream keeps its last [`MAX_EVENTS_KEPT`] events (older ones are dropped,
//! as a retention period would); messages are never logged.

use std::collections::BTreeMap;
use std::sync::Mutex;

use serde_json::{Value, json};

/// Events each stream keeps.
pub const MAX_EVENTS_KEPT: usize = 100_000;
/// `PutLogEvents` limits.
const MAX_EVENTS_PER_PUT: usize = 10_000;
const MAX_PUT_BYTES: usize = 1_048_576;

#[derive(Debug, Default)]
struct Stream {
    /// `(timestamp, message, ingestion time)`.
    events: Vec<(i64, String, i64)>,
    /// Events dropped from the front (tokens stay valid).
    dropped: usize,
}

/// Log groups and their streams.
#[derive(Debug, Default)]
pub struct LogStore {
    groups: Mutex<BTreeMap<String, BTreeMap<String, Stream>>>,
}

/// An API error: its `__type` and message.
pub type LogsError = (&'static str, String);

fn text<'a>(input: &'a Value, field: &str) -> Result<&'a str, LogsError> {
    input
        .get(field)
        .and_then(Value::as_str)
        .filter(|s| !s.is_empty())
        .ok_or(("InvalidParameterException", format!("{field} is required")))
}

fn no_group(group: &str) -> LogsError {
    (
        "ResourceNotFoundException",
        format!("The specified log group does not exist: {group}"),
    )
}

/// The stream `logStreamName` of `group`, or CloudWatch's not-found error.
fn stream_of<'a>(
    groups: &'a mut BTreeMap<String, BTreeMap<String, Stream>>,
    group: &str,
    input: &Value,
) -> Result<&'a mut Stream, LogsError> {
    let name = text(input, "logStreamName")?;
    groups
        .get_mut(group)
        .ok_or_else(|| no_group(group))?
        .get_mut(name)
        .ok_or((
            "ResourceNotFoundException",
            format!("The specified log stream does not exist: {name}"),
        ))
}

/// CloudWatch Logs' answer to creating a log `what` (`group`, `stream`) that exists.
fn already_exists(what: &str, name: &str) -> LogsError {
    (
        "ResourceAlreadyExistsException",
        format!("The specified log {what} already exists: {name}"),
    )
}

impl LogStore {
    /// Answers `op` with `input`.
    pub fn call(&self, op: &str, input: &Value) -> Result<Value, LogsError> {
        let mut groups = self.groups.lock().expect("log groups");
        let group = text(input, "logGroupName")?;
        match op {
            "CreateLogGroup" => {
                if groups.contains_key(group) {
                    return Err(already_exists("group", group));
                }
                groups.insert(group.to_owned(), BTreeMap::new());
                Ok(json!({}))
            }
            "CreateLogStream" => {
                let name = text(input, "logStreamName")?;
                if name.contains(':') || name.contains('*') || name.len() > 512 {
                    return Err((
                        "InvalidParameterException",
                        format!(
                            "invalid log stream name {name:?}: at most 512 characters, no : or *"
                        ),
                    ));
                }
                // A group the template declares exists in AWS before the runner writes to it;
                // locally it is made on first use.
                let streams = groups.entry(group.to_owned()).or_default();
                if streams.contains_key(name) {
                    return Err(already_exists("stream", name));
                }
                streams.insert(name.to_owned(), Stream::default());
                Ok(json!({}))
            }
            "PutLogEvents" => {
                let stream = stream_of(&mut groups, group, input)?;
                let events = input
                    .get("logEvents")
                    .and_then(Value::as_array)
                    .filter(|e| !e.is_empty() && e.len() <= MAX_EVENTS_PER_PUT)
                    .ok_or((
                        "InvalidParameterException",
                        format!("logEvents must hold 1 to {MAX_EVENTS_PER_PUT} events"),
                    ))?;
                let mut parsed = Vec::with_capacity(events.len());
                let mut bytes = 0;
                for e in events {
                    let (Some(ts), Some(msg)) = (
                        e.get("timestamp").and_then(Value::as_i64),
                        e.get("message").and_then(Value::as_str),
                    ) else {
                        return Err((
                            "InvalidParameterException",
                            "each log event needs a timestamp and a message".into(),
                        ));
                    };
                    if msg.is_empty() {
                        return Err((
                            "InvalidParameterException",
                            "a log event's message must not be empty".into(),
                        ));
                    }
                    if parsed.last().is_some_and(|(t, _): &(i64, &str)| ts < *t) {
                        return Err((
                            "InvalidParameterException",
                            "Log events in a single PutLogEvents request must be in \
                             chronological order."
                                .into(),
                        ));
                    }
                    bytes += msg.len() + 26;
                    parsed.push((ts, msg));
                }
                if bytes > MAX_PUT_BYTES {
                    return Err((
                        "InvalidParameterException",
                        format!("the batch is {bytes} bytes, over {MAX_PUT_BYTES}"),
                    ));
                }
                let now = chrono::Utc::now().timestamp_millis();
                stream
                    .events
                    .extend(parsed.into_iter().map(|(t, m)| (t, m.to_owned(), now)));
                if stream.events.len() > MAX_EVENTS_KEPT {
                    let over = stream.events.len() - MAX_EVENTS_KEPT;
                    stream.events.drain(..over);
                    stream.dropped += over;
                }
                Ok(json!({}))
            }
            "GetLogEvents" => {
                let stream = stream_of(&mut groups, group, input)?;
                let limit = input
                    .get("limit")
                    .and_then(Value::as_u64)
                    .map_or(10_000, |l| l.clamp(1, 10_000) as usize);
                let total = stream.dropped + stream.events.len();
                let token = input.get("nextToken").and_then(Value::as_str);
                let from_head = input.get("startFromHead").and_then(Value::as_bool) == Some(true);
                // Tokens are `f/N` (forward from event N) and `b/N` (backward, up to N).
                let (start, end) = match token.map(|t| t.split_at(t.len().min(2))) {
                    Some(("f/", n)) => {
                        let n = n.parse::<usize>().unwrap_or(total).max(stream.dropped);
                        (n.min(total), (n + limit).min(total))
                    }
                    Some(("b/", n)) => {
                        let n = n.parse::<usize>().unwrap_or(0).min(total);
                        (n.saturating_sub(limit).max(stream.dropped), n)
                    }
                    Some(_) => {
                        return Err((
                            "InvalidParameterException",
                            "The specified nextToken is invalid.".into(),
                        ));
                    }
                    None if from_head => (stream.dropped, (stream.dropped + limit).min(total)),
                    None => (total.saturating_sub(limit).max(stream.dropped), total),
                };
                let events: Vec<Value> = stream.events
                    [start - stream.dropped..end - stream.dropped]
                    .iter()
                    .map(|(t, m, i)| json!({"timestamp": t, "message": m, "ingestionTime": i}))
                    .collect();
                Ok(json!({
                    "events": events,
                    "nextForwardToken": format!("f/{end}"),
                    "nextBackwardToken": format!("b/{start}"),
                }))
            }
            "DescribeLogStreams" => {
                let streams = groups.get(group).ok_or_else(|| no_group(group))?;
                let prefix = input
                    .get("logStreamNamePrefix")
                    .and_then(Value::as_str)
                    .unwrap_or("");
                let list: Vec<Value> = streams
                    .iter()
                    .filter(|(n, _)| n.starts_with(prefix))
                    .map(|(n, s)| {
                        json!({
                            "logStreamName": n,
                            "storedBytes": s.events.iter().map(|e| e.1.len()).sum::<usize>(),
                            "lastEventTimestamp": s.events.last().map(|e| e.0),
                        })
                    })
                    .collect();
                Ok(json!({"logStreams": list}))
            }
            other => Err((
                "UnknownOperationException",
                format!(
                    "the local engine's CloudWatch Logs stand-in implements CreateLogGroup, \
                     CreateLogStream, PutLogEvents, GetLogEvents and DescribeLogStreams, not {other}"
                ),
            )),
        }
    }
}
