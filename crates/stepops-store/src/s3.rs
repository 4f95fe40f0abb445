//! S3 through the AWS SDK (feature `s3`): the production [`ObjectStore`].

use std::path::Path;

use crate::{Encryption, ObjectStore, PutOptions, StoreError};

/// S3 through the AWS SDK (feature `s3`).
#[derive(Debug, Clone)]
pub struct S3Store {
    client: aws_sdk_s3::Client,
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
}

impl ObjectStore for S3Store {
    async fn put_with(
        &self,
        bucket: &str,
        key: &str,
        body: Vec<u8>,
        options: PutOptions,
    ) -> Result<(), StoreError> {
        use aws_sdk_s3::error::ProvideErrorMetadata;
        let mut put = self
            .client
            .put_object()
            .bucket(bucket)
            .key(key)
            .content_type(options.content_type())
            .body(aws_sdk_s3::primitives::ByteStream::from(body));
        if let Encryption::Kms { key_id } = options.encryption {
            put = put
                .server_side_encryption(aws_sdk_s3::types::ServerSideEncryption::AwsKms)
                .set_ssekms_key_id(key_id);
        }
        put.send().await.map_err(|e| StoreError::S3 {
            bucket: bucket.to_owned(),
            key: key.to_owned(),
            code: e.code().map(str::to_owned),
            message: aws_sdk_s3::error::DisplayErrorContext(&e).to_string(),
        })?;
        Ok(())
    }

    async fn get(&self, bucket: &str, key: &str) -> Result<Vec<u8>, StoreError> {
        use aws_sdk_s3::error::ProvideErrorMetadata;
        let err = |code: Option<String>, message: String| StoreError::S3 {
            bucket: bucket.to_owned(),
            key: key.to_owned(),
            code,
            message,
        };
        let out = self
            .client
            .get_object()
            .bucket(bucket)
            .key(key)
            .send()
            .await
            .map_err(|e| {
                if e.as_service_error().is_some_and(|s| s.is_no_such_key()) {
                    return StoreError::Missing {
                        bucket: bucket.to_owned(),
                        key: key.to_owned(),
                    };
                }
                err(
                    e.code().map(str::to_owned),
                    aws_sdk_s3::error::DisplayErrorContext(&e).to_string(),
                )
            })?;
        let body = out
            .body
            .collect()
            .await
            .map_err(|e| err(None, format!("reading the body: {e}")))?;
        Ok(body.into_bytes().to_vec())
    }

    async fn list(&self, bucket: &str, prefix: &str) -> Result<Vec<String>, StoreError> {
        use aws_sdk_s3::error::ProvideErrorMetadata;
        let mut keys = Vec::new();
        let mut pages = self
            .client
            .list_objects_v2()
            .bucket(bucket)
            .prefix(prefix)
            .into_paginator()
            .send();
        while let Some(page) = pages.next().await {
            let page = page.map_err(|e| StoreError::S3 {
                bucket: bucket.to_owned(),
                key: prefix.to_owned(),
                code: e.code().map(str::to_owned),
                message: aws_sdk_s3::error::DisplayErrorContext(&e).to_string(),
            })?;
            keys.extend(
                page.contents()
                    .iter()
                    .filter_map(|o| o.key().map(str::to_owned)),
            );
        }
        keys.sort();
        Ok(keys)
    }

    async fn download(&self, bucket: &str, key: &str, dest: &Path) -> Result<u64, StoreError> {
        use aws_sdk_s3::error::ProvideErrorMetadata;
        let out = self
            .client
            .get_object()
            .bucket(bucket)
            .key(key)
            .send()
            .await
            .map_err(|e| {
                if e.as_service_error().is_some_and(|s| s.is_no_such_key()) {
                    return StoreError::Missing {
                        bucket: bucket.to_owned(),
                        key: key.to_owned(),
                    };
                }
                StoreError::S3 {
                    bucket: bucket.to_owned(),
                    key: key.to_owned(),
                    code: e.code().map(str::to_owned),
                    message: aws_sdk_s3::error::DisplayErrorContext(&e).to_string(),
                }
            })?;
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
