//! Many archives: a folder or prefix run in one process (`stepops relationalize`), the
//! Lambda's two events (one archive of the Distributed Map; the run's summary from the Map's
//! result files), and the [`RunSummary`] the notification reports.

use std::collections::BTreeSet;

use serde::{Deserialize, Serialize};
use serde_json::Value;
use stepops_error::{Named, TaskFailure};
use stepops_store::{AnyStore, ObjectStore};

use crate::error::RelzError;
use crate::location::Location;
use crate::run::{ArchiveReport, Relationalizer};
use crate::types::Conflict;

/// Most failures and conflicts a summary lists (the counts cover all).
pub const LISTED: usize = 20;

/// An archive that failed, by name.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Failure {
    /// The archive.
    pub archive: String,
    /// Its error's name (`Stepops.InvalidInput`, …).
    pub error: String,
    /// Why.
    pub cause: String,
}

/// What a run over many archives did.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct RunSummary {
    /// Archives attempted.
    pub archives: usize,
    /// Archives relationalized.
    pub succeeded: usize,
    /// Archives that failed as a whole (nothing of them written).
    pub failed: usize,
    /// Listed objects that are not `.zip` archives (left alone).
    pub skipped: usize,
    /// Documents read.
    pub documents: usize,
    /// Documents quarantined.
    pub invalid: usize,
    /// Rows written, all tables.
    pub rows: usize,
    /// Stale objects removed (files earlier runs of these records wrote and these did not).
    pub stale_removed: usize,
    /// The first [`LISTED`] failures.
    pub failures: Vec<Failure>,
    /// The first [`LISTED`] columns written as strings (each table and column once).
    pub conflicts: Vec<Conflict>,
}

impl RunSummary {
    /// Counts one archive's report in.
    pub fn add(&mut self, report: &ArchiveReport) {
        self.archives += 1;
        self.succeeded += 1;
        self.documents += report.documents;
        self.invalid += report.invalid;
        self.rows += report.tables.values().sum::<usize>();
        self.stale_removed += report.stale_removed;
        for c in &report.conflicts {
            if self.conflicts.len() < LISTED
                && !self
                    .conflicts
                    .iter()
                    .any(|k| k.table == c.table && k.column == c.column)
            {
                self.conflicts.push(c.clone());
            }
        }
    }

    /// Counts one failed archive in.
    pub fn fail(&mut self, failure: Failure) {
        self.archives += 1;
        self.failed += 1;
        if self.failures.len() < LISTED {
            self.failures.push(failure);
        }
    }
}

/// Relationalizes every `.zip` under `input` (read through `store`), one after the other; an
/// archive that fails is counted and listed, the others go on.
pub async fn run_location(
    relz: &Relationalizer,
    store: &AnyStore,
    input: &Location,
    mut progress: impl FnMut(&str, &Result<ArchiveReport, RelzError>),
) -> Result<RunSummary, RelzError> {
    let prefix = if input.prefix.is_empty() {
        String::new()
    } else {
        format!("{}/", input.prefix)
    };
    let keys = store.list(&input.bucket, &prefix).await?;
    let mut summary = RunSummary::default();
    for key in keys.iter().filter(|k| k.ends_with(".zip")) {
        let rel = key.strip_prefix(&prefix).unwrap_or(key);
        let name = input.describe(rel);
        let result = relz.archive(store, &input.bucket, key, &name).await;
        progress(&name, &result);
        match result {
            Ok(report) => summary.add(&report),
            Err(e) => summary.fail(failure(&name, &e)),
        }
    }
    Ok(summary)
}

fn failure(archive: &str, e: &RelzError) -> Failure {
    let f = TaskFailure::from_error(e);
    Failure {
        archive: archive.to_owned(),
        error: f.error,
        cause: f.cause,
    }
}

