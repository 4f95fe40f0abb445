//! The run's status record: what `set-status` put read-only, kept in the manifest bucket
//! (`statusRecord`: `{bucket, key}`, `status/<execution name>.json`), so that
//!
//! - the `release` step (`statemachine/release.asl.json`, started by the rule on a failed,
//!   timed-out or aborted migration) puts a Synapse destination back READ_WRITE after a
//!   failure, unless `remainReadOnly` (a database destination stays read-only: no client
//!   should write to a half-copied database);
//! - a redrive of that execution puts it read-only again before its next plan, copy or verify.
//!
//! Beside it, `status/<execution name>.chunk-failure.json` keeps the last chunk that failed for
//! good (its table, range, error name and redacted cause): the execution itself only shows the
//! Distributed Map's `States.ExceedToleratedFailureThreshold`, so `release` hands the chunk's
//! own error to the notification.
//!
//! Only what the run itself changed is undone: a destination that was already read-only
//! before the run is left as it was. The record holds the target's reference and the config
//! (names, never a secret's value).

use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use stepops_error::{ChunkFailure, ErrorName, ReleaseOutcome};
use tracing::{info, warn};

use super::{MigrationEngine, MigrationHandler, config_arg, str_field};
use crate::secrets::SecretSource;
use crate::step::StepError;
use crate::store::{ObjectStore, StoreError};

/// `status/<execution>.json`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
struct StatusRecord {
    /// The environment of the run that wrote it.
    environment: String,
    /// The destination's reference, as the `set-status` task named it.
    target: Value,
    /// The run's config (the status table, the Synapse settings).
    config: Value,
    /// Whether the run changed it to read-only (false: it was read-only already).
    changed: bool,
    /// Whether `release` put it back read-write since.
    released: bool,
}

impl<E: MigrationEngine, S: SecretSource, O: ObjectStore> MigrationHandler<E, S, O> {
    async fn load_record(&self, args: &Value) -> Result<Option<StatusRecord>, StepError> {
        let Some(at) = args.get("statusRecord") else {
            return Ok(None);
        };
        let (bucket, key) = record_location(at)?;
        match self.store.get(&bucket, &key).await {
            Ok(body) => serde_json::from_slice(&body).map(Some).map_err(|e| {
                StepError::invalid_input(format!(
                    "the status record {key} is not one stepops wrote ({e}); delete it, then \
                     set the destination's status by hand"
                ))
            }),
            Err(StoreError::Missing { .. }) => Ok(None),
            Err(e) => Err(StepError::transient(format!("status record {key}: {e}"))),
        }
    }

    async fn save_record(&self, args: &Value, record: &StatusRecord) -> Result<(), StepError> {
        let Some(at) = args.get("statusRecord") else {
            return Ok(());
        };
        let (bucket, key) = record_location(at)?;
        let body = serde_json::to_vec(record).expect("a status record serialises");
        self.store
            .put(&bucket, &key, body)
            .await
            .map_err(|e| StepError::transient(format!("status record {key}: {e}")))
    }

    /// After `set-status` put the destination read-only: records it (with `statusRecord`).
    /// A redrive's second `set-status` keeps the first record's `changed`.
    pub(super) async fn record_read_only(
        &self,
        args: &Value,
        changed: bool,
    ) -> Result<(), StepError> {
        if args.get("statusRecord").is_none() {
            return Ok(());
        }
        let earlier = self.load_record(args).await?;
        let record = StatusRecord {
            environment: str_field(args, "environment")?.to_owned(),
            target: args.get("target").cloned().unwrap_or(Value::Null),
            config: config_arg(args)?,
            changed: changed || earlier.is_some_and(|r| r.changed),
            released: false,
        };
        self.save_record(args, &record).await
    }

    /// Before a redriven plan, copy or verify: if `release` put the destination back
    /// read-write after the failure, read-only again.
    pub(super) async fn read_only_again(&self, args: &Value) -> Result<(), StepError> {
        if args.get("statusRecord").is_none() {
            return Ok(());
        }
        let _one_at_a_time = self.status_record.lock().await;
        let Some(mut record) = self.load_record(args).await? else {
            return Ok(());
        };
        if !record.released {
            return Ok(());
        }
        let target = self.record_target(args, &record).await?;
        let outcome = self
            .engine
            .set_read_only(&target, &record.config, true)
            .await?;
        warn!(
            mechanism = %outcome.mechanism,
            "the destination had been put back read-write after the failure: read-only again \
             for the redrive"
        );
        record.released = false;
        self.save_record(args, &record).await
    }

