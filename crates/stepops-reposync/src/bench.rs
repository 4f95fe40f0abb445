//! The sync's benchmark: a generated tree of N files is synced into an S3 prefix (first run,
//! no change, 1 % of the files changed at the same size), with wall times, requests by kind
//! (through [`Counted`]) and the process's peak memory. `stepops repo-sync bench` runs it
//! against a local S3 server.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Instant;

use serde::Serialize;

use crate::archive::LocalFile;
use crate::definition::Definition;
use crate::digest::digest_file;
use crate::error::{SyncError, local};
use crate::store::{Head, Listed, PutRequest, SyncTarget, WriteFailure};
use crate::sync::compare_and_apply;

/// Requests by kind.
#[derive(Debug, Default, Serialize)]
pub struct Requests {
    /// `ListObjectsV2` calls (all pages of one listing count once).
    pub list: AtomicUsize,
    /// `GetObject` (the manifest).
    pub get: AtomicUsize,
    /// `HeadObject`.
    pub head: AtomicUsize,
    /// `PutObject`.
    pub put: AtomicUsize,
    /// `DeleteObjects`.
    pub delete: AtomicUsize,
}

impl Requests {
    /// `PutObject` and `DeleteObjects` requests together.
    pub fn writes(&self) -> usize {
        self.put.load(Ordering::SeqCst) + self.delete.load(Ordering::SeqCst)
    }

    /// `HeadObject` requests.
    pub fn heads(&self) -> usize {
        self.head.load(Ordering::SeqCst)
    }
}

/// A [`SyncTarget`] that counts the requests it passes on, and can answer the deletes of
/// chosen keys with `AccessDenied` without sending them (to show how a sync reports a partial
/// failure).
pub struct Counted<'a, T> {
    /// The target.
    pub inner: &'a T,
    /// The counts.
    pub requests: Requests,
    /// Keys whose deletes are refused.
    pub refuse_delete: Vec<String>,
}

impl<'a, T> Counted<'a, T> {
    /// Counts the requests passed on to `inner`.
    pub fn new(inner: &'a T) -> Self {
        Counted {
            inner,
            requests: Requests::default(),
            refuse_delete: Vec::new(),
        }
    }
}

impl<T: SyncTarget> SyncTarget for Counted<'_, T> {
    async fn list(&self, bucket: &str, prefix: &str) -> Result<Vec<Listed>, SyncError> {
        self.requests.list.fetch_add(1, Ordering::SeqCst);
        self.inner.list(bucket, prefix).await
    }
    async fn get(&self, bucket: &str, key: &str) -> Result<Option<Vec<u8>>, SyncError> {
        self.requests.get.fetch_add(1, Ordering::SeqCst);
        self.inner.get(bucket, key).await
    }
    async fn head(&self, bucket: &str, key: &str, part: Option<i32>) -> Result<Head, SyncError> {
        self.requests.head.fetch_add(1, Ordering::SeqCst);
        self.inner.head(bucket, key, part).await
    }
    async fn put(&self, put: &PutRequest<'_>) -> Result<String, WriteFailure> {
        self.requests.put.fetch_add(1, Ordering::SeqCst);
        self.inner.put(put).await
    }
    async fn delete(&self, bucket: &str, keys: &[String]) -> Vec<WriteFailure> {
        self.requests.delete.fetch_add(1, Ordering::SeqCst);
        let (refused, rest): (Vec<String>, Vec<String>) = keys
            .iter()
            .cloned()
            .partition(|k| self.refuse_delete.contains(k));
        let mut out = if rest.is_empty() {
            Vec::new()
        } else {
            self.inner.delete(bucket, &rest).await
        };
        out.extend(refused.into_iter().map(|key| WriteFailure {
            key,
            code: "AccessDenied".into(),
            message: "Access Denied".into(),
        }));
        out
    }
}

/// One timed run.
#[derive(Debug, Serialize)]
pub struct Run {
    /// What ran.
    pub name: String,
    /// Wall time, seconds (hashing the tree included).
    pub seconds: f64,
    /// Requests by kind.
    pub requests: Requests,
    /// Objects uploaded.
    pub uploaded: usize,
}

/// Writes `files` files of `total_bytes / files` pseudo-random bytes each (incompressible)
/// under `dir`, in 50 folders; returns their paths relative to `dir`.
pub fn make_tree(dir: &Path, files: usize, total_bytes: u64) -> Result<Vec<String>, SyncError> {
    let size = (total_bytes / files.max(1) as u64) as usize;
    let mut state = 0x9E37_79B9_7F4A_7C15u64;
    let mut rels = Vec::new();
    for i in 0..files {
        let rel = format!("d{:02}/file-{i:05}.bin", i % 50);
        let path = dir.join(&rel);
        std::fs::create_dir_all(path.parent().expect("has a folder"))
            .map_err(|e| local(dir.display(), e))?;
        let body: Vec<u8> = (0..size)
            .map(|_| {
                state ^= state << 13;
                state ^= state >> 7;
                state ^= state << 17;
                state as u8
            })
            .collect();
        std::fs::write(&path, body).map_err(|e| local(path.display(), e))?;
        rels.push(rel);
    }
    Ok(rels)
}

/// Flips one byte in every hundredth file (the size stays): returns how many changed.
pub fn change_one_percent(dir: &Path, rels: &[String]) -> Result<usize, SyncError> {
    let mut n = 0;
    for rel in rels.iter().step_by(100) {
        let path = dir.join(rel);
        let mut body = std::fs::read(&path).map_err(|e| local(path.display(), e))?;
        if let Some(b) = body.first_mut() {
            *b ^= 0xff;
        }
        std::fs::write(&path, body).map_err(|e| local(path.display(), e))?;
        n += 1;
    }
    Ok(n)
}

/// Hashes the tree and syncs it to `def`'s prefix through `target`, counting requests.
pub async fn timed_run<T: SyncTarget>(
    name: &str,
    def: &Definition,
    target: &T,
    dir: &Path,
    rels: &[String],
) -> Result<Run, SyncError> {
    let filter = def.validate()?;
    let start = Instant::now();
    let files = rels
        .iter()
        .map(|rel| {
            let path: PathBuf = dir.join(rel);
            let digests = digest_file(&path).map_err(|e| local(path.display(), e))?;
            Ok(LocalFile {
                rel: rel.clone(),
                path,
                digests,
            })
        })
        .collect::<Result<Vec<_>, SyncError>>()?;
    let counted = Counted::new(target);
    let report = compare_and_apply(def, &filter, &counted, files, "bench".into(), Vec::new())
        .await?
        .into_result()?;
    Ok(Run {
        name: name.into(),
        seconds: start.elapsed().as_secs_f64(),
        uploaded: report.new.len() + report.modified.len(),
        requests: counted.requests,
    })
}

/// The process's peak resident memory in MiB (`VmHWM`), where the system reports it.
pub fn peak_memory_mib() -> Option<f64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kb: f64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb / 1024.0)
}
