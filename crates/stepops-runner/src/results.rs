//! The copy Map's results, as its `ResultWriter` leaves them in the object store: a
//! `manifest.json` (`{DestinationBucket, MapRunArn, ResultFiles: {SUCCEEDED: [{Key, Size}],
//! FAILED: […], PENDING: […]}}`) next to `SUCCEEDED_n.json` files, each a JSON array of child
//! executions `{…, Status, Output}` whose `Output` is the child's output as a JSON string. This
//! is the format Step Functions writes to S3 and the local engine writes to its folder.
//!
//! [`round_totals`] adds up the `copy` outputs (`rowsInserted`, `rowsDeleted`) of the
//! succeeded children: the exact rows a round copied and deleted.

use serde::Serialize;
use serde_json::Value;

use crate::store::{ObjectStore, StoreError};

/// What one round's copies did, from its result files.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct RoundTotals {
    /// Chunks whose copy succeeded (one per succeeded child execution).
    pub chunks_copied: u64,
    /// Rows inserted into the destination.
    pub rows_copied: u64,
    /// Rows deleted from the destination.
    pub rows_deleted: u64,
}

/// Why the results could not be added up.
#[derive(Debug, thiserror::Error)]
pub enum ResultsError {
    /// Reading an object failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// An object is not in the ResultWriter format.
    #[error("s3://{bucket}/{key} is not a Map Run result file: {reason}")]
    Format {
        /// Bucket.
        bucket: String,
        /// Key.
        key: String,
        /// What is wrong.
        reason: String,
    },
}

impl stepops_error::Named for ResultsError {
    fn error_name(&self) -> stepops_error::ErrorName {
        match self {
            ResultsError::Store(e) => e.error_name(),
            ResultsError::Format { .. } => stepops_error::ErrorName::Internal,
        }
    }
}

