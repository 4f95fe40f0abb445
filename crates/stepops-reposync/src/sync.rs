//! One sync run: download, extract, compare with the prefix (manifest first, `HeadObject`
//! checksums for what it does not know), then upload, delete and write the manifest — or, in a
//! dry run, only report the plan. A failed upload or delete does not stop the others; the run
//! then reports every failure.

use std::collections::{BTreeMap, HashMap};
use std::path::Path;
use std::time::Duration;

use futures::StreamExt;
use serde::Serialize;

use crate::archive::{LocalFile, extract};
use crate::content_type::content_type;
use crate::definition::{Definition, Filter, Mode};
use crate::digest::{digest_file, multipart_etag};
use crate::error::{SyncError, local};
use crate::github::GitHubApp;
use crate::manifest::{Entry, MANIFEST_VERSION, Manifest};
use crate::store::{Body, DELETE_BATCH, Head, Listed, PutRequest, SyncTarget, WriteFailure};

/// Requests in flight at once (HEADs, uploads).
const CONCURRENCY: usize = 16;

/// What a run did (or, in a dry run, would do).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct SyncReport {
    /// The definition's name.
    pub name: String,
    /// `s3://bucket/prefix`.
    pub destination: String,
    /// The commit synced.
    pub commit: String,
    /// Nothing was written.
    pub dry_run: bool,
    /// Keys uploaded that were not there.
    pub new: Vec<String>,
    /// Keys uploaded whose content differed.
    pub modified: Vec<String>,
    /// Keys deleted (the branch no longer has them).
    pub deleted: Vec<String>,
    /// Keys the branch no longer has, left because `delete_missing` is off.
    pub stale: Vec<String>,
    /// Objects already equal.
    pub unchanged: usize,
    /// `HeadObject` requests made for objects the manifest did not know.
    pub heads: usize,
    /// Whether the manifest was (or, in a dry run, would be) written.
    pub manifest_written: bool,
    /// Symbolic links of the repository, skipped.
    pub skipped_links: Vec<String>,
    /// Writes that failed, with S3's code.
    pub failures: Vec<String>,
    /// Every failure was an access denial.
    #[serde(skip)]
    pub denied: bool,
}

impl SyncReport {
    /// Whether anything changed (or would have).
    pub fn changed(&self) -> bool {
        !(self.new.is_empty() && self.modified.is_empty() && self.deleted.is_empty())
    }

    /// The report, or [`SyncError::WritesFailed`] when a write failed.
    pub fn into_result(self) -> Result<SyncReport, SyncError> {
        if self.failures.is_empty() {
            Ok(self)
        } else {
            Err(SyncError::WritesFailed {
                failures: self.failures,
                denied: self.denied,
            })
        }
    }
}

/// How an object compares with a local file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Verdict {
    Same,
    Differs,
}

/// Runs `definition` (already validated into `filter`): the branch from `github`, the prefix
/// through `target`, temporary files under `workdir`. Write failures are in the report
/// ([`SyncReport::into_result`]); anything before the first write fails the run with nothing
/// written.
pub async fn run_sync<T: SyncTarget>(
    def: &Definition,
    filter: &Filter,
    github: &GitHubApp,
    target: &T,
    workdir: &Path,
) -> Result<SyncReport, SyncError> {
    let tmp = tempfile::tempdir_in(workdir).map_err(|e| local(workdir.display(), e))?;
    let archive = github
        .download(
            &def.organization,
            &def.repository,
            &def.branch,
            tmp.path(),
            def.max_archive_bytes,
            Duration::from_secs(def.timeout_seconds),
        )
        .await?;
    tracing::info!(sync = %def.display_name(), bytes = archive.size, "archive downloaded");
    let (files, commit, skipped_links) = match def.mode {
        Mode::Extract => {
            let dir = tmp.path().join("tree");
            let (path, filter, max) = (
                archive.file.path().to_owned(),
                filter.clone(),
                def.max_archive_bytes.saturating_mul(20),
            );
            let x = tokio::task::spawn_blocking(move || extract(&path, &dir, &filter, max))
                .await
                .map_err(|e| local("extraction", e))??;
            (x.files, x.commit, x.skipped_links)
        }
        Mode::Zip => {
            let path = archive.file.path().to_owned();
            let digests = digest_file(&path).map_err(|e| local(path.display(), e))?;
            let f = std::fs::File::open(&path).map_err(|e| local(path.display(), e))?;
            let zip =
                zip::ZipArchive::new(f).map_err(|e| SyncError::CorruptArchive(e.to_string()))?;
            let comment = String::from_utf8_lossy(zip.comment()).trim().to_owned();
            let rel = format!("{}.zip", def.repository);
            (vec![LocalFile { rel, path, digests }], comment, Vec::new())
        }
    };
    compare_and_apply(def, filter, target, files, commit, skipped_links).await
}

