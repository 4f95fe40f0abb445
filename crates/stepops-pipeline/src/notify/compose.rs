//! The notification's text: [`compose`] turns a request into a [`Message`] (subject, text,
//! status, environment) with what to do next, the console link and the duration.

use chrono::{DateTime, Utc};
use serde_json::Value;

use super::request::machine_name;
use super::{Message, NotifyRequest, RunStatus, StepError};
use crate::redact;

/// Composes the notification for `req`; `now` gives the duration when the summary has none.
pub fn compose(req: &NotifyRequest, now: DateTime<Utc>) -> Message {
    let env = &req.environment;
    let summary = req.summary.clone().unwrap_or_default();
    let admin = req.admin.as_ref().and_then(Value::as_object);
    let dry = summary.dry_run == Some(true)
        || admin.and_then(|a| a.get("dryRun")?.as_bool()) == Some(true);
    let workflow = req.workflow.clone().unwrap_or_else(|| {
        let machine = machine_name(&req.execution_arn);
        if machine.contains("admin") || admin.is_some() {
            "admin task".to_owned()
        } else {
            "migration".to_owned()
        }
    });
    let what = if dry {
        format!("{workflow} (dry run)")
    } else {
        workflow
    };
    let duration = summary.duration_seconds.or_else(|| {
        req.start_time
            .map(|s| (now - s).num_milliseconds().max(0) as f64 / 1000.0)
    });
    let mut lines = Vec::new();
    let subject;
    match req.status {
        RunStatus::Succeeded => {
            subject = format!("[stepops {env}] {what} succeeded");
            lines.push(format!("stepops {what} SUCCEEDED in {env}."));
            let mut facts = Vec::new();
            if let Some(t) = summary.tables {
                facts.push(format!("tables: {t}"));
            }
            if let Some(c) = summary.chunks {
                facts.push(format!("chunks: {c}"));
            }
            let partial = match (summary.chunks_copied, summary.chunks) {
                (Some(counted), Some(planned)) if !dry && counted < planned => {
                    Some((counted, planned))
                }
                _ => None,
            };
            if let Some(r) = summary.rows_copied {
                facts.push(format!("rows copied: {r}"));
            }
            if let Some(r) = summary.rows_deleted {
                facts.push(format!("rows deleted: {r}"));
            }
            if let Some(r) = summary.estimated_rows {
                facts.push(format!("rows planned: {r}"));
            }
            if let Some(r) = summary.rounds {
                facts.push(format!("rounds: {r}"));
            }
            if let Some(d) = duration {
                facts.push(format!("duration: {}", human_duration(d)));
            }
            if let Some(a) = admin {
                for key in ["task", "target", "outcome"] {
                    if let Some(v) = a.get(key).and_then(Value::as_str) {
                        facts.push(format!("{key}: {v}"));
                    }
                }
            }
            if let Some(r) = req.relationalize.as_ref().and_then(Value::as_object) {
                facts.extend(relationalize_facts(r));
            }
            if !facts.is_empty() {
                lines.push(facts.join(", "));
            }
            if let Some(r) = req.relationalize.as_ref().and_then(Value::as_object) {
                lines.extend(relationalize_failures(r));
            }
            if let Some((counted, planned)) = partial
                && (summary.rows_copied.is_some() || summary.rows_deleted.is_some())
            {
                lines.push(format!(
                    "The row counts cover {counted} of {planned} chunks: the other chunks' copy \
                     results could not be read (see the runner's log)."
                ));
            }
            if let Some(change) = admin.and_then(|a| a.get("change")?.as_str()) {
                lines.push(format!("change: {}", redact(change)));
            }
            if dry && admin.is_some() {
                lines.push("Nothing was changed (dryRun).".into());
            } else if dry {
                lines.push("Nothing was copied (dryRun).".into());
            } else if summary.chunks == Some(0) {
                lines.push("The destination was already in sync: nothing to copy.".into());
            }
        }
        RunStatus::Failed | RunStatus::TimedOut | RunStatus::Aborted => {
            let step_name = req.failed_step.as_deref();
            let step = step_name
                .map(|s| format!("\"{s}\""))
                .unwrap_or_else(|| "an unknown step".into());
            // A chunk that failed for good shows on the execution as the copy Map's threshold
            // error only: the release step hands over the chunk's own error.
            let chunk = req.release.as_ref().and_then(|r| r.chunk_failure.as_ref());
            let err = match chunk {
                Some(c) => StepError {
                    error: Some(c.error.clone()),
                    cause: Some(c.cause.clone()),
                },
                None => req.error.clone().unwrap_or_default(),
            };
            let name = err.error.as_deref().unwrap_or("(no error name)");
            let (verb, why) = match req.status {
                RunStatus::TimedOut => (
                    "TIMED OUT",
                    " (it ran past the state machine's TimeoutSeconds and was stopped)",
                ),
                RunStatus::Aborted => ("was ABORTED", " (someone stopped it: StopExecution)"),
                _ => ("FAILED", ""),
            };
            subject = match req.status {
                RunStatus::Aborted => format!("[stepops {env}] {what} ABORTED"),
                status => format!("[stepops {env}] {what} {}: {name}", status.as_str()),
            };
            lines.push(format!(
                "stepops {what} {verb} in {env} at step {step}{why}."
            ));
            if let Some(n) = req.redrive_count {
                lines.push(format!("It had been redriven {n} time(s)."));
            }
            if step_name.is_none()
                && let Some(e) = &req.history_error
            {
                lines.push(format!(
                    "(The failed step is unknown: the execution history could not be read: {}.)",
                    redact(e)
                ));
            }
            lines.push(format!("error: {name}"));
            if let Some(c) = chunk {
                let map_error = req.error.as_ref().and_then(|e| e.error.as_deref());
                lines.push(format!(
                    "in chunk: {} [{}, {}] (the copy Map reported {})",
                    c.table,
                    c.min,
                    c.max,
                    map_error.unwrap_or("its failure")
                ));
            }
            if let Some(cause) = err.cause.as_deref() {
                lines.push(format!("cause: {}", redact(&unwrap_cause(cause))));
            }
            if let Some(d) = duration {
                lines.push(format!("after: {}", human_duration(d)));
            }
            lines.extend(destination_status(req));
            lines.push(next_step(req, step_name, admin.is_some()));
        }
    }
    lines.push(format!("execution: {}", req.execution_arn));
    if let Some(url) = console_url(&req.execution_arn) {
        lines.push(format!("console: {url}"));
    }
    Message {
        subject: sns_subject(&subject),
        text: lines.join("\n"),
        status: req.status.as_str().to_owned(),
        environment: env.clone(),
    }
}