    /// After a copy failed for good (an error the machine does not retry): records the chunk's
    /// failure beside the status record. Best effort: the failure itself is what matters.
    pub(super) async fn record_chunk_failure(&self, args: &Value, error: &StepError) {
        if error.name.is_retryable() {
            return;
        }
        let (Some(at), Some(chunk)) = (args.get("statusRecord"), args.get("chunk")) else {
            return;
        };
        let Ok((bucket, key)) = record_location(at) else {
            return;
        };
        let failure = ChunkFailure {
            table: chunk["table"].as_str().unwrap_or("?").to_owned(),
            min: chunk["min"].as_i64().unwrap_or(0),
            max: chunk["max"].as_i64().unwrap_or(0),
            error: error.name.as_str().to_owned(),
            cause: self.resolver.redact(&error.cause),
        };
        let body = serde_json::to_vec(&failure).expect("a chunk failure serialises");
        if let Err(e) = self.store.put(&bucket, &failure_key(&key), body).await {
            warn!(error = %e, "cannot record the chunk's failure for the notification");
        }
    }

    async fn load_chunk_failure(&self, args: &Value) -> Option<ChunkFailure> {
        let (bucket, key) = record_location(args.get("statusRecord")?).ok()?;
        match self.store.get(&bucket, &failure_key(&key)).await {
            Ok(body) => serde_json::from_slice(&body).ok(),
            Err(StoreError::Missing { .. }) => None,
            Err(e) => {
                warn!(error = %e, "cannot read the run's chunk failure");
                None
            }
        }
    }

    /// The `release` step: `{environment, statusRecord}`.
    pub(super) async fn release(&self, args: Value) -> Result<Value, StepError> {
        if args.get("statusRecord").is_none() {
            return Err(StepError::invalid_input(
                "step `release`: missing argument `statusRecord` ({bucket, key})",
            ));
        }
        let mut outcome = match self.load_record(&args).await? {
            None => ReleaseOutcome {
                released: false,
                read_only: None,
                reason: "this run did not put the destination read-only".into(),
                chunk_failure: None,
            },
            Some(record) => self.release_recorded(&args, record).await?,
        };
        outcome.chunk_failure = self.load_chunk_failure(&args).await;
        info!(
            released = outcome.released, read_only = ?outcome.read_only, reason = %outcome.reason,
            "release after the failure"
        );
        Ok(serde_json::to_value(outcome).expect("a release outcome serialises"))
    }

    async fn release_recorded(
        &self,
        args: &Value,
        mut record: StatusRecord,
    ) -> Result<ReleaseOutcome, StepError> {
        let kept = |reason: &str| ReleaseOutcome {
            released: false,
            read_only: Some(true),
            reason: reason.to_owned(),
            chunk_failure: None,
        };
        if record.released {
            return Ok(ReleaseOutcome {
                released: true,
                read_only: Some(false),
                reason: "already put back read-write".into(),
                chunk_failure: None,
            });
        }
        if !record.changed {
            return Ok(kept(
                "it was read-only before this run started, so it is left as it was",
            ));
        }
        let target = self.record_target(args, &record).await?;
        if !stepops_synapse::is_synapse_url(target.expose()) {
            return Ok(kept(
                "a database destination stays read-only after a failure, so that no client \
                 writes to a half-copied database",
            ));
        }
        let outcome = self
            .engine
            .set_read_only(&target, &record.config, false)
            .await?;
        if outcome.read_only {
            return Ok(kept(
                "the config asks it to stay read-only (synapse.remainReadOnly), or the stack is \
                 DOWN",
            ));
        }
        record.released = true;
        self.save_record(args, &record).await?;
        Ok(ReleaseOutcome {
            released: true,
            read_only: Some(false),
            reason: "put back READ_WRITE after the failure (a redrive puts it read-only again \
                     before it copies)"
                .into(),
            chunk_failure: None,
        })
    }

    /// The recorded destination, resolved as `set-status` resolved it; the record must be of
    /// this task's environment.
    async fn record_target(
        &self,
        args: &Value,
        record: &StatusRecord,
    ) -> Result<crate::secrets::Secret, StepError> {
        let mine = str_field(args, "environment")?;
        if record.environment != mine {
            return Err(StepError::new(
                ErrorName::WrongEnvironment,
                format!(
                    "the status record is of environment `{}`, the task is for `{mine}`: \
                     nothing changed",
                    record.environment
                ),
            ));
        }
        let recorded = json!({
            "environment": record.environment,
            "target": record.target,
            "config": record.config,
        });
        self.target(&recorded, "target").await
    }
}

fn record_location(at: &Value) -> Result<(String, String), StepError> {
    let bucket = str_field(at, "statusRecord.bucket")?;
    let key = at
        .get("key")
        .and_then(Value::as_str)
        .filter(|k| !k.is_empty())
        .ok_or_else(|| StepError::invalid_input("argument `statusRecord.key` must be a string"))?;
    Ok((bucket.to_owned(), key.to_owned()))
}

/// `status/<execution>.json` → `status/<execution>.chunk-failure.json`.
fn failure_key(record_key: &str) -> String {
    let stem = record_key.strip_suffix(".json").unwrap_or(record_key);
    format!("{stem}.chunk-failure.json")
}