/// Compares `files` with the prefix and applies the difference (the part of a run after the
/// download; public for benchmarks and tests).
pub async fn compare_and_apply<T: SyncTarget>(
    def: &Definition,
    filter: &Filter,
    target: &T,
    files: Vec<LocalFile>,
    commit: String,
    skipped_links: Vec<String>,
) -> Result<SyncReport, SyncError> {
    let bucket = def.bucket.as_str();
    let manifest_key = def.manifest_key();
    let (listing, manifest) = futures::join!(
        target.list(bucket, &def.prefix),
        target.get(bucket, &manifest_key)
    );
    let listing: HashMap<String, Listed> = listing?
        .into_iter()
        .filter(|o| o.key != manifest_key)
        .map(|o| (o.key.clone(), o))
        .collect();
    let old = Manifest::parse(manifest?.as_deref());
    let mut report = SyncReport {
        name: def.display_name(),
        destination: format!("s3://{bucket}/{}", def.prefix),
        commit: commit.clone(),
        dry_run: def.dry_run,
        skipped_links,
        ..SyncReport::default()
    };
    let mut entries: BTreeMap<String, Entry> = BTreeMap::new();
    let mut uploads: Vec<(String, &LocalFile, bool)> = Vec::new();
    let mut to_head: Vec<(String, &LocalFile, &Listed)> = Vec::new();
    for f in &files {
        let key = format!("{}{}", def.prefix, f.rel);
        let Some(listed) = listing.get(&key) else {
            uploads.push((key, f, true));
            continue;
        };
        if listed.size != f.digests.size {
            uploads.push((key, f, false));
            continue;
        }
        match old.objects.get(&key) {
            Some(e) if e.etag == listed.etag && e.size == listed.size => {
                if e.sha256 == f.digests.sha256_hex {
                    entries.insert(key, e.clone());
                    report.unchanged += 1;
                } else {
                    uploads.push((key, f, false));
                }
            }
            _ => to_head.push((key, f, listed)),
        }
    }
    report.heads = to_head.len();
    let verdicts: Vec<_> = futures::stream::iter(to_head)
        .map(|(key, f, listed)| async move {
            let v = compare_by_head(target, bucket, &key, f).await;
            (key, f, listed, v)
        })
        .buffer_unordered(CONCURRENCY)
        .collect()
        .await;
    for (key, f, listed, v) in verdicts {
        match v? {
            Verdict::Same => {
                report.unchanged += 1;
                entries.insert(key, entry(f, &listed.etag));
            }
            Verdict::Differs => uploads.push((key, f, false)),
        }
    }
    let local_keys: std::collections::HashSet<String> = files
        .iter()
        .map(|f| format!("{}{}", def.prefix, f.rel))
        .collect();
    let mut gone: Vec<String> = listing
        .keys()
        .filter(|k| !local_keys.contains(*k))
        .filter(|k| def.mode == Mode::Zip || filter.accepts(&k[def.prefix.len()..]))
        .cloned()
        .collect();
    gone.sort();
    uploads.sort_by(|a, b| a.0.cmp(&b.0));
    for (key, _, new) in &uploads {
        if *new {
            report.new.push(key.clone())
        } else {
            report.modified.push(key.clone())
        }
    }
    if !def.delete_missing {
        report.stale = gone.clone();
        gone.clear();
    }
    report.deleted = gone.clone();
    let mut failures: Vec<WriteFailure> = Vec::new();
    if !def.dry_run {
        let results: Vec<_> = futures::stream::iter(uploads.iter())
            .map(|(key, f, _)| async move {
                let r = target
                    .put(&PutRequest {
                        bucket,
                        key,
                        body: Body::File(&f.path),
                        content_type: content_type(&f.rel),
                        sha256_b64: &f.digests.sha256_b64,
                        encryption: &def.encryption,
                    })
                    .await;
                (key, f, r)
            })
            .buffer_unordered(CONCURRENCY)
            .collect()
            .await;
        for (key, f, r) in results {
            match r {
                Ok(etag) => {
                    entries.insert(key.clone(), entry(f, &etag));
                }
                Err(e) => failures.push(e),
            }
        }
        for batch in gone.chunks(DELETE_BATCH) {
            failures.extend(target.delete(bucket, batch).await);
        }
        let failed: std::collections::HashSet<&str> =
            failures.iter().map(|f| f.key.as_str()).collect();
        report.new.retain(|k| !failed.contains(k.as_str()));
        report.modified.retain(|k| !failed.contains(k.as_str()));
        report.deleted.retain(|k| !failed.contains(k.as_str()));
    } else {
        for (key, f, _) in &uploads {
            entries.insert(key.clone(), entry(f, ""));
        }
    }
    let manifest = Manifest {
        version: MANIFEST_VERSION,
        source: format!("{}/{}@{}", def.organization, def.repository, def.branch),
        commit,
        objects: entries,
    };
    if manifest != old {
        report.manifest_written = true;
        if !def.dry_run {
            let body = manifest.to_bytes();
            let sha = crate::digest::sha256_b64(&body);
            if let Err(e) = target
                .put(&PutRequest {
                    bucket,
                    key: &manifest_key,
                    body: Body::Bytes(&body),
                    content_type: "application/json",
                    sha256_b64: &sha,
                    encryption: &def.encryption,
                })
                .await
            {
                report.manifest_written = false;
                failures.push(e);
            }
        }
    }
    report.denied = !failures.is_empty() && failures.iter().all(|f| f.code == "AccessDenied");
    report.failures = failures
        .iter()
        .map(|f| format!("{}: {}: {}", f.key, f.code, f.message))
        .collect();
    Ok(report)
}

