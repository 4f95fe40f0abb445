//! One archive end to end: download it to a temporary file, read its metadata, load the
//! schemas of its datasets, validate and flatten every document, encode each table, then
//! publish: quarantine records first, then one Parquet file per table. Nothing is written
//! before the whole archive has been read, and every object is published whole (a local file
//! is written under a temporary name and renamed; an S3 `PutObject` is atomic), so a run
//! killed midway leaves no partial file, and running again replaces what it wrote.

use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;
use std::sync::{Arc, Mutex, PoisonError};

use serde::Serialize;
use serde_json::{Value, json};
use stepops_store::{AnyStore, ObjectStore, PutOptions};

use crate::archive::{Archive, Item, Metadata};
use crate::encode::encode;
use crate::error::RelzError;
use crate::flatten::Flattener;
use crate::location::Location;
use crate::records;
use crate::schema::{Compiled, Schemas};
use crate::table::{Spare, Tables};
use crate::types::{ColType, Conflict};

/// The default document size limit: 16 MiB.
pub const DEFAULT_MAX_DOCUMENT_BYTES: u64 = 16 << 20;

/// The folder under the output that holds quarantine records.
pub const QUARANTINE: &str = "_quarantine";

/// What one archive gave.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ArchiveReport {
    /// The archive (`s3://…` or a path).
    pub archive: String,
    /// The record's id.
    pub record_id: String,
    /// Documents read (valid or not).
    pub documents: usize,
    /// Documents quarantined.
    pub invalid: usize,
    /// Rows written, by table.
    pub tables: BTreeMap<String, usize>,
    /// Objects written (Parquet files and quarantine records).
    pub files: usize,
    /// Columns written as strings because their values had several types.
    pub conflicts: Vec<Conflict>,
    /// Objects an earlier run of this record wrote and this one did not (a partition that
    /// moved, a table it no longer has), deleted.
    pub stale_removed: usize,
}

/// Relationalizes archives into one output location.
#[derive(Debug, Clone)]
pub struct Relationalizer {
    /// Where tables and quarantine records go.
    pub output: Location,
    /// The store holding `output`.
    pub output_store: AnyStore,
    /// The datasets' schemas.
    pub schemas: Schemas,
    /// Documents over this size are quarantined unread.
    pub max_document_bytes: u64,
    /// Where archives are downloaded while they are read.
    pub temp_dir: PathBuf,
    /// The last archive's column memory, for the next archive's columns.
    spare: Arc<Mutex<Spare>>,
}

/// An object to publish.
struct Output {
    key: String,
    body: Vec<u8>,
    content_type: &'static str,
}

/// What the reading phase produced.
struct Read {
    report: ArchiveReport,
    outputs: Vec<Output>,
}

impl Relationalizer {
    /// Writes to `output` (in `output_store`) with `schemas`, the default document limit and
    /// the system's temporary folder.
    pub fn new(output: Location, output_store: AnyStore, schemas: Schemas) -> Self {
        reuse_freed_memory();
        Relationalizer {
            output,
            output_store,
            schemas,
            max_document_bytes: DEFAULT_MAX_DOCUMENT_BYTES,
            temp_dir: std::env::temp_dir(),
            spare: Arc::default(),
        }
    }

