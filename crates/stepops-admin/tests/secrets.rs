//! The Secrets Manager token source against the real SDK client with `aws-smithy-mocks`: the
//! request's shape (SecretId), one read for many uses, and a second read after a 401.

mod common;

use std::sync::Arc;

use aws_sdk_secretsmanager::Client;
use aws_sdk_secretsmanager::operation::get_secret_value::{
    GetSecretValueError, GetSecretValueOutput,
};
use aws_sdk_secretsmanager::types::error::{InternalServiceError, ResourceNotFoundException};
use aws_smithy_mocks::{RuleMode, mock, mock_client};
use common::{MockSynapse, Recorded, Reply};
use serde_json::json;
use stepops_admin::{
    AdminRequest, AuditContext, DEFAULT_SECRET_NAME, Environment, SecretsManagerTokenSource,
    TokenSource, run,
};
use stepops_error::{ErrorName, Named};

fn secret(value: &'static str) -> GetSecretValueOutput {
    GetSecretValueOutput::builder()
        .name(DEFAULT_SECRET_NAME)
        .secret_string(value)
        .build()
}

fn reenable(id: &str) -> AdminRequest {
    AdminRequest::from_cli("prod", Environment::Prod, "reenable-user", &[id], false).unwrap()
}

#[tokio::test]
async fn the_secret_is_read_once_by_name_and_cached() {
    let rule = mock!(Client::get_secret_value)
        .match_requests(|req| {
            req.secret_id() == Some(DEFAULT_SECRET_NAME) && req.version_id().is_none()
        })
        .then_output(|| secret("pat-one\n"));
    let sm = mock_client!(aws_sdk_secretsmanager, RuleMode::MatchAny, [&rule]);
    let source = SecretsManagerTokenSource::new(sm, DEFAULT_SECRET_NAME);

    let server = MockSynapse::start(|_: &Recorded| Reply::empty(200)).await;
    let client = server.client(source);
    for id in ["1", "2", "3", "4"] {
        run(&reenable(id), &client, &AuditContext::default())
            .await
            .unwrap();
    }
    assert_eq!(
        rule.num_calls(),
        1,
        "one Secrets Manager call for many uses"
    );
    let got = server.requests();
    assert_eq!(got.len(), 4);
    assert!(
        got.iter()
            .all(|r| r.header("authorization") == Some("Bearer pat-one")),
        "the trailing newline is trimmed and the same token is reused"
    );
}

#[tokio::test]
async fn a_401_reads_the_secret_again_and_retries_with_the_new_token() {
    let rule = mock!(Client::get_secret_value)
        .match_requests(|req| req.secret_id() == Some(DEFAULT_SECRET_NAME))
        .sequence()
        .output(|| secret("rotated-out"))
        .output(|| secret("rotated-in"))
        .build();
    let sm = mock_client!(aws_sdk_secretsmanager, RuleMode::Sequential, [&rule]);
    let source = Arc::new(SecretsManagerTokenSource::new(sm, DEFAULT_SECRET_NAME));

    let server = MockSynapse::start(|r: &Recorded| {
        if r.header("authorization") == Some("Bearer rotated-in") {
            Reply::empty(200)
        } else {
            Reply::json(401, json!({"reason": "invalid access token"}))
        }
    })
    .await;
    let client = server.client(source.clone());
    run(&reenable("7"), &client, &AuditContext::default())
        .await
        .unwrap();
    assert_eq!(
        rule.num_calls(),
        2,
        "read once, then once more after the 401"
    );
    // The refreshed token is cached: the next task does not read the secret again.
    run(&reenable("8"), &client, &AuditContext::default())
        .await
        .unwrap();
    assert_eq!(rule.num_calls(), 2);
    let auths: Vec<_> = server
        .requests()
        .iter()
        .map(|r| r.header("authorization").unwrap().to_owned())
        .collect();
    assert_eq!(
        auths,
        [
            "Bearer rotated-out",
            "Bearer rotated-in",
            "Bearer rotated-in"
        ]
    );
}

#[tokio::test]
async fn a_refresh_after_someone_else_refreshed_reuses_their_token() {
    let rule = mock!(Client::get_secret_value)
        .sequence()
        .output(|| secret("old"))
        .output(|| secret("new"))
        .build();
    let sm = mock_client!(aws_sdk_secretsmanager, RuleMode::Sequential, [&rule]);
    let source = SecretsManagerTokenSource::new(sm, DEFAULT_SECRET_NAME);
    let old = source.token().await.unwrap();
    let new = source.refresh(&old).await.unwrap();
    assert_eq!(new.expose(), "new");
    // A second caller that also saw `old` rejected gets `new` without another read.
    assert_eq!(source.refresh(&old).await.unwrap().expose(), "new");
    assert_eq!(rule.num_calls(), 2);
}

#[tokio::test]
async fn secrets_manager_errors_are_named() {
    let missing = mock!(Client::get_secret_value).then_error(|| {
        GetSecretValueError::ResourceNotFoundException(
            ResourceNotFoundException::builder()
                .message("Secrets Manager can't find the specified secret.")
                .build(),
        )
    });
    let sm = mock_client!(aws_sdk_secretsmanager, [&missing]);
    let err = SecretsManagerTokenSource::new(sm, "/synapse/nope")
        .token()
        .await
        .unwrap_err();
    assert_eq!(err.error_name(), ErrorName::NotFound, "{err}");
    assert!(err.to_string().contains("/synapse/nope"), "{err}");

    let down = mock!(Client::get_secret_value).then_error(|| {
        GetSecretValueError::InternalServiceError(InternalServiceError::builder().build())
    });
    let sm = mock_client!(aws_sdk_secretsmanager, [&down]);
    let err = SecretsManagerTokenSource::new(sm, DEFAULT_SECRET_NAME)
        .token()
        .await
        .unwrap_err();
    assert_eq!(err.error_name(), ErrorName::Transient, "{err}");

    let binary = mock!(Client::get_secret_value).then_output(|| {
        GetSecretValueOutput::builder()
            .name(DEFAULT_SECRET_NAME)
            .build()
    });
    let sm = mock_client!(aws_sdk_secretsmanager, [&binary]);
    let err = SecretsManagerTokenSource::new(sm, DEFAULT_SECRET_NAME)
        .token()
        .await
        .unwrap_err();
    assert_eq!(err.error_name(), ErrorName::Unauthorized, "{err}");

    let empty = mock!(Client::get_secret_value).then_output(|| secret("  \n"));
    let sm = mock_client!(aws_sdk_secretsmanager, [&empty]);
    let err = SecretsManagerTokenSource::new(sm, DEFAULT_SECRET_NAME)
        .token()
        .await
        .unwrap_err();
    assert_eq!(err.error_name(), ErrorName::Unauthorized, "{err}");
}
