//! Reads the GitHub App's key from Secrets Manager (the Lambda, and the CLI for a definition
//! naming `private_key_secret`) through the project's one secret source
//! ([`stepops_secrets::AwsSecretSource`]). The value is never logged.

use crate::error::SyncError;
use stepops_secrets::{AwsSecretSource, SecretSource};

/// The string value of the secret `name`.
pub async fn read_secret(
    config: &aws_config::SdkConfig,
    name: String,
) -> Result<String, SyncError> {
    AwsSecretSource::new(config)
        .secret(&name)
        .await
        .map(|s| s.expose().to_owned())
        .map_err(|e| SyncError::PrivateKey(format!("the GitHub App key: {e}")))
}
