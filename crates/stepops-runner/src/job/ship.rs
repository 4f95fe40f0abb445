//! A step's masked output shipped to CloudWatch Logs: one log group per environment
//! (`job_log_group`, `/stepops/ENV/jobs`), one stream per execution and step
//! (`MACHINE/EXECUTION/INDEX-STEP`). Shipping never slows or fails the step: lines go through a
//! bounded queue to a task that batches them into `PutLogEvents` calls (at most 10,000 events,
//! 1 MiB, or one second of output); when CloudWatch falls behind, lines that do not fit are
//! dropped and counted (the step's log file keeps them all), and a refused call is logged.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use tokio::sync::mpsc;
use tracing::warn;

/// One log event: milliseconds since the epoch and the line.
pub type LogEvent = (i64, String);

/// A boxed future of a sink call (the trait is used as `dyn`).
pub type SinkFuture<'a> = Pin<Box<dyn Future<Output = Result<(), String>> + Send + 'a>>;

/// Where log events go: CloudWatch Logs in AWS and at the local engine's endpoint.
pub trait LogSink: Send + Sync + std::fmt::Debug {
    /// Creates `stream` in the sink's group; one that exists already is fine.
    fn create_stream<'a>(&'a self, stream: &'a str) -> SinkFuture<'a>;
    /// Appends `events` (in time order) to `stream`.
    fn put<'a>(&'a self, stream: &'a str, events: Vec<LogEvent>) -> SinkFuture<'a>;
}

/// [`LogSink`] over the CloudWatch Logs API.
#[derive(Debug, Clone)]
pub struct CloudWatchSink {
    client: aws_sdk_cloudwatchlogs::Client,
    group: String,
}

impl CloudWatchSink {
    /// Events go to `group` through `client`.
    pub fn new(client: aws_sdk_cloudwatchlogs::Client, group: impl Into<String>) -> Self {
        CloudWatchSink {
            client,
            group: group.into(),
        }
    }
}

impl LogSink for CloudWatchSink {
    fn create_stream<'a>(&'a self, stream: &'a str) -> SinkFuture<'a> {
        Box::pin(async move {
            match self
                .client
                .create_log_stream()
                .log_group_name(&self.group)
                .log_stream_name(stream)
                .send()
                .await
            {
                Ok(_) => Ok(()),
                Err(e)
                    if e.as_service_error()
                        .is_some_and(|s| s.is_resource_already_exists_exception()) =>
                {
                    Ok(())
                }
                Err(e) => Err(aws_sdk_cloudwatchlogs::error::DisplayErrorContext(e).to_string()),
            }
        })
    }

    fn put<'a>(&'a self, stream: &'a str, events: Vec<LogEvent>) -> SinkFuture<'a> {
        Box::pin(async move {
            let events = events
                .into_iter()
                .map(|(timestamp, message)| {
                    aws_sdk_cloudwatchlogs::types::InputLogEvent::builder()
                        .timestamp(timestamp)
                        .message(message)
                        .build()
                        .map_err(|e| e.to_string())
                })
                .collect::<Result<Vec<_>, _>>()?;
            self.client
                .put_log_events()
                .log_group_name(&self.group)
                .log_stream_name(stream)
                .set_log_events(Some(events))
                .send()
                .await
                .map(|_| ())
                .map_err(|e| aws_sdk_cloudwatchlogs::error::DisplayErrorContext(e).to_string())
        })
    }
}

/// `PutLogEvents` limits: events per call, bytes per call (each event counts 26 bytes more).
const MAX_EVENTS: usize = 10_000;
const MAX_BATCH_BYTES: usize = 1_048_576;
const EVENT_OVERHEAD: usize = 26;
/// The largest event `PutLogEvents` takes everywhere (256 KiB with its overhead): a longer
/// line is shipped as several events.
const MAX_EVENT_BYTES: usize = 256 * 1024 - EVENT_OVERHEAD;
/// Batches of masked output waiting to be shipped (each up to one read of 1 MiB).
const QUEUE: usize = 16;
/// The longest a line waits before it is sent.
const FLUSH_EVERY: Duration = Duration::from_secs(1);

/// A step's shipping: [`Shipper::offer`] each batch of masked lines, then [`Shipper::finish`].
#[derive(Debug)]
pub struct Shipper {
    tx: mpsc::Sender<Vec<u8>>,
    task: tokio::task::JoinHandle<()>,
    dropped: u64,
    stream: String,
}

impl Shipper {
    /// Starts shipping to `stream` of `sink`.
    pub fn start(sink: Arc<dyn LogSink>, stream: String) -> Shipper {
        let (tx, rx) = mpsc::channel(QUEUE);
        let task = tokio::spawn(ship(sink, stream.clone(), rx));
        Shipper {
            tx,
            task,
            dropped: 0,
            stream,
        }
    }

