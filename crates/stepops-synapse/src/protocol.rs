//! The service's admin migration protocol, field for field (package
//! `org.sagebionetworks.repo.model.migration`): requests carry their `concreteType`, answers
//! are read leniently (unknown fields ignored, `count` optional, the `cheksums` spelling).

use serde::{Deserialize, Deserializer, Serialize};
use serde_json::Value;

/// The package of every admin request and response type.
pub const PACKAGE: &str = "org.sagebionetworks.repo.model.migration";
/// `concreteType` of the job body wrapping an admin request.
pub const ASYNC_REQUEST: &str = "org.sagebionetworks.repo.model.migration.AsyncMigrationRequest";
/// `concreteType` of a job's `responseBody`.
pub const ASYNC_RESPONSE: &str = "org.sagebionetworks.repo.model.migration.AsyncMigrationResponse";

/// One admin request (`adminRequest` of an `AsyncMigrationRequest`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "concreteType")]
pub enum AdminRequest {
    /// Row counts and id bounds of some types.
    #[serde(rename = "org.sagebionetworks.repo.model.migration.AsyncMigrationTypeCountsRequest")]
    TypeCounts {
        /// Type names.
        types: Vec<String>,
    },
    /// Cuts `[minimumId, maximumId)` into ranges of about `optimalRowsPerRange` rows.
    #[serde(rename = "org.sagebionetworks.repo.model.migration.CalculateOptimalRangeRequest")]
    #[serde(rename_all = "camelCase")]
    OptimalRange {
        /// Type name.
        migration_type: String,
        /// Lowest id.
        minimum_id: i64,
        /// Upper id bound (see [`crate::MAXIMUM_ID_EXCLUSIVE`]).
        maximum_id: i64,
        /// Rows per range.
        optimal_rows_per_range: i64,
    },
    /// Writes a backup of an id range to the service's bucket.
    #[serde(rename = "org.sagebionetworks.repo.model.migration.BackupTypeRangeRequest")]
    #[serde(rename_all = "camelCase")]
    Backup {
        /// Type name.
        migration_type: String,
        /// `TABLE_NAME` or `MIGRATION_TYPE_NAME`.
        alias_type: String,
        /// Rows per batch while writing.
        batch_size: i64,
        /// Lowest id.
        minimum_id: i64,
        /// Upper id bound.
        maximum_id: i64,
    },
    /// Deletes an id range on the destination and upserts a backup's rows.
    #[serde(rename = "org.sagebionetworks.repo.model.migration.RestoreTypeRequest")]
    #[serde(rename_all = "camelCase")]
    Restore {
        /// Type name.
        migration_type: String,
        /// As the backup was written.
        alias_type: String,
        /// The backup's key in the bucket.
        backup_file_key: String,
        /// Rows per batch while writing.
        batch_size: i64,
        /// Lowest id of the range replaced.
        minimum_row_id: i64,
        /// Upper id bound of the range replaced.
        maximum_row_id: i64,
    },
    /// Salted checksums of `[minimumId, maximumId)` in bins of `batchSize` ids.
    #[serde(rename = "org.sagebionetworks.repo.model.migration.BatchChecksumRequest")]
    #[serde(rename_all = "camelCase")]
    BatchChecksum {
        /// Type name.
        migration_type: String,
        /// Salt mixed into every row's CRC32.
        salt: String,
        /// Lowest id.
        minimum_id: i64,
        /// Upper id bound.
        maximum_id: i64,
        /// Bin width in ids.
        batch_size: i64,
    },
    /// A checksum of a type's whole table (every column of every row); the service refuses it
    /// while the stack is READ_WRITE.
    #[serde(rename = "org.sagebionetworks.repo.model.migration.AsyncMigrationTypeChecksumRequest")]
    #[serde(rename_all = "camelCase")]
    TypeChecksum {
        /// Type name.
        migration_type: String,
    },
}

impl AdminRequest {
    /// The short name of the request's type, for logs and job counters.
    pub fn kind(&self) -> &'static str {
        match self {
            AdminRequest::TypeCounts { .. } => "typeCounts",
            AdminRequest::OptimalRange { .. } => "optimalRange",
            AdminRequest::Backup { .. } => "backup",
            AdminRequest::Restore { .. } => "restore",
            AdminRequest::BatchChecksum { .. } => "batchChecksum",
            AdminRequest::TypeChecksum { .. } => "typeChecksum",
        }
    }
}

/// One admin response (`adminResponse` of an `AsyncMigrationResponse`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "concreteType")]
pub enum AdminResponse {
    /// Answer to [`AdminRequest::TypeCounts`].
    #[serde(rename = "org.sagebionetworks.repo.model.migration.MigrationTypeCounts")]
    TypeCounts {
        /// One per type asked.
        #[serde(default)]
        list: Vec<TypeCount>,
    },
    /// Answer to [`AdminRequest::OptimalRange`].
    #[serde(rename = "org.sagebionetworks.repo.model.migration.CalculateOptimalRangeResponse")]
    OptimalRange {
        /// Contiguous ranges.
        #[serde(default)]
        ranges: Vec<IdRange>,
    },
    /// Answer to [`AdminRequest::Backup`].
    #[serde(rename = "org.sagebionetworks.repo.model.migration.BackupTypeResponse")]
    #[serde(rename_all = "camelCase")]
    Backup {
        /// The backup's key in the bucket.
        backup_file_key: String,
    },
    /// Answer to [`AdminRequest::Restore`].
    #[serde(rename = "org.sagebionetworks.repo.model.migration.RestoreTypeResponse")]
    #[serde(rename_all = "camelCase")]
    Restore {
        /// Rows written.
        #[serde(default)]
        restored_row_count: Option<i64>,
    },
    /// Answer to [`AdminRequest::BatchChecksum`] (the service spells the field `cheksums`).
    #[serde(rename = "org.sagebionetworks.repo.model.migration.BatchChecksumResponse")]
    BatchChecksum {
        /// Non-empty bins, by bin number.
        #[serde(default)]
        cheksums: Vec<RangeChecksum>,
    },
    /// Answer to [`AdminRequest::TypeChecksum`].
    #[serde(rename = "org.sagebionetworks.repo.model.migration.MigrationTypeChecksum")]
    TypeChecksum {
        /// The type.
        #[serde(rename = "type", default)]
        type_name: Option<String>,
        /// The whole table's checksum.
        #[serde(default)]
        checksum: Option<String>,
    },
}