    /// Relationalizes the archive `bucket`/`key` of `store` (described as `name` in reports).
    pub async fn archive(
        &self,
        store: &AnyStore,
        bucket: &str,
        key: &str,
        name: &str,
    ) -> Result<ArchiveReport, RelzError> {
        let tmp = tempfile::NamedTempFile::new_in(&self.temp_dir)?;
        store.download(bucket, key, tmp.path()).await?;
        let path = tmp.path().to_owned();
        let archive_name = name.to_owned();
        let (mut archive, meta, datasets) = blocking(move || {
            let mut archive = Archive::open(&path, &archive_name)?;
            let meta = archive.metadata()?;
            let datasets = archive.datasets()?;
            Ok((archive, meta, datasets))
        })
        .await?;
        let mut schemas = HashMap::new();
        for d in &datasets {
            schemas.insert(d.clone(), self.schemas.get(d, meta.schema_version).await?);
        }
        let this = self.clone();
        let name = name.to_owned();
        let read = blocking(move || this.read(&mut archive, &name, &meta, &schemas)).await?;
        drop(tmp);
        let mut report = read.report;
        let written: Vec<String> = read.outputs.iter().map(|o| o.key.clone()).collect();
        self.publish(read.outputs).await?;
        report.stale_removed = records::retire_stale(
            &self.output_store,
            &self.output,
            &report.record_id,
            &written,
        )
        .await?;
        if report.stale_removed > 0 {
            tracing::info!(
                record = %report.record_id, removed = report.stale_removed,
                "removed the files an earlier run of this record wrote and this one did not"
            );
        }
        Ok(report)
    }

    fn read(
        &self,
        archive: &mut Archive,
        name: &str,
        meta: &Metadata,
        schemas: &HashMap<String, Option<Arc<Compiled>>>,
    ) -> Result<Read, RelzError> {
        let partition = meta.partition();
        let spare = std::mem::take(&mut *self.spare.lock().unwrap_or_else(PoisonError::into_inner));
        let mut tables = Tables::with_spare(spare);
        let mut flattener = Flattener::new(&meta.record_id);
        let mut outputs = Vec::new();
        let mut report = ArchiveReport {
            archive: name.to_owned(),
            record_id: meta.record_id.clone(),
            ..ArchiveReport::default()
        };
        let mut quarantine = |member: &str,
                              line: Option<usize>,
                              dataset: Option<&str>,
                              reasons: Value,
                              document: Value|
         -> Result<(), RelzError> {
            let file = member.replace('/', "_");
            let file = match line {
                Some(l) => format!("{file}.line{l}.json"),
                None => format!("{file}.json"),
            };
            let key = self.output.key(&format!(
                "{QUARANTINE}/{}/{partition}/{}/{file}",
                dataset.unwrap_or("_unknown"),
                meta.record_id
            ));
            let record = json!({
                "archive": name,
                "recordId": meta.record_id,
                "member": member,
                "line": line,
                "dataset": dataset,
                "schemaVersion": meta.schema_version,
                "reasons": reasons,
                "document": document,
            });
            outputs.push(Output {
                key,
                body: serde_json::to_vec_pretty(&record).map_err(std::io::Error::other)?,
                content_type: "application/json",
            });
            Ok(())
        };
        archive.for_each(self.max_document_bytes, |item| {
            report.documents += 1;
            match item {
                Item::Bad {
                    member,
                    line,
                    dataset,
                    reason,
                    text,
                } => {
                    report.invalid += 1;
                    quarantine(
                        &member,
                        line,
                        dataset.as_deref(),
                        json!([{"path": "", "message": reason}]),
                        text.map_or(Value::Null, Value::String),
                    )
                }
                Item::Doc {
                    member,
                    line,
                    dataset,
                    doc,
                } => {
                    let violations = match schemas.get(dataset) {
                        Some(Some(schema)) => schema.violations(doc),
                        _ if self.schemas.configured() => vec![crate::schema::Violation {
                            path: String::new(),
                            message: format!(
                                "unknown dataset {dataset:?}: there is no schema {}",
                                self.schemas.describe(dataset, meta.schema_version)
                            ),
                        }],
                        _ => Vec::new(),
                    };
                    if !violations.is_empty() {
                        report.invalid += 1;
                        return quarantine(
                            member,
                            line,
                            Some(dataset),
                            json!(violations),
                            doc.to_value(),
                        );
                    }
                    if let Some(m) = doc.root_object() {
                        flattener.document(&mut tables, dataset, m).map_err(|e| {
                            RelzError::TooLarge {
                                archive: name.to_owned(),
                                reason: e.to_string(),
                            }
                        })?;
                    }
                    Ok(())
                }
            }
        })?;
        let mut declared: HashMap<&str, &[(String, ColType)]> = HashMap::new();
        for schema in schemas.values().flatten() {
            for (table, cols) in &schema.declared {
                declared.insert(table, cols);
            }
        }
        for (table, rows) in tables.sorted_mut() {
            if rows.rows == 0 {
                continue;
            }
            let (body, conflicts) =
                encode(table, rows, declared.get(table).copied().unwrap_or(&[]))?;
            report.tables.insert(table.to_owned(), rows.rows);
            report.conflicts.extend(conflicts);
            outputs.push(Output {
                key: self
                    .output
                    .key(&format!("{table}/{partition}/{}.parquet", meta.record_id)),
                body,
                content_type: "application/vnd.apache.parquet",
            });
        }
        report.files = outputs.len();
        *self.spare.lock().unwrap_or_else(PoisonError::into_inner) = tables.into_spare();
        Ok(Read { report, outputs })
    }

