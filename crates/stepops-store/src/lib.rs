//! The object store stepops writes through, addressed by bucket and key: the runner's plan
//! manifests and copy results, the admin tasks' kept records. [`LocalFolderStore`] stands in for
//! S3 on a laptop (the local engine reads and writes `<root>/<bucket>/<key>`); `S3Store` (cargo
//! feature `s3`, on by default) uses S3 in AWS. A [`PutRequest`] is one write: where, what, and
//! the [`PutOptions`] that say how (its content type, server-side encryption with KMS); the local
//! folder keeps what was asked beside the object ([`LocalFolderStore::options_of`]) so that tests
//! can check it. A store also lists a prefix and streams an object into a local file
//! (relationalize's archives).

use std::future::Future;
use std::path::{Component, Path, PathBuf};

use serde::{Deserialize, Serialize};
use stepops_error::{ErrorName, Named};

/// Why an object could not be written or read.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The bucket or key is not acceptable (empty, absolute, `..`).
    #[error("invalid object location s3://{bucket}/{key}: {reason}")]
    InvalidKey {
        /// Bucket.
        bucket: String,
        /// Key.
        key: String,
        /// What is wrong.
        reason: String,
    },
    /// The object does not exist.
    #[error("s3://{bucket}/{key} does not exist")]
    Missing {
        /// Bucket.
        bucket: String,
        /// Key.
        key: String,
    },
    /// Writing or reading the local file failed.
    #[error("cannot access s3://{bucket}/{key} at {path}: {source}")]
    Io {
        /// Bucket.
        bucket: String,
        /// Key.
        key: String,
        /// The local file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// S3 refused the request or could not be reached.
    #[error("s3://{bucket}/{key}: {message}")]
    S3 {
        /// Bucket.
        bucket: String,
        /// Key.
        key: String,
        /// The service's error code, when it answered.
        code: Option<String>,
        /// What happened.
        message: String,
    },
    /// No object store is configured on this runner.
    #[error(
        "this runner has no object store for manifests: it was built without S3 support (cargo feature `s3`); set `object_store_root` (a folder standing in for S3) in its configuration"
    )]
    NotConfigured,
}

impl Named for StoreError {
    fn error_name(&self) -> ErrorName {
        match self {
            StoreError::InvalidKey { .. } => ErrorName::InvalidInput,
            StoreError::Missing { .. } => ErrorName::NotFound,
            StoreError::Io { .. } => ErrorName::Transient,
            StoreError::NotConfigured => ErrorName::InvalidInput,
            StoreError::S3 { code, .. } => match code.as_deref() {
                Some("NoSuchBucket" | "NoSuchKey") => ErrorName::NotFound,
                Some(
                    "AccessDenied"
                    | "InvalidAccessKeyId"
                    | "SignatureDoesNotMatch"
                    | "AllAccessDisabled",
                ) => ErrorName::Unauthorized,
                _ => ErrorName::Transient,
            },
        }
    }
}

/// How an object is encrypted at rest.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", tag = "kind")]
pub enum Encryption {
    /// The bucket's default encryption.
    #[default]
    BucketDefault,
    /// SSE-KMS (`x-amz-server-side-encryption: aws:kms`) with `key_id`, or the account's
    /// AWS-managed `aws/s3` key when `None`.
    Kms {
        /// A KMS key id, ARN or alias; `None` for the AWS-managed `aws/s3` key.
        #[serde(skip_serializing_if = "Option::is_none", rename = "keyId")]
        key_id: Option<String>,
    },
}

/// How an object is written. The default (used by [`ObjectStore::put`]) is an NDJSON object
/// under the bucket's default encryption.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PutOptions {
    /// The object's `Content-Type` (default `application/x-ndjson`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub content_type: Option<String>,
    /// Server-side encryption.
    pub encryption: Encryption,
}

impl PutOptions {
    /// The content type the object is written with.
    pub fn content_type(&self) -> &str {
        self.content_type
            .as_deref()
            .unwrap_or("application/x-ndjson")
    }
}

/// One write for [`ObjectStore::put_with`]: `body` at `bucket`/`key`, written as `options` say.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PutRequest<'a> {
    /// Bucket.
    pub bucket: &'a str,
    /// Key.
    pub key: &'a str,
    /// The object's content.
    pub body: Vec<u8>,
    /// How it is written.
    pub options: PutOptions,
}

