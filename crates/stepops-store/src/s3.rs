//! S3 through the AWS SDK (feature `s3`): the production [`ObjectStore`].

use std::path::Path;

use aws_sdk_s3::error::{DisplayErrorContext, ProvideErrorMetadata, SdkError};
use aws_sdk_s3::operation::get_object::{GetObjectError, GetObjectOutput};

use crate::{Encryption, ObjectStore, PutRequest, StoreError};

/// S3 through the AWS SDK (feature `s3`).
#[derive(Debug, Clone)]
pub struct S3Store {
    client: aws_sdk_s3::Client,
}

/// An object of a listing, as `ListObjectsV2` describes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListedObject {
    /// Key.
    pub key: String,
    /// Size in bytes.
    pub size: u64,
    /// ETag without quotes (opaque: equal ETags mean the same object, nothing more).
    pub etag: String,
}

impl S3Store {
    /// A store over `client`.
    pub fn new(client: aws_sdk_s3::Client) -> Self {
        S3Store { client }
    }

    /// A store from the shared AWS configuration (`AWS_ENDPOINT_URL_S3` is honoured).
    pub fn from_config(config: &aws_config::SdkConfig) -> Self {
        S3Store::new(aws_sdk_s3::Client::new(config))
    }

    /// The SDK client.
    pub fn client(&self) -> &aws_sdk_s3::Client {
        &self.client
    }

    /// Every object under `prefix` (all pages), in S3's order (by key).
    pub async fn list_objects(
        &self,
        bucket: &str,
        prefix: &str,
    ) -> Result<Vec<ListedObject>, StoreError> {
        let mut out = Vec::new();
        let mut pages = self
            .client
            .list_objects_v2()
            .bucket(bucket)
            .prefix(prefix)
            .into_paginator()
            .send();
        while let Some(page) = pages.next().await {
            let page = page.map_err(|e| sdk_error(bucket, prefix, &e))?;
            out.extend(page.contents().iter().map(|o| ListedObject {
                key: o.key().unwrap_or_default().to_owned(),
                size: o.size().unwrap_or(0).max(0) as u64,
                etag: unquote(o.e_tag().unwrap_or_default()),
            }));
        }
        Ok(out)
    }

    /// `GetObject`; a missing object is [`StoreError::Missing`].
    async fn get_object(&self, bucket: &str, key: &str) -> Result<GetObjectOutput, StoreError> {
        self.client
            .get_object()
            .bucket(bucket)
            .key(key)
            .send()
            .await
            .map_err(|e| get_error(bucket, key, e))
    }
}

/// An ETag without its quotes.
pub fn unquote(etag: &str) -> String {
    etag.trim_matches('"').to_owned()
}

/// [`StoreError::S3`] from an SDK error of a request on `key` (or a prefix).
pub fn sdk_error<E: ProvideErrorMetadata + std::error::Error + 'static>(
    bucket: &str,
    key: &str,
    e: &SdkError<E>,
) -> StoreError {
    StoreError::S3 {
        bucket: bucket.to_owned(),
        key: key.to_owned(),
        code: e.code().map(str::to_owned),
        message: DisplayErrorContext(e).to_string(),
    }
}

fn get_error(bucket: &str, key: &str, e: SdkError<GetObjectError>) -> StoreError {
    if e.as_service_error().is_some_and(|s| s.is_no_such_key()) {
        return StoreError::Missing {
            bucket: bucket.to_owned(),
            key: key.to_owned(),
        };
    }
    sdk_error(bucket, key, &e)
}

impl ObjectStore for S3Store {
    async fn put_with(&self, put: PutRequest<'_>) -> Result<(), StoreError> {
        let (bucket, key) = (put.bucket, put.key);
        let mut request = self
            .client
            .put_object()
            .bucket(bucket)
            .key(key)
            .content_type(put.options.content_type())
            .body(aws_sdk_s3::primitives::ByteStream::from(put.body));
        if let Encryption::Kms { key_id } = put.options.encryption {
            request = request
                .server_side_encryption(aws_sdk_s3::types::ServerSideEncryption::AwsKms)
                .set_ssekms_key_id(key_id);
        }
        request
            .send()
            .await
            .map_err(|e| sdk_error(bucket, key, &e))?;
        Ok(())
    }

    async fn get(&self, bucket: &str, key: &str) -> Result<Vec<u8>, StoreError> {
        let out = self.get_object(bucket, key).await?;
        let body = out.body.collect().await.map_err(|e| StoreError::S3 {
            bucket: bucket.to_owned(),
            key: key.to_owned(),
            code: None,
            message: format!("reading the body: {e}"),
        })?;
        Ok(body.into_bytes().to_vec())
    }

    async fn delete(&self, bucket: &str, key: &str) -> Result<(), StoreError> {
        self.client
            .delete_object()
            .bucket(bucket)
            .key(key)
            .send()
            .await
            .map_err(|e| sdk_error(bucket, key, &e))?;
        Ok(())
    }

    async fn list(&self, bucket: &str, prefix: &str) -> Result<Vec<String>, StoreError> {
        let mut keys: Vec<String> = self
            .list_objects(bucket, prefix)
            .await?
            .into_iter()
            .map(|o| o.key)
            .filter(|k| !k.is_empty())
            .collect();
        keys.sort();
        Ok(keys)
    }

    async fn download(&self, bucket: &str, key: &str, dest: &Path) -> Result<u64, StoreError> {
        let out = self.get_object(bucket, key).await?;
        let io = |source| StoreError::Io {
            bucket: bucket.to_owned(),
            key: key.to_owned(),
            path: dest.to_owned(),
            source,
        };
        let mut file = tokio::fs::File::create(dest).await.map_err(io)?;
        let mut body = out.body.into_async_read();
        let n = tokio::io::copy(&mut body, &mut file).await.map_err(io)?;
        tokio::io::AsyncWriteExt::flush(&mut file)
            .await
            .map_err(io)?;
        Ok(n)
    }
}