/// What a failed run left the destination as: put back READ-WRITE by the release machine, or
/// still READ-ONLY (why, and how to release it).
fn destination_status(req: &NotifyRequest) -> Option<String> {
    const AGAIN: &str = "It is put back read-write at the end of a successful run: fix the cause \
                         and redrive the execution, or start it again with the same input.";
    let release = req.release.as_ref();
    if let Some(r) = release.filter(|r| r.released) {
        return Some(format!(
            "The destination is READ-WRITE again: this run had put it read-only \
             (readOnlyDuringCopy); {}.",
            r.reason
        ));
    }
    if let Some(e) = &req.release_error {
        if req.destination_read_only != Some(true) {
            return None;
        }
        return Some(format!(
            "The destination is still READ-ONLY: this run put it read-only (readOnlyDuringCopy) \
             and putting it back read-write after the failure failed ({}: {}). {AGAIN} To release \
             it without migrating, set its status by hand (a Synapse stack: PUT \
             /admin/synapse/status READ_WRITE).",
            e.error.as_deref().unwrap_or("no error name"),
            redact(e.cause.as_deref().unwrap_or("no cause"))
        ));
    }
    let kept = release.and_then(|r| (r.read_only == Some(true)).then_some(r.reason.as_str()));
    let read_only = kept.is_some() || req.destination_read_only == Some(true);
    if !read_only {
        return None;
    }
    match kept {
        Some(why) if !why.starts_with("a database") => Some(format!(
            "The destination is still READ-ONLY: {why}. {AGAIN}"
        )),
        _ => Some(format!(
            "The destination is still READ-ONLY: this run put it read-only (readOnlyDuringCopy) \
             and stopped before putting it back, so that no client writes to a half-copied \
             database. {AGAIN} To release it without migrating, set the config's status table \
             to its readWrite value, or on PostgreSQL without one run `ALTER DATABASE <db> SET \
             default_transaction_read_only = off`."
        )),
    }
}

/// A relationalize run's counts (its summary's `archives`, `documents`, `invalid`, `failed`,
/// `rows`).
fn relationalize_facts(r: &serde_json::Map<String, Value>) -> Vec<String> {
    [
        ("archives", "archives"),
        ("documents", "documents"),
        ("invalid", "invalid (quarantined)"),
        ("failed", "archives failed"),
        ("skipped", "skipped (not .zip)"),
        ("rows", "rows"),
    ]
    .iter()
    .filter_map(|(key, label)| r.get(*key)?.as_u64().map(|n| format!("{label}: {n}")))
    .collect()
}