    /// Writes every output, a few at a time.
    async fn publish(&self, outputs: Vec<Output>) -> Result<(), RelzError> {
        let mut running = tokio::task::JoinSet::new();
        for out in outputs {
            if running.len() >= 8
                && let Some(done) = running.join_next().await
            {
                done.map_err(std::io::Error::other)??;
            }
            let store = self.output_store.clone();
            let bucket = self.output.bucket.clone();
            running.spawn(async move {
                let options = PutOptions {
                    content_type: Some(out.content_type.to_owned()),
                    ..PutOptions::default()
                };
                store
                    .put_with(stepops_store::PutRequest {
                        bucket: &bucket,
                        key: &out.key,
                        body: out.body,
                        options,
                    })
                    .await
            });
        }
        while let Some(done) = running.join_next().await {
            done.map_err(std::io::Error::other)??;
        }
        Ok(())
    }
}

async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, RelzError> + Send + 'static,
) -> Result<T, RelzError> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(std::io::Error::other)?
}

/// Sets glibc's allocator up for reading one archive after another, once per process: one
/// arena, and no block returned to the system as it is freed, so that each archive's columns,
/// nodes and Parquet buffers reuse the memory the archive before freed instead of taking new
/// pages from the kernel and faulting them in again.
///
/// Left alone, glibc keeps one arena per thread that allocates, and the reading runs on tokio's
/// blocking threads: a run's peak memory grew with the number of archives read (8 archives of
/// 4 MiB: 239 MiB). Handing freed memory back after every archive (`malloc_trim`, until
/// 2026-12-06) bounded it but faulted every page in again: 320,000 page faults for 1 GiB of
/// NDJSON, 10,000 with this setup, and a lower peak (docs/benchmarks.md). Blocks over
/// [`MMAP_THRESHOLD`] are still mapped and unmapped on their own, and free memory at the top
/// of the heap over [`TRIM_THRESHOLD`] is still handed back, so that an archive far larger than
/// the rest does not keep its memory after it is read. Other C libraries are left as they are.
fn reuse_freed_memory() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    {
        static ONCE: std::sync::Once = std::sync::Once::new();
        ONCE.call_once(|| {
            #[allow(unsafe_code)]
            // SAFETY: mallopt only changes glibc's allocation parameters; it takes no pointer,
            // and these three are documented as safe to change while the process runs.
            unsafe {
                libc::mallopt(libc::M_ARENA_MAX, 1);
                libc::mallopt(libc::M_MMAP_THRESHOLD, MMAP_THRESHOLD);
                libc::mallopt(libc::M_TRIM_THRESHOLD, TRIM_THRESHOLD);
            }
        });
    }
}

/// Blocks larger than this are mapped on their own and unmapped when freed (glibc's most).
const MMAP_THRESHOLD: i32 = 32 << 20;

/// Free memory at the top of the heap beyond this is handed back to the system.
const TRIM_THRESHOLD: i32 = 128 << 20;