/// The Lambda's events.
#[derive(Debug, Deserialize)]
#[serde(untagged)]
enum Event {
    /// One archive (an item of the Distributed Map).
    Archive { bucket: String, key: String },
    /// The run's summary from the Map's `ResultWriterDetails`.
    Summarize { summarize: ResultLocation },
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
struct ResultLocation {
    bucket: String,
    key: String,
}

/// The Lambda's handler: `{"bucket", "key"}` → the archive's [`ArchiveReport`];
/// `{"summarize": {"Bucket", "Key"}}` (the Map's `ResultWriterDetails`) → the [`RunSummary`].
/// Archives are read through `input` (S3 in AWS); results through the output's store.
pub async fn handle_event(
    relz: &Relationalizer,
    input: &AnyStore,
    event: &Value,
) -> Result<Value, RelzError> {
    let event: Event = serde_json::from_value(event.clone()).map_err(|e| {
        RelzError::InvalidArgument(format!(
            "the event must be {{\"bucket\", \"key\"}} (one archive) or {{\"summarize\": {{\"Bucket\", \"Key\"}}}} (the Map's ResultWriterDetails): {e}"
        ))
    })?;
    let out = match event {
        Event::Archive { bucket, key } if !key.ends_with(".zip") => Ok(serde_json::json!({
            "archive": format!("s3://{bucket}/{key}"),
            "skipped": "not a .zip archive"
        })),
        Event::Archive { bucket, key } => {
            let name = format!("s3://{bucket}/{key}");
            let mut report = relz.archive(input, &bucket, &key, &name).await?;
            report.conflicts.truncate(LISTED);
            serde_json::to_value(report)
        }
        Event::Summarize { summarize } => {
            let summary =
                summarize_results(&relz.output_store, &summarize.bucket, &summarize.key).await?;
            serde_json::to_value(summary)
        }
    };
    out.map_err(|e| RelzError::InvalidArgument(e.to_string()))
}

/// Totals a Distributed Map's result files (its `manifest.json` at `bucket`/`key`, written by
/// `ResultWriter`): every succeeded child's output is an [`ArchiveReport`], every failed one
/// an error.
pub async fn summarize_results(
    store: &AnyStore,
    bucket: &str,
    key: &str,
) -> Result<RunSummary, RelzError> {
    let bad = |what: String| RelzError::InvalidArgument(format!("s3://{bucket}/{key}: {what}"));
    let manifest: Value = serde_json::from_slice(&store.get(bucket, key).await?)
        .map_err(|e| bad(format!("not a Map run manifest: {e}")))?;
    let mut summary = RunSummary::default();
    let mut seen = BTreeSet::new();
    for (status, files) in ["SUCCEEDED", "FAILED"].iter().filter_map(|s| {
        manifest["ResultFiles"][*s]
            .as_array()
            .map(|files| (*s, files.clone()))
    }) {
        for file in files {
            let Some(file_key) = file["Key"].as_str() else {
                continue;
            };
            if !seen.insert(file_key.to_owned()) {
                continue;
            }
            let entries: Vec<Value> =
                serde_json::from_slice(&store.get(bucket, file_key).await?)
                    .map_err(|e| bad(format!("result file {file_key} is not a JSON array: {e}")))?;
            for entry in entries {
                let input: Value = entry["Input"]
                    .as_str()
                    .and_then(|s| serde_json::from_str(s).ok())
                    .unwrap_or(Value::Null);
                let archive = format!(
                    "s3://{}/{}",
                    input["bucket"].as_str().unwrap_or("?"),
                    input["key"].as_str().unwrap_or("?")
                );
                let output: Value = entry["Output"]
                    .as_str()
                    .and_then(|s| serde_json::from_str(s).ok())
                    .unwrap_or(Value::Null);
                if status == "SUCCEEDED" && output.get("skipped").is_some() {
                    summary.skipped += 1;
                    continue;
                }
                let report = serde_json::from_value::<ReportIn>(output).ok();
                match (status, report) {
                    ("SUCCEEDED", Some(r)) => summary.add(&r.into()),
                    _ => summary.fail(Failure {
                        archive,
                        error: entry["Error"]
                            .as_str()
                            .unwrap_or("States.Failed")
                            .to_owned(),
                        cause: entry["Cause"].as_str().unwrap_or_default().to_owned(),
                    }),
                }
            }
        }
    }
    Ok(summary)
}

/// An [`ArchiveReport`] as a result file holds it.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct ReportIn {
    archive: String,
    record_id: String,
    documents: usize,
    invalid: usize,
    tables: std::collections::BTreeMap<String, usize>,
    files: usize,
    #[serde(default)]
    conflicts: Vec<ConflictIn>,
    #[serde(default)]
    stale_removed: usize,
}

