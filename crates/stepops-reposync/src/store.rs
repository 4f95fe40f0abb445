//! The S3 boundary of a sync: list a prefix, read the manifest, `HeadObject` with checksums,
//! upload a file with its SHA-256, delete in batches. [`S3Target`] is the real one (the AWS
//! SDK); tests run it against a local S3-protocol server.

use std::future::Future;
use std::path::Path;

use aws_sdk_s3::error::{DisplayErrorContext, ProvideErrorMetadata};
use aws_sdk_s3::primitives::ByteStream;
use aws_sdk_s3::types::{ChecksumMode, Delete, ObjectIdentifier, ServerSideEncryption};
use stepops_store::{Encryption, ObjectStore, S3Store, StoreError, sdk_error, unquote};

use crate::error::SyncError;

/// Most keys one `DeleteObjects` takes.
pub const DELETE_BATCH: usize = 1000;

/// An object of a listing.
pub use stepops_store::ListedObject as Listed;

/// What `HeadObject` (checksum mode on) says of an object.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Head {
    /// Size of the object, or of the part asked for.
    pub size: u64,
    /// ETag without quotes.
    pub etag: String,
    /// `x-amz-checksum-sha256` (a `-N` suffix: a checksum of part checksums).
    pub sha256: Option<String>,
    /// `x-amz-checksum-crc64nvme`.
    pub crc64nvme: Option<String>,
    /// `x-amz-server-side-encryption` (`AES256`, `aws:kms`, …).
    pub sse: Option<String>,
    /// SSE-C in use (the ETag is then not an MD5).
    pub sse_customer: bool,
    /// Parts of a multipart object (when a part was asked for).
    pub parts: Option<u32>,
}

/// A failed write: the key, S3's code and message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WriteFailure {
    /// Key.
    pub key: String,
    /// S3's error code (`AccessDenied`, …).
    pub code: String,
    /// What happened.
    pub message: String,
}

/// The object store a sync reads and writes.
pub trait SyncTarget: Send + Sync {
    /// Every object under `prefix` (all pages).
    fn list(
        &self,
        bucket: &str,
        prefix: &str,
    ) -> impl Future<Output = Result<Vec<Listed>, SyncError>> + Send;
    /// The object's body, `None` when there is no such object.
    fn get(
        &self,
        bucket: &str,
        key: &str,
    ) -> impl Future<Output = Result<Option<Vec<u8>>, SyncError>> + Send;
    /// `HeadObject` with checksum mode on; `part` asks for one part's size.
    fn head(
        &self,
        bucket: &str,
        key: &str,
        part: Option<i32>,
    ) -> impl Future<Output = Result<Head, SyncError>> + Send;
    /// Uploads one object in one `PutObject` with its SHA-256; returns the ETag.
    fn put(
        &self,
        put: &PutRequest<'_>,
    ) -> impl Future<Output = Result<String, WriteFailure>> + Send;
    /// Deletes at most [`DELETE_BATCH`] keys in one `DeleteObjects`; returns every key's failure.
    fn delete(
        &self,
        bucket: &str,
        keys: &[String],
    ) -> impl Future<Output = Vec<WriteFailure>> + Send;
}

/// One `PutObject`: where, what, and how it is checked and encrypted.
#[derive(Debug, Clone, Copy)]
pub struct PutRequest<'a> {
    /// The bucket.
    pub bucket: &'a str,
    /// The object's key.
    pub key: &'a str,
    /// The object's bytes.
    pub body: Body<'a>,
    /// Its `Content-Type`.
    pub content_type: &'a str,
    /// Its SHA-256, base64, which S3 checks on receipt.
    pub sha256_b64: &'a str,
    /// How the bucket encrypts it.
    pub encryption: &'a Encryption,
}

