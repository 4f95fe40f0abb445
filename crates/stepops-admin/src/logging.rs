//! The admin Lambda's logging: lambda_runtime's defaults (level from `AWS_LAMBDA_LOG_LEVEL` or
//! `RUST_LOG`, `INFO` by default; JSON lines when `AWS_LAMBDA_LOG_FORMAT` is `JSON`, as the
//! template's `LoggingConfig` sets it; no timestamps, CloudWatch adds them), plus what makes the
//! audit record findable in the log group:
//!
//! * every line names its tracing `target` (lambda_runtime's default subscriber leaves it out);
//! * the audit record's line (target [`AUDIT_TARGET`]) carries `"audit": true` and the record
//!   itself as a JSON **object** under `record`, not as a string of JSON:
//!
//! ```json
//! {"level":"INFO","target":"stepops_admin::audit","message":"admin task done","audit":true,
//!  "record":{"task":"remove-user","target":"user:3350396","outcome":"done",…},
//!  "spans":[{"name":"Lambda runtime invoke","requestId":"…","xrayTraceId":"…"}]}
//! ```
//!
//! so that CloudWatch Logs Insights discovers `record.task`, `record.outcome`, … and a metric
//! or subscription filter can match `{ $.audit IS TRUE }`. Other lines are tracing-subscriber's
//! usual JSON (`fields.message`, …). In the text format the record is `record={…}` after
//! `audit=true`.

use std::fmt;

use serde_json::{Map, Value};
use tracing::field::{Field, Visit};
use tracing::{Event, Subscriber};
use tracing_subscriber::EnvFilter;
use tracing_subscriber::filter::LevelFilter;
use tracing_subscriber::fmt::format::{Format, Json, JsonFields, Writer};
use tracing_subscriber::fmt::{FmtContext, FormatEvent, FormatFields, FormattedFields, MakeWriter};
use tracing_subscriber::registry::LookupSpan;

pub use crate::handler::AUDIT_TARGET;

/// The log format the Lambda asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    /// One JSON object per line (`AWS_LAMBDA_LOG_FORMAT=JSON`, what the template deploys).
    Json,
    /// tracing-subscriber's text lines (any other value, or unset).
    Text,
}

impl LogFormat {
    /// The format `AWS_LAMBDA_LOG_FORMAT` names (`JSON` in any case → JSON, else text).
    pub fn from_lambda_env() -> Self {
        match std::env::var("AWS_LAMBDA_LOG_FORMAT") {
            Ok(v) if v.eq_ignore_ascii_case("json") => LogFormat::Json,
            _ => LogFormat::Text,
        }
    }
}

/// Installs the admin Lambda's subscriber on stdout, as the Lambda's environment asks
/// (`AWS_LAMBDA_LOG_FORMAT`, `AWS_LAMBDA_LOG_LEVEL`, `RUST_LOG`). Call once, first in `main`.
pub fn init_lambda() {
    let level = std::env::var("AWS_LAMBDA_LOG_LEVEL")
        .or_else(|_| std::env::var("RUST_LOG"))
        .ok()
        .and_then(|l| l.parse::<LevelFilter>().ok())
        .unwrap_or(LevelFilter::INFO);
    let filter = EnvFilter::builder()
        .with_default_directive(level.into())
        .from_env_lossy();
    let subscriber = lambda_subscriber(LogFormat::from_lambda_env(), filter, std::io::stdout);
    if tracing::subscriber::set_global_default(subscriber).is_err() {
        tracing::warn!("a tracing subscriber was already installed; keeping it");
    }
}

/// The admin Lambda's subscriber writing to `writer` (what [`init_lambda`] installs; tests
/// capture its lines).
pub fn lambda_subscriber<W>(
    format: LogFormat,
    filter: EnvFilter,
    writer: W,
) -> Box<dyn Subscriber + Send + Sync>
where
    W: for<'w> MakeWriter<'w> + Send + Sync + 'static,
{
    let builder = tracing_subscriber::fmt()
        .with_target(true)
        .without_time()
        .with_ansi(false)
        .with_env_filter(filter)
        .with_writer(writer);
    match format {
        LogFormat::Json => Box::new(
            builder
                .fmt_fields(JsonFields::new())
                .event_format(AuditJson::default())
                .finish(),
        ),
        LogFormat::Text => Box::new(builder.finish()),
    }
}

/// tracing-subscriber's JSON format (target, spans, no time), except for the audit record's
/// line, whose fields are written at the top level with `record` as a JSON object.
pub struct AuditJson {
    inner: Format<Json, ()>,
}

impl Default for AuditJson {
    fn default() -> Self {
        AuditJson {
            inner: tracing_subscriber::fmt::format()
                .json()
                .with_target(true)
                .without_time(),
        }
    }
}

impl<S, N> FormatEvent<S, N> for AuditJson
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    N: for<'a> FormatFields<'a> + 'static,
{
    fn format_event(
        &self,
        ctx: &FmtContext<'_, S, N>,
        mut writer: Writer<'_>,
        event: &Event<'_>,
    ) -> fmt::Result {
        let meta = event.metadata();
        if meta.target() != AUDIT_TARGET {
            return self.inner.format_event(ctx, writer, event);
        }
        let mut line = Map::new();
        line.insert("level".into(), meta.level().as_str().into());
        line.insert("target".into(), meta.target().into());
        let mut fields = Fields::default();
        event.record(&mut fields);
        // `message` first, then the others in the order the event gives them.
        if let Some(message) = fields.0.shift_remove("message") {
            line.insert("message".into(), message);
        }
        for (name, value) in fields.0 {
            let value = match (name.as_str(), value) {
                // The record is handed over as its JSON text: embed it as the object it is.
                ("record", Value::String(text)) => {
                    serde_json::from_str(&text).unwrap_or(Value::String(text))
                }
                (_, value) => value,
            };
            line.insert(name, value);
        }
        if let Some(scope) = ctx.event_scope() {
            let spans: Vec<Value> = scope
                .from_root()
                .map(|span| {
                    let mut s = Map::new();
                    s.insert("name".into(), span.name().into());
                    let ext = span.extensions();
                    if let Some(formatted) = ext.get::<FormattedFields<N>>()
                        && let Ok(Value::Object(f)) = serde_json::from_str(formatted)
                    {
                        s.extend(f);
                    }
                    Value::Object(s)
                })
                .collect();
            if !spans.is_empty() {
                line.insert("spans".into(), Value::Array(spans));
            }
        }
        writeln!(writer, "{}", Value::Object(line))
    }
}

/// An event's fields as JSON values.
#[derive(Default)]
struct Fields(Map<String, Value>);

impl Visit for Fields {
    fn record_bool(&mut self, field: &Field, value: bool) {
        self.0.insert(field.name().into(), value.into());
    }
    fn record_i64(&mut self, field: &Field, value: i64) {
        self.0.insert(field.name().into(), value.into());
    }
    fn record_u64(&mut self, field: &Field, value: u64) {
        self.0.insert(field.name().into(), value.into());
    }
    fn record_f64(&mut self, field: &Field, value: f64) {
        self.0.insert(field.name().into(), value.into());
    }
    fn record_str(&mut self, field: &Field, value: &str) {
        self.0.insert(field.name().into(), value.into());
    }
    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        self.0
            .insert(field.name().into(), format!("{value:?}").into());
    }
}