#[derive(Deserialize)]
struct ConflictIn {
    table: String,
    column: String,
}

impl From<ReportIn> for ArchiveReport {
    fn from(r: ReportIn) -> Self {
        ArchiveReport {
            archive: r.archive,
            record_id: r.record_id,
            documents: r.documents,
            invalid: r.invalid,
            tables: r.tables,
            files: r.files,
            stale_removed: r.stale_removed,
            conflicts: r
                .conflicts
                .into_iter()
                .map(|c| Conflict {
                    table: c.table,
                    column: c.column,
                    found: Vec::new(),
                    declared: None,
                })
                .collect(),
        }
    }
}

impl Named for Failure {
    fn error_name(&self) -> stepops_error::ErrorName {
        stepops_error::ErrorName::Internal
    }
}

impl std::fmt::Display for Failure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}: {}", self.archive, self.error, self.cause)
    }
}

impl std::error::Error for Failure {}

/// The Lambda's and the CLI's settings: where tables go (`output`: `s3://BUCKET/PREFIX` or a
/// folder), where schemas are (`schemas`, none: types inferred, nothing validated), the
/// document size limit; `s3` builds the S3 client when a location is in S3.
pub fn configure(
    output: &str,
    schemas: Option<&str>,
    max_document_bytes: Option<u64>,
    s3: impl Fn() -> stepops_store::S3Store,
) -> Result<Relationalizer, RelzError> {
    let output = Location::parse(output, true)?;
    let output_store = output.store(&s3);
    let schemas = match schemas.filter(|s| !s.is_empty()) {
        Some(text) => {
            let loc = Location::parse(text, false)?;
            crate::Schemas::at(loc.store(&s3), loc)
        }
        None => crate::Schemas::none(),
    };
    let mut relz = Relationalizer::new(output, output_store, schemas);
    if let Some(max) = max_document_bytes {
        if max == 0 {
            return Err(RelzError::InvalidArgument(
                "the document size limit must be at least 1 byte".into(),
            ));
        }
        relz.max_document_bytes = max;
    }
    Ok(relz)
}

/// The environment variables the Lambda reads (set by template.yaml).
pub const ENV_OUTPUT: &str = "STEPOPS_RELZ_OUTPUT";
/// `s3://BUCKET/PREFIX` of the schemas (empty: inferred types, no validation).
pub const ENV_SCHEMAS: &str = "STEPOPS_RELZ_SCHEMAS";
/// The document size limit in bytes (default [`crate::DEFAULT_MAX_DOCUMENT_BYTES`]).
pub const ENV_MAX_DOCUMENT_BYTES: &str = "STEPOPS_RELZ_MAX_DOCUMENT_BYTES";

/// The Lambda's [`Relationalizer`] from its environment (`lookup` reads a variable).
pub fn from_env(
    lookup: impl Fn(&str) -> Option<String>,
    s3: impl Fn() -> stepops_store::S3Store,
) -> Result<Relationalizer, RelzError> {
    let output = lookup(ENV_OUTPUT)
        .filter(|s| s.starts_with("s3://"))
        .ok_or_else(|| {
            RelzError::InvalidArgument(format!(
                "{ENV_OUTPUT} must be s3://BUCKET/PREFIX (template.yaml sets it)"
            ))
        })?;
    let max = match lookup(ENV_MAX_DOCUMENT_BYTES).filter(|s| !s.is_empty()) {
        Some(v) => Some(v.parse().map_err(|_| {
            RelzError::InvalidArgument(format!(
                "{ENV_MAX_DOCUMENT_BYTES} must be a number of bytes, not {v:?}"
            ))
        })?),
        None => None,
    };
    let mut relz = configure(&output, lookup(ENV_SCHEMAS).as_deref(), max, s3)?;
    relz.temp_dir = std::env::temp_dir();
    Ok(relz)
}