/// Stores objects by bucket and key (S3's model). Cheap to clone: clones share one connection.
pub trait ObjectStore: Clone + Send + Sync + 'static {
    /// Writes `put.body` at `put.bucket`/`put.key` as `put.options` say, replacing any previous
    /// object.
    fn put_with(&self, put: PutRequest<'_>) -> impl Future<Output = Result<(), StoreError>> + Send;

    /// Writes `body` at `bucket`/`key` with the default [`PutOptions`], replacing any previous
    /// object.
    fn put(
        &self,
        bucket: &str,
        key: &str,
        body: Vec<u8>,
    ) -> impl Future<Output = Result<(), StoreError>> + Send {
        let options = PutOptions::default();
        // An async block: the future borrows `bucket` and `key` each for its own lifetime (the
        // request borrows both for one, which the returned type could not name).
        async move {
            let put = PutRequest {
                bucket,
                key,
                body,
                options,
            };
            self.put_with(put).await
        }
    }

    /// Reads the object at `bucket`/`key` ([`StoreError::Missing`] when there is none).
    fn get(
        &self,
        bucket: &str,
        key: &str,
    ) -> impl Future<Output = Result<Vec<u8>, StoreError>> + Send;

    /// Deletes the object at `bucket`/`key`; an object that is not there is not an error (as
    /// S3's `DeleteObject`).
    fn delete(
        &self,
        bucket: &str,
        key: &str,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;

    /// The keys of every object under `prefix` (all pages), sorted.
    fn list(
        &self,
        bucket: &str,
        prefix: &str,
    ) -> impl Future<Output = Result<Vec<String>, StoreError>> + Send;

    /// Streams the object at `bucket`/`key` into the local file `dest` (created or truncated)
    /// without holding it in memory; returns its size.
    fn download(
        &self,
        bucket: &str,
        key: &str,
        dest: &Path,
    ) -> impl Future<Output = Result<u64, StoreError>> + Send;
}

/// A folder standing in for S3: object `bucket`/`key` is the file `<root>/<bucket>/<key>`. An
/// object written with other than the default [`PutOptions`] has them, as JSON, in
/// `<root>/.options/<bucket>/<key>` (no bucket name starts with `.`), as S3 keeps an object's
/// metadata.
#[derive(Debug, Clone)]
pub struct LocalFolderStore {
    root: PathBuf,
}

impl LocalFolderStore {
    /// A store rooted at `root` (created on first write).
    pub fn new(root: impl Into<PathBuf>) -> Self {
        LocalFolderStore { root: root.into() }
    }

    /// The file that holds `bucket`/`key`.
    pub fn path_of(&self, bucket: &str, key: &str) -> Result<PathBuf, StoreError> {
        let invalid = |reason: &str| StoreError::InvalidKey {
            bucket: bucket.to_owned(),
            key: key.to_owned(),
            reason: reason.to_owned(),
        };
        if bucket.is_empty() || bucket.contains('/') || bucket.starts_with('.') {
            return Err(invalid("the bucket must be a plain name"));
        }
        if key.is_empty() || key.ends_with('/') {
            return Err(invalid("the key must name an object"));
        }
        let rel = Path::new(key);
        if !rel.components().all(|c| matches!(c, Component::Normal(_))) {
            return Err(invalid(
                "the key must be relative, without `.` or `..` segments",
            ));
        }
        Ok(self.root.join(bucket).join(rel))
    }

    /// The file that holds the [`PutOptions`] `bucket`/`key` was written with.
    fn options_path(&self, bucket: &str, key: &str) -> Result<PathBuf, StoreError> {
        self.path_of(bucket, key)?;
        Ok(self.root.join(".options").join(bucket).join(key))
    }

    /// The [`PutOptions`] the object at `bucket`/`key` was written with (the defaults when it
    /// was written with them); [`StoreError::Missing`] when there is no such object.
    pub async fn options_of(&self, bucket: &str, key: &str) -> Result<PutOptions, StoreError> {
        let path = self.path_of(bucket, key)?;
        if !tokio::fs::try_exists(&path).await.unwrap_or(false) {
            return Err(StoreError::Missing {
                bucket: bucket.to_owned(),
                key: key.to_owned(),
            });
        }
        let options = self.options_path(bucket, key)?;
        match tokio::fs::read(&options).await {
            Ok(text) => serde_json::from_slice(&text).map_err(|e| StoreError::Io {
                bucket: bucket.to_owned(),
                key: key.to_owned(),
                path: options,
                source: std::io::Error::new(std::io::ErrorKind::InvalidData, e),
            }),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(PutOptions::default()),
            Err(source) => Err(StoreError::Io {
                bucket: bucket.to_owned(),
                key: key.to_owned(),
                path: options,
                source,
            }),
        }
    }
}

/// Why reading the object stored at `path` failed: [`StoreError::Missing`] when the file does
/// not exist, else [`StoreError::Io`].
fn read_error(bucket: &str, key: &str, path: PathBuf, source: std::io::Error) -> StoreError {
    if source.kind() == std::io::ErrorKind::NotFound && !path.exists() {
        return StoreError::Missing {
            bucket: bucket.to_owned(),
            key: key.to_owned(),
        };
    }
    StoreError::Io {
        bucket: bucket.to_owned(),
        key: key.to_owned(),
        path,
        source,
    }
}

/// Writes `body` to `path` through a temporary file and a rename, creating the folders.
async fn write_atomically(path: &Path, body: &[u8]) -> std::io::Result<()> {
    if let Some(dir) = path.parent() {
        tokio::fs::create_dir_all(dir).await?;
    }
    let tmp = path.with_extension(format!("tmp-{}", std::process::id()));
    tokio::fs::write(&tmp, body).await?;
    tokio::fs::rename(&tmp, path).await
}

impl ObjectStore for LocalFolderStore {
    async fn put_with(&self, put: PutRequest<'_>) -> Result<(), StoreError> {
        let (bucket, key) = (put.bucket, put.key);
        let path = self.path_of(bucket, key)?;
        let options_path = self.options_path(bucket, key)?;
        let io = |path: &Path, source| StoreError::Io {
            bucket: bucket.to_owned(),
            key: key.to_owned(),
            path: path.to_owned(),
            source,
        };
        if put.options == PutOptions::default() {
            match tokio::fs::remove_file(&options_path).await {
                Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
                    return Err(io(&options_path, e));
                }
                _ => {}
            }
        } else {
            let text = serde_json::to_vec(&put.options).map_err(|e| {
                io(
                    &options_path,
                    std::io::Error::new(std::io::ErrorKind::InvalidData, e),
                )
            })?;
            write_atomically(&options_path, &text)
                .await
                .map_err(|e| io(&options_path, e))?;
        }
        write_atomically(&path, &put.body)
            .await
            .map_err(|e| io(&path, e))
    }

    async fn get(&self, bucket: &str, key: &str) -> Result<Vec<u8>, StoreError> {
        let path = self.path_of(bucket, key)?;
        match tokio::fs::read(&path).await {
            Ok(body) => Ok(body),
            Err(e) => Err(read_error(bucket, key, path, e)),
        }
    }

    async fn delete(&self, bucket: &str, key: &str) -> Result<(), StoreError> {
        for path in [self.path_of(bucket, key)?, self.options_path(bucket, key)?] {
            match tokio::fs::remove_file(&path).await {
                Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
                    return Err(StoreError::Io {
                        bucket: bucket.to_owned(),
                        key: key.to_owned(),
                        path,
                        source: e,
                    });
                }
                _ => {}
            }
        }
        Ok(())
    }

    async fn list(&self, bucket: &str, prefix: &str) -> Result<Vec<String>, StoreError> {
        self.path_of(bucket, "k")?;
        let base = self.root.join(bucket);
        let root = base.clone();
        let prefix = prefix.to_owned();
        let io = |path: PathBuf, source| StoreError::Io {
            bucket: bucket.to_owned(),
            key: String::new(),
            path,
            source,
        };
        let listed = tokio::task::spawn_blocking(move || list_folder(&root, &prefix))
            .await
            .map_err(|e| io(base.clone(), std::io::Error::other(e)))?;
        listed.map_err(|(path, e)| io(path, e))
    }

    async fn download(&self, bucket: &str, key: &str, dest: &Path) -> Result<u64, StoreError> {
        let path = self.path_of(bucket, key)?;
        match tokio::fs::copy(&path, dest).await {
            Ok(n) => Ok(n),
            Err(e) => Err(read_error(bucket, key, path, e)),
        }
    }
}

