//! `S3Store` through the real `aws-sdk-s3` client against a recording HTTP server on 127.0.0.1:
//! what a `PutObject` asks for (SSE-KMS, the key, the content type) is in the request S3 would
//! receive.

#![cfg(feature = "s3")]

use stepops_store::{Encryption, ObjectStore, PutOptions, PutRequest, S3Store};
use stepops_testkit::http::{HttpServer, Reply};

/// A server that answers every request 200 with an empty body and records it.
async fn recording_s3() -> HttpServer {
    HttpServer::start(|_| Reply::new(200, "application/xml", Vec::new())).await
}

fn store(endpoint: &str) -> S3Store {
    let config = aws_sdk_s3::config::Builder::new()
        .behavior_version(aws_sdk_s3::config::BehaviorVersion::latest())
        .endpoint_url(endpoint)
        .force_path_style(true)
        .region(aws_sdk_s3::config::Region::new("us-east-1"))
        .credentials_provider(aws_sdk_s3::config::Credentials::new(
            "t", "t", None, None, "t",
        ))
        .build();
    S3Store::new(aws_sdk_s3::Client::from_conf(config))
}

#[tokio::test]
async fn put_object_asks_for_sse_kms_when_told_and_not_otherwise() {
    let server = recording_s3().await;
    let s3 = store(server.url());
    s3.put_with(PutRequest {
        bucket: "stack-bucket",
        key: "admin-records/prod/x.json",
        body: b"{}".to_vec(),
        options: PutOptions {
            content_type: Some("application/json".into()),
            encryption: Encryption::Kms {
                key_id: Some("alias/stepops-prod".into()),
            },
        },
    })
    .await
    .unwrap();
    s3.put_with(PutRequest {
        bucket: "stack-bucket",
        key: "admin-records/prod/y.json",
        body: b"{}".to_vec(),
        options: PutOptions {
            content_type: None,
            encryption: Encryption::Kms { key_id: None },
        },
    })
    .await
    .unwrap();
    s3.put("stack-bucket", "manifests/m.jsonl", b"{}\n".to_vec())
        .await
        .unwrap();

    let seen = server.requests();
    assert_eq!(seen.len(), 3, "{seen:#?}");
    let kms = &seen[0];
    assert_eq!(kms.method, "PUT");
    assert_eq!(kms.path, "/stack-bucket/admin-records/prod/x.json");
    assert_eq!(kms.body, b"{}");
    assert_eq!(kms.header("x-amz-server-side-encryption"), Some("aws:kms"));
    assert_eq!(
        kms.header("x-amz-server-side-encryption-aws-kms-key-id"),
        Some("alias/stepops-prod")
    );
    assert_eq!(kms.header("content-type"), Some("application/json"));

    let managed_key = &seen[1];
    assert_eq!(
        managed_key.header("x-amz-server-side-encryption"),
        Some("aws:kms")
    );
    assert_eq!(
        managed_key.header("x-amz-server-side-encryption-aws-kms-key-id"),
        None
    );

    let plain = &seen[2];
    assert_eq!(plain.path, "/stack-bucket/manifests/m.jsonl");
    assert_eq!(plain.header("x-amz-server-side-encryption"), None);
    assert_eq!(plain.header("content-type"), Some("application/x-ndjson"));
}

#[tokio::test]
async fn delete_object_is_a_delete_of_the_key() {
    let server = HttpServer::start(|_| Reply::new(204, "application/xml", Vec::new())).await;
    store(server.url())
        .delete("stack-bucket", "out/t/assessmentid=a/x.parquet")
        .await
        .unwrap();
    let seen = server.requests();
    assert_eq!(seen.len(), 1, "{seen:#?}");
    assert_eq!(seen[0].method, "DELETE");
    // The SDK percent-encodes the key in the path (`=` is `%3D`).
    assert_eq!(
        seen[0].path,
        "/stack-bucket/out/t/assessmentid%3Da/x.parquet"
    );
}
