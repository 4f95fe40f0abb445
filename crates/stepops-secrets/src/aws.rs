//! [`AwsSecretSource`]: Secrets Manager secrets and SSM parameters through the AWS SDK, the
//! service's error codes named (`ResourceNotFoundException` → not found, `AccessDenied…` →
//! denied, anything else → worth retrying).

use aws_sdk_secretsmanager::error::ProvideErrorMetadata as _;
use aws_sdk_secretsmanager::operation::get_secret_value::GetSecretValueError;

use crate::{Secret, SecretError, SecretSource};

/// Secrets Manager and SSM through the AWS SDK.
#[derive(Clone, Debug)]
pub struct AwsSecretSource {
    secrets: aws_sdk_secretsmanager::Client,
    ssm: Option<aws_sdk_ssm::Client>,
}

impl AwsSecretSource {
    /// Builds both clients from one shared AWS configuration.
    pub fn new(config: &aws_config::SdkConfig) -> Self {
        AwsSecretSource {
            secrets: aws_sdk_secretsmanager::Client::new(config),
            ssm: Some(aws_sdk_ssm::Client::new(config)),
        }
    }

    /// Secrets Manager only, through `client` (a reader that never names SSM parameters,
    /// or a test's client); a parameter is then refused as [`SecretError::Invalid`].
    pub fn secrets_manager(client: aws_sdk_secretsmanager::Client) -> Self {
        AwsSecretSource {
            secrets: client,
            ssm: None,
        }
    }
}

fn sdk_error_code<E, R>(err: &aws_sdk_ssm::error::SdkError<E, R>) -> Option<String>
where
    E: aws_sdk_ssm::error::ProvideErrorMetadata,
{
    err.as_service_error()
        .and_then(|e| e.code())
        .map(str::to_owned)
}

/// The code of a failed `GetSecretValue`: its metadata's, else the modelled error's own.
fn secrets_error_code<R>(
    err: &aws_sdk_secretsmanager::error::SdkError<GetSecretValueError, R>,
) -> Option<String> {
    let e = err.as_service_error()?;
    let code = e.code().unwrap_or(match e {
        GetSecretValueError::ResourceNotFoundException(_) => "ResourceNotFoundException",
        GetSecretValueError::InternalServiceError(_) => "InternalServiceError",
        GetSecretValueError::DecryptionFailure(_) => "DecryptionFailure",
        GetSecretValueError::InvalidParameterException(_) => "InvalidParameterException",
        GetSecretValueError::InvalidRequestException(_) => "InvalidRequestException",
        _ => return None,
    });
    Some(code.to_owned())
}

fn classify(reference: String, code: Option<String>, display: String) -> SecretError {
    match code.as_deref() {
        Some("ResourceNotFoundException" | "ParameterNotFound" | "ParameterVersionNotFound") => {
            SecretError::NotFound(reference)
        }
        Some(
            "AccessDeniedException"
            | "AccessDenied"
            | "UnrecognizedClientException"
            | "ExpiredTokenException",
        ) => SecretError::Denied(reference),
        Some("InvalidParameterException" | "InvalidRequestException") => {
            SecretError::Invalid(format!(
                "{reference} cannot be read ({display}): check its name and state (a secret scheduled for deletion cannot be read)"
            ))
        }
        Some("InvalidKeyId" | "DecryptionFailure") => SecretError::Denied(reference),
        _ => SecretError::Unavailable(reference, display),
    }
}

impl SecretSource for AwsSecretSource {
    async fn secret(&self, name: &str) -> Result<Secret, SecretError> {
        let reference = format!("secret {name}");
        let out = self
            .secrets
            .get_secret_value()
            .secret_id(name)
            .send()
            .await
            .map_err(|e| {
                classify(
                    reference.clone(),
                    secrets_error_code(&e),
                    aws_sdk_ssm::error::DisplayErrorContext(&e).to_string(),
                )
            })?;
        out.secret_string
            .map(Secret::new)
            .ok_or(SecretError::NoValue(reference))
    }

    async fn parameter(&self, name: &str) -> Result<Secret, SecretError> {
        let reference = format!("parameter {name}");
        let Some(ssm) = &self.ssm else {
            return Err(SecretError::Invalid(format!(
                "{reference}: this reader reads Secrets Manager secrets only"
            )));
        };
        let out = ssm
            .get_parameter()
            .name(name)
            .with_decryption(true)
            .send()
            .await
            .map_err(|e| {
                classify(
                    reference.clone(),
                    sdk_error_code(&e),
                    aws_sdk_ssm::error::DisplayErrorContext(&e).to_string(),
                )
            })?;
        out.parameter
            .and_then(|p| p.value)
            .map(Secret::new)
            .ok_or(SecretError::NoValue(reference))
    }
}