/// The keys under `root` starting with `prefix`, sorted; a temporary file of a write in
/// progress (`*.tmp-PID`) is not an object. A missing bucket folder lists nothing.
fn list_folder(root: &Path, prefix: &str) -> Result<Vec<String>, (PathBuf, std::io::Error)> {
    let mut keys = Vec::new();
    let mut dirs = vec![root.to_path_buf()];
    while let Some(dir) = dirs.pop() {
        let entries = match std::fs::read_dir(&dir) {
            Ok(e) => e,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
            Err(e) => return Err((dir, e)),
        };
        for entry in entries {
            let entry = entry.map_err(|e| (dir.clone(), e))?;
            let path = entry.path();
            let kind = entry.file_type().map_err(|e| (path.clone(), e))?;
            let Ok(rel) = path.strip_prefix(root) else {
                continue;
            };
            let key = rel.to_string_lossy().replace('\\', "/");
            if kind.is_dir() {
                // Only descend where keys under `prefix` can be.
                let dir_key = format!("{key}/");
                if dir_key.starts_with(prefix) || prefix.starts_with(&dir_key) {
                    dirs.push(path);
                }
            } else if key.starts_with(prefix) && !is_temporary(&key) {
                keys.push(key);
            }
        }
    }
    keys.sort();
    Ok(keys)
}