fn entry(f: &LocalFile, etag: &str) -> Entry {
    Entry {
        sha256: f.digests.sha256_hex.clone(),
        size: f.digests.size,
        etag: etag.to_owned(),
    }
}

/// Compares an object the manifest does not know with `f`: its whole-object SHA-256 or
/// CRC64NVME when S3 has one; else, when the ETag can be an MD5 (no SSE-KMS, no SSE-C), the
/// single-part MD5 or the multipart formula with the part size of part 1. An object that
/// cannot be compared is taken as different (uploaded again, after which the manifest knows it).
async fn compare_by_head<T: SyncTarget>(
    target: &T,
    bucket: &str,
    key: &str,
    f: &LocalFile,
) -> Result<Verdict, SyncError> {
    let same = |b: bool| if b { Verdict::Same } else { Verdict::Differs };
    let head: Head = target.head(bucket, key, None).await?;
    if let Some(s) = head.sha256.as_deref().filter(|s| !s.contains('-')) {
        return Ok(same(s == f.digests.sha256_b64));
    }
    if let Some(c) = head.crc64nvme.as_deref() {
        return Ok(same(c == f.digests.crc64nvme_b64));
    }
    let kms = head
        .sse
        .as_deref()
        .is_some_and(|s| s.starts_with("aws:kms"));
    if kms || head.sse_customer {
        return Ok(Verdict::Differs);
    }
    if let Some((_, parts)) = head.etag.split_once('-') {
        let Ok(parts) = parts.parse::<u64>() else {
            return Ok(Verdict::Differs);
        };
        let part1 = target.head(bucket, key, Some(1)).await?;
        if part1.size == 0 || part1.size.saturating_mul(parts) < f.digests.size {
            return Ok(Verdict::Differs);
        }
        let path = f.path.clone();
        let size = part1.size;
        let etag = tokio::task::spawn_blocking(move || multipart_etag(&path, size))
            .await
            .map_err(|e| local(f.path.display(), e))?
            .map_err(|e| local(f.path.display(), e))?;
        return Ok(same(etag == head.etag));
    }
    Ok(same(head.etag == f.digests.md5_hex))
}
