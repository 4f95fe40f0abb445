//! Kept profile records: what `remove-user` read before redacting a user, written (when the stack
//! configures a bucket) to one object under [`RECORDS_PREFIX`] with SSE-KMS, which a lifecycle
//! rule expires. The audit record, the logs and the execution output hold only the object's
//! location, never the profile (see docs/admin.md, "Personal data").

use chrono::{SecondsFormat, Utc};
use serde_json::{Value, json};
use stepops_error::{ErrorName, Named};
use stepops_store::{AnyStore, Encryption, ObjectStore, PutOptions, PutRequest};

use crate::error::AdminError;
use crate::handler::AuditContext;
use crate::request::AdminRequest;

/// The key prefix of every kept record; the template's lifecycle rule on it expires them after
/// `AdminRecordRetentionDays`.
pub const RECORDS_PREFIX: &str = "admin-records/";

/// Where removed users' profiles are kept: a bucket of the stack, written through an object
/// store with SSE-KMS.
#[derive(Debug, Clone)]
pub struct ProfileRecords {
    store: AnyStore,
    bucket: String,
    kms_key_id: Option<String>,
}

impl ProfileRecords {
    /// Records in `bucket` through `store`, encrypted with the KMS key `kms_key_id` (an id, ARN
    /// or alias), or the account's AWS-managed `aws/s3` key when `None`.
    pub fn new(store: AnyStore, bucket: impl Into<String>, kms_key_id: Option<String>) -> Self {
        ProfileRecords {
            store,
            bucket: bucket.into(),
            kms_key_id,
        }
    }

    /// The bucket.
    pub fn bucket(&self) -> &str {
        &self.bucket
    }

    /// Writes `profile` (what the service returned for the request's target) with the request's
    /// ids and context to a new object, `admin-records/ENV/TASK/TARGET/TIMESTAMP.json`, and
    /// returns its location `s3://BUCKET/KEY`. A failure is named by what the store said:
    /// `Stepops.Transient` (retried), `Stepops.Unauthorized`, else `Stepops.InvalidInput` (the
    /// bucket setting); its message never holds the profile.
    pub async fn keep(
        &self,
        request: &AdminRequest,
        context: &AuditContext,
        profile: &Value,
    ) -> Result<String, AdminError> {
        let now = Utc::now();
        let target: String = request
            .task
            .target()
            .chars()
            .map(|c| {
                if c.is_ascii_alphanumeric() || "-_.".contains(c) {
                    c
                } else {
                    '-'
                }
            })
            .collect();
        let key = format!(
            "{RECORDS_PREFIX}{}/{}/{target}/{}.json",
            request.environment,
            request.task.name(),
            now.format("%Y%m%dT%H%M%S%.3fZ")
        );
        let body = json!({
            "task": request.task.name(),
            "target": request.task.target(),
            "environment": request.environment.as_str(),
            "executionId": context.execution_id,
            "startedBy": context.started_by.clone().or_else(|| request.started_by.clone()),
            "keptAt": now.to_rfc3339_opts(SecondsFormat::Millis, true),
            "profile": profile,
        });
        let options = PutOptions {
            content_type: Some("application/json".into()),
            encryption: Encryption::Kms {
                key_id: self.kms_key_id.clone(),
            },
        };
        let location = format!("s3://{}/{key}", self.bucket);
        self.store
            .put_with(PutRequest {
                bucket: &self.bucket,
                key: &key,
                body: body.to_string().into_bytes(),
                options,
            })
            .await
            .map_err(|e| {
                let what = format!(
                    "cannot keep the profile record at {location} before redacting: {e}; nothing was redacted"
                );
                match e.error_name() {
                    ErrorName::Transient => AdminError::Transient(what),
                    ErrorName::Unauthorized => AdminError::Unauthorized(format!(
                        "{what}; the admin function needs s3:PutObject on {RECORDS_PREFIX}* of the bucket (and the KMS key's use)"
                    )),
                    _ => AdminError::invalid(format!(
                        "{what}; check STEPOPS_ADMIN_RECORDS_BUCKET"
                    )),
                }
            })?;
        Ok(location)
    }
}