/// A file [`write_atomically`] has not published yet.
fn is_temporary(key: &str) -> bool {
    key.rsplit_once(".tmp-")
        .is_some_and(|(_, pid)| !pid.is_empty() && pid.bytes().all(|b| b.is_ascii_digit()))
}

/// A store that refuses every write (no store configured).
#[derive(Debug, Clone, Default)]
pub struct NoStore;

impl ObjectStore for NoStore {
    async fn put_with(&self, _: PutRequest<'_>) -> Result<(), StoreError> {
        Err(StoreError::NotConfigured)
    }

    async fn get(&self, _: &str, _: &str) -> Result<Vec<u8>, StoreError> {
        Err(StoreError::NotConfigured)
    }

    async fn delete(&self, _: &str, _: &str) -> Result<(), StoreError> {
        Err(StoreError::NotConfigured)
    }

    async fn list(&self, _: &str, _: &str) -> Result<Vec<String>, StoreError> {
        Err(StoreError::NotConfigured)
    }

    async fn download(&self, _: &str, _: &str, _: &Path) -> Result<u64, StoreError> {
        Err(StoreError::NotConfigured)
    }
}

#[cfg(feature = "s3")]
mod s3;
#[cfg(feature = "s3")]
pub use s3::{ListedObject, S3Store, sdk_error, unquote};

/// Either store, chosen by configuration.
#[derive(Debug, Clone)]
pub enum AnyStore {
    /// A local folder.
    Local(LocalFolderStore),
    /// S3.
    #[cfg(feature = "s3")]
    S3(S3Store),
    /// None configured.
    None(NoStore),
}

impl ObjectStore for AnyStore {
    async fn put_with(&self, put: PutRequest<'_>) -> Result<(), StoreError> {
        match self {
            AnyStore::Local(s) => s.put_with(put).await,
            AnyStore::None(s) => s.put_with(put).await,
            #[cfg(feature = "s3")]
            AnyStore::S3(s) => s.put_with(put).await,
        }
    }

    async fn get(&self, bucket: &str, key: &str) -> Result<Vec<u8>, StoreError> {
        match self {
            AnyStore::Local(s) => s.get(bucket, key).await,
            AnyStore::None(s) => s.get(bucket, key).await,
            #[cfg(feature = "s3")]
            AnyStore::S3(s) => s.get(bucket, key).await,
        }
    }

    async fn delete(&self, bucket: &str, key: &str) -> Result<(), StoreError> {
        match self {
            AnyStore::Local(s) => s.delete(bucket, key).await,
            AnyStore::None(s) => s.delete(bucket, key).await,
            #[cfg(feature = "s3")]
            AnyStore::S3(s) => s.delete(bucket, key).await,
        }
    }

    async fn list(&self, bucket: &str, prefix: &str) -> Result<Vec<String>, StoreError> {
        match self {
            AnyStore::Local(s) => s.list(bucket, prefix).await,
            AnyStore::None(s) => s.list(bucket, prefix).await,
            #[cfg(feature = "s3")]
            AnyStore::S3(s) => s.list(bucket, prefix).await,
        }
    }

