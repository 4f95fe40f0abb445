//! The Secrets Manager stand-in (`EngineConfig::secrets`, `stepops local serve --secret`): the
//! real `aws-sdk-secretsmanager` client's `GetSecretValue` against the engine's endpoint.

use aws_sdk_secretsmanager::config::{BehaviorVersion, Credentials, Region};
use stepops_local::{EngineConfig, LocalEngine};

#[tokio::test]
async fn get_secret_value_by_name_and_arn_and_not_found() {
    let dir = tempfile::tempdir().unwrap();
    let url = "postgres://app:s3cr3t-Vq8@127.0.0.1:5432/src";
    let engine = LocalEngine::start(EngineConfig {
        secrets: [("stepops/dev/source-db".to_owned(), url.to_owned())].into(),
        ..EngineConfig::new(dir.path())
    })
    .await
    .unwrap();
    let conf = aws_sdk_secretsmanager::Config::builder()
        .behavior_version(BehaviorVersion::latest())
        .region(Region::new("us-east-1"))
        .credentials_provider(Credentials::new("test", "test", None, None, "test"))
        .endpoint_url(engine.endpoint().unwrap())
        .build();
    let client = aws_sdk_secretsmanager::Client::from_conf(conf);

    let out = client
        .get_secret_value()
        .secret_id("stepops/dev/source-db")
        .send()
        .await
        .unwrap();
    assert_eq!(out.secret_string(), Some(url));
    assert_eq!(out.name(), Some("stepops/dev/source-db"));
    let arn = out.arn().unwrap().to_owned();
    assert_eq!(
        arn,
        "arn:aws:secretsmanager:us-east-1:123456789012:secret:stepops/dev/source-db"
    );
    let by_arn = client
        .get_secret_value()
        .secret_id(&arn)
        .send()
        .await
        .unwrap();
    assert_eq!(by_arn.secret_string(), Some(url));

    let err = client
        .get_secret_value()
        .secret_id("stepops/dev/missing")
        .send()
        .await
        .unwrap_err();
    let service = err.into_service_error();
    assert!(service.is_resource_not_found_exception(), "{service:?}");
    assert!(
        service.to_string().contains("stepops/dev/missing"),
        "{service}"
    );
    engine.shutdown().await;
}
