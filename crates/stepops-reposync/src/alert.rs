//! The team's alert for a sync, sent through the pipeline's notify channels (its SNS
//! [`Publisher`] and optional [`ChatWebhook`]): when anything changed or failed, one message
//! listing new, modified and deleted keys (at most [`LISTED`] of each, with counts) and the
//! commit; nothing when nothing changed.

use stepops_error::Named;
use stepops_pipeline::{ChatWebhook, Message, NotifyOutput, Publisher};

use crate::definition::Definition;
use crate::error::SyncError;
use crate::sync::SyncReport;

/// Keys listed per kind of change; the rest are counted.
pub const LISTED: usize = 20;

/// The message for a run's outcome, or `None` when nothing changed and nothing failed.
pub fn compose(
    def: &Definition,
    environment: &str,
    outcome: &Result<SyncReport, SyncError>,
) -> Option<Message> {
    let name = def.display_name();
    let dest = format!("s3://{}/{}", def.bucket, def.prefix);
    let dry = if def.dry_run { " (dry run)" } else { "" };
    let mut lines = Vec::new();
    let (subject, status) = match outcome {
        Ok(r) if !r.changed() && r.failures.is_empty() => return None,
        Ok(r) => {
            lines.push(format!(
                "stepops repository sync{dry} {name} in {environment}: {dest} now equals {}/{}@{} (commit {}).",
                def.organization, def.repository, def.branch, r.commit
            ));
            lines.push(format!(
                "new: {}, modified: {}, deleted: {}, unchanged: {}{}",
                r.new.len(),
                r.modified.len(),
                r.deleted.len(),
                r.unchanged,
                if r.stale.is_empty() {
                    String::new()
                } else {
                    format!(
                        ", gone from the branch but kept (delete_missing off): {}",
                        r.stale.len()
                    )
                }
            ));
            for (label, keys) in [
                ("new", &r.new),
                ("modified", &r.modified),
                ("deleted", &r.deleted),
            ] {
                list(&mut lines, label, keys);
            }
            if r.failures.is_empty() {
                (
                    format!(
                        "[stepops {environment}] repo sync{dry} {name}: {} changed",
                        r.new.len() + r.modified.len() + r.deleted.len()
                    ),
                    "SUCCEEDED",
                )
            } else {
                list(&mut lines, "FAILED writes", &r.failures);
                lines.push(
                    "The next run retries what still differs; fix the cause (see the codes above)."
                        .into(),
                );
                (
                    format!(
                        "[stepops {environment}] repo sync {name}: {} writes FAILED",
                        r.failures.len()
                    ),
                    "FAILED",
                )
            }
        }
        Err(e) => {
            lines.push(format!(
                "stepops repository sync{dry} {name} in {environment} FAILED: {}",
                e.error_name().as_str()
            ));
            lines.push(e.to_string());
            (
                format!("[stepops {environment}] repo sync {name} FAILED"),
                "FAILED",
            )
        }
    };
    let mut subject: String = subject
        .chars()
        .filter(|c| c.is_ascii() && !c.is_control())
        .collect();
    subject.truncate(100);
    Some(Message {
        subject,
        text: lines.join("\n"),
        status: status.into(),
        environment: environment.into(),
    })
}

fn list(lines: &mut Vec<String>, label: &str, keys: &[String]) {
    if keys.is_empty() {
        return;
    }
    lines.push(format!("{label} ({}):", keys.len()));
    for k in keys.iter().take(LISTED) {
        lines.push(format!("  {k}"));
    }
    if keys.len() > LISTED {
        lines.push(format!("  … and {} more", keys.len() - LISTED));
    }
}

/// Sends `message` through `publisher` and `webhook`; fails only when no channel took it.
pub async fn deliver<P: Publisher>(
    message: &Message,
    publisher: &P,
    webhook: Option<&ChatWebhook>,
) -> NotifyOutput {
    let out = stepops_pipeline::deliver(message, publisher, webhook).await;
    for f in &out.failed {
        tracing::warn!(error = %f, "repository sync alert not delivered");
    }
    out
}