/// Reads the Map Run's `manifest.json` at `bucket`/`manifest_key` and every succeeded result
/// file it lists; adds up the children's `copy` outputs.
pub async fn round_totals<O: ObjectStore>(
    store: &O,
    bucket: &str,
    manifest_key: &str,
) -> Result<RoundTotals, ResultsError> {
    let format = |key: &str, reason: String| ResultsError::Format {
        bucket: bucket.to_owned(),
        key: key.to_owned(),
        reason,
    };
    let manifest: Value = serde_json::from_slice(&store.get(bucket, manifest_key).await?)
        .map_err(|e| format(manifest_key, format!("not JSON: {e}")))?;
    // The result files are in the manifest's DestinationBucket (the ResultWriter's Bucket).
    let files_bucket = manifest
        .get("DestinationBucket")
        .and_then(Value::as_str)
        .unwrap_or(bucket)
        .to_owned();
    let succeeded = manifest
        .pointer("/ResultFiles/SUCCEEDED")
        .and_then(Value::as_array)
        .ok_or_else(|| format(manifest_key, "no ResultFiles.SUCCEEDED array".into()))?;
    let mut totals = RoundTotals::default();
    for file in succeeded {
        let key = file
            .get("Key")
            .and_then(Value::as_str)
            .ok_or_else(|| format(manifest_key, format!("a result file without Key: {file}")))?;
        let body = store.get(&files_bucket, key).await?;
        let entries: Value = serde_json::from_slice(&body).map_err(|e| ResultsError::Format {
            bucket: files_bucket.clone(),
            key: key.to_owned(),
            reason: format!("not JSON: {e}"),
        })?;
        let entries = entries.as_array().ok_or_else(|| ResultsError::Format {
            bucket: files_bucket.clone(),
            key: key.to_owned(),
            reason: "not a JSON array of child executions".into(),
        })?;
        for entry in entries {
            if entry.get("Status").and_then(Value::as_str) != Some("SUCCEEDED") {
                continue;
            }
            let output = match entry.get("Output") {
                Some(Value::String(text)) => serde_json::from_str::<Value>(text).ok(),
                Some(v @ Value::Object(_)) => Some(v.clone()),
                _ => None,
            }
            .ok_or_else(|| ResultsError::Format {
                bucket: files_bucket.clone(),
                key: key.to_owned(),
                reason: format!(
                    "child {} has no JSON Output",
                    entry.get("Name").unwrap_or(&Value::Null)
                ),
            })?;
            let n = |k: &str| output.get(k).and_then(Value::as_u64);
            let (Some(inserted), Some(deleted)) = (n("rowsInserted"), n("rowsDeleted")) else {
                return Err(ResultsError::Format {
                    bucket: files_bucket.clone(),
                    key: key.to_owned(),
                    reason: format!("a child's Output is not a copy output: {output}"),
                });
            };
            totals.chunks_copied += 1;
            totals.rows_copied += inserted;
            totals.rows_deleted += deleted;
        }
    }
    Ok(totals)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::LocalFolderStore;
    use serde_json::json;

    fn child(i: u64, out: Value, status: &str) -> Value {
        json!({"ExecutionArn": format!("arn:x:{i}"), "Input": "{}", "InputDetails": {"Included": true},
               "Name": format!("{i}"), "Output": out.to_string(), "OutputDetails": {"Included": true},
               "Status": status})
    }

    #[tokio::test]
    async fn adds_up_succeeded_children_over_every_file() {
        let dir = tempfile::tempdir().unwrap();
        let store = LocalFolderStore::new(dir.path());
        let put = |k: &str, v: Value| {
            let store = store.clone();
            let k = k.to_owned();
            async move {
                store
                    .put("b", &k, v.to_string().into_bytes())
                    .await
                    .unwrap()
            }
        };
        put(
            "r/run/SUCCEEDED_0.json",
            json!([
                child(
                    0,
                    json!({"rowsInserted": 10, "rowsDeleted": 3, "table": "t"}),
                    "SUCCEEDED"
                ),
                child(1, json!({"rowsInserted": 5, "rowsDeleted": 0}), "SUCCEEDED")
            ]),
        )
        .await;
        put(
            "r/run/SUCCEEDED_1.json",
            json!([
                child(2, json!({"rowsInserted": 1, "rowsDeleted": 7}), "SUCCEEDED"),
                child(
                    3,
                    json!({"rowsInserted": 1000, "rowsDeleted": 1000}),
                    "FAILED"
                )
            ]),
        )
        .await;
        put(
            "r/run/manifest.json",
            json!({"DestinationBucket": "b", "MapRunArn": "arn:m",
                   "ResultFiles": {"FAILED": [], "PENDING": [],
                       "SUCCEEDED": [{"Key": "r/run/SUCCEEDED_0.json", "Size": 1},
                                     {"Key": "r/run/SUCCEEDED_1.json", "Size": 1}]}}),
        )
        .await;
        let t = round_totals(&store, "b", "r/run/manifest.json")
            .await
            .unwrap();
        assert_eq!(
            t,
            RoundTotals {
                chunks_copied: 3,
                rows_copied: 16,
                rows_deleted: 10
            }
        );
        // A missing file and a foreign format are errors, not zeros.
        let e = round_totals(&store, "b", "r/other/manifest.json")
            .await
            .unwrap_err();
        assert!(
            matches!(e, ResultsError::Store(StoreError::Missing { .. })),
            "{e}"
        );
        put(
            "r/bad/manifest.json",
            json!({"ResultFiles": {"SUCCEEDED": [{"Key": "r/bad/SUCCEEDED_0.json"}]}}),
        )
        .await;
        put(
            "r/bad/SUCCEEDED_0.json",
            json!([child(0, json!({"pong": true}), "SUCCEEDED")]),
        )
        .await;
        let e = round_totals(&store, "b", "r/bad/manifest.json")
            .await
            .unwrap_err();
        assert!(e.to_string().contains("not a copy output"), "{e}");
    }
}