/// A type's counts. The service leaves `count` null; `minid`/`maxid` are null for an empty type.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TypeCount {
    /// Type name.
    #[serde(rename = "type")]
    pub type_name: String,
    /// Rows (usually null).
    #[serde(default)]
    pub count: Option<i64>,
    /// Lowest id.
    #[serde(default)]
    pub minid: Option<i64>,
    /// Highest id.
    #[serde(default)]
    pub maxid: Option<i64>,
}

/// An id range as the service answers it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct IdRange {
    /// Lowest id.
    pub minimum_id: i64,
    /// Upper id bound.
    pub maximum_id: i64,
}

/// One bin's checksum.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RangeChecksum {
    /// `(id - minimumId) / batchSize`.
    pub bin_number: i64,
    /// Rows in the bin.
    #[serde(default)]
    pub count: i64,
    /// `SUM(CRC32(…))%BIT_XOR(CRC32(…))` as text (a number is read as its text).
    #[serde(deserialize_with = "text_or_number")]
    pub checksum: String,
    /// Lowest id in the bin.
    #[serde(default)]
    pub minimum_id: Option<i64>,
    /// Highest id in the bin.
    #[serde(default)]
    pub maximum_id: Option<i64>,
}

fn text_or_number<'de, D: Deserializer<'de>>(d: D) -> Result<String, D::Error> {
    Ok(match Value::deserialize(d)? {
        Value::String(s) => s,
        Value::Null => String::new(),
        other => other.to_string(),
    })
}

/// `AsynchronousJobStatus`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct JobStatus {
    /// The job's id.
    pub job_id: String,
    /// `PROCESSING`, `FAILED` or `COMPLETE`.
    pub job_state: String,
    /// Set when FAILED.
    #[serde(default)]
    pub error_message: Option<String>,
    /// Set when FAILED (a stack trace on the real service; never logged whole).
    #[serde(default)]
    pub error_details: Option<String>,
    /// Set when COMPLETE: `{concreteType: …AsyncMigrationResponse, adminResponse}`.
    #[serde(default)]
    pub response_body: Option<Value>,
}

/// `StackStatus`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct StackStatus {
    /// `READ_WRITE`, `READ_ONLY` or `DOWN`.
    pub status: String,
    /// Shown to users.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub current_message: Option<String>,
    /// Shown to users.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pending_maintenance_message: Option<String>,
}

/// `{"list": […]}` of the type-name endpoints.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NameList {
    /// Names, in migration order.
    pub list: Vec<String>,
}

/// The body of `POST /admin/asynchronous/job` for `request`.
pub fn job_body(request: &AdminRequest) -> Value {
    serde_json::json!({"concreteType": ASYNC_REQUEST, "adminRequest": request})
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn requests_carry_their_concrete_type_and_camel_case_fields() {
        let body = job_body(&AdminRequest::Restore {
            migration_type: "NODE".into(),
            alias_type: "TABLE_NAME".into(),
            backup_file_key: "k".into(),
            batch_size: 10,
            minimum_row_id: 1,
            maximum_row_id: 5,
        });
        assert_eq!(
            body,
            json!({"concreteType": ASYNC_REQUEST, "adminRequest": {
                "concreteType": "org.sagebionetworks.repo.model.migration.RestoreTypeRequest",
                "migrationType": "NODE", "aliasType": "TABLE_NAME", "backupFileKey": "k",
                "batchSize": 10, "minimumRowId": 1, "maximumRowId": 5}})
        );
    }

    #[test]
    fn answers_ignore_unknown_fields_and_take_the_cheksums_spelling() {
        let r: AdminResponse = serde_json::from_value(json!({
            "concreteType": "org.sagebionetworks.repo.model.migration.BatchChecksumResponse",
            "migrationType": "NODE", "extra": 1,
            "cheksums": [{"binNumber": 0, "count": 2, "checksum": "12%7", "minimumId": 1, "maximumId": 2}]
        }))
        .unwrap();
        let AdminResponse::BatchChecksum { cheksums } = r else {
            panic!("{r:?}")
        };
        assert_eq!(cheksums[0].checksum, "12%7");
        let c: AdminResponse = serde_json::from_value(json!({
            "concreteType": "org.sagebionetworks.repo.model.migration.MigrationTypeCounts",
            "list": [{"type": "NODE", "minid": 1, "maxid": 9, "count": null}, {"type": "ACL"}]
        }))
        .unwrap();
        let AdminResponse::TypeCounts { list } = c else {
            panic!()
        };
        assert_eq!((list[0].count, list[1].minid), (None, None));
    }
}