/// The failed archives a relationalize summary lists, and what to do.
fn relationalize_failures(r: &serde_json::Map<String, Value>) -> Vec<String> {
    let failures = r.get("failures").and_then(Value::as_array);
    let Some(failures) = failures.filter(|f| !f.is_empty()) else {
        return Vec::new();
    };
    let mut lines = vec![
        "Archives that failed (nothing of them was written; fix the cause, then start the \
         machine again with {\"prefix\": \"<the archive's key>\"}):"
            .to_owned(),
    ];
    for f in failures.iter().take(10) {
        let text = |k: &str| f.get(k).and_then(Value::as_str).unwrap_or("?").to_owned();
        lines.push(format!(
            "- {}: {}: {}",
            text("archive"),
            text("error"),
            redact(&unwrap_cause(&text("cause")))
        ));
    }
    lines
}

/// What to do after a failure, timeout or abort.
fn next_step(req: &NotifyRequest, step: Option<&str>, admin_record: bool) -> String {
    let arn = &req.execution_arn;
    let admin = admin_record || machine_name(arn).contains("admin");
    if req.workflow.as_deref() == Some("relationalize")
        || machine_name(arn).ends_with("-relationalize")
    {
        return "Relationalizing an archive is idempotent (its files are replaced): fix the cause \
                and start the machine again on the same prefix; the Map run's result files \
                (under the output's _runs/) list every archive that failed."
            .into();
    }
    if admin {
        return "Admin tasks are idempotent: fix the cause and start the task again (a redrive \
                of this execution would only repeat its failure)."
            .into();
    }
    if step == Some("ValidateInput") {
        return "The input was refused before anything was touched: correct it and start a new \
                execution (a redrive re-uses the same input and would fail again)."
            .into();
    }
    let at = match step {
        Some("CopyChunks") => "resumes at \"CopyChunks\", where only the chunks that did not \
                               succeed are copied again (copying a chunk is idempotent)"
            .to_owned(),
        Some(s) => format!("resumes at \"{s}\""),
        None => "resumes at the step that did not succeed".to_owned(),
    };
    let limit = if req.status == RunStatus::TimedOut {
        " A redrive also restarts the execution's time limit."
    } else {
        ""
    };
    format!(
        "Fix the cause, then redrive: the execution {at}; the steps that succeeded are not run \
         again.{limit} aws stepfunctions redrive-execution --execution-arn {arn}"
    )
}

/// Lambda causes arrive as `{"errorType":…,"errorMessage":…}`: keep the message.
fn unwrap_cause(cause: &str) -> String {
    serde_json::from_str::<Value>(cause)
        .ok()
        .and_then(|v| v.get("errorMessage")?.as_str().map(str::to_owned))
        .unwrap_or_else(|| cause.to_owned())
}

fn console_url(execution_arn: &str) -> Option<String> {
    // arn:aws:states:REGION:ACCOUNT:execution:MACHINE:NAME
    let mut parts = execution_arn.split(':');
    let (Some("arn"), Some(partition), Some("states"), Some(region)) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return None;
    };
    if partition != "aws" || region.is_empty() {
        return None;
    }
    Some(format!(
        "https://{region}.console.aws.amazon.com/states/home?region={region}#/v2/executions/details/{execution_arn}"
    ))
}

fn human_duration(seconds: f64) -> String {
    let total = seconds.round() as u64;
    let (h, m, s) = (total / 3600, (total % 3600) / 60, total % 60);
    if h > 0 {
        format!("{h}h {m:02}m {s:02}s")
    } else if m > 0 {
        format!("{m}m {s:02}s")
    } else {
        format!("{s}s")
    }
}

/// SNS subjects: ASCII, no line breaks, at most 100 characters.
fn sns_subject(text: &str) -> String {
    let cleaned: String = text
        .chars()
        .map(|c| {
            if c.is_ascii() && !c.is_ascii_control() {
                c
            } else {
                ' '
            }
        })
        .collect();
    if cleaned.len() <= 100 {
        cleaned
    } else {
        format!("{}...", &cleaned[..97])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_read_well() {
        assert_eq!(human_duration(4.4), "4s");
        assert_eq!(human_duration(125.0), "2m 05s");
        assert_eq!(human_duration(30.0 * 3600.0 + 61.0), "30h 01m 01s");
    }

    #[test]
    fn subjects_fit_sns() {
        let s = sns_subject(&format!("ä\n{}", "x".repeat(200)));
        assert_eq!(s.len(), 100);
        assert!(s.is_ascii() && !s.contains('\n'));
    }

    #[test]
    fn console_links_only_for_aws_arns() {
        assert!(
            console_url("arn:aws:states:eu-west-1:123456789012:execution:m:e")
                .unwrap()
                .starts_with("https://eu-west-1.console.aws.amazon.com/states/")
        );
        assert_eq!(console_url("arn:aws:states:::execution:m:e"), None);
        assert_eq!(console_url("local:exec"), None);
    }

    #[test]
    fn lambda_causes_are_unwrapped() {
        assert_eq!(
            unwrap_cause(r#"{"errorType":"Stepops.InvalidInput","errorMessage":"bad"}"#),
            "bad"
        );
        assert_eq!(unwrap_cause("plain"), "plain");
    }
}