/// What a `PutObject` sends.
#[derive(Debug, Clone, Copy)]
pub enum Body<'a> {
    /// A file, streamed.
    File(&'a Path),
    /// Bytes in memory (the manifest).
    Bytes(&'a [u8]),
}

/// S3 through the AWS SDK.
#[derive(Debug, Clone)]
pub struct S3Target {
    store: S3Store,
}

impl S3Target {
    /// A target over `client`.
    pub fn new(client: aws_sdk_s3::Client) -> Self {
        S3Target {
            store: S3Store::new(client),
        }
    }

    fn client(&self) -> &aws_sdk_s3::Client {
        self.store.client()
    }
}

impl SyncTarget for S3Target {
    async fn list(&self, bucket: &str, prefix: &str) -> Result<Vec<Listed>, SyncError> {
        Ok(self.store.list_objects(bucket, prefix).await?)
    }

    async fn get(&self, bucket: &str, key: &str) -> Result<Option<Vec<u8>>, SyncError> {
        match self.store.get(bucket, key).await {
            Ok(body) => Ok(Some(body)),
            Err(StoreError::Missing { .. }) => Ok(None),
            Err(e) => Err(e.into()),
        }
    }

    async fn head(&self, bucket: &str, key: &str, part: Option<i32>) -> Result<Head, SyncError> {
        let out = self
            .client()
            .head_object()
            .bucket(bucket)
            .key(key)
            .checksum_mode(ChecksumMode::Enabled)
            .set_part_number(part)
            .send()
            .await
            .map_err(|e| sdk_error(bucket, key, &e))?;
        Ok(Head {
            size: out.content_length().unwrap_or(0).max(0) as u64,
            etag: unquote(out.e_tag().unwrap_or_default()),
            sha256: out.checksum_sha256().map(str::to_owned),
            crc64nvme: out.checksum_crc64_nvme().map(str::to_owned),
            sse: out.server_side_encryption().map(|s| s.as_str().to_owned()),
            sse_customer: out.sse_customer_algorithm().is_some(),
            parts: out.parts_count().map(|n| n.max(0) as u32),
        })
    }

    async fn put(&self, put: &PutRequest<'_>) -> Result<String, WriteFailure> {
        let fail = |code: &str, message: String| WriteFailure {
            key: put.key.to_owned(),
            code: code.to_owned(),
            message,
        };
        let stream = match put.body {
            Body::File(p) => ByteStream::from_path(p)
                .await
                .map_err(|e| fail("LocalFile", e.to_string()))?,
            Body::Bytes(b) => ByteStream::from(b.to_vec()),
        };
        let mut request = self
            .client()
            .put_object()
            .bucket(put.bucket)
            .key(put.key)
            .content_type(put.content_type)
            .checksum_sha256(put.sha256_b64)
            .body(stream);
        if let Encryption::Kms { key_id } = put.encryption {
            request = request
                .server_side_encryption(ServerSideEncryption::AwsKms)
                .set_ssekms_key_id(key_id.clone());
        }
        let out = request.send().await.map_err(|e| {
            fail(
                e.code().unwrap_or("Unknown"),
                DisplayErrorContext(&e).to_string(),
            )
        })?;
        Ok(unquote(out.e_tag().unwrap_or_default()))
    }

    async fn delete(&self, bucket: &str, keys: &[String]) -> Vec<WriteFailure> {
        let ids: Result<Vec<ObjectIdentifier>, _> = keys
            .iter()
            .map(|k| ObjectIdentifier::builder().key(k).build())
            .collect();
        let all_failed = |code: &str, message: String| {
            keys.iter()
                .map(|k| WriteFailure {
                    key: k.clone(),
                    code: code.to_owned(),
                    message: message.clone(),
                })
                .collect()
        };
        let delete = match ids
            .and_then(|ids| Delete::builder().set_objects(Some(ids)).quiet(true).build())
        {
            Ok(d) => d,
            Err(e) => return all_failed("Internal", e.to_string()),
        };
        match self
            .client()
            .delete_objects()
            .bucket(bucket)
            .delete(delete)
            .send()
            .await
        {
            Ok(out) => out
                .errors()
                .iter()
                .map(|e| WriteFailure {
                    key: e.key().unwrap_or_default().to_owned(),
                    code: e.code().unwrap_or("Unknown").to_owned(),
                    message: e.message().unwrap_or_default().to_owned(),
                })
                .collect(),
            Err(e) => all_failed(
                e.code().unwrap_or("Unknown"),
                DisplayErrorContext(&e).to_string(),
            ),
        }
    }
}