    async fn download(&self, bucket: &str, key: &str, dest: &Path) -> Result<u64, StoreError> {
        match self {
            AnyStore::Local(s) => s.download(bucket, key, dest).await,
            AnyStore::None(s) => s.download(bucket, key, dest).await,
            #[cfg(feature = "s3")]
            AnyStore::S3(s) => s.download(bucket, key, dest).await,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn lists_keys_under_a_prefix_and_downloads_to_a_file() {
        let dir = tempfile::tempdir().unwrap();
        let store = LocalFolderStore::new(dir.path());
        for key in ["in/a/1.zip", "in/b.zip", "other/c.zip", "inx"] {
            store
                .put("bucket", key, key.as_bytes().to_vec())
                .await
                .unwrap();
        }
        // A write in progress is not an object.
        std::fs::write(dir.path().join("bucket/in/b.tmp-42"), b"half").unwrap();
        assert_eq!(
            store.list("bucket", "in/").await.unwrap(),
            ["in/a/1.zip", "in/b.zip"]
        );
        assert_eq!(store.list("bucket", "").await.unwrap().len(), 4);
        assert!(store.list("nobucket", "").await.unwrap().is_empty());
        let dest = dir.path().join("copy");
        assert_eq!(
            store.download("bucket", "in/b.zip", &dest).await.unwrap(),
            8
        );
        assert_eq!(std::fs::read(&dest).unwrap(), b"in/b.zip");
        let missing = store
            .download("bucket", "in/none", &dest)
            .await
            .unwrap_err();
        assert_eq!(missing.error_name(), ErrorName::NotFound);
    }

    #[tokio::test]
    async fn deletes_an_object_with_its_options_and_a_missing_one_is_no_error() {
        let dir = tempfile::tempdir().unwrap();
        let store = LocalFolderStore::new(dir.path());
        let kms = PutOptions {
            content_type: Some("application/vnd.apache.parquet".into()),
            encryption: Encryption::Kms { key_id: None },
        };
        store
            .put_with(PutRequest {
                bucket: "bucket",
                key: "t/a.parquet",
                body: b"x".to_vec(),
                options: kms,
            })
            .await
            .unwrap();
        store
            .put("bucket", "t/b.parquet", b"y".to_vec())
            .await
            .unwrap();
        store.delete("bucket", "t/a.parquet").await.unwrap();
        assert_eq!(store.list("bucket", "").await.unwrap(), ["t/b.parquet"]);
        assert!(
            !store
                .options_path("bucket", "t/a.parquet")
                .unwrap()
                .exists()
        );
        store.delete("bucket", "t/a.parquet").await.unwrap();
        assert_eq!(
            store
                .delete("bucket", "../x")
                .await
                .unwrap_err()
                .error_name(),
            ErrorName::InvalidInput
        );
    }

    #[tokio::test]
    async fn writes_under_root_and_refuses_escapes() {
        let dir = tempfile::tempdir().unwrap();
        let store = LocalFolderStore::new(dir.path());
        store
            .put("bucket", "runs/x/round-1.jsonl", b"{}\n".to_vec())
            .await
            .unwrap();
        let text = std::fs::read_to_string(dir.path().join("bucket/runs/x/round-1.jsonl")).unwrap();
        assert_eq!(text, "{}\n");
        assert_eq!(
            store.get("bucket", "runs/x/round-1.jsonl").await.unwrap(),
            b"{}\n"
        );
        let missing = store.get("bucket", "runs/x/none.json").await.unwrap_err();
        assert_eq!(missing.error_name(), ErrorName::NotFound, "{missing}");
        assert_eq!(
            store.get("bucket", "../x").await.unwrap_err().error_name(),
            ErrorName::InvalidInput
        );
        for (b, k) in [
            ("bucket", "../x"),
            ("bucket", "/etc/x"),
            ("", "k"),
            ("a/b", "k"),
            ("b", ""),
        ] {
            let e = store.put(b, k, vec![]).await.unwrap_err();
            assert_eq!(e.error_name(), ErrorName::InvalidInput, "{b} {k}");
        }
    }

    #[tokio::test]
    async fn the_local_folder_keeps_what_a_put_asked_for() {
        let dir = tempfile::tempdir().unwrap();
        let store = LocalFolderStore::new(dir.path());
        let kms = PutOptions {
            content_type: Some("application/json".into()),
            encryption: Encryption::Kms {
                key_id: Some("alias/stepops".into()),
            },
        };
        let (bucket, key) = ("bucket", "admin-records/a.json");
        let put = PutRequest {
            bucket,
            key,
            body: b"{}".to_vec(),
            options: kms.clone(),
        };
        store.put_with(put).await.unwrap();
        assert_eq!(store.options_of(bucket, key).await.unwrap(), kms);
        // Written again with the defaults: the options written before are gone.
        store.put(bucket, key, b"{}".to_vec()).await.unwrap();
        let options = store.options_of(bucket, key).await.unwrap();
        assert_eq!(options, PutOptions::default());
        let missing = store.options_of("bucket", "none").await.unwrap_err();
        assert_eq!(missing.error_name(), ErrorName::NotFound);
        // The options live outside every bucket: no object read can reach them.
        assert!(
            !dir.path()
                .join(".options/bucket/admin-records/a.json")
                .exists()
        );
        assert_eq!(
            store
                .get(".options", "bucket/admin-records/a.json")
                .await
                .unwrap_err()
                .error_name(),
            ErrorName::InvalidInput
        );
    }
}
