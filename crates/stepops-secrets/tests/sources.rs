//! The secret sources: [`AwsSecretSource`] with the real `aws-sdk-secretsmanager` client
//! against the local engine's Secrets Manager stand-in, and the memory sources.

use aws_sdk_secretsmanager::config::{BehaviorVersion, Credentials, Region};
use stepops_error::{ErrorName, Named};
use stepops_local::{EngineConfig, LocalEngine};
use stepops_secrets::{
    AwsSecretSource, MemorySecretSource, NoSecretSource, SecretError, SecretSource,
};

#[tokio::test]
async fn aws_source_reads_secrets_and_names_a_missing_one() {
    let dir = tempfile::tempdir().unwrap();
    let hook = "https://hooks.example/T0/B0/xyz-secret-part";
    let engine = LocalEngine::start(EngineConfig {
        secrets: [("stepops/dev/chat-webhook".to_owned(), hook.to_owned())].into(),
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
    let source = AwsSecretSource::secrets_manager(aws_sdk_secretsmanager::Client::from_conf(conf));

    let value = source.secret("stepops/dev/chat-webhook").await.unwrap();
    assert_eq!(value.expose(), hook);
    assert_eq!(
        format!("{value} {value:?}"),
        "[redacted] Secret([redacted])"
    );

    let err = source.secret("stepops/dev/missing").await.unwrap_err();
    assert!(matches!(err, SecretError::NotFound(_)), "{err:?}");
    assert_eq!(err.error_name(), ErrorName::NotFound);
    assert!(
        err.to_string().contains("secret stepops/dev/missing"),
        "{err}"
    );

    let err = source.parameter("/stepops/dev/x").await.unwrap_err();
    assert_eq!(err.error_name(), ErrorName::InvalidInput, "{err}");
    engine.shutdown().await;
}

#[tokio::test]
async fn memory_sources_answer_what_they_hold() {
    let source = MemorySecretSource::new()
        .with_secret("s", "value-1")
        .with_parameter("/p", "value-2");
    assert_eq!(source.secret("s").await.unwrap().expose(), "value-1");
    assert_eq!(source.parameter("/p").await.unwrap().expose(), "value-2");
    assert_eq!(
        source.secret("/p").await.unwrap_err().error_name(),
        ErrorName::NotFound
    );
    let none = NoSecretSource.secret("s").await.unwrap_err();
    assert_eq!(none.error_name(), ErrorName::NotFound);
    assert!(none.to_string().contains("reads no secrets"), "{none}");
}