    /// Queues `batch` (complete lines, each ending in `\n`); dropped when the queue is full.
    pub fn offer(&mut self, batch: &[u8]) {
        if self.tx.try_send(batch.to_vec()).is_err() {
            self.dropped += memchr::memchr_iter(b'\n', batch).count() as u64;
        }
    }

    /// Sends what is queued (waiting at most `timeout`); says how many lines were dropped.
    pub async fn finish(self, timeout: Duration) {
        drop(self.tx);
        if tokio::time::timeout(timeout, self.task).await.is_err() {
            warn!(stream = %self.stream, "CloudWatch Logs did not take the step's last lines in time");
        }
        if self.dropped > 0 {
            warn!(
                stream = %self.stream, lines = self.dropped,
                "lines not shipped to CloudWatch Logs (it fell behind; the step's log file has them)"
            );
        }
    }
}

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

async fn ship(sink: Arc<dyn LogSink>, stream: String, mut rx: mpsc::Receiver<Vec<u8>>) {
    if let Err(e) = sink.create_stream(&stream).await {
        warn!(stream = %stream, error = %e, "cannot create the step's CloudWatch Logs stream; its output is not shipped");
        while rx.recv().await.is_some() {}
        return;
    }
    let mut events: Vec<LogEvent> = Vec::new();
    let mut bytes = 0;
    let mut tick = tokio::time::interval(FLUSH_EVERY);
    loop {
        let batch = tokio::select! {
            b = rx.recv() => b,
            _ = tick.tick() => {
                flush(sink.as_ref(), &stream, &mut events, &mut bytes).await;
                continue;
            }
        };
        let Some(batch) = batch else { break };
        let at = now_ms();
        let body = batch.strip_suffix(b"\n").unwrap_or(&batch);
        for line in body.split(|b| *b == b'\n') {
            let line = String::from_utf8_lossy(line);
            for message in event_messages(&line, MAX_EVENT_BYTES) {
                let size = message.len() + EVENT_OVERHEAD;
                if events.len() == MAX_EVENTS || bytes + size > MAX_BATCH_BYTES {
                    flush(sink.as_ref(), &stream, &mut events, &mut bytes).await;
                }
                bytes += size;
                events.push((at, message.to_owned()));
            }
        }
    }
    flush(sink.as_ref(), &stream, &mut events, &mut bytes).await;
}

/// One line's event messages: the line in pieces of at most `max` bytes, cut between
/// characters; an empty line is one space (CloudWatch refuses an empty message).
fn event_messages(line: &str, max: usize) -> impl Iterator<Item = &str> {
    let mut rest = if line.is_empty() { " " } else { line };
    std::iter::from_fn(move || {
        if rest.is_empty() {
            return None;
        }
        let mut cut = rest.len().min(max);
        while !rest.is_char_boundary(cut) {
            cut -= 1;
        }
        let (piece, tail) = rest.split_at(cut);
        rest = tail;
        Some(piece)
    })
}

async fn flush(sink: &dyn LogSink, stream: &str, events: &mut Vec<LogEvent>, bytes: &mut usize) {
    if events.is_empty() {
        return;
    }
    let n = events.len();
    if let Err(e) = sink.put(stream, std::mem::take(events)).await {
        warn!(stream = %stream, events = n, error = %e, "CloudWatch Logs refused a batch of the step's output");
    }
    *bytes = 0;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_line_becomes_events_of_at_most_the_limit_cut_between_characters() {
        assert_eq!(event_messages("", 8).collect::<Vec<_>>(), [" "]);
        assert_eq!(event_messages("short", 8).collect::<Vec<_>>(), ["short"]);
        assert_eq!(
            event_messages("abcdefgh", 8).collect::<Vec<_>>(),
            ["abcdefgh"]
        );
        assert_eq!(
            event_messages("abcdefghij", 4).collect::<Vec<_>>(),
            ["abcd", "efgh", "ij"]
        );
        // "é" is two bytes: a piece never ends inside it.
        let pieces: Vec<_> = event_messages("aéééb", 4).collect();
        assert_eq!(pieces, ["aé", "éé", "b"]);
        let long = "x".repeat(MAX_EVENT_BYTES * 2 + 5);
        let sizes: Vec<usize> = event_messages(&long, MAX_EVENT_BYTES)
            .map(str::len)
            .collect();
        assert_eq!(sizes, [MAX_EVENT_BYTES, MAX_EVENT_BYTES, 5]);
    }
}
